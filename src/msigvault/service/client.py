"""The client of the coordinator service: signs every request with an identity key, pins the server's CA.

    from msigvault.service.client import ServiceClient

    with ServiceClient("https://127.0.0.1:8443", site_key, ca="ca.pem") as client:
        for request in client.pending():             # PendingRequest: the PSBT sealed to this site
            opened = request.open(site_key, client.coordinator, guard)   # -> OpenedEnvelope (PSBT payload)
            ...                                      # sign offline, seal the partial signature
        client.submit(envelope_bytes)                # -> dict: outcome, signers, session status

Refusals raise :class:`ServiceRefused` (``remote_code`` is the server's error code, ``http_status`` its
status); a server that cannot be reached or whose certificate the pinned CA did not sign raises
:class:`ServiceUnreachable`. See docs/service.md ("The Python client").
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import httpx

from ..identity.envelope import OpenedEnvelope, ReplayGuard, open_envelope, seal
from ..identity.identity import IdentityKey, IdentityRecord
from .auth import sign_request
from .errors import ServiceRefused, ServiceUnreachable

__all__ = ["ServiceClient", "PendingRequest", "seal_submission", "seal_refusal"]

MAX_RESPONSE = 64 * 1024 * 1024


@dataclass(frozen=True)
class PendingRequest:
    """One signing request for this site: a session's unsigned PSBT, sealed to the site's identity."""

    session: str
    vault: str
    vault_name: str
    fingerprint: str
    memo: str
    expires_at: Optional[str]
    psbt_sha256: str
    envelope: bytes = field(repr=False)

    def open(self, key: IdentityKey, coordinator: IdentityRecord, guard: ReplayGuard) -> OpenedEnvelope:
        """Open the envelope (sealed by ``coordinator`` to ``key``); its payload is the unsigned PSBT."""
        return open_envelope(self.envelope, recipient=key, senders=coordinator, guard=guard)


class ServiceClient:
    """Signed requests to one coordinator service over TLS, trusting only the CA in ``ca`` (a PEM file).

    ``coordinator``: the coordinator's identity record, if the site has it pinned; otherwise it is read
    once from ``GET /v1/coordinator`` (over the pinned TLS connection) and must verify.
    """

    def __init__(self, url: str, identity: IdentityKey, *, ca: "str | Path", coordinator: Optional[IdentityRecord] = None,
                 timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.identity = identity
        try:
            context = ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as e:
            raise ServiceUnreachable(f"cannot read the CA certificate {ca}: {e}", path=str(ca)) from None
        self._http = httpx.Client(base_url=self.url, verify=context, timeout=timeout)
        self._coordinator = coordinator

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API ------------------------------------------------------------------------------

    @property
    def coordinator(self) -> IdentityRecord:
        """The coordinator's identity record (pinned, or fetched once and self-signature checked)."""
        if self._coordinator is None:
            answer = self._send("GET", "/v1/coordinator", signed=False)
            record = IdentityRecord.from_bytes(_unb64(answer.get("record")))
            record.verify()
            if record.role != "coordinator" or record.id.hex() != answer.get("id"):
                raise ServiceRefused("the service's coordinator record is not a coordinator's: refused")
            self._coordinator = record
        return self._coordinator

    def whoami(self) -> "dict[str, Any]":
        """This identity as the service sees it: id, name, role and (for a site) vault -> fingerprint."""
        return self._send("GET", "/v1/identity")

    def pending(self) -> "list[PendingRequest]":
        """The signing requests waiting for this site's cosigner (keyholder-site identities)."""
        items = self._send("GET", "/v1/requests").get("requests")
        if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
            raise ServiceRefused("the service's list of requests is not a list of objects: is it a msigvault "
                                 "coordinator?")
        text = ("session", "vault", "vault_name", "fingerprint", "memo", "psbt_sha256", "envelope")
        for r in items:
            if not all(isinstance(r.get(k), str) for k in text) or not isinstance(r.get("expires_at"), (str, type(None))):
                raise ServiceRefused("a request in the service's list lacks a field or has one of the wrong type: is "
                                     "it a msigvault coordinator?")
        return [PendingRequest(r["session"], r["vault"], r["vault_name"], r["fingerprint"], r["memo"],
                               r["expires_at"], r["psbt_sha256"], _unb64(r["envelope"])) for r in items]

    def submit(self, envelope: bytes) -> "dict[str, Any]":
        """Submit a sealed partial-signature or refusal envelope (keyholder-site identities)."""
        answer = self._send("POST", "/v1/envelopes", {"envelope": base64.b64encode(envelope).decode()})
        _session_of(answer)
        if not isinstance(answer.get("kind"), str) or not isinstance(answer.get("outcome"), str) or not (
                isinstance(answer.get("signers"), list) and all(isinstance(x, str) for x in answer["signers"])):
            raise ServiceRefused("the service's answer to a submission lacks kind, outcome or signers: is it a "
                                 "msigvault coordinator?")
        return answer

    def status(self, session_id: str) -> "dict[str, Any]":
        """A session's status (no PSBT): cosigner states, signatures needed, final txid."""
        return _session_of(self._send("GET", f"/v1/sessions/{_segment(session_id)}"))

    def propose(self, vault: str, psbt: bytes, *, memo: str = "", expires_in: Optional[int] = None) -> "dict[str, Any]":
        """Open a session for an unsigned PSBT of a registered vault (operator identities)."""
        body: "dict[str, Any]" = {"vault": vault, "psbt": base64.b64encode(psbt).decode(), "memo": memo}
        if expires_in is not None:
            body["expires_in"] = expires_in
        return _session_of(self._send("POST", "/v1/sessions", body))

    def cancel(self, session_id: str, reason: str = "") -> "dict[str, Any]":
        """Cancel an open or finalized session (operator identities)."""
        return _session_of(self._send("POST", f"/v1/sessions/{_segment(session_id)}/cancel", {"reason": reason}))

    def audit_export(self) -> bytes:
        """The audit log as a signed export bundle (auditor identities); check it with verify_export_bytes."""
        return _unb64(self._send("GET", "/v1/audit").get("export"))

    # -- transport ----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes = b"", *, headers: "Optional[dict[str, str]]" = None,
                signed: bool = True) -> httpx.Response:
        """One raw request (signed unless ``signed`` is false); the response as it came, its body read whole
        (ServiceRefused as soon as it passes :data:`MAX_RESPONSE` bytes: a hostile server cannot make the
        client hold an endless answer). For tests and tools."""
        request = self._http.build_request(method, path, content=body,
                                           headers={"content-type": "application/json", **(headers or {})})
        if signed:
            request.headers.update(sign_request(self.identity, coordinator_id=self.coordinator.id.hex(),
                                                method=method, target=request.url.raw_path, body=body))
        try:
            response = self._http.send(request, stream=True)
            try:
                body = _read_bounded(response, method, path)
            finally:
                response.close()
        except httpx.ConnectError as e:
            reason = str(e)
            if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate" in reason.lower():
                raise ServiceUnreachable(f"the server at {self.url} presented a certificate the pinned CA did not "
                                         "sign: it is not your coordinator (or the CA file is wrong); nothing was "
                                         "sent") from None
            raise ServiceUnreachable(f"cannot connect to {self.url}: {reason}; check the address and that the "
                                     "service runs") from None
        except httpx.HTTPError as e:
            raise ServiceUnreachable(f"the request to {self.url} failed: {type(e).__name__}: {e}") from None
        kept = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=kept, content=body, request=request)

    def _send(self, method: str, path: str, obj: "Optional[dict[str, Any]]" = None, *, signed: bool = True) -> "dict[str, Any]":
        body = b"" if obj is None else json.dumps(obj, separators=(",", ":")).encode()
        response = self.request(method, path, body, signed=signed)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ServiceRefused(f"the service answered {response.status_code} without a JSON object: is {self.url} "
                                 "a msigvault coordinator?", http_status=response.status_code)
        if response.status_code >= 400:
            found = answer.get("error")
            error: "dict[str, Any]" = found if isinstance(found, dict) else {}
            raise ServiceRefused(f"the service refused {method} {path} ({response.status_code} "
                                 f"{error.get('code', '?')}): {error.get('message', '')}",
                                 remote_code=str(error.get("code", "")), http_status=response.status_code)
        return answer


def _read_bounded(response: httpx.Response, method: str, path: str) -> bytes:
    """The (decoded) body, refused before it is read further once it passes MAX_RESPONSE bytes, or at once
    when its declared length does."""
    limit = MAX_RESPONSE
    declared = response.headers.get("content-length", "")
    too_large = ServiceRefused(f"the service's answer to {method} {path[:100]} is larger than {limit:,} bytes: "
                               "refused unread (is it a msigvault coordinator?)", http_status=response.status_code)
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _session_of(answer: "dict[str, Any]") -> "dict[str, Any]":
    """The answer's session object, with the fields a site shows; ServiceRefused if it has none."""
    session = answer.get("session")
    if not isinstance(session, dict) or not isinstance(session.get("status"), str) or not isinstance(
            session.get("signatures_needed"), int):
        raise ServiceRefused("the service's answer carries no session object: is it a msigvault coordinator?")
    return dict(session)


def _segment(session_id: str) -> str:
    """A session id as one path segment (percent-encoded: it cannot reach another route or add a query)."""
    return urllib.parse.quote(str(session_id), safe="")


def _unb64(text: object) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise ServiceRefused("the service's answer carries invalid base64: is it a msigvault coordinator?") from None


def seal_submission(site: IdentityKey, coordinator: IdentityRecord, session_id: str, fingerprint: str,
                    signed_psbt: bytes, *, sequence: int, expires: _dt.timedelta = _dt.timedelta(hours=1)) -> bytes:
    """A ``partial-signature`` envelope for :meth:`ServiceClient.submit` (the payload and statement of
    :func:`msigvault.coordinator.envelopes.submission_payload`)."""
    from ..coordinator.envelopes import submission_payload

    payload = submission_payload(site, session_id, fingerprint, signed_psbt)
    return seal(payload, sender=site, recipient=coordinator, session_id=session_id, sequence=sequence,
                content_type="partial-signature", expires=expires)


def seal_refusal(site: IdentityKey, coordinator: IdentityRecord, session_id: str, fingerprint: str, reason: str, *,
                 sequence: int, expires: _dt.timedelta = _dt.timedelta(hours=1)) -> bytes:
    """A ``refusal`` envelope for :meth:`ServiceClient.submit`."""
    from ..coordinator.envelopes import refusal_payload

    payload = refusal_payload(site, session_id, fingerprint, reason)
    return seal(payload, sender=site, recipient=coordinator, session_id=session_id, sequence=sequence,
                content_type="refusal", expires=expires)
