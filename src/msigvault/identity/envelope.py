"""Sealed envelopes: a payload encrypted to one identity, signed by another (docs/envelopes.md).

Encryption is HPKE (RFC 9180, base mode) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
ChaCha20-Poly1305, from ``cryptography``; the outer header (what routing needs: magic, version,
suite, recipient id, length) is bound to the encryption as HPKE ``info``. Inside: sender and
recipient ids, content type, sequence number, creation and expiry times, session id and
payload, signed by the sender's Ed25519 key (over the outer header too). Opening checks, in
this order: sizes (before any crypto), header, recipient, decryption, sender, signature, expiry,
replay and order. Each refusal is its own :class:`~msigvault.identity.errors.EnvelopeError`.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import json
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Tuple, Union

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from .errors import (
    EnvelopeError, EnvelopeExpired, EnvelopeOutOfOrder, EnvelopeReplayed, EnvelopeTampered, EnvelopeTooLarge,
    EnvelopeTruncated, WrongRecipient, WrongSender,
)
from .identity import IdentityKey, IdentityRecord

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.hpke import Suite

__all__ = [
    "ContentType", "EnvelopeHeader", "OpenedEnvelope", "ReplayGuard", "seal", "open_envelope", "read_header",
    "MAGIC", "VERSION", "SUITE", "MAX_PAYLOAD", "MAX_ENVELOPE", "MAX_SESSION_ID",
]

MAGIC = b"MSVE"
VERSION = 1
SUITE = 1  #: HPKE DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305, signatures Ed25519
MAX_PAYLOAD = 8 * 1024 * 1024
MAX_SESSION_ID = 64
_HEADER = struct.Struct(">4sBB16sI")  # magic, version, suite, recipient id, ciphertext length
HEADER_LEN = _HEADER.size  # 26
_ENC_LEN = 32
_TAG_LEN = 16
_SIG_LEN = 64
_FIXED = struct.Struct(">16s16sBQqqB")  # sender, recipient, type, sequence, created, expires, session id length
_MIN_INNER = _FIXED.size + 1 + 4 + _SIG_LEN
_MAX_INNER = _FIXED.size + MAX_SESSION_ID + 4 + MAX_PAYLOAD + _SIG_LEN
MAX_ENVELOPE = HEADER_LEN + _ENC_LEN + _MAX_INNER + _TAG_LEN
_INFO_TAG = b"msigvault/envelope/v1\0"
_SIG_TAG = b"msigvault/envelope-sig/v1\0"
_SESSION_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
_MAX_GUARD_FILE = 16 * 1024 * 1024


class ContentType(enum.IntEnum):
    """What an envelope carries (one byte inside the encryption)."""

    PSBT = 1
    PARTIAL_SIGNATURE = 2
    REGISTRATION = 3
    REFUSAL = 4

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, value: "ContentType | str | int") -> "ContentType":
        if isinstance(value, ContentType):
            return value
        for member in cls:
            if value in (member.label, int(member)) and not isinstance(value, bool):
                return member
        raise EnvelopeError(f"the content type is one of {', '.join(m.label for m in cls)}, not {value!r}",
                            field="content_type")


def _suite() -> "Suite":  # imported on use: HPKE needs cryptography 50 or newer
    try:
        from cryptography.hazmat.primitives import hpke
    except ImportError:  # pragma: no cover - depends on the installed cryptography
        raise EnvelopeError("sealed envelopes need HPKE from cryptography 50 or newer: upgrade cryptography") from None
    return hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def _seconds(t: _dt.datetime) -> int:
    if t.tzinfo is None:
        raise EnvelopeError("envelope times must be timezone-aware (UTC)")
    return int(t.timestamp())


def _time(seconds: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)


# -- the outer header ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvelopeHeader:
    """What routing may read without any key: version, suite, recipient id and ciphertext length."""

    version: int
    suite: int
    recipient_id: bytes
    length: int

    def to_bytes(self) -> bytes:
        return _HEADER.pack(MAGIC, self.version, self.suite, self.recipient_id, self.length)


def read_header(data: bytes) -> EnvelopeHeader:
    """Check an envelope's sizes and outer header (no crypto); EnvelopeError subclasses otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EnvelopeError(f"an envelope is bytes, not {type(data).__name__}")
    size = len(data)
    if size > MAX_ENVELOPE:
        raise EnvelopeTooLarge(f"an envelope has at most {MAX_ENVELOPE:,} bytes; this one has {size:,}: refused "
                               "unread", limit=MAX_ENVELOPE)
    if size < HEADER_LEN:
        if bytes(data[:4]) == MAGIC[:size] or bytes(data[:4]).startswith(MAGIC):
            raise EnvelopeTruncated(f"the envelope ends after {size} bytes, inside its {HEADER_LEN}-byte header: "
                                    "copy or scan it again")
        raise EnvelopeError("this is not a msigvault envelope (it is too short and has no MSVE magic)")
    magic, version, suite, recipient, length = _HEADER.unpack_from(bytes(data[:HEADER_LEN]))
    if magic != MAGIC:
        raise EnvelopeError("this is not a msigvault envelope (no MSVE magic): check the file")
    if version != VERSION:
        raise EnvelopeError(f"envelope format version {version} is not supported (only {VERSION})"
                            + (": upgrade msigvault" if version > VERSION else ""))
    if suite != SUITE:
        raise EnvelopeError(f"envelope cipher suite {suite} is unknown (only {SUITE}): upgrade msigvault")
    if not _ENC_LEN + _MIN_INNER + _TAG_LEN <= length <= _ENC_LEN + _MAX_INNER + _TAG_LEN:
        raise EnvelopeError(f"the envelope's length field ({length:,}) is out of range: it was damaged")
    if size - HEADER_LEN < length:
        raise EnvelopeTruncated(f"the envelope is truncated: {size - HEADER_LEN:,} of {length:,} bytes after the "
                                "header; copy or scan it again")
    if size - HEADER_LEN > length:
        raise EnvelopeTruncated(f"{size - HEADER_LEN - length:,} bytes follow the envelope's end: two files were "
                                "joined or the copy is damaged; copy it again")
    return EnvelopeHeader(version, suite, recipient, length)


# -- sealing -------------------------------------------------------------------------------------


def _check_session(session_id: object) -> bytes:
    if not isinstance(session_id, str) or not _SESSION_RE.match(session_id):
        raise EnvelopeError(f"a session id is 1 to {MAX_SESSION_ID} characters of A-Z a-z 0-9 . _ : -, "
                            f"not {session_id!r}", field="session_id")
    return session_id.encode("ascii")


_sequence_lock = threading.Lock()
_last_sequence = 0


def next_sequence() -> int:
    """The sequence number of the next envelope this process seals: Unix microseconds, strictly
    increasing in the process (one counter for every sender in it: the site, the folder sync and the
    service). Above every earlier one from this machine as long as its clock is kept (by NTP: the
    service's signed requests need that anyway), so no counter file can be lost or rolled back."""
    global _last_sequence
    with _sequence_lock:
        _last_sequence = max(time.time_ns() // 1000, _last_sequence + 1)
        return _last_sequence


def seal(payload: bytes, *, sender: IdentityKey, recipient: IdentityRecord, session_id: str, sequence: int,
         content_type: "ContentType | str | int", expires: "_dt.datetime | _dt.timedelta",
         now: "_dt.datetime | None" = None) -> bytes:
    """Encrypt ``payload`` to ``recipient`` (a verified record), signed by ``sender``; return the envelope."""
    if not isinstance(payload, (bytes, bytearray)):
        raise EnvelopeError(f"an envelope's payload is bytes, not {type(payload).__name__}", field="payload")
    if len(payload) > MAX_PAYLOAD:
        raise EnvelopeTooLarge(f"an envelope carries at most {MAX_PAYLOAD:,} bytes; this payload has "
                               f"{len(payload):,}", limit=MAX_PAYLOAD)
    if not isinstance(sender, IdentityKey) or not isinstance(recipient, IdentityRecord):
        raise EnvelopeError("seal() takes the sender's IdentityKey and the recipient's IdentityRecord")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not 0 <= sequence < 2 ** 64:
        raise EnvelopeError(f"a sequence number is a whole number from 0 to 2^64-1, not {sequence!r}",
                            field="sequence")
    sid = _check_session(session_id)
    kind = ContentType.parse(content_type)
    created = now or _dt.datetime.now(_dt.timezone.utc)
    until = created + expires if isinstance(expires, _dt.timedelta) else expires
    c, e = _seconds(created), _seconds(until)
    if e <= c:
        raise EnvelopeError("an envelope must expire after it is made: give a later expiry", field="expires")
    inner = _FIXED.pack(sender.id, recipient.id, int(kind), sequence, c, e, len(sid)) + sid
    inner += struct.pack(">I", len(payload)) + bytes(payload)
    header = EnvelopeHeader(VERSION, SUITE, recipient.id, _ENC_LEN + len(inner) + _SIG_LEN + _TAG_LEN).to_bytes()
    inner += sender.sign(_SIG_TAG + header + inner)
    try:
        public = X25519PublicKey.from_public_bytes(recipient.encryption_key)
        sealed = _suite().encrypt(inner, public, info=_INFO_TAG + header)
    except ValueError:
        raise EnvelopeError(f"recipient {recipient.name!r} has an unusable encryption key: ask for its record "
                            "again") from None
    if len(sealed) != _ENC_LEN + len(inner) + _TAG_LEN:
        raise RuntimeError("HPKE output has an unexpected length")  # an internal bug
    return header + sealed


# -- opening -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenedEnvelope:
    """An envelope that passed every check. Its repr shows the payload's size and hash, not the payload."""

    sender: IdentityRecord
    recipient_id: bytes
    session_id: str
    sequence: int
    content_type: ContentType
    created: _dt.datetime
    expires: _dt.datetime
    payload: bytes = field(repr=False)

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    def __repr__(self) -> str:
        return (f"OpenedEnvelope(sender={self.sender.name!r}, session={self.session_id!r}, seq={self.sequence}, "
                f"type={self.content_type.label}, payload={len(self.payload)} bytes sha256 "
                f"{self.payload_sha256[:16]}...)")

    def to_dict(self) -> "dict[str, Any]":
        """Metadata for --json (the payload itself is written to a file, not printed)."""
        return {"sender": self.sender.name, "sender_id": self.sender.id.hex(), "recipient_id": self.recipient_id.hex(),
                "session": self.session_id, "sequence": self.sequence, "content_type": self.content_type.label,
                "created": self.created.isoformat(), "expires": self.expires.isoformat(),
                "payload_bytes": len(self.payload), "payload_sha256": self.payload_sha256}


Senders = Union[IdentityRecord, Iterable[IdentityRecord]]


def open_envelope(data: bytes, *, recipient: IdentityKey, senders: Senders, guard: "ReplayGuard",
                  now: "_dt.datetime | None" = None) -> OpenedEnvelope:
    """Check and decrypt ``data`` for ``recipient``; ``senders`` are the verified records allowed to send.

    ``guard`` remembers accepted (sender, session, sequence) triples: pass the same guard (or one
    loaded from the same file) for every envelope, and save it after each one accepted.
    """
    header = read_header(data)
    if header.recipient_id != recipient.id:
        raise WrongRecipient(f"this envelope is addressed to identity {header.recipient_id.hex()}, not to "
                             f"{recipient.public.name!r} ({recipient.id.hex()}): pass it on to its recipient")
    head = bytes(data[:HEADER_LEN])
    inner = None
    try:
        inner = _suite().decrypt(bytes(data[HEADER_LEN:]), recipient.encryption, info=_INFO_TAG + head)
    except (InvalidTag, ValueError):
        pass
    if inner is None:
        raise EnvelopeTampered("the envelope does not decrypt: bytes were changed on the way (or it was sealed for "
                               "another key with the same id); ask the sender to send it again")
    fields = _parse_inner(inner, header)
    sender = _find_sender(fields[0], senders)
    body, sig = inner[:-_SIG_LEN], inner[-_SIG_LEN:]
    try:
        Ed25519PublicKey.from_public_bytes(sender.signing_key).verify(sig, _SIG_TAG + head + body)
    except (InvalidSignature, ValueError):
        raise EnvelopeTampered(f"the envelope's signature does not verify with {sender.name!r}'s signing key: it "
                               "was forged or changed; do not use it") from None
    _, _, kind, sequence, created, expires, session, payload = fields
    moment = _seconds(now or _dt.datetime.now(_dt.timezone.utc))
    if moment >= expires:
        raise EnvelopeExpired(f"the envelope from {sender.name!r} for session {session} expired at "
                              f"{_time(expires).isoformat()}: ask for a fresh one")
    guard.accept(sender.id, session, sequence, expires=expires, now=moment)
    return OpenedEnvelope(sender, header.recipient_id, session, sequence, kind, _time(created), _time(expires),
                          payload)


_Inner = Tuple[bytes, bytes, ContentType, int, int, int, str, bytes]


def _parse_inner(inner: bytes, header: EnvelopeHeader) -> _Inner:
    """The signed fields; malformed ones (a broken sender) are EnvelopeError, checked in linear time."""
    if len(inner) < _MIN_INNER:
        raise EnvelopeError("the envelope's contents are too short: the sender's software is broken")
    sender, recip, kind, sequence, created, expires, sid_len = _FIXED.unpack_from(inner)
    pos = _FIXED.size
    session = inner[pos:pos + sid_len]
    pos += sid_len
    if len(inner) < pos + 4 + _SIG_LEN:
        raise EnvelopeError("the envelope's contents end early: the sender's software is broken")
    (plen,) = struct.unpack_from(">I", inner, pos)
    pos += 4
    if pos + plen + _SIG_LEN != len(inner):
        raise EnvelopeError("the envelope's payload length does not match its contents: the sender's software "
                            "is broken")
    if recip != header.recipient_id:
        raise EnvelopeTampered("the envelope's signed recipient differs from its header: it was re-addressed")
    try:
        session_text = session.decode("ascii")
    except UnicodeDecodeError:
        session_text = ""
    if not _SESSION_RE.match(session_text) or kind not in ContentType._value2member_map_ or expires <= created:
        raise EnvelopeError("the envelope's session id, content type or times are invalid: the sender's "
                            "software is broken")
    return sender, recip, ContentType(kind), sequence, created, expires, session_text, inner[pos:pos + plen]


def _find_sender(sender_id: bytes, senders: Senders) -> IdentityRecord:
    allowed = [senders] if isinstance(senders, IdentityRecord) else list(senders)
    for record in allowed:
        if record.id == sender_id:
            return record
    names = ", ".join(repr(r.name) for r in allowed) or "nobody"
    raise WrongSender(f"the envelope is from identity {sender_id.hex()}, which is not among the senders allowed "
                      f"here ({names}): refused")


# -- replay and order ----------------------------------------------------------------------------


@dataclass
class ReplayGuard:
    """The last sequence number accepted per (sender id, session id); optionally kept in a JSON file.

    The last sequence again is a replay; one below it is out of order (so only the last needs keeping:
    sequences only grow). With each one the latest expiry of the envelopes accepted for that pair is
    kept, and a pair is forgotten once that has passed (any envelope it could refuse is expired and
    refused for that), so the state stays as small as the sessions still live, however often a site
    pulls the same requests.
    """

    accepted: "dict[tuple[bytes, str], list[int]]" = field(default_factory=dict)
    path: Optional[Path] = None
    expires: "dict[tuple[bytes, str], int]" = field(default_factory=dict)

    def check(self, sender_id: bytes, session_id: str, sequence: int) -> None:
        seen = self.accepted.get((sender_id, session_id), [])
        if sequence in seen:
            raise EnvelopeReplayed(f"envelope {sequence} of session {session_id} from {sender_id.hex()} was "
                                   "accepted before: this is a replay; ignore it")
        if seen and sequence <= seen[-1]:
            raise EnvelopeOutOfOrder(f"envelope {sequence} of session {session_id} from {sender_id.hex()} is not "
                                     f"above the last accepted ({seen[-1]}): it is stale or reordered; refused")

    def accept(self, sender_id: bytes, session_id: str, sequence: int, *, expires: Optional[int] = None,
               now: Optional[int] = None) -> None:
        """Check, then record (and save, with a path) one accepted envelope; ``expires`` (Unix seconds) is its
        expiry, ``now`` the time it was opened at (pairs whose envelopes have all expired by then are dropped)."""
        self.check(sender_id, session_id, sequence)
        key = (sender_id, session_id)
        self.accepted[key] = [sequence]
        if expires is not None:
            self.expires[key] = max(self.expires.get(key, expires), expires)
        if now is not None:
            for gone in [k for k, until in self.expires.items() if until <= now and k != key]:
                self.accepted.pop(gone, None)
                self.expires.pop(gone, None)
        if self.path is not None:
            self.save(self.path)

    def to_bytes(self) -> bytes:
        rows = []
        for (s, sid), seqs in sorted(self.accepted.items()):
            row: "dict[str, Any]" = {"sender": s.hex(), "session": sid, "accepted": seqs[-1:]}
            if (s, sid) in self.expires:
                row["expires"] = self.expires[(s, sid)]
            rows.append(row)
        return json.dumps({"format": "msigvault-replay-guard", "version": 1, "entries": rows},
                          separators=(",", ":")).encode() + b"\n"

    def save(self, path: "str | Path") -> None:
        from ..fileio import write_atomic

        write_atomic(path, self.to_bytes(), secret=False, overwrite=True)

    @classmethod
    def load(cls, path: "str | Path") -> "ReplayGuard":
        """The guard kept in ``path`` (an empty one if the file does not exist yet); it saves itself there."""
        p = Path(path)
        if not p.exists():
            return cls(path=p)
        with open(p, "rb") as f:
            data = f.read(_MAX_GUARD_FILE + 1)
        if len(data) > _MAX_GUARD_FILE:
            raise EnvelopeError(f"replay state {p} is larger than {_MAX_GUARD_FILE:,} bytes", path=p,
                                limit=_MAX_GUARD_FILE)
        try:
            obj = json.loads(data)
            assert obj["format"] == "msigvault-replay-guard" and obj["version"] == 1
            accepted, expires = {}, {}
            for row in obj["entries"]:
                seqs = row["accepted"]
                assert isinstance(seqs, list) and all(type(s) is int and 0 <= s < 2 ** 64 for s in seqs)
                assert seqs == sorted(set(seqs)) and isinstance(row["session"], str)
                key = (bytes.fromhex(row["sender"]), row["session"])
                accepted[key] = list(seqs[-1:])  # older files kept every sequence: the last is what counts
                if "expires" in row:
                    assert type(row["expires"]) is int
                    expires[key] = row["expires"]
        except (ValueError, KeyError, TypeError, AssertionError):
            raise EnvelopeError(f"replay state {p} is damaged: restore it from a backup (a lost state lets old "
                                "envelopes be replayed)", path=p) from None
        return cls(accepted, p, expires)
