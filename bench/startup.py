"""Cold-start time of the msigvault command, next to `python -c pass` and `python -c "import click"`.

Run: .venv/bin/python bench/startup.py [runs] [--sign-inputs N]
Each command runs in a new process, with bytecode caches (warmed up once); the table gives the
median and the fastest of the runs.
`psbt inspect` and `psbt sign` run on a real registered 2-of-3 wsh vault (key file at the
default scrypt cost, vault verified and registered with it) and a PSBT of 10 inputs; `psbt sign`
is also run on N inputs (default 1,000, ten per funding transaction, full previous transactions),
next to the same work done in one process by the library (open the key file, unlock it: the
KDF; load the registered vault; parse; check; sign; write), so the CLI's overhead is the
difference.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

PASSPHRASE = "bench passphrase"


def measure(cmd, runs, cwd, env=None):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def psbt_of(vault, n):
    from msigvault.psbt import fields as F
    from msigvault.psbt.common import legacy_txid
    from msigvault.types import Utxo

    utxos = []
    for t in range(0, n, 10):
        scripts = [vault.derive_branch(0, t + j).script_pubkey for j in range(10)]
        prev = F.serialize_tx(2, [(hashlib.sha256(b"startup-%d" % t).digest(), 0, 0xFFFFFFFF)],
                              [(100_000, s) for s in scripts], 0)
        txid = legacy_txid(F.parse_tx(prev, "funding"))[::-1].hex()
        utxos += [Utxo(txid, j, 100_000, scripts[j], 0, t + j, prev) for j in range(min(10, n - t))]
    return vault.create_psbt(utxos, [(bytes.fromhex("0014") + bytes(20), 99_000 * n)], fee_rate=1.0,
                             change_index=0, max_weight=None)


def library_sign(d: Path, psbt_name: str) -> float:
    """The CLI's work for `psbt sign`, in this process: seconds."""
    from msigvault.keys.keystore import Keystore
    from msigvault.psbt.psbt import Psbt
    from msigvault.psbt.signer import prepare
    from msigvault.vaultfile import load_vault_file

    t = time.perf_counter()
    vf = load_vault_file(d / "vault.json")
    ks = Keystore.open(d / "bench.key")
    registered = vf.registered(ks.fingerprint)
    p = Psbt.parse((d / psbt_name).read_bytes())
    request = prepare(p, registered, fingerprint=bytes.fromhex(ks.fingerprint))
    root = ks.root_key(PASSPHRASE)
    signed, _ = request.sign(root)
    (d / "lib-signed.psbt").write_bytes(signed.serialize())
    return time.perf_counter() - t


def kdf_seconds(d: Path) -> float:
    from msigvault.keys.keystore import Keystore

    ks = Keystore.open(d / "bench.key")
    t = time.perf_counter()
    ks.root_key(PASSPHRASE)
    return time.perf_counter() - t


def main(runs: int = 20, sign_inputs: int = 1000):
    from msigvault.vaultfile import load_vault_file

    d = Path(tempfile.mkdtemp())
    exe = str(Path(sys.executable).with_name("msigvault"))
    # bytecode caches as an installed package has them, in a prefix of their own (this machine's
    # environment sets PYTHONDONTWRITEBYTECODE, which would compile every msigvault module on
    # every run while click's caches come from site-packages)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(MSIGVAULT_PASSPHRASE=PASSPHRASE, PYTHONPYCACHEPREFIX=str(d / "pycache"))
    others = [f"startup-{x}" for x in "bc"]
    from msigvault.testing.keyholders import TestKeyholder

    subprocess.run([exe, "key", "new", "bench.key", "--skip-backup-check"], cwd=d, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([exe, "key", "cosigner", "bench.key", "-n", "regtest", "-o", "a.cosigner"], cwd=d, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    for name, label in zip("bc", others):  # the other two cosigners' public records
        (d / f"{name}.cosigner").write_text(str(TestKeyholder.from_label(label).cosigner("wsh")) + "\n")
    subprocess.run([exe, "vault", "create", "-m", "2", "a.cosigner", "b.cosigner", "c.cosigner", "-n", "regtest",
                    "-o", "vault.json"], cwd=d, env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([exe, "vault", "verify", "vault.json", "--key", "bench.key", "--yes"], cwd=d, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    vault = load_vault_file(d / "vault.json").vault
    (d / "spend.psbt").write_bytes(psbt_of(vault, 10).serialize())
    (d / "big.psbt").write_bytes(psbt_of(vault, sign_inputs).serialize())
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"], runs),
        ('python -c "import click"', [sys.executable, "-c", "import click"], runs),
        ("msigvault --help", [exe, "--help"], runs),
        ("msigvault psbt inspect (10 in)", [exe, "psbt", "inspect", "vault.json", "spend.psbt"], runs),
        ("msigvault psbt sign (10 in)", [exe, "psbt", "sign", "vault.json", "spend.psbt", "--key", "bench.key",
                                         "--yes", "-o", "s10.psbt", "--force"], max(3, runs // 4)),
        (f"msigvault psbt sign ({sign_inputs} in)", [exe, "psbt", "sign", "vault.json", "big.psbt", "--key",
                                                     "bench.key", "--yes", "-o", "sbig.psbt", "--force"], 3),
        # the keyholder's derived-key record, written by the warm-up run (docs/keystore.md)
        (f"msigvault psbt sign ({sign_inputs} in), record", [exe, "psbt", "sign", "vault.json", "big.psbt", "--key",
                                                             "bench.key", "--yes", "-o", "rbig.psbt", "--force",
                                                             "--derived-keys", "bench.keys"], 3),
    ]
    for _, cmd, _ in rows:  # warm-up: fills the bytecode caches
        subprocess.run(cmd, cwd=d, check=True, stdout=subprocess.DEVNULL, env=env)
    print(f"{'command':<42} {'median ms':>10} {'min ms':>8}")
    results = {}
    for name, cmd, n in rows:
        med, low = measure(cmd, n, d, env)
        results[name] = low
        print(f"{name:<42} {med * 1000:>10.0f} {low * 1000:>8.0f}   ({n} runs)")
    lib = min(library_sign(d, "big.psbt") for _ in range(3))
    kdf = min(kdf_seconds(d) for _ in range(3))
    print(f"{'library: the same psbt sign (' + str(sign_inputs) + ' in)':<42} {'':>10} {lib * 1000:>8.0f}   "
          f"(in process; of which the KDF {kdf * 1000:.0f} ms)")
    click_ms = results['python -c "import click"']
    print(f"--help / import click: {results['msigvault --help'] / click_ms:.2f}x (fastest runs)")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = 1000
    if "--sign-inputs" in args:
        k = args.index("--sign-inputs")
        n = int(args[k + 1])
        del args[k:k + 2]
    main(int(args[0]) if args else 20, n)
