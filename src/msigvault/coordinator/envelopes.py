"""Submissions that arrive as sealed envelopes (docs/envelopes.md, "Submitting to a coordinator").

A keyholder site seals a ``partial-signature`` (or ``refusal``) envelope to the coordinator's
identity. :func:`submit_envelope` opens and checks it (recipient, decryption, sender, signature,
expiry, replay and order), checks that the sender's record is signed by the vault key of the
cosigner it speaks for and that its signing key is the identity key the vault registration lists
for that cosigner, then hands the PSBT to :meth:`Coordinator.submit` (or the refusal to
:meth:`Coordinator.refuse`), with the keyholder's statement signature from the payload, so the
audit log's attestation is unchanged.

The payload helpers (:func:`submission_payload`, :func:`refusal_payload`) run on the keyholder's
side and need no database: this module imports SQLAlchemy only through the Coordinator it is given.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
from typing import TYPE_CHECKING, Iterable, Union

from ..identity.envelope import ContentType, OpenedEnvelope, ReplayGuard, open_envelope
from ..identity.errors import EnvelopeError, WrongSender
from ..identity.identity import IdentityKey, IdentityRecord
from ..errors import MsigvaultError
from .audit import Identity, canonical, refusal_statement, sign_statement, submission_statement
from .errors import SessionNotFound

if TYPE_CHECKING:
    from ..vaultfile import VaultFile
    from .sessions import Coordinator, Session, SubmissionResult

__all__ = ["register_site_records", "refusal_record", "submission_payload", "refusal_payload", "submit_envelope", "MAX_REASON_BYTES"]

_SUBMISSION_FORMAT = "msigvault-submission"
_REFUSAL_FORMAT = "msigvault-refusal"
MAX_REASON_BYTES = 2_000


def register_site_records(coordinator: "Coordinator", vault_file: "VaultFile",
                          records: Iterable[IdentityRecord]) -> str:
    """Register ``vault_file`` with the signing keys of its sites' records, each verified first.

    Only a record signed by a cosigner's own vault key is accepted, one per cosigner; the keys
    go to :meth:`Coordinator.register_vault` (a change of keys is an audited event). Returns the
    policy id.
    """
    keys: "dict[str, str]" = {}
    for record in records:
        if record.role != "keyholder-site":
            raise WrongSender(f"{record.name!r} is a {record.role} identity: only keyholder sites submit for a cosigner")
        record.verify_for_vault(vault_file.vault)
        fp = record.fingerprint
        assert fp is not None
        if fp in keys:
            raise WrongSender(f"two site records speak for cosigner {fp}: register one identity per cosigner",
                              fingerprint=fp)
        keys[fp] = record.signing_key.hex()
    return coordinator.register_vault(vault_file, keys)


def _audit_identity(key: IdentityKey) -> Identity:
    return Identity(key.signing)


def submission_payload(site: IdentityKey, session_id: str, fingerprint: str, psbt: bytes) -> bytes:
    """The payload of a ``partial-signature`` envelope: the signed PSBT and the site's statement signature."""
    fp = fingerprint.lower()
    statement = submission_statement(session_id, hashlib.sha256(psbt).hexdigest(), fp)
    return canonical({"format": _SUBMISSION_FORMAT, "fingerprint": fp, "psbt": base64.b64encode(psbt).decode(),
                      "statement_signature": sign_statement(_audit_identity(site), statement)})


def refusal_payload(site: IdentityKey, session_id: str, fingerprint: str, reason: str) -> bytes:
    """The payload of a ``refusal`` envelope: the reason and the site's statement signature."""
    fp = fingerprint.lower()
    reason = str(reason)
    if len(reason.encode()) > MAX_REASON_BYTES:
        raise EnvelopeError(f"a refusal reason has at most {MAX_REASON_BYTES} bytes; shorten it",
                            limit=MAX_REASON_BYTES)
    statement = refusal_statement(session_id, fp, reason)
    return canonical({"format": _REFUSAL_FORMAT, "fingerprint": fp, "reason": reason,
                      "statement_signature": sign_statement(_audit_identity(site), statement)})


def submit_envelope(coordinator: "Coordinator", data: bytes, *, identity: IdentityKey,
                    senders: Union[IdentityRecord, Iterable[IdentityRecord]], guard: ReplayGuard,
                    now: "_dt.datetime | None" = None,
                    record_refusals: bool = True) -> "Union[SubmissionResult, Session]":
    """Open a site's envelope addressed to ``identity`` (the coordinator's) and submit what it carries.

    ``senders`` are the site records the coordinator knows; each is re-checked against the
    session's vault. Returns the :class:`SubmissionResult` (partial-signature) or the updated
    :class:`Session` (refusal). A refused envelope (it does not open, is replayed, expired, from a
    sender who does not speak for a registered cosigner, for an unknown session) changes no session:
    it is recorded as an ``envelope.refused`` audit entry (:func:`refusal_record`), then the error
    is raised (unless ``record_refusals`` is false: a caller that bounds how many it audits, such as
    folder-sync, counts the rest itself). The PSBT then meets every check of :meth:`Coordinator.submit`.
    """
    opened = None
    try:
        opened = open_envelope(data, recipient=identity, senders=senders, guard=guard, now=now)
        session = coordinator.get(opened.session_id)
        if session.id != opened.session_id:  # a prefix resolved to some session: an envelope names its own
            raise SessionNotFound(f"the envelope names session {opened.session_id}, which is not a session id of "
                                  "this coordinator (an envelope names its session by its full id)")
        fp = _registered_sender(coordinator, session, opened)
        body = _payload(opened, fp)
    except (EnvelopeError, SessionNotFound) as e:
        if record_refusals:
            coordinator.record_refused_envelope(refusal_record(data, e, opened),
                                                session_id=opened.session_id if opened is not None else None)
        raise
    if opened.content_type is ContentType.PARTIAL_SIGNATURE:
        return coordinator.submit(session.id, body["psbt"], identity_signatures={fp: body["statement_signature"]})
    return coordinator.refuse(session.id, fp, body["reason"], identity_signature=body["statement_signature"])


def refusal_record(data: bytes, error: MsigvaultError, opened: "OpenedEnvelope | None") -> dict:
    """What the audit log keeps of a refused envelope: its hash and size, why (code and message),
    and, when it was opened far enough, its authenticated sender, session, sequence and kind;
    never its payload or anything decrypted beyond those fields."""
    raw = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b""
    record: "dict[str, object]" = {
        "envelope_sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw), "code": error.code,
        "reason": str(error)[:MAX_REASON_BYTES], "sender": None, "sender_name": None, "fingerprint": None,
        "session": None, "sequence": None, "content_type": None}
    if opened is not None:
        record.update({"sender": opened.sender.id.hex(), "sender_name": opened.sender.name[:200],
                       "fingerprint": opened.sender.fingerprint, "session": opened.session_id[:200],
                       "sequence": opened.sequence, "content_type": opened.content_type.label})
    return record


def _registered_sender(coordinator: "Coordinator", session: "Session", opened: OpenedEnvelope) -> str:
    """The cosigner fingerprint the sender speaks for; WrongSender unless it is that cosigner's registered identity."""
    sender = opened.sender
    if sender.role != "keyholder-site":
        raise WrongSender(f"{sender.name!r} is a {sender.role} identity: only keyholder sites submit signatures")
    sender.verify_for_vault(coordinator.vault_file(session.vault_id).vault)
    fp = sender.fingerprint
    assert fp is not None  # a verified keyholder-site record names its cosigner
    registered = coordinator.identities(session.vault_id).get(fp)
    if registered != sender.signing_key.hex():
        raise WrongSender(
            f"{sender.name!r} speaks for cosigner {fp}, but the vault registration lists "
            + (f"another identity key for it ({registered[:16]}...)" if registered else "no identity key for it")
            + ": register the site's identity with the vault first", fingerprint=fp)
    return fp


def _payload(opened: OpenedEnvelope, fp: str) -> dict:
    kind = opened.content_type
    if kind not in (ContentType.PARTIAL_SIGNATURE, ContentType.REFUSAL):
        raise EnvelopeError(f"a coordinator takes partial-signature and refusal envelopes, not {kind.label}")
    try:
        obj = json.loads(opened.payload)
    except (ValueError, UnicodeDecodeError):
        obj = None
    fields = (("format", "fingerprint", "psbt", "statement_signature") if kind is ContentType.PARTIAL_SIGNATURE
              else ("format", "fingerprint", "reason", "statement_signature"))
    want = _SUBMISSION_FORMAT if kind is ContentType.PARTIAL_SIGNATURE else _REFUSAL_FORMAT
    if not isinstance(obj, dict) or set(obj) != set(fields) or obj["format"] != want or not all(
            isinstance(obj[k], str) for k in fields):
        raise EnvelopeError(f"the {kind.label} envelope's payload is not a {want} record: the site's software is "
                            "broken")
    if obj["fingerprint"] != fp:
        raise WrongSender(f"the payload speaks for cosigner {obj['fingerprint'][:20]!r}, but its sender speaks for "
                          f"{fp}", fingerprint=fp)  # never the payload's text at length
    if kind is ContentType.PARTIAL_SIGNATURE:
        try:
            obj["psbt"] = base64.b64decode(obj["psbt"], validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError("the submission's PSBT is not valid base64: the site's software is broken") from None
    return obj
