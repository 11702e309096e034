"""The offline commands (intake prepare, intake sign) load nothing online: no backend, no database
layer, no HTTP client. The air-gapped laptop needs only keys/, policy/, psbt/ and the lifecycle's
offline modules."""

from __future__ import annotations

import subprocess
import sys

from msigvault.regtest import RegtestChain

from .conftest import build_plan, secret_key, wif

ONLINE = ("msigvault.backends", "msigvault.coordinator.db", "msigvault.coordinator.sessions", "sqlalchemy",
          "alembic", "httpx", "bitcoinlib", "psycopg", "msigvault.service")


def _run_offline(args: "list[str]", cwd) -> None:
    code = ("import sys\nfrom msigvault.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            f"bad = [m for m in sys.modules if m.startswith({ONLINE!r})]\n"
            "assert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_prepare_and_sign_import_nothing_online(tmp_path):
    source = tmp_path / "seized.txt"
    text = f"{wif(secret_key('offline'))}\n"
    source.write_text(text)
    _run_offline(["intake", "prepare", str(source), "-n", "regtest", "-o", str(tmp_path / "w.json")], tmp_path)
    with RegtestChain() as chain:
        chain.mine(110)
        b = build_plan(chain, text, {"wif0/p2wpkh": [40_000]})
    b.vault_file.save(tmp_path / "vault.json")
    (tmp_path / "plan.json").write_bytes(b.plan.to_bytes())
    _run_offline(["intake", "sign", str(tmp_path / "plan.json"), str(source), "--vault", str(tmp_path / "vault.json"),
                  "--policy-id", b.vault_file.vault.policy_id, "-o", str(tmp_path / "signed.json"), "--yes",
                  "--wipe-source"], tmp_path)
    assert (tmp_path / "signed.json").exists() and not source.exists()
