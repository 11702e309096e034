"""Errors of the reserves layer: each a :class:`~msigvault.errors.MsigvaultError` with a code."""

from __future__ import annotations

from ..errors import MsigvaultError


class ProofError(MsigvaultError):
    """A BIP322 proof cannot be built, decoded or encoded as asked."""

    code = "proof.error"


class ProofInvalid(ProofError):
    """A BIP322 signature does not prove the message for the address (BIP322's "invalid")."""

    code = "proof.invalid"


class ProofInconclusive(ProofError):
    """A BIP322 signature could not be checked here (BIP322's "inconclusive")."""

    code = "proof.inconclusive"


class HealthCheckError(MsigvaultError):
    """A key-health challenge or response is malformed or belongs to another check."""

    code = "health.error"
