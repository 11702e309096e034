"""The coordinator service's errors: each a MsigvaultError with a stable code and an HTTP status.

The server answers every refusal with ``{"error": {"code": ..., "message": ...}}`` (docs/service.md);
the client raises :class:`ServiceRefused` carrying the server's code in ``remote_code``.
"""

from __future__ import annotations

from typing import ClassVar, Optional

from ..errors import MsigvaultError


class ServiceError(MsigvaultError):
    """A request to the coordinator service was refused (the message says why and what to do)."""

    code = "service.error"
    status: ClassVar[int] = 400


class BadRequest(ServiceError):
    """The request is malformed: unknown route, wrong method, a body that is not the JSON the route takes."""

    code = "service.bad-request"
    status = 400


class NotFound(ServiceError):
    """No such route."""

    code = "service.not-found"
    status = 404


class Unauthenticated(ServiceError):
    """The request's signature headers are missing or malformed, the identity is not enrolled, or the signature
    does not verify."""

    code = "service.unauthenticated"
    status = 401


class StaleRequest(Unauthenticated):
    """The request's timestamp is outside the server's window (120 s either side by default)."""

    code = "service.stale-request"
    status = 401


class ReplayedRequest(Unauthenticated):
    """A request with this identity and nonce was seen before (by any process of the service)."""

    code = "service.replayed-request"
    status = 401


class Forbidden(ServiceError):
    """The identity's role does not allow this request, or it speaks for another cosigner or vault."""

    code = "service.forbidden"
    status = 403


class BodyTooLarge(ServiceError):
    """The request body is larger than the service's limit (``limit``, bytes)."""

    code = "service.too-large"
    status = 413


class RateLimited(ServiceError):
    """The identity sent more requests than its rate limit allows; retry after a pause."""

    code = "service.rate-limited"
    status = 429


class ServiceRefused(ServiceError):
    """Client side: the service refused the request; ``remote_code`` is the server's error code, ``status`` its
    HTTP status."""

    code = "service.refused"

    def __init__(self, message: str, *, remote_code: str = "", http_status: int = 0,
                 field: Optional[str] = None) -> None:
        super().__init__(message, field=field)
        self.remote_code = remote_code
        self.http_status = http_status


class ServiceUnreachable(ServiceError):
    """Client side: the service cannot be reached, or its TLS certificate is not signed by the pinned CA."""

    code = "service.unreachable"
