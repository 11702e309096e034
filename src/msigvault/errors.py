"""Every failure a user can cause raises a subclass of :class:`MsigvaultError`.

Messages say what was wrong and what to do about it. They never contain a private
key, seed or passphrase.

For machines, every class has a stable ``code`` (a class attribute such as
``"psbt.invalid"`` or ``"signer.fee-limit"``; docs/errors.md lists them all: a code is
never reused or renamed once released) and an error carries structured fields where
they apply (``input_index``, ``output_index``, ``field``, ``fingerprint``, ...), given as
keyword-only constructor arguments. :meth:`MsigvaultError.to_dict` returns the code, the
message and the fields that are set; ``msigvault ... --json`` prints it on failure.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Optional, Type, TypeVar, Union

_E = TypeVar("_E", bound="MsigvaultError")

FIELDS: "dict[str, str]" = {
    "input_index": "input",
    "output_index": "output",
    "psbt_index": "psbt",
    "field": "field",
    "fingerprint": "fingerprint",
    "derivation": "derivation",
    "path": "path",
    "limit": "limit",
    "format": "format",
    "line": "line",
}
"""Structured field (attribute name) -> its key in :meth:`MsigvaultError.to_dict`."""


def _normalise(name: str, value: Any) -> Any:
    if name == "fingerprint" and isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if name == "path" and isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


class MsigvaultError(Exception):
    """Base class of every error a user of msigvault can cause.

    Fields (all optional, keyword-only): ``input_index`` and ``output_index`` (0-based, in the
    PSBT), ``psbt_index`` (1-based: which of several PSBTs given, as messages count them),
    ``field`` (a PSBT field name such as ``PSBT_IN_WITNESS_UTXO``, or a file's field),
    ``fingerprint`` (a master key fingerprint, hex), ``derivation`` (a BIP32 path such as
    ``m/48h/1h/0h/2h``), ``path`` (a file), ``limit`` (the limit that was exceeded), ``format``
    (a vault file format name) and ``line`` (1-based line in a text file).
    """

    code: ClassVar[str] = "error"

    input_index: Optional[int] = None
    output_index: Optional[int] = None
    psbt_index: Optional[int] = None
    field: Optional[str] = None
    fingerprint: Optional[str] = None
    derivation: Optional[str] = None
    path: Optional[str] = None
    limit: Union[int, float, None] = None
    format: Optional[str] = None
    line: Optional[int] = None

    def __init__(self, *args: Any, input_index: Optional[int] = None, output_index: Optional[int] = None,
                 psbt_index: Optional[int] = None, field: Optional[str] = None,
                 fingerprint: "Union[str, bytes, None]" = None, derivation: Optional[str] = None,
                 path: "Union[str, os.PathLike[str], None]" = None, limit: Union[int, float, None] = None,
                 format: Optional[str] = None, line: Optional[int] = None) -> None:
        super().__init__(*args)
        self.locate(input_index=input_index, output_index=output_index, psbt_index=psbt_index, field=field,
                    fingerprint=fingerprint, derivation=derivation, path=path, limit=limit, format=format,
                    line=line)

    def locate(self: _E, **fields: Any) -> _E:
        """Set the structured fields given that are not set yet (the innermost context wins); return self."""
        for name, value in fields.items():
            if name not in FIELDS:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            if value is not None and getattr(self, name) is None:
                setattr(self, name, _normalise(name, value))
        return self

    @property
    def message(self) -> str:
        """What was wrong and what to do (the same as ``str(error)``)."""
        return str(self)

    def fields(self) -> "dict[str, Any]":
        """The structured fields that are set, by attribute name."""
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}

    def to_dict(self) -> "dict[str, Any]":
        """``{"code": ..., "message": ..., "input": 3, ...}``: only the fields that are set.

        The code is the class's (``type(self).code``), so an instance attribute of the same
        name cannot change it.
        """
        out: "dict[str, Any]" = {"code": type(self).code, "message": str(self)}
        for name, value in self.fields().items():
            out[FIELDS[name]] = value
        return out


def narrow(error: "Type[MsigvaultError]", preferred: "Type[MsigvaultError]") -> "Type[MsigvaultError]":
    """``preferred`` where it is a kind of ``error`` (a role's error class passed in), else ``error``.

    Shared checks take the role's error class; the signer's refusals get their specific
    subclasses (``narrow(SignerRefusal, ForeignInput) is ForeignInput``), other roles keep theirs.
    """
    return preferred if issubclass(preferred, error) else error


class InvalidKey(MsigvaultError):
    """A key, extended key, fingerprint or derivation path is malformed or misused."""

    code = "key.invalid"


class InvalidDescriptor(MsigvaultError):
    """An output descriptor cannot be parsed or does not describe a supported vault.

    ``position`` is the 0-based offset in the descriptor text where the parser found the
    problem, when it knows it (None otherwise).
    """

    code = "descriptor.invalid"
    position: "int | None" = None


class ChecksumError(InvalidDescriptor):
    """A descriptor checksum is missing or does not match."""

    code = "descriptor.checksum"


class PolicyError(MsigvaultError):
    """A vault policy breaks a rule (m-of-n limits, duplicate cosigners, ...)."""

    code = "policy.invalid"


class DerivedKeysError(PolicyError):
    """A derived-key record (a signed cache of a vault's child keys) is refused; nothing was loaded."""

    code = "policy.derived-keys"


class NetworkMismatch(MsigvaultError):
    """Keys, addresses or files belong to a different network than expected."""

    code = "network.mismatch"


class InvalidAddress(MsigvaultError):
    """An address cannot be decoded for the expected network."""

    code = "address.invalid"


class InvalidPSBT(MsigvaultError):
    """A PSBT is malformed; the message names the offending field (``field``, ``input_index``, ...)."""

    code = "psbt.invalid"


class SignerRefusal(MsigvaultError):
    """The signer refused to sign: the PSBT asks for something the vault did not authorise."""

    code = "signer.refused"


class RegistrationError(SignerRefusal):
    """A keyholder's vault registration is missing, does not verify, or was made by another key."""

    code = "signer.registration"


class FeeLimitExceeded(SignerRefusal):
    """The fee is above the signer policy's limit (``limit``: sats, sat/vB or a fraction)."""

    code = "signer.fee-limit"


class ForeignInput(SignerRefusal):
    """An input does not spend from the registered vault (or claims a vault path it does not pay)."""

    code = "signer.foreign-input"


class ForeignKey(SignerRefusal):
    """The PSBT names a cosigner key (global xpub) that is not in the registered vault."""

    code = "signer.foreign-key"


class ChangeFraud(SignerRefusal):
    """An output claims to be vault change (or carries vault fingerprints) but does not rebuild as such."""

    code = "signer.change-fraud"


class IndexLimitExceeded(SignerRefusal):
    """An input or change output is at a vault index beyond the registered index limit (``limit``)."""

    code = "signer.index-limit"


class SighashRefused(SignerRefusal):
    """An input asks for a sighash type other than ALL (DEFAULT for taproot) without permission."""

    code = "signer.sighash"


class MissingPreviousTx(SignerRefusal):
    """A segwit v0 or legacy input lacks its previous transaction (CVE-2020-14199)."""

    code = "signer.missing-prev-tx"


class UtxoMismatch(SignerRefusal):
    """An input's UTXO fields contradict each other or the outpoint (a tampered PSBT)."""

    code = "signer.utxo-mismatch"


class CombineError(MsigvaultError):
    """PSBTs cannot be combined (different transactions, conflicting or invalid signatures)."""

    code = "combine.refused"


class FinalizeError(MsigvaultError):
    """A PSBT cannot be finalized (for example: a signature does not verify)."""

    code = "finalize.failed"


class NotEnoughSignatures(FinalizeError):
    """An input has fewer valid signatures than the vault's threshold."""

    code = "finalize.not-enough-signatures"


class ExtractError(MsigvaultError):
    """The final transaction fails a sanity or consensus check."""

    code = "extract.failed"


class CoinSelectionError(MsigvaultError):
    """The available UTXOs cannot pay for the requested outputs and fee."""

    code = "coinselect.failed"


class KeystoreError(MsigvaultError):
    """A keystore cannot be created, opened or decrypted."""

    code = "keystore.error"


class ChainError(MsigvaultError):
    """A chain backend rejected a request (for example: an invalid transaction)."""

    code = "chain.error"


class FileSystemError(MsigvaultError):
    """The operating system refused a file operation (permission, disk full, ...); ``path`` names it."""

    code = "os.error"
