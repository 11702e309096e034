"""Altered files are refused with an error that says what is wrong, never read as another vault."""

import json

import pytest
from embit import base58

from msigvault import Network
from msigvault.errors import ChecksumError, InvalidKey, MsigvaultError, NetworkMismatch, PolicyError
from msigvault.formats import FORMATS, FormatError, export_vault, import_vault
from msigvault.keys.bip32 import ExtendedKey

NET = Network.REGTEST


def other_key(xpub: str, byte: int = 20) -> str:
    """The same xpub with one chain-code byte changed, re-encoded with a valid checksum."""
    raw = bytearray(base58.decode_check(xpub))
    raw[byte] ^= 1
    return base58.encode_check(bytes(raw))


def slip132(xpub: str, prefix: str, net=NET) -> str:
    return ExtendedKey.parse(xpub).to_base58(net.slip132_pub[prefix])


@pytest.mark.parametrize("fmt", FORMATS)
def test_mistyped_xpub_character(fmt, make_vault):
    vault = make_vault("wsh")
    text = export_vault(vault, fmt)
    xpub = vault.cosigners[1].xpub
    pos = 30
    typo = xpub[:pos] + ("x" if xpub[pos] != "x" else "y") + xpub[pos + 1:]
    if fmt == "bsms":
        text = text  # the descriptor record's template has no checksum; base58 catches it
    if fmt == "electrum":  # Electrum writes the SLIP-132 form (Vpub for P2WSH on test networks)
        xpub = slip132(xpub, "Vpub")
        typo = xpub[:pos] + ("x" if xpub[pos] != "x" else "y") + xpub[pos + 1:]
    with pytest.raises(MsigvaultError) as e:
        import_vault(text.replace(xpub, typo), network="regtest")
    assert isinstance(e.value, (InvalidKey, ChecksumError)), e.value


@pytest.mark.parametrize("fmt,error", [("descriptor", ChecksumError), ("sparrow", ChecksumError),
                                       ("specter", ChecksumError), ("bsms", FormatError)])
def test_changed_xpub_byte_is_caught_by_checksum_or_first_address(fmt, error, make_vault):
    vault = make_vault("wsh")
    text = export_vault(vault, fmt)
    xpub = vault.cosigners[2].xpub
    changed = other_key(xpub)
    ExtendedKey.parse(changed)  # a valid key: only the file's own checks can catch the change
    with pytest.raises(error, match="checksum|first address"):
        import_vault(text.replace(xpub, changed), network="regtest")


def test_changed_xpub_byte_without_integrity_check_gives_a_different_policy(make_vault):
    # Coldcard, Caravan and BIP388 files carry no checksum or address: a swapped key is a
    # different vault, which policy_id (or the first address) shows; docs/formats.md says to compare
    vault = make_vault("wsh")
    xpub = vault.cosigners[2].xpub
    for fmt in ("coldcard", "caravan", "bip388"):
        got = import_vault(export_vault(vault, fmt).replace(xpub, other_key(xpub)), network="regtest").vault
        assert got.policy_id != vault.policy_id and got.address(0) != vault.address(0)


def test_wrong_first_address(make_vault):
    vault, other = make_vault("wsh"), make_vault("wsh", label="other")
    text = export_vault(vault, "bsms").replace(vault.address(0), other.address(0))
    with pytest.raises(FormatError, match=f"first address {other.address(0)} is not the vault's address"):
        import_vault(text, network="regtest")
    # the change address at index 0 is not the first address either
    text = export_vault(vault, "bsms").replace(vault.address(0), vault.change_address(0))
    with pytest.raises(FormatError, match="is not the vault's address"):
        import_vault(text, network="regtest")
    # an address for another network
    main = make_vault("wsh", network=Network.MAINNET, label="m")
    with pytest.raises(NetworkMismatch, match="first address"):
        import_vault(export_vault(vault, "bsms").replace(vault.address(0), main.address(0)), network="regtest")


def test_wrong_m(make_vault):
    vault = make_vault("wsh", 2, 3)
    bsms_text = export_vault(vault, "bsms").replace("sortedmulti(2,", "sortedmulti(1,")
    with pytest.raises(FormatError, match="is not the vault's address"):
        import_vault(bsms_text, network="regtest")
    desc = export_vault(vault, "descriptor").replace("sortedmulti(2,", "sortedmulti(1,")
    with pytest.raises(ChecksumError):
        import_vault(desc, network="regtest")
    cc = export_vault(vault, "coldcard").replace("Policy: 2 of 3", "Policy: 4 of 3")
    with pytest.raises(PolicyError, match="threshold"):
        import_vault(cc, network="regtest")
    cc = export_vault(vault, "coldcard").replace("Policy: 2 of 3", "Policy: 2 of 4")
    with pytest.raises(FormatError, match="2 of 4, but the file lists 3"):
        import_vault(cc, network="regtest")
    car = json.loads(export_vault(vault, "caravan"))
    car["quorum"]["requiredSigners"] = 0
    with pytest.raises(PolicyError, match="threshold"):
        import_vault(json.dumps(car))
    car["quorum"]["requiredSigners"] = "2"
    with pytest.raises(FormatError, match="whole number"):
        import_vault(json.dumps(car))


def test_zpub_in_a_p2sh_p2wsh_coldcard_file(make_vault):
    vault = make_vault("sh-wsh")
    text = export_vault(vault, "coldcard")
    assert "Format: P2SH-P2WSH" in text
    xpub = vault.cosigners[1].xpub
    # the multisig P2WSH version (Vpub on test networks, Zpub on mainnet) in a P2SH-P2WSH file
    with pytest.raises(FormatError, match="key 2 is a Vpub key, which SLIP-132 reserves for P2WSH wallets"):
        import_vault(text.replace(xpub, slip132(xpub, "Vpub")), network="regtest")
    # the matching version (Upub) is fine and means the same key
    assert import_vault(text.replace(xpub, slip132(xpub, "Upub")), network="regtest").vault == vault
    main = make_vault("sh-wsh", network=Network.MAINNET, label="zpub")
    text = export_vault(main, "coldcard")
    xpub = main.cosigners[0].xpub
    with pytest.raises(FormatError, match="Zpub key, which SLIP-132 reserves for P2WSH"):
        import_vault(text.replace(xpub, slip132(xpub, "Zpub", Network.MAINNET)))
    with pytest.raises(FormatError, match="zpub key"):
        import_vault(text.replace(xpub, slip132(xpub, "zpub", Network.MAINNET)))
    assert import_vault(text.replace(xpub, slip132(xpub, "Ypub", Network.MAINNET))).vault == main


def test_slip132_in_other_formats(make_vault):
    vault = make_vault("wsh")
    xpub = vault.cosigners[0].xpub
    car = export_vault(vault, "caravan").replace(xpub, slip132(xpub, "Upub"))
    with pytest.raises(FormatError, match="Upub key, which SLIP-132 reserves for P2SH-P2WSH"):
        import_vault(car)
    sh = make_vault("sh")
    xpub = sh.cosigners[0].xpub
    desc = export_vault(sh, "descriptor", form="pair").split("\n")[0].split("#")[0].replace(xpub, slip132(xpub, "Vpub"))
    with pytest.raises(FormatError, match="Vpub key"):
        import_vault(desc, network="regtest")
    tr = make_vault("tr")
    xpub = tr.cosigners[0].xpub
    desc = export_vault(tr, "descriptor").split("#")[0].replace(xpub, slip132(xpub, "Vpub"))
    with pytest.raises(FormatError, match="P2TR"):
        import_vault(desc, network="regtest")


def test_mixed_networks(make_vault):
    reg = make_vault("wsh")
    main = make_vault("wsh", network=Network.MAINNET, label="main")
    desc = reg.descriptor(0, checksum=False).replace(reg.cosigners[0].xpub, main.cosigners[0].xpub)
    with pytest.raises(MsigvaultError, match="mix mainnet|mainnet"):
        import_vault(desc.replace(reg.cosigners[0].origin(), main.cosigners[0].origin()), network="regtest")
    # a file for mainnet read as regtest, and the reverse
    with pytest.raises(NetworkMismatch):
        import_vault(export_vault(main, "coldcard"), network="regtest")
    with pytest.raises(NetworkMismatch):
        import_vault(export_vault(reg, "coldcard"), network="mainnet")
    # Caravan states its network: tpub keys in a mainnet file, and a caller who asks for another one
    car = json.loads(export_vault(reg, "caravan"))
    with pytest.raises(NetworkMismatch, match="the file is for regtest"):
        import_vault(json.dumps(car), network="testnet")
    car["network"] = "mainnet"
    with pytest.raises(NetworkMismatch):
        import_vault(json.dumps(car))
    car["network"] = "liquid"
    with pytest.raises(FormatError, match="unknown network"):
        import_vault(json.dumps(car))
    # tpub keys with no network anywhere: the caller must say which test network
    with pytest.raises(NetworkMismatch, match="network="):
        import_vault(export_vault(reg, "coldcard"))
    # BSMS: a regtest first address pins the network down
    assert import_vault(export_vault(reg, "bsms")).vault == reg


def test_duplicate_keys(make_vault):
    vault = make_vault("wsh", 2, 3)
    a, b = vault.cosigners[0], vault.cosigners[1]
    cc = export_vault(vault, "coldcard").replace(b.xpub, a.xpub)
    # the same xpub under another fingerprint: one keyholder would count twice
    with pytest.raises(MsigvaultError, match="same public key|xpub is child|parent fingerprint"):
        import_vault(cc, network="regtest")
    car = json.loads(export_vault(vault, "caravan"))
    car["extendedPublicKeys"][1] = dict(car["extendedPublicKeys"][0], name="copy")
    with pytest.raises(PolicyError, match="same public key"):
        import_vault(json.dumps(car))
    desc = vault.descriptor(checksum=False).replace(str(b), str(a))
    with pytest.raises(PolicyError, match="same public key"):
        import_vault(desc, network="regtest")
    bip = json.loads(export_vault(vault, "bip388"))
    bip["keys_info"][1] = bip["keys_info"][0]
    with pytest.raises(PolicyError, match="same public key"):
        import_vault(json.dumps(bip), network="regtest")


def test_receive_and_change_descriptors_must_agree(make_vault):
    a, b = make_vault("wsh"), make_vault("wsh", label="b")
    with pytest.raises(FormatError, match="different vault"):
        import_vault(f"{a.descriptor(0)}\n{b.descriptor(1)}\n", network="regtest")
    with pytest.raises(FormatError, match="different vault"):
        import_vault(export_vault(a, "sparrow").replace(a.descriptor(1), b.descriptor(1)), network="regtest")
    core = json.loads(export_vault(a, "descriptor", form="listdescriptors"))
    core["descriptors"][1]["internal"] = False
    with pytest.raises(FormatError, match="marked external"):
        import_vault(json.dumps(core), network="regtest")


def test_private_keys_are_refused_and_not_echoed(keyholder):
    holder = keyholder("private", NET)
    xprv = holder.root.derive((48 + 2**31, 1 + 2**31, 2**31, 2 + 2**31)).to_base58()
    desc = f"wsh(sortedmulti(1,[{holder.fingerprint.hex()}/48h/1h/0h/2h]{xprv}/<0;1>/*))"
    with pytest.raises(InvalidKey) as e:
        import_vault(desc, network="regtest")
    assert xprv not in str(e.value) and xprv[:20] not in str(e.value)
    core = json.dumps({"wallet_name": "w", "descriptors": [{"desc": desc, "internal": False}]})
    with pytest.raises(InvalidKey) as e:
        import_vault(core, network="regtest")
    assert xprv[:20] not in str(e.value)
