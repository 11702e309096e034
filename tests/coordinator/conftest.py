"""Coordinator fixtures: the same tests on SQLite and on a real throwaway PostgreSQL server.

The PostgreSQL server is started once per test session with ``initdb`` and ``pg_ctl`` in a
temporary directory, listening on a unix socket only (no TCP port), as the ``postgres`` user
when the tests run as root (the server refuses to run as root). If it cannot start, every test
that uses it FAILS: it never skips. ``.ci/run`` installs Debian's postgresql package when the
binaries are missing.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from msigvault import Network, Vault
from msigvault.policy.registration import Registration
from msigvault.testing.keyholders import TestKeyholder
from msigvault.vaultfile import VaultFile


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        pytest.fail(f"PostgreSQL's {name} is not installed: apt-get install postgresql (.ci/run does this)")
    return found


class PostgresServer:
    """A throwaway PostgreSQL cluster on a unix socket in a temporary directory."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="msigvault-pg-"))
        self.data = self.root / "data"
        self.socket = self.root
        self.as_postgres = os.geteuid() == 0
        self.user = "postgres"
        self._names = itertools.count()
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_postgres else []) + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        r = self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                      "--no-sync")
        if r.returncode:
            pytest.fail(f"initdb failed: {r.stderr.strip() or r.stdout.strip()}")
        opts = f"-k {self.socket} -c listen_addresses='' -c fsync=off -c max_connections=60"
        r = self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w",
                      "-t", "60", "start")
        if r.returncode:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            pytest.fail(f"PostgreSQL did not start: {r.stderr.strip()} {log[-2000:]}")

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket}"

    def new_database(self) -> str:
        import psycopg

        name = f"msigvault_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host=str(self.socket), user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'coordinator.sqlite'}"
    return request.getfixturevalue("postgres").new_database()


HOLDERS = tuple(TestKeyholder.from_label(n) for n in ("coord-alice", "coord-bob", "coord-carol"))


def make_vault_file(script: str = "wsh", m: int = 2, holders=HOLDERS, name: str = "treasury") -> VaultFile:
    vault = Vault.multisig(m, [h.cosigner(script) for h in holders], script=script, network=Network.REGTEST)
    return VaultFile(vault, name, registrations=tuple(Registration.create(vault, h.root, name=name) for h in holders))


@pytest.fixture(scope="module")
def chain():
    from msigvault.regtest import RegtestChain

    with RegtestChain() as c:
        c.mine(110)
        yield c


# -- shared helpers (test modules reach them through the ``kit`` fixture) ----------------------

import hashlib  # noqa: E402
import sys  # noqa: E402

from msigvault.coordinator.audit import Identity, sign_statement, submission_statement  # noqa: E402

IDENTITIES = {h.fingerprint.hex(): Identity.from_seed(b"identity|" + h.label.encode()) for h in HOLDERS}
COORDINATOR_KEY = Identity.from_seed(b"coordinator-key")
PAYEE = bytes.fromhex("0014") + bytes(range(20))


def funded_psbt(chain, vf, amounts=(60_000, 80_000), pay=100_000, index=0, fee_rate=2.0):
    utxos = chain.fund(vf.vault.address(index), list(amounts))
    return vf.vault.create_psbt(utxos, [(PAYEE, pay)], fee_rate=fee_rate, change_index=index,
                                current_height=chain.height)


def signed_copy(vf, psbt, holder) -> bytes:
    part, _ = vf.vault.sign(psbt, holder.root)
    return part.serialize()


def attest(session_id: str, raw: bytes, holder) -> dict:
    fp = holder.fingerprint.hex()
    return {fp: sign_statement(IDENTITIES[fp], submission_statement(session_id, hashlib.sha256(raw).hexdigest(), fp))}


def identity_keys() -> dict:
    return {fp: i.public_hex for fp, i in IDENTITIES.items()}


def open_coordinator(url, chain=None, **kwargs):
    from msigvault.backends.regtest import RegtestBackend
    from msigvault.coordinator.db import Database
    from msigvault.coordinator.sessions import Coordinator

    backend = RegtestBackend(chain) if chain is not None else None
    return Coordinator(Database.open(url), COORDINATOR_KEY, backend=backend, **kwargs)


@pytest.fixture(scope="session")
def kit():
    """This module: HOLDERS, IDENTITIES, funded_psbt, signed_copy, attest, open_coordinator, ..."""
    return sys.modules[__name__]
