"""A coordinator in its own OS process, for tests/coordinator/test_processes.py (not a test module).

    python proc_worker.py '{"url": ..., "seed": ..., "mode": "submit" | "crash", ...}'

``submit``: open the database, write ``ready``, wait for ``go`` (so every process starts at the
same moment), then create the sessions in ``new`` and submit every file in ``files`` in order;
print one JSON object of outcomes. ``crash``: submit ``files`` with a fault hook that SIGKILLs
this process at the step ``step`` (with ``chain``: a regtest chain directory as the backend).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def _coordinator(cfg, **kwargs):
    from msigvault.coordinator.audit import Identity
    from msigvault.coordinator.db import Database
    from msigvault.coordinator.sessions import Coordinator

    return Coordinator(Database.open(cfg["url"]), Identity.from_seed(cfg["seed"].encode()), **kwargs)


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.001)


def submit(cfg) -> dict:
    from msigvault.coordinator.errors import SubmissionRefused

    co = _coordinator(cfg)
    co.get(cfg["session"])  # warm up: the vault is parsed before the start
    Path(cfg["ready"]).write_text("ready")
    _wait_for(Path(cfg["go"]))
    out: dict = {"pid": os.getpid(), "outcomes": [], "created": []}
    for psbt_file in cfg.get("new", []):
        s = co.new_session(cfg["vault"], Path(psbt_file).read_bytes(), memo=f"pid {os.getpid()}")
        out["created"].append(s.id)
    for name in cfg["files"]:
        try:
            r = co.submit(cfg["session"], Path(name).read_bytes())
            out["outcomes"].append(r.outcome)
        except SubmissionRefused:
            out["outcomes"].append("refused")
    return out


def crash(cfg) -> dict:
    backend = None
    if cfg.get("chain"):
        from msigvault.backends.regtest import RegtestBackend

        backend = RegtestBackend.open(cfg["chain"])

    def fault(step: str) -> None:
        if step == cfg["step"]:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no rollback handlers, no flush

    co = _coordinator(cfg, backend=backend, fault=fault)
    for name in cfg["files"]:
        co.submit(cfg["session"], Path(name).read_bytes())
    return {"pid": os.getpid(), "survived": True}


if __name__ == "__main__":
    config = json.loads(sys.argv[1])
    result = {"submit": submit, "crash": crash}[config["mode"]](config)
    print(json.dumps(result))
