"""Signing sessions: the coordinator's unit of work, persisted, each step audited.

A session holds the vault, the unsigned PSBT, a memo, who proposed it, an expiry, and a state
per cosigner: ``requested``, ``signed`` (with the verified partial PSBT), ``refused`` (with the
keyholder's reason) or ``unreachable``. Its own status moves::

    open --m signatures--> finalized --broadcast--> broadcast --confirmations--> confirmed
    open | finalized --cancel--> cancelled;  open | finalized --expiry--> expired
    open | finalized | broadcast --replace (RBF)--> replaced (once the replacement is broadcast)

Every step is one database transaction that also appends its audit entries, so a step either
happened and is logged, or neither. Steps are idempotent: a crash between "signature stored" and
"finalized" (or "sent" and "recorded as broadcast") is repaired by :meth:`Coordinator.recover`,
which runs the remaining steps again; finalizing is deterministic, and broadcasting a
transaction the chain already has counts as done.

Submissions are verified before anything is stored: the same unsigned transaction, the vault's
own signatures checked by the Combiner, by cosigners who signed every input, and (for a
keyholder with a registered identity key) that keyholder's Ed25519 identity signature over the
submission. Anything else is refused *and* recorded (a submissions row and an audit entry),
then :class:`SubmissionRefused` is raised. A second copy of the same bytes returns the first
outcome and writes nothing.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

import sqlalchemy as sa

from ..errors import MsigvaultError
from . import db as D
from .audit import (
    COORDINATOR,
    Checkpoint,
    Entry,
    GENESIS_PREV,
    Identity,
    VerifyResult,
    check_statement,
    format_time,
    make_entry,
    parse_line,
    parse_public_key,
    refusal_statement,
    submission_statement,
    verify_entries,
    write_export,
)
from .errors import (
    AuditError,
    CoinInUse,
    CoordinatorError,
    IdentityError,
    SessionNotFound,
    SessionStateError,
    SubmissionRefused,
)

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..psbt.psbt import Psbt
    from ..vaultfile import VaultFile
    from .upkeep import UpkeepReport

MAX_MEMO = 2_000
MAX_REASON = 2_000
_CONFIG_KEY = re.compile(r"[a-z0-9._-]{1,64}")
_SESSION_ID = re.compile(r"[a-z0-9][a-z0-9-]{3,31}")


class Status(str, enum.Enum):
    OPEN = "open"
    FINALIZED = "finalized"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REPLACED = "replaced"


CLOSED = {Status.CANCELLED, Status.EXPIRED, Status.REPLACED}
ACCEPTS_SIGNATURES = {Status.OPEN, Status.FINALIZED, Status.BROADCAST, Status.CONFIRMED}


class CosignerState(str, enum.Enum):
    REQUESTED = "requested"
    SIGNED = "signed"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class CosignerStatus:
    fingerprint: str
    state: CosignerState
    reason: Optional[str] = None
    partial_sha256: Optional[str] = None
    updated_at: str = ""

    def to_dict(self) -> dict:
        return {"fingerprint": self.fingerprint, "state": self.state.value, "reason": self.reason,
                "partial_sha256": self.partial_sha256, "updated_at": self.updated_at}


#: how long a request sealed for a session without an expiry stays valid
REQUEST_LIFETIME = timedelta(days=1)


@dataclass(frozen=True)
class Session:
    """A signing session as stored (a snapshot; read it again for the current state)."""

    id: str
    vault_id: str
    vault_name: str
    threshold: int
    status: Status
    txid: str
    psbt: bytes = field(repr=False)
    psbt_sha256: str
    memo: str
    proposed_by: str
    created_at: str
    expires_at: Optional[str]
    summary: Mapping[str, Any]
    cosigners: "tuple[CosignerStatus, ...]"
    final_txid: Optional[str] = None
    final_tx: Optional[bytes] = field(default=None, repr=False)
    broadcast_at: Optional[str] = None
    confirmations: int = 0
    confirmed_height: Optional[int] = None
    replaces: Optional[str] = None
    replaced_by: Optional[str] = None
    closed_reason: Optional[str] = None
    last_error: Optional[str] = None

    def request_expiry(self, now: Optional[datetime] = None) -> datetime:
        """The expiry to seal into a request envelope for this session: the session's own expiry
        while it is in the future, else ``now`` plus :data:`REQUEST_LIFETIME`."""
        now = now or datetime.now(timezone.utc)
        if self.expires_at:
            until = datetime.strptime(self.expires_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            if until > now + timedelta(seconds=1):
                return until
        return now + REQUEST_LIFETIME

    @property
    def signed(self) -> "list[str]":
        return [c.fingerprint for c in self.cosigners if c.state is CosignerState.SIGNED]

    @property
    def signatures_needed(self) -> int:
        return max(0, self.threshold - len(self.signed))

    def cosigner(self, fingerprint: str) -> CosignerStatus:
        for c in self.cosigners:
            if c.fingerprint == fingerprint:
                return c
        raise CoordinatorError(f"{fingerprint} is not a cosigner of the vault of session {self.id}")

    def to_dict(self) -> dict:
        return {
            "id": self.id, "vault": self.vault_id, "vault_name": self.vault_name, "status": self.status.value,
            "threshold": self.threshold, "signed": self.signed, "signatures_needed": self.signatures_needed,
            "txid": self.txid, "psbt_sha256": self.psbt_sha256, "memo": self.memo,
            "proposed_by": self.proposed_by, "created_at": self.created_at, "expires_at": self.expires_at,
            "cosigners": [c.to_dict() for c in self.cosigners], "summary": dict(self.summary),
            "final_txid": self.final_txid, "broadcast_at": self.broadcast_at,
            "confirmations": self.confirmations, "confirmed_height": self.confirmed_height,
            "replaces": self.replaces, "replaced_by": self.replaced_by, "closed_reason": self.closed_reason,
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class SubmissionResult:
    """What became of a submission: ``accepted`` (new signatures), ``duplicate`` (nothing new)."""

    session_id: str
    psbt_sha256: str
    outcome: str
    signers: "tuple[str, ...]"
    reason: Optional[str] = None
    session: Optional[Session] = None

    def to_dict(self) -> dict:
        return {"session": self.session_id, "psbt_sha256": self.psbt_sha256, "outcome": self.outcome,
                "signers": list(self.signers), "reason": self.reason,
                "status": self.session.status.value if self.session else None}


class _Refused(Exception):
    """Internal: a submission that fails verification (recorded, then SubmissionRefused)."""

    def __init__(self, reason: str, signers: Sequence[str] = ()):
        super().__init__(reason)
        self.reason = reason
        self.signers = tuple(signers)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


class Coordinator:
    """Sessions on one database, signed into its audit log with ``identity`` (the coordinator's key).

    ``backend``: where to read UTXOs, broadcast and count confirmations (optional: without one,
    sessions finalize against the PSBT's previous transactions and wait there). ``auto``: run the
    next steps (finalize, broadcast, track) as soon as a submission completes the threshold.
    ``clock``: returns the current time (tests). ``fault``: called with a step name at each
    crash-injection point (tests).
    """

    def __init__(self, database: D.Database, identity: Optional[Identity], *, backend: "Optional[Backend]" = None,
                 auto: bool = True, confirmations_required: int = 1,
                 clock: Optional[Callable[[], datetime]] = None,
                 fault: Optional[Callable[[str], None]] = None):
        self.db = database
        self.identity = identity
        self.backend = backend
        self.auto = auto
        self.confirmations_required = confirmations_required
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._fault = fault or (lambda step: None)
        self._vaults: "dict[str, VaultFile]" = {}
        if identity is not None:  # without one: read-only (list, show, verify, export)
            self._start_log()

    # -- the audit log ---------------------------------------------------------------------------

    def _now(self) -> str:
        return format_time(_utc(self._clock()))

    def _append(self, conn, event: str, *, session: Optional[str] = None, data: Optional[Mapping] = None,
                actor: str = COORDINATOR, attestation: Optional[Mapping] = None) -> Entry:
        if self.identity is None:
            raise CoordinatorError("this coordinator was opened without its key (read-only): give --coordinator-key")
        head = self.db.lock(conn, D.audit_head, D.audit_head.c.id == 1)
        if head is None:
            if event != "log.created":
                raise AuditError("the audit log has not been started in this database")
            seq, prev = 0, GENESIS_PREV
        else:
            seq, prev = head.count, head.hash
        entry = make_entry(self.identity, seq=seq, prev=prev, event=event, actor=actor, session=session,
                           data=data, attestation=attestation, time=self._now())
        conn.execute(sa.insert(D.audit_log).values(seq=seq, session_id=session, event=event, hash=entry.hash,
                                                  line=entry.line))
        if head is None:
            conn.execute(sa.insert(D.audit_head).values(id=1, count=1, hash=entry.hash))
        else:
            conn.execute(sa.update(D.audit_head).where(D.audit_head.c.id == 1)
                         .values(count=seq + 1, hash=entry.hash))
        return entry

    def _start_log(self) -> None:
        """Write entry 0 on a new database; on an existing one, check this coordinator's key is authorised."""
        try:
            with self.db.write() as conn:
                if self.db.lock(conn, D.audit_head, D.audit_head.c.id == 1) is None:
                    self._append(conn, "log.created", data={"coordinator_key": self.identity.public_hex})
                    return
        except sa.exc.IntegrityError:
            pass  # another coordinator started the log at the same moment
        if self.identity.public_hex not in self.coordinator_keys():
            raise IdentityError(
                f"this coordinator's key ({self.identity.public_hex[:16]}...) is not authorised in this "
                "database's audit log: use the coordinator key that started it, or have that coordinator "
                "authorise this key ('msigvault session authorize-key KEY', Coordinator.authorize_key)"
            )

    def coordinator_keys(self) -> "set[str]":
        keys = set()
        with self.db.read() as conn:
            rows = conn.execute(sa.select(D.audit_log.c.line).where(
                D.audit_log.c.event.in_(["log.created", "coordinator.key-authorized"]))
                .order_by(D.audit_log.c.seq)).all()
        for (line,) in rows:
            obj = json.loads(line)
            keys.add(obj["data"].get("coordinator_key") or obj["data"].get("key"))
        return keys

    def authorize_key(self, public_hex: str, *, note: str = "") -> None:
        """Let another coordinator (its Ed25519 public key) sign entries into this log."""
        public_hex = str(public_hex).strip().lower()
        parse_public_key(public_hex, "coordinator key")
        with self.db.write() as conn:
            self._append(conn, "coordinator.key-authorized", data={"key": public_hex, "note": note[:MAX_REASON]})

    def set_config(self, key: str, value: Any) -> None:
        """A configuration change, stored and audited."""
        if not isinstance(key, str) or not _CONFIG_KEY.fullmatch(key):
            raise CoordinatorError(f"a configuration key is 1 to 64 of a-z, 0-9, '.', '_', '-', not {str(key)[:70]!r}")
        text = json.dumps(value, sort_keys=True)
        if len(text) > MAX_REASON:
            raise CoordinatorError(f"a configuration value is at most {MAX_REASON} characters of JSON")
        with self.db.write() as conn:
            old = conn.execute(sa.select(D.config.c.value).where(D.config.c.key == key)).scalar()
            if old == text:
                return
            if old is None:
                conn.execute(sa.insert(D.config).values(key=key, value=text))
            else:
                conn.execute(sa.update(D.config).where(D.config.c.key == key).values(value=text))
            self._append(conn, "config.changed",
                         data={"key": key, "old": None if old is None else json.loads(old), "new": value})

    def config(self) -> "dict[str, Any]":
        """The stored configuration (key -> value), sorted by key."""
        with self.db.read() as conn:
            return {r.key: json.loads(r.value) for r in conn.execute(sa.select(D.config).order_by(D.config.c.key))}

    def record_health_check(self, report: Mapping[str, Any]) -> None:
        """Record a key-health check report (``msigvault.reserves.health.HealthReport.to_dict()``) of
        a registered vault in the audit log, as event ``health.reported``."""
        if not isinstance(report, Mapping) or report.get("kind") != "msigvault-key-health-report":
            raise CoordinatorError("not a key-health report: record what msigvault health report produced")
        self.vault_file(str(report.get("policy_id")))  # refuses a vault this coordinator never registered
        with self.db.write() as conn:
            self._append(conn, "health.reported", data=json.loads(json.dumps(report)))

    def record_reserve_proof(self, report: Mapping[str, Any]) -> None:
        """Record a proof-of-reserves verification (``msigvault.reserves.por.ReservesReport.to_dict()``)
        of a registered vault in the audit log, as event ``reserves.verified``."""
        if not isinstance(report, Mapping) or report.get("kind") != "msigvault-reserves-verification":
            raise CoordinatorError("not a proof-of-reserves verification: record what msigvault proof reserves "
                                   "verify produced")
        self.vault_file(str(report.get("policy_id")))  # refuses a vault this coordinator never registered
        with self.db.write() as conn:
            self._append(conn, "reserves.verified", data=json.loads(json.dumps(report)))

    def record_valuation(self, valuation: Mapping[str, Any],
                         write: Optional[Callable[[Any], None]] = None) -> None:
        """Record a day's valuation (``msigvault.reserves.valuation.DayValuation.to_dict()``) of
        registered vaults in the audit log, as event ``valuation.recorded``; ``write(conn)``, if
        given, stores the series rows in the same transaction."""
        vaults = valuation.get("vaults") if isinstance(valuation, Mapping) else None
        if not isinstance(vaults, list) or not vaults or not isinstance(valuation.get("date"), str):
            raise CoordinatorError("not a day's valuation: record what msigvault value record produced")
        for v in vaults:  # refuses a vault this coordinator never registered
            self.vault_file(str(v.get("policy_id") if isinstance(v, Mapping) else None))
        with self.db.write() as conn:
            if write is not None:
                write(conn)
            self._append(conn, "valuation.recorded", data=json.loads(json.dumps(valuation)))

    def record_custody(self, summary: Mapping[str, Any]) -> None:
        """Record an intake's chain-of-custody summary (``msigvault.lifecycle.custody.audit_summary``)
        for a registered vault in the audit log, as event ``intake.custody-recorded``."""
        if not isinstance(summary, Mapping) or summary.get("kind") != "msigvault-custody-summary":
            raise CoordinatorError("not a custody summary: record what msigvault intake record produced")
        self.vault_file(str(summary.get("policy_id")))  # refuses a vault this coordinator never registered
        with self.db.write() as conn:
            self._append(conn, "intake.custody-recorded", data=json.loads(json.dumps(summary)))

    def record_refused_envelope(self, record: Mapping[str, Any], *, session_id: Optional[str] = None) -> None:
        """Record a refused envelope (:func:`msigvault.coordinator.envelopes.refusal_record`) in the
        audit log as ``envelope.refused``, under its session when that session exists here."""
        with self.db.write() as conn:
            sid = None
            if session_id is not None:
                sid = conn.execute(sa.select(D.sessions.c.id).where(D.sessions.c.id == str(session_id))).scalar()
            self._append(conn, "envelope.refused", session=sid, data=json.loads(json.dumps(dict(record))))

    def record_event(self, event: str, data: Mapping[str, Any], *, actor: str = COORDINATOR) -> None:
        """Append an entry outside the session steps: the coordinator service's ``service.*`` events
        (identities enrolled, requests refused). ``actor`` names who acted; never a cosigner."""
        if not event.startswith("service.") or len(event) > 48 or actor.startswith("cosigner:"):
            raise CoordinatorError(f"record_event takes service.* events by non-cosigner actors, not {event!r}")
        with self.db.write() as conn:
            self._append(conn, event, actor=actor[:200], data=json.loads(json.dumps(dict(data))))

    def record_migration(self, event: str, data: Mapping[str, Any], *,
                         write: Optional[Callable[[Any], None]] = None) -> None:
        """Append a vault migration's ``migration.*`` entry (msigvault.lifecycle.migrate); ``write(conn)``,
        when given, stores the migration's rows in the same transaction."""
        if not event.startswith("migration.") or len(event) > 48:
            raise CoordinatorError(f"record_migration takes migration.* events, not {event[:60]!r}")
        with self.db.write() as conn:
            if write is not None:
                write(conn)
            self._append(conn, event, data=json.loads(json.dumps(dict(data))))

    def audit_lines(self) -> "list[bytes]":
        with self.db.read() as conn:
            return [bytes(r.line) for r in conn.execute(sa.select(D.audit_log.c.line).order_by(D.audit_log.c.seq))]

    def verify_log(self, *, trusted_keys: Optional[Sequence[str]] = None,
                   checkpoints: "Sequence[Checkpoint]" = ()) -> VerifyResult:
        return verify_database(self.db, trusted_keys=trusted_keys, checkpoints=checkpoints)

    def checkpoint(self) -> Checkpoint:
        """A signed checkpoint of the verified log's head, for an auditor to keep (docs/audit.md)."""
        if self.identity is None:
            raise CoordinatorError("a checkpoint is signed by the coordinator's key: give --coordinator-key")
        return Checkpoint.make(self.verify_log(), self.identity, time=self._now())

    def export_log(self, path, *, overwrite: bool = False) -> VerifyResult:
        """Write the verified log as an export bundle signed by this coordinator's key."""
        if self.identity is None:
            raise CoordinatorError("an export is signed by the coordinator's key: give --coordinator-key")
        self.verify_log()
        return write_export(self.audit_lines(), path, self.identity, overwrite=overwrite, exported_at=self._now())

    def audit_entries(self, session_id: Optional[str] = None) -> "list[dict]":
        q = sa.select(D.audit_log.c.line).order_by(D.audit_log.c.seq)
        if session_id is not None:
            q = q.where(D.audit_log.c.session_id == session_id)
        with self.db.read() as conn:
            return [json.loads(r.line) for r in conn.execute(q)]

    # -- vaults ----------------------------------------------------------------------------------

    def register_vault(self, vault_file: "VaultFile", identities: Optional[Mapping[str, str]] = None) -> str:
        """Record a vault (and each cosigner's Ed25519 identity public key, hex); its policy id.

        Registering the same vault again is a no-op; new identity keys are a recorded change.
        """
        vault = vault_file.vault
        fps = {c.fingerprint.hex() for c in vault.cosigners}
        idents = {}
        for fp, key in dict(identities or {}).items():
            fp, key = fp.lower(), str(key).strip().lower()
            if fp not in fps:
                raise IdentityError(f"{fp} is not a cosigner of the vault {vault_file.name!r}: check the fingerprint")
            parse_public_key(key, f"identity key of {fp}")
            idents[fp] = key.lower()
        pid = vault.policy_id
        with self.db.write() as conn:
            row = self.db.lock(conn, D.vaults, D.vaults.c.policy_id == pid)
            if row is None:
                conn.execute(sa.insert(D.vaults).values(policy_id=pid, name=vault_file.name,
                                                       network=vault.network.name, vault_file=vault_file.to_json(),
                                                       registered_at=self._now()))
                self._write_identities(conn, pid, idents)
                self._append(conn, "vault.registered", data=_vault_data(vault_file, idents))
                return pid
            have = {r.fingerprint: r.public_key for r in conn.execute(
                sa.select(D.identities).where(D.identities.c.policy_id == pid))}
            if identities is not None and have != idents:
                conn.execute(sa.delete(D.identities).where(D.identities.c.policy_id == pid))
                self._write_identities(conn, pid, idents)
                self._append(conn, "vault.identities-changed",
                             data={"policy_id": pid, "identities": idents, "previous": have})
        return pid

    @staticmethod
    def _write_identities(conn, pid: str, idents: Mapping[str, str]) -> None:
        for fp, key in sorted(idents.items()):
            conn.execute(sa.insert(D.identities).values(policy_id=pid, fingerprint=fp, public_key=key))

    def vault_file(self, policy_id: str) -> "VaultFile":
        if policy_id not in self._vaults:
            with self.db.read() as conn:
                text = conn.execute(sa.select(D.vaults.c.vault_file).where(D.vaults.c.policy_id == policy_id)).scalar()
            if text is None:
                raise CoordinatorError(f"no vault with policy id {policy_id[:16]}... is registered with this "
                                       "coordinator: register the vault file first")
            self._vaults[policy_id] = vault_file_from_json(text)
        return self._vaults[policy_id]

    def identities(self, policy_id: str) -> "dict[str, str]":
        with self.db.read() as conn:
            return {r.fingerprint: r.public_key for r in conn.execute(
                sa.select(D.identities).where(D.identities.c.policy_id == policy_id))}

    def vaults(self) -> "list[dict]":
        with self.db.read() as conn:
            return [{"policy_id": r.policy_id, "name": r.name, "network": r.network}
                    for r in conn.execute(sa.select(D.vaults).order_by(D.vaults.c.name))]

    # -- sessions --------------------------------------------------------------------------------

    def new_session(self, vault: "str | VaultFile", psbt: "Psbt | bytes", *, memo: str = "", proposed_by: str = "",
                    expires_in: Optional[timedelta] = None, session_id: Optional[str] = None,
                    replaces: Optional[str] = None) -> Session:
        """Open a session for an unsigned PSBT of a registered vault (or register ``vault`` first)."""
        pid = vault if isinstance(vault, str) else self.register_vault(vault)
        vf = self.vault_file(pid)
        psbt = _parse_psbt(psbt, CoordinatorError)
        summary = _summarise(psbt, vf)
        if replaces is not None:
            return self.replace(replaces, psbt, memo=memo, proposed_by=proposed_by, expires_in=expires_in,
                                session_id=session_id)
        return self._create(vf, psbt, summary, memo=memo, proposed_by=proposed_by, expires_in=expires_in,
                            session_id=session_id)

    def _create(self, vf: "VaultFile", psbt: "Psbt", summary: dict, *, memo: str, proposed_by: str,
                expires_in: Optional[timedelta], session_id: Optional[str], replaces: Optional[str] = None,
                conn=None) -> Session:
        if len(memo) > MAX_MEMO or len(proposed_by) > MAX_MEMO:
            raise CoordinatorError(f"memo and proposer are at most {MAX_MEMO} characters")
        if session_id is not None and not _SESSION_ID.fullmatch(str(session_id)):
            raise CoordinatorError(f"a session id is 4 to 32 of a-z, 0-9 and '-', starting with a letter or digit, "
                                   f"not {str(session_id)[:40]!r}")
        sid = session_id or secrets.token_hex(8)
        raw = psbt.serialize()
        now = self._now()
        expires = None
        if expires_in is not None:
            if expires_in.total_seconds() <= 0:
                raise CoordinatorError("the expiry must be in the future")
            expires = format_time(_utc(self._clock()) + expires_in)
        if conn is None:
            with self.db.write() as c:
                self._insert_session(c, vf, psbt, raw, summary, sid, now, expires, memo, proposed_by, replaces)
        else:
            self._insert_session(conn, vf, psbt, raw, summary, sid, now, expires, memo, proposed_by, replaces)
        return self.get(sid) if conn is None else sid

    def _insert_session(self, conn, vf, psbt, raw, summary, sid, now, expires, memo, proposed_by, replaces):
        pid = vf.vault.policy_id
        if conn.execute(sa.select(D.sessions.c.id).where(D.sessions.c.id == sid)).first() is not None:
            raise CoordinatorError(f"a session with id {sid} exists already")
        for outpoint in summary["coins"]:
            holder = conn.execute(sa.select(D.session_coins.c.session_id).where(
                D.session_coins.c.outpoint == outpoint, D.session_coins.c.active)).scalar()
            if holder is not None:
                raise CoinInUse(f"the coin {outpoint} is already being spent by session {holder}: finish or "
                                f"cancel that session first, or replace it (msigvault session new --replaces {holder})")
        conn.execute(sa.insert(D.sessions).values(
            id=sid, policy_id=pid, status=Status.OPEN.value, txid=summary["txid"], psbt=raw,
            psbt_sha256=_sha(raw), memo=memo, proposed_by=proposed_by, created_at=now, expires_at=expires,
            summary=json.dumps(summary, sort_keys=True), confirmations=0, replaces=replaces, revision=0))
        for outpoint in summary["coins"]:
            conn.execute(sa.insert(D.session_coins).values(session_id=sid, outpoint=outpoint, active=True))
        fps = [c.fingerprint.hex() for c in vf.vault.cosigners]
        for fp in fps:
            conn.execute(sa.insert(D.cosigner_states).values(session_id=sid, fingerprint=fp,
                                                            state=CosignerState.REQUESTED.value, updated_at=now))
        self._append(conn, "session.created", session=sid, data={
            "vault": pid, "vault_name": vf.name, "txid": summary["txid"], "psbt_sha256": _sha(raw),
            "memo": memo, "proposed_by": proposed_by, "expires_at": expires, "replaces": replaces,
            "inputs": summary["inputs"], "outputs": summary["outputs"], "fee": summary["fee"],
            "threshold": vf.vault.m})
        for fp in fps:
            self._append(conn, "cosigner.requested", session=sid, data={"fingerprint": fp})

    def get(self, session_id: str) -> Session:
        """The session with this id (or an unambiguous prefix of at least 4 characters)."""
        with self.db.read() as conn:
            return self._load(conn, self._resolve(conn, session_id))

    def list(self, *, status: Optional[str] = None, vault: Optional[str] = None) -> "list[Session]":
        q = sa.select(D.sessions.c.id).order_by(D.sessions.c.created_at, D.sessions.c.id)
        if status is not None:
            q = q.where(D.sessions.c.status == Status(status).value)
        if vault is not None:
            q = q.where(D.sessions.c.policy_id == vault)
        with self.db.read() as conn:
            return [self._load(conn, sid) for (sid,) in conn.execute(q).all()]

    def submissions(self, session_id: str) -> "list[dict]":
        with self.db.read() as conn:
            sid = self._resolve(conn, session_id)
            rows = conn.execute(sa.select(D.submissions).where(D.submissions.c.session_id == sid)
                                .order_by(D.submissions.c.id)).all()
        return [{"psbt_sha256": r.psbt_sha256, "outcome": r.outcome, "signers": _split(r.signers),
                 "reason": r.reason, "received_at": r.received_at} for r in rows]

    def partial_psbt(self, session_id: str, fingerprint: str) -> Optional[bytes]:
        with self.db.read() as conn:
            sid = self._resolve(conn, session_id)
            return conn.execute(sa.select(D.cosigner_states.c.partial_psbt).where(
                D.cosigner_states.c.session_id == sid, D.cosigner_states.c.fingerprint == fingerprint)).scalar()

    def _resolve(self, conn, session_id: str) -> str:
        text = str(session_id).strip().lower()
        if conn.execute(sa.select(D.sessions.c.id).where(D.sessions.c.id == text)).first() is not None:
            return text
        if len(text) >= 4 and all(c in "0123456789abcdef" for c in text):
            found = conn.execute(sa.select(D.sessions.c.id).where(D.sessions.c.id.startswith(text)).limit(2)).all()
            if len(found) == 1:
                return found[0][0]
            if len(found) > 1:
                raise SessionNotFound(f"more than one session starts with {text}: give more of the id")
        raise SessionNotFound(f"no session {session_id!r} in this database: 'msigvault session list' shows them")

    def _load(self, conn, sid: str) -> Session:
        r = conn.execute(sa.select(D.sessions, D.vaults.c.name).join(D.vaults).where(D.sessions.c.id == sid)).first()
        if r is None:
            raise SessionNotFound(f"no session {sid!r} in this database")
        states = conn.execute(sa.select(D.cosigner_states).where(D.cosigner_states.c.session_id == sid)
                              .order_by(D.cosigner_states.c.fingerprint)).all()
        order = [c.fingerprint.hex() for c in self.vault_file(r.policy_id).vault.cosigners]
        by_fp = {s.fingerprint: s for s in states}
        cosigners = tuple(CosignerStatus(fp, CosignerState(by_fp[fp].state), by_fp[fp].reason,
                                         by_fp[fp].partial_sha256, by_fp[fp].updated_at)
                          for fp in order if fp in by_fp)
        return Session(r.id, r.policy_id, r.name, self.vault_file(r.policy_id).vault.m, Status(r.status), r.txid,
                       bytes(r.psbt), r.psbt_sha256, r.memo, r.proposed_by, r.created_at, r.expires_at,
                       json.loads(r.summary), cosigners, r.final_txid,
                       bytes(r.final_tx) if r.final_tx is not None else None, r.broadcast_at, r.confirmations,
                       r.confirmed_height, r.replaces, r.replaced_by, r.closed_reason, r.last_error)

    def _locked(self, conn, sid: str):
        row = self.db.lock(conn, D.sessions, D.sessions.c.id == sid)
        if row is None:
            raise SessionNotFound(f"no session {sid!r} in this database")
        return row

    def _set(self, conn, row, **values) -> None:
        conn.execute(sa.update(D.sessions).where(D.sessions.c.id == row.id, D.sessions.c.revision == row.revision)
                     .values(revision=row.revision + 1, **values))

    def _expire_if_due(self, conn, row) -> bool:
        if Status(row.status) in (Status.OPEN, Status.FINALIZED) and row.expires_at and row.expires_at <= self._now():
            self._close(conn, row, Status.EXPIRED, f"expired at {row.expires_at}")
            self._append(conn, "session.expired", session=row.id, data={"expires_at": row.expires_at})
            return True
        return False

    def _close(self, conn, row, status: Status, reason: str) -> None:
        self._set(conn, row, status=status.value, closed_reason=reason)
        conn.execute(sa.update(D.session_coins).where(D.session_coins.c.session_id == row.id).values(active=False))

    # -- submissions -----------------------------------------------------------------------------

    def submit(self, session_id: str, data: "bytes | Psbt", *,
               identity_signatures: Optional[Mapping[str, str]] = None) -> SubmissionResult:
        """Verify and store a signed copy of the session's PSBT (binary, base64 or hex bytes).

        ``identity_signatures``: fingerprint -> the keyholder's Ed25519 signature (hex) over
        :func:`~msigvault.coordinator.audit.submission_statement` (required for keyholders whose
        identity key is registered with the vault). Raises :class:`SubmissionRefused` (after
        recording the refusal) if anything does not verify.
        """
        raw = data.serialize() if hasattr(data, "serialize") else bytes(data)
        sha = _sha(raw)
        session = self.get(session_id)
        sid = session.id
        previous = self._previous_submission(sid, sha)
        if previous is not None:
            return self._repeat(previous, session)
        sigs = {k.lower(): v for k, v in dict(identity_signatures or {}).items()}
        try:
            signers, stored = self._verify_submission(session, raw, sha, sigs)
        except _Refused as r:
            return self._record_refusal(sid, sha, r)
        result = self._store_submission(sid, sha, signers, stored, sigs)
        self._fault("submit:after-store")
        if self.auto and result.outcome == "accepted":
            session = self.advance(sid, quiet=True)
            result = replace(result, session=session)
        return result

    def _previous_submission(self, sid: str, sha: str):
        with self.db.read() as conn:
            return conn.execute(sa.select(D.submissions).where(D.submissions.c.session_id == sid,
                                                               D.submissions.c.psbt_sha256 == sha)).first()

    def _repeat(self, row, session: Session) -> SubmissionResult:
        if row.outcome == "refused":
            raise SubmissionRefused(f"this PSBT was refused before: {row.reason}", session_id=session.id,
                                    psbt_sha256=row.psbt_sha256)
        return SubmissionResult(session.id, row.psbt_sha256, row.outcome, tuple(_split(row.signers)), row.reason,
                                session)

    def _verify_submission(self, session: Session, raw: bytes, sha: str, sigs: Mapping[str, str]):
        """(cosigners whose complete signatures it carries, the bytes to store); _Refused otherwise."""
        from ..psbt.analyzer import analyze
        from ..psbt.combiner import combine
        from ..psbt.common import unsigned_tx

        if Status(session.status) in CLOSED:
            raise _Refused(f"session {session.id} is {session.status.value}: it takes no more signatures")
        vf = self.vault_file(session.vault_id)
        try:
            psbt = _parse_psbt(raw, CoordinatorError)
        except CoordinatorError as e:
            raise _Refused(str(e)) from None
        try:
            txid = unsigned_tx(psbt).txid()[::-1].hex()
        except MsigvaultError as e:
            raise _Refused(f"not a valid PSBT: {e}") from None
        if txid != session.txid:
            raise _Refused(f"this PSBT is for another transaction ({txid[:16]}...), not session "
                           f"{session.id}'s ({session.txid[:16]}...): submit it to its own session")
        base = _parse_psbt(session.psbt, CoordinatorError)
        try:
            merged = combine([base, psbt], vf.vault)
            signed = analyze(merged, vf.vault)["signed_by"]
        except MsigvaultError as e:
            raise _Refused(f"its signatures do not verify against the vault: {e}") from None
        if not signed:
            raise _Refused("it carries no complete signature: no cosigner signed every input")
        identities = self.identities(session.vault_id)
        for fp in signed:
            if fp in identities:
                try:
                    check_statement(identities[fp], submission_statement(session.id, sha, fp), sigs.get(fp),
                                    f"keyholder {fp}")
                except IdentityError as e:
                    raise _Refused(str(e), signed) from None
        return tuple(signed), psbt.serialize()

    def _record_refusal(self, sid: str, sha: str, refused: _Refused):
        try:
            with self.db.write() as conn:
                row = self._locked(conn, sid)
                self._expire_if_due(conn, row)
                conn.execute(sa.insert(D.submissions).values(
                    session_id=sid, psbt_sha256=sha, outcome="refused", signers=",".join(refused.signers),
                    reason=refused.reason, received_at=self._now()))
                self._append(conn, "submission.refused", session=sid, data={
                    "psbt_sha256": sha, "reason": refused.reason, "claimed_signers": list(refused.signers)})
        except sa.exc.IntegrityError:
            pass  # the same bytes were refused at the same moment by another site
        raise SubmissionRefused(f"submission refused and recorded: {refused.reason}", session_id=sid,
                                psbt_sha256=sha)

    def _store_submission(self, sid: str, sha: str, signers, stored: bytes, sigs) -> SubmissionResult:
        try:
            with self.db.write() as conn:
                row = self._locked(conn, sid)
                if self._expire_if_due(conn, row):
                    raise _Refused(f"session {sid} expired at {row.expires_at}")
                if Status(row.status) in CLOSED:
                    raise _Refused(f"session {sid} is {row.status}: it takes no more signatures")
                new = []
                now = self._now()
                for fp in signers:
                    state = conn.execute(sa.select(D.cosigner_states.c.state).where(
                        D.cosigner_states.c.session_id == sid, D.cosigner_states.c.fingerprint == fp)).scalar()
                    if state == CosignerState.SIGNED.value:
                        continue
                    new.append(fp)
                    conn.execute(sa.update(D.cosigner_states).where(
                        D.cosigner_states.c.session_id == sid, D.cosigner_states.c.fingerprint == fp).values(
                        state=CosignerState.SIGNED.value, reason=None, partial_psbt=stored, partial_sha256=sha,
                        updated_at=now))
                outcome = "accepted" if new else "duplicate"
                conn.execute(sa.insert(D.submissions).values(session_id=sid, psbt_sha256=sha, outcome=outcome,
                                                            signers=",".join(signers), received_at=now))
                self._set(conn, row)
                if not new:
                    self._append(conn, "submission.duplicate", session=sid,
                                 data={"psbt_sha256": sha, "signers": list(signers)})
                for fp in new:
                    att = None
                    if fp in sigs:
                        att = {"key": self.identities(row.policy_id).get(fp),
                               "statement": submission_statement(sid, sha, fp), "signature": sigs[fp]}
                        if att["key"] is None:
                            att = None
                    self._append(conn, "submission.accepted", session=sid, actor=f"cosigner:{fp}",
                                 attestation=att, data={"psbt_sha256": sha, "fingerprint": fp,
                                                        "late": row.status != Status.OPEN.value})
                self._fault("submit:before-commit")
        except _Refused as r:
            return self._record_refusal(sid, sha, r)
        except sa.exc.IntegrityError:  # the same bytes stored at the same moment by another site
            previous = self._previous_submission(sid, sha)
            if previous is None:
                raise
            return self._repeat(previous, self.get(sid))
        return SubmissionResult(sid, sha, outcome, tuple(signers), None, self.get(sid))

    def refuse(self, session_id: str, fingerprint: str, reason: str, *,
               identity_signature: Optional[str] = None) -> Session:
        """Record that a keyholder refuses to sign, with their reason."""
        reason = str(reason)[:MAX_REASON]
        fp = fingerprint.lower()
        session = self.get(session_id)
        session.cosigner(fp)
        ident = self.identities(session.vault_id).get(fp)
        att = None
        statement = refusal_statement(session.id, fp, reason)
        if ident is not None:
            check_statement(ident, statement, identity_signature, f"keyholder {fp}")
            att = {"key": ident, "statement": statement, "signature": identity_signature}
        with self.db.write() as conn:
            row = self._locked(conn, session.id)
            self._cosigner_state(conn, row, fp, CosignerState.REFUSED, reason)
            self._append(conn, "cosigner.refused", session=session.id, actor=f"cosigner:{fp}", attestation=att,
                         data={"fingerprint": fp, "reason": reason})
        return self.get(session.id)

    def mark_unreachable(self, session_id: str, fingerprint: str, note: str = "") -> Session:
        return self._coordinator_mark(session_id, fingerprint, CosignerState.UNREACHABLE, note, "cosigner.unreachable")

    def request(self, session_id: str, fingerprint: str, note: str = "") -> Session:
        """Record that a keyholder was asked (again) to sign."""
        return self._coordinator_mark(session_id, fingerprint, CosignerState.REQUESTED, note, "cosigner.requested")

    def _coordinator_mark(self, session_id, fingerprint, state: CosignerState, note: str, event: str) -> Session:
        fp = fingerprint.lower()
        session = self.get(session_id)
        session.cosigner(fp)
        with self.db.write() as conn:
            row = self._locked(conn, session.id)
            self._cosigner_state(conn, row, fp, state, note[:MAX_REASON] or None)
            self._append(conn, event, session=session.id, data={"fingerprint": fp, "note": note[:MAX_REASON]})
        return self.get(session.id)

    def _cosigner_state(self, conn, row, fp: str, state: CosignerState, reason: Optional[str]) -> None:
        if Status(row.status) in CLOSED:
            raise SessionStateError(f"session {row.id} is {row.status}")
        have = conn.execute(sa.select(D.cosigner_states.c.state).where(
            D.cosigner_states.c.session_id == row.id, D.cosigner_states.c.fingerprint == fp)).scalar()
        if have == CosignerState.SIGNED.value:
            raise SessionStateError(f"keyholder {fp} has already signed session {row.id}: a valid signature "
                                    "cannot be taken back (cancel the session instead)")
        conn.execute(sa.update(D.cosigner_states).where(
            D.cosigner_states.c.session_id == row.id, D.cosigner_states.c.fingerprint == fp).values(
            state=state.value, reason=reason, updated_at=self._now()))
        self._set(conn, row)

    # -- lifecycle -------------------------------------------------------------------------------

    def cancel(self, session_id: str, reason: str = "", *, by: str = "") -> Session:
        session = self.get(session_id)
        with self.db.write() as conn:
            row = self._locked(conn, session.id)
            status = Status(row.status)
            if status is Status.CANCELLED:
                return self.get(session.id)
            if status not in (Status.OPEN, Status.FINALIZED):
                raise SessionStateError(
                    f"session {row.id} is {status.value} and cannot be cancelled"
                    + (": its transaction is on the network; replace it with a fee bump instead"
                       if status is Status.BROADCAST else ""))
            self._close(conn, row, Status.CANCELLED, reason[:MAX_REASON] or "cancelled")
            self._append(conn, "session.cancelled", session=row.id, data={"reason": reason[:MAX_REASON], "by": by})
        return self.get(session.id)

    def expire_due(self) -> "list[str]":
        """Expire every open or finalized session whose expiry has passed; their ids."""
        now = self._now()
        with self.db.read() as conn:
            due = [r.id for r in conn.execute(sa.select(D.sessions.c.id).where(
                D.sessions.c.status.in_([Status.OPEN.value, Status.FINALIZED.value]),
                D.sessions.c.expires_at.is_not(None), D.sessions.c.expires_at <= now))]
        done = []
        for sid in due:
            with self.db.write() as conn:
                if self._expire_if_due(conn, self._locked(conn, sid)):
                    done.append(sid)
        return done

    def replace(self, old_id: str, psbt: "Psbt | bytes", *, memo: str = "", proposed_by: str = "",
                expires_in: Optional[timedelta] = None, session_id: Optional[str] = None) -> Session:
        """A replacement (RBF fee bump) of ``session_id`` as a new session linked to it.

        The new PSBT must spend at least one coin of the old one. An open or finalized old session is
        closed as ``replaced`` at once (its signatures can no longer complete a spend); a broadcast one
        stays until the replacement is broadcast. The replacement takes over the old session's coins.
        """
        old = self.get(old_id)
        if old.status not in (Status.OPEN, Status.FINALIZED, Status.BROADCAST):
            raise SessionStateError(f"session {old.id} is {old.status.value}: there is nothing to replace")
        vf = self.vault_file(old.vault_id)
        psbt = _parse_psbt(psbt, CoordinatorError)
        summary = _summarise(psbt, vf)
        if not set(summary["coins"]) & set(old.summary["coins"]):
            raise CoordinatorError("the replacement spends none of the coins of the session it replaces: it would "
                                   "not replace it on the network; build it from the same coins")
        if old.status is Status.BROADCAST and summary["fee"] <= old.summary["fee"]:
            raise CoordinatorError(f"the replacement pays {summary['fee']} sats, not more than the {old.summary['fee']} "
                                   "sats of the transaction on the network: nodes would refuse it (BIP125); raise the fee")
        if old.status is Status.BROADCAST and float(summary["fee_rate"] or 0) <= float(old.summary["fee_rate"] or 0):
            raise CoordinatorError(f"the replacement's fee rate ({summary['fee_rate']} sat/vB) is not above the "
                                   f"{old.summary['fee_rate']} sat/vB of the transaction on the network: nodes would "
                                   "refuse it (BIP125); raise the fee rate")
        with self.db.write() as conn:
            row = self._locked(conn, old.id)
            if row.status != old.status.value:
                raise SessionStateError(f"session {old.id} changed meanwhile (now {row.status}): try again")
            conn.execute(sa.update(D.session_coins).where(D.session_coins.c.session_id == old.id).values(active=False))
            sid = self._create(vf, psbt, summary, memo=memo, proposed_by=proposed_by, expires_in=expires_in,
                               session_id=session_id, replaces=old.id, conn=conn)
            row = self._locked(conn, old.id)
            if old.status is Status.BROADCAST:
                self._set(conn, row, replaced_by=sid)
            else:
                self._set(conn, row, replaced_by=sid, status=Status.REPLACED.value, closed_reason=f"replaced by session {sid}")
                self._append(conn, "session.replaced", session=old.id, data={"replaced_by": sid})
        return self.get(sid)

    def advance(self, session_id: str, *, quiet: bool = False) -> Session:
        """Run every step the session is ready for: finalize, broadcast, track confirmations.

        ``quiet``: a step that fails (for example the node rejects the transaction) is recorded on
        the session (``last_error``) instead of raised.
        """
        session = self.get(session_id)
        try:
            if session.status is Status.OPEN and session.signatures_needed == 0:
                session = self.finalize(session.id)
            if session.status is Status.FINALIZED and self.backend is not None:
                session = self.broadcast(session.id)
            if session.status is Status.BROADCAST and self.backend is not None:
                session = self.track(session.id)
        except MsigvaultError:
            if not quiet:
                raise
            session = self.get(session.id)
        return session

    def recover(self) -> "list[Session]":
        """After a crash: run the pending steps of every session that was in the middle of one."""
        with self.db.read() as conn:
            ids = [r.id for r in conn.execute(sa.select(D.sessions.c.id).where(
                D.sessions.c.status.in_([Status.OPEN.value, Status.FINALIZED.value, Status.BROADCAST.value]))
                .order_by(D.sessions.c.created_at, D.sessions.c.id))]
        return [self.advance(sid, quiet=True) for sid in ids]

    def finalize(self, session_id: str) -> Session:
        """Combine the stored signatures, finalize, extract (against the backend's UTXOs when there
        is a backend) and store the transaction. Idempotent."""
        from ..psbt.combiner import combine
        from ..psbt.extractor import extract
        from ..psbt.finalizer import finalize

        session = self.get(session_id)
        if session.status in (Status.FINALIZED, Status.BROADCAST, Status.CONFIRMED):
            return session
        if session.status is not Status.OPEN:
            raise SessionStateError(f"session {session.id} is {session.status.value}: it cannot be finalized")
        if session.signatures_needed:
            missing = [c.fingerprint for c in session.cosigners if c.state is not CosignerState.SIGNED]
            raise SessionStateError(
                f"session {session.id} has {len(session.signed)} of {session.threshold} signatures: "
                f"{session.signatures_needed} more needed from {', '.join(missing)}")
        vf = self.vault_file(session.vault_id)
        with self.db.read() as conn:
            partials = [bytes(r.partial_psbt) for r in conn.execute(sa.select(D.cosigner_states.c.partial_psbt).where(
                D.cosigner_states.c.session_id == session.id,
                D.cosigner_states.c.state == CosignerState.SIGNED.value).order_by(D.cosigner_states.c.fingerprint))]
        psbts = [_parse_psbt(session.psbt, CoordinatorError)] + [_parse_psbt(p, CoordinatorError) for p in partials]
        try:
            final = finalize(combine(psbts, vf.vault), vf.vault)
            spent = self._spent_outputs(final, self._replaced_coins(session)) if self.backend is not None else None
            tx = extract(final, spent_outputs=spent, vault=vf.vault)
        except MsigvaultError as e:
            self._record_error(session.id, "session.finalize-failed", str(e))
            raise
        self._fault("finalize:before-store")
        with self.db.write() as conn:
            row = self._locked(conn, session.id)
            if row.status != Status.OPEN.value:
                return self.get(session.id)  # finalized meanwhile (another coordinator) or closed
            self._set(conn, row, status=Status.FINALIZED.value, final_psbt=final.serialize(), final_tx=tx.raw,
                      final_txid=tx.txid, last_error=None)
            self._append(conn, "session.finalized", session=row.id, data={
                "txid": tx.txid, "wtxid": tx.wtxid, "fee": tx.fee, "vsize": tx.vsize, "signed_by": session.signed,
                "verified_by_kernel": tx.verified_by_kernel, "verified_against": tx.verified_against.value,
                "tx_sha256": _sha(tx.raw)})
            self._fault("finalize:before-commit")
        self._fault("finalize:after-store")
        return self.get(session.id)

    def _replaced_coins(self, session: Session) -> "set[str]":
        """Coins that the broadcast transaction this session replaces spends (in the mempool)."""
        if session.replaces is None:
            return set()
        old = self.get(session.replaces)
        return set(old.summary["coins"]) if old.status is Status.BROADCAST else set()

    def _spent_outputs(self, psbt, replaced: "set[str]" = frozenset()) -> list:
        """The chain's output for each input: unspent, or (for a replacement) spent by the
        transaction it replaces, read from the previous transaction the backend checks by txid."""
        from ..psbt import fields as F
        from ..psbt.common import spent_output
        from ..psbt.sighash import TxOut

        claimed = [spent_output(psbt, i, CoordinatorError, require_full_tx=False) for i in range(psbt.input_count)]
        coins = {(u.txid, u.vout): u for u in self.backend.utxos(list({c.script_pubkey for c in claimed}))}
        out = []
        for i in range(psbt.input_count):
            txid, vout = psbt.prevout(i)
            key = (bytes(txid)[::-1].hex(), vout)
            coin = coins.get(key)
            if coin is None and f"{key[0]}:{key[1]}" in replaced:
                prev = F.parse_tx(self.backend.get_tx(key[0]), "previous transaction")
                amount, script = prev.vout[key[1]]
                out.append(TxOut(amount, bytes(script)))
                continue
            if coin is None:
                raise CoordinatorError(f"input {i} spends {key[0]}:{key[1]}, which the chain backend does not show "
                                       "as unspent: it was spent already or never existed; nothing was broadcast")
            out.append(TxOut(coin.amount, bytes(coin.script_pubkey)))
        return out

    def _record_error(self, sid: str, event: str, message: str) -> None:
        with self.db.write() as conn:
            row = self._locked(conn, sid)
            self._set(conn, row, last_error=message[:MAX_REASON])
            self._append(conn, event, session=sid, data={"error": message[:MAX_REASON]})

    def broadcast(self, session_id: str) -> Session:
        """Send the finalized transaction through the backend; idempotent (a transaction the chain
        already has counts as broadcast)."""
        from ..backends.base import BroadcastRejected

        session = self.get(session_id)
        if session.status in (Status.BROADCAST, Status.CONFIRMED):
            return session
        if session.status is not Status.FINALIZED:
            raise SessionStateError(f"session {session.id} is {session.status.value}: only a finalized session "
                                    "can be broadcast")
        if self.backend is None:
            raise CoordinatorError("broadcasting needs a chain backend: give --backend URL (or --chain DIR)")
        try:
            self.backend.broadcast(session.final_tx)
        except BroadcastRejected as e:
            if not self._chain_has(session.final_txid):
                self._record_error(session.id, "broadcast.rejected", e.reason)
                raise
        self._fault("broadcast:after-send")
        with self.db.write() as conn:
            row = self._locked(conn, session.id)
            if row.status == Status.FINALIZED.value:
                self._set(conn, row, status=Status.BROADCAST.value, broadcast_at=self._now(), last_error=None)
                self._append(conn, "session.broadcast", session=row.id,
                             data={"txid": row.final_txid, "backend": getattr(self.backend, "where", "")})
                if row.replaces:
                    old = self._locked(conn, row.replaces)
                    if old.status in (Status.BROADCAST.value, Status.FINALIZED.value, Status.OPEN.value):
                        self._close(conn, old, Status.REPLACED, f"replaced by session {row.id}")
                        self._append(conn, "session.replaced", session=old.id,
                                     data={"replaced_by": row.id, "txid": row.final_txid})
        return self.get(session.id)

    def _chain_has(self, txid: Optional[str]) -> bool:
        from ..backends.base import BackendError

        if not txid:
            return False
        try:
            self.backend.get_tx(txid)
        except BackendError:
            return False
        return True

    def track(self, session_id: str) -> Session:
        """Count the broadcast transaction's confirmations; confirmed after ``confirmations_required``."""
        session = self.get(session_id)
        if session.status is not Status.BROADCAST or self.backend is None:
            return session
        height = self._confirmed_height(session)
        if height is None:
            return session
        tip = self.backend.tip().height
        confirmations = max(0, tip - height + 1)
        with self.db.write() as conn:
            row = self._locked(conn, session.id)
            if row.status != Status.BROADCAST.value or (row.confirmations == confirmations
                                                         and confirmations < self.confirmations_required):
                return self.get(session.id)
            done = confirmations >= self.confirmations_required
            self._set(conn, row, confirmations=confirmations, confirmed_height=height,
                      status=(Status.CONFIRMED if done else Status.BROADCAST).value)
            if done:
                self._append(conn, "session.confirmed", session=row.id, data={
                    "txid": row.final_txid, "height": height, "confirmations": confirmations})
        return self.get(session.id)

    def track_all(self) -> "list[Session]":
        return [self.track(s.id) for s in self.list(status=Status.BROADCAST.value)]

    def upkeep(self, *, margin_blocks: Optional[int] = None) -> "list[tuple[str, UpkeepReport]]":
        """(vault name, :class:`~.upkeep.UpkeepReport`) for every registered vault with recovery paths:
        its coins on the backend and when their recovery paths open, those within ``margin_blocks``
        of the tip flagged (docs/recovery.md, "Upkeep"). Time locks are judged against the tip's
        block time, which a backend reports (not its median time past)."""
        from ..backends.scan import scan_vault
        from .upkeep import DEFAULT_MARGIN_BLOCKS, upkeep

        if self.backend is None:
            raise CoordinatorError("the upkeep check reads the vaults' coins: give --backend URL (or --chain DIR)")
        margin = DEFAULT_MARGIN_BLOCKS if margin_blocks is None else margin_blocks
        out = []
        for row in self.vaults():
            vf = self.vault_file(row["policy_id"])
            if not vf.vault.recovery:
                continue
            found = scan_vault(vf.vault, self.backend, fetch_prev_txs=False)
            out.append((vf.name, upkeep(vf.vault, found.utxos, tip_height=found.tip.height,
                                        tip_time=found.tip.time, margin_blocks=margin)))
        return out

    def _confirmed_height(self, session: Session) -> Optional[int]:
        scripts = [bytes.fromhex(o["script_pubkey"]) for o in session.summary["outputs"]]
        if self.backend.has_history:
            for items in self.backend.history(scripts).values():
                for item in items:
                    if item.txid == session.final_txid and item.height is not None:
                        return item.height
            return None
        for u in self.backend.utxos(scripts):
            if u.txid == session.final_txid and u.height is not None:
                return u.height
        return None




# -- helpers ------------------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _split(text: str) -> "list[str]":
    return [x for x in (text or "").split(",") if x]


def _parse_psbt(data, error) -> "Psbt":
    from ..psbt.psbt import Psbt

    if isinstance(data, Psbt):
        return data
    try:
        return Psbt.load(bytes(data))
    except MsigvaultError as e:
        raise error(f"not a valid PSBT: {e}") from None


def _summarise(psbt: "Psbt", vf: "VaultFile") -> dict:
    """What the session spends and pays (amounts, destinations, fee); CoordinatorError if it is not
    an unsigned PSBT of this vault."""
    from ..psbt import fields as F
    from ..psbt.analyzer import analyze

    for i, m in enumerate(psbt.inputs):
        if any(m.has_type(t) for t in (F.PSBT_IN_PARTIAL_SIG, F.PSBT_IN_TAP_SCRIPT_SIG, F.PSBT_IN_FINAL_SCRIPTSIG,
                                       F.PSBT_IN_FINAL_SCRIPTWITNESS)):
            raise CoordinatorError(f"input {i} of this PSBT is already signed: open the session with the unsigned "
                                   "PSBT and submit the signed copies to it")
    report = analyze(psbt, vf.vault)
    if report["problems"]:
        raise CoordinatorError(f"this PSBT is not a clean spend of the vault {vf.name!r}: {report['problems'][0]}")
    if any(i["vault_index"] is None for i in report["inputs"]):
        raise CoordinatorError(f"this PSBT spends coins that are not the vault {vf.name!r}'s")
    outputs = []
    for o in report["outputs"]:
        outputs.append({"index": o["index"], "address": o["address"], "amount": o["amount"], "kind": o["kind"],
                        "script_pubkey": psbt.script(o["index"]).hex()})
    return {"txid": report["txid"], "coins": [i["outpoint"] for i in report["inputs"]],
            "inputs": [{"outpoint": i["outpoint"], "amount": i["amount"]} for i in report["inputs"]],
            "outputs": outputs, "fee": report["fee"], "fee_rate": report["fee_rate"]}


def _vault_data(vf: "VaultFile", idents: Mapping[str, str]) -> dict:
    v = vf.vault
    issues = sorted({i.value for c in v.cosigners for i in c.origin_issues})
    return {"policy_id": v.policy_id, "name": vf.name, "network": v.network.name, "descriptor": v.descriptor(),
            "accept": sorted(d.value for d in v.accept), "origin_issues": issues, "threshold": v.m,
            "cosigners": [c.fingerprint.hex() for c in v.cosigners], "identities": dict(sorted(idents.items())),
            "registered_by": sorted(r.fingerprint.hex() for r in vf.registrations)}


def vault_file_from_json(text: str) -> "VaultFile":
    """A VaultFile from the JSON stored at registration (checked as a vault file is on every read)."""
    import os
    import tempfile

    from ..vaultfile import load_vault_file

    fd, path = tempfile.mkstemp(suffix=".json", prefix="msigvault-vault-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return load_vault_file(path)
    finally:
        os.unlink(path)


def verify_database(database: D.Database, *, trusted_keys: Optional[Sequence[str]] = None,
                    checkpoints: "Sequence[Checkpoint]" = ()) -> VerifyResult:
    """Verify the audit log stored in ``database`` (entries, their index columns and the head row)."""
    with database.read() as conn:
        head = conn.execute(sa.select(D.audit_head).where(D.audit_head.c.id == 1)).first()
        rows = conn.execute(sa.select(D.audit_log).order_by(D.audit_log.c.seq)).all()
    if head is None and not rows:
        raise AuditError("this database has no audit log yet: nothing to verify", entry=0)

    def lines():
        for position, r in enumerate(rows):
            obj = parse_line(bytes(r.line), position)
            if r.seq != obj["seq"] or r.session_id != obj["session"] or r.event != obj["event"] or r.hash != obj["hash"]:
                if r.seq == obj["seq"] == position:
                    raise AuditError(f"entry {position}: its database columns (session, event or hash) do not "
                                     "match the signed entry: the row was edited", entry=position)
            yield bytes(r.line)

    return verify_entries(lines(), trusted_keys=trusted_keys,
                          expect_count=head.count if head is not None else None,
                          expect_head=head.hash if head is not None else None, checkpoints=checkpoints)
