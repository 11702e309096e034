"""Upkeep warnings for coins nearing a recovery lock (issue 18, item 4), on the regtest chain:
mine toward the lock and the warning appears; refresh the coin by a primary spend back to the
vault and it disappears; the height upkeep reports is the first block libbitcoinkernel accepts
the recovery spend in."""

import json

import pytest
from click.testing import CliRunner

from msigvault import Vault
from msigvault.backends import scan_vault
from msigvault.backends.regtest import RegtestBackend
from msigvault.coordinator.upkeep import Coin, upkeep
from msigvault.errors import PolicyError
from msigvault.network import Network
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.regtest import BlockRejected, RegtestChain
from msigvault.testing.keyholders import TestKeyholder

NET = Network.REGTEST
PAYEE = bytes.fromhex("0014") + bytes(range(20))
P = [TestKeyholder.from_label(f"up-p{i}", NET) for i in range(3)]
R = [TestKeyholder.from_label(f"up-r{i}", NET) for i in range(2)]
LOCK, MARGIN = 12, 4


def vault_for(script, lock):
    return Vault.multisig(2, [h.cosigner(script) for h in P], script=script, network=NET,
                          recovery=[Recovery(1, [h.cosigner(script) for h in R], lock)])


def report(chain, v, margin=MARGIN):
    coins = scan_vault(v, RegtestBackend(chain), fetch_prev_txs=False).utxos
    return upkeep(v, coins, tip_height=chain.height, tip_time=chain.median_time_past, margin_blocks=margin)


def by_outpoint(r):
    return {c.coin.outpoint: c for c in r.coins}


def signed(v, psbt, holders):
    return v.combine([v.sign(psbt, h.root)[0] for h in holders])


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_the_warning_appears_near_the_lock_and_a_refresh_clears_it(script):
    v = vault_for(script, Timelock.older(LOCK))
    with RegtestChain() as chain:
        chain.mine(101)
        [a] = chain.fund(v.address(0), [200_000])
        [b] = chain.fund(v.address(1), [150_000])
        ha, hb = chain.height - 1, chain.height
        r = by_outpoint(report(chain, v))
        assert r[f"{a.txid}:{a.vout}"].openings[0].height == ha + LOCK
        assert r[f"{b.txid}:{b.vout}"].openings[0].height == hb + LOCK
        assert not report(chain, v).warnings
        # mine until coin a's recovery path opens within the margin: a is flagged, b one block later
        chain.mine_until(ha + LOCK - MARGIN - 1)
        flagged = {c.coin.outpoint for c in report(chain, v).warnings}
        assert flagged == {f"{a.txid}:{a.vout}"}
        assert "WARNING" in report(chain, v).text() and "refresh them" in report(chain, v).text()
        chain.mine(1)
        assert len(report(chain, v).warnings) == 2
        # refresh coin a: a primary spend back to a fresh vault address restarts its lock
        psbt = v.create_psbt([a], [(v.address(2), 190_000)], fee_rate=2.0, change_index=0,
                             current_height=chain.height)
        tx = v.extract(v.finalize(signed(v, psbt, [P[0], P[1]])))
        chain.submit([tx.raw])
        r = report(chain, v)
        assert {c.coin.outpoint for c in r.warnings} == {f"{b.txid}:{b.vout}"}
        fresh = [c for c in r.coins if c.coin.txid == tx.txid]
        assert fresh and all(c.openings[0].height == chain.height + LOCK and not c.warn for c in fresh)
        # coin b: the height upkeep gives is the first block that accepts its recovery spend
        opens = by_outpoint(r)[f"{b.txid}:{b.vout}"].openings[0]
        rec = v.create_psbt([b], [(PAYEE, 140_000)], fee_rate=2.0, change_index=1, path="recovery")
        raw = v.extract(v.finalize(v.sign(rec, R[1].root)[0])).raw
        assert chain.height + 1 < opens.height and not opens.is_open
        chain.mine_until(opens.height - 2)
        with pytest.raises(BlockRejected):
            chain.submit([raw])  # would be block opens.height - 1
        chain.mine(1)
        assert report(chain, v).warnings[0].openings[0].is_open
        chain.submit([raw])  # block opens.height
        assert chain.height == opens.height


def test_an_absolute_lock_warns_for_every_coin_and_a_refresh_does_not_help():
    with RegtestChain() as chain:
        chain.mine(101)
        v = vault_for("wsh", Timelock.after(chain.height + 20))
        [a] = chain.fund(v.address(0), [100_000])
        opening = report(chain, v).coins[0].openings[0]
        assert opening.height == v.recovery[0].lock.value + 1
        chain.mine_until(opening.height - MARGIN - 1)
        assert len(report(chain, v).warnings) == 1
        psbt = v.create_psbt([a], [(v.address(3), 90_000)], fee_rate=2.0, change_index=0)
        chain.submit([v.extract(v.finalize(signed(v, psbt, [P[1], P[2]]))).raw])
        after = report(chain, v)  # the new coins open at the same height: migrate instead
        assert after.coins and after.warnings == after.coins and a.txid not in {c.coin.txid for c in after.coins}


def test_time_locks_and_unconfirmed_coins():
    v = Vault.multisig(2, [h.cosigner("tr") for h in P], script="tr", network=NET,
                       recovery=[Recovery(1, [R[0].cosigner("tr")], Timelock.older_seconds(512 * 100)),
                                 Recovery(1, [R[1].cosigner("tr")], Timelock.after(1_800_000_000))])
    coins = [Coin("11" * 32, 0, 5_000, height=500, median_time=1_700_000_000), Coin("22" * 32, 1, 6_000)]
    r = upkeep(v, coins, tip_height=600, tip_time=1_700_000_000 + 51_200 - 600 * MARGIN, margin_blocks=MARGIN)
    first = {c.coin.txid[:2]: c for c in r.coins}
    rel, absolute = sorted(first["11"].openings, key=lambda o: o.path)
    assert rel.time == 1_700_051_200 and rel.left == 600 * MARGIN and rel.warn and not rel.estimated
    assert absolute.time == 1_800_000_001 and not absolute.warn
    unconfirmed = {o.path: o for o in first["22"].openings}
    assert unconfirmed["recovery 1"].left is None and not unconfirmed["recovery 1"].warn
    assert unconfirmed["recovery 2"].time == 1_800_000_001
    estimated = upkeep(v, [Coin("33" * 32, 0, 1, height=590)], tip_height=600, tip_time=1_700_000_000)
    assert {o.path: o.estimated for o in estimated.coins[0].openings} == {"recovery 1": True, "recovery 2": False}
    with pytest.raises(PolicyError, match="no recovery paths"):
        upkeep(Vault.multisig(2, [h.cosigner("wsh") for h in P], script="wsh", network=NET), [],
               tip_height=1, tip_time=0)
    with pytest.raises(PolicyError, match="height"):
        upkeep(v, [Coin("11" * 32, 0, 1, height=601)], tip_height=600, tip_time=0)
    with pytest.raises(PolicyError, match="margin_blocks"):
        upkeep(v, [], tip_height=600, tip_time=0, margin_blocks=-1)


def test_vault_upkeep_command(tmp_path):
    from msigvault.cli import cli
    from msigvault.vaultfile import VaultFile

    v = vault_for("wsh", Timelock.older(LOCK))
    VaultFile(v, "reserve").save(tmp_path / "vault.json")

    def run(*args, code=0):
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    chain = tmp_path / "chain"
    run("regtest", "init", chain)
    run("regtest", "fund", chain, v.address(0), "100000")
    out = json.loads(run("vault", "upkeep", tmp_path / "vault.json", "--chain", chain, "--margin-blocks", MARGIN,
                         "--json").stdout)
    [coin] = out["coins"]
    assert out["warnings"] == 0 and coin["paths"][0]["height"] == coin["height"] + LOCK
    run("regtest", "mine", chain, "--blocks", str(LOCK - MARGIN - 2))  # the next block is 5 short of the lock
    run("vault", "upkeep", tmp_path / "vault.json", "--chain", chain, "--margin-blocks", MARGIN, "--check")
    run("regtest", "mine", chain, "--blocks", "1")
    text = run("vault", "upkeep", tmp_path / "vault.json", "--chain", chain, "--margin-blocks", MARGIN,
               "--check", code=1).stdout
    assert "WARNING" in text and "recovery 1 opens at block" in text
    # a snapshot with heights, judged against a tip given on the command line
    (tmp_path / "coins.json").write_text(json.dumps([{"txid": coin["txid"], "vout": coin["vout"],
                                                      "amount": coin["amount"], "script_pubkey": "00",
                                                      "height": coin["height"]}]))
    snap = json.loads(run("vault", "upkeep", tmp_path / "vault.json", "--utxos", tmp_path / "coins.json",
                          "--tip-height", coin["height"] + 1, "--json").stdout)
    assert snap["coins"][0]["paths"][0]["left"] == LOCK - 2
    (tmp_path / "bare.json").write_text(json.dumps([{"txid": coin["txid"], "vout": 0, "amount": 5,
                                                     "script_pubkey": "00"}]))
    bad = run("vault", "upkeep", tmp_path / "vault.json", "--utxos", tmp_path / "bare.json", "--tip-height", 5,
              code=2)
    assert "has no 'height'" in bad.output
    assert "exactly one of" in run("vault", "upkeep", tmp_path / "vault.json", code=2).output
