"""Typed import warnings: what a vault file assumed, implied or got wrong without being invalid.

Every warning has a stable ``code`` (a :class:`WarningCode`, whose value is a short kebab-case
string, stable across releases) and a ``message`` for people. ``ImportedVault.warnings`` holds
them; the CLI prints the messages and ``--json`` lists ``{"code", "message", "key"}`` objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from ..keys.cosigner import Cosigner, OriginIssue


class WarningCode(str, Enum):
    """Why a warning was given. Origin and deviation codes share their values with
    :class:`~msigvault.keys.cosigner.OriginIssue` and ``policy.vault.Deviation``."""

    ASSUMED_DEFAULT = "assumed-default"  # a field was missing and the format's default was used
    IMPLIED_BRANCH = "implied-branch"  # only one branch, a fixed index or no derivation was given
    NO_CHECKSUM = "no-checksum"  # a descriptor without its checksum
    NOT_AUTHENTICATED = "not-authenticated"  # a BSMS TOKEN was given but the record carries no MAC
    IGNORED_FIELD = "ignored-field"  # a field msigvault does not use was skipped
    DEVICE_LIMIT = "device-limit"  # a device that reads this format will refuse the file
    DEVICE_COUNT = "device-count"  # the file lists another number of devices than keys
    SCRIPT_FROM_KEYS = "script-from-key-versions"  # the script type was read from SLIP-132 versions
    PATH_SCRIPT_MISMATCH = "path-script-mismatch"  # a BIP48 path names another script type
    STARTING_INDEX = "starting-index"  # the coordinator skips addresses below an index
    ORIGIN_UNKNOWN = OriginIssue.UNKNOWN.value
    FINGERPRINT_UNKNOWN = OriginIssue.FINGERPRINT_UNKNOWN.value
    ORIGIN_DEPTH_MISMATCH = OriginIssue.DEPTH.value
    ORIGIN_CHILD_MISMATCH = OriginIssue.CHILD.value
    ORIGIN_FINGERPRINT_MISMATCH = OriginIssue.FINGERPRINT.value
    COIN_TYPE_MISMATCH = "coin-type-mismatch"
    UNSEPARATED_TEST_KEYS = "unseparated-test-keys"
    SHARED_SEED = "shared-seed"


@dataclass(frozen=True)
class FormatWarning:
    """One import warning. ``key`` is the 1-based position of the key it is about, if any."""

    code: WarningCode
    message: str
    key: Optional[int] = None

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"code": self.code.value, "message": self.message, "key": self.key}


_CANNOT_SIGN = (
    "the vault can be watched and its addresses derived, but this keyholder's signer will refuse to "
    "sign until the key is exported again with its true origin and the vault re-registered"
)


def origin_warnings(cosigner: Cosigner, index: int, fmt: str) -> "list[FormatWarning]":
    """One warning per origin check ``cosigner`` (key ``index``, 1-based) failed."""
    from ..keys.cosigner import origin_problems

    who = f"{fmt}: key {index} ({cosigner.fingerprint.hex().upper()})"
    out = []
    for issue, problem in origin_problems(cosigner.fingerprint, cosigner.path, cosigner.key):
        if issue is OriginIssue.UNKNOWN:
            text = (f"{fmt}: key {index} has no key origin (no master fingerprint or derivation path): it is "
                    f"recorded as its own root [{cosigner.fingerprint.hex()}], as BIP380 reads a key without "
                    f"origin; {_CANNOT_SIGN}")
        else:
            detail = problem.split(": ", 1)[1] if problem.startswith("cosigner ") else problem
            text = f"{who}: {detail}; {_CANNOT_SIGN}"
        out.append(FormatWarning(WarningCode(issue.value), text, index))
    return out


def deviation_warnings(vault, fmt: str) -> "list[FormatWarning]":
    """Warnings for the ``policy.vault.Deviation`` rules the imported vault was accepted with."""
    try:
        from ..policy.vault import deviations_of
    except ImportError:  # pragma: no cover - older policy layer without deviations
        return []
    out = []
    for kind, problem in deviations_of(vault.cosigners, vault.network).items():
        code = WarningCode(kind.value)
        out.append(FormatWarning(code, f"{fmt}: accepted on import: {problem}; other wallets write such files, "
                                       "so the vault is read as the file states it: check its first address on "
                                       "every keyholder's device before funding"))
    return out
