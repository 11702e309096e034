"""The README's "A signing session with three keyholders" block, run line for line in bash with the
installed msigvault command: the custody engineer's ceremony through ``msigvault session ...``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from msigvault.coordinator.audit import verify_export_bytes
from msigvault.coordinator.errors import AuditError

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## A signing session with three keyholders"
PAYEE = bytes.fromhex("0014" + "11" * 20)  # bcrt1qzyg3...lgth6c in the README


def readme_block() -> str:
    text = README.read_text()
    assert HEADING in text, "the README lost its session ceremony"
    section = text[text.index(HEADING):]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start:section.index("```\n", start)]


def msigvault(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("msigvault")), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_readme_ceremony_runs_and_its_audit_export_catches_any_edit(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSIGVAULT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = "set -euo pipefail\n" + readme_block()
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # who signed, who refused, what was broadcast: the session's record
    shown = msigvault("session", "show", "rent-q3", "--vault", "vault.json", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    session = json.loads(shown.stdout)
    bob = (tmp_path / "bob.cosigner").read_text()[1:9]
    assert session["status"] == "confirmed" and session["memo"] == "Q3 rent" and len(session["signed"]) == 2
    assert {c["fingerprint"]: c["state"] for c in session["cosigners"]}[bob] == "refused"
    assert [s["outcome"] for s in session["submissions"]] == ["accepted", "accepted"]
    from msigvault.regtest import RegtestChain

    with RegtestChain(datadir=tmp_path / "chain") as chain:
        assert [(u.txid, u.amount) for u in chain.utxos(PAYEE)] == [(session["final_txid"], 20_000_000)]
    # the auditor's export: it verifies, and fails after any one-byte edit, naming where
    export = (tmp_path / "audit.jsonl").read_bytes()
    events = [json.loads(line)["event"] for line in export.splitlines()[1:]]
    assert events[-3:] == ["session.finalized", "session.broadcast", "session.confirmed"]
    assert "cosigner.refused" in events and events.count("submission.accepted") == 2
    assert verify_export_bytes(export).count == len(events)
    for i in range(0, len(export), max(1, len(export) // 400)):
        edited = bytearray(export)
        edited[i] ^= 0x01
        with pytest.raises(AuditError):
            verify_export_bytes(bytes(edited))
    edited = bytearray(export)
    edited[len(export) // 2] ^= 0x01
    (tmp_path / "edited.jsonl").write_bytes(bytes(edited))
    failed = msigvault("audit", "verify", "edited.jsonl", cwd=tmp_path)
    assert failed.returncode == 2 and "error:" in failed.stderr and "Traceback" not in failed.stderr
