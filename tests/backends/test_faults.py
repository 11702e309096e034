"""Fault tests: server down, slow, truncated or malformed answers, HTTP 5xx, wrong network.

Each is a clear BackendError (a MsigvaultError), retried a bounded number of times where a retry
can help, and the CLI writes nothing when a scan fails.
"""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from msigvault.backends import (
    BackendNetworkMismatch,
    BackendProtocolError,
    BackendServerError,
    BackendTimeout,
    BackendUnavailable,
    RetryPolicy,
    open_backend,
)
from msigvault.backends.base import GENESIS
from msigvault.backends.core import CoreBackend
from msigvault.backends.esplora import EsploraBackend
from msigvault.errors import MsigvaultError

FAST = RetryPolicy(timeout=0.5, retries=2, backoff=0.01)


class FaultServer:
    """A loopback HTTP server that misbehaves in one chosen way; counts the requests it got."""

    def __init__(self, mode: str):
        self.mode = mode
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                outer.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.handle(self, body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # the client hung up: expected
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def handle(self, h, body: bytes) -> None:
        if self.mode == "slow":
            time.sleep(2)
            return self._send(h, 200, b"{}")
        if self.mode == "truncated":
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.end_headers()
            h.wfile.write(b'{"result": 1, "err')
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.mode == "malformed":
            return self._send(h, 200, b"<html>not json</html>")
        if self.mode == "5xx":
            return self._send(h, 503, b"Service Unavailable")
        if self.mode == "huge":
            h.send_response(200)
            h.send_header("Content-Length", str(10**12))
            h.end_headers()
            return
        if self.mode == "mainnet":  # a well-behaved server of the wrong network
            if h.path.startswith("/block-height/0"):
                return self._send(h, 200, GENESIS["mainnet"].encode())
            req = json.loads(body)
            return self._send(h, 200, json.dumps({"result": GENESIS["mainnet"], "error": None,
                                                   "id": req["id"]}).encode())
        raise AssertionError(self.mode)

    @staticmethod
    def _send(h, status: int, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def backends_for(url: str):
    return [CoreBackend(url, "regtest", policy=FAST), EsploraBackend(url, "regtest", policy=FAST)]


def test_server_down_is_backend_unavailable_after_bounded_retries():
    url = f"http://127.0.0.1:{closed_port()}"
    for backend in backends_for(url):
        with backend, pytest.raises(BackendUnavailable) as e:
            backend.tip()
        assert "cannot reach the server" in str(e.value) and "127.0.0.1" in str(e.value)
        assert backend.round_trips == 1 + FAST.retries
        assert isinstance(e.value, MsigvaultError)


@pytest.mark.parametrize("mode,error,words", [
    ("slow", BackendTimeout, "no answer within 0.5 s"),
    ("truncated", BackendProtocolError, "broke off or garbled"),
    ("5xx", BackendServerError, "HTTP 503"),
])
def test_transient_faults_are_retried_then_reported(mode, error, words):
    with FaultServer(mode) as server:
        for backend in backends_for(server.url):
            before = server.requests
            with backend, pytest.raises(error) as e:
                backend.tip()
            assert words in str(e.value)
            assert server.requests - before == 1 + FAST.retries  # bounded: no more, no fewer


def test_malformed_answers_are_protocol_errors_without_retry():
    with FaultServer("malformed") as server:
        for backend in backends_for(server.url):
            before = server.requests
            with backend, pytest.raises(BackendProtocolError) as e:
                backend.tip()
            assert "not JSON" in str(e.value) or "shape" in str(e.value)
            assert server.requests - before == 1


def test_an_oversized_answer_is_refused_before_it_is_read():
    with FaultServer("huge") as server:
        with CoreBackend(server.url, "regtest", policy=FAST) as backend:
            with pytest.raises(BackendProtocolError) as e:
                backend.tip()
    assert "larger than" in str(e.value)


@pytest.mark.parametrize("kind", ["core", "esplora"])
def test_a_mainnet_server_for_a_regtest_vault_is_refused(kind):
    with FaultServer("mainnet") as server:
        url = f"{kind}+{server.url}"
        with pytest.raises(BackendNetworkMismatch) as e:
            open_backend(url, "regtest")
    assert "serves mainnet, but the vault is for regtest" in str(e.value)


def test_passwords_never_appear_in_errors():
    url = f"http://alice:s3cret-pw@127.0.0.1:{closed_port()}"
    with CoreBackend(url, "regtest", policy=RetryPolicy(timeout=0.5, retries=0)) as backend:
        with pytest.raises(BackendUnavailable) as e:
            backend.tip()
    assert "s3cret-pw" not in str(e.value) and "alice:***@" in str(e.value)
    assert "s3cret-pw" not in repr(backend.where)
