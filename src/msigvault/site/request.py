"""The files that cross a site's air gap: the pulled request (the PSBT and its session) and the laptop's
response (the signed PSBT, or a refusal with a reason). Offline: needs neither httpx nor a database.

    request = SiteRequest.from_bytes(Path("3fa1c0de.request").read_bytes())   # on the laptop
    request.check_vault(vault_file.vault, fingerprint)                          # the vault and cosigner it names
    response = SiteResponse.signed(request, signed_psbt_bytes)                  # after `psbt sign`'s checks

Both are one line of canonical JSON (docs/site.md gives the fields), bounded in size and parsed strictly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ..identity.envelope import MAX_PAYLOAD
from .errors import SiteRequestError, SiteResponseError

if TYPE_CHECKING:
    from ..policy.vault import Vault

__all__ = ["SiteRequest", "SiteResponse", "REQUEST_FORMAT", "RESPONSE_FORMAT", "MAX_FILE", "MAX_REASON_BYTES",
           "printable", "unsigned_txid"]

REQUEST_FORMAT = "msigvault-site-request"
RESPONSE_FORMAT = "msigvault-site-response"
#: a request or response file: a base64 PSBT of at most MAX_PAYLOAD bytes and a few short fields
MAX_FILE = (MAX_PAYLOAD + 2) // 3 * 4 + 64 * 1024
MAX_TEXT = 1000  # memo, vault name, coordinator name (characters)
MAX_REASON_BYTES = 2_000  # as coordinator.envelopes.MAX_REASON_BYTES
SESSION_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]*$")
_EXPIRES = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")


def _canonical(obj: "dict[str, Any]") -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def _load(data: bytes, fmt: str, fields: "dict[str, tuple[type, ...]]", error: type) -> "dict[str, Any]":
    """``data`` as the JSON object of ``fmt`` with exactly ``fields`` (name -> allowed types)."""
    if not isinstance(data, (bytes, bytearray)):
        raise error(f"a {fmt} file is bytes, not {type(data).__name__}")
    if len(data) > MAX_FILE:
        raise error(f"the file is larger than {MAX_FILE:,} bytes: it is not a {fmt} file", limit=MAX_FILE)
    try:
        obj = json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError):
        raise error(f"the file is not JSON: it is not a {fmt} file (pull or sign it again)") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt or obj.get("version") != 1:
        raise error(f"the file is not a {fmt} file (version 1)")
    want = {"format", "version", *fields}
    if set(obj) != want:
        extra, missing = sorted(set(obj) - want), sorted(want - set(obj))
        raise error(f"the {fmt} file has unknown fields {extra} or lacks {missing}: it was edited or made by "
                    "other software")
    for name, kinds in fields.items():
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise error(f"the {fmt} file's {name!r} has the wrong type", field=name)
        if isinstance(value, str) and name not in ("psbt",) and len(value) > MAX_TEXT + 1000:
            raise error(f"the {fmt} file's {name!r} is too long", field=name)
    if not SESSION_RE.match(obj["session"]):
        raise error(f"the {fmt} file's session id is not 1 to 64 of A-Z a-z 0-9 . _ : -", field="session")
    return obj


def _fingerprint(value: str, error: type) -> str:
    if len(value) != 8 or not _HEX.match(value):
        raise error(f"a cosigner fingerprint is 8 lower-case hex digits, not {value[:20]!r}", field="fingerprint")
    return value


def _psbt(text: str, error: type) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise error("the file's PSBT is not valid base64", field="psbt") from None
    if not raw.startswith(b"psbt\xff"):
        raise error("the file's PSBT does not start with the PSBT magic", field="psbt")
    if len(raw) > MAX_PAYLOAD:
        raise error(f"the file's PSBT is larger than {MAX_PAYLOAD:,} bytes", field="psbt", limit=MAX_PAYLOAD)
    return raw


def printable(text: str) -> str:
    """``text`` safe for a terminal: every character that is not printable (newlines, escape sequences,
    bidirectional overrides, other format characters) shown as a Python escape. The coordinator writes
    the memo and names; they must not be able to move the cursor over, or reorder, the signer's summary."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


def unsigned_txid(psbt: bytes) -> str:
    """The txid of a PSBT's unsigned transaction (what every signed copy of it shares)."""
    from ..psbt.psbt import Psbt

    return Psbt.parse(psbt).txid().hex()


@dataclass(frozen=True)
class SiteRequest:
    """A signing request as the site's online machine opened it: the session's unsigned PSBT and context.

    ``session``, ``psbt``, ``coordinator_id``, ``sequence`` and ``expires`` come from the coordinator's
    envelope (checked: its signature, expiry and replay state). ``vault``, ``vault_name``, ``memo`` and
    ``fingerprint`` come with it (over TLS, or beside it in the folder) and are advisory: the laptop's
    signer checks the PSBT against its own registered vault whatever they say.
    """

    session: str
    vault: str
    vault_name: str
    fingerprint: str
    memo: str
    expires: str
    coordinator_id: str
    coordinator_name: str
    sequence: int
    psbt: bytes = field(repr=False)

    @property
    def psbt_sha256(self) -> str:
        return hashlib.sha256(self.psbt).hexdigest()

    def to_dict(self) -> "dict[str, Any]":
        """Everything but the PSBT (for --json and the operator's screen)."""
        return {"session": self.session, "vault": self.vault, "vault_name": self.vault_name,
                "fingerprint": self.fingerprint, "memo": self.memo, "expires": self.expires,
                "coordinator_id": self.coordinator_id, "coordinator_name": self.coordinator_name,
                "sequence": self.sequence, "psbt_sha256": self.psbt_sha256}

    def to_bytes(self) -> bytes:
        return _canonical({"format": REQUEST_FORMAT, "version": 1, **self.to_dict(),
                           "psbt": base64.b64encode(self.psbt).decode()})

    @classmethod
    def from_bytes(cls, data: bytes) -> "SiteRequest":
        """Parse a request file strictly; SiteRequestError for anything else (the hash must match the PSBT)."""
        s, i = (str,), (int,)
        obj = _load(data, REQUEST_FORMAT, {"session": s, "vault": s, "vault_name": s, "fingerprint": s, "memo": s,
                                           "expires": s, "coordinator_id": s, "coordinator_name": s,
                                           "sequence": i, "psbt_sha256": s, "psbt": s}, SiteRequestError)
        psbt = _psbt(obj["psbt"], SiteRequestError)
        if hashlib.sha256(psbt).hexdigest() != obj["psbt_sha256"]:
            raise SiteRequestError("the request's PSBT does not match its psbt_sha256: the file was changed; pull "
                                   "the request again", field="psbt_sha256")
        if len(obj["coordinator_id"]) != 32 or not _HEX.match(obj["coordinator_id"]):
            raise SiteRequestError("the request's coordinator_id is not 32 hex digits", field="coordinator_id")
        if not _EXPIRES.match(obj["expires"]):  # shown beside the signer's summary: exactly a UTC time
            raise SiteRequestError("the request's expires is not a UTC time (YYYY-MM-DDTHH:MM:SSZ): the file was "
                                   "changed; pull the request again", field="expires")
        if (len(obj["vault"]) != 64 or not _HEX.match(obj["vault"])) or not 0 <= obj["sequence"] < 2 ** 64:
            raise SiteRequestError("the request's vault is not a policy id (64 hex) or its sequence is out of range")
        return cls(obj["session"], obj["vault"], obj["vault_name"][:MAX_TEXT], _fingerprint(obj["fingerprint"],
                   SiteRequestError), obj["memo"][:MAX_TEXT], obj["expires"], obj["coordinator_id"],
                   obj["coordinator_name"][:MAX_TEXT], obj["sequence"], psbt)

    def check_vault(self, vault: "Vault", fingerprint: str) -> None:
        """The request is for this vault and this keyholder's cosigner (SiteRequestError otherwise)."""
        if vault.policy_id != self.vault:
            raise SiteRequestError(f"this request is for vault {self.vault[:16]}..., not for the vault you gave "
                                   f"({vault.policy_id[:16]}...): use the vault file of that vault",
                                   field="vault")
        if fingerprint.lower() != self.fingerprint:
            raise SiteRequestError(f"this request asks cosigner {self.fingerprint} to sign, not {fingerprint}: give "
                                   "the key of that cosigner (or pass the request to its site)",
                                   field="fingerprint")


@dataclass(frozen=True)
class SiteResponse:
    """The laptop's answer to one request: ``partial-signature`` (``psbt``) or ``refusal`` (``reason``)."""

    kind: str
    session: str
    fingerprint: str
    request_psbt_sha256: str
    psbt: Optional[bytes] = field(default=None, repr=False)
    reason: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in ("partial-signature", "refusal"):
            raise SiteResponseError(f"a response is a partial-signature or a refusal, not {self.kind!r}")
        if (self.kind == "partial-signature") != (self.psbt is not None) or (self.kind == "refusal") != (
                self.reason is not None):
            raise SiteResponseError("a partial-signature response carries a PSBT, a refusal a reason")
        if self.reason is not None and not 1 <= len(self.reason.encode()) <= MAX_REASON_BYTES:
            raise SiteResponseError(f"a refusal reason has 1 to {MAX_REASON_BYTES} bytes; say why briefly",
                                    field="reason", limit=MAX_REASON_BYTES)

    @classmethod
    def signed(cls, request: SiteRequest, psbt: bytes) -> "SiteResponse":
        return cls("partial-signature", request.session, request.fingerprint, request.psbt_sha256, psbt=psbt)

    @classmethod
    def refused(cls, request: SiteRequest, reason: str) -> "SiteResponse":
        return cls("refusal", request.session, request.fingerprint, request.psbt_sha256, reason=str(reason).strip())

    def to_bytes(self) -> bytes:
        return _canonical({"format": RESPONSE_FORMAT, "version": 1, "kind": self.kind, "session": self.session,
                           "fingerprint": self.fingerprint, "request_psbt_sha256": self.request_psbt_sha256,
                           "psbt": None if self.psbt is None else base64.b64encode(self.psbt).decode(),
                           "reason": self.reason})

    @classmethod
    def from_bytes(cls, data: bytes) -> "SiteResponse":
        s, n = (str,), (str, type(None))
        obj = _load(data, RESPONSE_FORMAT, {"kind": s, "session": s, "fingerprint": s, "request_psbt_sha256": s,
                                            "psbt": n, "reason": n}, SiteResponseError)
        psbt = None if obj["psbt"] is None else _psbt(obj["psbt"], SiteResponseError)
        return cls(obj["kind"], obj["session"], _fingerprint(obj["fingerprint"], SiteResponseError),
                   obj["request_psbt_sha256"], psbt=psbt, reason=obj["reason"])

    def check_answers(self, request: SiteRequest) -> None:
        """This response answers ``request``: same session, cosigner and request; a signed PSBT of the same
        transaction (SiteResponseError otherwise)."""
        if (self.session, self.fingerprint, self.request_psbt_sha256) != (
                request.session, request.fingerprint, request.psbt_sha256):
            raise SiteResponseError(f"this response answers session {self.session} (cosigner {self.fingerprint}), "
                                    f"not the request of session {request.session} (cosigner {request.fingerprint}) "
                                    "that was given: push each response with its own request")
        if self.psbt is not None:
            check_same_transaction(request, self.psbt)


def check_same_transaction(request: SiteRequest, signed: bytes) -> None:
    """``signed`` is a copy of the request's PSBT (same unsigned transaction); SiteResponseError otherwise."""
    from ..errors import MsigvaultError

    try:
        theirs = unsigned_txid(signed)
    except MsigvaultError as e:
        raise SiteResponseError(f"the signed PSBT does not parse: {e}") from None
    ours = unsigned_txid(request.psbt)
    if theirs != ours:
        raise SiteResponseError(f"the signed PSBT is for transaction {theirs}, but session {request.session} asks "
                                f"for {ours}: it answers another request; sign this request's PSBT")
