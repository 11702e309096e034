"""Cold-start time of the msigvault command, next to `python -c pass`.

Run: .venv/bin/python bench/startup.py [runs]
Each command runs in a new process; the table gives the median and the fastest of the runs.
`psbt inspect` is measured on a real 2-of-3 wsh vault file and a 10-input PSBT.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(cmd, runs, cwd):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def main(runs: int = 20):
    from msigvault import Vault
    from msigvault.network import Network
    from msigvault.testing.keyholders import TestKeyholder
    from msigvault.testing.utxos import synthetic_utxo
    from msigvault.vaultfile import VaultFile

    d = Path(tempfile.mkdtemp())
    holders = [TestKeyholder.from_label(x) for x in "abc"]
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in holders], network=Network.REGTEST)
    VaultFile(vault, "bench").save(d / "vault.json")
    utxos = [synthetic_utxo(vault, 100_000, index=i) for i in range(10)]
    psbt = vault.create_psbt(utxos, [(bytes.fromhex("0014") + bytes(20), 900_000)], fee_rate=1.0, change_index=0)
    (d / "spend.psbt").write_bytes(psbt.serialize())
    exe = str(Path(sys.executable).with_name("msigvault"))
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("msigvault --help", [exe, "--help"]),
        ("msigvault psbt inspect", [exe, "psbt", "inspect", "vault.json", "spend.psbt"]),
    ]
    print(f"{'command':<26} {'median ms':>10} {'min ms':>8}   ({runs} runs each)")
    for name, cmd in rows:
        med, low = measure(cmd, runs, d)
        print(f"{name:<26} {med * 1000:>10.0f} {low * 1000:>8.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
