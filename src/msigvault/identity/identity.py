"""Identities: an Ed25519 signing key and an X25519 encryption key per site, coordinator or auditor.

Generated offline from the OS CSPRNG and kept encrypted at rest exactly like a keystore (scrypt +
ChaCha20-Poly1305 over canonical JSON, the keystore's own helpers; mode 0600, atomic writes). An
identity is published as an :class:`IdentityRecord`: its name, role, the two public keys, the
network and, for a keyholder site, the cosigner it speaks for, with a BIP340 signature by that
cosigner's vault key at :data:`IDENTITY_BRANCH` (so a coordinator cannot invent a keyholder) and
an Ed25519 self-signature (proof that the site holds the identity key). Coordinator and auditor
records are only self-signed: they are pinned by configuration. See docs/envelopes.md.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from embit.hashes import tagged_hash
from embit.util import secp256k1 as _secp

from ..fileio import FileExists, write_atomic
from ..keys import keystore as _ks
from .errors import IdentityFileError, IdentityRecordError

if TYPE_CHECKING:
    from ..keys.bip32 import ExtendedKey
    from ..keys.cosigner import Cosigner
    from ..policy.vault import Vault

__all__ = [
    "IDENTITY_BRANCH", "ROLES", "ID_LEN", "IdentityKey", "IdentityPublic", "IdentityRecord", "identity_id",
    "identity_pubkey",
]

#: unhardened branch below a cosigner's account key whose index 0 signs that cosigner's identity
#: records: 0x6D736769 = 1836279657, "msgi" in ASCII (the registration branch is "msgv", 0x6D736776)
IDENTITY_BRANCH = 0x6D736769
ROLES = ("keyholder-site", "coordinator", "auditor")
ID_LEN = 16

FILE_MAGIC = "msigvault-identity"
FILE_VERSION = 1
RECORD_FORMAT = "msigvault-identity-record"
RECORD_VERSION = 1
MAX_FILE_SIZE = 8 * 1024
MAX_RECORD_SIZE = 8 * 1024
MAX_NAME_LEN = 64

_ID_TAG = b"msigvault/identity-id/v1\0"
_SELF_TAG = b"msigvault/identity-self/v1\0"
_COSIGNER_TAG = "msigvault/identity-record/v1"
_PAYLOAD_LEN = 64  # Ed25519 private bytes (32) + X25519 private bytes (32)
_CREATED_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
_CREATED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_HEX_RE = re.compile(r"[0-9a-f]*\Z")
_NETWORKS = ("mainnet", "testnet", "signet", "regtest")


def identity_id(signing_key: bytes, encryption_key: bytes) -> bytes:
    """The 16-byte id of an identity: SHA-256 of a tag and both public keys, truncated."""
    return hashlib.sha256(_ID_TAG + signing_key + encryption_key).digest()[:ID_LEN]


def identity_pubkey(cosigner: "Cosigner") -> bytes:
    """The 33-byte public key at ``account/IDENTITY_BRANCH/0`` that signs ``cosigner``'s identity records."""
    return cosigner.pubkey_at(IDENTITY_BRANCH, 0)


def _raw(key: "Ed25519PublicKey | X25519PublicKey") -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _now_text() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime(_CREATED_FORMAT)


def _check_name(name: object, error: type) -> str:
    if not isinstance(name, str):
        raise error(f"an identity name is text, not {type(name).__name__}", field="name")
    name = unicodedata.normalize("NFC", name)
    if not 1 <= len(name) <= MAX_NAME_LEN or not name.isprintable():
        raise error(f"an identity name has 1 to {MAX_NAME_LEN} printable characters; choose another", field="name")
    return name


def _check_role(role: object, error: type) -> str:
    if role not in ROLES:
        raise error(f"an identity role is one of {', '.join(ROLES)}, not {role!r}", field="role")
    return str(role)


def _valid_created(text: object) -> bool:
    if not isinstance(text, str) or not _CREATED_RE.match(text):
        return False
    try:
        _dt.datetime.strptime(text, _CREATED_FORMAT)
    except ValueError:
        return False
    return True


def _hex(value: object, nbytes: int) -> "bytes | None":
    if not isinstance(value, str) or len(value) != 2 * nbytes or not _HEX_RE.match(value):
        return None
    return bytes.fromhex(value)


def _strict_json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_ks._no_duplicates,
                          parse_constant=_ks._reject_constant, parse_float=_ks._reject_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


# -- the public half ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityPublic:
    """What an identity file shows without its passphrase: name, role, creation time, public keys."""

    name: str
    role: str
    created: str
    signing_key: bytes
    encryption_key: bytes

    @property
    def id(self) -> bytes:
        return identity_id(self.signing_key, self.encryption_key)

    def to_dict(self) -> "dict[str, Any]":
        return {"name": self.name, "role": self.role, "created": self.created, "id": self.id.hex(),
                "signing_key": self.signing_key.hex(), "encryption_key": self.encryption_key.hex()}


# -- the secret identity -----------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityKey:
    """An unlocked identity: the two private keys. Its repr, str and f-string show public data only."""

    public: IdentityPublic
    signing: Ed25519PrivateKey = field(repr=False, compare=False)
    encryption: X25519PrivateKey = field(repr=False, compare=False)

    @classmethod
    def generate(cls, name: str, role: str) -> "IdentityKey":
        """A fresh identity from the OS CSPRNG (fails closed: there is no fallback source)."""
        name = _check_name(name, IdentityFileError)
        role = _check_role(role, IdentityFileError)
        signing = Ed25519PrivateKey.from_private_bytes(_ks._fresh_entropy(32))
        encryption = X25519PrivateKey.from_private_bytes(_ks._fresh_entropy(32))
        return cls._of(name, role, _now_text(), signing, encryption)

    @classmethod
    def _of(cls, name: str, role: str, created: str, signing: Ed25519PrivateKey,
            encryption: X25519PrivateKey) -> "IdentityKey":
        public = IdentityPublic(name, role, created, _raw(signing.public_key()), _raw(encryption.public_key()))
        return cls(public, signing, encryption)

    @property
    def id(self) -> bytes:
        return self.public.id

    def sign(self, message: bytes) -> bytes:
        return self.signing.sign(message)

    def __repr__(self) -> str:
        return f"IdentityKey(name={self.public.name!r}, role={self.public.role!r}, id={self.id.hex()})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: "str | os.PathLike[str]", passphrase: str, *, kdf_cost: "int | None" = None) -> Path:
        """Write this identity encrypted under ``passphrase`` (mode 0600, atomic, never overwriting)."""
        p = Path(path)
        key_input = _ks._passphrase_bytes(passphrase, "identity passphrase")
        n = _ks._check_cost(kdf_cost)
        data = _seal_file(self, key_input, n)
        error = None
        try:
            write_atomic(p, data, secret=True, overwrite=False)
        except FileExists:
            error = "it already exists; choose another name or move the old file away"
        except OSError as e:
            error = e.strerror or type(e).__name__
        if error is not None:
            raise IdentityFileError(f"cannot write identity file {p} ({error}): nothing was written", path=p)
        return p

    @classmethod
    def load(cls, path: "str | os.PathLike[str]", passphrase: str) -> "IdentityKey":
        """Decrypt an identity file; WrongPassphrase or IdentityFileError (damaged, modified)."""
        p = Path(path)
        secret = _Secret(_ks._passphrase_bytes(passphrase, "identity passphrase"))
        del passphrase  # a traceback with locals shows only the redacted wrapper
        header, ciphertext = _parse_file(_read_file(p), p)
        return _open_file(header, ciphertext, secret, p)

    @staticmethod
    def read_public(path: "str | os.PathLike[str]") -> IdentityPublic:
        """An identity file's public part, without the passphrase (authenticated only by :meth:`load`)."""
        p = Path(path)
        header, _ = _parse_file(_read_file(p), p)
        return _public_of(header)

    # -- records -------------------------------------------------------------------------------

    def record(self, network: Any, *, root: "ExtendedKey | None" = None,
               cosigner: "Cosigner | None" = None) -> "IdentityRecord":
        """This identity's signed record for ``network``.

        A keyholder site needs ``cosigner`` (its vault cosigner record) and ``root`` (that
        keyholder's unlocked master private key), which signs the record at ``IDENTITY_BRANCH``.
        """
        from ..network import Network

        net = Network.from_name(network)
        role = self.public.role
        cosigner_text, cosigner_sig = None, None
        if role == "keyholder-site":
            if cosigner is None or root is None:
                raise IdentityRecordError("a keyholder-site record is signed by the cosigner's vault key: "
                                          "give the cosigner record and unlock that keyholder's key")
            cosigner.check_network(net)
            account = _account_key(root, cosigner)
            cosigner_text = str(cosigner)
        elif cosigner is not None or root is not None:
            raise IdentityRecordError(f"a {role} record speaks for no cosigner: give no cosigner or key")
        unsigned = IdentityRecord(self.public.name, role, self.public.signing_key, self.public.encryption_key,
                                  cosigner_text, net.name, self.public.created, bytes(64), None)
        if role == "keyholder-site":
            secret = account.child(IDENTITY_BRANCH).child(0).key[1:]
            msg = tagged_hash(_COSIGNER_TAG, unsigned.body_bytes())
            cosigner_sig = _secp.schnorrsig_sign(msg, _secp.keypair_create(secret), None, os.urandom(32))
            del secret
        self_sig = self.sign(_SELF_TAG + unsigned.body_bytes())
        return IdentityRecord(unsigned.name, role, unsigned.signing_key, unsigned.encryption_key, cosigner_text,
                              net.name, unsigned.created, self_sig, cosigner_sig)


def _account_key(root: "ExtendedKey", cosigner: "Cosigner") -> "ExtendedKey":
    from ..keys.bip32 import ExtendedKey

    if not isinstance(root, ExtendedKey) or not root.is_private:
        raise IdentityRecordError("signing a keyholder-site record needs the keyholder's private master key")
    if root.fingerprint != cosigner.fingerprint:
        raise IdentityRecordError(
            f"this key (fingerprint {root.fingerprint.hex()}) is not cosigner {cosigner.fingerprint.hex()}: "
            "unlock that cosigner's own key", fingerprint=root.fingerprint)
    account = root.derive(cosigner.path)
    if account.public_key != cosigner.public_key or account.chain_code != cosigner.key.chain_code:
        raise IdentityRecordError(
            f"the cosigner record {cosigner.fingerprint.hex()} has another xpub than this key derives at "
            f"{cosigner.origin()}: the record was altered; use the vault's own cosigner record",
            fingerprint=cosigner.fingerprint)
    return account


# -- identity records --------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityRecord:
    """A published identity: public keys bound to a role, a network and (for a site) a cosigner.

    Construct with :meth:`IdentityKey.record` or :meth:`from_bytes`; trust one only after
    :meth:`verify` (a site's record against the vault's cosigner xpub).
    """

    name: str
    role: str
    signing_key: bytes
    encryption_key: bytes
    cosigner: Optional[str]
    network: str
    created: str
    self_signature: bytes
    cosigner_signature: Optional[bytes]

    @property
    def id(self) -> bytes:
        return identity_id(self.signing_key, self.encryption_key)

    @property
    def fingerprint(self) -> "str | None":
        """The cosigner's master fingerprint (hex) a site speaks for; None for other roles."""
        if not self.cosigner:
            return None
        from ..keys.cosigner import Cosigner

        return Cosigner.parse(self.cosigner).fingerprint.hex()

    def body(self) -> "dict[str, Any]":
        return {"format": RECORD_FORMAT, "version": RECORD_VERSION, "name": self.name, "role": self.role,
                "signing_key": self.signing_key.hex(), "encryption_key": self.encryption_key.hex(),
                "cosigner": self.cosigner, "network": self.network, "created": self.created}

    def body_bytes(self) -> bytes:
        return _ks._canonical(self.body())

    def to_dict(self) -> "dict[str, Any]":
        sig = self.cosigner_signature.hex() if self.cosigner_signature is not None else None
        return {**self.body(), "self_signature": self.self_signature.hex(), "cosigner_signature": sig}

    def to_bytes(self) -> bytes:
        return _ks._canonical(self.to_dict()) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> "IdentityRecord":
        """Parse a record file strictly (canonical form only); its signatures are checked by :meth:`verify`."""
        if not isinstance(data, (bytes, bytearray)):
            raise IdentityRecordError("an identity record is bytes (the file's contents)")
        if len(data) > MAX_RECORD_SIZE:
            raise IdentityRecordError(f"an identity record has at most {MAX_RECORD_SIZE} bytes: this is not one",
                                      limit=MAX_RECORD_SIZE)
        obj = _strict_json(bytes(data))
        keys = ("format", "version", "name", "role", "signing_key", "encryption_key", "cosigner", "network",
                "created", "self_signature", "cosigner_signature")
        if not isinstance(obj, dict) or tuple(obj) != keys or obj["format"] != RECORD_FORMAT:
            raise IdentityRecordError("this is not a msigvault identity record (wrong fields): check the file")
        if obj["version"] != RECORD_VERSION or isinstance(obj["version"], bool):
            raise IdentityRecordError(f"identity record version {obj['version']!r} is not supported "
                                      f"(only {RECORD_VERSION}): upgrade msigvault")
        record = cls._from_fields(obj)
        if record.to_bytes() != bytes(data):
            raise IdentityRecordError("the identity record is not in canonical form: it was edited; "
                                      "ask its owner for the original file")
        return record

    @classmethod
    def _from_fields(cls, obj: "dict[str, Any]") -> "IdentityRecord":
        sk, ek = _hex(obj["signing_key"], 32), _hex(obj["encryption_key"], 32)
        ss = _hex(obj["self_signature"], 64)
        cs = None if obj["cosigner_signature"] is None else _hex(obj["cosigner_signature"], 64)
        if sk is None or ek is None or ss is None or (obj["cosigner_signature"] is not None and cs is None):
            raise IdentityRecordError("an identity record's keys are 32 and signatures 64 bytes of lower-case hex")
        if not _valid_created(obj["created"]) or obj["network"] not in _NETWORKS:
            raise IdentityRecordError("an identity record's created time or network is malformed")
        if obj["cosigner"] is not None and not isinstance(obj["cosigner"], str):
            raise IdentityRecordError("an identity record's cosigner is a key origin and xpub, or null")
        name = _check_name(obj["name"], IdentityRecordError)
        if name != obj["name"]:
            raise IdentityRecordError("an identity record's name is not in NFC form: it was edited")
        role = _check_role(obj["role"], IdentityRecordError)
        if (role == "keyholder-site") != (obj["cosigner"] is not None) or (cs is None) != (obj["cosigner"] is None):
            raise IdentityRecordError("a keyholder-site record names its cosigner and carries the cosigner's "
                                      "signature; coordinator and auditor records carry neither")
        return cls(name, role, sk, ek, obj["cosigner"], obj["network"], obj["created"], ss, cs)

    def verify(self, cosigner: "Cosigner | None" = None, *, network: Any = None) -> "IdentityRecord":
        """Check the signatures; return self. A keyholder-site record needs ``cosigner``: the trusted
        cosigner record (from the vault), whose vault key must have signed it."""
        self._verify_self()
        if network is not None:
            from ..network import Network

            if Network.from_name(network).name != self.network:
                raise IdentityRecordError(f"identity record {self.name!r} is for {self.network}, not "
                                          f"{Network.from_name(network).name}: use that network's record")
        if self.role != "keyholder-site":
            if cosigner is not None:
                raise IdentityRecordError(f"{self.name!r} is a {self.role} identity: it speaks for no cosigner")
            return self
        if cosigner is None:
            raise IdentityRecordError("a keyholder-site record is checked against its cosigner's xpub: give the "
                                      "vault or the cosigner record")
        self._verify_cosigner(cosigner)
        return self

    def verify_for_vault(self, vault: "Vault") -> "IdentityRecord":
        """:meth:`verify` against the vault cosigner this record names (by fingerprint and key)."""
        if self.role != "keyholder-site":
            return self.verify(network=vault.network)
        for c in vault.cosigners:
            if str(c) == self.cosigner:
                return self.verify(c, network=vault.network)
        raise IdentityRecordError(
            f"identity record {self.name!r} speaks for {self.cosigner}, which is not a cosigner of this vault: "
            "it belongs to another vault, or the vault file was changed", fingerprint=self.fingerprint)

    def _verify_self(self) -> None:
        try:
            Ed25519PublicKey.from_public_bytes(self.signing_key).verify(self.self_signature,
                                                                        _SELF_TAG + self.body_bytes())
        except (InvalidSignature, ValueError):
            raise IdentityRecordError(
                f"identity record {self.name!r} does not verify with its own signing key: it was altered; "
                "ask its owner for the original file") from None

    def _verify_cosigner(self, cosigner: "Cosigner") -> None:
        from ..network import Network

        if str(cosigner) != self.cosigner:
            raise IdentityRecordError(
                f"identity record {self.name!r} speaks for {self.cosigner}, not for {cosigner}: it is another "
                "cosigner's site", fingerprint=cosigner.fingerprint)
        cosigner.check_network(Network.from_name(self.network))
        assert self.cosigner_signature is not None  # _from_fields and record() guarantee it
        msg = tagged_hash(_COSIGNER_TAG, self.body_bytes())
        try:
            point = _secp.ec_pubkey_parse(b"\x02" + identity_pubkey(cosigner)[1:])
            xonly, _ = _secp.xonly_pubkey_from_pubkey(point)
            ok = _secp.schnorrsig_verify(self.cosigner_signature, msg, xonly)
        except (ValueError, RuntimeError):
            ok = False
        if not ok:
            raise IdentityRecordError(
                f"identity record {self.name!r} is not signed by cosigner {cosigner.fingerprint.hex()}'s vault "
                "key: a coordinator or relay may have made it up; do not trust it",
                fingerprint=cosigner.fingerprint)


# -- the encrypted identity file ---------------------------------------------------------------


def _header(public: IdentityPublic, n: int, salt: bytes, check: bytes, nonce: bytes) -> "dict[str, Any]":
    return {
        "magic": FILE_MAGIC, "version": FILE_VERSION,
        "public": {"name": public.name, "role": public.role, "created": public.created,
                   "signing_key": public.signing_key.hex(), "encryption_key": public.encryption_key.hex()},
        "kdf": {"name": _ks._KDF_NAME, "n": n, "r": _ks.SCRYPT_R, "p": _ks.SCRYPT_P, "salt": salt.hex(),
                "check": check.hex()},
        "aead": {"name": _ks._AEAD_NAME, "nonce": nonce.hex()},
    }


def _seal_file(key: IdentityKey, key_input: bytes, n: int) -> bytes:
    salt = _ks._fresh_random(_ks._SALT_LEN, "salt")
    nonce = _ks._fresh_random(_ks._NONCE_LEN, "nonce")
    aead_key, check = _ks._derive(key_input, salt, n, _ks.SCRYPT_R, _ks.SCRYPT_P)
    header = _header(key.public, n, salt, check, nonce)
    payload = key.signing.private_bytes_raw() + key.encryption.private_bytes_raw()
    ciphertext = ChaCha20Poly1305(aead_key).encrypt(nonce, payload, _ks._canonical(header))
    return _ks._canonical({**header, "ciphertext": ciphertext.hex()}) + b"\n"


def _damaged(path: Path, why: str) -> IdentityFileError:
    return IdentityFileError(f"identity file {path} is damaged ({why}): use another copy, or make a new "
                             "identity and publish its record again", path=path)


def _read_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise IdentityFileError(f"identity file {path} does not exist: check the name", path=path) from None
    except OSError as e:
        raise IdentityFileError(f"cannot read identity file {path}: {e.strerror or e}", path=path) from None
    if len(data) > MAX_FILE_SIZE:
        raise IdentityFileError(f"{path} is larger than {MAX_FILE_SIZE} bytes: it is not an identity file",
                                path=path, limit=MAX_FILE_SIZE)
    return data


def _parse_file(data: bytes, path: Path) -> "tuple[dict[str, Any], bytes]":
    obj = _strict_json(data)
    if not isinstance(obj, dict) or obj.get("magic") != FILE_MAGIC:
        raise IdentityFileError(f"{path} is not a msigvault identity file: check the file name", path=path)
    if tuple(obj) != ("magic", "version", "public", "kdf", "aead", "ciphertext") or obj["version"] != FILE_VERSION:
        raise _damaged(path, "unknown version or fields")
    pub, kdf, aead = obj["public"], obj["kdf"], obj["aead"]
    if not isinstance(pub, dict) or tuple(pub) != ("name", "role", "created", "signing_key", "encryption_key"):
        raise _damaged(path, "the public part has the wrong fields")
    if not isinstance(kdf, dict) or tuple(kdf) != ("name", "n", "r", "p", "salt", "check") or not isinstance(
            aead, dict) or tuple(aead) != ("name", "nonce"):
        raise _damaged(path, "the kdf or aead part has the wrong fields")
    n, r, p = kdf["n"], kdf["r"], kdf["p"]
    if kdf["name"] != _ks._KDF_NAME or aead["name"] != _ks._AEAD_NAME or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)) or not _ks._kdf_in_range(n, r, p):
        raise _damaged(path, f"unknown cipher, or scrypt parameters outside {_ks._KDF_RANGE}")
    sk, ek = _hex(pub["signing_key"], 32), _hex(pub["encryption_key"], 32)
    salt, check = _hex(kdf["salt"], _ks._SALT_LEN), _hex(kdf["check"], _ks._CHECK_LEN)
    nonce, ct = _hex(aead["nonce"], _ks._NONCE_LEN), _hex(obj["ciphertext"], _PAYLOAD_LEN + _ks._TAG_LEN)
    if None in (sk, ek, salt, check, nonce, ct) or not _valid_created(pub["created"]):
        raise _damaged(path, "a key, salt, nonce, ciphertext or the creation time is malformed")
    if pub["role"] not in ROLES or not isinstance(pub["name"], str) or _check_name(pub["name"], IdentityFileError) != pub["name"]:
        raise _damaged(path, "the name or role is invalid")
    header = {k: v for k, v in obj.items() if k != "ciphertext"}
    if _ks._canonical(obj) + b"\n" != data:
        raise _damaged(path, "it is not in canonical form, so it was edited")
    assert ct is not None
    return header, ct


class _Secret:
    """Passphrase bytes that print as ``<secret>`` (in tracebacks with locals too)."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<secret>"


def _decrypt_payload(header: "dict[str, Any]", ciphertext: bytes, secret: _Secret, path: Path) -> "bytes | None":
    """The decrypted private keys, or None if the file fails authentication; no key left in a traceback."""
    import hmac

    kdf = header["kdf"]
    aead_key, check = _ks._derive(secret.value, bytes.fromhex(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"])
    if not hmac.compare_digest(check, bytes.fromhex(kdf["check"])):
        del aead_key
        raise _ks.WrongPassphrase(f"wrong passphrase for identity file {path}: check it and try again", path=path)
    payload = None
    try:
        payload = ChaCha20Poly1305(aead_key).decrypt(bytes.fromhex(header["aead"]["nonce"]), ciphertext,
                                                     _ks._canonical(header))
    except InvalidTag:
        pass
    del aead_key
    return payload


def _public_of(header: "dict[str, Any]") -> IdentityPublic:
    pub = header["public"]
    return IdentityPublic(pub["name"], pub["role"], pub["created"], bytes.fromhex(pub["signing_key"]),
                          bytes.fromhex(pub["encryption_key"]))


def _open_file(header: "dict[str, Any]", ciphertext: bytes, secret: "_Secret", path: Path) -> IdentityKey:
    payload = _decrypt_payload(header, ciphertext, secret, path)
    if payload is None or len(payload) != _PAYLOAD_LEN:
        raise _damaged(path, "the passphrase is right but the file fails authentication: it was modified")
    public = _public_of(header)
    key = IdentityKey._of(public.name, public.role, public.created,
                          Ed25519PrivateKey.from_private_bytes(payload[:32]),
                          X25519PrivateKey.from_private_bytes(payload[32:]))
    del payload  # no raw secret among this frame's locals if the check below raises
    if key.public != public:
        raise _damaged(path, "the private keys do not match the public keys it shows")
    return key
