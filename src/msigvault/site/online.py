"""A site's online machine: pull the requests sealed to its identity, push the laptop's answers sealed
to the coordinator (over the service, or through the shared folder). See docs/site.md.

    guard = ReplayGuard.load("alice-site.identity.seen.json")
    with ServiceClient(url, site_key, ca="ca.pem") as client:
        pulled = pull_from_service(client, site_key, guard)          # Pulled: requests and refusals
        ...                                                           # the air gap: request -> response
        push_to_service(client, seal_response(site_key, client.coordinator, request, response))

The site's identity key (an envelope and request credential, never a vault key) lives here: it signs
every HTTP request, opens the coordinator's envelopes and seals the answers.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MsigvaultError
from ..identity.envelope import ContentType, OpenedEnvelope, ReplayGuard, next_sequence, open_envelope
from ..identity.errors import EnvelopeReplayed
from ..identity.identity import IdentityKey, IdentityRecord
from .errors import SiteRequestError
from .folder import SiteFolder
from .request import SiteRequest, SiteResponse

if TYPE_CHECKING:
    from ..service.client import ServiceClient

__all__ = ["Pulled", "Sealed", "pull_from_service", "pull_from_folder", "seal_response", "push_to_service",
           "push_to_folder", "next_sequence"]

#: how long a sealed answer stays valid over the service (the online machine sends it at once)
ANSWER_LIFETIME = _dt.timedelta(hours=1)
#: the longest an answer left in a shared folder stays valid (a session lasts at most 90 days)
MAX_FOLDER_LIFETIME = _dt.timedelta(days=90)
_FINGERPRINT = re.compile(r"^[0-9a-f]{8}$")


@dataclass(frozen=True)
class Pulled:
    """The requests that opened, those already pulled unchanged, and those refused (session, code, message)."""

    requests: "tuple[SiteRequest, ...]"
    unchanged: "tuple[str, ...]"
    refused: "tuple[tuple[str, str, str], ...]"


@dataclass(frozen=True)
class Sealed:
    """An answer sealed to the coordinator: its session, sequence and envelope bytes."""

    session: str
    sequence: int
    kind: str
    envelope: bytes

    def __repr__(self) -> str:
        return f"Sealed(session={self.session!r}, seq={self.sequence}, kind={self.kind}, {len(self.envelope)} bytes)"


def _request(opened: OpenedEnvelope, context: "dict[str, Any]", session: str, coordinator: IdentityRecord,
             fingerprint: "str | None") -> SiteRequest:
    """A request from an opened envelope and its (advisory) context; SiteRequestError if they disagree."""
    if opened.content_type is not ContentType.PSBT:
        raise SiteRequestError(f"the coordinator's envelope for session {session} carries a "
                               f"{opened.content_type.label}, not a PSBT: refused")
    if opened.session_id != session:
        raise SiteRequestError(f"the envelope listed as session {session} is sealed for session "
                               f"{opened.session_id}: a relay mixed them up; refused")
    if context.get("session") not in (None, session):
        raise SiteRequestError(f"the context listed for session {session} names another session: refused")
    if context.get("psbt_sha256") != hashlib.sha256(opened.payload).hexdigest():
        raise SiteRequestError(f"the PSBT of session {session} does not match the hash listed with it: refused")
    listed = context.get("fingerprint")
    if not isinstance(listed, str) or not _FINGERPRINT.match(listed):
        raise SiteRequestError(f"session {session} is listed without the cosigner asked to sign: refused")
    if fingerprint is not None and listed != fingerprint:
        raise SiteRequestError(f"session {session} is listed for cosigner {str(context.get('fingerprint'))[:20]}, "
                               f"but this site speaks for {fingerprint}: refused")

    def text(name: str) -> str:
        value = context.get(name)
        return value[:1000] if isinstance(value, str) else ""

    vault = text("vault")
    if len(vault) != 64:
        raise SiteRequestError(f"session {session} is listed without its vault's policy id: refused")
    return SiteRequest(session, vault, text("vault_name"), listed, text("memo"),
                       opened.expires.strftime("%Y-%m-%dT%H:%M:%SZ"), coordinator.id.hex(), coordinator.name,
                       opened.sequence, opened.payload)


def pull_from_service(client: "ServiceClient", key: IdentityKey, guard: ReplayGuard) -> Pulled:
    """``GET /v1/requests``: every request opened (the coordinator's signature, expiry, replay state)."""
    coordinator = client.coordinator
    requests, refused = [], []
    for pending in client.pending():
        try:
            opened = pending.open(key, coordinator, guard)
            context = {"vault": pending.vault, "vault_name": pending.vault_name, "memo": pending.memo,
                       "psbt_sha256": pending.psbt_sha256, "fingerprint": pending.fingerprint}
            requests.append(_request(opened, context, pending.session, coordinator, pending.fingerprint))
        except MsigvaultError as e:
            refused.append((pending.session[:100], type(e).code, str(e)[:1000]))
    return Pulled(tuple(requests), (), tuple(refused))


def pull_from_folder(root: "str | Path", key: IdentityKey, coordinator: IdentityRecord, guard: ReplayGuard,
                     fingerprint: "str | None" = None) -> Pulled:
    """The requests the coordinator's folder-sync left for this site; one already pulled is ``unchanged``.

    ``fingerprint``: the site's cosigner (from its record), required of every request when given; the
    laptop checks it against its key in any case, and the coordinator against the site's record."""
    folder = SiteFolder.at(root, key.id.hex())
    requests, unchanged, refused = [], [], []
    for session, envelope, context in folder.incoming():
        try:
            opened = open_envelope(envelope, recipient=key, senders=coordinator, guard=guard)
            requests.append(_request(opened, context, session, coordinator, fingerprint))
        except EnvelopeReplayed:
            unchanged.append(session)  # this very envelope was pulled before: nothing new
        except MsigvaultError as e:
            refused.append((session, type(e).code, str(e)))
    return Pulled(tuple(requests), tuple(unchanged), tuple(refused))


def seal_response(key: IdentityKey, coordinator: IdentityRecord, request: SiteRequest,
                  response: SiteResponse, *, until_request_expires: bool = False) -> Sealed:
    """The laptop's answer to ``request`` sealed by the site to the coordinator (checked to answer it).

    It expires :data:`ANSWER_LIFETIME` after sealing (the service takes it at once), or with
    ``until_request_expires`` (an answer left in a shared folder, perhaps carried on a USB stick, waits
    for the next folder-sync) when the request does, at least that hour and at most 90 days on."""
    from ..coordinator.envelopes import refusal_payload, submission_payload
    from ..identity.envelope import seal

    response.check_answers(request)
    if coordinator.id.hex() != request.coordinator_id:
        raise SiteRequestError(f"the request came from coordinator {request.coordinator_id}, but the answer would "
                               f"go to {coordinator.id.hex()} ({coordinator.name!r}): push it to the coordinator "
                               "that asked")
    sequence = next_sequence()
    if response.psbt is not None:
        payload = submission_payload(key, request.session, request.fingerprint, response.psbt)
    else:
        payload = refusal_payload(key, request.session, request.fingerprint, response.reason or "")
    envelope = seal(payload, sender=key, recipient=coordinator, session_id=request.session, sequence=sequence,
                    content_type=response.kind, expires=_answer_expiry(request) if until_request_expires
                    else ANSWER_LIFETIME)
    return Sealed(request.session, sequence, response.kind, envelope)


def _answer_expiry(request: SiteRequest) -> _dt.datetime:
    now = _dt.datetime.now(_dt.timezone.utc)
    try:
        until = _dt.datetime.strptime(request.expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        raise SiteRequestError("the request's expires is not a UTC time (YYYY-MM-DDTHH:MM:SSZ): pull the request "
                               "again", field="expires") from None
    return min(max(until, now + ANSWER_LIFETIME), now + MAX_FOLDER_LIFETIME)


def push_to_service(client: "ServiceClient", sealed: Sealed) -> "dict[str, Any]":
    """``POST /v1/envelopes``: the service's answer (outcome, signers, the session's status)."""
    return client.submit(sealed.envelope)


def push_to_folder(root: "str | Path", key: IdentityKey, sealed: Sealed) -> Path:
    """Leave the envelope in this site's outbox for the coordinator's next folder-sync; its path."""
    return SiteFolder.at(root, key.id.hex(), create=True).post(sealed.session, sealed.sequence, sealed.envelope)
