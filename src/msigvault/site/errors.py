"""Errors of a keyholder site's online side and its air-gapped step: each a MsigvaultError with a stable code."""

from __future__ import annotations

from ..errors import MsigvaultError


class SiteError(MsigvaultError):
    """A step of the site procedure failed (docs/site.md); the message says which and what to do."""

    code = "site.error"


class SiteRequestError(SiteError):
    """A pulled request file is malformed, too large, or does not match what it claims (PSBT hash, vault, cosigner)."""

    code = "site.request"


class SiteResponseError(SiteError):
    """A response (signed PSBT or refusal) is malformed or is not the answer to the request it is pushed for."""

    code = "site.response"


class FolderError(SiteError):
    """The shared folder is missing or unwritable, or a file in it is too large, misnamed or misplaced."""

    code = "site.folder"
