"""The service's state in the coordinator database (schema revision 0002): enrolled identities and their
roles, request nonces (one row per identity and nonce: a replay fails to insert, in any process), and the
envelope sequence numbers accepted per sender and session (:class:`DatabaseReplayGuard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional

import time

import sqlalchemy as sa

from ..coordinator import db as D
from ..coordinator.audit import now_text
from ..identity.envelope import ReplayGuard
from ..identity.errors import EnvelopeOutOfOrder, EnvelopeReplayed, IdentityRecordError
from ..identity.identity import IdentityRecord
from .errors import Forbidden, ReplayedRequest

if TYPE_CHECKING:
    from ..coordinator.sessions import Coordinator
    from ..vaultfile import VaultFile

__all__ = ["SERVICE_ROLES", "Enrolled", "ServiceStore", "DatabaseReplayGuard", "enroll_sites"]

#: seconds an enrolment (or its absence) is cached per process: a revocation takes effect within this time
LOOKUP_TTL = 10.0

#: service role <- the identity record's role
SERVICE_ROLES = {"keyholder-site": "keyholder-site", "auditor": "auditor", "coordinator": "operator"}


@dataclass(frozen=True)
class Enrolled:
    """An identity the service knows: its record and its service role."""

    id: str
    role: str
    record: IdentityRecord

    @property
    def name(self) -> str:
        return self.record.name


class ServiceStore:
    """The service tables on one :class:`~msigvault.coordinator.db.Database`."""

    def __init__(self, database: D.Database) -> None:
        self.db = database
        self._cache: "dict[str, tuple[float, Optional[Enrolled]]]" = {}

    # -- identities ---------------------------------------------------------------------------

    def enroll(self, coordinator: "Coordinator", record: IdentityRecord) -> Enrolled:
        """Enrol ``record`` (self-signature checked) with the service role its record role maps to
        (keyholder-site, auditor; a coordinator record is an operator); audited as ``service.identity-enrolled``.
        A keyholder site must already be registered for one of its cosigner's vaults (:func:`enroll_sites`)."""
        role = SERVICE_ROLES[record.role]
        if role == "keyholder-site":
            vaults = self.site_vaults(record)
            if not vaults:
                raise Forbidden(f"site {record.name!r} is not registered for any vault of this coordinator: "
                                "register its record with the vault first (enroll_sites)")
            for pid in vaults:
                record.verify_for_vault(coordinator.vault_file(pid).vault)
        else:
            record.verify()
        ident = record.id.hex()
        with self.db.write() as conn:
            row = conn.execute(sa.select(D.service_identities).where(D.service_identities.c.id == ident)).first()
            if row is not None and bytes(row.record) == record.to_bytes():
                return Enrolled(ident, role, record)
            if row is not None:
                conn.execute(sa.delete(D.service_identities).where(D.service_identities.c.id == ident))
            conn.execute(sa.insert(D.service_identities).values(id=ident, role=role, name=record.name,
                                                                record=record.to_bytes(), enrolled_at=now_text()))
        coordinator.record_event("service.identity-enrolled", {
            "identity": ident, "name": record.name, "role": role, "signing_key": record.signing_key.hex(),
            "fingerprint": record.fingerprint})
        self._cache.pop(ident, None)
        return Enrolled(ident, role, record)

    def revoke(self, coordinator: "Coordinator", identity_id: str) -> bool:
        """Remove an enrolment (every process refuses the identity within :data:`LOOKUP_TTL` seconds); audited
        as ``service.identity-revoked``. False if it was not enrolled."""
        with self.db.write() as conn:
            gone = conn.execute(sa.delete(D.service_identities).where(D.service_identities.c.id == identity_id))
        self._cache.pop(identity_id, None)
        if not gone.rowcount:
            return False
        coordinator.record_event("service.identity-revoked", {"identity": identity_id})
        return True

    def lookup(self, identity_id: str) -> Optional[Enrolled]:
        """The enrolled identity with this id, or None (cached in this process for :data:`LOOKUP_TTL` s)."""
        cached = self._cache.get(identity_id)
        if cached is not None and time.monotonic() - cached[0] < LOOKUP_TTL:
            return cached[1]
        with self.db.read() as conn:
            row = conn.execute(sa.select(D.service_identities).where(
                D.service_identities.c.id == identity_id)).first()
        found = None
        if row is not None:
            try:
                found = Enrolled(row.id, row.role, IdentityRecord.from_bytes(bytes(row.record)))
            except IdentityRecordError:
                found = None  # a damaged row authenticates nobody
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[identity_id] = (time.monotonic(), found)
        return found

    def site_vaults(self, record: IdentityRecord) -> "dict[str, str]":
        """policy id -> fingerprint, for every vault whose registration lists this site's signing key."""
        fp = record.fingerprint
        with self.db.read() as conn:
            rows = conn.execute(sa.select(D.identities).where(
                D.identities.c.public_key == record.signing_key.hex())).all()
        return {r.policy_id: r.fingerprint for r in rows if r.fingerprint == fp}

    def resolve_session(self, text: str, vaults: Iterable[str]) -> Optional[str]:
        """The id of the session ``text`` names (its id, or a unique prefix of at least 4 hex digits) among the
        sessions of ``vaults`` only; None otherwise (another vault's sessions are never looked at)."""
        wanted, pids = str(text).strip().lower(), list(vaults)
        if not pids or not 4 <= len(wanted) <= 64 or any(c not in "0123456789abcdef" for c in wanted):
            return None
        s = D.sessions
        q = (sa.select(s.c.id).where(s.c.policy_id.in_(pids), s.c.id.startswith(wanted, autoescape=True))
             .order_by(s.c.id).limit(2))
        with self.db.read() as conn:
            found = [r.id for r in conn.execute(q)]
        if wanted in found:
            return wanted
        return found[0] if len(found) == 1 else None

    def pending(self, record: IdentityRecord) -> "list[tuple[str, str]]":
        """(session id, fingerprint) of every open session that still asks this site's cosigner to sign."""
        vaults = self.site_vaults(record)
        if not vaults:
            return []
        s, c = D.sessions, D.cosigner_states
        q = (sa.select(s.c.id, s.c.policy_id, c.c.fingerprint).join(c, c.c.session_id == s.c.id)
             .where(s.c.status == "open", s.c.policy_id.in_(list(vaults)), c.c.state.in_(["requested", "unreachable"]))
             .order_by(s.c.created_at, s.c.id))
        with self.db.read() as conn:
            return [(r.id, r.fingerprint) for r in conn.execute(q) if vaults.get(r.policy_id) == r.fingerprint]

    # -- nonces -------------------------------------------------------------------------------

    def use_nonce(self, identity_id: str, nonce: str, timestamp: int) -> None:
        """Record a request's nonce; ReplayedRequest if this identity used it before (unique constraint)."""
        try:
            with self.db.write() as conn:
                conn.execute(sa.insert(D.service_nonces).values(identity_id=identity_id, nonce=nonce,
                                                                timestamp=timestamp))
        except sa.exc.IntegrityError:
            raise ReplayedRequest("this request (its identity and nonce) was received before: it is a replay; "
                                  "a client sends every request with a fresh nonce") from None

    def prune_nonces(self, older_than: int) -> int:
        """Forget nonces of requests timestamped before ``older_than`` (Unix seconds); how many."""
        with self.db.write() as conn:
            result = conn.execute(sa.delete(D.service_nonces).where(D.service_nonces.c.timestamp < older_than))
        return int(result.rowcount or 0)


class DatabaseReplayGuard(ReplayGuard):
    """A :class:`ReplayGuard` kept in the coordinator database: every process of the service refuses an
    envelope (sender, session, sequence) accepted before by any of them, or one not above the last."""

    def __init__(self, database: D.Database) -> None:
        super().__init__()
        self.db = database

    def check(self, sender_id: bytes, session_id: str, sequence: int) -> None:
        t = D.envelope_sequences
        with self.db.read() as conn:
            last = conn.execute(sa.select(sa.func.max(t.c.sequence)).where(
                t.c.sender_id == sender_id.hex(), t.c.session_id == session_id)).scalar()
        self._refuse(sender_id, session_id, sequence, None if last is None else int(last))

    def accept(self, sender_id: bytes, session_id: str, sequence: int, *, expires: Optional[int] = None,
               now: Optional[int] = None) -> None:
        self.check(sender_id, session_id, sequence)
        try:
            with self.db.write() as conn:
                conn.execute(sa.insert(D.envelope_sequences).values(
                    sender_id=sender_id.hex(), session_id=session_id, sequence=f"{sequence:020d}"))
        except sa.exc.IntegrityError:
            self._refuse(sender_id, session_id, sequence, sequence)
            raise  # pragma: no cover - _refuse raised

    @staticmethod
    def _refuse(sender_id: bytes, session_id: str, sequence: int, last: Optional[int]) -> None:
        if last is None:
            return
        if sequence == last:
            raise EnvelopeReplayed(f"envelope {sequence} of session {session_id} from {sender_id.hex()} was "
                                   "accepted before: this is a replay; ignore it")
        if sequence < last:
            raise EnvelopeOutOfOrder(f"envelope {sequence} of session {session_id} from {sender_id.hex()} is not "
                                     f"above the last accepted ({last}): it is stale or reordered; refused")


def enroll_sites(coordinator: "Coordinator", store: ServiceStore, vault_file: "VaultFile",
                 records: Iterable[IdentityRecord]) -> str:
    """Register a vault's site records with the coordinator (each verified against the vault) and enrol
    them with the service; the policy id."""
    from ..coordinator.envelopes import register_site_records

    records = list(records)
    pid = register_site_records(coordinator, vault_file, records)
    for record in records:
        store.enroll(coordinator, record)
    return pid

