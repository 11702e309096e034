"""``msigvault regtest serve``: a local regtest node on loopback that real clients can talk to.

It answers a documented subset of Bitcoin Core's JSON-RPC (:mod:`.node_rpc`) and Esplora's REST
API (:mod:`.node_esplora`) for a :class:`~msigvault.regtest.RegtestChain`, with a mempool and
mining on demand (``generatetoaddress``). Both servers listen on 127.0.0.1 only.

Why the standard library's ``http.server``: the node is a test fixture and a rehearsal tool with
a handful of clients; threads behind one lock are simple, start in milliseconds, need nothing
beyond the ``regtest`` extra, and stop cleanly (every open connection is shut down by
:meth:`RegtestNode.stop`). HTTP/1.1 keep-alive is supported, as Core's clients expect.

RPC authentication is HTTP basic auth, with a cookie file like Core's (``DIR/.cookie``,
``__cookie__:<random hex>``, mode 0600, removed on stop) or a fixed user and password.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

from ..errors import ChainError
from ..fileio import write_atomic
from .chain import RegtestChain
from .node_esplora import Esplora
from .node_rpc import (
    RPC_INTERNAL_ERROR,
    RPC_INVALID_REQUEST,
    RPC_METHOD_NOT_FOUND,
    RPC_PARSE_ERROR,
    CoreRpc,
    RpcError,
)
from .nodestate import NodeState

LOOPBACK = "127.0.0.1"
MAX_BODY = 32 * 1024 * 1024  # Core's MAX_SIZE for an RPC request body
IDLE_TIMEOUT = 30.0  # seconds a keep-alive connection may sit idle
COOKIE_USER = "__cookie__"
COOKIE_FILE = ".cookie"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, handler, node: "RegtestNode"):
        self.node = node
        self.connections: set = set()
        self.connections_lock = threading.Lock()
        super().__init__((LOOPBACK, port), handler)

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_now = list(self.connections)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server: _Server

    def log_message(self, fmt, *args):  # quiet unless the node was asked to log
        if self.server.node.verbose:
            sys.stderr.write("msigvault-regtest: " + (fmt % args) + "\n")

    def _send(self, status: int, content_type: str, body: bytes, extra: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:  # tell the client, so it does not reuse a socket we close
            self.send_header("Connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> Optional[bytes]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._send(411, "text/plain", b"Content-Length required")
            return None
        if int(length) > MAX_BODY:
            self.close_connection = True  # the body is left unread
            self._send(413, "text/plain", b"Request too large")
            return None
        return self.rfile.read(int(length))


class _RpcHandler(_Handler):
    def do_GET(self):
        self._send(405, "text/plain", b"JSONRPC server handles only POST requests")

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True)
        except ValueError:
            return False
        return any(hmac.compare_digest(given, ok) for ok in self.server.node.credentials())

    def do_POST(self):
        if not self._authorized():
            self.close_connection = True  # the request body is left unread
            self._send(401, "text/html", b"", {"WWW-Authenticate": 'Basic realm="jsonrpc"'})
            return
        body = self._body()
        if body is None:
            return
        path = urlsplit(self.path).path
        wallet = None
        if path.startswith("/wallet/"):
            wallet = unquote(path[len("/wallet/"):])
        elif path not in ("/", ""):
            self._send(404, "text/plain", b"")
            return
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            self._reply(500, _error_reply(None, RPC_PARSE_ERROR, "Parse error", False))
            return
        rpc: CoreRpc = self.server.node.rpc
        if isinstance(request, list):
            replies = [r for r in (self._one(rpc, req, wallet)[1] for req in request) if r is not None]
            self._reply(200, replies)
            return
        status, reply = self._one(rpc, request, wallet)
        if reply is None:  # a JSON-RPC 2.0 notification
            self._send(204, "application/json", b"")
            return
        self._reply(status, reply)

    def _one(self, rpc: CoreRpc, request: Any, wallet: Optional[str]) -> tuple[int, Any]:
        if not isinstance(request, dict):
            return 400, _error_reply(None, RPC_INVALID_REQUEST, "Invalid Request object", False)
        v2 = request.get("jsonrpc") == "2.0"
        rid = request.get("id")
        try:
            result = rpc.call(request.get("method"), request.get("params"), wallet)
        except RpcError as e:
            status = 200 if v2 else (404 if e.code == RPC_METHOD_NOT_FOUND else 500)
            return status, _error_reply(rid, e.code, e.message, v2)
        except ChainError as e:
            return (200 if v2 else 500), _error_reply(rid, RPC_INTERNAL_ERROR, str(e), v2)
        if v2 and "id" not in request:
            return 204, None
        if v2:
            return 200, {"jsonrpc": "2.0", "result": result, "id": rid}
        return 200, {"result": result, "error": None, "id": rid}

    def _reply(self, status: int, obj: Any) -> None:
        self._send(status, "application/json", json.dumps(obj).encode() + b"\n")


def _error_reply(rid: Any, code: int, message: str, v2: bool) -> dict:
    error = {"code": code, "message": message}
    if v2:
        return {"jsonrpc": "2.0", "error": error, "id": rid}
    return {"result": None, "error": error, "id": rid}


class _EsploraHandler(_Handler):
    def do_GET(self):
        self._dispatch("GET", b"")

    def do_POST(self):
        body = self._body()
        if body is not None:
            self._dispatch("POST", body)

    def _dispatch(self, method: str, body: bytes) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        try:
            status, content_type, answer = self.server.node.esplora.handle(method, path, body)
        except ChainError as e:
            status, content_type, answer = 500, "text/plain", str(e).encode()
        self._send(status, content_type, answer)


class RegtestNode:
    """The local regtest node: Core JSON-RPC and Esplora REST on 127.0.0.1.

    ``RegtestNode(datadir)`` serves the persisted chain in ``datadir`` (``None``: a temporary
    chain); ports 0 let the OS choose (read :attr:`rpc_port` / :attr:`esplora_port` after
    :meth:`start`). Without ``rpc_user``/``rpc_password`` a cookie file is written.
    """

    def __init__(self, datadir: "str | os.PathLike | None" = None, *, rpc_port: Optional[int] = 0,
                 esplora_port: Optional[int] = 0, rpc_user: Optional[str] = None,
                 rpc_password: Optional[str] = None, fee_estimate: Optional[float] = None,
                 txindex: bool = True, verbose: bool = False):
        if (rpc_user is None) != (rpc_password is None):
            raise ChainError("give both --rpc-user and --rpc-password, or neither (cookie auth)")
        self.datadir = Path(datadir) if datadir is not None else None
        self._ports = (rpc_port, esplora_port)
        self._user, self._password = rpc_user, rpc_password
        self._cookie: Optional[str] = None
        self.fee_estimate = fee_estimate
        self.txindex = txindex
        self.verbose = verbose
        self.chain: Optional[RegtestChain] = None
        self.state: Optional[NodeState] = None
        self.rpc: Optional[CoreRpc] = None
        self.esplora: Optional[Esplora] = None
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "RegtestNode":
        try:
            if self.datadir is not None and not (self.datadir / "msigvault-regtest.json").exists():
                raise ChainError(f"{self.datadir} is not a regtest chain directory: create one "
                                 f"with 'msigvault regtest init {self.datadir}'")
            self.chain = RegtestChain(datadir=self.datadir)
            if self.chain.height == 0:
                self.chain.mine(1)  # a block the kernel has written, so blocks can be read back
            self.state = NodeState(self.chain, fee_estimate=self.fee_estimate)
            self.state.txindex = self.txindex
            self.rpc = CoreRpc(self.state)
            self.esplora = Esplora(self.state)
            rpc_port, esplora_port = self._ports
            if self._user is None:
                self._write_cookie()
            if rpc_port is not None:
                self._serve(_Server(rpc_port, _RpcHandler, self))
            if esplora_port is not None:
                self._serve(_Server(esplora_port, _EsploraHandler, self))
        except OSError as e:
            self.stop()
            raise ChainError(f"cannot listen on {LOOPBACK}: {e}; choose another port (0 lets "
                             "the system choose)") from None
        except BaseException:
            self.stop()
            raise
        return self

    def _serve(self, server: _Server) -> None:
        self._servers.append(server)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                  name=f"msigvault-regtest-{server.server_address[1]}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _write_cookie(self) -> None:
        self._cookie = secrets.token_hex(32)
        if self.datadir is not None:
            write_atomic(self.cookie_file, f"{COOKIE_USER}:{self._cookie}".encode(),
                         secret=True, overwrite=True)

    def stop(self) -> None:
        """Stop both servers, close every connection, remove the cookie, close the chain."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
            server.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []
        if self.state is not None:
            with self.state.lock:
                self._close_chain()
        else:
            self._close_chain()
        if self._cookie is not None and self.datadir is not None:
            try:
                self.cookie_file.unlink()
            except FileNotFoundError:
                pass
        self._cookie = None

    def _close_chain(self) -> None:
        if self.chain is not None:
            self.chain.close()
            self.chain = None

    def __enter__(self) -> "RegtestNode":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    def credentials(self) -> list[bytes]:
        if self._user is not None:
            return [f"{self._user}:{self._password}".encode()]
        return [f"{COOKIE_USER}:{self._cookie}".encode()] if self._cookie else []

    @property
    def cookie_file(self) -> Path:
        if self.datadir is None:
            raise ChainError("a node on a temporary chain keeps its cookie in memory: use rpc_url")
        return self.datadir / COOKIE_FILE

    def _port(self, handler) -> int:
        for server in self._servers:
            if server.RequestHandlerClass is handler:
                return server.server_address[1]
        raise ChainError("that server is not running")

    @property
    def rpc_port(self) -> int:
        return self._port(_RpcHandler)

    @property
    def esplora_port(self) -> int:
        return self._port(_EsploraHandler)

    @property
    def rpc_url(self) -> str:
        """``http://user:password@127.0.0.1:port`` (the cookie's credentials by default)."""
        user, password = self.credentials()[0].decode().split(":", 1)
        return f"http://{user}:{password}@{LOOPBACK}:{self.rpc_port}"

    @property
    def esplora_url(self) -> str:
        return f"http://{LOOPBACK}:{self.esplora_port}"


def serve_forever(node: RegtestNode, announce) -> None:
    """Run ``node`` until interrupted (Ctrl-C or SIGTERM); ``announce(node)`` once listening."""
    import signal

    stop = threading.Event()

    def _on_signal(_signum, _frame):
        stop.set()

    previous = signal.signal(signal.SIGTERM, _on_signal)
    node.start()
    try:
        announce(node)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        node.stop()
