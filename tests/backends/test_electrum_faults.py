"""The Electrum backend against servers that misbehave: down, slow, truncated, malformed,
oversized, lying. Each is a scripted server on loopback; each failure is a clear BackendError."""

import json
import socket
import threading
import time

import pytest

from msigvault.backends import (
    BackendProtocolError,
    BackendServerError,
    BackendTimeout,
    BackendUnavailable,
    BroadcastRejected,
    RetryPolicy,
)
from msigvault.backends.electrum import (
    MAX_LINE,
    ElectrumBackend,
    normalize_fingerprint,
    scripthash,
    status_hash,
)
from msigvault.errors import MsigvaultError
from msigvault.regtest.chain import spend_anyone_can_spend

SCRIPT = bytes.fromhex("0014" + "33" * 20)
TXID = "aa" * 32
FAST = RetryPolicy(timeout=0.5, retries=1, backoff=0.01)


class Scripted:
    """A loopback server: ``answer(request) -> bytes | None`` for each request after
    server.version (answered as ElectrumX 1.6 unless ``version`` says otherwise)."""

    def __init__(self, answer, version=("FakeX 1.0", "1.6")):
        self.answer = answer
        self.version = version
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        f = conn.makefile("rwb")
        try:
            for line in f:
                request = json.loads(line)
                if isinstance(request, dict) and request["method"] == "server.version":
                    out = reply(request, list(self.version))
                else:
                    out = self.answer(request)
                if out is None:
                    continue
                close = isinstance(out, tuple)
                f.write(out[0] if close else out)
                f.flush()
                if close:  # (bytes, "close"): write, then hang up
                    break
        except (OSError, ValueError):
            pass
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def backend(self, policy=FAST, **kw):
        return ElectrumBackend("127.0.0.1", self.port, "regtest", policy=policy, **kw)

    def close(self):
        self.stopped = True
        self.sock.close()


def reply(request, result):
    return json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode() + b"\n"


def batch(request, fn):
    """Answer a batch array (or a single request) with ``fn(one) -> result``."""
    if isinstance(request, list):
        return json.dumps([{"jsonrpc": "2.0", "id": r["id"], "result": fn(r)} for r in request]).encode() + b"\n"
    return reply(request, fn(request))


@pytest.fixture
def scripted():
    servers = []

    def make(answer, **kw):
        servers.append(Scripted(answer, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_server_down():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    backend = ElectrumBackend("127.0.0.1", port, "regtest", policy=FAST)
    with pytest.raises(BackendUnavailable, match="cannot reach the server") as e:
        backend.tip()
    assert f"electrum+tcp://127.0.0.1:{port}" in str(e.value) and "is it running?" in str(e.value)


def test_a_slow_server_times_out_after_bounded_retries(scripted):
    server = scripted(lambda request: None)  # reads, never answers
    started = time.monotonic()
    with server.backend() as backend, pytest.raises(BackendTimeout, match="no complete answer in time"):
        backend.tip()
    assert server.connections == 2  # one attempt and one retry, each on a new connection
    assert time.monotonic() - started < 3


def test_a_server_that_drips_bytes_still_times_out(scripted):
    def drip(request):
        for _ in range(40):  # a byte every 50 ms never completes the line within the timeout
            time.sleep(0.05)
        return b"{" * 10
    server = scripted(drip)
    with server.backend(RetryPolicy(timeout=0.5, retries=0)) as backend, pytest.raises(BackendTimeout):
        backend.tip()


def test_a_truncated_answer(scripted):
    server = scripted(lambda r: (reply(r, {"hex": "00" * 80, "height": 1})[:30], "close"))
    with server.backend(RetryPolicy(timeout=2, retries=0)) as backend:
        with pytest.raises(BackendUnavailable, match="closed the connection in the middle of an answer"):
            backend.tip()


@pytest.mark.parametrize("answer,words", [
    (lambda r: b"this is not json\n", "not JSON"),
    (lambda r: b"42\n", "not a JSON-RPC message"),
    (lambda r: b"[" * 200_000 + b"\n", "not JSON"),  # nesting deeper than any parser's stack
    (lambda r: reply(r, {"hex": "00" * 79, "height": 1}), "a block header is 80 bytes, not 79"),
    (lambda r: reply(r, {"hex": "zz", "height": 1}), "does not have the Electrum protocol's shape"),
    (lambda r: reply(r, {"hex": "00" * 80, "height": -5}), "is not a count"),
    (lambda r: reply({"id": r["id"] + 1}, {"hex": "00" * 80, "height": 1}), "a request we did not send"),
    (lambda r: json.dumps({"jsonrpc": "2.0", "id": r["id"]}).encode() + b"\n", "neither a result nor an error"),
])
def test_malformed_answers(scripted, answer, words):
    server = scripted(answer)
    with server.backend(RetryPolicy(timeout=2, retries=0)) as backend:
        with pytest.raises(BackendProtocolError, match=words):
            backend.tip()


@pytest.mark.parametrize("rows,words", [
    ([{"tx_hash": TXID, "tx_pos": 0, "height": 5, "value": "lots"}], "is not an amount in sats"),
    ([{"tx_hash": TXID, "tx_pos": 0, "height": 5, "value": 21_000_001 * 10**8}], "is not an amount in sats"),
    ([{"tx_hash": "xyz", "tx_pos": 0, "height": 5, "value": 1}], "is not a txid"),
    ([{"tx_pos": 0, "height": 5, "value": 1}], "shape"),
    ({"not": "a list"}, "expected a list"),
])
def test_malformed_utxo_lists(scripted, rows, words):
    server = scripted(lambda r: batch(r, lambda one: rows))
    with server.backend() as backend, pytest.raises(MsigvaultError, match=words):
        backend.utxos([SCRIPT])


def test_a_line_over_the_limit_is_refused_before_parsing(scripted):
    chunk = b" " * (1 << 20)
    sent = []

    def flood(request):
        sent.append(1)
        return b'{"jsonrpc":"2.0","result":"' + chunk * 17  # 17 MiB, no end of line

    server = scripted(flood)
    with server.backend(RetryPolicy(timeout=10, retries=0)) as backend:
        with pytest.raises(BackendProtocolError, match=f"longer than the {MAX_LINE:,}-byte limit"):
            backend.tip()
        assert backend._conn is None  # the broken stream is dropped, never reused
    assert sent == [1]


def test_a_flood_of_announcements_costs_linear_time(scripted):
    """200,000 short lines (9 MiB) in one stream before the answer: read in bounded time, and
    only the answer counts."""
    note = b'{"jsonrpc":"2.0","method":"x.y","params":[]}\n'
    server = scripted(lambda r: note * 200_000 + reply(r, {"hex": "00" * 80, "height": 1}))
    started = time.monotonic()
    with server.backend(RetryPolicy(timeout=20, retries=0)) as backend:
        assert backend.tip().height == 1
    assert time.monotonic() - started < 10


def test_a_small_line_limit_is_honoured(scripted):
    server = scripted(lambda r: reply(r, {"hex": "00" * 80, "height": 1}))
    with server.backend(max_line=100) as backend:
        with pytest.raises(BackendProtocolError, match="longer than the 100-byte limit"):
            backend.tip()


def test_a_server_speaking_an_old_protocol_is_refused(scripted):
    server = scripted(lambda r: None, version=("OldX 1.2", "1.2"))
    with server.backend() as backend, pytest.raises(BackendProtocolError, match="chose protocol 1.2"):
        backend.tip()


def test_an_error_for_the_whole_request(scripted):
    server = scripted(lambda r: json.dumps({"jsonrpc": "2.0", "id": None, "error": {
        "code": -32600, "message": "excessive resource usage"}}).encode() + b"\n")
    with server.backend() as backend, pytest.raises(BackendServerError, match="excessive resource usage") as e:
        backend.utxos([SCRIPT])
    assert e.value.rpc_code == -32600


def test_a_server_error_answer_is_not_retried(scripted):
    calls = []

    def refuse(r):
        calls.append(r)
        return json.dumps({"jsonrpc": "2.0", "id": r["id"], "error": {"code": 1, "message": "no"}}).encode() + b"\n"

    server = scripted(refuse)
    with server.backend() as backend, pytest.raises(BackendServerError, match="answered an error: no"):
        backend.tip()
    assert len(calls) == 1


def test_a_lying_server_is_caught_by_the_txid(scripted, hx):
    other = spend_anyone_can_spend([_fake_coin()], [(SCRIPT, 1000)])
    server = scripted(lambda r: batch(r, lambda one: other.hex()))
    with server.backend() as backend, pytest.raises(BackendProtocolError, match="do not trust this server"):
        backend.get_tx(TXID)


def test_a_rejected_broadcast_gives_the_nodes_reason_without_the_raw_transaction(scripted):
    raw = spend_anyone_can_spend([_fake_coin()], [(SCRIPT, 1000)])
    message = f"the transaction was rejected by network rules.\n\nbad-txns-inputs-missingorspent\n[{raw.hex()}]"
    server = scripted(lambda r: json.dumps({"jsonrpc": "2.0", "id": r["id"], "error": {
        "code": 1, "message": message}}).encode() + b"\n")
    with server.backend() as backend, pytest.raises(BroadcastRejected) as e:
        backend.broadcast(raw)
    assert e.value.reason == "bad-txns-inputs-missingorspent" and raw.hex() not in str(e.value)


def test_announcements_between_answers_are_kept_for_poll_status(scripted):
    sh = scripthash(SCRIPT)
    status = status_hash([(TXID, 7)])

    def answer(r):
        note = json.dumps({"jsonrpc": "2.0", "method": "blockchain.scripthash.subscribe",
                           "params": [sh, status]}).encode() + b"\n"
        return note + batch(r, lambda one: None)

    server = scripted(answer)
    with server.backend() as backend:
        assert backend.subscribe([SCRIPT]) == {SCRIPT: None}
        assert backend.poll_status() == {SCRIPT: status}
        assert backend.poll_status() == {}


def test_status_hash_and_scripthash_follow_the_protocol():
    # the Electrum protocol's documented example: the script hash of P2PKH 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa
    script = bytes.fromhex("76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac")
    assert scripthash(script) == "8b01df4e368ea28f8dc0423bcf7a4923e3a12d307c875e47a0cfbf90b5c39161"
    assert status_hash([]) is None
    assert status_hash([(TXID, 5), ("bb" * 32, 0)]) == __import__("hashlib").sha256(
        f"{TXID}:5:{'bb' * 32}:0:".encode()).hexdigest()
    pin = "AB:" * 31 + "AB"
    assert normalize_fingerprint("sha256:" + pin) == bytes.fromhex("ab" * 32)


def _fake_coin():
    from msigvault.regtest.chain import ANYONE_CAN_SPEND_SCRIPT_PUBKEY
    from msigvault.types import Utxo

    return Utxo("cd" * 32, 0, 50_000, ANYONE_CAN_SPEND_SCRIPT_PUBKEY, 0, 0)


def test_a_dropped_connection_is_reopened_and_subscriptions_renewed(scripted):
    seen = []
    status = status_hash([(TXID, 9)])

    def answer(r):
        one = r[0] if isinstance(r, list) else r
        seen.append(one["method"])
        if one["method"] == "blockchain.scripthash.subscribe":
            out = batch(r, lambda x: status)
            return (out, "close") if seen.count(one["method"]) == 1 else out
        return reply(r, {"hex": "00" * 80, "height": 3})

    server = scripted(answer)
    with server.backend() as backend:
        assert backend.subscribe([SCRIPT]) == {SCRIPT: status}
        assert backend.tip().height == 3  # the first attempt meets the closed stream; the retry reconnects
        assert server.connections == 2
        assert seen == ["blockchain.scripthash.subscribe", "blockchain.scripthash.subscribe",
                        "blockchain.headers.subscribe"]
        assert backend.poll_status() == {SCRIPT: status}  # the renewed subscription's status


def test_answers_over_the_servers_response_limit_are_asked_again_in_smaller_batches(scripted):
    """aiorpcx answers the items of a batch past its response size limit with "response too
    large": the client asks those again in halved batches until each fits."""
    rows = [{"tx_hash": TXID, "tx_pos": 0, "height": 5, "value": 1_000}]

    def limited(r):
        r = r if isinstance(r, list) else [r]
        out = [{"jsonrpc": "2.0", "id": one["id"], "result": rows} if k < 3 else
               {"jsonrpc": "2.0", "id": one["id"], "error": {
                   "code": -32600, "message": "response too large (over 1,000 bytes"}}
               for k, one in enumerate(r)]
        return json.dumps(out if len(out) > 1 else out[0]).encode() + b"\n"

    server = scripted(limited)
    scripts = [bytes([0x51, k]) for k in range(10)]
    with server.backend(batch_size=10) as backend:
        coins = backend.utxos(scripts)
        assert [c.script_pubkey for c in coins] == scripts
        assert backend.round_trips == 1 + 1 + 2 + 1  # version; 10 -> 7 again in 5+2 -> 2 again


def test_a_single_answer_over_the_limit_is_an_error(scripted):
    server = scripted(lambda r: json.dumps({"jsonrpc": "2.0", "id": r["id"], "error": {
        "code": -32600, "message": "response too large (over 1,000 bytes"}}).encode() + b"\n")
    with server.backend() as backend, pytest.raises(BackendServerError, match="response too large"):
        backend.get_tx(TXID)
