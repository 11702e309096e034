"""Coordinator throughput: sessions created and submissions verified per second; audit verification.

Run: .venv/bin/python bench/sessions.py [--sessions N] [--entries M] [--db URL] [--postgres]
     (defaults: 200 sessions of a 2-of-3 wsh vault with 3 submissions each on a SQLite file in a
     temporary directory; 100,000 audit entries verified in memory). ``--db postgresql://...``
     runs the sessions on PostgreSQL (an empty database); ``--postgres`` runs them on SQLite and
     then on a throwaway PostgreSQL server it starts itself (initdb and pg_ctl in a temporary
     directory, a unix socket only, as the tests do). The PSBTs are signed before timing: what is
     timed is the coordinator (verification, storage, audit entries, finalization).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from msigvault import Network, Vault
from msigvault.coordinator.audit import GENESIS_PREV, Identity, make_entry, verify_entries
from msigvault.coordinator.db import Database
from msigvault.coordinator.sessions import Coordinator
from msigvault.policy.registration import Registration
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo
from msigvault.vaultfile import VaultFile

PAYEE = bytes.fromhex("0014") + bytes(range(20))


def prepare(n: int):
    holders = [TestKeyholder.from_label(f"bench-{k}") for k in range(3)]
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network=Network.REGTEST)
    vf = VaultFile(vault, "bench", registrations=tuple(Registration.create(vault, h.root, name="bench")
                                                      for h in holders))
    work = []
    for i in range(n):
        utxo = synthetic_utxo(vault, 100_000, index=i % 900, seed=f"sessions{i}")
        psbt = vault.create_psbt([utxo], [(PAYEE, 50_000)], fee_rate=2.0, change_index=i % 900)
        work.append((psbt, [vault.sign(psbt, h.root)[0].serialize() for h in holders]))
    return vf, work


@contextlib.contextmanager
def throwaway_postgres():
    """A PostgreSQL server in a temporary directory (unix socket only); yields a database URL."""
    def binary(name: str) -> str:
        found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                        reverse=True)), None)
        if not found:
            raise SystemExit(f"PostgreSQL's {name} is not installed (.ci/ensure-postgresql installs it)")
        return found

    root = Path(tempfile.mkdtemp(prefix="msigvault-bench-pg-"))
    as_postgres = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    try:
        subprocess.run(prefix + [binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                 "--no-sync"], check=True, capture_output=True)
        subprocess.run(prefix + [binary("pg_ctl"), "-D", str(data), "-o", f"-k {root} -c listen_addresses=''",
                                 "-l", str(root / "log"), "-w", "start"], check=True, capture_output=True)
        try:
            yield f"postgresql+psycopg://postgres@/postgres?host={root}"
        finally:
            subprocess.run(prefix + [binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_sessions(url: str, n: int) -> None:
    vf, work = prepare(n)
    co = Coordinator(Database.open(url), Identity.generate())
    pid = co.register_vault(vf)
    t = time.perf_counter()
    sessions = [co.new_session(pid, psbt).id for psbt, _ in work]
    created = time.perf_counter() - t
    t = time.perf_counter()
    for sid, (_, copies) in zip(sessions, work):
        for raw in copies:
            co.submit(sid, raw)
    submitted = time.perf_counter() - t
    t = time.perf_counter()
    result = co.verify_log()
    verified = time.perf_counter() - t
    print(f"{url.split(':')[0].split('+')[0]:<10} {n} sessions: {n / created:8.1f} created/s; {3 * n} submissions "
          f"(2 finalize each session): {3 * n / submitted:8.1f}/s; log of {result.count} entries "
          f"verified in {verified:.2f} s")


def run_audit(m: int) -> None:
    identity = Identity.generate()
    lines, prev = [], GENESIS_PREV
    t = time.perf_counter()
    for seq in range(m):
        data = {"coordinator_key": identity.public_hex} if seq == 0 else {"psbt_sha256": "ab" * 32, "n": seq}
        e = make_entry(identity, seq=seq, prev=prev, event="log.created" if seq == 0 else "config.changed",
                       data=data, time="2026-01-01T00:00:00.000000Z")
        lines.append(e.line)
        prev = e.hash
    made = time.perf_counter() - t
    t = time.perf_counter()
    verify_entries(lines)
    verified = time.perf_counter() - t
    print(f"audit log  {m:,} entries: written in {made:.2f} s, verified in {verified:.2f} s "
          f"({m / verified:,.0f} entries/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--db", default=None)
    ap.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL server")
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        run_sessions(args.db or f"sqlite:///{d}/bench.sqlite", args.sessions)
    if args.postgres:
        with throwaway_postgres() as url:
            run_sessions(url, args.sessions)
    run_audit(args.entries)


if __name__ == "__main__":
    main()
