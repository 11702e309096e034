"""Watch-only multisig descriptors beyond the vault shape (issue 18, item 5): Core's and the BIPs'
multisig descriptor vectors derive their scripts through ``Watched``; they can be scanned on the
regtest chain and through the command, and never signed for."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from msigvault import Vault
from msigvault.backends.regtest import RegtestBackend
from msigvault.backends.watch import scan_watched
from msigvault.errors import InvalidDescriptor, MsigvaultError, NetworkMismatch, SignerRefusal
from msigvault.policy.watch import Watched
from msigvault.regtest import RegtestChain
from msigvault.testing.keyholders import TestKeyholder

VECTORS = Path(__file__).parent.parent / "vectors"
CORE = json.loads((VECTORS / "core_descriptors.json").read_text())
MINISCRIPT = json.loads((VECTORS / "core_descriptors_miniscript.json").read_text())
BIP383 = json.loads((VECTORS / "bip383.json").read_text())
BIP387 = json.loads((VECTORS / "bip387.json").read_text())
MULTI = ("multi(", "sortedmulti(", "sh(multi(", "sh(sortedmulti(", "wsh(multi(", "wsh(sortedmulti(", "sh(wsh(multi(",
         "sh(wsh(sortedmulti(")


def scripts_of(w, count):
    return [w.script_pubkey(i).hex() for i in range(count)] if w.is_range else [w.script_pubkey(0).hex()] * count


CORE_MULTI = [v for v in CORE["valid"] if v["descriptor"].startswith(MULTI)]


@pytest.mark.parametrize("case", CORE_MULTI, ids=lambda v: v["descriptor"][:40])
def test_core_multisig_descriptors_give_cores_scripts(case):
    if case["hardened"]:  # Core derives these from its private keys: watch-only cannot
        with pytest.raises(InvalidDescriptor, match="hardened step"):
            Watched.parse(case["descriptor"], network="mainnet")
        return
    w = Watched.parse(case["descriptor"], network="mainnet")
    assert w.is_range == case["range"]
    assert scripts_of(w, len(case["scripts"])) == case["scripts"]
    with pytest.raises(MsigvaultError):  # and none of them is a vault msigvault signs for
        Vault.from_descriptor(case["descriptor"], network="mainnet", require_checksum=False)


def test_the_core_vectors_cover_the_shapes_the_issue_names():
    texts = [v["descriptor"] for v in CORE_MULTI if not v["hardened"]]
    assert any(t.startswith("sh(multi(") and "xpub" in t for t in texts)  # fixed xpub paths in sh
    assert any(t.startswith("sh(wsh(multi(") for t in texts)  # raw hex keys, sh-wsh
    assert any(t.startswith("sortedmulti(") and "/*" in t for t in texts)  # ranged keys
    assert len(texts) >= 6


@pytest.mark.parametrize("case", [v for v in CORE["valid"] if not v["descriptor"].startswith(MULTI)][:6],
                         ids=lambda v: v["descriptor"][:24])
def test_single_key_descriptors_are_not_watched_as_multisig(case):
    with pytest.raises(InvalidDescriptor, match="not a multisig descriptor"):
        Watched.parse(case["descriptor"], network="mainnet")


@pytest.mark.parametrize("case", BIP383["valid"], ids=lambda v: v["descriptor"][:40])
def test_bip383_vectors(case):
    text = case["descriptor"]
    if any(p in text for p in ("xprv", ",L", ",K", ",5")):  # private keys: refused by a watch-only parser
        with pytest.raises(MsigvaultError):
            Watched.parse(text, network="mainnet")
        return
    w = Watched.parse(text, network="mainnet")
    assert scripts_of(w, len(case["scripts"])) == case["scripts"]


@pytest.mark.parametrize("case", [v for v in BIP387["valid"] if v["public"]], ids=lambda v: v["public"][:50])
def test_bip387_tr_multi_a_vectors(case):
    w = Watched.parse(case["public"], network="mainnet")
    assert scripts_of(w, len(case["scripts"])) == case["scripts"]
    assert w.kind.startswith("tr(")


@pytest.mark.parametrize("case", MINISCRIPT["valid"], ids=lambda v: v["descriptor"][:40])
def test_core_miniscript_descriptors(case):
    w = Watched.parse(case["descriptor"], network="mainnet")
    assert w.script_pubkey(0).hex() == case["script"]


def test_network_and_derivation_checks():
    xpub_case = next(v for v in CORE_MULTI if "xpub" in v["descriptor"] and not v["hardened"])
    with pytest.raises(NetworkMismatch, match="mainnet extended key"):
        Watched.parse(xpub_case["descriptor"], network="regtest")
    raw_case = next(v for v in CORE_MULTI if v["descriptor"].startswith("sh(wsh(multi(16"))
    raw = Watched.parse(raw_case["descriptor"], network="regtest")  # raw keys: any network
    assert raw.address().startswith("2") and raw.addresses(5, 3) == [(0, raw.address())]
    assert Watched.parse(raw_case["descriptor"], network="mainnet").address().startswith("3")
    with pytest.raises(InvalidDescriptor, match="count"):
        raw.addresses(0, 0)


def test_a_watched_descriptor_is_never_signed_for():
    """Fails before the fix for sign(): it raised AttributeError on anything but a Vault."""
    from msigvault.psbt.signer import prepare, sign
    from msigvault.testing.utxos import synthetic_utxo

    holder = TestKeyholder.from_label("watch-signer")
    v = Vault.multisig(1, [holder.cosigner("wsh")], script="wsh", network="regtest")
    w = Watched.parse(v.descriptors()[0], network="regtest")  # the very same scripts, watched
    psbt = v.create_psbt([synthetic_utxo(v, 50_000, index=0)], [(v.address(1), 40_000)], fee_rate=2.0,
                         change_index=0)
    with pytest.raises(SignerRefusal, match="expected a Vault"):
        sign(psbt, w, holder.root)
    with pytest.raises(SignerRefusal, match="expected a Vault"):
        prepare(psbt, w, fingerprint=holder.fingerprint)


def test_scan_finds_coins_of_fixed_ranged_and_multipath_descriptors(tmp_path):
    holders = [TestKeyholder.from_label(f"watch-{i}") for i in range(3)]
    keys = [str(h.cosigner("wsh")) for h in holders]
    ranged = Watched.parse(f"wsh(sortedmulti(2,{keys[0]}/<0;1>/*,{keys[1]}/<0;1>/*,{keys[2]}/7/*))",
                           network="regtest")
    raw_keys = [h.cosigner("wsh").pubkey_at(0, 0).hex() for h in holders]
    fixed = Watched.parse(f"sh(multi(2,{raw_keys[0]},{raw_keys[1]},{raw_keys[2]}))", network="regtest")
    with RegtestChain() as chain:
        chain.mine(101)
        chain.fund(ranged.address(3, 0), [10_000])
        chain.fund(ranged.address(17, 1), [20_000])  # change branch, within the gap of nothing used there
        chain.fund(ranged.address(40, 0), [40_000])  # beyond the gap after index 3: not found
        chain.fund(fixed.address(), [30_000, 5_000])
        r = scan_watched(ranged, RegtestBackend(chain), gap_limit=20)
        assert r.used == ((0, 3), (1, 17)) and r.total == 30_000
        assert {(c.branch, c.index, c.coin.amount) for c in r.coins} == {(0, 3, 10_000), (1, 17, 20_000)}
        r = scan_watched(ranged, RegtestBackend(chain), gap_limit=40)
        assert r.total == 70_000
        f = scan_watched(fixed, RegtestBackend(chain))
        assert f.total == 35_000 and {c.address for c in f.coins} == {fixed.address()}


def test_watch_command_derives_and_scans(tmp_path):
    from msigvault.cli import cli

    def run(*args, code=0):
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    case = next(v for v in CORE_MULTI if v["range"] and not v["hardened"])
    out = json.loads(run("watch", "derive", case["descriptor"], "-n", "mainnet", "--count", 3, "--json").stdout)
    assert [a["script_pubkey"] for a in out["addresses"]] == case["scripts"] and out["ranged"] is True
    holders = [TestKeyholder.from_label(f"watch-cli-{i}") for i in range(2)]
    raw = [h.cosigner("wsh").pubkey_at(0, 0).hex() for h in holders]
    desc = f"wsh(multi(1,{raw[0]},{raw[1]}))"
    (tmp_path / "legacy.desc").write_text(desc + "\n")
    address = run("watch", "derive", tmp_path / "legacy.desc", "-n", "regtest").stdout.strip()
    chain = tmp_path / "chain"
    run("regtest", "init", chain)
    run("regtest", "fund", chain, address, "12345")
    scan = json.loads(run("watch", "scan", desc, "-n", "regtest", "--chain", chain, "--json").stdout)
    assert scan["total"] == 12345 and scan["coins"][0]["address"] == address
    text = run("watch", "scan", desc, "-n", "regtest", "--chain", chain).stdout
    assert "watch-only: msigvault cannot sign for it" in text
    assert "not a multisig" in run("watch", "derive", "pkh(" + raw[0] + ")", "-n", "regtest", code=2).output
    assert "exactly one of" in run("watch", "scan", desc, "-n", "regtest", code=2).output
