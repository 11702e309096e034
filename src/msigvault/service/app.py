"""The coordinator service: a Starlette ASGI application exposing signing sessions under ``/v1``.

    from msigvault.service.app import create_app, ServiceConfig
    app = create_app(coordinator, identity_key, network="regtest")      # run it under uvicorn with TLS

Every request but ``GET /v1/coordinator`` is signed by the caller's identity key (:mod:`.auth`);
each route allows some roles (:data:`ROUTES`). Every refusal is an HTTP error with a JSON body
``{"error": {"code": ..., "message": ...}}`` and a ``service.refused`` audit entry (who, what, why;
never the body). The work runs in worker threads (the coordinator and SQLAlchemy are synchronous).
docs/service.md documents the API byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import logging
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..coordinator.audit import Identity
from ..coordinator.envelopes import submit_envelope
from ..coordinator.errors import CoinInUse, DatabaseError, SessionNotFound, SessionStateError
from ..coordinator.sessions import SubmissionResult
from ..errors import MsigvaultError
from ..identity.envelope import ContentType, next_sequence, seal
from ..identity.errors import (EnvelopeOutOfOrder, EnvelopeReplayed, EnvelopeTooLarge, WrongRecipient,
                               WrongSender)
from ..identity.identity import IdentityKey
from .auth import RateLimiter, SignedHeaders, check_window, parse_headers, verify_request
from .errors import BadRequest, BodyTooLarge, Forbidden, NotFound, RateLimited, ServiceError, Unauthenticated
from .store import DatabaseReplayGuard, Enrolled, ServiceStore

if TYPE_CHECKING:
    from ..coordinator.sessions import Coordinator, Session

__all__ = ["ServiceConfig", "Service", "Call", "ROUTES", "create_app", "http_status"]

log = logging.getLogger("msigvault.service")

MAX_PENDING = 100  # requests returned by one GET /v1/requests
RATE_AUDIT_INTERVAL = 10.0  # seconds: one rate-limit refusal per identity per interval is audited
UNAUTHENTICATED_AUDIT_RATE = 2.0  # unauthenticated refusals audited per remote host: a second, on average,
UNAUTHENTICATED_AUDIT_BURST = 200  # and at once (the rest are counted in the next entry's "suppressed")
UNAUTHENTICATED_AUDIT_TOTAL_RATE = 20.0  # and from all hosts together (an attacker may have many addresses)
UNAUTHENTICATED_AUDIT_TOTAL_BURST = 1000


@dataclass(frozen=True)
class ServiceConfig:
    """Limits: body size (bytes), time window (seconds either side), rate (requests/s) and burst per identity."""

    max_body: int = 4 * 1024 * 1024
    window: int = 120
    rate: float = 20.0
    burst: int = 40
    prune_every: float = 60.0

    def __post_init__(self) -> None:
        if not (1024 <= self.max_body <= 64 * 1024 * 1024 and 10 <= self.window <= 3600 and self.rate > 0
                and self.burst >= 1):
            raise ServiceError("service limits out of range: max body 1 KiB..64 MiB, window 10..3600 s, "
                               "rate > 0, burst >= 1")


@dataclass(frozen=True)
class Call:
    """One HTTP request as the service sees it (the body is never logged or audited)."""

    method: str
    target: bytes  # the raw path and query, as signed
    path: str
    headers: Mapping[str, str]
    body: bytes
    remote: str
    params: Mapping[str, str]


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: str  # the Service method
    roles: "Optional[frozenset[str]]"  # None: public (unsigned)


ANY = frozenset({"keyholder-site", "auditor", "operator"})
ROUTES = (
    RouteSpec("GET", "/v1/coordinator", "coordinator_record", None),
    RouteSpec("GET", "/v1/identity", "whoami", ANY),
    RouteSpec("GET", "/v1/requests", "pending", frozenset({"keyholder-site"})),
    RouteSpec("POST", "/v1/envelopes", "submit", frozenset({"keyholder-site"})),
    RouteSpec("POST", "/v1/sessions", "propose", frozenset({"operator"})),
    RouteSpec("GET", "/v1/sessions/{session_id}", "status", ANY),
    RouteSpec("POST", "/v1/sessions/{session_id}/cancel", "cancel", frozenset({"operator"})),
    RouteSpec("GET", "/v1/audit", "audit_export", frozenset({"auditor"})),
)

def http_status(error: MsigvaultError) -> int:
    """The HTTP status of a refusal (docs/service.md, "Errors")."""
    if isinstance(error, ServiceError):
        return error.status
    if isinstance(error, SessionNotFound):
        return 404
    if isinstance(error, (WrongSender, WrongRecipient)):
        return 403
    if isinstance(error, (EnvelopeReplayed, EnvelopeOutOfOrder, SessionStateError, CoinInUse)):
        return 409
    if isinstance(error, EnvelopeTooLarge):
        return 413
    if isinstance(error, DatabaseError):
        return 503
    return 422


def error_body(error: MsigvaultError) -> "dict[str, Any]":
    return {"error": {"code": type(error).code, "message": str(error)}}


class Service:
    """The request handling behind the routes, independent of HTTP; synchronous (runs in worker threads)."""

    def __init__(self, coordinator: "Coordinator", identity: IdentityKey, *, network: str,
                 config: ServiceConfig = ServiceConfig()) -> None:
        if coordinator.identity is None or coordinator.identity.public_hex != Identity(identity.signing).public_hex:
            raise ServiceError("the coordinator must sign its audit log with the service's identity key: open it "
                               "with Identity(identity.signing)")
        self.co = coordinator
        self.key = identity
        self.config = config
        self.record = identity.record(network)
        self.id = identity.id.hex()
        self.store = ServiceStore(coordinator.db)
        self.guard = DatabaseReplayGuard(coordinator.db)
        self.limiter = RateLimiter(config.rate, config.burst)
        self._lock = threading.Lock()
        self._pruned = 0.0
        self._rate_audited: "dict[str, tuple[float, int]]" = {}
        self._audit_limiter = RateLimiter(UNAUTHENTICATED_AUDIT_RATE, UNAUTHENTICATED_AUDIT_BURST)
        self._audit_total = RateLimiter(UNAUTHENTICATED_AUDIT_TOTAL_RATE, UNAUTHENTICATED_AUDIT_TOTAL_BURST)
        self._suppressed = 0  # unauthenticated refusals not audited since the last audited refusal
        coordinator.recover()  # steps a killed process left undone (finalize, broadcast): idempotent

    # -- the pipeline -------------------------------------------------------------------------

    def handle(self, spec: RouteSpec, call: Call) -> "tuple[int, dict[str, Any]]":
        """Authenticate, authorise, run the route; a refusal becomes (status, error body), audited."""
        caller: Optional[Enrolled] = None
        try:
            if spec.roles is not None:
                caller, signed = self.authenticate(call)
                self.admit(caller, signed)
                if caller.role not in spec.roles:
                    raise Forbidden(f"{caller.name!r} is a {caller.role} identity: {spec.method} {spec.path} is for "
                                    f"{' and '.join(sorted(spec.roles))} identities only")
            handler: Callable[[Optional[Enrolled], Call], "tuple[int, dict[str, Any]]"] = getattr(self, spec.handler)
            return handler(caller, call)
        except MsigvaultError as e:
            return self.refuse(call, e, caller)
        except Exception:  # a bug: logged with its traceback (never the body), answered as JSON
            log.exception("internal error on %s %s", call.method, shown_path(call.path))
            return 500, error_body(ServiceError("the coordinator service failed on this request (an internal "
                                                "error, logged for its operator): try again later"))

    def precheck(self, call: Call) -> "Optional[tuple[int, dict[str, Any]]]":
        """Before the body is read: the headers are well formed, the identity enrolled, the timestamp in the
        window; else the refusal (audited as any other). Nobody without an enrolled identity's id and a fresh
        timestamp makes the server buffer a body."""
        try:
            check_window(self._enrolled(call)[1], now=time.time(), window=self.config.window)
        except MsigvaultError as e:
            return self.refuse(call, e, None)
        return None

    def _enrolled(self, call: Call) -> "tuple[Enrolled, SignedHeaders]":
        signed = parse_headers(call.headers)
        enrolled = self.store.lookup(signed.identity_id)
        if enrolled is None:
            raise Unauthenticated(f"identity {signed.identity_id} is not enrolled with this coordinator: ask its "
                                  "operator to enrol your identity record")
        return enrolled, signed

    def authenticate(self, call: Call) -> "tuple[Enrolled, SignedHeaders]":
        """The enrolled caller whose signature verifies (Unauthenticated, StaleRequest otherwise)."""
        enrolled, signed = self._enrolled(call)
        verify_request(signed, enrolled.record.signing_key, coordinator_id=self.id, method=call.method,
                       target=call.target, body=call.body, now=time.time(), window=self.config.window)
        return enrolled, signed

    def admit(self, caller: Enrolled, signed: SignedHeaders) -> None:
        """The rate limit, then the nonce (RateLimited, ReplayedRequest)."""
        if not self.limiter.allow(caller.id):
            raise RateLimited(f"{caller.name!r} sent more than {self.config.burst} requests at once (at most "
                              f"{self.config.rate:g} a second on average): wait a moment and retry")
        self.store.use_nonce(caller.id, signed.nonce, signed.timestamp)
        self._prune()

    def refuse(self, call: Call, error: MsigvaultError, caller: Optional[Enrolled]) -> "tuple[int, dict[str, Any]]":
        """Log and audit a refusal (who, what, why; never the body); the response."""
        status = http_status(error)
        claimed = caller.id if caller is not None else _claimed(call.headers)
        log.warning("refused %s %s from %s (identity %s): %s %s", call.method, shown_path(call.path), call.remote,
                    claimed or "-", status, type(error).code)
        suppressed = self._audit_wanted(error, caller, claimed, call.remote)
        if suppressed is not None:
            data = {"identity": claimed, "authenticated": caller is not None, "suppressed": suppressed,
                    "name": caller.name if caller is not None else None,
                    "role": caller.role if caller is not None else None, "method": call.method,
                    "path": shown_path(call.path), "remote": call.remote[:100], "status": status,
                    "code": type(error).code, "reason": str(error)[:1000]}
            try:
                # the actor is an identity only when its signature verified: anyone can claim an id
                actor = f"identity:{caller.id}" if caller is not None else "unauthenticated"
                self.co.record_event("service.refused", data, actor=actor)
            except MsigvaultError as e:  # the database is down: still answer the refusal
                log.error("could not audit a refusal: %s", type(e).code)
        return status, error_body(error)

    def _audit_wanted(self, error: MsigvaultError, caller: Optional[Enrolled], claimed: Optional[str],
                      remote: str) -> Optional[int]:
        """Whether to audit this refusal: None, or how many like it were not audited since the last one.

        Every refusal is audited, but a flood writes a bounded number of entries: unauthenticated
        refusals pass a token bucket per remote host and one for all hosts together, and one rate-limit
        refusal per identity per :data:`RATE_AUDIT_INTERVAL` is written."""
        with self._lock:
            if caller is None:
                if not (self._audit_limiter.allow(remote.rsplit(":", 1)[0]) and self._audit_total.allow("*")):
                    self._suppressed += 1
                    return None
                suppressed, self._suppressed = self._suppressed, 0
                return suppressed
            if not isinstance(error, RateLimited):
                return 0
            now = time.monotonic()
            last, count = self._rate_audited.get(caller.id, (-1e9, 0))
            if now - last < RATE_AUDIT_INTERVAL:
                self._rate_audited[caller.id] = (last, count + 1)
                return None
            self._rate_audited[caller.id] = (now, 0)
            return count

    def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned < self.config.prune_every:
            return
        self._pruned = now
        self.store.prune_nonces(int(time.time()) - 2 * self.config.window)

    # -- routes -------------------------------------------------------------------------------

    def coordinator_record(self, caller: Optional[Enrolled], call: Call) -> "tuple[int, dict[str, Any]]":
        return 200, {"id": self.id, "name": self.record.name, "network": self.record.network,
                     "record": _b64(self.record.to_bytes())}

    def whoami(self, caller: Optional[Enrolled], call: Call) -> "tuple[int, dict[str, Any]]":
        who = _need(caller)
        vaults = self.store.site_vaults(who.record) if who.role == "keyholder-site" else {}
        return 200, {"id": who.id, "name": who.name, "role": who.role, "vaults": vaults}

    def pending(self, caller: Optional[Enrolled], call: Call) -> "tuple[int, dict[str, Any]]":
        who = _need(caller)
        _no_body(call)
        items = []
        for sid, fp in self.store.pending(who.record)[:MAX_PENDING]:
            session = self.co.get(sid)
            envelope = seal(session.psbt, sender=self.key, recipient=who.record, session_id=sid,
                            sequence=next_sequence(), content_type=ContentType.PSBT,
                            expires=session.request_expiry())
            items.append({"session": sid, "vault": session.vault_id, "vault_name": session.vault_name,
                          "fingerprint": fp, "memo": session.memo, "expires_at": session.expires_at,
                          "psbt_sha256": session.psbt_sha256, "envelope": _b64(envelope)})
        return 200, {"requests": items}

    def submit(self, caller: Optional[Enrolled], call: Call) -> "tuple[int, dict[str, Any]]":
        who = _need(caller)
        body = _json(call, {"envelope": str})
        data = _unb64(body["envelope"], "envelope")
        result = submit_envelope(self.co, data, identity=self.key, senders=[who.record], guard=self.guard)
        if isinstance(result, SubmissionResult):
            session = result.session or self.co.get(result.session_id)
            if session.status.value == "open" and session.signatures_needed == 0:
                session = self.co.advance(session.id, quiet=True)  # a process died before finalizing it
            return 200, {"kind": "partial-signature", "outcome": result.outcome, "signers": list(result.signers),
                         "psbt_sha256": result.psbt_sha256, "session": _session(session)}
        return 200, {"kind": "refusal", "outcome": "recorded", "signers": [], "psbt_sha256": None,
                     "session": _session(result)}

    def status(self, caller: Optional[Enrolled], call: Call) -> "tuple[int, dict[str, Any]]":
        who = _need(caller)
        _no_body(call)
        if who.role != "keyholder-site":
            return 200, {"session": _session(self.co.get(call.params["session_id"]))}
        # a site resolves ids (and prefixes) among its own vaults' sessions only: another vault's session
        # answers exactly as one that does not exist, and no id is echoed
        sid = self.store.resolve_session(call.params["session_id"], self.store.site_vaults(who.record))
        if sid is None:
            raise SessionNotFound("no session with this id among your vaults' sessions: check the id "
                                  "(GET /v1/requests lists the sessions waiting for you)")
        return 200, {"session": _session(self.co.get(sid))}

    def propose(self, caller: Optional[Enrolled], call: Call) -> "tuple[int, dict[str, Any]]":
        who = _need(caller)
        body = _json(call, {"vault": str, "psbt": str}, {"memo": str, "expires_in": int})
        expires = body.get("expires_in")
        if expires is not None and not 60 <= expires <= 90 * 86400:
            raise BadRequest("expires_in is a number of seconds from 60 to 90 days", field="expires_in")
        session = self.co.new_session(body["vault"], _unb64(body["psbt"], "psbt"), memo=body.get("memo", ""),
                                      proposed_by=f"{who.name} ({who.id})",
                                      expires_in=_dt.timedelta(seconds=expires) if expires else None)
        return 201, {"session": _session(session)}

    def cancel(self, caller: Optional[Enrolled], call: Call) -> "tuple[int, dict[str, Any]]":
        who = _need(caller)
        body = _json(call, {}, {"reason": str})
        session = self.co.cancel(call.params["session_id"], body.get("reason", ""), by=f"{who.name} ({who.id})")
        return 200, {"session": _session(session)}

    def audit_export(self, caller: Optional[Enrolled], call: Call) -> "tuple[int, dict[str, Any]]":
        _no_body(call)
        with tempfile.TemporaryDirectory(prefix="msigvault-export-") as tmp:
            path = Path(tmp) / "audit.jsonl"
            result = self.co.export_log(path)
            data = path.read_bytes()
        return 200, {"export": _b64(data), "entries": result.count, "head": result.head}


# -- helpers ----------------------------------------------------------------------------------


def _need(caller: Optional[Enrolled]) -> Enrolled:
    assert caller is not None  # every route but the public one authenticates first
    return caller


def _claimed(headers: Mapping[str, str]) -> Optional[str]:
    value = str(headers.get("msigvault-identity", ""))[:64].strip().lower()
    return value if len(value) == 32 and all(c in "0123456789abcdef" for c in value) else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name} is not valid base64 (RFC 4648, with padding)", field=name) from None


def _no_body(call: Call) -> None:
    if call.body:
        raise BadRequest(f"{call.method} {call.path} takes no body")


def _json(call: Call, required: "Mapping[str, type]", optional: "Mapping[str, type]" = {}) -> "dict[str, Any]":
    """The body as a JSON object with exactly these fields (optional ones may be absent or null)."""
    try:
        obj = json.loads(call.body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deeply nested arrays
        raise BadRequest(f"the body of {call.method} {call.path} is not JSON") from None
    if not isinstance(obj, dict):
        raise BadRequest("the body is a JSON object")
    unknown = set(obj) - set(required) - set(optional)
    missing = set(required) - set(obj)
    if unknown or missing:
        raise BadRequest(f"the body has fields {', '.join(sorted(required)) or '(none)'}"
                         + (f" (optional: {', '.join(sorted(optional))})" if optional else "")
                         + (f"; it has {len(unknown)} unknown" if unknown else "")  # never echo the body
                         + (f"; missing: {', '.join(sorted(missing))}" if missing else ""))
    for name, kind in {**required, **optional}.items():
        value = obj.get(name)
        if name in optional and value is None:
            obj.pop(name, None)
            continue
        if name in obj and (not isinstance(value, kind) or isinstance(value, bool)):
            raise BadRequest(f"{name} is a {'string' if kind is str else 'whole number'}", field=name)
    return obj


def shown_path(path: str) -> str:
    """A request path safe for a log line or a message: at most 200 characters, every character that is
    not printable ASCII percent-encoded (a decoded %0a or an escape sequence could forge log lines)."""
    return "".join(c if " " < c < "\x7f" else urllib.parse.quote(c, safe="") for c in str(path)[:200])


def _session(session: "Session") -> "dict[str, Any]":
    return dict(session.to_dict())




# -- ASGI -------------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge(f"the request body is larger than the service's limit of {limit:,} bytes: send less",
                           limit=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than the service's limit of {limit:,} bytes: send less",
                               limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _call(request: Request, body: bytes) -> Call:
    scope = request.scope
    target = bytes(scope.get("raw_path") or scope["path"].encode())
    if scope.get("query_string"):
        target += b"?" + bytes(scope["query_string"])
    client = request.client
    return Call(request.method, target, scope["path"], {k.lower(): v for k, v in request.headers.items()}, body,
                f"{client.host}:{client.port}" if client else "", dict(request.path_params))


def _endpoint(service: Service, spec: RouteSpec) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        if spec.roles is not None:
            early = await run_in_threadpool(service.precheck, _call(request, b""))
            if early is not None:  # refused before the body is read: close, do not drain it
                return JSONResponse(early[1], status_code=early[0], headers={"connection": "close"})
        try:
            body = await _read_body(request, service.config.max_body)
        except BodyTooLarge as e:
            status, payload = await run_in_threadpool(service.refuse, _call(request, b""), e, None)
            return JSONResponse(payload, status_code=status, headers={"connection": "close"})
        status, payload = await run_in_threadpool(service.handle, spec, _call(request, body))
        return JSONResponse(payload, status_code=status)

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    if code == 404:
        error: MsigvaultError = NotFound(f"no route {shown_path(request.url.path)}: see docs/service.md for the API")
    elif code == 405:
        error = BadRequest(f"{shown_path(request.method)[:16]} is not allowed on {shown_path(request.url.path)}")
    else:
        error = ServiceError("the request failed")
    return JSONResponse(error_body(error), status_code=code)


def create_app(coordinator: "Coordinator", identity: IdentityKey, *, network: str,
               config: ServiceConfig = ServiceConfig()) -> Starlette:
    """The ASGI application of the coordinator service (``coordinator`` signs with ``identity``'s key)."""
    service = Service(coordinator, identity, network=network, config=config)
    routes = [Route(spec.path, _endpoint(service, spec), methods=[spec.method]) for spec in ROUTES]
    app = Starlette(routes=routes, exception_handlers={404: _http_error, 405: _http_error})
    app.state.service = service
    return app


def open_app(database_url: str, identity: IdentityKey, *, network: str,
             config: ServiceConfig = ServiceConfig()) -> Starlette:
    """:func:`create_app` on the database at ``database_url`` (migrated to the newest schema)."""
    from ..coordinator.db import Database
    from ..coordinator.sessions import Coordinator

    coordinator = Coordinator(Database.open(database_url), Identity(identity.signing))
    return create_app(coordinator, identity, network=network, config=config)


CONFIG_ENV = "MSIGVAULT_SERVICE_CONFIG"


def from_environment() -> Starlette:
    """The app of one uvicorn worker process, configured by ``msigvault coordinator serve`` through
    $MSIGVAULT_SERVICE_CONFIG (JSON: db, identity file, network, limits) and the identity passphrase in
    $MSIGVAULT_IDENTITY_PASSPHRASE."""
    import os

    from ..keys.keystore import read_passphrase

    cfg = json.loads(os.environ[CONFIG_ENV])
    key = IdentityKey.load(cfg["identity"], read_passphrase(prompt="", env_var="MSIGVAULT_IDENTITY_PASSPHRASE"))
    limits = ServiceConfig(max_body=cfg["max_body"], window=cfg["window"], rate=cfg["rate"], burst=cfg["burst"])
    return open_app(cfg["db"], key, network=cfg["network"], config=limits)
