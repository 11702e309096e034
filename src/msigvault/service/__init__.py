"""The coordinator service over HTTPS (extra ``online``): a Starlette app under uvicorn, and its client.

    from msigvault.service.app import create_app          # the ASGI app (server side)
    from msigvault.service.client import ServiceClient    # signed requests, pinned CA (sites, operators, auditors)

The modules are imported on use: this package's ``__init__`` imports neither Starlette nor httpx.
See docs/service.md.
"""

from __future__ import annotations

from .errors import (BadRequest, BodyTooLarge, Forbidden, NotFound, RateLimited, ReplayedRequest, ServiceError,
                     ServiceRefused, ServiceUnreachable, StaleRequest, Unauthenticated)

__all__ = ["BadRequest", "BodyTooLarge", "Forbidden", "NotFound", "RateLimited", "ReplayedRequest", "ServiceError",
           "ServiceRefused", "ServiceUnreachable", "StaleRequest", "Unauthenticated"]
