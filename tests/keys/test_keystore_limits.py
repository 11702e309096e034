"""Keystore files asking for hostile scrypt work are refused before the KDF runs; unlocked keys
never print themselves (repr, str, f-strings, pprint, tracebacks with locals)."""

from __future__ import annotations

import io
import json
import pprint
import sys
import traceback

import pytest
from embit import bip39
from embit.bip32 import HDKey

from msigvault.keys import keystore as ksmod
from msigvault.keys.bip32 import ExtendedKey
from msigvault.keys.keystore import (
    MAX_SCRYPT_N, MIN_SCRYPT_N, SCRYPT_P, SCRYPT_R, CorruptKeystore, Keystore, SecretHDKey,
)

PW = "correct horse battery staple"
ABANDON = " ".join(["abandon"] * 11 + ["about"])


def rewrite(path, change) -> None:
    """Apply ``change`` to the envelope and write it back canonically (only the change differs)."""
    obj = json.loads(path.read_bytes())
    change(obj)
    path.write_bytes(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")


@pytest.fixture
def made(tmp_path):
    return Keystore.create(tmp_path / "k.key", PW, mnemonic=ABANDON, kdf_cost=MIN_SCRYPT_N)


@pytest.fixture
def no_kdf(monkeypatch):
    """Fail the test if scrypt runs (at the msigvault wrapper or the cryptography class)."""
    calls = []

    class Refuse:
        def __init__(self, **kwargs):
            calls.append(kwargs)
            raise AssertionError(f"scrypt ran with {kwargs}")

    monkeypatch.setattr(ksmod, "Scrypt", Refuse)
    return calls


# -- KDF work bound ------------------------------------------------------------------------------


@pytest.mark.parametrize("n,r,p", [
    (2 ** 20, 8, 16),  # 45 s to unlock before the bound (it fitted the old 1 GiB memory cap)
    (2 ** 20, 16, 1),
    (2 ** 17, 8, 2),
    (2 ** 14, 16, 1),
    (2 ** 14, 8, 16),
    (2 ** 14, 1, 1),  # less work than create() makes, but nothing msigvault writes
    (2 ** 21, 8, 1),
    (2 ** 13, 8, 1),
    (3 * 2 ** 14, 8, 1),
])
def test_scrypt_parameters_outside_the_range_are_refused_before_the_kdf(made, no_kdf, n, r, p):
    rewrite(made.path, lambda o: o["kdf"].update(n=n, r=r, p=p))
    with pytest.raises(CorruptKeystore) as info:
        Keystore.open(made.path).unlock(PW)
    assert "scrypt parameters out of the accepted range (N a power of two from 2^14 to 2^20, r = 8, p = 1)" \
        in str(info.value)
    assert no_kdf == []


def test_the_kdf_wrapper_refuses_out_of_range_parameters_itself(no_kdf):
    with pytest.raises(CorruptKeystore, match="accepted range"):
        ksmod._derive(b"pw", bytes(16), 2 ** 20, 8, 16)
    assert no_kdf == []


def test_largest_accepted_parameters_reach_the_kdf(made, monkeypatch):
    rewrite(made.path, lambda o: o["kdf"].update(n=MAX_SCRYPT_N))
    seen = []

    def fake_derive(key_input, salt, n, r, p):  # do not spend 1 GiB and seconds on it
        seen.append((n, r, p))
        return bytes(32), bytes(16)

    monkeypatch.setattr(ksmod, "_derive", fake_derive)
    ks = Keystore.open(made.path)
    assert ks.kdf_params == {"n": MAX_SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
    with pytest.raises(ksmod.WrongPassphrase):  # the fake key does not match the check value
        ks.unlock(PW)
    assert seen == [(MAX_SCRYPT_N, 8, 1)]


def test_create_writes_only_parameters_it_can_read(tmp_path):
    for n in (MIN_SCRYPT_N, 2 ** 15):
        ks = Keystore.create(tmp_path / f"{n}.key", PW, kdf_cost=n)
        assert Keystore.open(ks.path).kdf_params == {"n": n, "r": 8, "p": 1}


# -- unlocked keys do not print themselves -------------------------------------------------------


def secrets_of(root: HDKey) -> "list[str]":
    """Texts that must never appear: the xprv, a child's xprv, the WIF, the hex secret."""
    return [root.to_base58(), root.derive([0]).to_base58(), root.key.wif(),
            root.key.secret.hex(), root.to_base58()[4:40]]


def shows(text: str, root: HDKey) -> bool:
    return any(s in text for s in secrets_of(root))


def test_unlock_returns_a_redacted_hdkey_that_still_exports(made):
    root = made.unlock(PW)
    assert isinstance(root, SecretHDKey) and isinstance(root, HDKey)
    expected = HDKey.from_seed(bip39.mnemonic_to_seed(ABANDON))
    assert root.to_base58() == expected.to_base58() and root == expected
    assert root.my_fingerprint.hex() == made.fingerprint
    for text in (repr(root), str(root), f"{root}", f"{root!r}", f"{root:>80}", "%s" % root,
                 pprint.pformat(root), pprint.pformat({"root": [root]}), repr(root.key), str(root.key)):
        assert not shows(text, root), text
        assert "xprv" not in text
    assert repr(root) == f"SecretHDKey(private, depth=0, fingerprint={made.fingerprint})"


def test_derived_keys_stay_redacted(made):
    root = made.unlock(PW)
    for k in (root.child(0), root.child(1, hardened=True), root.derive("m/48h/1h/0h/2h"),
              root.derive([0, 1]), root.taproot_tweak(), root.to_public()):
        assert isinstance(k, SecretHDKey)
        assert k.to_base58()[1:4] in ("prv", "pub")
        assert k.to_base58() not in repr(k) + str(k) + f"{k}" + repr(k.key) + str(k.key)
    child = root.derive([0])
    assert child.to_base58() == HDKey.from_base58(root.to_base58()).derive([0]).to_base58()
    assert child.key.wif() not in repr(child.key)


def _fail_with_key_in_a_local(made):
    root = made.unlock(PW)  # noqa: F841 - a local for the traceback to find
    raise ValueError("something went wrong while the key was unlocked")


def test_traceback_with_locals_does_not_show_the_key(made):
    root = made.unlock(PW)
    try:
        _fail_with_key_in_a_local(made)
    except ValueError:
        exc_info = sys.exc_info()
    formatted = "".join(traceback.TracebackException(*exc_info, capture_locals=True).format())
    assert "root = SecretHDKey(private" in formatted
    assert not shows(formatted, root)
    buf = io.StringIO()
    traceback.print_exception(*exc_info, file=buf)
    assert not shows(buf.getvalue(), root)


LEGAL = "legal winner thank year wave sausage worth useful legal winner thank yellow"  # BIP39 vector


def test_wrong_bip39_passphrase_traceback_holds_no_entropy_or_key(tmp_path):
    ks = Keystore.create(tmp_path / "b.key", PW, mnemonic=LEGAL, bip39_passphrase="TREZOR",
                         kdf_cost=MIN_SCRYPT_N)
    with pytest.raises(ksmod.WrongPassphrase) as info:
        ks.unlock(PW, "trezor")
    # from the unlock frame down (this test's own locals are not the library's)
    formatted = "".join(traceback.TracebackException(
        info.type, info.value, info.tb.tb_next, capture_locals=True).format())
    assert "in unlock" in formatted and "self = Keystore(" in formatted  # frame and locals shown
    entropy = bip39.mnemonic_to_bytes(LEGAL)
    assert repr(bytes(entropy)) not in formatted and entropy.hex() not in formatted
    wrong_root = HDKey.from_seed(bip39.mnemonic_to_seed(LEGAL, "trezor"))
    assert not shows(formatted, wrong_root)


def test_extended_key_is_redacted_too(made):
    key = made.root_key(PW)
    assert isinstance(key, ExtendedKey) and key.is_private
    xprv = key.to_base58()
    for text in (repr(key), str(key), f"{key}", pprint.pformat([key]), repr(key.derive([0]))):
        assert xprv not in text and xprv[4:40] not in text and key.key[1:].hex() not in text
    assert key.to_base58() == made.unlock(PW).to_base58()
