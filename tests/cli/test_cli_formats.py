"""vault export / vault import through the CLI, for every format msigvault writes, and for real
files other wallets wrote (tests/vectors/formats, sources in its README)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from msigvault import Vault
from msigvault.formats import FORMATS
from msigvault.network import Network
from msigvault.testing.keyholders import TestKeyholder
from msigvault.vaultfile import VaultFile

SAMPLES = Path(__file__).resolve().parent.parent / "vectors" / "formats"


def run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    return subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def vault_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    holders = [TestKeyholder.from_label(f"cli-fmt-{i}") for i in range(3)]
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in holders], network=Network.REGTEST)
    VaultFile(vault, "treasury").save(d / "vault.json")
    return d, vault


@pytest.mark.parametrize("fmt", ["descriptor", "descriptors", *FORMATS])
def test_export_then_import_gives_the_same_vault(vault_dir, fmt):
    d, vault = vault_dir
    proc = run("vault", "export", "vault.json", "--format", fmt, "-o", f"export.{fmt}", "--force", cwd=d)
    assert proc.returncode == 0, proc.stderr
    proc = run("vault", "import", f"export.{fmt}", "-n", "regtest", "-o", f"imported-{fmt}.json", "--force",
               "--json", cwd=d)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["policy_id"] == vault.policy_id
    assert info["first_receive_address"] == vault.address(0)


def test_import_real_coldcard_file(tmp_path):
    samples = sorted((SAMPLES / "coldcard").glob("export-*.txt"))
    assert samples, "Coldcard sample files are part of the repository"
    ok = 0
    for sample in samples:
        proc = run("vault", "import", sample, "-n", "testnet", "-o", tmp_path / f"{sample.stem}.json", "--json",
                   cwd=tmp_path)
        if proc.returncode == 0:
            info = json.loads(proc.stdout)
            assert info["format"] == "coldcard" and info["n"] >= 2
            ok += 1
        else:
            assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert ok == len(samples)  # Coldcard's own setup files all import


def test_import_refuses_garbage_with_one_line(tmp_path):
    (tmp_path / "x.txt").write_text("this is not a wallet file\n")
    proc = run("vault", "import", "x.txt", "-o", "v.json", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
