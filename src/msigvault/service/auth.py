"""Signed requests: what a caller signs with its Ed25519 identity key, and how the service checks it.

Four headers carry the proof (docs/service.md, "Authentication")::

    Msigvault-Identity:  the caller's identity id (32 hex)
    Msigvault-Timestamp: Unix time in whole seconds (decimal)
    Msigvault-Nonce:     16 random bytes (32 hex), never reused
    Msigvault-Signature: Ed25519 signature (128 hex) over :func:`request_message`

The signed message binds a domain-separation tag, the coordinator's identity id (a request for one
coordinator is refused by another), the method, the path with its query, the body's SHA-256, the
timestamp and the nonce. This module needs only ``cryptography``: the client and the server share it.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Mapping, Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..identity.identity import IdentityKey
from .errors import StaleRequest, Unauthenticated

__all__ = ["REQUEST_TAG", "IDENTITY_HEADER", "TIMESTAMP_HEADER", "NONCE_HEADER", "SIGNATURE_HEADER",
           "SignedHeaders", "request_message", "sign_request", "parse_headers", "check_window", "verify_request",
           "RateLimiter"]

REQUEST_TAG = b"msigvault/service-request/v1\0"
IDENTITY_HEADER = "msigvault-identity"
TIMESTAMP_HEADER = "msigvault-timestamp"
NONCE_HEADER = "msigvault-nonce"
SIGNATURE_HEADER = "msigvault-signature"
MAX_TARGET = 2048  # path and query, bytes
_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_HEX128 = re.compile(r"[0-9a-f]{128}\Z")
_DIGITS = re.compile(r"[0-9]{1,12}\Z")


@dataclass(frozen=True)
class SignedHeaders:
    """The four authentication headers of one request, parsed."""

    identity_id: str
    timestamp: int
    nonce: str
    signature: bytes


def request_message(*, coordinator_id: str, method: str, target: bytes, body: bytes, timestamp: int,
                    nonce: str, identity_id: str) -> bytes:
    """The bytes a caller signs: the tag, then seven newline-separated fields (docs/service.md)."""
    fields = [coordinator_id.encode("ascii"), method.upper().encode("ascii"), bytes(target),
              hashlib.sha256(body).hexdigest().encode("ascii"), str(timestamp).encode("ascii"),
              nonce.encode("ascii"), identity_id.encode("ascii")]
    return REQUEST_TAG + b"\n".join(fields)


def sign_request(key: IdentityKey, *, coordinator_id: str, method: str, target: bytes, body: bytes,
                 timestamp: Optional[int] = None, nonce: Optional[str] = None) -> "dict[str, str]":
    """The authentication headers for one request by ``key`` (a fresh nonce and the current time by default)."""
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = os.urandom(16).hex() if nonce is None else nonce
    ident = key.id.hex()
    message = request_message(coordinator_id=coordinator_id, method=method, target=target, body=body,
                              timestamp=ts, nonce=nonce, identity_id=ident)
    return {IDENTITY_HEADER: ident, TIMESTAMP_HEADER: str(ts), NONCE_HEADER: nonce,
            SIGNATURE_HEADER: key.sign(message).hex()}


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """The authentication headers (names lower-case); Unauthenticated if one is missing or malformed."""
    values = {name: headers.get(name) for name in (IDENTITY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER,
                                                   SIGNATURE_HEADER)}
    missing = [name for name, v in values.items() if v is None]
    if missing:
        raise Unauthenticated(f"the request is not signed (missing header {', '.join(missing)}): sign every "
                              "request with your identity key (msigvault.service.client.ServiceClient does)")
    ident, ts, nonce, sig = (str(values[n]).strip() for n in (IDENTITY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER,
                                                               SIGNATURE_HEADER))
    if not _HEX32.match(ident):
        raise Unauthenticated("the identity header is not a 32-digit lower-case hex identity id")
    if not _DIGITS.match(ts):
        raise Unauthenticated("the timestamp header is not a Unix time in whole seconds")
    if not _HEX32.match(nonce):
        raise Unauthenticated("the nonce header is not 16 random bytes in lower-case hex (32 digits)")
    if not _HEX128.match(sig):
        raise Unauthenticated("the signature header is not a 64-byte Ed25519 signature in lower-case hex")
    return SignedHeaders(ident, int(ts), nonce, bytes.fromhex(sig))


def check_window(signed: SignedHeaders, *, now: float, window: int) -> None:
    """StaleRequest unless the request's timestamp is within ``window`` seconds of ``now``."""
    if abs(now - signed.timestamp) > window:
        raise StaleRequest(f"the request's timestamp is {int(now - signed.timestamp):+d} s from the server's clock, "
                           f"outside the {window} s window: set the clock right (NTP) and send a fresh request")


def verify_request(signed: SignedHeaders, signing_key: bytes, *, coordinator_id: str, method: str, target: bytes,
                   body: bytes, now: float, window: int) -> None:
    """Check the time window, then the signature; StaleRequest or Unauthenticated otherwise."""
    check_window(signed, now=now, window=window)
    message = request_message(coordinator_id=coordinator_id, method=method, target=target, body=body,
                              timestamp=signed.timestamp, nonce=signed.nonce, identity_id=signed.identity_id)
    try:
        Ed25519PublicKey.from_public_bytes(signing_key).verify(signed.signature, message)
    except (InvalidSignature, ValueError):
        raise Unauthenticated("the request's signature does not verify with the identity's key: it was forged or "
                              "changed on the way (or signed for another coordinator)") from None


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second on average, ``burst`` at once. Thread-safe; per
    process (with N workers an identity may get N times the rate).

    At most :attr:`max_keys` buckets are kept, whatever the keys (an attacker may spoof many): past that,
    buckets that have refilled are forgotten (they equal a new one), then the least recently used, down
    to half the cap, so the table stays bounded and each call costs O(1) amortized."""

    max_keys = 100_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = time.monotonic
        self._buckets: "dict[str, tuple[float, float]]" = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; False when its bucket is empty."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > self.max_keys:
                self._forget(now)
            return allowed

    def _forget(self, now: float) -> None:
        """Drop refilled buckets, then the least recently used, to at most half of :attr:`max_keys`."""
        keep = {k: v for k, v in self._buckets.items() if v[0] + (now - v[1]) * self.rate < self.burst}
        limit = max(1, self.max_keys // 2)
        if len(keep) > limit:
            keep = dict(sorted(keep.items(), key=lambda item: item[1][1])[-limit:])
        self._buckets = keep
