"""The whole ceremony driven only through the msigvault command, in subprocesses, with files.

Python API calls appear only to check results (the chain's balances).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from msigvault.regtest import RegtestChain

PASSPHRASES = {"alice": "alice passphrase", "bob": "bob passphrase", "carol": "carol passphrase"}


def msigvault(*args, cwd, passphrase=None, check=True, stdin=None):
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    if passphrase is not None:
        env["MSIGVAULT_PASSPHRASE"] = passphrase
    proc = subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, input=stdin, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"msigvault {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("ceremony")
    dirs = {name: root / name for name in (*PASSPHRASES, "coordinator")}
    for d in dirs.values():
        d.mkdir()
    for name in PASSPHRASES:
        msigvault("key", "new", f"{name}.key", "--skip-backup-check", cwd=dirs[name], passphrase=PASSPHRASES[name])
    return dirs


def copy(src: Path, dst_dir: Path) -> Path:
    dst = dst_dir / src.name
    dst.write_bytes(src.read_bytes())
    return dst


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_ceremony_through_the_cli(sites, script):
    coord = sites["coordinator"]
    for name in PASSPHRASES:
        msigvault("key", "cosigner", f"{name}.key", "-n", "regtest", "--script", script,
                  "-o", f"{name}-{script}.cosigner", cwd=sites[name], passphrase=PASSPHRASES[name])
        copy(sites[name] / f"{name}-{script}.cosigner", coord)
    vault = f"vault-{script}.json"
    out = msigvault("vault", "create", "-m", "2", *(f"{n}-{script}.cosigner" for n in PASSPHRASES),
                    "--script", script, "-n", "regtest", "-o", vault, "--json", cwd=coord)
    info = json.loads(out.stdout)
    assert info["threshold"] == 2 and info["n"] == 3 and info["script"] == script
    for name in PASSPHRASES:
        copy(coord / vault, sites[name])
        v = json.loads(msigvault("vault", "verify", vault, "--key", f"{name}.key", "--json", "--yes",
                                 cwd=sites[name], passphrase=PASSPHRASES[name]).stdout)
        assert v["policy_id"] == info["policy_id"] and v["registered"] is True
    chain = coord / f"chain-{script}"
    msigvault("regtest", "init", chain, cwd=coord)
    address = json.loads(msigvault("vault", "address", vault, "--index", "0", "--json", cwd=coord).stdout)[0]["address"]
    msigvault("regtest", "fund", chain, address, "1000000", "2500000", cwd=coord)
    msigvault("regtest", "utxos", chain, "--vault", vault, "-o", "utxos.json", "--force", cwd=coord)
    payee = "bcrt1q9czysk38atc47sw05yfg7p80m6p94a48rakthz"
    msigvault("psbt", "create", vault, "--utxos", "utxos.json", "--to", f"{payee}:3000000", "--fee-rate", "3",
              "-o", f"spend-{script}.psbt", "--format", "base64", "--force", cwd=coord)
    inspected = json.loads(msigvault("psbt", "inspect", vault, f"spend-{script}.psbt", "--json", cwd=coord).stdout)
    assert inspected["next_role"] == "signer"
    signed = []
    for name in ("carol", "bob"):
        copy(coord / f"spend-{script}.psbt", sites[name])
        out = msigvault("psbt", "sign", vault, f"spend-{script}.psbt", "--key", f"{name}.key", "--yes",
                        "-o", f"{name}-{script}.psbt", "--force", cwd=sites[name], passphrase=PASSPHRASES[name])
        assert "PAY" in out.stdout and "change back to vault" in out.stdout
        signed.append(copy(sites[name] / f"{name}-{script}.psbt", coord))
    msigvault("psbt", "combine", vault, signed[1].name, signed[0].name, "-o", "full.psbt", "--force", cwd=coord)
    final = json.loads(msigvault("psbt", "finalize", vault, "full.psbt", "-o", "final.psbt", "--force", "--json",
                                 cwd=coord).stdout)
    assert final["verified_by_kernel"]
    msigvault("broadcast", vault, "final.psbt", "--chain", chain, cwd=coord)
    with RegtestChain(datadir=chain) as c:
        assert c.balance(payee) == 3_000_000
        assert c.get_tx(final["txid"]) is not None


def test_sign_asks_for_confirmation_and_no_means_no(sites):
    coord = sites["coordinator"]
    if not (coord / "vault-wsh.json").exists():
        pytest.fail("runs after the wsh ceremony test in this module")
    site = sites["alice"]
    copy(coord / "spend-wsh.psbt", site)
    proc = msigvault("psbt", "sign", "vault-wsh.json", "spend-wsh.psbt", "--key", "alice.key", "-o", "no.psbt",
                     cwd=site, passphrase=PASSPHRASES["alice"], check=False, stdin="n\n")
    assert proc.returncode == 2 and "not signed" in proc.stderr
    assert not (site / "no.psbt").exists()
