"""The site's client against a hostile coordinator server: an endless answer is refused once it passes the
client's limit, without reading (or holding) the rest; a malformed answer is a ServiceRefused, never a
KeyError or TypeError. A real TLS server on 127.0.0.1, in a thread."""

from __future__ import annotations

import socket
import ssl
import json
import threading

import pytest

from msigvault.identity import IdentityKey
from msigvault.service import client as client_module
from msigvault.service.client import ServiceClient
from msigvault.service.errors import ServiceRefused
from msigvault.testing.tls import make_test_pki

LIMIT = 256 * 1024
OFFERED = 48 * 1024 * 1024  # what the hostile server is willing to send


def _read_request(tls) -> None:
    """The whole request (headers and the body they announce): closing with unread bytes would reset it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            return
        body += chunk


class EndlessServer:
    """Answers one request with a JSON object that never ends (no Content-Length), counting what it sent."""

    def __init__(self, pki, *, declared: "int | None" = None) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.declared = declared
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                _read_request(tls)
                length = f"Content-Length: {self.declared}\r\n" if self.declared is not None else ""
                tls.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n"
                            .encode() + b'{"requests": [')
                chunk = b'"' + b"A" * 65534 + b'",'
                while self.sent < OFFERED:
                    tls.sendall(chunk)
                    self.sent += len(chunk)
        except OSError:
            pass  # the client hung up: what we want
        finally:
            self.listener.close()


@pytest.mark.parametrize("declared", [None, 10 ** 12])
def test_an_endless_answer_is_refused_at_the_limit(tmp_path, monkeypatch, declared):
    """Before: the client read the whole answer into memory, then compared its size with the limit."""
    monkeypatch.setattr(client_module, "MAX_RESPONSE", LIMIT)
    pki = make_test_pki(tmp_path / "pki")
    server = EndlessServer(pki, declared=declared)
    site = IdentityKey.generate("alice-site", "keyholder-site")
    coordinator = IdentityKey.generate("coordinator", "coordinator").record("regtest")
    with ServiceClient(f"https://127.0.0.1:{server.port}", site, ca=pki.ca_cert, coordinator=coordinator) as c:
        with pytest.raises(ServiceRefused, match="larger than"):
            c.pending()
    server.thread.join(timeout=30)
    assert not server.thread.is_alive()
    assert server.sent < 16 * LIMIT + 8 * 1024 * 1024  # the socket buffers, not the whole answer


class FixedServer(EndlessServer):
    """Answers one request with ``body`` (a complete JSON answer)."""

    def __init__(self, pki, body: bytes) -> None:
        self.body = body
        super().__init__(pki)

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                _read_request(tls)
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                            + str(len(self.body)).encode() + b"\r\nConnection: close\r\n\r\n" + self.body)
        except OSError:
            pass
        finally:
            self.listener.close()


@pytest.mark.parametrize("call, answer", [
    ("pending", {"requests": [{"session": 1}]}),
    ("pending", {"requests": "none"}),
    ("pending", {}),
    ("status", {"session": None}),
    ("status", {}),
    ("submit", {"kind": "partial-signature"}),
    ("submit", {"kind": "refusal", "outcome": "recorded", "signers": [1], "session": {"status": "open",
                                                                                     "signatures_needed": 1}}),
])
def test_a_malformed_answer_is_refused_not_a_crash(tmp_path, call, answer):
    """Before: a hostile server's answer without the expected fields raised KeyError or TypeError (a traceback)."""
    pki = make_test_pki(tmp_path / "pki")
    server = FixedServer(pki, json.dumps(answer).encode())
    site = IdentityKey.generate("alice-site", "keyholder-site")
    coordinator = IdentityKey.generate("coordinator", "coordinator").record("regtest")
    with ServiceClient(f"https://127.0.0.1:{server.port}", site, ca=pki.ca_cert, coordinator=coordinator) as c:
        with pytest.raises(ServiceRefused, match="msigvault coordinator"):
            {"pending": c.pending, "status": lambda: c.status("3fa1c0de"), "submit": lambda: c.submit(b"MSVE")}[call]()
    server.thread.join(timeout=30)


def test_site_pull_shows_a_hostile_servers_session_ids_escaped(tmp_path):
    """Before: the session id of a request the site refused was printed as the hostile server sent it, escape
    sequences included, on the site operator's terminal."""
    from click.testing import CliRunner

    from msigvault.cli import cli

    pki = make_test_pki(tmp_path / "pki")
    item = {"session": "s1\x1b[2J\x1b[Hall pulled", "vault": "00" * 32, "vault_name": "treasury",
            "fingerprint": "00000000", "memo": "", "expires_at": None, "psbt_sha256": "00" * 32,
            "envelope": "TVNWRQ=="}
    server = FixedServer(pki, json.dumps({"requests": [item]}).encode())
    site = IdentityKey.generate("alice-site", "keyholder-site")
    site.save(tmp_path / "site.identity", "pw", kdf_cost=2 ** 14)
    coordinator = IdentityKey.generate("coordinator", "coordinator").record("regtest")
    (tmp_path / "coordinator.record").write_bytes(coordinator.to_bytes())
    result = CliRunner().invoke(cli, ["site", "pull", "--identity", str(tmp_path / "site.identity"),
                                      "--url", f"https://127.0.0.1:{server.port}", "--ca", str(pki.ca_cert),
                                      "--coordinator", str(tmp_path / "coordinator.record"),
                                      "-o", str(tmp_path / "requests")],
                                env={"MSIGVAULT_IDENTITY_PASSPHRASE": "pw"}, catch_exceptions=False)
    server.thread.join(timeout=30)
    assert result.exit_code == 2 and "refused request of session s1" in result.output
    assert "\x1b" not in result.output and "s1\\x1b[2J" in result.output
