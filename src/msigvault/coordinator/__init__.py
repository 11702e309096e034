"""The coordinator (extra ``online``): signing sessions, their database and the audit log.

    from msigvault.coordinator import Coordinator, Database, Identity

    db = Database.open("sqlite:///coordinator.sqlite")       # or postgresql://...
    co = Coordinator(db, Identity.load_or_create("coordinator.key"), backend=backend)
    vault_id = co.register_vault(vault_file)
    session = co.new_session(vault_id, psbt, memo="rent", proposed_by="ops")
    co.submit(session.id, signed_copy_bytes)                  # verified, stored, audited
    co.verify_log(); co.export_log("audit.jsonl")

See docs/coordinator-guide.md ("Signing sessions") and docs/audit.md.
"""

from __future__ import annotations

from .errors import (
    AuditError,
    CoinInUse,
    CoordinatorError,
    DatabaseError,
    IdentityError,
    SessionNotFound,
    SessionStateError,
    SubmissionRefused,
)


def __getattr__(name):  # the database modules import SQLAlchemy: only when asked for
    if name in ("Coordinator", "Session", "Status", "CosignerState", "SubmissionResult", "verify_database"):
        from . import sessions

        return getattr(sessions, name)
    if name == "Database":
        from .db import Database

        return Database
    if name in ("Identity", "verify_export", "sign_statement", "submission_statement", "refusal_statement"):
        from . import audit

        return getattr(audit, name)
    raise AttributeError(name)


__all__ = [
    "AuditError", "CoinInUse", "Coordinator", "CoordinatorError", "CosignerState", "Database", "DatabaseError",
    "Identity", "IdentityError", "Session", "SessionNotFound", "SessionStateError", "Status", "SubmissionRefused",
    "SubmissionResult", "refusal_statement", "sign_statement", "submission_statement", "verify_database",
    "verify_export",
]
