"""A backend's data is a claim: a server that inflates an amount, swaps a transaction or hides a
coin is caught (the previous transaction is fetched and checked; two backends are compared)."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from msigvault.backends import BackendDisagreement, BackendProtocolError, cross_check, scan_vault
from msigvault.backends.esplora import EsploraBackend


class LyingEsplora:
    """Forwards to an honest Esplora and rewrites its answers one way."""

    def __init__(self, upstream: str, lie: str, facts: dict):
        self.upstream, self.lie, self.facts = upstream, lie, facts
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                r = httpx.get(outer.upstream + self.path)
                body = outer.rewrite(self.path, r.content)
                self.send_response(r.status_code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def rewrite(self, path: str, body: bytes) -> bytes:
        if self.lie in ("inflate", "hide") and path.endswith("/utxo"):
            rows = json.loads(body)
            if self.lie == "inflate":
                rows = [{**r, "value": r["value"] + 1} for r in rows]
            else:
                rows = [r for r in rows if r["txid"] != self.facts["payment_txid"]]
            return json.dumps(rows).encode()
        if self.lie == "swap" and re.fullmatch(r"/tx/[0-9a-f]{64}/hex", path):
            return self.facts["payment"].hex().encode()
        return body

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_an_inflated_utxo_amount_is_caught_by_the_previous_transaction(history):
    node, vault, _h, facts = history
    with LyingEsplora(node.esplora_url, "inflate", facts) as liar, EsploraBackend(liar.url, "regtest") as b:
        with pytest.raises(BackendProtocolError) as e:
            scan_vault(vault, b)
    assert "the transaction itself says otherwise: do not trust this server" in str(e.value)


def test_a_swapped_transaction_is_caught_by_its_txid(history):
    node, vault, _h, facts = history
    with LyingEsplora(node.esplora_url, "swap", facts) as liar, EsploraBackend(liar.url, "regtest") as b:
        with pytest.raises(BackendProtocolError) as e:
            b.get_tx(facts["spend"].txid)
    assert f"asked for transaction {facts['spend'].txid} but the server sent {facts['payment_txid']}" in str(e.value)


def test_cross_checking_two_backends(history):
    node, vault, _h, facts = history
    with EsploraBackend(node.esplora_url, "regtest") as honest:
        truth = scan_vault(vault, honest)
    from msigvault.backends.core import CoreBackend

    with CoreBackend(node.rpc_url, "regtest", wallet="vault") as core:
        cross_check(truth, scan_vault(vault, core))  # agree: no error
    with LyingEsplora(node.esplora_url, "hide", facts) as liar, EsploraBackend(liar.url, "regtest") as b:
        hidden = scan_vault(vault, b)
    with pytest.raises(BackendDisagreement) as e:
        cross_check(truth, hidden)
    assert facts["payment_txid"] in str(e.value) and "only in the second: none" in str(e.value)
