"""Coordinator service load: requests/s and latency of session status and of envelope submissions under
concurrent clients, through a real ``msigvault coordinator serve`` over TLS on 127.0.0.1.

Run: .venv/bin/python bench/service.py [--sessions N] [--clients C] [--status R] [--workers W]
     [--db URL | --postgres]
     (defaults: 100 sessions of a 2-of-3 wsh vault, 8 concurrent clients, 2,000 status requests, one
     worker, SQLite in a temporary directory). ``--postgres`` starts a throwaway PostgreSQL server
     (unix socket) as bench/sessions.py does. Sessions are created and every partial signature is
     signed and sealed before timing; what is timed is the HTTPS round trip: TLS, request signature
     check, nonce insert, the coordinator's work (for a submission: open the envelope, verify the
     signatures, store, audit, finalize on the second), the JSON answer. Clients run in this process
     (threads, one keep-alive connection each), so on a small machine they compete with the server.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


from msigvault import Network, Vault
from msigvault.coordinator.audit import Identity
from msigvault.coordinator.db import Database
from msigvault.coordinator.sessions import Coordinator
from msigvault.identity import IdentityKey
from msigvault.policy.registration import Registration
from msigvault.service.client import ServiceClient, seal_submission
from msigvault.service.store import ServiceStore, enroll_sites
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.service import ServiceProcess
from msigvault.testing.tls import make_test_pki
from msigvault.testing.utxos import synthetic_utxo
from msigvault.vaultfile import VaultFile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sessions import throwaway_postgres  # noqa: E402

PAYEE = bytes.fromhex("0014") + bytes(range(20))
PASSPHRASE = "bench service passphrase"


def prepare(root: Path, url: str, n: int):
    holders = [TestKeyholder.from_label(f"bench-svc-{k}") for k in range(3)]
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network=Network.REGTEST)
    vf = VaultFile(vault, "bench", registrations=tuple(Registration.create(vault, h.root, name="bench")
                                                      for h in holders))
    coordinator = IdentityKey.generate("coordinator", "coordinator")
    coordinator.save(root / "coordinator.identity", PASSPHRASE, kdf_cost=2 ** 14)
    sites = []
    for h in holders:
        key = IdentityKey.generate(f"{h.label}-site", "keyholder-site")
        sites.append((h, key, key.record("regtest", root=h.root, cosigner=h.cosigner("wsh"))))
    auditor = IdentityKey.generate("auditor", "auditor")
    co = Coordinator(Database.open(url), Identity(coordinator.signing))
    store = ServiceStore(co.db)
    enroll_sites(co, store, vf, [r for _, _, r in sites])
    store.enroll(co, auditor.record("regtest"))
    record = coordinator.record("regtest")
    envelopes = []  # (site key, envelope) in submission order: every site's copy of every session
    ids = []
    for i in range(n):
        utxo = synthetic_utxo(vault, 100_000, index=i % 900, seed=f"service{i}")
        psbt = vault.create_psbt([utxo], [(PAYEE, 50_000)], fee_rate=2.0, change_index=i % 900)
        sid = co.new_session(vf.vault.policy_id, psbt).id
        ids.append(sid)
        for h, key, _ in sites:
            raw = vault.sign(psbt, h.root)[0].serialize()
            envelopes.append((key, seal_submission(key, record, sid, h.fingerprint.hex(), raw, sequence=1)))
    co.db.close()
    return coordinator, [k for _, k, _ in sites], auditor, ids, envelopes


def serve(root: Path, url: str, workers: int) -> "tuple[ServiceProcess, Path]":
    pki = make_test_pki(root / "pki")
    server = ServiceProcess(url, root / "coordinator.identity", pki, log=root / "server.log", passphrase=PASSPHRASE,
                            args=["--rate", "1000000", "--burst", "1000000", "--workers", str(workers)])
    return server.start(), pki.ca_cert


def timed(jobs, clients: int, make_client, work) -> "tuple[float, list[float]]":
    """Run ``work(client, job)`` for every job on ``clients`` threads; (seconds, latencies)."""
    local = threading.local()
    latencies: "list[float]" = []
    made: list = []
    lock = threading.Lock()

    def run(job):
        if not hasattr(local, "client"):
            local.client = make_client(job)
            with lock:
                made.append(local.client)
        t = time.perf_counter()
        work(local.client, job)
        dt = time.perf_counter() - t
        with lock:
            latencies.append(dt)

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, jobs))
    seconds = time.perf_counter() - t
    for client in made:
        for c in (client.values() if isinstance(client, dict) else [client]):
            c.close()
    return seconds, latencies


def report(name: str, count: int, seconds: float, latencies: "list[float]") -> None:
    q = statistics.quantiles(latencies, n=100)
    print(f"{name:<28} {count:>6} in {seconds:6.2f} s: {count / seconds:7.1f}/s; latency p50 {q[49] * 1000:6.1f} ms, "
          f"p99 {q[98] * 1000:6.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--status", type=int, default=2000, help="status requests")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--db", default=None)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}; {args.clients} clients, "
          f"{args.workers} worker(s)")
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        if args.postgres:
            with throwaway_postgres() as url:
                run(root, url, args)
        else:
            run(root, args.db or f"sqlite:///{root}/bench.sqlite", args)


def run(root: Path, url: str, args) -> None:
    print(f"# database: {url.split(':')[0].split('+')[0]}")
    coordinator, site_keys, auditor, ids, envelopes = prepare(root, url, args.sessions)
    server, ca = serve(root, url, args.workers)
    base = server.url
    record = coordinator.record("regtest")
    try:
        seconds, lat = timed(range(args.status), args.clients,
                             lambda _: ServiceClient(base, auditor, ca=ca, coordinator=record),
                             lambda c, i: c.status(ids[i % len(ids)]))
        report("GET /v1/sessions/{id}", args.status, seconds, lat)
        by_site = {k.id: k for k in site_keys}

        def submit(clients, job):
            key, envelope = job
            if key.id not in clients:
                clients[key.id] = ServiceClient(base, by_site[key.id], ca=ca, coordinator=record)
            clients[key.id].submit(envelope)

        seconds, lat = timed(envelopes, args.clients, lambda _: {}, submit)
        report("POST /v1/envelopes", len(envelopes), seconds, lat)
        with ServiceClient(base, auditor, ca=ca, coordinator=record) as c:
            done = sum(c.status(sid)["status"] == "finalized" for sid in ids)
        print(f"# {done} of {len(ids)} sessions finalized")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
