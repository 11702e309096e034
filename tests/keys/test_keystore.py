"""Encrypted keystore: round trips, official BIP39 vectors, tampering, atomic writes, no leaks."""

from __future__ import annotations

import getpass
import json
import logging
import os
import stat
import unicodedata

import pytest
from embit import bip39
from embit.bip32 import HDKey
from hypothesis import given, strategies as st

from msigvault.errors import KeystoreError, MsigvaultError
from msigvault.keys import keystore as ksmod
from msigvault.keys.keystore import (
    DEFAULT_SCRYPT_N,
    MIN_SCRYPT_N,
    CorruptKeystore,
    Keystore,
    WrongPassphrase,
    read_passphrase,
)

FAST = MIN_SCRYPT_N  # lowest accepted scrypt cost: keeps the suite fast
PW = "correct horse battery staple"

# Official BIP39 test vectors, English, all with BIP39 passphrase "TREZOR":
# https://github.com/trezor/python-mnemonic/blob/master/vectors.json (linked from BIP39's
# "Test vectors" section). Entries: entropy, mnemonic, seed, BIP32 root xprv.
BIP39_PASSPHRASE = "TREZOR"
BIP39_VECTORS = [
    (
        "00000000000000000000000000000000",
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
        "xprv9s21ZrQH143K3h3fDYiay8mocZ3afhfULfb5GX8kCBdno77K4HiA15Tg23wpbeF1pLfs1c5SPmYHrEpTuuRhxMwvKDwqdKiGJS9XFKzUsAF",
    ),
    (
        "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
        "legal winner thank year wave sausage worth useful legal winner thank yellow",
        "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607",
        "xprv9s21ZrQH143K2gA81bYFHqU68xz1cX2APaSq5tt6MFSLeXnCKV1RVUJt9FWNTbrrryem4ZckN8k4Ls1H6nwdvDTvnV7zEXs2HgPezuVccsq",
    ),
    (
        "6610b25967cdcca9d59875f5cb50b0ea75433311869e930b",
        "gravity machine north sort system female filter attitude volume fold club stay feature office ecology stable narrow fog",
        "628c3827a8823298ee685db84f55caa34b5cc195a778e52d45f59bcf75aba68e4d7590e101dc414bc1bbd5737666fbbef35d1f1903953b66624f910feef245ac",
        "xprv9s21ZrQH143K3uT8eQowUjsxrmsA9YUuQQK1RLqFufzybxD6DH6gPY7NjJ5G3EPHjsWDrs9iivSbmvjc9DQJbJGatfa9pv4MZ3wjr8qWPAK",
    ),
    (
        "68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c",
        "hamster diagram private dutch cause delay private meat slide toddler razor book happy fancy gospel tennis maple dilemma loan word shrug inflict delay length",
        "64c87cde7e12ecf6704ab95bb1408bef047c22db4cc7491c4271d170a1b213d20b385bc1588d9c7b38f1b39d415665b8a9030c9ec653d75e65f847d8fc1fc440",
        "xprv9s21ZrQH143K2XTAhys3pMNcGn261Fi5Ta2Pw8PwaVPhg3D8DWkzWQwjTJfskj8ofb81i9NP2cUNKxwjueJHHMQAnxtivTA75uUFqPFeWzk",
    ),
]
ABANDON_ABOUT = BIP39_VECTORS[0][1]


def fingerprint_of(mnemonic: str, bip39_passphrase: str = "") -> str:
    return HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic, bip39_passphrase)).my_fingerprint.hex()


def rewrite(path, change):
    """Apply ``change`` to the parsed envelope and write it back in canonical form."""
    obj = json.loads(path.read_bytes())
    change(obj)
    path.write_bytes(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")


def texts_of(exc: BaseException) -> "list[str]":
    """Everything an exception (and its cause/context chain) could show: str, repr, args."""
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out += [str(exc), repr(exc)] + [repr(a) for a in exc.args]
        exc = exc.__cause__ or exc.__context__
    return out


@pytest.fixture
def ks_path(tmp_path):
    return tmp_path / "alice.key"


@pytest.fixture
def made(ks_path):
    """A fast keystore restored from the 'abandon ... about' mnemonic, no BIP39 passphrase."""
    return Keystore.create(ks_path, PW, mnemonic=ABANDON_ABOUT, label="alice laptop", kdf_cost=FAST)


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("words", [12, 15, 18, 21, 24])
def test_create_open_unlock_round_trip(tmp_path, words):
    path = tmp_path / "k.key"
    ks = Keystore.create(path, PW, words=words, label="site A", kdf_cost=FAST)
    opened = Keystore.open(path)
    mnemonic = opened.mnemonic(PW)
    assert len(mnemonic.split()) == words
    assert bip39.mnemonic_is_valid(mnemonic)
    expected = fingerprint_of(mnemonic)
    assert ks.fingerprint == opened.fingerprint == expected
    assert opened.label == "site A"
    assert opened.uses_bip39_passphrase is False
    assert opened.kdf_params == {"n": FAST, "r": 8, "p": 1}
    root = opened.unlock(PW)
    assert root.is_private
    assert root.to_base58().startswith("xprv")  # mainnet version; callers re-version
    assert root.my_fingerprint.hex() == expected
    assert root.to_base58() == HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic)).to_base58()
    assert opened.created == ks.created
    assert opened.created.tzinfo is not None


def test_fresh_keys_differ(tmp_path):
    a = Keystore.create(tmp_path / "a.key", PW, kdf_cost=FAST)
    b = Keystore.create(tmp_path / "b.key", PW, kdf_cost=FAST)
    assert a.fingerprint != b.fingerprint
    assert a.mnemonic(PW) != b.mnemonic(PW)


@pytest.mark.parametrize("entropy,mnemonic,seed,xprv", BIP39_VECTORS)
def test_restore_official_bip39_vectors(tmp_path, entropy, mnemonic, seed, xprv):
    path = tmp_path / "v.key"
    ks = Keystore.create(path, PW, mnemonic=mnemonic, bip39_passphrase=BIP39_PASSPHRASE,
                         kdf_cost=FAST)
    opened = Keystore.open(path)
    assert opened.uses_bip39_passphrase is True
    assert opened.fingerprint == ks.fingerprint == HDKey.from_base58(xprv).my_fingerprint.hex()
    shown = opened.mnemonic(PW)
    assert shown == mnemonic
    assert bip39.mnemonic_to_bytes(shown).hex() == entropy
    assert bip39.mnemonic_to_seed(shown, BIP39_PASSPHRASE).hex() == seed
    root = opened.unlock(PW, bip39_passphrase=BIP39_PASSPHRASE)
    assert root.to_base58() == xprv


def test_restore_without_bip39_passphrase_matches_embit(made):
    assert made.fingerprint == fingerprint_of(ABANDON_ABOUT)
    assert made.unlock(PW).to_base58() == HDKey.from_seed(bip39.mnemonic_to_seed(ABANDON_ABOUT)).to_base58()


def test_restore_normalises_case_and_spacing(tmp_path):
    messy = "  " + ABANDON_ABOUT.upper().replace(" ", " \t ") + "\n"
    ks = Keystore.create(tmp_path / "m.key", PW, mnemonic=messy, kdf_cost=FAST)
    assert ks.mnemonic(PW) == ABANDON_ABOUT


def test_bip39_passphrase_is_nfkd_normalised(tmp_path):
    composed = unicodedata.normalize("NFC", "Grüße ﬁle")  # ü composed, plus an ligature
    decomposed = unicodedata.normalize("NFD", composed)
    ks = Keystore.create(tmp_path / "u.key", PW, mnemonic=ABANDON_ABOUT,
                         bip39_passphrase=composed, kdf_cost=FAST)
    a = ks.unlock(PW, composed)
    b = ks.unlock(PW, decomposed)
    assert a.to_base58() == b.to_base58()
    # BIP39: salt = "mnemonic" + NFKD(passphrase)
    import hashlib
    seed = hashlib.pbkdf2_hmac("sha512", ABANDON_ABOUT.encode(),
                               ("mnemonic" + unicodedata.normalize("NFKD", composed)).encode(), 2048)
    assert a.to_base58() == HDKey.from_seed(seed).to_base58()


def test_keystore_passphrase_is_unicode_normalised(tmp_path):
    pw = unicodedata.normalize("NFC", "pässwörd")
    ks = Keystore.create(tmp_path / "n.key", pw, kdf_cost=FAST)
    assert ks.unlock(unicodedata.normalize("NFD", pw)).my_fingerprint.hex() == ks.fingerprint


def test_no_bip39_passphrase_is_stored(tmp_path):
    path = tmp_path / "b.key"
    Keystore.create(path, PW, mnemonic=ABANDON_ABOUT, bip39_passphrase="TREZOR", kdf_cost=FAST)
    raw = path.read_bytes()
    assert b"TREZOR" not in raw and b"trezor" not in raw.lower()
    assert json.loads(raw)["public"]["bip39_passphrase"] is True


def test_bip39_passphrase_errors(tmp_path):
    ks = Keystore.create(tmp_path / "b.key", PW, mnemonic=ABANDON_ABOUT, bip39_passphrase="TREZOR",
                         kdf_cost=FAST)
    with pytest.raises(WrongPassphrase, match="supply it"):
        ks.unlock(PW)
    with pytest.raises(WrongPassphrase, match="BIP39 passphrase does not give") as info:
        ks.unlock(PW, "trezor")
    assert "keystore passphrase was right" in str(info.value)
    plain = Keystore.create(tmp_path / "p.key", PW, mnemonic=ABANDON_ABOUT, kdf_cost=FAST)
    with pytest.raises(WrongPassphrase, match="without a BIP39 passphrase"):
        plain.unlock(PW, "TREZOR")


def test_change_passphrase(made, ks_path):
    before = ks_path.read_bytes()
    old_salt = json.loads(before)["kdf"]["salt"]
    assert made.change_passphrase(PW, "new secret words", kdf_cost=FAST) is made
    after = ks_path.read_bytes()
    assert json.loads(after)["kdf"]["salt"] != old_salt
    assert json.loads(after)["aead"]["nonce"] != json.loads(before)["aead"]["nonce"]
    assert stat.S_IMODE(os.stat(ks_path).st_mode) == 0o600
    reopened = Keystore.open(ks_path)
    assert reopened.fingerprint == made.fingerprint and reopened.label == made.label
    assert reopened.created == made.created
    with pytest.raises(WrongPassphrase):
        reopened.unlock(PW)
    assert reopened.mnemonic("new secret words") == ABANDON_ABOUT
    with pytest.raises(WrongPassphrase):
        made.change_passphrase("not it", "x", kdf_cost=FAST)


def test_change_passphrase_refuses_a_file_changed_since_open(made, ks_path, tmp_path):
    stale = Keystore.open(ks_path)
    made.change_passphrase(PW, "second", kdf_cost=FAST)
    current = ks_path.read_bytes()
    with pytest.raises(KeystoreError, match="changed on disk"):
        stale.change_passphrase(PW, "third", kdf_cost=FAST)
    assert ks_path.read_bytes() == current


def test_default_cost(tmp_path):
    path = tmp_path / "default.key"
    ks = Keystore.create(path, PW)
    kdf = json.loads(path.read_bytes())["kdf"]
    assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"]) == ("scrypt", 2 ** 17, 8, 1)
    assert DEFAULT_SCRYPT_N == 2 ** 17
    assert Keystore.open(path).unlock(PW).my_fingerprint.hex() == ks.fingerprint


@pytest.mark.parametrize("cost", [2 ** 13, 2 ** 21, 3 * 2 ** 14, 0, -1, True, 16384.0, "16384"])
def test_kdf_cost_bounds(tmp_path, cost):
    with pytest.raises(KeystoreError, match="kdf_cost"):
        Keystore.create(tmp_path / "c.key", PW, kdf_cost=cost)
    assert not (tmp_path / "c.key").exists()


def test_file_format_fields(made, ks_path):
    raw = ks_path.read_bytes()
    assert raw.startswith(b'{"magic":"msigvault-keystore","version":1,')
    assert raw.endswith(b"}\n") and raw.count(b"\n") == 1
    obj = json.loads(raw)
    assert list(obj) == ["magic", "version", "public", "kdf", "aead", "ciphertext"]
    assert obj["public"] == {"fingerprint": made.fingerprint, "label": "alice laptop",
                             "created": obj["public"]["created"], "bip39_passphrase": False}
    assert len(bytes.fromhex(obj["kdf"]["salt"])) == 16
    assert len(bytes.fromhex(obj["aead"]["nonce"])) == 12
    assert obj["aead"]["name"] == "chacha20-poly1305"
    assert len(bytes.fromhex(obj["ciphertext"])) == 33 + 16  # padded payload + Poly1305 tag


def test_word_count_is_not_visible(tmp_path):
    a = Keystore.create(tmp_path / "12.key", PW, words=12, kdf_cost=FAST)
    b = Keystore.create(tmp_path / "24.key", PW, words=24, kdf_cost=FAST)
    assert len(json.loads(a.path.read_bytes())["ciphertext"]) == len(json.loads(b.path.read_bytes())["ciphertext"])


def test_label_validation(tmp_path):
    ks = Keystore.create(tmp_path / "l.key", PW, label="Zürich vault — key 2", kdf_cost=FAST)
    assert Keystore.open(tmp_path / "l.key").label == "Zürich vault — key 2"
    for bad in ["a\nb", "esc\x1b[31m", "x" * 101]:
        with pytest.raises(KeystoreError, match="label"):
            Keystore.create(tmp_path / "bad.key", PW, label=bad, kdf_cost=FAST)
    assert not (tmp_path / "bad.key").exists()
    assert ks.label


# -- restoring a bad mnemonic ------------------------------------------------------------------


@pytest.mark.parametrize("mnemonic,expect", [
    ("abandon " * 11, "has 11"),
    ("abandon " * 13, "has 13"),
    ("abandon " * 11 + "abuot", "word number 12"),
    ("abandon abandon zzzz abandon abandon abandon abandon abandon abandon abandon abandon about", "word number 3"),
    ("abandon " * 12, "checksum"),
    ("about " + "abandon " * 11, "checksum"),
    ("", "has 0"),
])
def test_restore_rejects_bad_mnemonics(tmp_path, mnemonic, expect):
    with pytest.raises(KeystoreError, match=expect) as info:
        Keystore.create(tmp_path / "r.key", PW, mnemonic=mnemonic, kdf_cost=FAST)
    assert not (tmp_path / "r.key").exists()
    message = str(info.value)
    assert "check" in message  # says what to do
    for token in set(mnemonic.split()):
        assert token not in message.split()
    assert "abuot" not in message and "zzzz" not in message


def test_create_argument_errors(tmp_path):
    p = tmp_path / "e.key"
    with pytest.raises(KeystoreError, match="must not be empty"):
        Keystore.create(p, "", kdf_cost=FAST)
    with pytest.raises(KeystoreError, match="must be text"):
        Keystore.create(p, b"bytes", kdf_cost=FAST)
    with pytest.raises(KeystoreError, match="12, 15, 18, 21 or 24"):
        Keystore.create(p, PW, words=13, kdf_cost=FAST)
    with pytest.raises(KeystoreError, match="cannot be encoded"):
        Keystore.create(p, "bad\udc80", kdf_cost=FAST)
    assert not p.exists()
    with pytest.raises(TypeError):
        Keystore()
    assert issubclass(WrongPassphrase, KeystoreError) and issubclass(CorruptKeystore, KeystoreError)
    assert issubclass(KeystoreError, MsigvaultError)


# -- entropy: OS CSPRNG only, fail closed --------------------------------------------------------


def test_rng_failure_fails_closed(tmp_path, monkeypatch):
    def broken(n):
        raise NotImplementedError("no randomness source")

    monkeypatch.setattr(os, "urandom", broken)
    with pytest.raises(KeystoreError, match="random number generator failed"):
        Keystore.create(tmp_path / "r.key", PW, kdf_cost=FAST)
    assert list(tmp_path.iterdir()) == []


def test_constant_rng_output_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "urandom", lambda n: bytes(n))
    with pytest.raises(KeystoreError, match="constant bytes"):
        Keystore.create(tmp_path / "r.key", PW, kdf_cost=FAST)
    assert list(tmp_path.iterdir()) == []


def test_short_rng_output_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "urandom", lambda n: b"\x01\x02")
    with pytest.raises(KeystoreError, match="random number generator failed"):
        Keystore.create(tmp_path / "r.key", PW, kdf_cost=FAST)
    assert list(tmp_path.iterdir()) == []


def test_entropy_comes_from_os_urandom(tmp_path, monkeypatch):
    calls = []
    real = os.urandom

    def spy(n):
        calls.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", spy)
    Keystore.create(tmp_path / "s.key", PW, words=18, kdf_cost=FAST)
    assert 24 in calls and 16 in calls and 12 in calls  # entropy, salt, nonce


# -- wrong passphrase, damaged and tampered files ---------------------------------------------


def test_wrong_passphrase(made):
    with pytest.raises(WrongPassphrase) as info:
        made.unlock("correct horse battery stapler")
    assert str(info.value).startswith("wrong passphrase or corrupted keystore")
    with pytest.raises(WrongPassphrase):
        made.mnemonic("Correct horse battery staple")
    with pytest.raises(KeystoreError, match="must not be empty"):
        made.unlock("")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(KeystoreError, match="no such file"):
        Keystore.open(tmp_path / "nope.key")
    with pytest.raises(KeystoreError, match="cannot read keystore"):
        Keystore.open(tmp_path)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.key"
    p.write_bytes(b"")
    with pytest.raises(CorruptKeystore, match="is empty"):
        Keystore.open(p)


@pytest.mark.parametrize("content", [
    b"hello world\n", b"\x00" * 200, b'{"some": "json"}\n', b"xprv9s21ZrQH143K3h3fDYiay8mocZ3a\n",
    b'{"magic":"something-else","version":1}\n',
])
def test_not_a_keystore(tmp_path, content):
    p = tmp_path / "other.key"
    p.write_bytes(content)
    with pytest.raises(CorruptKeystore, match="not a msigvault keystore"):
        Keystore.open(p)


def test_too_large(tmp_path):
    p = tmp_path / "big.key"
    p.write_bytes(b'{"magic":"msigvault-keystore"' + b" " * 20000 + b"}\n")
    with pytest.raises(CorruptKeystore, match="too large"):
        Keystore.open(p)


def test_truncated_file(made, ks_path):
    raw = ks_path.read_bytes()
    for cut in [40, len(raw) // 2, len(raw) - 40, len(raw) - 2, len(raw) - 1]:
        ks_path.write_bytes(raw[:cut])
        with pytest.raises(CorruptKeystore, match="truncated"):
            Keystore.open(ks_path)
    # a truncated file that still ends like the real one is damaged, not readable
    ks_path.write_bytes(raw[:len(raw) // 2] + b"}\n")
    with pytest.raises(CorruptKeystore, match="damaged"):
        Keystore.open(ks_path)


def test_future_version(made, ks_path):
    rewrite(ks_path, lambda o: o.update(version=2))
    with pytest.raises(CorruptKeystore, match="version 2, newer .* upgrade msigvault"):
        Keystore.open(ks_path)


def test_non_canonical_file_is_refused(made, ks_path):
    obj = json.loads(ks_path.read_bytes())
    ks_path.write_text(json.dumps(obj, indent=2) + "\n")  # still starts differently -> not ours
    with pytest.raises(CorruptKeystore):
        Keystore.open(ks_path)
    ks_path.write_text(json.dumps(obj, separators=(",", ": ")) + "\n")
    with pytest.raises(CorruptKeystore):
        Keystore.open(ks_path)
    ks_path.write_bytes(ks_path.read_bytes()[:-1] + b"\r\n")
    with pytest.raises(CorruptKeystore):
        Keystore.open(ks_path)


def test_duplicate_json_keys_are_refused(made, ks_path):
    raw = ks_path.read_bytes()
    doubled = raw.replace(b'"label":"alice laptop"', b'"label":"x","label":"alice laptop"')
    ks_path.write_bytes(doubled)
    with pytest.raises(CorruptKeystore, match="damaged"):
        Keystore.open(ks_path)


def test_hostile_kdf_parameters_are_refused_before_running_scrypt(made, ks_path, monkeypatch):
    monkeypatch.setattr(ksmod, "Scrypt", None)  # any attempt to run the KDF would crash
    for n, r, p in [(2 ** 30, 8, 1), (2 ** 13, 8, 1), (2 ** 17 + 1, 8, 1), (2 ** 20, 16, 1),
                    (2 ** 17, 0, 1), (2 ** 17, 8, 0), (2 ** 17, 8, 1000)]:
        rewrite(ks_path, lambda o: o["kdf"].update(n=n, r=r, p=p))
        with pytest.raises(CorruptKeystore, match="scrypt parameters"):
            Keystore.open(ks_path)


def _field_positions(raw: bytes) -> "dict[str, list[int]]":
    """Byte offsets into the file: first and last byte of each field value, some in the middle."""
    obj = json.loads(raw)
    text = raw.decode()

    def span(needle):
        i = text.index(needle)
        return [i, i + len(needle) // 2, i + len(needle) - 1]

    ct = obj["ciphertext"]
    body, tag = ct[:-32], ct[-32:]
    return {
        "magic": span("msigvault-keystore"),
        "version": [text.index('"version":1') + len('"version":')],
        "fingerprint": span(obj["public"]["fingerprint"]),
        "label": span(obj["public"]["label"]),
        "created": span(obj["public"]["created"]),
        "bip39_flag": span("false"),
        "kdf_n": span('"n":16384'),
        "kdf_r": [text.index('"r":8') + 4],
        "kdf_p": [text.index('"p":1') + 4],
        "salt": span(obj["kdf"]["salt"]),
        "check": span(obj["kdf"]["check"]),
        "aead": span("chacha20-poly1305"),
        "nonce": span(obj["aead"]["nonce"]),
        "ciphertext": span(body),
        "tag": span(tag),
        "structure": [0, len(raw) - 2, len(raw) - 1],
    }


def test_every_flipped_byte_at_chosen_positions_is_refused(made, ks_path):
    raw = ks_path.read_bytes()
    positions = _field_positions(raw)
    tried = 0
    for field, offsets in positions.items():
        for pos in offsets:
            for mask in (0x01, 0x08, 0x80):
                bad = bytearray(raw)
                bad[pos] ^= mask
                ks_path.write_bytes(bytes(bad))
                with pytest.raises(KeystoreError):
                    Keystore.open(ks_path).unlock(PW)
                tried += 1
    assert tried >= 100
    ks_path.write_bytes(raw)
    assert Keystore.open(ks_path).unlock(PW).my_fingerprint.hex() == made.fingerprint


_FLIP_SOURCE: "dict[str, bytes]" = {}


@given(data=st.data())
def test_any_single_byte_change_is_refused(tmp_path_factory, data):
    """Any byte of the file, any change: refused (the format is canonical, so none is harmless)."""
    if "raw" not in _FLIP_SOURCE:
        made = tmp_path_factory.mktemp("flip") / "k.key"
        Keystore.create(made, PW, mnemonic=ABANDON_ABOUT, label="flip", kdf_cost=FAST)
        _FLIP_SOURCE["raw"] = made.read_bytes()
    raw = _FLIP_SOURCE["raw"]
    pos = data.draw(st.integers(0, len(raw) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="xor")
    bad = bytearray(raw)
    bad[pos] ^= mask
    path = tmp_path_factory.mktemp("flipped") / "k.key"
    path.write_bytes(bytes(bad))
    with pytest.raises(KeystoreError):
        Keystore.open(path).unlock(PW)


@pytest.mark.parametrize("field,change,error", [
    ("salt", lambda o: o["kdf"].update(salt=_flip_hex(o["kdf"]["salt"], 0)), WrongPassphrase),
    ("check", lambda o: o["kdf"].update(check=_flip_hex(o["kdf"]["check"], 15)), WrongPassphrase),
    ("kdf n", lambda o: o["kdf"].update(n=2 ** 15), WrongPassphrase),
    ("kdf n up", lambda o: o["kdf"].update(n=2 ** 16), WrongPassphrase),  # r, p: only 8, 1 are read
    ("nonce", lambda o: o["aead"].update(nonce=_flip_hex(o["aead"]["nonce"], 11)), CorruptKeystore),
    ("ciphertext", lambda o: o.update(ciphertext=_flip_hex(o["ciphertext"], 0)), CorruptKeystore),
    ("tag", lambda o: o.update(ciphertext=_flip_hex(o["ciphertext"], 48)), CorruptKeystore),
    ("label", lambda o: o["public"].update(label="bob laptop"), CorruptKeystore),
    ("fingerprint", lambda o: o["public"].update(fingerprint="deadbeef"), CorruptKeystore),
    ("created", lambda o: o["public"].update(created="2001-01-01T00:00:00Z"), CorruptKeystore),
    ("bip39 flag", lambda o: o["public"].update(bip39_passphrase=True), CorruptKeystore),
])
def test_well_formed_tampering_is_detected(made, ks_path, field, change, error):
    """Changes that keep the file well formed reach the crypto, which must catch them."""
    rewrite(ks_path, change)
    ks = Keystore.open(ks_path)  # public metadata is readable, not yet trusted
    with pytest.raises(error) as info:
        if field == "bip39 flag":
            ks.unlock(PW, "anything")
        else:
            ks.unlock(PW)
    if error is CorruptKeystore:
        assert "passphrase is right" in str(info.value)
    with pytest.raises(error):
        ks.mnemonic(PW)


def _flip_hex(h: str, byte_index: int) -> str:
    b = bytearray.fromhex(h)
    b[byte_index] ^= 0x01
    return b.hex()


def test_fingerprint_is_rechecked_after_decryption(tmp_path, monkeypatch):
    """A file that authenticates but records the wrong fingerprint (forged by someone who knew
    the passphrase) is refused."""
    path = tmp_path / "forged.key"
    with monkeypatch.context() as m:
        m.setattr(ksmod, "_master_fingerprint", lambda entropy, b39: "deadbeef")
        Keystore.create(path, PW, mnemonic=ABANDON_ABOUT, kdf_cost=FAST)
    ks = Keystore.open(path)
    assert ks.fingerprint == "deadbeef"
    with pytest.raises(CorruptKeystore, match="tampered"):
        ks.unlock(PW)
    with pytest.raises(CorruptKeystore, match="tampered"):
        ks.mnemonic(PW)
    with pytest.raises(CorruptKeystore, match="tampered"):
        ks.change_passphrase(PW, "other", kdf_cost=FAST)


# -- files: mode, atomicity, no overwrite ------------------------------------------------------


def test_file_mode_is_0600(made, ks_path):
    assert stat.S_IMODE(os.stat(ks_path).st_mode) == 0o600


def test_loose_file_mode_is_logged(made, ks_path, caplog):
    os.chmod(ks_path, 0o644)
    with caplog.at_level(logging.WARNING, logger="msigvault.keys.keystore"):
        Keystore.open(ks_path)
    assert "chmod 600" in caplog.text


def test_create_refuses_to_overwrite(made, ks_path):
    before = ks_path.read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        Keystore.create(ks_path, "other", kdf_cost=FAST)
    assert ks_path.read_bytes() == before
    other = ks_path.parent / "notes.txt"
    other.write_text("not a keystore")
    with pytest.raises(KeystoreError, match="already exists"):
        Keystore.create(other, PW, kdf_cost=FAST)
    assert other.read_text() == "not a keystore"


def test_create_refuses_a_file_that_appears_during_the_write(tmp_path, monkeypatch):
    path = tmp_path / "race.key"
    real_link = os.link

    def racing_link(src, dst, *a, **k):
        with open(dst, "w") as f:
            f.write("someone else's file")
        return real_link(src, dst, *a, **k)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(KeystoreError, match="already exists"):
        Keystore.create(path, PW, kdf_cost=FAST)
    assert path.read_text() == "someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.key"]


@pytest.mark.parametrize("exc", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_interrupted_create_leaves_nothing(tmp_path, monkeypatch, exc):
    path = tmp_path / "new.key"

    def crash(*a, **k):
        raise exc

    monkeypatch.setattr(os, "link", crash)
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises((KeystoreError, KeyboardInterrupt)) as info:
        Keystore.create(path, PW, kdf_cost=FAST)
    if isinstance(info.value, KeystoreError):
        assert "no keystore was written" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_interrupted_rewrite_keeps_previous_file(made, ks_path, monkeypatch, exc):
    before = ks_path.read_bytes()
    listing = sorted(p.name for p in ks_path.parent.iterdir())

    def crash(*a, **k):
        raise exc

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash)
        m.setattr(os, "link", crash)
        with pytest.raises((KeystoreError, KeyboardInterrupt)) as info:
            made.change_passphrase(PW, "new one", kdf_cost=FAST)
    if isinstance(info.value, KeystoreError):
        assert "previous file is unchanged" in str(info.value)
    assert ks_path.read_bytes() == before
    assert sorted(p.name for p in ks_path.parent.iterdir()) == listing  # no temp file left
    assert stat.S_IMODE(os.stat(ks_path).st_mode) == 0o600
    assert Keystore.open(ks_path).unlock(PW).my_fingerprint.hex() == made.fingerprint
    assert made.unlock(PW).my_fingerprint.hex() == made.fingerprint  # object still consistent


# -- secrets never leak ---------------------------------------------------------------------------


def test_repr_shows_only_path_fingerprint_label(made, ks_path):
    text = repr(made)
    assert text == (f"Keystore(path={str(ks_path)!r}, fingerprint={made.fingerprint!r}, "
                    f"label='alice laptop')")
    assert str(made) == text


def test_no_secret_in_repr_messages_or_logs(tmp_path, caplog):
    mnemonic = BIP39_VECTORS[1][1]  # legal winner thank year ... yellow
    xprv_plain = HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic, "TREZOR")).to_base58()
    secrets_ = [PW, "TREZOR", mnemonic, BIP39_VECTORS[1][0], BIP39_VECTORS[1][2], xprv_plain,
                BIP39_VECTORS[1][3]]
    words = set(mnemonic.split())
    path = tmp_path / "s.key"
    texts = []
    with caplog.at_level(logging.DEBUG):
        ks = Keystore.create(path, PW, mnemonic=mnemonic, bip39_passphrase="TREZOR",
                             label="secrets test", kdf_cost=FAST)
        texts += [repr(ks), str(ks), repr(Keystore.open(path))]
        attempts = [
            lambda: ks.unlock("wrong " + PW, "TREZOR"),
            lambda: ks.unlock(PW, "TREZOR!"),
            lambda: ks.unlock(PW),
            lambda: Keystore.create(path, PW, mnemonic=mnemonic, kdf_cost=FAST),
            lambda: Keystore.create(tmp_path / "x.key", PW, mnemonic=mnemonic + " legal", kdf_cost=FAST),
            lambda: Keystore.create(tmp_path / "x.key", PW, mnemonic=mnemonic.replace("yellow", "yelow"),
                                    kdf_cost=FAST),
            lambda: Keystore.create(tmp_path / "x.key", PW, mnemonic=mnemonic.replace("legal", "year", 1),
                                    kdf_cost=FAST),
            lambda: ks.change_passphrase("TREZOR", PW, kdf_cost=FAST),
        ]
        for attempt in attempts:
            with pytest.raises(KeystoreError) as info:
                attempt()
            texts += texts_of(info.value)
        rewrite(path, lambda o: o["public"].update(label="tampered"))
        with pytest.raises(CorruptKeystore) as info:
            Keystore.open(path).unlock(PW, "TREZOR")
        texts += texts_of(info.value)
    texts.append(caplog.text)
    for text in texts:
        for secret in secrets_:
            assert secret not in text
        assert "yelow" not in text
        assert not words & set(text.replace("'", " ").replace('"', " ").split()), text
    assert b"legal" not in path.read_bytes() and PW.encode() not in path.read_bytes()


# -- read_passphrase -----------------------------------------------------------------------------


@pytest.fixture
def no_prompt(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("getpass must not be called")

    monkeypatch.setattr(getpass, "getpass", fail)
    monkeypatch.delenv("MSIGVAULT_PASSPHRASE", raising=False)


def test_read_passphrase_from_env(monkeypatch, no_prompt):
    monkeypatch.setenv("MSIGVAULT_PASSPHRASE", "from the env")
    assert read_passphrase(prompt="Passphrase: ") == "from the env"
    monkeypatch.setenv("OTHER_VAR", "other")
    assert read_passphrase(prompt="Passphrase: ", env_var="OTHER_VAR") == "other"


def test_read_passphrase_empty_env_is_refused(monkeypatch, no_prompt):
    monkeypatch.setenv("MSIGVAULT_PASSPHRASE", "")
    with pytest.raises(KeystoreError, match="empty passphrase is not allowed.*MSIGVAULT_PASSPHRASE"):
        read_passphrase(prompt="Passphrase: ")


def _pipe(data: bytes) -> int:
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


@pytest.mark.parametrize("data,expected", [
    ("pässwörd with spaces\nsecond line\n".encode(), "pässwörd with spaces"),
    (b"crlf\r\n", "crlf"),
    (b"no newline at all", "no newline at all"),
    (b"  keep surrounding spaces  \n", "  keep surrounding spaces  "),
])
def test_read_passphrase_from_pipe_fd(monkeypatch, no_prompt, data, expected):
    monkeypatch.setenv("MSIGVAULT_PASSPHRASE", "env loses to fd")
    r = _pipe(data)
    try:
        assert read_passphrase(prompt="Passphrase: ", fd=r, confirm=True) == expected
        os.fstat(r)  # the descriptor belongs to the caller: still open
    finally:
        os.close(r)


def test_read_passphrase_fd_stops_at_first_newline(no_prompt):
    r = _pipe(b"first\nsecond\n")
    try:
        assert read_passphrase(prompt="", fd=r) == "first"
        assert read_passphrase(prompt="", fd=r) == "second"
    finally:
        os.close(r)


@pytest.mark.parametrize("data,expect", [
    (b"", "empty passphrase"),
    (b"\n", "empty passphrase"),
    (b"\xff\xfe secret\n", "not valid UTF-8"),
    (b"x" * 2000 + b"\n", "more than 1024 bytes"),
])
def test_read_passphrase_bad_fd_input(no_prompt, data, expect):
    r = _pipe(data)
    try:
        with pytest.raises(KeystoreError, match=expect) as info:
            read_passphrase(prompt="", fd=r)
        assert "secret" not in str(info.value) and "xxxx" not in str(info.value)
    finally:
        os.close(r)


def test_read_passphrase_closed_fd(no_prompt):
    r = _pipe(b"x")
    os.close(r)
    with pytest.raises(KeystoreError, match=f"file descriptor {r}"):
        read_passphrase(prompt="", fd=r)


def _scripted_getpass(monkeypatch, answers):
    prompts = []
    it = iter(answers)

    def fake(prompt="Password: ", stream=None):
        prompts.append(prompt)
        value = next(it)
        if isinstance(value, BaseException):
            raise value
        if value is getpass.GetPassWarning:
            import warnings
            warnings.warn("Can not control echo on the terminal.", getpass.GetPassWarning)
            return "echoed secret"
        return value

    monkeypatch.setattr(getpass, "getpass", fake)
    monkeypatch.delenv("MSIGVAULT_PASSPHRASE", raising=False)
    return prompts


def test_read_passphrase_prompts_and_confirms(monkeypatch):
    prompts = _scripted_getpass(monkeypatch, ["typed", "typed"])
    assert read_passphrase(prompt="New passphrase: ", confirm=True) == "typed"
    assert prompts[0] == "New passphrase: " and len(prompts) == 2


def test_read_passphrase_prompt_without_confirm(monkeypatch):
    prompts = _scripted_getpass(monkeypatch, ["typed"])
    assert read_passphrase(prompt="Passphrase: ") == "typed"
    assert len(prompts) == 1


def test_read_passphrase_env_var_none_forces_prompt(monkeypatch):
    _scripted_getpass(monkeypatch, ["typed"])
    monkeypatch.setenv("MSIGVAULT_PASSPHRASE", "ignored")
    assert read_passphrase(prompt="Passphrase: ", env_var=None) == "typed"


@pytest.mark.parametrize("answers,expect", [
    (["alpha-typed", "beta-typed"], "do not match"),
    ([""], "empty passphrase"),
    ([EOFError()], "no passphrase was entered"),
    ([getpass.GetPassWarning], "without echo"),
])
def test_read_passphrase_prompt_errors(monkeypatch, answers, expect):
    _scripted_getpass(monkeypatch, answers)
    with pytest.raises(KeystoreError, match=expect) as info:
        read_passphrase(prompt="Passphrase: ", confirm=True)
    for text in texts_of(info.value):
        assert "alpha-typed" not in text and "beta-typed" not in text and "echoed" not in text
