"""``msigvault coordinator serve`` as a subprocess on a free loopback port over TLS, for tests and benches.

    pki = make_test_pki(tmp / "pki")                    # msigvault.testing.tls
    with ServiceProcess(db_url, tmp / "coordinator.identity", pki, log=tmp / "server.log",
                        passphrase="...") as server:
        ServiceClient(server.url, ca=pki.ca_cert, ...)  # msigvault.service.client

The process is the real CLI (``python -m msigvault``); :meth:`start` waits until the service answers
``GET /v1/coordinator`` over TLS with the test CA, and fails (never silently) with the end of the
server's log if it exits or does not come up in time. :meth:`stop` sends SIGTERM, then kills.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Optional, Sequence, Union

from .tls import TestPki

__all__ = ["ServiceProcess", "free_port", "PASSPHRASE_ENV"]

PASSPHRASE_ENV = "MSIGVAULT_IDENTITY_PASSPHRASE"  # how `coordinator serve` reads the identity's passphrase
START_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServiceProcess:
    """One ``coordinator serve`` process; ``args`` are extra options (``--workers 2``, limits, ...)."""

    def __init__(self, db_url: str, identity: Union[str, Path], pki: TestPki, *, log: Path,
                 passphrase: str, args: Sequence[str] = (), cwd: Optional[Path] = None,
                 stderr_log: Optional[Path] = None) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = Path(log)
        self.stderr_log = Path(stderr_log) if stderr_log is not None else None
        self._ca = pki.ca_cert
        self._command = [sys.executable, "-m", "msigvault", "coordinator", "serve", "--db", db_url,
                         "--identity", str(identity), "--tls-cert", str(pki.server_cert),
                         "--tls-key", str(pki.server_key), "--port", str(self.port), "-n", "regtest", *args]
        self._env = {**os.environ, PASSPHRASE_ENV: passphrase}
        self._cwd = cwd
        self._files: "list[IO[bytes]]" = []
        self.proc: "Optional[subprocess.Popen[bytes]]" = None

    def start(self) -> "ServiceProcess":
        out = open(self.log, "wb")
        err = open(self.stderr_log, "wb") if self.stderr_log is not None else None
        self._files = [f for f in (out, err) if f is not None]
        self.proc = subprocess.Popen(self._command, stdout=out, stderr=err if err is not None else subprocess.STDOUT,
                                     env=self._env, cwd=self._cwd)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import httpx

        assert self.proc is not None
        context = ssl.create_default_context(cafile=str(self._ca))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the coordinator service exited ({self.proc.returncode}): {self.logs()[-3000:]}")
            try:
                if httpx.get(self.url + "/v1/coordinator", verify=context, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the coordinator service did not start in {START_TIMEOUT:.0f} s: {self.logs()[-3000:]}")

    def logs(self) -> str:
        """Everything the process wrote so far (stdout, then stderr when kept apart)."""
        for f in self._files:
            if not f.closed:
                f.flush()
        text = self.log.read_text(errors="replace")
        if self.stderr_log is not None:
            text += self.stderr_log.read_text(errors="replace")
        return text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in self._files:
            f.close()

    def __enter__(self) -> "ServiceProcess":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
