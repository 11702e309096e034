"""The coordinator's side of the shared folder: ``msigvault site folder-sync`` (docs/site.md).

One sync, for every enrolled keyholder site: each envelope in its outbox goes through the service's own
checks (:func:`msigvault.coordinator.envelopes.submit_envelope` with that site's record as the only
allowed sender and the database replay guard) and is filed away with its result; then the site's
pending requests are sealed to it afresh, and requests no longer pending are removed. A site whose
directories are not plain directories (a link planted in the shared folder) is skipped, reported and
audited as ``service.folder-refused``; the other sites are still served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..coordinator import db as D
from ..coordinator.envelopes import submit_envelope
from ..coordinator.errors import SessionNotFound
from ..errors import MsigvaultError
from ..identity.envelope import MAX_ENVELOPE, ContentType, next_sequence, seal
from ..identity.errors import EnvelopeError, IdentityRecordError
from ..identity.identity import IdentityKey, IdentityRecord
from .errors import FolderError
from .folder import SiteFolder

if TYPE_CHECKING:
    from ..coordinator.sessions import Coordinator

__all__ = ["SyncReport", "sync_folder", "enrolled_sites"]

#: refused envelopes audited one by one per site and sync; the rest are counted in one service.folder-flood entry
MAX_AUDITED_REFUSALS = 100


@dataclass(frozen=True)
class SyncReport:
    """What one sync did: envelopes taken in (with outcomes), requests written, requests removed, and sites
    skipped because their directories are not safe to use (site, code, message)."""

    received: "tuple[dict[str, Any], ...]" = field(default=())
    requests: "tuple[dict[str, str], ...]" = field(default=())
    removed: "tuple[dict[str, str], ...]" = field(default=())
    skipped: "tuple[dict[str, str], ...]" = field(default=())

    def to_dict(self) -> "dict[str, Any]":
        return {"received": list(self.received), "requests": list(self.requests), "removed": list(self.removed),
                "skipped": list(self.skipped)}


def enrolled_sites(coordinator: "Coordinator") -> "list[IdentityRecord]":
    """The keyholder-site records enrolled with this coordinator's service (``coordinator enroll``)."""
    t = D.service_identities
    with coordinator.db.read() as conn:
        rows = conn.execute(sa.select(t.c.record).where(t.c.role == "keyholder-site").order_by(t.c.id)).all()
    records = []
    for (raw,) in rows:
        try:
            records.append(IdentityRecord.from_bytes(bytes(raw)))
        except IdentityRecordError:
            continue  # a damaged row speaks for nobody
    return records


def sync_folder(coordinator: "Coordinator", identity: IdentityKey, root: "str | Path") -> SyncReport:
    """Take in every site's outbox, then write every site's pending requests (see the module docstring)."""
    from ..service.store import DatabaseReplayGuard, ServiceStore

    from ..coordinator.audit import Identity

    if coordinator.identity is None or coordinator.identity.public_hex != Identity(identity.signing).public_hex:
        raise FolderError("the coordinator must sign its audit log with the folder's identity key")
    store = ServiceStore(coordinator.db)
    guard = DatabaseReplayGuard(coordinator.db)
    received: "list[dict[str, Any]]" = []
    written: "list[dict[str, str]]" = []
    removed: "list[dict[str, str]]" = []
    skipped: "list[dict[str, str]]" = []
    SiteFolder.at(root, "0" * 32)  # the folder itself exists (else FolderError for the whole sync)
    for record in enrolled_sites(coordinator):
        try:
            _sync_site(coordinator, identity, record, store, guard, SiteFolder.at(root, record.id.hex(), create=True),
                       received, written, removed)
        except FolderError as e:  # a link or a file where a site's directory should be: that site only
            skipped.append({"site": record.name, "code": e.code, "message": str(e)[:1000]})
            coordinator.record_event("service.folder-refused", {
                "site": record.id.hex(), "name": record.name[:200], "code": e.code, "reason": str(e)[:1000]})
    return SyncReport(tuple(received), tuple(written), tuple(removed), tuple(skipped))


def _sync_site(coordinator: "Coordinator", identity: IdentityKey, record: IdentityRecord, store: Any, guard: Any,
               folder: SiteFolder, received: "list[dict[str, Any]]", written: "list[dict[str, str]]",
               removed: "list[dict[str, str]]") -> None:
    """One site: its outbox taken in, its pending requests written, finished ones removed."""
    budget = {"audit": MAX_AUDITED_REFUSALS, "suppressed": 0}
    codes: "dict[str, int]" = {}
    try:
        for path, session, sequence in folder.outgoing():
            result = _take_in(coordinator, identity, record, guard, folder, path, session, sequence, budget)
            received.append(result)
            if result.get("audited") is False:
                codes[str(result["code"])] = codes.get(str(result["code"]), 0) + 1
    finally:
        if budget["suppressed"]:  # whoever can write the folder can drop thousands of files in it each sync
            coordinator.record_event("service.folder-flood", {
                "site": record.id.hex(), "name": record.name[:200], "suppressed": budget["suppressed"],
                "codes": codes, "audited": MAX_AUDITED_REFUSALS})
    pending = store.pending(record)
    for sid, fp in pending:
        s = coordinator.get(sid)
        envelope = seal(s.psbt, sender=identity, recipient=record, session_id=sid, sequence=next_sequence(),
                        content_type=ContentType.PSBT, expires=s.request_expiry())
        folder.write_request(sid, envelope, {
            "session": sid, "vault": s.vault_id, "vault_name": s.vault_name, "fingerprint": fp, "memo": s.memo,
            "expires_at": s.expires_at, "psbt_sha256": s.psbt_sha256})
        written.append({"site": record.name, "session": sid})
    for sid in folder.remove_requests_except({sid for sid, _ in pending}):
        removed.append({"site": record.name, "session": sid})


def _take_in(coordinator: "Coordinator", identity: IdentityKey, record: IdentityRecord, guard: Any,
             folder: SiteFolder, path: Path, session: str, sequence: int,
             budget: "dict[str, int]") -> "dict[str, Any]":
    """Submit one envelope from a site's outbox; file it away with its outcome (never raises a user error).
    A refused envelope is audited while ``budget["audit"]`` lasts, then only counted."""
    from ..coordinator.sessions import SubmissionResult

    result: "dict[str, Any]" = {"site": record.name, "file": path.name, "session": session, "sequence": sequence}
    claimed = folder.claim(path)
    if claimed is None:  # another folder-sync took it first
        return {**result, "outcome": "taken", "code": None, "message": "taken in by another folder-sync"}
    result["processed"] = claimed.name
    audit = budget["audit"] > 0
    try:
        data = folder.read_claimed(claimed, MAX_ENVELOPE)
        outcome = submit_envelope(coordinator, data, identity=identity, senders=[record], guard=guard,
                                  record_refusals=audit)
    except (EnvelopeError, SessionNotFound) as e:
        result.update({"outcome": "refused", "code": type(e).code, "message": str(e)[:1000], "audited": audit})
        if audit:
            budget["audit"] -= 1
        else:
            budget["suppressed"] += 1
    except MsigvaultError as e:
        result.update({"outcome": "refused", "code": type(e).code, "message": str(e)[:1000]})
    else:
        if isinstance(outcome, SubmissionResult):
            s = outcome.session or coordinator.get(outcome.session_id)
            result.update({"outcome": outcome.outcome, "kind": "partial-signature", "signers": list(outcome.signers),
                           "status": s.status.value})
        else:
            result.update({"outcome": "recorded", "kind": "refusal", "status": outcome.status.value})
    folder.record_result(claimed, result)
    return result


