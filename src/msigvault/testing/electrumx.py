"""ElectrumX (the ``e-x`` package, 2.x) as a subprocess indexing a local regtest node, for tests.

    with RegtestNode() as node, ElectrumXServer(node, tmp_dir).start() as ex:
        ...                   # mine, broadcast through node.rpc_url; then
        ex.wait_synced()      # ElectrumX has indexed the node's tip and seen its mempool
        ElectrumBackend("127.0.0.1", ex.tcp_port, "regtest")

ElectrumX 2 requires a node that answers as Bitcoin Core 31 with ``txindex`` and
``txospenderindex`` (the local node does). Both ports listen on 127.0.0.1 only; peer discovery
and announcements are off. :meth:`start` fails (never silently) if the server does not come up.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from ..errors import ChainError

START_TIMEOUT = 60.0
POLL_MSEC = 200  # how often ElectrumX asks the node for new blocks and mempool changes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_command() -> list[str]:
    """The ``electrumx_server`` entry point next to this Python, else on PATH."""
    here = Path(sys.executable).parent / "electrumx_server"
    found = str(here) if here.exists() else shutil.which("electrumx_server")
    if not found:
        raise ChainError("electrumx_server is not installed: install the dev extra "
                         "(pip install -e '.[dev]', which brings e-x and plyvel)")
    return [found]


class ElectrumXServer:
    """ElectrumX for ``node`` (a started :class:`~msigvault.regtest.node.RegtestNode`; it logs in
    with ``node.rpc_url``'s credentials), its database and log in ``directory``; TLS too when
    given a certificate and key file. ``settings`` are further ElectrumX environment variables
    (e.g. ``{"COST_SOFT_LIMIT": "0", "COST_HARD_LIMIT": "0"}`` turns off its per-session
    throttling)."""

    def __init__(self, node: Any, directory: "str | os.PathLike[str]", *, certfile: Optional[str] = None,
                 keyfile: Optional[str] = None, settings: Optional[dict[str, str]] = None):
        self.node = node
        self.settings = dict(settings or {})
        self.directory = Path(directory)
        self.certfile, self.keyfile = certfile, keyfile
        self.tcp_port = free_port()
        self.ssl_port: Optional[int] = free_port() if certfile else None
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.log = self.directory / "electrumx.log"

    def environment(self) -> dict[str, str]:
        db = self.directory / "db"
        db.mkdir(parents=True, exist_ok=True)
        services = [f"tcp://127.0.0.1:{self.tcp_port}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SSL_", "SERVICES"))}
        if self.certfile:
            services.append(f"ssl://127.0.0.1:{self.ssl_port}")
            env.update(SSL_CERTFILE=str(self.certfile), SSL_KEYFILE=str(self.keyfile))
        env.update(COIN="Bitcoin", NET="regtest", DB_ENGINE="leveldb", ALLOW_ROOT="1",
                   DAEMON_URL=self.node.rpc_url + "/", DB_DIRECTORY=str(db),
                   SERVICES=",".join(services), REPORT_SERVICES="", PEER_DISCOVERY="off",
                   PEER_ANNOUNCE="", DAEMON_POLL_INTERVAL_BLOCKS=str(POLL_MSEC),
                   DAEMON_POLL_INTERVAL_MEMPOOL=str(POLL_MSEC), LOG_LEVEL="info")
        env.update(self.settings)
        return env

    def start(self) -> "ElectrumXServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(server_command(), env=self.environment(), stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self.wait_synced(timeout=START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def tip_height(self) -> Optional[int]:
        """The height ElectrumX serves, or None while its port does not answer."""
        try:
            with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=2) as s:
                f = s.makefile("rwb")
                for i, (method, params) in enumerate([("server.version", ["probe", "1.4"]),
                                                      ("blockchain.headers.subscribe", [])]):
                    f.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method,
                                        "params": params}).encode() + b"\n")
                    f.flush()
                    reply = json.loads(f.readline())
                return int(reply["result"]["height"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def wait_synced(self, height: Optional[int] = None, *, timeout: float = 30.0) -> None:
        """Wait until ElectrumX serves ``height`` (default: the node's tip) and has seen the
        node's mempool (one more poll interval)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise ChainError(f"ElectrumX exited with code {self.process.returncode}:\n{self._tail()}")
            want = self.node.chain.height if height is None else height
            if self.tip_height() == want:
                time.sleep(3 * POLL_MSEC / 1000)
                return
            if time.monotonic() > deadline:
                raise ChainError(f"ElectrumX did not reach height {want} within {timeout:g} s:\n"
                                 f"{self._tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> "ElectrumXServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
