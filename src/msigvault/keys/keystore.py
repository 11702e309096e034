"""Encrypted keystore: one BIP39 mnemonic's entropy, encrypted at rest with a passphrase.

The file format (version 1) is specified in ``docs/keystore.md``. In short: a one-line canonical
JSON envelope whose public part (master fingerprint, label, creation time, whether a BIP39
passphrase is in use) is readable without the passphrase; scrypt derives a 256-bit key from the
passphrase; ChaCha20-Poly1305 encrypts the entropy, with every header field as associated data.

A BIP39 passphrase (the "25th word") is never stored: only a flag saying that one is in use. The
keyholder supplies it at :meth:`Keystore.unlock`, and the stored master fingerprint tells a wrong one
from the right one.

Nothing secret (mnemonic, entropy, seed, passphrases, extended private keys) appears in a repr,
an exception message, an exception's context, or a log line.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import hmac
import json
import logging
import os
import re
import stat
import unicodedata
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NoReturn, TypedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from embit import bip39, ec
from embit.bip32 import HDKey

from ..errors import KeystoreError
from ..scripttypes import ScriptType, ScriptTypeLike

if TYPE_CHECKING:
    from ..network import Network
    from .bip32 import ExtendedKey
    from .cosigner import Cosigner
from ..fileio import FileExists, write_atomic

__all__ = [
    "Keystore", "SecretHDKey", "read_passphrase", "KeystoreError", "WrongPassphrase", "CorruptKeystore",
    "FORMAT_VERSION", "MAGIC", "DEFAULT_SCRYPT_N", "MIN_SCRYPT_N", "MAX_SCRYPT_N", "SCRYPT_R", "SCRYPT_P",
]

log = logging.getLogger(__name__)

MAGIC = "msigvault-keystore"
FORMAT_VERSION = 1

#: scrypt cost used unless ``kdf_cost`` says otherwise (about 128 MiB of memory).
DEFAULT_SCRYPT_N = 2 ** 17
#: lowest scrypt N accepted, for fast test suites only (16 MiB of memory).
MIN_SCRYPT_N = 2 ** 14
#: highest scrypt N accepted, at creation and when reading (1 GiB of memory).
MAX_SCRYPT_N = 2 ** 20
#: the only scrypt r and p written, and the only ones a file may ask for: nothing msigvault
#: makes uses more, and a hostile file must not make an unlock run for minutes (N=2^20, r=8,
#: p=16 takes about 45 s).
SCRYPT_R = 8
SCRYPT_P = 1
_MAX_SCRYPT_WORK = MAX_SCRYPT_N * SCRYPT_R * SCRYPT_P  # N*r*p: the most create() can produce
_MAX_SCRYPT_MEMORY = 128 * MAX_SCRYPT_N * SCRYPT_R  # 1 GiB
_KDF_RANGE = "N a power of two from 2^14 to 2^20, r = 8, p = 1"

_KDF_NAME = "scrypt"
_AEAD_NAME = "chacha20-poly1305"
_SALT_LEN = 16
_NONCE_LEN = 12
_KEY_LEN = 32
_CHECK_LEN = 16
_TAG_LEN = 16
_CHECK_INFO = b"msigvault-keystore/1 passphrase check"
_PAYLOAD_LEN = 33  # one length byte + entropy (16..32 bytes) + zero padding: hides the word count
_CIPHERTEXT_LEN = _PAYLOAD_LEN + _TAG_LEN
_MAX_FILE_SIZE = 16 * 1024
_MAX_LABEL_LEN = 100
_MAX_PASSPHRASE_BYTES = 1024

_WORDS_TO_BYTES = {12: 16, 15: 20, 18: 24, 21: 28, 24: 32}
_BYTES_TO_WORDS = {v: k for k, v in _WORDS_TO_BYTES.items()}
_WORDSET = frozenset(bip39.WORDLIST)

_PREFIX = b'{"magic":"' + MAGIC.encode() + b'"'
_HEX_RE = re.compile(r"[0-9a-f]*\Z")
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{8}\Z")
_CREATED_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
_CREATED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class WrongPassphrase(KeystoreError):
    """The keystore passphrase (or the BIP39 passphrase) does not open this keystore."""

    code = "keystore.wrong-passphrase"


class CorruptKeystore(KeystoreError):
    """The file is not a keystore, is truncated, was modified, or uses an unsupported format."""

    code = "keystore.corrupt"


# -- keys that do not print themselves ---------------------------------------------------------


class _SecretPrivateKey(ec.PrivateKey):
    """embit PrivateKey whose repr and str hide the key (``wif()`` still exports it)."""

    def __repr__(self) -> str:
        return "PrivateKey(<secret>)"

    __str__ = __repr__


class SecretHDKey(HDKey):
    """An embit ``HDKey`` whose ``repr``, ``str`` and f-string show no key material.

    What :meth:`Keystore.unlock` returns. Everything else is embit's ``HDKey``: ``to_base58()``
    (and ``to_string()``, ``serialize()``) still export the key when asked explicitly, and
    children (``child``, ``derive``, ``to_public``, ``taproot_tweak``) stay redacted.
    """

    def __init__(self, key: "ec.PrivateKey | ec.PublicKey", chain_code: bytes, version: "bytes | None" = None,
                 depth: int = 0, fingerprint: bytes = b"\x00\x00\x00\x00", child_number: int = 0) -> None:
        if isinstance(key, ec.PrivateKey) and not isinstance(key, _SecretPrivateKey):
            key = _SecretPrivateKey(key.secret, key.compressed, key.network)
        super().__init__(key, chain_code, version=version, depth=depth, fingerprint=fingerprint,
                         child_number=child_number)

    @classmethod
    def _of(cls, k: HDKey) -> "SecretHDKey":
        return cls(k.key, k.chain_code, version=k.version, depth=k.depth,
                   fingerprint=k.fingerprint, child_number=k.child_number)

    def child(self, index: int, hardened: bool = False) -> "SecretHDKey":
        return SecretHDKey._of(super().child(index, hardened))

    def taproot_tweak(self, h: bytes = b"") -> "SecretHDKey":
        return SecretHDKey._of(super().taproot_tweak(h))

    def __repr__(self) -> str:
        kind = "private" if self.is_private else "public"
        return (f"SecretHDKey({kind}, depth={self.depth}, "
                f"fingerprint={self.my_fingerprint.hex()})")

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)


# -- the keystore -----------------------------------------------------------------------------


class Keystore:
    """One encrypted key file. Construct with :meth:`create` or :meth:`open`.

    The object holds only the file's contents (public metadata and ciphertext), never a secret:
    every secret is derived on demand from a passphrase and dropped after use.
    """

    __slots__ = ("_path", "_raw", "_header", "_ciphertext")
    _path: Path
    _raw: bytes
    _header: "_Header"
    _ciphertext: bytes

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("use Keystore.create(...) or Keystore.open(...)")

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def create(cls, path: "str | os.PathLike[str]", passphrase: str, *, mnemonic: "str | None" = None,
               words: int = 24, label: str = "", bip39_passphrase: str = "",
               kdf_cost: "int | None" = None) -> "Keystore":
        """Create a new keystore file at ``path`` and return it.

        Without ``mnemonic`` a fresh one of ``words`` words (12, 15, 18, 21 or 24) is made from the
        operating system's CSPRNG; with ``mnemonic`` that backup is restored (``words`` is then
        ignored). ``bip39_passphrase`` is used only to compute the master fingerprint; it is not
        stored, only the fact that there is one. ``kdf_cost`` is the scrypt N (a power of two from
        2**14 to 2**20; default 2**17): lower it only in tests. Never overwrites an existing file.
        """
        path = _file_path(path)
        key_input = _passphrase_bytes(passphrase, "keystore passphrase")
        b39 = _bip39_passphrase(bip39_passphrase)
        label = _check_label(label)
        n = _check_cost(kdf_cost)
        if mnemonic is None:
            if isinstance(words, bool) or words not in _WORDS_TO_BYTES:
                raise KeystoreError(f"a BIP39 mnemonic has 12, 15, 18, 21 or 24 words, not {words!r}", field="words")
            entropy = _fresh_entropy(_WORDS_TO_BYTES[words])
        else:
            entropy = _entropy_from_mnemonic(mnemonic)
        _refuse_existing(path)
        public: _Public = {
            "fingerprint": _master_fingerprint(entropy, b39),
            "label": label,
            "created": _dt.datetime.now(_dt.timezone.utc).strftime(_CREATED_FORMAT),
            "bip39_passphrase": bool(b39),
        }
        data = _seal(public, entropy, key_input, n)
        ks = cls._from_bytes(path, data)
        _write(path, data, overwrite=False)
        return ks

    @classmethod
    def open(cls, path: "str | os.PathLike[str]") -> "Keystore":
        """Read a keystore's public metadata. No passphrase needed; nothing is decrypted yet.

        The metadata is not authenticated until :meth:`unlock` (or :meth:`mnemonic`) succeeds.
        """
        path = _file_path(path)
        data = _read(path)
        return cls._from_bytes(path, data)

    @classmethod
    def _from_bytes(cls, path: Path, data: bytes) -> "Keystore":
        header, ciphertext = _parse(data, path)
        ks = object.__new__(cls)
        ks._path = path
        ks._raw = data
        ks._header = header
        ks._ciphertext = ciphertext
        return ks

    # -- public metadata ---------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def fingerprint(self) -> str:
        """Master key fingerprint, 8 lower-case hex digits (with the BIP39 passphrase, if any)."""
        return self._header["public"]["fingerprint"]

    @property
    def label(self) -> str:
        return self._header["public"]["label"]

    @property
    def created(self) -> _dt.datetime:
        """Creation time (UTC, whole seconds)."""
        text = self._header["public"]["created"]
        return _dt.datetime.strptime(text, _CREATED_FORMAT).replace(tzinfo=_dt.timezone.utc)

    @property
    def uses_bip39_passphrase(self) -> bool:
        """True if the key was made with a BIP39 passphrase, which :meth:`unlock` then needs."""
        return self._header["public"]["bip39_passphrase"]

    @property
    def kdf_params(self) -> "dict[str, int]":
        """The scrypt parameters: ``{"n": ..., "r": ..., "p": ...}``."""
        kdf = self._header["kdf"]
        return {"n": kdf["n"], "r": kdf["r"], "p": kdf["p"]}

    def __repr__(self) -> str:
        return (f"Keystore(path={str(self._path)!r}, fingerprint={self.fingerprint!r}, "
                f"label={self.label!r})")

    __str__ = __repr__

    # -- secrets -----------------------------------------------------------------------------

    def unlock(self, passphrase: str, bip39_passphrase: str = "") -> SecretHDKey:
        """Decrypt and return the BIP32 root private key (a :class:`SecretHDKey`: an embit
        ``HDKey``, mainnet ``xprv`` version, whose repr and str show no key material).

        Callers re-version it for other networks. Raises :class:`WrongPassphrase` for a wrong
        keystore or BIP39 passphrase and :class:`CorruptKeystore` for a damaged or modified file.
        """
        b39 = _bip39_passphrase(bip39_passphrase)
        if self.uses_bip39_passphrase and not b39:
            raise WrongPassphrase(
                f"keystore {self._path} (fingerprint {self.fingerprint}) was created with a BIP39 "
                "passphrase: supply it as well as the keystore passphrase",
                path=self._path, fingerprint=self.fingerprint,
            )
        if not self.uses_bip39_passphrase and b39:
            raise WrongPassphrase(
                f"keystore {self._path} (fingerprint {self.fingerprint}) was created without a BIP39 "
                "passphrase: unlock it without one",
                path=self._path, fingerprint=self.fingerprint,
            )
        entropy = self._decrypt(passphrase)
        root = _root(entropy, b39)
        del entropy  # no raw secret left among this frame's locals if the check below raises
        if root.my_fingerprint.hex() != self.fingerprint:
            del root
            if self.uses_bip39_passphrase:
                raise WrongPassphrase(
                    f"the BIP39 passphrase does not give this keystore's key (fingerprint "
                    f"{self.fingerprint}); the keystore passphrase was right: check the BIP39 "
                    "passphrase and try again",
                    fingerprint=self.fingerprint,
                )
            raise CorruptKeystore(_tampered_fingerprint_message(self._path, self.fingerprint),
                                  path=self._path, fingerprint=self.fingerprint)
        return root

    def root_key(self, passphrase: str, bip39_passphrase: str = "") -> "ExtendedKey":
        """The master private key as a msigvault ExtendedKey (what the signer takes)."""
        from .bip32 import ExtendedKey

        return ExtendedKey.from_bytes(self.unlock(passphrase, bip39_passphrase).serialize())

    def cosigner(self, network: "Network | str", passphrase: str, *, script: ScriptTypeLike = ScriptType.WSH, account: int = 0,
                 bip39_passphrase: str = "") -> "Cosigner":
        """This key's cosigner record for ``network`` and ``script`` (BIP48; BIP45 for sh, BIP87 for tr)."""
        from ..network import Network
        from .cosigner import Cosigner
        from .paths import default_account_path

        net = Network.from_name(network)
        path = default_account_path(net, ScriptType.parse(script), account)  # checked before the slow KDF
        root = self.root_key(passphrase, bip39_passphrase)
        return Cosigner.from_root(root, path, net)

    def mnemonic(self, passphrase: str) -> str:
        """The BIP39 mnemonic, for the one-time paper backup. Show it, never store or log it."""
        entropy = self._decrypt(passphrase)
        if not self.uses_bip39_passphrase:
            if _master_fingerprint(entropy, "") != self.fingerprint:
                raise CorruptKeystore(_tampered_fingerprint_message(self._path, self.fingerprint),
                                      path=self._path, fingerprint=self.fingerprint)
        return bip39.mnemonic_from_bytes(entropy)

    def change_passphrase(self, passphrase: str, new_passphrase: str, *,
                          kdf_cost: "int | None" = None) -> "Keystore":
        """Re-encrypt under ``new_passphrase`` (fresh salt and nonce) and replace the file atomically.

        ``kdf_cost`` is the new scrypt N (default 2**17, whatever the old file used). Returns self,
        now describing the new file. The previous file stays intact if the write fails. The old
        ciphertext may survive on the disk's free blocks or in backups: anyone who has a copy of
        the old file can still open it with the old passphrase.
        """
        key_input = _passphrase_bytes(new_passphrase, "new keystore passphrase")
        n = _check_cost(kdf_cost)
        entropy = self._decrypt(passphrase)
        if not self.uses_bip39_passphrase:
            if _master_fingerprint(entropy, "") != self.fingerprint:
                raise CorruptKeystore(_tampered_fingerprint_message(self._path, self.fingerprint),
                                      path=self._path, fingerprint=self.fingerprint)
        if _read(self._path) != self._raw:
            raise KeystoreError(
                f"keystore {self._path} changed on disk since it was opened: open it again and retry",
                path=self._path,
            )
        data = _seal(self._header["public"].copy(), entropy, key_input, n)
        new = Keystore._from_bytes(self._path, data)
        _write(self._path, data, overwrite=True)
        self._raw, self._header, self._ciphertext = new._raw, new._header, new._ciphertext
        return self

    def _decrypt(self, passphrase: str) -> bytes:
        """The entropy, after checking the passphrase and authenticating the whole file."""
        key_input = _passphrase_bytes(passphrase, "keystore passphrase")
        kdf = self._header["kdf"]
        key, check = _derive(key_input, bytes.fromhex(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"])
        if not hmac.compare_digest(check, bytes.fromhex(kdf["check"])):
            raise WrongPassphrase(
                f"wrong passphrase or corrupted keystore {self._path} (fingerprint "
                f"{self.fingerprint}): check the passphrase and try again; if it is surely right, "
                "the file is damaged: restore it from a copy or from the paper backup",
                path=self._path, fingerprint=self.fingerprint,
            )
        nonce = bytes.fromhex(self._header["aead"]["nonce"])
        payload = None
        try:
            payload = ChaCha20Poly1305(key).decrypt(nonce, self._ciphertext, _aad(self._header))
        except InvalidTag:
            pass
        if payload is None:
            raise CorruptKeystore(
                f"keystore {self._path} was modified or corrupted: the passphrase is right but the "
                "file fails authentication; do not use it: restore it from a copy or from the "
                "paper backup",
                path=self._path,
            )
        size = payload[0]
        if (len(payload) != _PAYLOAD_LEN or size not in _BYTES_TO_WORDS
                or any(payload[1 + size:])):
            raise CorruptKeystore(
                f"keystore {self._path} holds an invalid payload: it was written by a broken or "
                "foreign program; restore it from the paper backup",
                path=self._path,
            )
        return bytes(payload[1:1 + size])


# -- reading the passphrase ---------------------------------------------------------------------


def read_passphrase(*, prompt: str, confirm: bool = False, env_var: "str | None" = "MSIGVAULT_PASSPHRASE",
                    fd: "int | None" = None) -> str:
    """Read a passphrase for the CLI.

    Sources, first match wins: the open file descriptor ``fd`` (read up to the first newline, which
    is dropped, as is a ``\\r`` before it; the descriptor is not closed); the environment variable
    ``env_var`` if it is set (``env_var=None`` disables it); otherwise the terminal, without echo,
    asked twice when ``confirm`` is true. Refuses an empty passphrase, and refuses to read from a
    terminal it cannot silence.
    """
    if fd is not None:
        value = _read_fd(fd)
        source = f"file descriptor {fd}"
    elif env_var is not None and env_var in os.environ:
        value = os.environ[env_var]
        source = f"environment variable {env_var}"
    else:
        value = _prompt(prompt, confirm)
        source = "the terminal"
    if value == "":
        raise KeystoreError(
            f"an empty passphrase is not allowed (read from {source}): enter a passphrase"
        )
    return value


def _read_fd(fd: int) -> str:
    if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
        raise KeystoreError(f"a passphrase file descriptor is a non-negative number, not {fd!r}")
    buf = bytearray()
    error = None
    while True:
        try:
            chunk = os.read(fd, 1)
        except OSError as e:
            error = e.strerror
            break
        if not chunk or chunk == b"\n":
            break
        buf += chunk
        if len(buf) > _MAX_PASSPHRASE_BYTES:
            error = f"more than {_MAX_PASSPHRASE_BYTES} bytes before a newline"
            break
    if error is not None:
        buf[:] = bytes(len(buf))
        raise KeystoreError(f"cannot read the passphrase from file descriptor {fd}: {error}")
    if buf.endswith(b"\r"):
        del buf[-1]
    value = None
    try:
        value = bytes(buf).decode("utf-8")
    except UnicodeDecodeError:
        pass
    buf[:] = bytes(len(buf))
    if value is None:
        raise KeystoreError(
            f"the passphrase read from file descriptor {fd} is not valid UTF-8 text"
        )
    return value


def _prompt(prompt: str, confirm: bool) -> str:
    outcome = None
    first = second = None
    with warnings.catch_warnings():
        # getpass falls back to an echoing read (with a warning) when it cannot control the
        # terminal; turn that warning into an error so the passphrase is never echoed
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            first = getpass.getpass(prompt)
            if confirm and first:
                second = getpass.getpass("Repeat to confirm: ")
        except getpass.GetPassWarning:
            outcome = "no-tty"
        except EOFError:
            outcome = "eof"
    if outcome == "no-tty":
        raise KeystoreError(
            "cannot read a passphrase without echo: there is no terminal; pass it with "
            "--passphrase-fd or the MSIGVAULT_PASSPHRASE environment variable"
        )
    if outcome == "eof":
        raise KeystoreError("no passphrase was entered (end of input)")
    if confirm and first and first != second:
        raise KeystoreError("the two passphrases do not match: nothing was done; try again")
    assert first is not None  # getpass returned, or one of the errors above was raised
    return first


# -- format: build, parse, seal ------------------------------------------------------------------


class _Public(TypedDict):
    fingerprint: str
    label: str
    created: str
    bip39_passphrase: bool


class _Kdf(TypedDict):
    name: str
    n: int
    r: int
    p: int
    salt: str
    check: str


class _Aead(TypedDict):
    name: str
    nonce: str


class _Header(TypedDict):
    """A keystore file's header (everything but the ciphertext), as :func:`_parse` validated it."""

    magic: str
    version: int
    public: _Public
    kdf: _Kdf
    aead: _Aead


def _header_dict(public: _Public, n: int, r: int, p: int, salt: bytes, check: bytes,
                 nonce: bytes) -> _Header:
    """The header in canonical key order (the order is part of the format)."""
    return {
        "magic": MAGIC,
        "version": FORMAT_VERSION,
        "public": {
            "fingerprint": public["fingerprint"],
            "label": public["label"],
            "created": public["created"],
            "bip39_passphrase": public["bip39_passphrase"],
        },
        "kdf": {"name": _KDF_NAME, "n": n, "r": r, "p": p, "salt": salt.hex(), "check": check.hex()},
        "aead": {"name": _AEAD_NAME, "nonce": nonce.hex()},
    }


def _canonical(obj: "Mapping[str, object]") -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _aad(header: _Header) -> bytes:
    return _canonical(header)


def _serialize(header: _Header, ciphertext: bytes) -> bytes:
    return _canonical({**header, "ciphertext": ciphertext.hex()}) + b"\n"


def _seal(public: _Public, entropy: bytes, key_input: bytes, n: int) -> bytes:
    salt = _fresh_random(_SALT_LEN, "salt")
    nonce = _fresh_random(_NONCE_LEN, "nonce")
    key, check = _derive(key_input, salt, n, SCRYPT_R, SCRYPT_P)
    header = _header_dict(public, n, SCRYPT_R, SCRYPT_P, salt, check, nonce)
    payload = bytes([len(entropy)]) + entropy + bytes(_PAYLOAD_LEN - 1 - len(entropy))
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, payload, _aad(header))
    data = _serialize(header, ciphertext)
    # read back what is about to be written before trusting it with a key
    parsed, ct = _parse(data, Path("<new keystore>"))
    if ChaCha20Poly1305(key).decrypt(nonce, ct, _aad(parsed)) != payload:
        raise RuntimeError("keystore self-check failed")  # an internal bug, not a user error
    return data


def _no_duplicates(pairs: "list[tuple[str, Any]]") -> "dict[str, Any]":
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError("non-finite number")


def _reject_float(text: str) -> NoReturn:
    raise ValueError("fractional number")


def _parse(data: bytes, path: Path) -> "tuple[_Header, bytes]":
    """Validate a keystore file's bytes completely; return (header, ciphertext)."""
    if not data:
        raise CorruptKeystore(
            f"{path} is empty: not a msigvault keystore (an interrupted copy?); use another copy",
            path=path,
        )
    if not data.startswith(_PREFIX):
        if MAGIC.encode() in data[:256]:
            raise _damaged(path, "it does not start as a keystore does: it was edited or reformatted")
        raise CorruptKeystore(
            f"{path} is not a msigvault keystore: check the file name",
            path=path,
        )
    if not data.endswith(b"}\n"):
        raise CorruptKeystore(
            f"keystore {path} is truncated (the file ends early): use another copy of it or "
            "restore from the paper backup",
            path=path,
        )
    obj = None
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_constant=_reject_constant, parse_float=_reject_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        pass
    if not isinstance(obj, dict):
        raise _damaged(path, "it is not valid JSON")
    version = obj.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version != FORMAT_VERSION:
        if version > FORMAT_VERSION:
            raise CorruptKeystore(
                f"keystore {path} uses format version {version}, newer than this msigvault "
                f"supports ({FORMAT_VERSION}): upgrade msigvault",
                path=path,
            )
        raise _damaged(path, f"unknown format version {version}")
    _expect_keys(obj, ("magic", "version", "public", "kdf", "aead", "ciphertext"), "the envelope", path)
    if obj["magic"] != MAGIC or obj["version"] != FORMAT_VERSION or isinstance(obj["version"], bool):
        raise _damaged(path, "bad magic or version field")

    pub = obj["public"]
    _expect_keys(pub, ("fingerprint", "label", "created", "bip39_passphrase"), "public", path)
    if not isinstance(pub["fingerprint"], str) or not _FINGERPRINT_RE.match(pub["fingerprint"]):
        raise _damaged(path, "the fingerprint is not 8 lower-case hex digits")
    if not isinstance(pub["label"], str) or _label_problem(pub["label"]):
        raise _damaged(path, "the label is invalid")
    if not isinstance(pub["created"], str) or not _valid_created(pub["created"]):
        raise _damaged(path, "the creation time is invalid")
    if not isinstance(pub["bip39_passphrase"], bool):
        raise _damaged(path, "the bip39_passphrase flag is not true or false")

    kdf = obj["kdf"]
    _expect_keys(kdf, ("name", "n", "r", "p", "salt", "check"), "kdf", path)
    if kdf["name"] != _KDF_NAME:
        raise _damaged(path, f"unknown key derivation function (only {_KDF_NAME})")
    n, r, p = kdf["n"], kdf["r"], kdf["p"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
        raise _damaged(path, "scrypt parameters are not integers")
    if not _kdf_in_range(n, r, p):
        raise _damaged(path, f"scrypt parameters out of the accepted range ({_KDF_RANGE})")
    _expect_hex(kdf["salt"], _SALT_LEN, "salt", path)
    _expect_hex(kdf["check"], _CHECK_LEN, "passphrase check", path)

    aead = obj["aead"]
    _expect_keys(aead, ("name", "nonce"), "aead", path)
    if aead["name"] != _AEAD_NAME:
        raise _damaged(path, f"unknown cipher (only {_AEAD_NAME})")
    _expect_hex(aead["nonce"], _NONCE_LEN, "nonce", path)
    _expect_hex(obj["ciphertext"], _CIPHERTEXT_LEN, "ciphertext", path)

    header = _header_dict(pub, n, r, p, bytes.fromhex(kdf["salt"]), bytes.fromhex(kdf["check"]),
                          bytes.fromhex(aead["nonce"]))
    ciphertext = bytes.fromhex(obj["ciphertext"])
    if _serialize(header, ciphertext) != data:
        raise _damaged(path, "it is not in canonical form, so it was edited or corrupted")
    return header, ciphertext


def _damaged(path: Path, why: str) -> CorruptKeystore:
    return CorruptKeystore(
        f"keystore {path} is damaged ({why}): use another copy of it or restore from the paper backup",
        path=path,
    )


def _expect_keys(obj: object, keys: "tuple[str, ...]", what: str, path: Path) -> None:
    if not isinstance(obj, dict) or tuple(obj.keys()) != keys:
        raise _damaged(path, f"{what} does not have exactly the fields {', '.join(keys)}")


def _expect_hex(value: object, nbytes: int, what: str, path: Path) -> None:
    if not isinstance(value, str) or len(value) != 2 * nbytes or not _HEX_RE.match(value):
        raise _damaged(path, f"the {what} is not {nbytes} bytes of lower-case hex")


def _valid_created(text: str) -> bool:
    if not _CREATED_RE.match(text):
        return False
    try:
        _dt.datetime.strptime(text, _CREATED_FORMAT)
    except ValueError:
        return False
    return True


def _tampered_fingerprint_message(path: Path, fingerprint: str) -> str:
    return (f"keystore {path} was tampered with: it decrypts to a key whose fingerprint is not the "
            f"recorded {fingerprint}; do not use it: restore it from a copy or from the paper backup")


# -- crypto and key helpers -----------------------------------------------------------------------


def _kdf_in_range(n: int, r: int, p: int) -> bool:
    """True for the scrypt parameters msigvault writes and reads (see docs/keystore.md)."""
    return (MIN_SCRYPT_N <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and r == SCRYPT_R
            and p == SCRYPT_P and n * r * p <= _MAX_SCRYPT_WORK
            and 128 * n * r <= _MAX_SCRYPT_MEMORY)


def _derive(key_input: bytes, salt: bytes, n: int, r: int, p: int) -> "tuple[bytes, bytes]":
    """(encryption key, passphrase check) from scrypt: 64 bytes out, split in two halves."""
    if not _kdf_in_range(n, r, p):  # _parse refuses these already; never run an unbounded KDF
        raise CorruptKeystore(f"scrypt parameters out of the accepted range ({_KDF_RANGE})")
    out = Scrypt(salt=salt, length=2 * _KEY_LEN, n=n, r=r, p=p).derive(key_input)
    key = out[:_KEY_LEN]
    check = hmac.digest(out[_KEY_LEN:], _CHECK_INFO, hashlib.sha256)[:_CHECK_LEN]
    return key, check


def _fresh_random(nbytes: int, what: str) -> bytes:
    """Bytes from the OS CSPRNG (``os.urandom``). Fails closed: there is no fallback source."""
    value = None
    try:
        value = os.urandom(nbytes)
    except Exception:  # NotImplementedError, OSError: no usable OS randomness
        pass
    if not isinstance(value, bytes) or len(value) != nbytes:
        raise KeystoreError(
            f"the operating system's random number generator failed (while making the {what}): "
            "nothing was written; do not create keys on this machine until it is fixed"
        )
    return value


def _fresh_entropy(nbytes: int) -> bytes:
    entropy = _fresh_random(nbytes, "key entropy")
    # a tripwire for a broken source, not a randomness test: a real RNG repeats one byte value
    # across 16+ bytes with probability below 2^-120
    if len(set(entropy)) == 1:
        raise KeystoreError(
            "the operating system's random number generator returned constant bytes: nothing was "
            "written; do not create keys on this machine until it is fixed"
        )
    return entropy


def _passphrase_bytes(passphrase: object, what: str) -> bytes:
    """A keystore passphrase as KDF input: Unicode NFKD, UTF-8."""
    if not isinstance(passphrase, str):
        raise KeystoreError(f"the {what} must be text (str), not {type(passphrase).__name__}")
    if passphrase == "":
        raise KeystoreError(f"the {what} must not be empty: choose a passphrase")
    encoded = None
    try:
        encoded = unicodedata.normalize("NFKD", passphrase).encode("utf-8")
    except UnicodeEncodeError:
        pass
    if encoded is None:
        raise KeystoreError(f"the {what} contains characters that cannot be encoded as UTF-8")
    return encoded


def _bip39_passphrase(value: object) -> str:
    """A BIP39 passphrase, NFKD-normalised as BIP39 requires ("" for none)."""
    if not isinstance(value, str):
        raise KeystoreError(f"the BIP39 passphrase must be text (str), not {type(value).__name__}")
    value = unicodedata.normalize("NFKD", value)
    ok = True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        ok = False
    if not ok:
        raise KeystoreError("the BIP39 passphrase contains characters that cannot be encoded as UTF-8")
    return value


def _label_problem(label: str) -> bool:
    return (len(label) > _MAX_LABEL_LEN or not label.isprintable()
            or unicodedata.normalize("NFC", label) != label)


def _check_label(label: object) -> str:
    if not isinstance(label, str):
        raise KeystoreError(f"a keystore label must be text (str), not {type(label).__name__}")
    label = unicodedata.normalize("NFC", label)
    if len(label) > _MAX_LABEL_LEN:
        raise KeystoreError(f"a keystore label has at most {_MAX_LABEL_LEN} characters; shorten it")
    if not label.isprintable():
        raise KeystoreError("a keystore label must not contain control or other unprintable characters")
    return label


def _file_path(path: "str | os.PathLike[str]") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise KeystoreError(f"path must be a file name (str or os.PathLike), not {type(path).__name__}", field="path")
    return Path(path)


def _check_cost(kdf_cost: object) -> int:
    if kdf_cost is None:
        return DEFAULT_SCRYPT_N
    if (isinstance(kdf_cost, bool) or not isinstance(kdf_cost, int)
            or not MIN_SCRYPT_N <= kdf_cost <= MAX_SCRYPT_N or kdf_cost & (kdf_cost - 1)):
        raise KeystoreError(
            f"kdf_cost is the scrypt N: a power of two from 2**14 to 2**20 (default 2**17), "
            f"not {kdf_cost!r}", field="kdf_cost"
        )
    return kdf_cost


def _entropy_from_mnemonic(mnemonic: object) -> bytes:
    """Validate a restored English BIP39 mnemonic; never puts a word in an error message."""
    if not isinstance(mnemonic, str):
        raise KeystoreError("a mnemonic is a string of words separated by spaces")
    words = unicodedata.normalize("NFKD", mnemonic).lower().split()
    if len(words) not in _WORDS_TO_BYTES:
        raise KeystoreError(
            f"a BIP39 mnemonic has 12, 15, 18, 21 or 24 words; this one has {len(words)}: "
            "check your backup for a missing or doubled word"
        )
    unknown = [str(i + 1) for i, w in enumerate(words) if w not in _WORDSET]
    if unknown:
        raise KeystoreError(
            f"word number {', '.join(unknown)} is not in the BIP39 English word list: check its "
            "spelling against your backup and write each word in full (only English mnemonics "
            "are supported)"
        )
    text = " ".join(words)
    entropy = None
    try:
        entropy = bip39.mnemonic_to_bytes(text)
    except ValueError:
        pass
    if entropy is None or len(entropy) != _WORDS_TO_BYTES[len(words)]:
        raise KeystoreError(
            "the mnemonic's checksum does not match: a word is wrong or two words are swapped; "
            "check each word and its position against your backup"
        )
    if bip39.mnemonic_from_bytes(bytes(entropy)) != text:
        raise RuntimeError("BIP39 round trip failed")  # an internal bug, not a user error
    return bytes(entropy)


def _root(entropy: bytes, bip39_passphrase: str) -> SecretHDKey:
    """BIP32 master private key (mainnet version) for the entropy's mnemonic and a BIP39 passphrase."""
    return SecretHDKey.from_seed(bip39.mnemonic_to_seed(bip39.mnemonic_from_bytes(entropy), bip39_passphrase))


def _master_fingerprint(entropy: bytes, bip39_passphrase: str) -> str:
    return _root(entropy, bip39_passphrase).my_fingerprint.hex()


# -- files -------------------------------------------------------------------------------------


def _refuse_existing(path: Path) -> None:
    if path.exists() or path.is_symlink():
        raise KeystoreError(
            f"{path} already exists: msigvault never overwrites a keystore; choose another file "
            "name or move the old file away first",
            path=path,
        )


def _write(path: Path, data: bytes, *, overwrite: bool) -> None:
    error = None
    try:
        write_atomic(path, data, secret=True, overwrite=overwrite)
    except FileExists:
        error = "exists"
    except OSError as e:
        error = e.strerror or type(e).__name__
    if error == "exists":
        _refuse_existing(path)
        raise KeystoreError(f"{path} already exists: choose another file name", path=path)
    if error is not None:
        previous = "the previous file is unchanged" if overwrite else "no keystore was written"
        raise KeystoreError(f"cannot write keystore {path} ({error}): {previous}", path=path)


def _read(path: Path) -> bytes:
    error = None
    data = b""
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                error = "it is not a regular file"
            else:
                data = f.read(_MAX_FILE_SIZE + 1)
                if os.name == "posix" and mode & 0o077:
                    log.warning("keystore %s is accessible to other users (mode %03o): run chmod 600 on it",
                                path, stat.S_IMODE(mode))
    except FileNotFoundError:
        error = "no such file; check the name"
    except OSError as e:
        error = e.strerror or type(e).__name__
    if error is not None:
        raise KeystoreError(f"cannot read keystore {path}: {error}", path=path)
    if len(data) > _MAX_FILE_SIZE:
        raise CorruptKeystore(f"{path} is too large to be a msigvault keystore: check the file name",
                              path=path)
    return data
