"""A recovery ceremony through the msigvault command (in-process): vault create --recovery,
registration by the recovery keyholders, psbt create --path recovery, sign, combine, finalize,
a broadcast refused before the lock and accepted after it."""

import json

import pytest
from click.testing import CliRunner

from msigvault.regtest import RegtestChain

PASS = "recovery ceremony passphrase"
PRIMARY, RECOVERY = ("alice", "bob", "carol"), ("dave", "erin")
LOCK = 5


def run(tmp, *args, ok=True):
    from msigvault.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], env={"MSIGVAULT_PASSPHRASE": PASS},
                                catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_recovery_ceremony_through_the_cli(tmp_path, monkeypatch, script):
    monkeypatch.chdir(tmp_path)
    for name in PRIMARY + RECOVERY:
        run(tmp_path, "key", "new", f"{name}.key", "--skip-backup-check")
        run(tmp_path, "key", "cosigner", f"{name}.key", "-n", "regtest", "--script", script, "-o", f"{name}.cosigner")
    spec = f"2:older={LOCK}:" + ",".join(f"{n}.cosigner" for n in RECOVERY)
    info = json.loads(run(tmp_path, "vault", "create", "-m", "2", *(f"{n}.cosigner" for n in PRIMARY), "--script",
                          script, "-n", "regtest", "--recovery", spec, "-o", "vault.json", "--json").stdout)
    assert info["n"] == 3 and len(info["cosigners"]) == 5
    assert info["recovery"] == [f"2-of-2 ({', '.join(c.split(']')[0][1:9] for c in info['cosigners'][3:])}) "
                                f"{LOCK} blocks after the coin confirmed (about 1 hour)"]
    for name in RECOVERY:
        out = json.loads(run(tmp_path, "vault", "verify", "vault.json", "--key", f"{name}.key", "--yes",
                             "--json").stdout)
        assert out["registered"] is True and out["policy_id"] == info["policy_id"]
    bad = run(tmp_path, "vault", "create", "-m", "2", *(f"{n}.cosigner" for n in PRIMARY), "-n", "regtest",
              "--script", script, "--recovery", "2:soon:dave.cosigner", "-o", "bad.json", ok=False)
    assert bad.exit_code == 2 and "K:LOCK:COSIGNER" in bad.output

    run(tmp_path, "regtest", "init", "chain")
    address = json.loads(run(tmp_path, "vault", "address", "vault.json", "--json").stdout)[0]["address"]
    run(tmp_path, "regtest", "fund", "chain", address, "400000")
    run(tmp_path, "regtest", "utxos", "chain", "--vault", "vault.json", "-o", "utxos.json", "--force")
    payee = "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz"
    run(tmp_path, "psbt", "create", "vault.json", "--utxos", "utxos.json", "--to", f"{payee}:150000",
        "--fee-rate", "2", "--path", "recovery", "-o", "spend.psbt")
    parts = []
    for name in RECOVERY:
        out = run(tmp_path, "psbt", "sign", "vault.json", "spend.psbt", "--key", f"{name}.key", "--yes",
                  "-o", f"{name}.psbt").output
        assert "path open to this transaction: recovery 1: 2-of-2" in out and "(your key)" in out
        parts.append(f"{name}.psbt")
    run(tmp_path, "psbt", "combine", "vault.json", *parts, "-o", "full.psbt")
    final = json.loads(run(tmp_path, "psbt", "finalize", "vault.json", "full.psbt", "-o", "final.psbt",
                           "--json").stdout)
    assert final["verified_by_kernel"]
    early = run(tmp_path, "broadcast", "vault.json", "final.psbt", "--chain", "chain", ok=False)
    assert early.exit_code == 2 and "bad-txns-nonfinal" in early.output
    run(tmp_path, "regtest", "mine", "chain", "--blocks", LOCK - 1)
    run(tmp_path, "broadcast", "vault.json", "final.psbt", "--chain", "chain")
    with RegtestChain(datadir=tmp_path / "chain") as c:
        assert c.balance(payee) == 150_000 and c.get_tx(final["txid"]) is not None
