"""The Electrum protocol (ElectrumX, Fulcrum, electrs) over TCP or TLS, standard library only.

JSON-RPC 2.0, one message per line. The client negotiates protocol 1.4 to 1.6 with
``server.version`` (1.7 drops the ``blockchain.scripthash.*`` methods), asks per-script
questions in JSON-RPC batch arrays of at most ``batch_size`` requests (one round trip each),
and refuses any line longer than :data:`MAX_LINE` before parsing it. A script hash is the
SHA-256 of the scriptPubKey, byte-reversed, in hex.

TLS: ``ca_file`` verifies the server's certificate chain and host name; ``fingerprint`` pins
the SHA-256 of the server's certificate (DER) instead, for the self-signed certificates most
Electrum servers use; neither: the system's trusted CAs.

Watching: :meth:`ElectrumBackend.subscribe` returns each script's status hash and
:meth:`ElectrumBackend.poll_status` the statuses the server announced since; :func:`status_hash`
recomputes a status from a script's history, so a caller can tell what changed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import select
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

from ..network import Network
from .base import (
    Backend,
    BackendError,
    BackendProtocolError,
    BackendServerError,
    BackendTimeout,
    BackendUnavailable,
    BroadcastRejected,
    ChainUtxo,
    FEE_TARGETS,
    FeeEstimates,
    HistoryItem,
    RetryPolicy,
    Tip,
    TxNotFound,
    check_txid,
    txid_of,
    verify_txid,
)

MAX_LINE = 16 * 1024 * 1024  # bytes in one message; a longer line is refused unparsed
DEFAULT_BATCH = 50  # requests in one batch array
MAX_BATCH = 1000
MAX_NOTIFICATIONS = 100_000  # queued announcements before the oldest are dropped
PROTOCOL_MIN, PROTOCOL_MAX = (1, 4), (1, 6)
CLIENT_NAME = "msigvault 0.1"
DEFAULT_PORTS = {"tcp": 50001, "ssl": 50002}
READ_CHUNK = 256 * 1024
MAX_SATS = 21_000_000 * 10**8


@dataclass(frozen=True)
class ServerInfo:
    """What ``server.version`` said: the server's software and the negotiated protocol."""

    software: str
    protocol: tuple[int, ...]


def scripthash(script_pubkey: bytes) -> str:
    """The Electrum script hash: SHA-256 of the scriptPubKey, byte-reversed, hex."""
    return hashlib.sha256(bytes(script_pubkey)).digest()[::-1].hex()


def status_hash(history: Sequence[tuple[str, int]]) -> Optional[str]:
    """A script's status from its history ``(txid, height)`` in the server's order (heights 0
    and -1 for mempool transactions, as the server reports them); None when there is none."""
    if not history:
        return None
    return hashlib.sha256("".join(f"{t}:{h:d}:" for t, h in history).encode()).hexdigest()


def normalize_fingerprint(text: str) -> bytes:
    """A SHA-256 certificate fingerprint from hex (colons, spaces, a ``sha256:`` prefix allowed)."""
    t = str(text).strip().lower()
    t = t[len("sha256:"):] if t.startswith("sha256:") else t
    t = t.replace(":", "").replace(" ", "")
    try:
        raw = bytes.fromhex(t)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BackendError(f"{text[:80]!r} is not a SHA-256 certificate fingerprint (64 hex "
                           "digits, colons allowed)", what="Electrum TLS pin")
    return raw


class _Lines:
    """One socket read as newline-delimited messages, each at most ``max_line`` bytes."""

    def __init__(self, sock: socket.socket, max_line: int, where: str):
        self.sock = sock
        self.max_line = max_line
        self.where = where
        self.buf = bytearray()
        self.start = 0  # where the next line begins in buf (consumed bytes are dropped in bulk)
        self.scanned = 0  # bytes of buf already searched for a newline (linear reads)

    def send(self, data: bytes, deadline: float, what: str) -> None:
        try:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            self.sock.sendall(data)
        except socket.timeout:
            raise BackendTimeout("the server did not take our request in time", where=self.where,
                                 what=what) from None
        except (OSError, ssl.SSLError) as e:
            raise BackendUnavailable(f"the connection broke while sending ({e})", where=self.where,
                                     what=what) from None

    def line(self, deadline: float, what: str) -> bytes:
        while True:
            end = self.buf.find(b"\n", max(self.scanned, self.start))
            if (len(self.buf) if end < 0 else end) - self.start > self.max_line:
                raise BackendProtocolError(
                    f"the server sent a message longer than the {self.max_line:,}-byte limit; "
                    "it was not parsed", where=self.where, what=what)
            if end >= 0:
                out = bytes(self.buf[self.start:end])
                self.start = self.scanned = end + 1
                return out
            self.scanned = len(self.buf)
            if self.start:  # drop consumed lines once, not after every line (linear in all)
                del self.buf[:self.start]
                self.scanned -= self.start
                self.start = 0
            self._fill(deadline, what)

    def _fill(self, deadline: float, what: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BackendTimeout("no complete answer in time", where=self.where, what=what)
        try:
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(READ_CHUNK)
        except socket.timeout:
            raise BackendTimeout("no complete answer in time", where=self.where, what=what) from None
        except (OSError, ssl.SSLError) as e:
            raise BackendUnavailable(f"the connection broke ({e})", where=self.where,
                                     what=what) from None
        if not chunk:
            if len(self.buf) > self.start:
                raise BackendUnavailable(
                    f"the server closed the connection in the middle of an answer "
                    f"({len(self.buf) - self.start} bytes, no end of line)", where=self.where, what=what)
            raise BackendUnavailable("the server closed the connection", where=self.where, what=what)
        self.buf += chunk

    def pending(self) -> bool:
        """Whether a message may be waiting (buffered, or readable on the socket)."""
        if self.buf.find(b"\n", self.start) >= 0:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True  # a broken socket: let the read say so

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class ElectrumBackend(Backend):
    """An Electrum server at ``host:port`` (``tls=True`` for ``electrum+ssl://``)."""

    name = "electrum"

    def __init__(self, host: str, port: Optional[int], network: "Network | str", *, tls: bool = False,
                 ca_file: Optional[str] = None, fingerprint: Optional[str] = None,
                 policy: RetryPolicy = RetryPolicy(), batch_size: int = DEFAULT_BATCH,
                 max_line: int = MAX_LINE):
        if not host:
            raise BackendError("an Electrum server needs a host", what="Electrum URL")
        if (ca_file or fingerprint) and not tls:
            raise BackendError("a CA file or certificate fingerprint needs electrum+ssl://",
                               what="Electrum URL")
        if not 1 <= int(batch_size) <= MAX_BATCH:
            raise BackendError(f"batch must be from 1 to {MAX_BATCH}", what="Electrum URL")
        self.host = host
        self.port = int(port) if port else DEFAULT_PORTS["ssl" if tls else "tcp"]
        self.network = Network.from_name(network)
        self.tls = tls
        self.ca_file = ca_file
        self._pin = normalize_fingerprint(fingerprint) if fingerprint else None
        self.policy = policy
        self.batch_size = int(batch_size)
        self.max_line = max_line
        scheme = "electrum+ssl" if tls else "electrum+tcp"
        self.where = f"Electrum {scheme}://{host}:{self.port}"
        self.round_trips = 0
        self.server: Optional[ServerInfo] = None
        self._conn: Optional[_Lines] = None
        self._next_id = 0
        self._lock = threading.RLock()
        self._subscribed: dict[str, bytes] = {}  # scripthash -> script
        self._announced: "deque[tuple[str, Any]]" = deque(maxlen=MAX_NOTIFICATIONS)

    # -- the connection ------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def _connection(self) -> _Lines:
        if self._conn is None:
            self._conn = self._open()
            try:
                self._negotiate()
                self._resubscribe()
            except BaseException:
                self.close()
                raise
        return self._conn

    def _open(self) -> _Lines:
        what = "connect"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.policy.timeout)
        except socket.timeout:
            raise BackendTimeout(f"no connection within {self.policy.timeout:g} s",
                                 where=self.where, what=what) from None
        except OSError as e:
            raise BackendUnavailable(f"cannot reach the server ({e.strerror or e}); is it running?",
                                     where=self.where, what=what) from None
        if self.tls:
            sock = self._wrap(sock)
        return _Lines(sock, self.max_line, self.where)

    def _wrap(self, sock: socket.socket) -> socket.socket:
        what = "TLS handshake"
        if self._pin is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the pin below is the check
        else:
            try:
                ctx = ssl.create_default_context(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as e:
                sock.close()
                raise BackendError(f"cannot read the CA file {self.ca_file} ({e})",
                                   where=self.where, what=what) from None
        try:
            wrapped = ctx.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as e:
            sock.close()
            raise BackendError(f"the server's certificate is not trusted ({e.verify_message}): "
                               "give the CA that signed it (ca=FILE) or pin its fingerprint",
                               where=self.where, what=what) from None
        except (OSError, ssl.SSLError) as e:
            sock.close()
            raise BackendUnavailable(f"TLS failed ({e}); is the port a TLS port?",
                                     where=self.where, what=what) from None
        if self._pin is not None:
            got = hashlib.sha256(wrapped.getpeercert(binary_form=True) or b"").digest()
            if not hmac.compare_digest(got, self._pin):
                wrapped.close()
                raise BackendError(
                    f"the server's certificate has fingerprint {got.hex()}, not the pinned one: "
                    "someone may be in the middle; check the server before changing the pin",
                    where=self.where, what=what)
        return wrapped

    def _negotiate(self) -> None:
        answer = self._round([("server.version", [CLIENT_NAME, [_v(PROTOCOL_MIN), _v(PROTOCOL_MAX)]])],
                             "server.version")[0]
        if isinstance(answer, _Failed):
            raise BackendProtocolError(
                f"the server refused protocol {_v(PROTOCOL_MIN)} to {_v(PROTOCOL_MAX)} "
                f"({_error_parts(answer.error)[1][:200]})", where=self.where, what="server.version")
        software, protocol = _shape(self.where, "server.version", lambda: (
            str(answer[0])[:100], tuple(int(x) for x in str(answer[1]).split("."))))
        if not PROTOCOL_MIN <= protocol[:2] <= PROTOCOL_MAX:
            raise BackendProtocolError(
                f"the server chose protocol {_v(protocol)}; this client speaks {_v(PROTOCOL_MIN)} "
                f"to {_v(PROTOCOL_MAX)}", where=self.where, what="server.version")
        self.server = ServerInfo(software, protocol)

    def _resubscribe(self) -> None:
        hashes = list(self._subscribed)
        for i in range(0, len(hashes), self.batch_size):
            chunk = hashes[i:i + self.batch_size]
            for sh, status in zip(chunk, self._round(
                    [("blockchain.scripthash.subscribe", [sh]) for sh in chunk], "subscribe")):
                self._announced.append((sh, status))

    # -- requests ------------------------------------------------------------------------------

    def call(self, method: str, *params: Any) -> Any:
        """One request, retried (with a new connection) after a transport failure."""
        return self.calls(method, [list(params)])[0]

    def calls(self, method: str, param_list: Sequence[Sequence[Any]], *,
              retry: bool = True) -> list[Any]:
        """The same method for each parameter list, in batch arrays of ``batch_size``."""
        out: list[Any] = []
        for i in range(0, len(param_list), self.batch_size):
            out += self._batch(method, [list(p) for p in param_list[i:i + self.batch_size]], retry)
        return out

    def _batch(self, method: str, params: list[list[Any]], retry: bool) -> list[Any]:
        """One batch; answers the server refused as too large for this batch's response are
        asked again in batches half the size (a single one too large stays an error)."""
        answers = self._with_retries(lambda: self._round([(method, p) for p in params], method), retry)
        too_big = [k for k, a in enumerate(answers) if _too_large(a)]
        if too_big and len(params) > 1:
            size = max(1, len(params) // 2)
            again = [params[k] for k in too_big]
            redone: list[Any] = []
            for j in range(0, len(again), size):
                redone += self._batch(method, again[j:j + size], retry)
            for k, a in zip(too_big, redone):
                answers[k] = a
        return answers

    def _with_retries(self, fn: Callable[[], list[Any]], retry: bool) -> list[Any]:
        def attempt() -> list[Any]:
            with self._lock:
                self._connection()
                try:
                    return fn()
                except (BackendUnavailable, BackendProtocolError):
                    self.close()  # a broken stream is never reused
                    raise

        if not retry:
            return attempt()
        return self.policy.run(attempt)

    def _round(self, requests: list[tuple[str, list[Any]]], what: str) -> list[Any]:
        """Send ``requests`` (one, or a batch array) and read their answers: one round trip."""
        conn = self._conn
        assert conn is not None
        ids = []
        payload = []
        for method, params in requests:
            self._next_id += 1
            ids.append(self._next_id)
            payload.append({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        body = payload[0] if len(payload) == 1 else payload
        deadline = time.monotonic() + self.policy.timeout
        self.round_trips += 1
        conn.send(json.dumps(body, separators=(",", ":")).encode() + b"\n", deadline, what)
        answers: dict[int, dict[str, Any]] = {}
        while len(answers) < len(ids):
            message = self._parse(conn.line(deadline, what), what)
            for m in message if isinstance(message, list) else [message]:
                self._take(m, ids, answers, what)
        return [self._result(answers[i], what) for i in ids]

    def _parse(self, line: bytes, what: str) -> Any:
        try:
            message = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BackendProtocolError(f"the server sent something that is not JSON: {line[:80]!r}",
                                       where=self.where, what=what) from None
        if not isinstance(message, (dict, list)) or message == []:
            raise BackendProtocolError(f"the server sent {type(message).__name__}, not a JSON-RPC "
                                       "message", where=self.where, what=what)
        return message

    def _take(self, m: Any, ids: list[int], answers: dict[int, dict[str, Any]], what: str) -> None:
        if not isinstance(m, dict):
            raise BackendProtocolError("a batch answer holds something that is not an object",
                                       where=self.where, what=what)
        if "method" in m and m.get("id") is None:  # an announcement
            params = m.get("params")
            if m["method"] == "blockchain.scripthash.subscribe" and isinstance(params, list) \
                    and len(params) == 2 and isinstance(params[0], str):
                self._announced.append((params[0], params[1]))
            return
        rid = m.get("id")
        if rid is None and isinstance(m.get("error"), dict):
            raise self._server_error(m["error"], what)  # the server refused the whole request
        if isinstance(rid, bool) or rid not in ids or rid in answers:
            raise BackendProtocolError(f"the server answered a request we did not send (id {rid!r})",
                                       where=self.where, what=what)
        answers[rid] = m

    def _result(self, m: dict[str, Any], what: str) -> Any:
        if m.get("error") is not None:
            return _Failed(m["error"])
        if "result" not in m:
            raise BackendProtocolError("an answer has neither a result nor an error",
                                       where=self.where, what=what)
        return m["result"]

    def _server_error(self, error: Any, what: str) -> BackendServerError:
        code, message = _error_parts(error)
        return BackendServerError(f"the server answered an error: {message[:300]}", code=code,
                                  where=self.where, what=what)

    def _ok(self, value: Any, what: str) -> Any:
        if isinstance(value, _Failed):
            raise self._server_error(value.error, what)
        return value

    def _shape(self, what: str, fn: Callable[[], Any]) -> Any:
        return _shape(self.where, what, fn)

    # -- the chain -----------------------------------------------------------------------------

    def genesis_hash(self) -> str:
        header = self._header(self._ok(self.call("blockchain.block.header", 0), "block header 0"),
                              "block header 0")
        return _hash(header)

    def tip(self) -> Tip:
        what = "blockchain.headers.subscribe"
        answer = self._ok(self.call(what), what)
        height, header = self._shape(what, lambda: (_count(answer["height"]), answer["hex"]))
        raw = self._header(header, what)
        return Tip(height, _hash(raw), int.from_bytes(raw[68:72], "little"))

    def _header(self, value: Any, what: str) -> bytes:
        raw: bytes = self._shape(what, lambda: bytes.fromhex(value))
        if len(raw) != 80:
            raise BackendProtocolError(f"a block header is 80 bytes, not {len(raw)}",
                                       where=self.where, what=what)
        return raw

    def fee_estimates(self, targets: Sequence[int] = FEE_TARGETS) -> FeeEstimates:
        what = "blockchain.estimatefee"
        targets = list(dict.fromkeys(int(t) for t in targets))
        rates = {}
        for t, value in zip(targets, self.calls(what, [[t] for t in targets])):
            btc_per_kvb = self._shape(what, lambda: _fee(self._ok(value, what)))
            if btc_per_kvb > 0:
                rates[t] = round(btc_per_kvb * 100_000, 3)  # BTC/kvB -> sat/vB
        return FeeEstimates(rates)

    # -- scripts ---------------------------------------------------------------------------

    def _per_script(self, method: str, script_pubkeys: Sequence[bytes]) -> dict[bytes, Any]:
        scripts = list(dict.fromkeys(map(bytes, script_pubkeys)))
        answers = self.calls(method, [[scripthash(s)] for s in scripts])
        return {s: self._ok(a, method) for s, a in zip(scripts, answers)}

    def utxos(self, script_pubkeys: Sequence[bytes]) -> list[ChainUtxo]:
        what = "blockchain.scripthash.listunspent"
        out = []
        for script, rows in self._per_script(what, script_pubkeys).items():
            out += self._shape(what, lambda: [
                ChainUtxo(check_txid(r["tx_hash"]), _count(r["tx_pos"]), _amount(r["value"]),
                          script, _height(r["height"])) for r in _rows(rows)])
        return out

    def history(self, script_pubkeys: Sequence[bytes]) -> dict[bytes, tuple[HistoryItem, ...]]:
        what = "blockchain.scripthash.get_history"
        return {script: self._shape(what, lambda: tuple(dict.fromkeys(
                    HistoryItem(check_txid(r["tx_hash"]), _height(r["height"])) for r in _rows(rows))))
                for script, rows in self._per_script(what, script_pubkeys).items()}

    def balances(self, script_pubkeys: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        """The server's (confirmed, unconfirmed) balance of each script; unconfirmed may be
        negative (a mempool spend). A claim: :func:`~msigvault.backends.scan.scan_vault`
        counts checked UTXOs instead."""
        what = "blockchain.scripthash.get_balance"
        return {s: self._shape(what, lambda: (_amount(b["confirmed"]), _signed(b["unconfirmed"])))
                for s, b in self._per_script(what, script_pubkeys).items()}

    # -- watching ------------------------------------------------------------------------------

    def subscribe(self, script_pubkeys: Sequence[bytes]) -> dict[bytes, Optional[str]]:
        """Subscribe to each script's status (None: no history yet); kept across reconnects."""
        what = "blockchain.scripthash.subscribe"
        scripts = list(dict.fromkeys(map(bytes, script_pubkeys)))
        with self._lock:
            statuses = self._per_script(what, scripts)
            for s in scripts:
                self._subscribed[scripthash(s)] = s
        return {s: self._shape(what, lambda: _status(v)) for s, v in statuses.items()}

    def poll_status(self, wait: float = 0.0) -> dict[bytes, Optional[str]]:
        """Statuses the server announced for subscribed scripts since the last poll, waiting up
        to ``wait`` seconds for the first one; the latest per script."""
        deadline = time.monotonic() + max(0.0, wait)
        with self._lock:
            conn = self._connection()
            try:
                while not self._announced:
                    if time.monotonic() >= deadline and not conn.pending():
                        break
                    message = self._parse(conn.line(max(deadline, time.monotonic() + 0.05),
                                                    "notifications"), "notifications")
                    for m in message if isinstance(message, list) else [message]:
                        self._take(m, [], {}, "notifications")
            except BackendTimeout:
                pass  # nothing announced within the wait
            except (BackendUnavailable, BackendProtocolError):
                self.close()
                raise
            out: dict[bytes, Optional[str]] = {}
            while self._announced:
                sh, status = self._announced.popleft()
                if sh in self._subscribed:
                    out[self._subscribed[sh]] = self._shape("notifications", lambda: _status(status))
        return out

    # -- transactions ------------------------------------------------------------------------

    def _raw_tx(self, txid: str) -> bytes:
        return self._tx_bytes(txid, self.call("blockchain.transaction.get", txid))

    def _tx_bytes(self, txid: str, value: Any) -> bytes:
        what = "blockchain.transaction.get"
        if isinstance(value, _Failed) and _not_found(value.error):
            raise TxNotFound(f"the server knows no transaction {txid}", where=self.where, what=what)
        text = self._ok(value, what)
        raw: bytes = self._shape(what, lambda: bytes.fromhex(text))
        return raw

    def get_txs(self, txids: Iterable[str]) -> dict[str, bytes]:
        ids = [check_txid(t) for t in dict.fromkeys(txids)]
        answers = self.calls("blockchain.transaction.get", [[t] for t in ids])
        return {t: verify_txid(self._tx_bytes(t, a), t, self.where) for t, a in zip(ids, answers)}

    def broadcast(self, raw_tx: bytes) -> str:
        txid = txid_of(raw_tx)
        what = "blockchain.transaction.broadcast"
        answer = self.call(what, bytes(raw_tx).hex())
        if isinstance(answer, _Failed):
            code, message = _error_parts(answer.error)
            raise BroadcastRejected(_reject_reason(message), code=code, where=self.where, txid=txid)
        if answer != txid:
            raise BackendProtocolError(f"the server answered {str(answer)[:70]!r} for {txid}",
                                       where=self.where, what=what)
        return txid


@dataclass(frozen=True)
class _Failed:
    """An error answer to one request of a batch."""

    error: Any


def _v(t: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in t)


def _shape(where: str, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except BackendError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise BackendProtocolError(f"the answer does not have the Electrum protocol's shape ({e})",
                                   where=where, what=what) from None


def _hash(header: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(header).digest()).digest()[::-1].hex()


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValueError(f"{value!r} is not a count")
    return value


def _amount(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SATS:
        raise ValueError(f"{value!r} is not an amount in sats")
    return value


def _signed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_SATS:
        raise ValueError(f"{value!r} is not an amount in sats")
    return value


def _height(value: Any) -> Optional[int]:
    """Electrum heights: positive in a block, 0 or -1 in the mempool."""
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < 2**31:
        raise ValueError(f"{value!r} is not a height")
    return value if value > 0 else None


def _fee(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1 <= value <= 1:
        raise ValueError(f"{value!r} is not a fee rate in BTC/kvB")
    return float(value)


def _rows(rows: Any) -> list[Any]:
    if not isinstance(rows, list):
        raise TypeError(f"expected a list, got {type(rows).__name__}")
    return rows


def _status(value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"{str(value)[:70]!r} is not a status hash")
    return value


def _error_parts(error: Any) -> tuple[Optional[int], str]:
    if isinstance(error, dict):
        code = error.get("code")
        return (code if isinstance(code, int) and not isinstance(code, bool) else None,
                str(error.get("message", ""))[:2000] or "no reason given")
    return None, str(error)[:2000] or "no reason given"


def _too_large(answer: Any) -> bool:
    """An error answer saying the batch's response grew over the server's limit (aiorpcx:
    "response too large (over N bytes)")."""
    return isinstance(answer, _Failed) and "response too large" in _error_parts(answer.error)[1]


def _not_found(error: Any) -> bool:
    _code, message = _error_parts(error)
    text = message.lower()
    return "no such mempool" in text or "'code': -5" in text or "not found" in text


def _reject_reason(message: str) -> str:
    """The node's words from ElectrumX's "the transaction was rejected by network rules.\\n\\n
    REASON\\n[RAW]"; other servers' messages as they are (without any raw transaction)."""
    lines = [ln.strip() for ln in message.splitlines()
             if ln.strip() and not ln.strip().startswith("[")]
    if len(lines) > 1 and lines[0].startswith("the transaction was rejected"):
        lines = lines[1:]
    return "; ".join(lines)[:300] or "no reason given"


__all__ = ["ElectrumBackend", "ServerInfo", "scripthash", "status_hash", "normalize_fingerprint",
           "MAX_LINE"]
