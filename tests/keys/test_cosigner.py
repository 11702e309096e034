import pytest

from msigvault.errors import InvalidKey, MsigvaultError, NetworkMismatch
from msigvault.keys import Cosigner, bip48_path, format_path, parse_path
from msigvault.keys.paths import HARDENED
from msigvault.network import Network
from msigvault.testing.keyholders import TestKeyholder

NET = Network.REGTEST


@pytest.fixture(scope="module")
def alice():
    return TestKeyholder.from_label("alice")


def test_cosigner_round_trips_through_key_origin(alice):
    c = alice.cosigner("wsh")
    text = str(c)
    assert text.startswith(f"[{alice.fingerprint.hex()}/48h/1h/0h/2h]tpub")
    assert Cosigner.parse(text) == c
    # apostrophe and H hardened markers parse to the same record
    assert Cosigner.parse(text.replace("h/", "'/").replace("h]", "']")) == c
    # BIP380 key origins allow only h and ' (its test vectors list 0H as invalid)
    with pytest.raises(InvalidKey, match="bad derivation step '48H'"):
        Cosigner.parse(text.replace("h/", "H/").replace("h]", "H]"))


def test_cosigner_matches_direct_derivation(alice):
    c = alice.cosigner("sh-wsh")
    account = alice.root.derive(bip48_path(NET, "sh-wsh"))
    assert c.public_key == account.public_key
    assert c.key.chain_code == account.chain_code
    assert c.fingerprint == alice.root.fingerprint


def test_slip132_is_normalised(alice):
    c = alice.cosigner("wsh")
    vpub = c.key.to_base58(NET.slip132_pub["Vpub"])
    assert vpub.startswith("Vpub")
    again = Cosigner.parse(c.origin() + vpub)
    assert again == c and again.xpub.startswith("tpub")
    upub = c.key.to_base58(NET.slip132_pub["Upub"])
    assert Cosigner.parse(c.origin() + upub).xpub == c.xpub


def test_private_key_is_refused_without_revealing_it(alice):
    account = alice.root.derive(bip48_path(NET, "wsh"))
    tprv = account.to_base58()
    with pytest.raises(InvalidKey) as e:
        Cosigner.parse(f"[{alice.fingerprint.hex()}/48h/1h/0h/2h]{tprv}")
    assert "private" in str(e.value)
    assert tprv[8:] not in str(e.value)


def test_depth_must_match_path(alice):
    c = alice.cosigner("wsh")
    with pytest.raises(InvalidKey, match="depth 4 but the key origin path"):
        Cosigner.parse(f"[{c.fingerprint.hex()}/48h/1h/0h]{c.xpub}")


def test_last_path_step_must_match_child_number(alice):
    c = alice.cosigner("wsh")
    # hardened/unhardened mix-up in the last step: 2 instead of 2h
    with pytest.raises(InvalidKey, match="child 2h but the path ends in 2"):
        Cosigner.parse(f"[{c.fingerprint.hex()}/48h/1h/0h/2]{c.xpub}")


def test_depth_one_parent_fingerprint_must_be_master(alice):
    child = alice.root.child(HARDENED + 5).neuter(NET)
    ok = Cosigner(alice.fingerprint, (HARDENED + 5,), child.to_base58())
    assert ok.key.depth == 1
    with pytest.raises(InvalidKey, match="parent fingerprint"):
        Cosigner(b"\x00\x11\x22\x33", (HARDENED + 5,), child.to_base58())


def test_bad_checksum(alice):
    c = alice.cosigner("wsh")
    broken = c.xpub[:-1] + ("A" if c.xpub[-1] != "A" else "B")
    with pytest.raises(InvalidKey, match="checksum"):
        Cosigner.parse(c.origin() + broken)


def test_wrong_network(alice):
    c = alice.cosigner("wsh")
    with pytest.raises(NetworkMismatch):
        Cosigner.parse(str(c), network=Network.MAINNET)
    Cosigner.parse(str(c), network=Network.TESTNET)  # tpub is fine on any test network


def test_bare_master_xpub_needs_no_origin(alice):
    master = alice.root.neuter(NET).to_base58()
    c = Cosigner.parse(master)
    assert c.fingerprint == alice.fingerprint and c.path == ()
    account = alice.root.derive(bip48_path(NET, "wsh")).neuter(NET).to_base58()
    with pytest.raises(InvalidKey, match="no key origin"):
        Cosigner.parse(account)


@pytest.mark.parametrize("text", [
    "", "[zzzzzzzz/48h]tpub", "[f00d/48h]tpub", "[f00dbabe/48x]tpubXYZ", "not a key", "[f00dbabe",
])
def test_garbage_raises_msigvault_error(text):
    with pytest.raises(MsigvaultError):
        Cosigner.parse(text)


@pytest.mark.parametrize("path,expected", [
    ("m/48h/1h/0h/2h", (48 | HARDENED, 1 | HARDENED, HARDENED, 2 | HARDENED)),
    ("m/48'/0'/0'/1'", (48 | HARDENED, HARDENED, HARDENED, 1 | HARDENED)),
    ("0/1/2", (0, 1, 2)),
    ("m", ()),
])
def test_parse_path(path, expected):
    assert parse_path(path) == expected
    assert parse_path(format_path(expected)) == expected


@pytest.mark.parametrize("path", ["m/2147483648", "m/1x", "m//1", "m/-1", "m/01", "m/1hh"])
def test_bad_paths(path):
    with pytest.raises(InvalidKey):
        parse_path(path)


def test_extended_key_repr_hides_private_material(alice):
    text = repr(alice.root) + str(alice.root)
    assert alice.root.key[1:].hex() not in text
    assert alice.root.to_base58()[4:] not in text
    assert "private" in text


def test_extended_key_is_opaque_to_pretty_printers(alice):
    import pprint

    from hypothesis.vendor.pretty import pretty

    secret_hex = alice.root.key[1:].hex()
    for text in (pprint.pformat(alice.root), pretty(alice.root), pretty(alice), repr(alice)):
        assert secret_hex not in text and str(alice.root.key[1:]) not in text
