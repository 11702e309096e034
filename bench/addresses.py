"""Addresses per second for a 2-of-3 wsh vault, msigvault vs embit's descriptor derivation.

Run: make bench   (or .venv/bin/python bench/addresses.py)
Both derive from the same three account xpubs on the same machine in the same run. msigvault
derives each cosigner's branch key once and only the leaf per index; embit re-derives per index.
"""

from __future__ import annotations

import platform
import time

from embit.descriptor import Descriptor
from embit.networks import NETWORKS

from msigvault import Vault
from msigvault.network import Network
from msigvault.testing.keyholders import TestKeyholder


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    net = Network.REGTEST
    cosigners = [TestKeyholder.from_label(x).cosigner("wsh") for x in ("alice", "bob", "carol")]
    desc = Vault.multisig(2, cosigners, script="wsh", network=net).descriptor(0, checksum=False)
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"{'addresses':>10} {'msigvault/s':>12} {'embit/s':>10} {'speed-up':>9}")
    for count in (1_000, 10_000):
        def ours():
            v = Vault.multisig(2, cosigners, script="wsh", network=net)  # cold caches each run
            return [v.address(i) for i in range(count)]

        def theirs():
            d = Descriptor.from_string(desc)
            n = NETWORKS["regtest"]
            return [d.derive(i).address(n) for i in range(count)]

        t_ours, a = best_of(ours)
        t_embit, b = best_of(theirs, repeat=1 if count > 1000 else 3)
        assert a == b, "msigvault and embit disagree on an address"
        print(f"{count:>10} {count / t_ours:>12,.0f} {count / t_embit:>10,.0f} {t_embit / t_ours:>8.1f}x")


if __name__ == "__main__":
    main()
