"""Vault scanning: round trips and seconds per backend for N used addresses.

Run: .venv/bin/python bench/scan.py [N ...]      (default N = 100 10000)
A 2-of-3 wsh vault gets one coin at each of receive indexes 0..N-1 (10 per transaction)
on a local regtest node (msigvault regtest serve's engine, on loopback); each backend then runs
scan_vault() with the default gap limit of 20, fetching and checking every previous transaction.
Round trips are HTTP requests (a JSON-RPC batch counts once; for Electrum, a batch array against
ElectrumX indexing the node); bitcoinlib asks per address, so it runs only for N <= 1000.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("BCL_DATA_DIR", tempfile.mkdtemp(prefix="msigvault-bench-bitcoinlib-"))

from msigvault import Vault  # noqa: E402
from msigvault.backends import scan_vault  # noqa: E402
from msigvault.backends.base import txid_of  # noqa: E402
from msigvault.backends.core import CoreBackend  # noqa: E402
from msigvault.backends.esplora import EsploraBackend  # noqa: E402
from msigvault.backends.regtest import RegtestBackend  # noqa: E402
from msigvault.regtest.chain import ANYONE_CAN_SPEND_SCRIPT_PUBKEY, spend_anyone_can_spend  # noqa: E402
from msigvault.regtest.node import RegtestNode  # noqa: E402
from msigvault.testing.electrumx import ElectrumXServer  # noqa: E402
from msigvault.testing.keyholders import TestKeyholder  # noqa: E402

PER_TX = 10  # vault outputs per funding transaction: transactions of a realistic size
TXS_PER_BLOCK = 250
AMOUNT = 1_000
# ElectrumX throttles a session past its cost limits (sleeps, then fewer requests in flight): a
# 10,000-address scan under its defaults did not finish in 18 minutes. The bench measures the
# client, so the limits are off; docs/performance.md has the default-limit figures too.
NO_COST_LIMITS = {"COST_SOFT_LIMIT": "0", "COST_HARD_LIMIT": "0"}


def vault() -> Vault:
    holders = [TestKeyholder.from_label(f"bench-scan-{i}") for i in range(3)]
    return Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network="regtest")


def fund(node: RegtestNode, v: Vault, n: int) -> None:
    """One coin at each receive index 0..n-1, PER_TX per transaction."""
    chain = node.chain
    with node.state.lock:
        chain.mine(101)
        own = ANYONE_CAN_SPEND_SCRIPT_PUBKEY
        sources = -(-n // PER_TX)
        [coinbase] = [u for u in chain.utxos(own) if u.amount > 0][:1]
        each = (coinbase.amount - 1_000_000) // sources
        split = spend_anyone_can_spend([coinbase], [(own, each)] * sources)
        chain.submit([split])
        coins = [u for u in chain.utxos(own) if u.txid == txid_of(split)]
        txs = []
        for k, start in enumerate(range(0, n, PER_TX)):
            outs = [(v.derive(i).script_pubkey, AMOUNT) for i in range(start, min(n, start + PER_TX))]
            txs.append(spend_anyone_can_spend([coins[k]], outs + [(own, each - AMOUNT * len(outs) - 1_000)]))
        for b in range(0, len(txs), TXS_PER_BLOCK):
            chain.submit(txs[b:b + TXS_PER_BLOCK])
        node.state.sync()


def backends(node: RegtestNode, n: int, electrum_port: "int | None" = None):
    yield "core (scantxoutset)", lambda: CoreBackend(node.rpc_url, "regtest")
    yield "core (watch-only wallet)", lambda: CoreBackend(node.rpc_url, "regtest", wallet=f"bench{n}")
    yield "esplora (8 in flight)", lambda: EsploraBackend(node.esplora_url, "regtest")
    yield "regtest (in process)", lambda: RegtestBackend(node.chain, state=node.state)
    if electrum_port is not None:
        from msigvault.backends.electrum import ElectrumBackend

        yield "electrum (ElectrumX 2, batches of 50)", lambda: ElectrumBackend(
            "127.0.0.1", electrum_port, "regtest")
    if n <= 1000:
        from msigvault.backends.bitcoinlib_service import BitcoinlibBackend

        _bitcoinlib_providers(node)
        yield "bitcoinlib (esplora provider)", lambda: BitcoinlibBackend("bench.esplora", "regtest")


def _bitcoinlib_providers(node: RegtestNode) -> None:
    import json

    import bitcoinlib.services.services  # noqa: F401  (installs its default files first)

    with open(os.path.join(os.environ["BCL_DATA_DIR"], "providers.json"), "w") as f:
        json.dump({"bench.esplora": {
            "provider": "blockstream", "network": "regtest", "client_class": "BlockstreamClient",
            "provider_coin_id": "", "url": node.esplora_url + "/", "api_key": "", "priority": 10,
            "denominator": 100_000_000, "network_overrides": None}}, f)


def main(sizes: list[int]) -> None:
    print(f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores")
    print("| used addresses | backend | round trips | seconds | coins found |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for n in sizes:
        v = vault()
        with RegtestNode(fee_estimate=1.0) as node, tempfile.TemporaryDirectory() as ex_dir:
            fund(node, v, n)
            with ElectrumXServer(node, ex_dir, settings=NO_COST_LIMITS).start() as electrumx:
                for name, make in backends(node, n, electrumx.tcp_port):
                    with make() as backend:
                        t = time.perf_counter()
                        result = scan_vault(v, backend)
                        dt = time.perf_counter() - t
                    assert len(result.utxos) == n, (name, len(result.utxos))
                    print(f"| {n:,} | {name} | {result.round_trips:,} | {dt:.2f} | {len(result.utxos):,} |",
                          flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 10_000])
