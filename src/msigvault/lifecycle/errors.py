"""Errors of the intake ceremony (codes listed in docs/errors.md)."""

from __future__ import annotations

from ..errors import MsigvaultError


class IntakeError(MsigvaultError):
    """An intake step cannot go on (the message says which and what to do)."""

    code = "intake.error"


class SourceError(IntakeError):
    """A seized source (WIF keys, mnemonic, xprv, descriptor, wallet file) cannot be read."""

    code = "intake.source"


class IntakeFileError(IntakeError):
    """A watch, found, plan or signed file is malformed, too large, or not the one the next step needs."""

    code = "intake.file"


class PlanError(IntakeError):
    """No sweep can be planned (nothing to sweep, an output would be dust, a bad fee rate...)."""

    code = "intake.plan"


class SweepRefused(IntakeError):
    """The offline signer refused the sweep: an input is not the source's, an output does not go to
    the registered vault, or the fee is above the limits."""

    code = "intake.refused"


class CustodyError(IntakeError):
    """A chain-of-custody record is malformed or does not verify (signature, totals, transactions)."""

    code = "intake.custody"
