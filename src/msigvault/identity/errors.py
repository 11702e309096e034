"""Errors of identities and sealed envelopes: each a MsigvaultError with a stable code (docs/errors.md)."""

from __future__ import annotations

from ..errors import MsigvaultError


class IdentityRecordError(MsigvaultError):
    """An identity record is malformed, or its signatures do not verify for the cosigner it names."""

    code = "identity.record"


class IdentityFileError(MsigvaultError):
    """An identity key file cannot be created or read, is damaged, or was modified."""

    code = "identity.file"


class EnvelopeError(MsigvaultError):
    """A sealed envelope is malformed (bad magic, version, lengths, fields) or cannot be made."""

    code = "envelope.invalid"


class EnvelopeTooLarge(EnvelopeError):
    """An envelope or its payload is larger than the limit (``limit``, bytes); refused before any crypto."""

    code = "envelope.too-large"


class EnvelopeTruncated(EnvelopeError):
    """An envelope ends early (or has bytes after its end): an interrupted copy or transfer."""

    code = "envelope.truncated"


class EnvelopeTampered(EnvelopeError):
    """An envelope fails decryption or its sender's signature: bytes were changed on the way."""

    code = "envelope.tampered"


class WrongRecipient(EnvelopeError):
    """The envelope is addressed to another identity than the one opening it."""

    code = "envelope.wrong-recipient"


class WrongSender(EnvelopeError):
    """The envelope's sender is not the identity expected (or not one of those allowed)."""

    code = "envelope.wrong-sender"


class EnvelopeExpired(EnvelopeError):
    """The envelope's expiry time has passed."""

    code = "envelope.expired"


class EnvelopeReplayed(EnvelopeError):
    """An envelope with this sender, session and sequence number was accepted before."""

    code = "envelope.replayed"


class EnvelopeOutOfOrder(EnvelopeError):
    """The envelope's sequence number is not above the last one accepted from that sender in that session."""

    code = "envelope.out-of-order"
