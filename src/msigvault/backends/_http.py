"""One httpx client per backend: timeouts, bounded retries, a response size limit, mapped errors."""

from __future__ import annotations

from typing import Optional

from .base import (
    MAX_RESPONSE_BYTES,
    BackendAuthError,
    BackendError,
    BackendProtocolError,
    BackendServerError,
    BackendTimeout,
    BackendUnavailable,
    RetryPolicy,
    retryable,
)


class HttpTransport:
    """GET/POST against ``base_url`` with the backend's :class:`RetryPolicy`."""

    def __init__(self, base_url: str, where: str, policy: RetryPolicy, *,
                 auth: Optional[tuple[str, str]] = None, verify: bool = True):
        import httpx

        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.where = where
        self.policy = policy
        self.round_trips = 0
        self.client = httpx.Client(timeout=httpx.Timeout(policy.timeout), auth=auth, verify=verify,
                                   headers={"User-Agent": "msigvault"}, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, what: str, *, content: Optional[bytes] = None,
                json_body=None, headers: Optional[dict] = None, retry: bool = True,
                ok_statuses: tuple = (200,), parse=None):
        """(status, body), or ``parse(status, body)`` (run inside the retry loop: it may raise
        ``retryable(error)``); 4xx and ``ok_statuses`` are returned, other 5xx retried."""
        def once():
            status, body = self._once(method, path, what, content, json_body, headers, ok_statuses)
            return parse(status, body) if parse is not None else (status, body)

        if not retry:
            try:
                return once()
            except Exception as e:  # noqa: BLE001
                if hasattr(e, "error"):
                    raise e.error from None
                raise
        return self.policy.run(once)

    def _once(self, method, path, what, content, json_body, headers, ok_statuses):
        httpx = self._httpx
        self.round_trips += 1
        url = self.base_url + path
        try:
            with self.client.stream(method, url, content=content, json=json_body,
                                    headers=headers) as resp:
                body = _read_limited(resp, self.where, what)
                status = resp.status_code
        except httpx.TimeoutException:
            raise BackendTimeout(f"no answer within {self.policy.timeout:g} s", where=self.where,
                                 what=what) from None
        except httpx.RemoteProtocolError as e:
            raise retryable(BackendProtocolError(
                f"the server broke off or garbled its answer ({_short(e)})", where=self.where,
                what=what)) from None
        except (httpx.ConnectError, httpx.ReadError,
                httpx.WriteError, httpx.NetworkError) as e:
            raise BackendUnavailable(f"cannot reach the server ({_short(e)}); is it running?",
                                     where=self.where, what=what) from None
        except httpx.HTTPError as e:
            raise BackendUnavailable(f"HTTP failure ({_short(e)})", where=self.where,
                                     what=what) from None
        if status == 401 or status == 403:
            raise BackendAuthError(
                f"the server refused our credentials (HTTP {status}): check the user and "
                "password or the cookie file", where=self.where, what=what)
        if status >= 500 and status not in ok_statuses:
            raise retryable(BackendServerError(
                f"server error HTTP {status}: {body[:200].decode('utf-8', 'replace')}",
                code=status, where=self.where, what=what))
        return status, body


def _read_limited(resp, where: str, what: str) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise BackendProtocolError(f"answer of {declared} bytes is larger than the "
                                   f"{MAX_RESPONSE_BYTES:,}-byte limit", where=where, what=what)
    chunks, total = [], 0
    for chunk in resp.iter_bytes():
        total += len(chunk)
        if total > MAX_RESPONSE_BYTES:
            raise BackendProtocolError(f"answer larger than the {MAX_RESPONSE_BYTES:,}-byte limit",
                                       where=where, what=what)
        chunks.append(chunk)
    return b"".join(chunks)


def _short(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text[:160]


__all__ = ["HttpTransport", "BackendError"]
