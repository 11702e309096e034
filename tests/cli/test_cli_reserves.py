"""msigvault proof ... and msigvault health ... driven through the command, in subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PASSPHRASES = {"alice": "alice pass", "bob": "bob pass", "carol": "carol pass"}
MSG = "Proof of control for Auditor Ltd, 2026-12-01, nonce 7f3a"


def msigvault(*args, cwd, passphrase=None, check=True):
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    if passphrase is not None:
        env["MSIGVAULT_PASSPHRASE"] = passphrase
    proc = subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"msigvault {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("reserves")
    for name, pw in PASSPHRASES.items():
        msigvault("key", "new", f"{name}.key", "--skip-backup-check", cwd=d, passphrase=pw)
        msigvault("key", "cosigner", f"{name}.key", "-n", "regtest", "--script", "wsh", "-o", f"{name}.cosigner",
                  cwd=d, passphrase=pw)
    msigvault("vault", "create", "-m", "2", *(f"{n}.cosigner" for n in PASSPHRASES), "--script", "wsh",
              "-n", "regtest", "-o", "vault.json", cwd=d)
    for name, pw in PASSPHRASES.items():
        msigvault("vault", "verify", "vault.json", "--key", f"{name}.key", "--yes", cwd=d, passphrase=pw)
    return d


def test_proof_of_control_through_the_cli(site: Path):
    made = json.loads(msigvault("proof", "create", "vault.json", "--message", MSG, "--index", "4",
                                "-o", "proof.psbt", "--json", cwd=site).stdout)
    for name in ("alice", "carol"):
        out = msigvault("proof", "sign", "vault.json", "proof.psbt", "--message", MSG, "--key", f"{name}.key",
                        "--yes", "-o", f"{name}-proof.psbt", cwd=site, passphrase=PASSPHRASES[name])
        assert "PROOF OF CONTROL: no coins move" in out.stdout and MSG in out.stdout
        assert made["address"] in out.stdout
    # the ordinary psbt sign shows the message too
    out = msigvault("psbt", "sign", "vault.json", "proof.psbt", "--key", "bob.key", "--yes", "-o", "bob-proof.psbt",
                    cwd=site, passphrase=PASSPHRASES["bob"])
    assert "PROOF OF CONTROL" in out.stdout and MSG in out.stdout and "PAY" not in out.stdout
    done = json.loads(msigvault("proof", "finalize", "vault.json", "alice-proof.psbt", "carol-proof.psbt",
                                "-o", "proof.json", "--json", cwd=site).stdout)
    assert done["verified_by_kernel"] and done["address"] == made["address"] and done["simple"]
    ok = json.loads(msigvault("proof", "verify", "--proof", "proof.json", "--vault", "vault.json", "--json",
                              cwd=site).stdout)
    assert [r["format"] for r in ok["results"]] == ["full", "simple"]
    assert all(r["vault_index"] == 4 for r in ok["results"])
    bad = msigvault("proof", "verify", "--proof", "proof.json", "--message", MSG + "!", "-n", "regtest",
                    cwd=site, check=False)
    assert bad.returncode == 2 and "invalid signature" in bad.stderr


def test_proof_sign_refuses_another_message(site: Path):
    msigvault("proof", "create", "vault.json", "--message", MSG, "-o", "other.psbt", "--force", cwd=site)
    out = msigvault("proof", "sign", "vault.json", "other.psbt", "--message", "a different message",
                    "--key", "alice.key", "--yes", "-o", "x.psbt", cwd=site, passphrase=PASSPHRASES["alice"],
                    check=False)
    assert out.returncode == 2 and "not a BIP322 proof" in out.stderr
    assert not (site / "x.psbt").exists()


def test_verify_a_bip322_vector_through_the_cli(site: Path):
    vectors = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "bip322.json").read_text())
    v = vectors["simple"][1]
    out = msigvault("proof", "verify", "-n", "mainnet", "--address", v["address"], "--message", v["message"],
                    "--signature", v["bip322_signatures"][0], cwd=site)
    assert out.stdout.startswith("VALID simple")


def test_key_health_check_through_the_cli(site: Path):
    msigvault("health", "challenge", "vault.json", "--date", "2026-12-01", "--index", "2", "-o", "challenges.json",
              cwd=site)
    for name in ("alice", "bob"):
        out = msigvault("health", "respond", "vault.json", "challenges.json", "--key", f"{name}.key", "--yes",
                        "-o", f"{name}-health.json", cwd=site, passphrase=PASSPHRASES[name])
        assert "2026-12-01" in out.stdout
    rep = json.loads(msigvault("health", "report", "vault.json", "challenges.json", "alice-health.json",
                               "bob-health.json", "--as-of", "2026-12-05", "-o", "report.json", "--json",
                               cwd=site).stdout)
    assert [k["status"] for k in rep["keyholders"]].count("passed") == 2
    missing = [k for k in rep["keyholders"] if k["status"] == "missing"]
    assert len(missing) == 1 and missing[0]["days_waiting"] == 4 and rep["all_passed"] is False
    assert json.loads((site / "report.json").read_text()) == {k: v for k, v in rep.items() if k != "recorded"}


def test_health_report_recorded_in_the_audit_log(site: Path):
    if not (site / "challenges.json").exists():
        pytest.fail("runs after the key-health CLI test in this module")
    out = json.loads(msigvault("health", "report", "vault.json", "challenges.json", "alice-health.json",
                               "--as-of", "2026-12-02", "--record", "--json", cwd=site).stdout)
    assert out["recorded"] is True
    verified = json.loads(msigvault("audit", "verify", "--vault", "vault.json", "--json", cwd=site).stdout)
    assert verified["ok"] is True and verified["entries"] >= 3  # log.created, vault.registered, health.reported
    from msigvault.coordinator.db import Database, default_url
    from msigvault.coordinator.sessions import Coordinator

    co = Coordinator(Database.open(default_url(site / "vault.json")), None)
    entries = [e for e in co.audit_entries() if e["event"] == "health.reported"]
    assert len(entries) == 1 and entries[0]["data"]["as_of"] == "2026-12-02"
    assert [k["status"] for k in entries[0]["data"]["keyholders"]].count("missing") == 2
