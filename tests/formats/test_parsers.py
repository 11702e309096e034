"""Details of each format's reader: the variants real files use, and what is refused."""

import json

import pytest

from msigvault import Network
from msigvault.errors import InvalidDescriptor, InvalidKey, NetworkMismatch
from msigvault.formats import FormatError, WarningCode, detect_format, export_vault, import_cosigner, import_vault
from msigvault.keys import format_path


# -- coldcard ---------------------------------------------------------------------------------

def coldcard_lines(vault, *, fmt_line=True, per_key=False, comments=False):
    lines = ["Name: test", f"Policy: {vault.m} of {vault.n}"]
    if fmt_line:
        lines.append({"sh": "Format: P2SH", "sh-wsh": "Format: P2SH-P2WSH", "wsh": "Format: P2WSH"}[vault.script])
    for c in vault.cosigners:
        path = format_path(c.path, hardened_marker="'")
        if per_key:
            lines.append(f"# derivation: {path}" if comments else f"Derivation: {path}")
        elif c is vault.cosigners[0]:
            lines.append(f"Derivation: {path}")
        lines.append(f"{c.fingerprint.hex().upper()}: {c.xpub}")
    return "\n".join(lines) + "\n"


def test_coldcard_per_key_derivations(make_vault, keyholder):
    net = Network.REGTEST
    a = keyholder("cc-a").cosigner("wsh", account=0)
    b = keyholder("cc-b").cosigner("wsh", account=7)
    c = keyholder("cc-c").cosigner("wsh", account=3)
    from msigvault import Vault

    vault = Vault.multisig(2, [a, b, c], script="wsh", network=net)
    for comments in (False, True):
        text = coldcard_lines(vault, per_key=True, comments=comments)
        got = import_vault(text, network="regtest")
        assert got.format == "coldcard" and got.vault == vault
    # our export writes a Derivation line whenever it changes, as Coldcard does
    exported = export_vault(vault, "coldcard")
    assert exported.count("Derivation:") == 3
    assert import_vault(exported, network="regtest").vault == vault


def test_coldcard_variants(make_vault):
    vault = make_vault("wsh")
    text = coldcard_lines(vault)
    # labels are case-insensitive, inline comments are dropped, "2/3" is a policy too
    variant = text.replace("Name:", "NAME:").replace("Policy: 2 of 3", "policy: 2/3  # two of three")
    assert import_vault(variant, network="regtest").vault == vault
    # no Policy line: N-of-N, with a warning
    got = import_vault(text.replace("Policy: 2 of 3\n", ""), network="regtest")
    assert got.vault.m == 3 and "3-of-3 assumed" in got.warnings[0].message
    assert got.warnings[0].code is WarningCode.ASSUMED_DEFAULT
    # Sorted: false means multi (keys in file order)
    got = import_vault(text.replace("Name: test", "Name: test\nSorted: false"), network="regtest")
    assert not got.vault.sorted and got.vault.cosigners == vault.cosigners
    # an unknown label is reported, not silently used
    got = import_vault(text.replace("Name: test", "Name: test\nColor: blue"), network="regtest")
    assert [w.code for w in got.warnings if "unknown label 'color'" in w.message] == [WarningCode.IGNORED_FIELD]


def test_coldcard_bip48_path_against_format(make_vault):
    vault = make_vault("wsh")  # BIP48 .../2h keys
    text = coldcard_lines(vault).replace("Format: P2WSH", "Format: P2SH-P2WSH")
    got = import_vault(text, network="regtest")
    assert got.vault.script == "sh-wsh"
    assert {w.code for w in got.warnings if "BIP48 path m/48h/1h/0h/2h, which is for P2WSH" in w.message} == {
        WarningCode.PATH_SCRIPT_MISMATCH}


def test_coldcard_bare_depth1_xpub(keyholder):
    # Coldcard's documented shortcut: a BIP45 (depth 1) xpub needs no fingerprint or derivation
    from msigvault import Vault

    net = Network.REGTEST
    cos = [keyholder(f"bip45-{i}").cosigner("sh") for i in range(2)]
    cos = [type(c).from_root(keyholder(f"bip45-{i}").root, "m/45h", net) for i, c in enumerate(cos)]
    # m/45h on regtest has no test coin type: accepted on import, with a warning
    vault = Vault.multisig(2, cos, script="sh", network=net, accept={"unseparated-test-keys"})
    text = "Policy: 2 of 2\n" + "\n".join(c.xpub for c in cos) + "\n"
    got = import_vault(text, network="regtest", fmt="coldcard")
    assert got.vault == vault
    assert WarningCode.UNSEPARATED_TEST_KEYS in got.warning_codes()
    # a deeper key without fingerprint cannot be placed
    deep = keyholder("deep").cosigner("wsh")
    with pytest.raises(FormatError, match="Derivation line"):
        import_vault(f"Policy: 1 of 1\nFormat: P2WSH\n{deep.xpub}\n", network="regtest", fmt="coldcard")


@pytest.mark.parametrize("bad,match", [
    ("Format: P2TR", "no taproot"),
    ("Format: P2WPKH", "unknown Format"),
    ("Policy: two of three", "M of N"),
    ("Sorted: maybe", "true or false"),
    ("this line means nothing", "not 'Label: value'"),
    ("Derivation: m/48'/1'/x'", "bad derivation step"),
])
def test_coldcard_refusals(bad, match, make_vault):
    text = coldcard_lines(make_vault("wsh"), fmt_line=False)
    with pytest.raises((FormatError, InvalidKey), match=match):
        import_vault(text.replace("Name: test", f"Name: test\n{bad}"), network="regtest", fmt="coldcard")


def test_coldcard_reads_a_descriptor_file(make_vault):
    vault = make_vault("wsh")
    got = import_vault(vault.descriptor(), network="regtest", fmt="coldcard")
    assert got.vault == vault


# -- descriptor -------------------------------------------------------------------------------

def test_descriptor_variants(make_vault):
    vault = make_vault("sh-wsh")
    recv, change = vault.descriptors()
    # change first, blank lines, comments and labels are fine
    text = f"# my vault\n\nChange: {change}\n\nReceive: {recv}\n"
    got = import_vault(text, network="regtest", fmt="descriptor")
    assert got.vault == vault and got.warnings == ()
    # without checksum: accepted, with a warning
    got = import_vault(vault.descriptor(checksum=False), network="regtest")
    assert got.vault == vault and "no checksum" in got.warnings[0].message
    assert got.warning_codes() == {WarningCode.NO_CHECKSUM}
    # a receive descriptor alone
    got = import_vault(recv, network="regtest")
    assert got.vault == vault and "only the receive" in got.warnings[0].message


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.replace("<0;1>", "<0;2>"), "only multipath"),
    (lambda d: d.replace("/<0;1>/*", "/<0;1>/*h", 1), "hardened wildcard"),
    (lambda d: d.replace("/<0;1>/*", "/0/*", 1), "different derivations|must end in /<0;1>"),
    (lambda d: d.replace("/<0;1>/*", "/2/*"), "derivation msigvault does not use"),
    (lambda d: d.replace("/<0;1>/*", ""), "not accepted here"),
    (lambda d: d.replace(",", ", ", 1), "spaces"),
])
def test_descriptor_refusals(edit, match, make_vault):
    desc = make_vault("wsh").descriptor(checksum=False)
    with pytest.raises((InvalidDescriptor, FormatError), match=match):
        import_vault(edit(desc), network="regtest", fmt="descriptor")


def test_listdescriptors_with_other_wallets_is_refused(make_vault):
    a, b = make_vault("wsh"), make_vault("wsh", label="b")
    core = {"wallet_name": "w", "descriptors": [
        {"desc": a.descriptor(0), "internal": False}, {"desc": b.descriptor(0), "internal": False}]}
    with pytest.raises(FormatError, match="different vault"):
        import_vault(json.dumps(core), network="regtest")
    with pytest.raises(FormatError, match="no descriptors"):
        import_vault(json.dumps({"wallet_name": "w", "descriptors": []}), network="regtest")


# -- bip388 -----------------------------------------------------------------------------------

def test_bip388_refusals(make_vault):
    vault = make_vault("wsh", 2, 2)
    policy = json.loads(export_vault(vault, "bip388"))
    keys = policy["keys_info"]
    cases = [
        ("wsh(sortedmulti(2,@0/<2;3>/*,@1/**))", "receive on /0/\\*"),
        ("wsh(sortedmulti(2,@0/**,@0/<2;3>/*,@1/**))", "more than once"),
        ("wsh(sortedmulti(2,@0/**))", "1 key placeholder\\(s\\) but the key information vector has 2"),
        ("wsh(sortedmulti(2,@0/**,@01/**))", "leading zero"),
        ("wsh(sortedmulti(2,@0/**/0,@1/**))", "derivation steps after"),
        ("wsh(sortedmulti(2,@0/<0;0>/*,@1/**))", "repeats an index"),
        ("wsh(sortedmulti(2,@0/**,@/**))", "key index"),
        ("tr(@0/**,sortedmulti_a(1,@1/**))", "not|spendable|NUMS|internal"),
    ]
    for template, match in cases:
        with pytest.raises((FormatError, InvalidDescriptor, InvalidKey), match=match):
            import_vault(json.dumps({"descriptor_template": template, "keys_info": keys}), network="regtest")
    with pytest.raises(FormatError, match="nothing after the xpub"):
        import_vault(json.dumps({"descriptor_template": policy["descriptor_template"],
                                 "keys_info": [k + "/0/*" for k in keys]}), network="regtest")
    # keys without origin: allowed by BIP388; a vault records each as its own root, with a warning
    got = import_vault(json.dumps({"descriptor_template": policy["descriptor_template"],
                                   "keys_info": [k.split("]")[1] for k in keys]}), network="regtest")
    assert [c.xpub for c in got.vault.cosigners] == [c.xpub for c in vault.cosigners]
    assert got.vault.addresses(0, 3) == vault.addresses(0, 3)
    assert [w.code for w in got.warnings if w.key] == [WarningCode.ORIGIN_UNKNOWN] * 2


# -- caravan and specter ----------------------------------------------------------------------

def test_caravan_details(make_vault):
    vault = make_vault("sh-wsh")
    obj = json.loads(export_vault(vault, "caravan", name="Ops", key_names=["A", "B", "C"]))
    assert [k["name"] for k in obj["extendedPublicKeys"]] == ["A", "B", "C"]
    assert obj["addressType"] == "P2SH-P2WSH" and obj["network"] == "regtest"
    obj["startingAddressIndex"] = 20
    obj["client"] = {"type": "private", "url": "http://node:8332", "username": "u", "password": "hunter2"}
    got = import_vault(json.dumps(obj))
    assert got.vault == vault and "startingAddressIndex is 20" in got.warnings[0].message
    assert got.warnings[0].code is WarningCode.STARTING_INDEX
    obj["addressType"] = "P2TR"
    with pytest.raises(FormatError, match="unsupported addressType") as e:
        import_vault(json.dumps(obj))
    assert "hunter2" not in str(e.value)
    obj["addressType"] = "P2SH-P2WSH"
    obj["extendedPublicKeys"][0]["xfp"] = "zzzz"
    with pytest.raises(FormatError, match="8 hex digits"):
        import_vault(json.dumps(obj))


def test_specter_details(make_vault):
    vault = make_vault("wsh")
    recv, change = vault.descriptors()
    internal = {"name": "vault", "recv_descriptor": recv, "change_descriptor": change, "devices": ["a", "b"]}
    got = import_vault(json.dumps(internal), network="regtest")
    assert got.format == "specter" and got.vault == vault and got.name == "vault"
    assert [w.code for w in got.warnings if "2 device(s) for 3 keys" in w.message] == [WarningCode.DEVICE_COUNT]
    internal["change_descriptor"] = recv
    with pytest.raises(FormatError, match="marked internal"):
        import_vault(json.dumps(internal), network="regtest")
    obj = json.loads(export_vault(vault, "specter", blockheight=840000))
    assert obj["blockheight"] == 840000 and obj["descriptor"] == recv


# -- detection and cosigners ------------------------------------------------------------------

def test_detection(make_vault):
    vault = make_vault("wsh")
    for fmt in ("descriptor", "bip388", "bsms", "coldcard", "specter", "caravan", "sparrow"):
        assert detect_format(export_vault(vault, fmt)) == fmt
    assert detect_format(export_vault(vault, "descriptor", form="pair")) == "descriptor"
    assert detect_format(export_vault(vault, "bip388", form="text")) == "bip388"
    for junk in ("", "   \n", "hello world", '{"x": 1}', "[1, 2]"):
        with pytest.raises(FormatError):
            detect_format(junk)


def test_import_cosigner_forms(keyholder):
    c = keyholder("cos").cosigner("wsh")
    assert import_cosigner(str(c)) == c
    assert import_cosigner(f"  {c}\n", network="regtest") == c
    with pytest.raises(NetworkMismatch):
        import_cosigner(str(c), network="mainnet")
    with pytest.raises(FormatError, match="one"):
        import_cosigner(f"{c}\n{c}")


def test_coldcard_generic_json_sections(keyholder):
    # the shape of Coldcard's "Generic JSON" export (docs/generic-wallet-export.md), with our own keys
    from msigvault.formats import cosigner_from_xpub_export
    from msigvault.keys.bip32 import ExtendedKey

    holder = keyholder("generic")
    c = holder.cosigner("wsh")
    vpub = ExtendedKey.parse(c.xpub).to_base58(Network.REGTEST.slip132_pub["Vpub"])
    section = {"name": "p2wsh", "deriv": "m/48h/1h/0h/2h", "xpub": c.xpub,
               "desc": f"wsh(sortedmulti(M,{c}/0/*,...))", "_pub": vpub}
    doc = {"chain": "XRT", "xfp": c.fingerprint.hex().upper(), "bip48_2": section}
    assert cosigner_from_xpub_export(json.dumps(doc), "wsh") == c
    with pytest.raises(FormatError, match="no P2SH-P2WSH key"):
        cosigner_from_xpub_export(json.dumps(doc), "sh-wsh")
    other = keyholder("generic-2").cosigner("wsh")
    bad = dict(doc, bip48_2=dict(section, _pub=ExtendedKey.parse(other.xpub).to_base58(Network.REGTEST.slip132_pub["Vpub"])))
    with pytest.raises(FormatError, match="different keys"):
        cosigner_from_xpub_export(json.dumps(bad), "wsh")
    bad = dict(doc, bip48_2=dict(section, desc=f"wsh(sortedmulti(M,{other}/0/*,...))"))
    with pytest.raises(FormatError, match="altered"):
        cosigner_from_xpub_export(json.dumps(bad), "wsh")
    with pytest.raises(FormatError, match="not 'tr'"):
        cosigner_from_xpub_export(json.dumps(doc), "tr")


def test_coldcard_derivation_comment_must_agree_with_derivation_line(make_vault):
    vault = make_vault("wsh")
    text = coldcard_lines(vault)  # one "Derivation: m/48'/1'/0'/2'" for all keys
    first = f"{vault.cosigners[0].fingerprint.hex().upper()}:"
    same = text.replace(first, "# derivation: m/48'/1'/0'/2'\n" + first)
    assert import_vault(same, network="regtest").vault == vault
    other = text.replace(first, "# derivation: m/48'/1'/5'/2'\n" + first)
    with pytest.raises(FormatError, match="comment before this key says m/48h/1h/5h/2h"):
        import_vault(other, network="regtest")
