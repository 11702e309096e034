"""Real vault files other wallets write, inconsistencies included (sources: tests/vectors/formats/README.md).

Jade's test files, Sparrow's multi-derivation and Keystone-style exports, Caravan's "Unknown" keys:
each imports, every inconsistency comes back as a typed warning on ``ImportedVault.warnings``, the
addresses are the ones an independent implementation (BDK, or the writing wallet itself) derives,
and only the keyholder whose own record is wrong is refused at signing. Electrum's wallet files
(import, export, refusals) and Specter DIY's ``addwallet`` line are here too.
"""

import hashlib
import json

import bdkpython as bdk
import pytest

from msigvault import Network, Vault
from msigvault.errors import MsigvaultError, SignerRefusal
from msigvault.formats import FormatError, FormatWarning, WarningCode, detect_format, export_vault, import_vault
from msigvault.keys.bip32 import ExtendedKey
from msigvault.keys.cosigner import Cosigner, OriginIssue
from msigvault.keys.paths import HARDENED, format_path
from msigvault.psbt.psbt import Psbt
from msigvault.psbt.signer import find_cosigner, sign
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo
from msigvault.vaultfile import VaultFile, load_vault_file

JADE_GOOD = ["bw", "jade", "nunchuk", "p2sh-p2wsh", "p2sh", "p2wsh-p2sh", "p2wsh", "sparrow", "specter"]
JADE_VARIANT = {"sh(multi(k))": "sh", "wsh(multi(k))": "wsh", "sh(wsh(multi(k)))": "sh-wsh"}
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))


def read(vectors, rel):
    return (vectors / rel).read_text()


def bdk_addresses(vault, count=3):
    """Receive addresses BDK derives from the vault's keys (the xpubs alone; origins play no part)."""
    keys = ",".join(f"{c.xpub}/0/*" for c in vault.cosigners)
    multi = f"{'sortedmulti' if vault.sorted else 'multi'}({vault.m},{keys})"
    desc = {"sh": "sh({})", "sh-wsh": "sh(wsh({}))", "wsh": "wsh({})"}[vault.script].format(multi)
    main = vault.network == Network.MAINNET
    d = bdk.Descriptor(desc, bdk.NetworkKind.MAIN if main else bdk.NetworkKind.TEST)
    return [str(d.derive_address(i, bdk.Network.BITCOIN if main else bdk.Network.TESTNET)) for i in range(count)]


# -- Provenance: each sample is the stored public copy, byte for byte -------------------------

#: Git blob ids of the stored copies these samples were read from with ``read_file`` (repository,
#: path and commit in tests/vectors/formats/README.md). Any edit to a sample changes its id.
STORED_BLOBS = {
    "jade/multisig_bad_file_duplicate_field2.dat": "9547bdb28234fdec213038363059adf5b823b3b4",
    "jade/multisig_bad_file_duplicate_field2.json": "c7c8a74ea6a36587eb1a7ff87ce14f101669ce53",
    "jade/multisig_file_bw.dat": "0915c0d8004b2d756338f761690a07753fd85c0d",
    "jade/multisig_file_bw.json": "3b39c347e81bfc7f1144f24c21c89eed73a69665",
    "jade/multisig_file_jade.dat": "1ed722dc5dabd200871762142b37717eabdfd515",
    "jade/multisig_file_jade.json": "434953da59c3fc1809dc8075a25b5b167d2b3656",
    "jade/multisig_file_nunchuk.dat": "a1434582dce5ce8833bf7ab81e0a0f1ab1b14bb0",
    "jade/multisig_file_nunchuk.json": "8170df21d7a6970a791d2976587be1fe18343365",
    "jade/multisig_file_p2sh-p2wsh.dat": "3937df027188e6aa93a8063a1f14de46cff5fd3a",
    "jade/multisig_file_p2sh-p2wsh.json": "a0227f3922204813dd01d894738badcdecb7b61a",
    "jade/multisig_file_p2sh.dat": "d341429b190fc0f9e1f357c28204e301a1399e7f",
    "jade/multisig_file_p2sh.json": "344b0892d6329f4820efa336104aceda7913d5fc",
    "jade/multisig_file_p2wsh-p2sh.dat": "db7d72ad6183bda746ff72f90be0987162811c73",
    "jade/multisig_file_p2wsh-p2sh.json": "bee2ae4be958756167168620cf1808afd160861a",
    "jade/multisig_file_p2wsh.dat": "ebbd0086612df145d3f7df29dca3a68c1b6e0e2d",
    "jade/multisig_file_p2wsh.json": "a8aad89b7b7073687666a74a01229b3cccce7338",
    "jade/multisig_file_sparrow.dat": "ed84e96bedacdb57bf15171da12e3cb54d9b9aa9",
    "jade/multisig_file_sparrow.json": "093eaaaff4c709e2f295b227aab2e610c6c3059a",
    "jade/multisig_file_specter.dat": "e3b415680820ef1bcc7e16ac8c5e525941d23ab9",
    "jade/multisig_file_specter.json": "ad5f1da9adb2868a0a596d267fc5f5f9b5224ea0",
    "electrum/client_2_9_3_multisig": "ac434e40ca194d7d2a7b32cf63bf3bd744b2c60e",
    "sparrow/electrum-encrypted": "bd62f807eda8fb1dfc396c0acc1dcb4f228ddf6b",
    "sparrow/electrum-multisig-wallet.json": "cd304af3e994f342c4bc02d7ebf06ef566c421a9",
    "sparrow/specter-diy-export.txt": "69c6aea1d0b2556956576e0a207ddd0970d42918",
}


def git_blob_id(data: bytes) -> str:
    """The id git gives a file with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.mark.parametrize("rel", sorted(STORED_BLOBS))
def test_sample_is_the_stored_copy_byte_for_byte(vectors, rel):
    assert git_blob_id((vectors / rel).read_bytes()) == STORED_BLOBS[rel]


def test_every_jade_and_electrum_sample_has_a_recorded_stored_copy(vectors):
    on_disk = {str(f.relative_to(vectors)) for d in ("jade", "electrum") for f in (vectors / d).iterdir()}
    assert on_disk == {rel for rel in STORED_BLOBS if rel.split("/")[0] in ("jade", "electrum")}


# -- Jade's multisig file tests (Blockstream/Jade test_data) ----------------------------------

@pytest.mark.parametrize("name", JADE_GOOD)
def test_jade_multisig_files_import_with_origin_warnings(vectors, name):
    text = read(vectors, f"jade/multisig_file_{name}.dat")
    expected = json.loads(read(vectors, f"jade/multisig_file_{name}.json"))["expected_result"]
    got = import_vault(text)
    v = got.vault
    # Jade registers the name with spaces as underscores, cut to 15 characters; msigvault keeps the file's
    assert got.format == "coldcard" and got.name.replace(" ", "_")[:15] == expected["multisig_name"]
    assert (v.m, v.n, v.sorted) == (expected["threshold"], expected["num_signers"], expected["sorted"])
    assert v.script == JADE_VARIANT[expected["variant"]] and v.network == Network.MAINNET
    assert v.addresses(0, 3) == bdk_addresses(v)
    assert all(isinstance(w, FormatWarning) for w in got.warnings)
    # one warning per origin check a key fails, naming that key, and nothing else about it
    for i, c in enumerate(v.cosigners, 1):
        codes = {w.code.value for w in got.warnings if w.key == i}
        assert codes == {issue.value for issue in c.origin_issues}, (i, codes)
        if c.key.depth != len(c.path):  # most of these files put depth-3 xpubs under 4-step paths
            assert any(f"has depth {c.key.depth} but the key origin path" in w.message and "refuse to sign" in w.message
                       for w in got.warnings if w.key == i)
    assert any(not c.origin_verified for c in v.cosigners) == (name != "sparrow")


def test_jade_duplicate_policy_line_refused(vectors):
    # Jade refuses a file that states its Policy twice; so does msigvault now, instead of taking the last
    with pytest.raises(FormatError, match="a second Policy line"):
        import_vault(read(vectors, "jade/multisig_bad_file_duplicate_field2.dat"))


@pytest.mark.parametrize("label,line", [("Policy", "Policy: 1 of 3"), ("Format", "Format: P2SH"),
                                        ("Name", "Name: other"), ("Sorted", "Sorted: true\nSorted: false")])
def test_coldcard_repeated_label_refused(make_vault, label, line):
    # regression: main read the last copy, while a device may read the first (another vault)
    text = export_vault(make_vault("wsh"), "coldcard", name="test")
    doubled = text.replace("Format: P2WSH\n", f"Format: P2WSH\n{line}\n")
    with pytest.raises(FormatError, match=f"a second {label} line"):
        import_vault(doubled, network="regtest")


# -- what a deviating record is, and who can still sign --------------------------------------

@pytest.fixture(scope="module")
def origin_case():
    """A 2-of-3 wsh vault whose third record names the wrong path: child 1h instead of 2h
    (Sparrow's multi-derivation export), or a depth-5 path for a depth-4 key (Jade's files)."""
    holders = [TestKeyholder.from_label(f"origin-{i}") for i in range(3)]
    good = Vault.multisig(2, [h.cosigner("wsh") for h in holders], network=Network.REGTEST)
    return holders, good


def coldcard_with_path(good, third_path):
    body = "Name: t\nPolicy: 2 of 3\nFormat: P2WSH\n\n"
    for c, p in zip(good.cosigners, [good.cosigners[0].path, good.cosigners[1].path, third_path]):
        body += f"Derivation: {format_path(p, hardened_marker=chr(39))}\n{c.fingerprint.hex().upper()}: {c.xpub}\n"
    return body


@pytest.mark.parametrize("kind", ["child", "depth"])
def test_only_the_keyholder_with_the_wrong_origin_is_refused_at_signing(origin_case, kind):
    holders, good = origin_case
    c3 = good.cosigners[2]
    third = c3.path[:-1] + (1 + HARDENED,) if kind == "child" else c3.path + (0,)
    got = import_vault(coldcard_with_path(good, third), network="regtest")
    vault = got.vault
    issue = OriginIssue.CHILD if kind == "child" else OriginIssue.DEPTH
    assert issue in vault.cosigners[2].origin_issues and issue.value in {w.code.value for w in got.warnings if w.key == 3}
    assert vault.addresses(0, 5) == good.addresses(0, 5)  # the same keys: watching works
    utxos = [synthetic_utxo(vault, a, index=i, seed=kind) for i, a in enumerate((200_000, 300_000))]
    psbt = vault.create_psbt(utxos, [(EXTERNAL, 400_000)], fee_rate=2.0, change_index=0)
    assert Psbt.parse(psbt.serialize()).serialize() == psbt.serialize()  # a PSBT BIP174 parsers accept
    for h in holders[:2]:
        signed, summary = sign(psbt, vault, h.root)
        assert summary.signed_inputs == 2
    # the third keyholder's key derived at the recorded path is not the recorded xpub: refused, saying why
    with pytest.raises(SignerRefusal, match="different xpub than this key derives.*key origin is wrong"):
        find_cosigner(vault, holders[2].root)
    with pytest.raises(SignerRefusal, match="key origin is wrong"):
        sign(psbt, vault, holders[2].root)


def test_unchecked_origin_records_what_failed(origin_case):
    holders, good = origin_case
    c = good.cosigners[0]
    wrong_child = c.path[:-1] + (1 + HARDENED,)
    with pytest.raises(MsigvaultError, match="child 2h but the path ends in 1h"):
        Cosigner(c.fingerprint, wrong_child, c.xpub)  # still refused by default
    rec = Cosigner.unchecked_origin(c.fingerprint, wrong_child, c.xpub)
    assert rec.origin_issues == (OriginIssue.CHILD,) and not rec.origin_verified
    assert Cosigner.unchecked_origin(c.fingerprint, c.path, c.xpub).origin_issues == ()  # nothing wrong
    bare = Cosigner.unchecked_origin(None, None, c.xpub)
    assert bare.origin_issues == (OriginIssue.UNKNOWN,) and bare.fingerprint == c.key.fingerprint
    assert str(bare) == c.xpub  # a bare xpub in descriptors, as BIP380 writes a key without origin
    # private keys are refused even unchecked
    with pytest.raises(MsigvaultError, match="private"):
        Cosigner.unchecked_origin(None, None, holders[0].root.to_base58())


def test_saved_vault_keeps_its_origin_issues(origin_case, tmp_path):
    holders, good = origin_case
    c3 = good.cosigners[2]
    got = import_vault(coldcard_with_path(good, c3.path + (0,)), network="regtest")
    VaultFile(got.vault, "imported").save(tmp_path / "v.json")
    obj = json.loads((tmp_path / "v.json").read_text())
    assert obj["origin_issues"] == ["origin-child-mismatch", "origin-depth-mismatch"]
    again = load_vault_file(tmp_path / "v.json").vault
    assert again == got.vault and again.cosigners[2].origin_issues == got.vault.cosigners[2].origin_issues
    # a file whose descriptor has an origin problem it does not list is refused
    obj["origin_issues"] = ["origin-depth-mismatch"]
    (tmp_path / "w.json").write_text(json.dumps(obj))
    with pytest.raises(MsigvaultError, match="origin-child-mismatch"):
        load_vault_file(tmp_path / "w.json")
    # and an ordinary vault file carries no such field
    VaultFile(good, "plain").save(tmp_path / "p.json")
    assert "origin_issues" not in json.loads((tmp_path / "p.json").read_text())


def test_caravan_keys_with_unknown_fingerprints_stay_distinct(make_vault):
    # Caravan writes "xfp": "00000000" (or "") for a key whose master fingerprint it does not know;
    # two such keys at the same path are two keyholders, not one seed twice
    vault = make_vault("wsh")
    obj = json.loads(export_vault(vault, "caravan"))
    obj["extendedPublicKeys"][0]["xfp"] = "00000000"
    obj["extendedPublicKeys"][1]["xfp"] = ""
    got = import_vault(json.dumps(obj))
    assert [(w.code, w.key) for w in got.warnings if w.key] == [(WarningCode.FINGERPRINT_UNKNOWN, 1),
                                                                (WarningCode.FINGERPRINT_UNKNOWN, 2)]
    first, second = got.vault.cosigners[:2]
    assert first.fingerprint == first.key.fingerprint and second.fingerprint == second.key.fingerprint
    assert got.vault.addresses(0, 3) == vault.addresses(0, 3)
    for fmt in ("descriptor", "caravan", "electrum", "bip388", "bsms"):
        again = import_vault(export_vault(got.vault, fmt), network="regtest")
        assert again.vault == got.vault and WarningCode.FINGERPRINT_UNKNOWN in again.warning_codes(), fmt
    assert json.loads(export_vault(got.vault, "caravan"))["extendedPublicKeys"][0]["xfp"] == "00000000"
    with pytest.raises(FormatError, match="no known key origin"):
        export_vault(got.vault, "coldcard")


# -- Electrum ---------------------------------------------------------------------------------

def test_electrum_sample_from_sparrow(vectors):
    text = read(vectors, "sparrow/electrum-multisig-wallet.json")
    assert detect_format(text) == "electrum"
    got = import_vault(text, network="testnet")
    v = got.vault
    assert got.format == "electrum" and got.name is None
    assert (v.m, v.n, v.script, v.sorted) == (2, 4, "sh-wsh", True)
    # Sparrow's ElectrumTest.testMultisigImport asserts these for keystore x2/
    x2 = v.cosigners[1]
    assert (x2.fingerprint.hex(), format_path(x2.path, hardened_marker="'")) == ("6ba6cfd0", "m/48'/1'/0'/1'")
    assert x2.xpub == "tpubDFcrvj5n7gyatVbr8dHCUfHT4CGvL8hREBjtxc4ge7HZgqNuPhFimPRtVg6fRRwfXiQthV9EBjNbwbpgV2VoQeL1ZNXoAWXxP2L9vMtRjax"
    assert v.cosigners[3].fingerprint.hex() == "7bb026be"
    assert [w.code for w in got.warnings] == [WarningCode.SCRIPT_FROM_KEYS]
    # the same wallet as Coldcard's own "Electrum Wallet" export
    assert v == import_vault(read(vectors, "coldcard/el-p2sh-p2wsh-myself.json"), network="testnet").vault


def test_electrum_wallet_with_seed_refused_and_its_watch_only_copy_matches_electrums_addresses(vectors):
    text = read(vectors, "electrum/client_2_9_3_multisig")
    obj = json.loads(text)
    with pytest.raises(FormatError, match="private keys or a seed") as e:
        import_vault(text)
    assert obj["x1/"]["seed"].split()[0] not in str(e.value) and obj["x1/"]["xprv"][4:20] not in str(e.value)
    # the same wallet without the seed (what Electrum's "watch-only copy" holds): its addresses are
    # the ones Electrum computed and stored in the file
    watch = dict(obj, **{"x1/": {"type": "bip32", "xpub": obj["x1/"]["xpub"], "xprv": None}})
    got = import_vault(json.dumps(watch))
    v = got.vault
    assert (v.m, v.n, v.script, v.network) == (2, 2, "sh", Network.MAINNET)
    receiving, change = obj["addresses"]["receiving"], obj["addresses"]["change"]
    assert v.addresses(0, len(receiving)) == receiving
    assert v.addresses(0, len(change), change=True) == change
    # Electrum 2.9 wrote master xpubs (depth 0, no derivation): consistent origins, no origin warnings
    assert all(c.origin_verified and c.path == () for c in v.cosigners)


def test_electrum_encrypted_file_refused(vectors):
    text = read(vectors, "sparrow/electrum-encrypted")
    assert detect_format(text) == "electrum"
    with pytest.raises(FormatError, match="encrypted with its password.*never asks for wallet passwords"):
        import_vault(text)
    # use_encryption true: a JSON file whose private keys are encrypted
    obj = json.loads(read(vectors, "coldcard/el-p2sh-myself.json"))
    with pytest.raises(FormatError, match="use_encryption"):
        import_vault(json.dumps(dict(obj, use_encryption=True)), network="testnet")


def test_electrum_export_is_what_electrum_reads(make_vault):
    for script, prefix in (("sh", "tpub"), ("sh-wsh", "Upub"), ("wsh", "Vpub")):
        vault = make_vault(script)
        obj = json.loads(export_vault(vault, "electrum"))
        assert obj["wallet_type"] == "2of3" and obj["use_encryption"] is False and obj["seed_version"] == 17
        for i, c in enumerate(vault.cosigners, 1):
            ks = obj[f"x{i}/"]
            assert ks["type"] == "bip32" and ks["xprv"] is None and ks["xpub"].startswith(prefix)
            assert ks["root_fingerprint"] == c.fingerprint.hex() and ks["derivation"] == format_path(c.path)
            assert ExtendedKey.parse(ks["xpub"]).neuter().to_base58() == c.xpub
        assert import_vault(json.dumps(obj), network="regtest").vault == vault
    main = make_vault("wsh", network=Network.MAINNET, label="el-main")
    assert json.loads(export_vault(main, "electrum"))["x1/"]["xpub"].startswith("Zpub")


def test_electrum_refusals(vectors):
    obj = json.loads(read(vectors, "coldcard/el-p2sh-myself.json"))
    cases = [
        (dict(obj, wallet_type="standard"), "single-signature"),
        (dict(obj, wallet_type="2of16"), "1 to 15 keys"),
        (dict(obj, wallet_type="2-of-4"), "MofN"),
        (dict(obj, **{"x5/": obj["x1/"]}), "other keystores"),
        (dict(obj, **{"x1/": dict(obj["x1/"], type="imported")}), "no extended public key"),
        (dict(obj, **{"x1/": dict(obj["x1/"], seed="abandon " * 11 + "about")}), "private keys or a seed"),
        (dict(obj, **{"x1/": dict(obj["x1/"], ckcc_xfp="f00d")}), "32-bit number"),
        (dict(obj, **{"x1/": dict(obj["x1/"], root_fingerprint="xyz")}), "8 hex digits"),
    ]
    for bad, match in cases:
        with pytest.raises(FormatError, match=match):
            import_vault(json.dumps(bad), network="testnet", fmt="electrum")
    with pytest.raises(FormatError, match="before 2.7"):  # Electrum 2.0-2.6 files keep keys elsewhere
        import_vault(json.dumps({"wallet_type": "2of2", "seed_version": 11, "master_public_keys": {}}))
    # a watch-only keystore dump carries "xprv": null: that is not a private key
    ok = dict(obj, **{"x1/": dict(obj["x1/"], xprv=None, seed=None)})
    assert import_vault(json.dumps(ok), network="testnet").vault.n == 4


def test_electrum_keystore_without_origin_is_watchable(make_vault):
    vault = make_vault("wsh")
    obj = json.loads(export_vault(vault, "electrum"))
    obj["x2/"] = {"type": "bip32", "xpub": obj["x2/"]["xpub"], "xprv": None, "derivation": None, "root_fingerprint": None}
    got = import_vault(json.dumps(obj), network="regtest")
    assert got.vault.addresses(0, 3) == vault.addresses(0, 3)
    assert [(w.code, w.key) for w in got.warnings if w.key] == [(WarningCode.ORIGIN_UNKNOWN, 2)]
    # exported again, the unknown origin stays unknown (null), not invented
    again = json.loads(export_vault(got.vault, "electrum"))["x2/"]
    assert again["derivation"] is None and again["root_fingerprint"] is None
    with pytest.raises(FormatError, match="no known key origin"):
        export_vault(got.vault, "coldcard")
    caravan = json.loads(export_vault(got.vault, "caravan"))["extendedPublicKeys"][1]
    assert (caravan["bip32Path"], caravan["xfp"]) == ("Unknown", "00000000")  # Caravan's own convention
    assert import_vault(export_vault(got.vault, "caravan")).vault == got.vault


# -- Specter DIY ------------------------------------------------------------------------------

def test_specter_diy_addwallet_line_with_spaces_in_the_name(vectors):
    text = read(vectors, "sparrow/specter-diy-export.txt")
    assert detect_format(text) == "specter"
    got = import_vault(text)
    v = got.vault
    assert got.name == "Sparrow Multisig" and (v.m, v.n, v.script) == (2, 3, "wsh")
    assert got.warning_codes() == {WarningCode.IMPLIED_BRANCH, WarningCode.NO_CHECKSUM}
    assert v.addresses(0, 3) == bdk_addresses(v)
    # exported again it is the line Sparrow wrote (SpecterDIYTest compares its export the same way)
    assert export_vault(v, "specter", name=got.name, form="diy") == text


def test_specter_diy_forms(make_vault):
    vault = make_vault("wsh")
    line = export_vault(vault, "specter", name="Ops vault", form="diy")
    assert line.startswith("addwallet Ops vault&wsh(sortedmulti(2,[")
    assert import_vault(line, network="regtest").vault == vault
    native = f"addwallet Ops vault&{vault.descriptor(checksum=False).replace('<0;1>', '{0,1}')}\n"
    assert import_vault(native, network="regtest").vault == vault  # Specter DIY's own /{0,1}/* notation
    with pytest.raises(FormatError, match="no '&'"):
        import_vault("addwallet Ops vault " + vault.descriptor(), network="regtest")
    with pytest.raises(FormatError, match="cannot contain '&'"):
        export_vault(vault, "specter", name="a&b", form="diy")
