"""Real files from the projects that write them (tests/vectors/formats/README.md names each source).

Each one imports to the descriptor its source states, or to addresses an independent
implementation (BDK, embit) derives from the source's own data; files the sources themselves mark
as bad, and files msigvault finds inconsistent, are refused with the error that names the problem.
"""

import json
import re

import bdkpython as bdk
import pytest
from embit.descriptor import Descriptor as EmbitDescriptor
from embit.networks import NETWORKS as EMBIT_NETWORKS

from msigvault import Network, Vault
from msigvault.errors import InvalidAddress, InvalidDescriptor, InvalidKey, NetworkMismatch, PolicyError
from msigvault.formats import (
    FormatError,
    WarningCode,
    cosigner_from_xpub_export,
    detect_format,
    import_cosigner,
    import_vault,
)
from msigvault.keys.bip32 import ExtendedKey
from msigvault.policy.checksum import split_checksum


def read(vectors, rel):
    return (vectors / rel).read_text()


def bdk_addresses(desc, network, count=3):
    kind = bdk.NetworkKind.MAIN if network == Network.MAINNET else bdk.NetworkKind.TEST
    net = {"mainnet": bdk.Network.BITCOIN, "testnet": bdk.Network.TESTNET, "signet": bdk.Network.SIGNET,
           "regtest": bdk.Network.REGTEST}[network.name]
    d = bdk.Descriptor(desc, kind)
    return [str(d.derive_address(i, net)) for i in range(count)]


# -- Coldcard firmware: testing/data/multisig -------------------------------------------------

@pytest.mark.parametrize("export,desc,script", [
    ("export-p2wsh-myself.txt", "desc-p2wsh-myself.txt", "wsh"),
    ("export-p2sh-p2wsh-myself.txt", "desc-p2sh-p2wsh-myself.txt", "sh-wsh"),
    ("export-p2sh-myself.txt", "desc-p2sh-myself.txt", "sh"),
])
def test_coldcard_setup_files_match_coldcards_own_descriptors(vectors, export, desc, script):
    text = read(vectors, f"coldcard/{export}")
    assert detect_format(text) == "coldcard"
    got = import_vault(text, network="testnet")
    assert got.format == "coldcard" and got.name == "CC-2-of-4"
    assert (got.vault.m, got.vault.n, got.vault.script, got.vault.sorted) == (2, 4, script, True)
    stated = read(vectors, f"coldcard/{desc}").strip()
    # Coldcard wrote this descriptor for the same wallet: ours is identical, checksum included
    assert got.vault.descriptor(0) == stated
    from_desc = import_vault(stated, network="testnet")
    assert from_desc.format == "descriptor" and from_desc.vault == got.vault
    assert bdk_addresses(stated, Network.TESTNET, 5) == got.vault.addresses(0, 5)
    # Coldcard writes a Format line except for P2SH, its default; its P2SH keys are BIP45 m/45h,
    # which has no coin type, so on a test network the same keys serve mainnet too
    if script != "sh":
        assert got.warnings == ()
    else:
        assert [(w.code, w.message) for w in got.warnings][0] == (
            WarningCode.ASSUMED_DEFAULT, "coldcard: no Format line: P2SH assumed (Coldcard's default)")
        assert got.warning_codes() == {WarningCode.ASSUMED_DEFAULT, WarningCode.UNSEPARATED_TEST_KEYS}


def test_coldcard_export_reproduces_coldcards_file(vectors):
    from msigvault.formats import export_vault

    original = read(vectors, "coldcard/export-p2sh-p2wsh-myself.txt")
    vault = import_vault(original, network="testnet").vault
    ours = export_vault(vault, "coldcard", name="CC-2-of-4", header="created on 0F056943")
    assert ours == original


def test_coldcard_obsolete_format_alias_and_swapped_fingerprints(vectors):
    # an old Coldcard export: Format P2WSH-P2SH (now an alias) and fingerprints printed byte-swapped
    got = import_vault(read(vectors, "coldcard/export-p2wsh-p2sh-myself.txt"), network="testnet")
    ref = import_vault(read(vectors, "coldcard/export-p2sh-p2wsh-myself.txt"), network="testnet").vault
    assert got.vault.script == "sh-wsh"
    assert [c.fingerprint.hex() for c in got.vault.cosigners] == ["4369050f", "be26b07b", "d0cfa66b", "8e697b74"]
    assert {c.xpub for c in got.vault.cosigners} == {c.xpub for c in ref.cosigners}
    assert got.vault.addresses(0, 5) == ref.addresses(0, 5)  # same keys, BIP67: same addresses
    assert not got.vault.same_policy(ref)  # but not the same key origins


def test_coldcard_xpub_export(vectors):
    text = read(vectors, "coldcard/ccxp-0F056943.json")
    with pytest.raises(FormatError, match="Export XPUB"):
        import_vault(text)
    ref = {
        "wsh": import_vault(read(vectors, "coldcard/export-p2wsh-myself.txt"), network="testnet").vault,
        "sh-wsh": import_vault(read(vectors, "coldcard/export-p2sh-p2wsh-myself.txt"), network="testnet").vault,
        "sh": import_vault(read(vectors, "coldcard/export-p2sh-myself.txt"), network="testnet").vault,
    }
    for script, vault in ref.items():
        cosigner = cosigner_from_xpub_export(text, script, network="testnet")
        assert cosigner == vault.cosigners[0]
    assert import_cosigner(text, script="sh-wsh") == ref["sh-wsh"].cosigners[0]
    # the file's SLIP-132 keys are the ones for their script types
    obj = json.loads(text)
    assert ExtendedKey.parse(obj["p2sh_p2wsh"]).prefix == "Upub" and ExtendedKey.parse(obj["p2wsh"]).prefix == "Vpub"
    # asking a P2WSH (Vpub) key for P2SH-P2WSH is refused
    swapped = dict(obj, p2sh_p2wsh=obj["p2wsh"], p2sh_p2wsh_deriv=obj["p2wsh_deriv"])
    with pytest.raises(FormatError, match="Vpub"):
        cosigner_from_xpub_export(json.dumps(swapped), "sh-wsh")
    # a derivation that does not fit the key, and a desc field that names another fingerprint
    with pytest.raises(InvalidKey, match="child 2h but the path ends in 1h"):
        cosigner_from_xpub_export(json.dumps(dict(obj, p2wsh_deriv="m/48'/1'/0'/1'")), "wsh")
    tampered = dict(obj, p2wsh_desc=obj["p2wsh_desc"].replace("[0f056943/", "[0f056944/"))
    with pytest.raises(FormatError, match="names another key, fingerprint or path"):
        cosigner_from_xpub_export(json.dumps(tampered), "wsh")


def test_coldcard_doc_bitcoin_core_2of2(vectors):
    meta = json.loads(read(vectors, "coldcard/bitcoin-core2of2desc.json"))
    got = import_vault(meta["descriptor"], network=meta["network"])
    assert got.format == "descriptor"
    assert got.vault.addresses(0, 3) == meta["receive_addresses"]
    assert [c.fingerprint.hex() for c in got.vault.cosigners] == ["0f056943", "64366408"]


# -- BIP129 test vectors (bitcoin/bips) -------------------------------------------------------

@pytest.mark.parametrize("mode", ["no_encryption", "standard", "extended"])
def test_bip129_descriptor_records(vectors, mode):
    meta = json.loads(read(vectors, "bip129/vectors.json"))["modes"][mode]
    text = read(vectors, f"bip129/{mode}/my_multisig_wallet.bsms")
    got = import_vault(text)
    assert got.format == "bsms" and got.warnings == ()
    v = got.vault
    assert (v.m, v.n, v.network) == (meta["m"], meta["n"], Network.MAINNET)
    assert v.script == {"NATIVE_SEGWIT": "wsh", "NESTED_SEGWIT": "sh-wsh"}[meta["address_type"]]
    assert [c.fingerprint.hex() for c in v.cosigners] == [s["fingerprint"] for s in meta["signers"]]
    assert [c.xpub for c in v.cosigners] == [s["xpub"] for s in meta["signers"]]
    assert v.address(0) == meta["first_address"]
    # BDK derives the same first address from the BIP's template with /** expanded per its restrictions
    template = text.split("\n")[1]
    assert bdk_addresses(template.replace("/**", "/0/*"), Network.MAINNET, 1) == [meta["first_address"]]
    assert v.sorted == ("sortedmulti" in template)
    for enc in meta.get("descriptor_record_encrypted", []):
        data = read(vectors, f"bip129/{mode}/{enc['file']}")
        assert enc["mac"] == data[:64]
        assert import_vault(data, token=enc["token"]).vault == v
        with pytest.raises(FormatError, match="pass token"):
            import_vault(data)


def test_bip129_raw_pubkey_vector(vectors):
    meta = json.loads(read(vectors, "bip129/vectors.json"))["modes"]["no_encryption_pubkeys"]
    text = read(vectors, "bip129/no_encryption_pubkeys/my_multisig_wallet.bsms")
    desc = text.split("\n")[1]
    split_checksum(desc)  # the BIP's checksum is right
    bdk_desc = bdk.Descriptor(desc, bdk.NetworkKind.MAIN)
    assert str(bdk_desc.derive_address(0, bdk.Network.BITCOIN)) == meta["first_address"]
    # but a raw-pubkey wallet has one address only: not a vault
    with pytest.raises(InvalidKey, match="raw public key"):
        import_vault(text)


# -- Caravan (caravan-bitcoin/caravan caravan-rs tests) ---------------------------------------

CARAVAN = ["P2SH-M.json", "P2SH-T.json", "P2SH-P2WSH-M.json", "P2SH-P2WSH-T.json", "P2WSH-M.json", "P2WSH-T.json"]


@pytest.mark.parametrize("name", CARAVAN)
def test_caravan_configs(vectors, name):
    expected = json.loads(read(vectors, "caravan/expected.json"))["configs"][name]
    text = read(vectors, f"caravan/{name}")
    got = import_vault(text)
    assert got.format == "caravan" and got.name == name[:-5] and got.warnings == ()
    assert got.vault.network == Network.from_name(expected["network"])
    assert got.vault.addresses(0, 3) == expected["addresses"]
    # the descriptors caravan-rs states for the same config
    net = got.vault.network
    assert Vault.from_descriptor(expected["external"], network=net) == got.vault
    assert import_vault(expected["external"] + "\n" + expected["internal"] + "\n", network=net).vault == got.vault
    internal, _ = split_checksum(expected["internal"])
    assert Vault.from_descriptor(internal, network=net, require_checksum=False) == got.vault


def test_caravan_descriptor_pair(vectors):
    pair = json.loads(read(vectors, "caravan/expected.json"))["descriptor_pair"]
    got = import_vault(f"{pair['external']}\n{pair['internal']}\n")
    assert got.format == "descriptor" and got.warnings == ()
    v = got.vault
    assert (v.m, v.script, v.network) == (2, "sh", Network.MAINNET)
    assert [(c.fingerprint.hex(), c.xpub) for c in v.cosigners] == [(k["xfp"], k["xpub"]) for k in pair["keys"]]
    # the change descriptor alone is enough, with a warning
    alone = import_vault(pair["internal"])
    assert alone.vault == v and [w.code for w in alone.warnings if "only the change" in w.message] == [
        WarningCode.IMPLIED_BRANCH]


def test_caravan_unknown_paths_imported_with_warnings(vectors):
    # Caravan's own wallet.json: both keys "Unknown (make sure you have written this down
    # previously!)" with xfp "": each key is recorded as its own root (a bare xpub in descriptors)
    text = read(vectors, "caravan/wallet.json")
    got = import_vault(text)
    obj = json.loads(text)
    assert got.vault.network == Network.REGTEST and (got.vault.m, got.vault.n, got.vault.script) == (1, 2, "sh-wsh")
    assert [c.xpub for c in got.vault.cosigners] == [k["xpub"] for k in obj["extendedPublicKeys"]]
    assert [(w.code, w.key) for w in got.warnings if w.key] == [(WarningCode.ORIGIN_UNKNOWN, 1),
                                                                (WarningCode.ORIGIN_UNKNOWN, 2)]
    assert all("bip32Path is unknown" in w.message and "refuse to sign" in w.message for w in got.warnings if w.key)
    for c in got.vault.cosigners:
        assert c.fingerprint == c.key.fingerprint and c.path == () and not c.origin_verified
    # the descriptor names the keys without origin, and BDK derives the same addresses from it
    desc = got.vault.descriptor(0)
    assert "[" not in desc
    assert bdk_addresses(desc, Network.REGTEST) == got.vault.addresses(0, 3)


# -- Sparrow's test resources -----------------------------------------------------------------

def _bip129(vectors, mode):
    return import_vault(read(vectors, f"bip129/{mode}/my_multisig_wallet.bsms")).vault


def test_sparrow_bsms_accepted(vectors):
    s = lambda n: read(vectors, f"sparrow/bsms/multisig-{n}.bsms")  # noqa: E731
    one = import_vault(s(1)).vault
    assert one.address(0) == "bc1qfagqa83vrv9phj0886rlx6d68zzd7gejtr0ns8xxfeckve27397q6vq47w"
    ne = _bip129(vectors, "no_encryption")
    assert import_vault(s(2)).vault == ne  # BIP129 vector as Sparrow ships it
    assert import_vault(s(4)).vault == ne  # upper-case bech32 first address
    six = import_vault(s(6))  # template, "No path restrictions": /** read as BIP388 /<0;1>/*
    assert six.vault == ne and [w.code for w in six.warnings] == [WarningCode.ASSUMED_DEFAULT]
    eight = import_vault(s(8))  # keys fixed at /0/0: the first address is checked there
    assert eight.vault == ne and "one address" in eight.warnings[0].message
    twelve = import_vault(s(12))  # keys fixed at /1/3: change index 3
    assert twelve.vault == ne
    assert twelve.vault.change_address(3) == "bc1qr47z3tyaep62u4v3tjwj3gre5aqje242g0aarp0gurnltwpswa0svqrv9y"
    sixteen = import_vault(s(16))  # blank restrictions line: still address-checked
    assert sixteen.vault == ne and "blank" in sixteen.warnings[0].message
    # BIP129's EXTENDED vector uses multi() (key order matters); Sparrow sorts the keys and refuses
    # it, msigvault keeps the order and the first address matches
    three = import_vault(s(3)).vault
    assert three == _bip129(vectors, "extended") and not three.sorted
    ten = import_vault(s(10)).vault  # the same keys, sortedmulti, fixed /0/0
    assert ten.sorted and ten.address(0) == "3MmNkJ3e67jDGNwGL7yQ886T192Bbb81zP"
    assert {c.xpub for c in ten.cosigners} == {c.xpub for c in three.cosigners}


@pytest.mark.parametrize("name,error,match", [
    ("multisig-5.bsms", FormatError, "path restrictions"),
    ("multisig-7.bsms", FormatError, "first address"),
    ("multisig-9.bsms", FormatError, "is not the vault's address"),
    ("multisig-11.bsms", InvalidDescriptor, "derivation msigvault does not use"),
    ("multisig-13.bsms", InvalidDescriptor, "derivation msigvault does not use"),
    ("multisig-14.bsms", FormatError, "does not provide a first address"),
    ("multisig-15.bsms", FormatError, "is not the vault's address"),
    ("multisig-17.bsms", InvalidAddress, "not-an-address"),
    ("multisig-threshold-zero.bsms", PolicyError, "threshold"),
    ("multisig-address-mismatch.bsms", FormatError, "is not the vault's address"),
])
def test_sparrow_bsms_refused(vectors, name, error, match):
    with pytest.raises(error, match=match):
        import_vault(read(vectors, f"sparrow/bsms/{name}"))


def test_sparrow_caravan_exports(vectors):
    text = read(vectors, "sparrow/caravan-multisig-export-1.json")
    got = import_vault(text)
    assert got.format == "caravan" and got.name == "Test Wallet"
    obj = json.loads(text)
    keys = ",".join(f"[{k['xfp']}/{k['bip32Path'][2:]}]{k['xpub']}/0/*" for k in obj["extendedPublicKeys"])
    assert got.vault.addresses(0, 3) == bdk_addresses(f"wsh(sortedmulti(2,{keys}))", Network.MAINNET)
    with pytest.raises(PolicyError, match="threshold"):
        import_vault(read(vectors, "sparrow/caravan-multisig-export-2.json"))
    with pytest.raises(FormatError, match="totalSigners is 3, but the file lists 2"):
        import_vault(read(vectors, "sparrow/caravan-multisig-export-3.json"))


def test_sparrow_coldcard_files(vectors):
    two = import_vault(read(vectors, "sparrow/cc-multisig-export-2.txt"), network="testnet")
    assert two.vault == import_vault(read(vectors, "coldcard/export-p2sh-p2wsh-myself.txt"), network="testnet").vault
    # mainnet xpubs under a testnet (coin type 1) derivation: read as the file states, with a warning
    one = import_vault(read(vectors, "sparrow/cc-multisig-export-1.txt"))
    assert one.vault.network == Network.MAINNET and one.warning_codes() == {WarningCode.COIN_TYPE_MISMATCH}
    assert "coin type 1" in one.warnings[0].message
    # the keys are those of Coldcard's own export of this wallet (on testnet), re-encoded as xpubs
    ref = import_vault(read(vectors, "coldcard/export-p2wsh-myself.txt"), network="testnet").vault
    assert [c.public_key for c in one.vault.cosigners] == [c.public_key for c in ref.cosigners]
    assert [c.path for c in one.vault.cosigners] == [c.path for c in ref.cosigners]
    with pytest.raises(FormatError, match="2 of 4, but the file lists 3"):
        import_vault(read(vectors, "sparrow/cc-multisig-export-missingkey.txt"))
    # the third key is the xpub at .../2h, but its Derivation line (or '# derivation:' comment) says
    # .../1h: Sparrow imports these files; msigvault too, warning about that key only
    for name in ("cc-multisig-export-multideriv.txt", "cc-multisig-export-nopolicy.txt",
                 "external-cc-multisig-export-multideriv.txt"):
        got = import_vault(read(vectors, f"sparrow/{name}"))
        keyed = [w for w in got.warnings if w.key]
        assert {w.key for w in keyed} == {3} and WarningCode.ORIGIN_CHILD_MISMATCH in {w.code for w in keyed}, name
        # (one file also names the BIP48 P2SH-P2WSH path .../1h for that key of its P2WSH wallet)
        assert {w.code for w in keyed} <= {WarningCode.ORIGIN_CHILD_MISMATCH, WarningCode.PATH_SCRIPT_MISMATCH}
        assert any("child 2h but the path ends in 1h" in w.message for w in keyed)
        assert [c.origin_verified for c in got.vault.cosigners] == [True, True, False]


def test_per_key_derivations_from_sparrow_file(vectors):
    # the multi-derivation file with its inconsistent third key dropped imports with per-key paths
    text = read(vectors, "sparrow/external-cc-multisig-export-multideriv.txt")
    kept = text.split("\n\n# derivation: m/48'/0'/0'/1'")[0].replace("3 of 3", "2 of 2") + "\n"
    got = import_vault(kept)
    assert [c.fingerprint.hex() for c in got.vault.cosigners] == ["06b57041", "4b569672"]
    assert all(c.path == (48 + 2**31, 2**31, 2**31, 2 + 2**31) for c in got.vault.cosigners)


def test_sparrow_specter_files(vectors):
    text = read(vectors, "sparrow/specter-multisig-wallet.json")
    got = import_vault(text)
    assert got.format == "specter" and got.name == "specter-multisig"
    v = got.vault
    assert (v.m, v.n, v.script, v.sorted) == (3, 4, "wsh", False)
    # Specter's keys carry no derivation; Specter and Sparrow read them as /0/* (receive): BDK agrees
    desc = json.loads(text)["descriptor"]
    receive = re.sub(r"(xpub[1-9A-HJ-NP-Za-km-z]+)", r"\1/0/*", desc)
    assert v.addresses(0, 3) == bdk_addresses(receive, Network.MAINNET)
    assert [w.code for w in got.warnings if "no derivation" in w.message] == [WarningCode.IMPLIED_BRANCH]
    with pytest.raises(InvalidDescriptor, match="not a multisig vault"):
        import_vault(read(vectors, "sparrow/specter-wallet.json"))


@pytest.mark.parametrize("name", ["descriptor-multipath.txt", "descriptor-receive-change1.txt",
                                  "descriptor-receive-change2.txt", "descriptor-receive.txt",
                                  "descriptor-labelled.txt"])
def test_sparrow_single_sig_descriptors_refused(vectors, name):
    text = read(vectors, f"sparrow/{name}")
    for line in text.split("\n"):
        if line.strip():
            split_checksum(line.split(": ")[-1].strip())  # copied exactly: the checksums verify
            EmbitDescriptor.from_string(line.split(": ")[-1].strip())
    with pytest.raises(InvalidDescriptor, match=r"wpkh\(\.\.\.\) is not a vault descriptor"):
        import_vault(text)


# -- FullyNoded / Specter ---------------------------------------------------------------------

def test_fullynoded_export_imported_with_its_key_origins_flagged(vectors):
    text = read(vectors, "specter/fullynoded-wallet-export.json")
    assert detect_format(text) == "specter"
    desc = json.loads(text)["descriptor"]
    key = re.search(r"\](tpub[1-9A-HJ-NP-Za-km-z]+)", desc).group(1)
    assert ExtendedKey.parse(key).depth == 3  # but the origin [73756c7f/48h/0h/0h/2h] has 4 steps
    got = import_vault(text, network="testnet")
    depth = [w for w in got.warnings if w.code is WarningCode.ORIGIN_DEPTH_MISMATCH]
    assert depth and depth[0].key == 1
    assert "depth 3 but the key origin path m/48h/0h/0h/2h has 4 steps" in depth[0].message
    assert WarningCode.COIN_TYPE_MISMATCH in got.warning_codes()  # tpubs under coin type 0
    # the keys are what they are: BDK derives the same addresses from the file's descriptor
    assert got.vault.addresses(0, 3) == bdk_addresses(split_checksum(desc, require=False)[0], Network.TESTNET)


# -- BIP388 test vectors ----------------------------------------------------------------------

def test_bip388_vectors(vectors):
    data = json.loads(read(vectors, "bip388/vectors.json"))
    for case in data["valid"]:
        policy = json.dumps({"descriptor_template": case["template"], "keys_info": case["keys_info"]})
        if case["msigvault"] == "vault":
            got = import_vault(policy)
            assert got.format == "bip388"
            assert got.vault == Vault.from_descriptor(case["descriptor"], require_checksum=False)
            assert got.vault.addresses(0, 3) == bdk_addresses(case["descriptor"].replace("<0;1>", "0"), Network.MAINNET)
            emb = EmbitDescriptor.from_string(case["descriptor"])
            assert emb.derive(1, branch_index=1).address(EMBIT_NETWORKS["main"]) == got.vault.change_address(1)
        else:
            with pytest.raises((FormatError, InvalidDescriptor)):
                import_vault(policy)


# -- Coldcard's "Electrum Wallet" multisig export (testing/data/multisig/el-*.json) -----------

def test_coldcard_electrum_json_export(vectors):
    p2sh = import_vault(read(vectors, "coldcard/el-p2sh-myself.json"), network="testnet")
    assert p2sh.format == "electrum" and p2sh.vault.script == "sh"  # Coldcard writes Electrum's format
    assert import_vault(read(vectors, "coldcard/el-p2sh-myself.json"), network="testnet", fmt="coldcard").vault == p2sh.vault
    # ckcc_xfp is little-endian: the depth-1 BIP45 keys' parent fingerprints confirm it, and the
    # wallet is the one of Coldcard's text export, keys in another order
    text_export = import_vault(read(vectors, "coldcard/export-p2sh-myself.txt"), network="testnet").vault
    assert sorted(map(str, p2sh.vault.cosigners)) == sorted(map(str, text_export.cosigners))
    assert p2sh.vault.addresses(0, 5) == text_export.addresses(0, 5)
    nested = import_vault(read(vectors, "coldcard/el-p2sh-p2wsh-myself.json"), network="testnet")
    assert nested.vault.script == "sh-wsh" and nested.vault.m == 2 and nested.vault.n == 4
    ccxp = read(vectors, "coldcard/ccxp-0F056943.json")
    assert nested.vault.cosigners[0] == cosigner_from_xpub_export(ccxp, "sh-wsh")
    # two of Coldcard's test files list the same key twice (x1/ and x3/): one keyholder would count twice
    for name in ("el-p2wsh-myself.json", "el-p2wsh-p2sh-myself.json"):
        with pytest.raises(PolicyError, match="cosigners 1 and 3 .* are the same public key"):
            import_vault(read(vectors, f"coldcard/{name}"), network="testnet")


def test_electrum_json_refusals(vectors):
    obj = json.loads(read(vectors, "coldcard/el-p2sh-myself.json"))
    mixed = dict(obj)
    mixed["x2/"] = dict(obj["x2/"], xpub=ExtendedKey.parse(obj["x2/"]["xpub"]).to_base58(Network.TESTNET.slip132_pub["Vpub"]))
    with pytest.raises(FormatError, match="different SLIP-132 versions"):
        import_vault(json.dumps(mixed), network="testnet")
    with pytest.raises(FormatError, match="keystore x4/ is missing"):
        import_vault(json.dumps({k: v for k, v in obj.items() if k != "x4/"}), network="testnet")
    with pytest.raises(FormatError, match="private keys or a seed"):
        import_vault(json.dumps(dict(obj, **{"x1/": dict(obj["x1/"], xprv="xprv...")})), network="testnet")
    # a wrong ckcc_xfp on a depth-1 key: the key's own parent fingerprint contradicts it
    wrong = import_vault(json.dumps(dict(obj, **{"x1/": dict(obj["x1/"], ckcc_xfp=1)})), network="testnet")
    assert [(w.code, w.key) for w in wrong.warnings if w.key] == [(WarningCode.ORIGIN_FINGERPRINT_MISMATCH, 1)]
    assert "parent fingerprint" in next(w.message for w in wrong.warnings if w.key)
    with pytest.raises(FormatError, match="different master keys"):
        import_vault(json.dumps(dict(obj, **{"x1/": dict(obj["x1/"], root_fingerprint="00000001")})), network="testnet")
