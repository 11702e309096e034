"""A caller who is not enrolled, or whose timestamp is stale, is refused before the server reads its body:
nobody without an enrolled identity's id and a fresh timestamp makes the service buffer megabytes per
connection. A real server over TLS on 127.0.0.1, spoken to through a raw socket."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from msigvault.identity import IdentityKey
from msigvault.service.auth import sign_request


def _headers(key, world, *, timestamp=None) -> bytes:
    signed = sign_request(key, coordinator_id=world.coordinator.id.hex(), method="POST", target=b"/v1/envelopes",
                          body=b"x" * 200_000, timestamp=timestamp)
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in signed.items())


@pytest.mark.parametrize("who", ["stranger", "stale"])
def test_a_refused_caller_is_answered_without_sending_its_body(world, server, who):
    """Before: the server waited for all 200,000 announced bytes before looking at who sent them."""
    if who == "stranger":
        headers, code = _headers(IdentityKey.generate("stranger", "auditor"), world), b"service.unauthenticated"
    else:
        alice = world.sites[world.holders[0].label][0]
        headers, code = _headers(alice, world, timestamp=int(time.time()) - 3600), b"service.stale-request"
    context = ssl.create_default_context(cafile=str(world.pki.ca_cert))
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"POST /v1/envelopes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 200000\r\n" + headers + b"\r\n")  # the headers only: no body follows
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 ") and code in answer
