"""The audit log: append-only, hash-chained entries, each signed with an Ed25519 identity key.

An entry is one line of canonical JSON (sorted keys, no spaces, ASCII)::

    {"actor": "cosigner:3a1f0c2e", "attestation": {...} | null, "data": {...},
     "event": "submission.accepted", "hash": "<hex>", "key": "<coordinator public key hex>",
     "prev": "<hex of the previous entry's hash>", "seq": 7, "session": "<id>" | null,
     "sig": "<Ed25519 signature hex>", "time": "2026-01-02T03:04:05.123456Z", "v": 1}

``hash`` is SHA-256 over ``"msigvault/audit/v1\\0"`` and the canonical JSON of every field but
``hash`` and ``sig``; ``sig`` is the coordinator key ``key`` signing that hash. Entry 0
(``log.created``) names the coordinator key that started the log and is signed by it; further
coordinator keys are added by ``coordinator.key-authorized`` entries signed by a known key.
A keyholder's own action (a submission, a refusal) also carries an ``attestation``: a statement
(session, PSBT hash, fingerprint, reason) signed by that keyholder's Ed25519 identity key, which
the vault's ``vault.registered`` entry lists; so not even the coordinator can forge one.

:func:`verify_entries` checks, entry by entry: canonical bytes, ``seq`` counting from 0,
``prev`` linking to the previous entry's hash, the hash, the signature by a known key, the
attestation; the first failure is an :class:`AuditError` naming that entry. An export
(:func:`write_export`) is a header line plus the entries: it verifies offline with
:func:`verify_export` (``msigvault audit verify FILE``). See docs/audit.md for what this does
and does not protect against.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import AuditError, IdentityError

ENTRY_TAG = b"msigvault/audit/v1\0"
SIG_TAG = b"msigvault/audit-sig/v1\0"
STATEMENT_TAG = b"msigvault/statement/v1\0"
HEADER_TAG = b"msigvault/audit-export/v1\0"
CHECKPOINT_TAG = b"msigvault/audit-checkpoint/v1\0"
CHECKPOINT_FORMAT = "msigvault-audit-checkpoint"
CHECKPOINT_MAX = 4096
GENESIS_PREV = "00" * 32
EXPORT_FORMAT = "msigvault-audit-export"
EXPORT_VERSION = 1
MAX_ENTRY_BYTES = 1024 * 1024  # one entry line; a larger one is refused before parsing
MAX_EXPORT_BYTES = 4 * 1024 * 1024 * 1024
KEY_FILE_MAX = 4096

COORDINATOR = "coordinator"


def canonical(obj: Any) -> bytes:
    """The canonical JSON bytes of ``obj`` (sorted keys, no whitespace, ASCII only)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def now_text() -> str:
    """The current UTC time as audit entries write it."""
    return format_time(datetime.now(timezone.utc))


def format_time(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- identity keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """An Ed25519 signing identity (the coordinator's, or a keyholder's). Never printed."""

    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> "Identity":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        """A deterministic identity from 32 bytes (tests and demos)."""
        return cls(Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest()))

    @property
    def public_hex(self) -> str:
        return public_key_hex(self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def __repr__(self) -> str:
        return f"Identity(public={self.public_hex[:16]}...)"

    def save(self, path: "str | os.PathLike", *, overwrite: bool = False) -> Path:
        """Write the private key as PKCS#8 PEM, mode 0600, atomically."""
        from ..fileio import write_atomic

        pem = self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        return write_atomic(path, pem, secret=True, overwrite=overwrite)

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "Identity":
        from ..fileio import read_bounded

        p = Path(path)
        raw = read_bounded(p, KEY_FILE_MAX, IdentityError, "identity key file")
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError):
            raise IdentityError(f"{p} is not an unencrypted Ed25519 private key in PEM (PKCS#8)") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityError(f"{p} holds a key of another type: identities are Ed25519 keys")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: "str | os.PathLike") -> "Identity":
        """The identity in ``path``; a new one written there (mode 0600) if the file does not exist."""
        p = Path(path)
        if p.exists():
            return cls.load(p)
        identity = cls.generate()
        try:
            identity.save(p)
        except FileExistsError:  # created meanwhile by another process
            return cls.load(p)
        except OSError as e:
            raise IdentityError(f"cannot write identity key file {p}: {e.strerror or e}") from None
        return identity


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def parse_public_key(text: str, what: str = "identity key") -> Ed25519PublicKey:
    """An Ed25519 public key from 64 hex digits; IdentityError otherwise."""
    if not is_hex(text, 64):
        raise IdentityError(f"the {what} must be 64 lowercase hex digits (an Ed25519 public key)")
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError:
        raise IdentityError(f"the {what} {text[:16]}... is not an Ed25519 public key in hex") from None


_HEX = re.compile(r"[0-9a-f]*")


def is_hex(text: Any, length: int) -> bool:
    """``text`` is exactly ``length`` lowercase hex digits (one spelling only: no malleable encodings)."""
    return isinstance(text, str) and len(text) == length and _HEX.fullmatch(text) is not None


@functools.lru_cache(maxsize=256)
def _public_key(public_hex: str) -> Ed25519PublicKey:
    return parse_public_key(public_hex)


def verify_signature(public_hex: str, signature_hex: str, message: bytes) -> bool:
    """``signature_hex`` (128 lowercase hex digits) is ``public_hex``'s Ed25519 signature of ``message``."""
    if not is_hex(public_hex, 64) or not is_hex(signature_hex, 128):
        return False
    try:
        key = _public_key(public_hex)
        sig = bytes.fromhex(signature_hex)
    except (IdentityError, ValueError, TypeError):
        return False
    try:
        key.verify(sig, message)
    except InvalidSignature:
        return False
    return True


# -- keyholder statements -----------------------------------------------------------------------


def submission_statement(session_id: str, psbt_sha256: str, fingerprint: str) -> dict:
    """What a keyholder's identity key signs when submitting a partial PSBT."""
    return {"type": "submission", "session": session_id, "psbt_sha256": psbt_sha256, "fingerprint": fingerprint}


def refusal_statement(session_id: str, fingerprint: str, reason: str) -> dict:
    """What a keyholder's identity key signs when refusing to sign."""
    return {"type": "refusal", "session": session_id, "fingerprint": fingerprint, "reason": reason}


def statement_message(statement: Mapping) -> bytes:
    return STATEMENT_TAG + canonical(dict(statement))


def sign_statement(identity: Identity, statement: Mapping) -> str:
    """The keyholder's Ed25519 signature (hex) over ``statement``."""
    return identity.sign(statement_message(statement)).hex()


def check_statement(public_hex: str, statement: Mapping, signature_hex: Optional[str], who: str) -> None:
    """IdentityError unless ``signature_hex`` is ``public_hex``'s signature over ``statement``."""
    if not signature_hex:
        raise IdentityError(
            f"{who} has an identity key registered with this vault, so their {statement['type']} must carry "
            "their identity signature: sign it with their identity key and submit again"
        )
    if not verify_signature(public_hex, signature_hex, statement_message(statement)):
        raise IdentityError(
            f"the identity signature on {who}'s {statement['type']} does not verify with their registered "
            "identity key: it was made with another key or for another session or PSBT"
        )


# -- entries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One audit entry: ``line`` is its canonical JSON (what is stored and exported)."""

    seq: int
    hash: str
    body: Mapping[str, Any]
    line: bytes

    @property
    def event(self) -> str:
        return self.body["event"]

    @property
    def session(self) -> Optional[str]:
        return self.body["session"]

    @property
    def data(self) -> Mapping[str, Any]:
        return self.body["data"]

    def to_dict(self) -> dict:
        return json.loads(self.line)


def make_entry(identity: Identity, *, seq: int, prev: str, event: str, actor: str = COORDINATOR,
               session: Optional[str] = None, data: Optional[Mapping] = None,
               attestation: Optional[Mapping] = None, time: Optional[str] = None) -> Entry:
    """A new entry signed by the coordinator ``identity``."""
    body = {"v": 1, "seq": seq, "prev": prev, "time": time or now_text(), "actor": actor, "event": event,
            "session": session, "data": dict(data or {}), "attestation": dict(attestation) if attestation else None,
            "key": identity.public_hex}
    digest = entry_hash(body)
    sig = identity.sign(SIG_TAG + bytes.fromhex(digest)).hex()
    line = canonical({**body, "hash": digest, "sig": sig})
    if len(line) > MAX_ENTRY_BYTES:
        raise AuditError(f"an audit entry of {len(line):,} bytes is above the limit of {MAX_ENTRY_BYTES:,}")
    return Entry(seq, digest, body, line)


def entry_hash(body: Mapping) -> str:
    return sha256_hex(ENTRY_TAG + canonical(dict(body)))


_FIELDS = {"v", "seq", "prev", "time", "actor", "event", "session", "data", "attestation", "key", "hash", "sig"}


def parse_line(line: bytes, position: int) -> dict:
    """An entry's fields from its stored line; AuditError (naming ``position``) if malformed."""
    where = f"entry {position}"
    if len(line) > MAX_ENTRY_BYTES:
        raise AuditError(f"{where} is larger than {MAX_ENTRY_BYTES:,} bytes", entry=position)
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise AuditError(f"{where} is not valid JSON: the log was edited", entry=position) from None
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        raise AuditError(f"{where} does not have the fields of an audit entry: the log was edited", entry=position)
    if canonical(obj) != bytes(line):
        raise AuditError(f"{where} is not in canonical form (bytes were changed): the log was edited", entry=position)
    if not isinstance(obj["seq"], int) or isinstance(obj["seq"], bool) or not isinstance(obj["data"], dict):
        raise AuditError(f"{where} has a field of the wrong type: the log was edited", entry=position)
    return obj


@dataclass
class _Known:
    """Keys and vaults learned from the entries verified so far."""

    coordinator_keys: "set[str]" = field(default_factory=set)
    identities: "dict[str, dict[str, str]]" = field(default_factory=dict)  # policy id -> fingerprint -> key
    session_vault: "dict[str, str]" = field(default_factory=dict)  # session id -> policy id
    vaults: "dict[str, dict]" = field(default_factory=dict)


@dataclass(frozen=True)
class VerifyResult:
    """A log that verified: how many entries, the last hash, the coordinator keys and vaults it names."""

    count: int
    head: str
    coordinator_keys: "tuple[str, ...]"
    vaults: "tuple[dict, ...]"

    def to_dict(self) -> dict:
        return {"ok": True, "entries": self.count, "head": self.head,
                "coordinator_keys": list(self.coordinator_keys), "vaults": list(self.vaults)}


def verify_entries(lines: Iterable[bytes], *, trusted_keys: Optional[Sequence[str]] = None,
                   expect_count: Optional[int] = None, expect_head: Optional[str] = None,
                   checkpoints: "Sequence[Checkpoint]" = ()) -> VerifyResult:
    """Verify a whole log in order; AuditError naming the first bad entry.

    ``trusted_keys``: coordinator public keys (hex) the auditor obtained out of band; the log's
    first key must be one of them. ``expect_count``/``expect_head``: what the database's head row
    or the export's header says the log holds (a truncated log is caught against them).
    ``checkpoints``: heads an auditor kept (:class:`Checkpoint`); the log must still hold each one
    at its position (a log truncated or rolled back behind one is caught, even with its head fixed).
    """
    known = _Known()
    prev = GENESIS_PREV
    count = 0
    at = {}
    for cp in checkpoints:
        at.setdefault(cp.entries - 1, []).append(cp)
    for position, line in enumerate(lines):
        obj = parse_line(line, position)
        _check_entry(obj, position, prev, known, trusted_keys)
        prev = obj["hash"]
        count += 1
        for cp in at.get(position, ()):
            cp.check_entry(obj, known.coordinator_keys, trusted_keys)
    for cp in checkpoints:
        if count < cp.entries:
            raise AuditError(f"the log has {count} entries, but the checkpoint of {cp.time} recorded {cp.entries}: "
                             f"entries {count} to {cp.entries - 1} were deleted (the log was truncated or rolled "
                             "back behind a head an auditor kept)", entry=count)
    if expect_count is not None and count != expect_count:
        missing = f"entries {count} to {expect_count - 1} are missing" if count < expect_count else \
            f"there are {count - expect_count} entries more than recorded"
        raise AuditError(f"the log has {count} entries but its head records {expect_count}: {missing} "
                         "(deleted from the end, or added)", entry=min(count, expect_count))
    if expect_head is not None and count and prev != expect_head:
        raise AuditError(f"the last entry ({count - 1}) is not the head the log records: the end of the log "
                         "was replaced", entry=count - 1)
    if count == 0:
        raise AuditError("the audit log is empty: there is nothing to verify", entry=0)
    return VerifyResult(count, prev, tuple(sorted(known.coordinator_keys)),
                        tuple(known.vaults[k] for k in sorted(known.vaults)))


def _check_entry(obj: dict, position: int, prev: str, known: _Known, trusted) -> None:
    def bad(why: str):
        raise AuditError(f"entry {position} ({obj.get('event', '?')}): {why}", entry=position)

    if obj["seq"] != position:
        bad(f"it says it is entry {obj['seq']}: entries were deleted, inserted or reordered")
    if obj["prev"] != prev:
        bad("it does not link to the entry before it: an entry before it was edited, deleted or inserted, "
            "or the entries were reordered")
    body = {k: v for k, v in obj.items() if k not in ("hash", "sig")}
    if entry_hash(body) != obj["hash"]:
        bad("its content does not match its hash: it was edited")
    key = obj["key"]
    if position == 0:
        if obj["event"] != "log.created" or obj["data"].get("coordinator_key") != key:
            bad("the log does not start with the coordinator's log.created entry")
        if trusted is not None and key not in trusted:
            bad(f"the log was started by coordinator key {str(key)[:16]}..., which is not a key you trust")
        known.coordinator_keys.add(key)
    elif key not in known.coordinator_keys:
        bad(f"it is signed by {str(key)[:16]}..., which is not an authorised coordinator key")
    if not isinstance(obj["sig"], str) or not verify_signature(key, obj["sig"], SIG_TAG + bytes.fromhex(obj["hash"])):
        bad("its signature does not verify: it was forged or edited")
    try:
        _learn(obj, known)
        _check_attestation(obj, known)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        bad(f"its data is malformed ({type(e).__name__}): it was edited")
    except AuditError as e:
        bad(str(e))


def _learn(obj: dict, known: _Known) -> None:
    event, data = obj["event"], obj["data"]
    if event == "coordinator.key-authorized":
        parse_public_key(data["key"], "authorised coordinator key")
        known.coordinator_keys.add(data["key"])
    elif event in ("vault.registered", "vault.identities-changed"):
        identities = dict(data["identities"])
        for fp, k in identities.items():
            parse_public_key(k, f"identity key of {fp}")
        known.identities[data["policy_id"]] = identities
        if event == "vault.registered":
            check_vault_record(data)
            known.vaults[data["policy_id"]] = vault_record(data)
        else:
            known.vaults[data["policy_id"]] = {**known.vaults[data["policy_id"]], "identities": identities}
    elif event == "session.created":
        if data["vault"] not in known.vaults:
            raise AuditError("it creates a session for a vault the log never registered")
        known.session_vault[obj["session"]] = data["vault"]


def _check_attestation(obj: dict, known: _Known) -> None:
    actor, att = obj["actor"], obj["attestation"]
    if not isinstance(actor, str) or not actor.startswith("cosigner:"):
        if att is not None:
            raise AuditError("it carries an attestation but its actor is not a keyholder")
        return
    fp = actor.split(":", 1)[1]
    vault = known.session_vault.get(obj["session"])
    if vault is None:
        raise AuditError("a keyholder acts in a session the log never created")
    key = known.identities.get(vault, {}).get(fp)
    if key is None:
        if att is not None:
            raise AuditError(f"it carries an attestation but {fp} has no identity key registered")
        return
    if att is None:
        raise AuditError(f"keyholder {fp} has an identity key, but this entry carries no attestation by it")
    statement = att["statement"]
    if att["key"] != key or statement.get("session") != obj["session"] or statement.get("fingerprint") != fp:
        raise AuditError(f"its attestation is not {fp}'s statement for this session")
    if not verify_signature(key, att["signature"], statement_message(statement)):
        raise AuditError(f"the attestation by {fp} does not verify")


def check_vault_record(data: Mapping) -> None:
    """The recorded descriptor really is the vault with the recorded policy id (else AuditError)."""
    from ..errors import MsigvaultError
    from ..network import Network
    from ..policy.vault import Vault

    try:
        network = Network.from_name(data["network"])
        if data.get("origin_issues"):
            from ..formats.descriptor import vault_with_origin_issues

            vault = vault_with_origin_issues(data["descriptor"], network=network, accept=list(data["accept"]),
                                             origin_issues=list(data["origin_issues"]))
        else:
            vault = Vault.from_descriptor(data["descriptor"], network=network, accept=list(data["accept"]))
    except MsigvaultError:
        raise AuditError("its vault descriptor does not parse") from None
    if vault.policy_id != data["policy_id"]:
        raise AuditError("its vault descriptor is not the vault with the recorded policy id")


def vault_record(data: Mapping) -> dict:
    keys = ("policy_id", "name", "network", "descriptor", "accept", "origin_issues", "identities")
    return {k: data.get(k) for k in keys}


# -- checkpoints ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A head of the log an auditor keeps: entry count, the last entry's hash, when, signed by a
    coordinator key of the log. A later log must still hold that entry at that position."""

    entries: int
    head: str
    time: str
    key: str
    sig: str

    def body(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "version": 1, "entries": self.entries, "head": self.head,
                "time": self.time, "key": self.key}

    def to_json(self) -> bytes:
        return canonical({**self.body(), "sig": self.sig}) + b"\n"

    def to_dict(self) -> dict:
        return {**self.body(), "sig": self.sig}

    @classmethod
    def make(cls, result: VerifyResult, identity: Identity, *, time: Optional[str] = None) -> "Checkpoint":
        """A checkpoint of a verified log's head, signed by ``identity`` (one of its coordinator keys)."""
        if identity.public_hex not in result.coordinator_keys:
            raise AuditError("a checkpoint must be signed by one of the log's coordinator keys")
        unsigned = cls(result.count, result.head, time or now_text(), identity.public_hex, "")
        return cls(result.count, result.head, unsigned.time, identity.public_hex,
                   identity.sign(CHECKPOINT_TAG + canonical(unsigned.body())).hex())

    @classmethod
    def parse(cls, data: bytes, where: str = "the checkpoint") -> "Checkpoint":
        """A checkpoint from its JSON; AuditError if malformed or its signature does not verify."""
        if len(data) > CHECKPOINT_MAX:
            raise AuditError(f"{where} is larger than {CHECKPOINT_MAX} bytes: not an audit checkpoint")
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise AuditError(f"{where} is not JSON: not an audit checkpoint") from None
        fields = {"format", "version", "entries", "head", "time", "key", "sig"}
        if not isinstance(obj, dict) or set(obj) != fields or obj["format"] != CHECKPOINT_FORMAT:
            raise AuditError(f"{where} is not a msigvault audit checkpoint (msigvault audit checkpoint writes one)")
        if obj["version"] != 1 or not isinstance(obj["entries"], int) or isinstance(obj["entries"], bool) \
                or obj["entries"] < 1 or not is_hex(obj["head"], 64) or not isinstance(obj["time"], str) \
                or len(obj["time"]) > 40 or not is_hex(obj["key"], 64) or not is_hex(obj["sig"], 128):
            raise AuditError(f"{where} has a malformed field: it was edited or damaged")
        cp = cls(obj["entries"], obj["head"], obj["time"], obj["key"], obj["sig"])
        if not verify_signature(cp.key, cp.sig, CHECKPOINT_TAG + canonical(cp.body())):
            raise AuditError(f"{where}'s signature does not verify: it was edited or forged")
        return cp

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "Checkpoint":
        from ..fileio import read_bounded

        p = Path(path)
        return cls.parse(read_bounded(p, CHECKPOINT_MAX, AuditError, "checkpoint file"), f"checkpoint {p}")

    def check_entry(self, obj: Mapping, coordinator_keys: "set[str]", trusted: Optional[Sequence[str]]) -> None:
        """The log's entry at this checkpoint's position is the one it recorded, and its signer counts."""
        position = self.entries - 1
        if trusted is not None and self.key not in trusted:
            raise AuditError(f"the checkpoint of {self.time} is signed by {self.key[:16]}..., not a key you trust",
                             entry=position)
        if self.key not in coordinator_keys:
            raise AuditError(f"the checkpoint of {self.time} is signed by {self.key[:16]}..., which the log does "
                             "not authorise as a coordinator key", entry=position)
        if obj["hash"] != self.head:
            raise AuditError(f"entry {position} is not the entry the checkpoint of {self.time} recorded there: the "
                             f"log was rewritten at or before entry {position} (rolled back and replaced)",
                             entry=position)


# -- export -------------------------------------------------------------------------------------


def export_header(result: VerifyResult, *, exported_at: str) -> dict:
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": exported_at,
            "entries": result.count, "head": result.head, "coordinator_keys": list(result.coordinator_keys),
            "vaults": list(result.vaults)}


def write_export(lines: Sequence[bytes], path: "str | os.PathLike", identity: Identity, *,
                 overwrite: bool = False, exported_at: Optional[str] = None) -> VerifyResult:
    """Verify ``lines`` (the whole log) and write them as a self-contained export bundle whose
    header is signed by the coordinator ``identity`` (one of the log's coordinator keys)."""
    from ..fileio import write_atomic

    result = verify_entries(lines)
    if identity.public_hex not in result.coordinator_keys:
        raise AuditError("the export must be signed by one of the log's coordinator keys")
    header = export_header(result, exported_at=exported_at or now_text())
    header = {**header, "key": identity.public_hex,
              "sig": identity.sign(HEADER_TAG + canonical(header)).hex()}
    data = b"".join([canonical(header), b"\n"] + [bytes(x) + b"\n" for x in lines])
    write_atomic(path, data, overwrite=overwrite)
    return result


def verify_export(path: "str | os.PathLike", *, trusted_keys: Optional[Sequence[str]] = None,
                  checkpoints: "Sequence[Checkpoint]" = ()) -> VerifyResult:
    """Verify an export bundle offline; AuditError naming the first bad entry (or the header)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_EXPORT_BYTES:
            raise AuditError(f"{p} is larger than {MAX_EXPORT_BYTES:,} bytes: not an audit export")
        data = p.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"audit export {p} does not exist") from None
    except OSError as e:
        raise AuditError(f"cannot read audit export {p}: {e.strerror or e}") from None
    return verify_export_bytes(data, trusted_keys=trusted_keys, checkpoints=checkpoints)


def verify_export_bytes(data: bytes, *, trusted_keys: Optional[Sequence[str]] = None,
                        checkpoints: "Sequence[Checkpoint]" = ()) -> VerifyResult:
    if not data.endswith(b"\n"):
        raise AuditError("the export does not end with a newline: it was truncated or edited", line=None)
    lines = data[:-1].split(b"\n")
    header = _parse_header(lines[0])
    result = verify_entries(lines[1:], trusted_keys=trusted_keys, checkpoints=checkpoints)
    if header["entries"] > result.count:
        raise AuditError(f"the export's header records {header['entries']} entries but only {result.count} "
                         f"follow: entries from {result.count} on were deleted", entry=result.count)
    expected = export_header(result, exported_at=header.get("exported_at"))
    key, sig = header.get("key"), header.get("sig")
    if canonical({**expected, "key": key, "sig": sig}) != lines[0] or key not in result.coordinator_keys:
        raise AuditError("the export's header (line 1: keys, vaults, count, head) does not match its "
                         "entries: it was edited", line=1)
    if not isinstance(sig, str) or not verify_signature(key, sig, HEADER_TAG + canonical(expected)):
        raise AuditError("the export's header (line 1) is not signed by the coordinator: it was edited", line=1)
    return result


def _parse_header(line: bytes) -> dict:
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise AuditError("line 1 is not an audit export header (not JSON)", line=1) from None
    if not isinstance(obj, dict) or obj.get("format") != EXPORT_FORMAT:
        raise AuditError("this is not a msigvault audit export (line 1 is not its header)", line=1)
    if obj.get("version") != EXPORT_VERSION:
        raise AuditError(f"audit export version {obj.get('version')!r}; this msigvault reads {EXPORT_VERSION}",
                         line=1)
    if not isinstance(obj.get("entries"), int) or not isinstance(obj.get("head"), str):
        raise AuditError("the export's header (line 1) is malformed: it was edited", line=1)
    return obj
