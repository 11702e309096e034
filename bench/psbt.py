"""PSBT ceremony stages for a 2-of-3 wsh vault with N inputs, msigvault vs embit in the same run.

Run: .venv/bin/python bench/psbt.py [N ...]      (default N = 1 10 100 1000)
Every stage gets its own Vault object (cold derivation caches), as on separate machines.
Stages: create (coin selection + updater), sign (cosigner A, then B), combine, finalize, extract
(with libbitcoinkernel script verification when installed). embit does what it can do: sign
each cosigner with PSBT.sign_with, and finalize + extract with its own finalizer.
"""

from __future__ import annotations

import platform
import sys
import time
import tracemalloc

from embit.bip32 import HDKey
from embit.psbt import PSBT as EmbitPSBT

from msigvault import Vault
from msigvault.network import Network
from msigvault.psbt.combiner import combine
from msigvault.psbt.extractor import extract
from msigvault.psbt.finalizer import finalize
from msigvault.psbt.signer import sign
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

EXTERNAL = bytes.fromhex("0014") + bytes(range(20))


def timed(fn):
    """(result, seconds, peak traced bytes): timed without tracing, then traced once for memory."""
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, dt, peak


def run(n: int) -> list:
    net = Network.REGTEST
    holders = [TestKeyholder.from_label(x) for x in ("alice", "bob", "carol")]
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network=net)
    utxos = [synthetic_utxo(vault, 100_000, index=i, seed=f"bench{i}") for i in range(n)]
    desc = vault.descriptor()

    def fresh() -> Vault:
        """Each role runs on its own machine: a vault object with cold derivation caches."""
        return Vault.from_descriptor(desc, network=net)

    pay = 100_000 * n - 1_000 * n
    rows = []
    psbt, dt, peak = timed(lambda: fresh().create_psbt(utxos, [(EXTERNAL, pay)], fee_rate=1.0, change_index=0,
                                                      max_weight=None))
    rows.append(("create", dt, peak, None))
    (a, _), dt, peak = timed(lambda: sign(psbt, fresh(), holders[0].root))
    roots = [HDKey.from_string(h.root.to_base58()) for h in holders]
    _, edt, _ = timed(lambda: EmbitPSBT.parse(psbt.serialize()).sign_with(roots[0]))
    rows.append(("sign A", dt, peak, edt))
    (b, _), dt, peak = timed(lambda: sign(psbt, fresh(), holders[1].root))
    rows.append(("sign B", dt, peak, None))
    full, dt, peak = timed(lambda: combine([a, b], fresh()))
    rows.append(("combine", dt, peak, None))
    final, dt, peak = timed(lambda: finalize(full, fresh()))

    def embit_finalize():
        from embit.finalizer import finalize_psbt

        return finalize_psbt(EmbitPSBT.parse(full.serialize()))

    _, edt, _ = timed(embit_finalize)
    rows.append(("finalize", dt, peak, edt))
    tx, dt, peak = timed(lambda: extract(final, max_weight=None))  # N=1000 is above 400,000 WU
    rows.append(("extract+verify" if tx.verified_by_kernel else "extract", dt, peak, None))
    return rows


def main(sizes):
    print(f"machine: {platform.machine()} python {platform.python_version()}; 2-of-3 wsh")
    print(f"{'N':>5} {'stage':<15} {'seconds':>9} {'inputs/s':>10} {'peak MiB':>9} {'embit s':>9} {'speed-up':>8}")
    for n in sizes:
        run(min(n, 2))  # warm-up
        for stage, dt, peak, edt in run(n):
            extra = f"{edt:>9.4f} {edt / dt:>7.1f}x" if edt is not None else ""
            print(f"{n:>5} {stage:<15} {dt:>9.4f} {n / dt:>10,.0f} {peak / 2**20:>9.1f} {extra}")


if __name__ == "__main__":
    main([int(x) for x in sys.argv[1:]] or [1, 10, 100, 1000])
