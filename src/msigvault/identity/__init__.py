"""Identities and sealed envelopes (offline-capable: only ``cryptography`` and ``embit``).

    from msigvault.identity import IdentityKey, IdentityRecord, seal, open_envelope, ReplayGuard

    me = IdentityKey.generate("alice-site", "keyholder-site")
    me.save("alice-site.identity", passphrase)
    record = me.record("regtest", root=alice_root, cosigner=alice_cosigner)   # signed by the vault key
    record.verify_for_vault(vault)                                             # needs only the xpub

See docs/envelopes.md.
"""

from __future__ import annotations

from .envelope import ContentType, EnvelopeHeader, OpenedEnvelope, ReplayGuard, open_envelope, read_header, seal
from .errors import (
    EnvelopeError, EnvelopeExpired, EnvelopeOutOfOrder, EnvelopeReplayed, EnvelopeTampered, EnvelopeTooLarge,
    EnvelopeTruncated, IdentityFileError, IdentityRecordError, WrongRecipient, WrongSender,
)
from .identity import IDENTITY_BRANCH, ROLES, IdentityKey, IdentityPublic, IdentityRecord, identity_id

__all__ = [
    "ContentType", "EnvelopeError", "EnvelopeExpired", "EnvelopeHeader", "EnvelopeOutOfOrder", "EnvelopeReplayed",
    "EnvelopeTampered", "EnvelopeTooLarge", "EnvelopeTruncated", "IDENTITY_BRANCH", "IdentityFileError",
    "IdentityKey", "IdentityPublic", "IdentityRecord", "IdentityRecordError", "OpenedEnvelope", "ROLES",
    "ReplayGuard", "WrongRecipient", "WrongSender", "identity_id", "open_envelope", "read_header", "seal",
]
