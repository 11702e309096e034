"""The coordinator's errors: every one a :class:`~msigvault.errors.MsigvaultError` with a code."""

from __future__ import annotations

from typing import Optional

from ..errors import MsigvaultError


class CoordinatorError(MsigvaultError):
    """A coordinator operation was refused (the message says why and what to do)."""

    code = "coordinator.error"


class DatabaseError(CoordinatorError):
    """The coordinator database cannot be opened, migrated or used."""

    code = "coordinator.database"


class SessionNotFound(CoordinatorError):
    """No session (or no unique session) has that id."""

    code = "coordinator.session-not-found"


class SessionStateError(CoordinatorError):
    """The session is not in a state that allows this step (cancelled, expired, broadcast, ...)."""

    code = "coordinator.session-state"


class CoinInUse(CoordinatorError):
    """A coin the PSBT spends is already being spent by another active session."""

    code = "coordinator.coin-in-use"


class SubmissionRefused(CoordinatorError):
    """A submitted partial PSBT was refused; the refusal is recorded in the session and the audit log."""

    code = "coordinator.submission-refused"

    def __init__(self, message: str, *, session_id: str = "", psbt_sha256: str = "",
                 fingerprint: Optional[str] = None) -> None:
        super().__init__(message, fingerprint=fingerprint)
        self.session_id = session_id
        self.psbt_sha256 = psbt_sha256


class IdentityError(CoordinatorError):
    """An identity key or an identity signature is missing, malformed or does not verify."""

    code = "coordinator.identity"


class AuditError(CoordinatorError):
    """The audit log or an audit export does not verify; ``entry`` is the first bad entry (its seq)."""

    code = "audit.invalid"

    def __init__(self, message: str, *, entry: Optional[int] = None, line: Optional[int] = None) -> None:
        super().__init__(message, line=line)
        self.entry = entry
