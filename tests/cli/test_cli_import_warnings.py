"""vault import prints each import warning (code and message) and lists them in --json; the vault
file it writes can be used (show, address, export), inconsistencies and all."""

import json
import os
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "vectors" / "formats"


def run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    return subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_prints_and_lists_typed_warnings(tmp_path):
    sample = SAMPLES / "jade" / "multisig_file_jade.dat"
    proc = run("vault", "import", sample, "-o", "v.json", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    codes = [w["code"] for w in info["warnings"]]
    assert codes.count("origin-depth-mismatch") == 2 and "ignored-field" in codes
    assert {w["key"] for w in info["warnings"] if w["code"] == "origin-depth-mismatch"} == {1, 2}
    assert all(set(w) == {"code", "message", "key"} for w in info["warnings"])
    assert "warning [origin-depth-mismatch]: coldcard: key 1 (E3EBCC79)" in proc.stderr
    # the vault file it wrote reads back, with the same policy and addresses
    shown = run("vault", "show", "v.json", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["policy_id"] == info["policy_id"]
    addr = run("vault", "address", "v.json", "--json", cwd=tmp_path)
    assert json.loads(addr.stdout)[0]["address"] == info["first_receive_address"]


def test_import_then_export_electrum_and_specter_diy(tmp_path):
    sample = SAMPLES / "sparrow" / "specter-diy-export.txt"
    proc = run("vault", "import", sample, "-o", "v.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning [no-checksum]" in proc.stderr and "imported specter file" in proc.stdout
    diy = run("vault", "export", "v.json", "--format", "specter-diy", cwd=tmp_path)
    assert diy.returncode == 0, diy.stderr
    assert diy.stdout == sample.read_text()  # the vault's name came from the file: Sparrow Multisig
    el = run("vault", "export", "v.json", "--format", "electrum", "-o", "el.json", cwd=tmp_path)
    assert el.returncode == 0, el.stderr
    obj = json.loads((tmp_path / "el.json").read_text())
    assert obj["wallet_type"] == "2of3" and obj["x1/"]["xpub"].startswith("Zpub")
    back = run("vault", "import", "el.json", "-o", "v2.json", "--json", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["format"] == "electrum"


def test_encrypted_electrum_file_is_refused_with_exit_2(tmp_path):
    proc = run("vault", "import", SAMPLES / "sparrow" / "electrum-encrypted", "-o", "v.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert "encrypted" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "v.json").exists()
