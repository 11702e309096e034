"""The coordinator service under test: real ``msigvault coordinator serve`` processes on 127.0.0.1 over TLS.

A :class:`World` holds a 2-of-3 vault, its three keyholders and their site identities, an operator,
an auditor, a flooder (for the rate limit) and "mallory", a genuine site of *another* vault; all are
enrolled in one coordinator database. :class:`ServerProcess` runs the CLI's ``serve`` on it and
captures its stdout and stderr in files (the log-leak test reads them).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from msigvault import Network, Vault
from msigvault.coordinator.audit import Identity
from msigvault.coordinator.db import Database
from msigvault.coordinator.sessions import Coordinator
from msigvault.identity import IdentityKey, IdentityRecord
from msigvault.policy.registration import Registration
from msigvault.service.client import ServiceClient
from msigvault.service.store import ServiceStore, enroll_sites
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.service import ServiceProcess
from msigvault.testing.tls import TestPki, make_test_pki
from msigvault.testing.utxos import synthetic_utxo
from msigvault.vaultfile import VaultFile

_spec = importlib.util.spec_from_file_location("_service_pg_conftest",
                                               Path(__file__).resolve().parent.parent / "coordinator" / "conftest.py")
_pg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pg)
postgres = _pg.postgres  # the throwaway PostgreSQL server fixture (fails, never skips, if it cannot start)

PASSPHRASE = "service test identity passphrase"
PAYEE = bytes.fromhex("0014") + bytes(range(20))
LIMITS = {"max_body": 256 * 1024, "rate": 5.0, "burst": 30}


def vault_file(holders, name: str) -> VaultFile:
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network=Network.REGTEST)
    return VaultFile(vault, name, registrations=tuple(Registration.create(vault, h.root, name=name) for h in holders))


@dataclass
class World:
    root: Path
    db_url: str
    pki: TestPki
    coordinator: IdentityKey
    coordinator_file: Path
    holders: tuple
    vf: VaultFile
    other_vf: VaultFile
    sites: "dict[str, tuple[IdentityKey, IdentityRecord]]"
    operator: IdentityKey
    auditor: IdentityKey
    flooder: IdentityKey
    mallory: "tuple[IdentityKey, IdentityRecord, TestKeyholder]"
    _seed: int = field(default=0)

    def open_coordinator(self) -> Coordinator:
        return Coordinator(Database.open(self.db_url), Identity(self.coordinator.signing))

    def psbt(self, amount: int = 100_000, vf: "VaultFile | None" = None) -> bytes:
        """An unsigned PSBT of fresh synthetic coins (never on a chain: sessions finalize against it)."""
        vf = vf or self.vf
        self._seed += 1
        utxos = [synthetic_utxo(vf.vault, amount, index=i, seed=f"svc{self._seed}-{i}") for i in range(2)]
        return vf.vault.create_psbt(utxos, [(PAYEE, amount)], fee_rate=2.0, change_index=0).serialize()

    def client(self, key: IdentityKey, url: str, ca: "Path | None" = None) -> ServiceClient:
        return ServiceClient(url, key, ca=ca or self.pki.ca_cert)


def make_world(root: Path, db_url: str) -> World:
    root.mkdir(parents=True, exist_ok=True)
    holders = tuple(TestKeyholder.from_label(f"svc-{n}") for n in ("alice", "bob", "carol"))
    strangers = tuple(TestKeyholder.from_label(f"svc-{n}") for n in ("mallory", "xavier", "yolanda"))
    vf, other_vf = vault_file(holders, "treasury"), vault_file(strangers, "elsewhere")
    coordinator = IdentityKey.generate("coordinator", "coordinator")
    coordinator_file = root / "coordinator.identity"
    coordinator.save(coordinator_file, PASSPHRASE, kdf_cost=2 ** 14)
    sites = {}
    for h in holders:
        key = IdentityKey.generate(f"{h.label}-site", "keyholder-site")
        sites[h.label] = (key, key.record("regtest", root=h.root, cosigner=h.cosigner("wsh")))
    m_key = IdentityKey.generate("mallory-site", "keyholder-site")
    mallory = (m_key, m_key.record("regtest", root=strangers[0].root, cosigner=strangers[0].cosigner("wsh")),
               strangers[0])
    operator = IdentityKey.generate("ops", "coordinator")
    auditor = IdentityKey.generate("auditor", "auditor")
    flooder = IdentityKey.generate("flooder", "auditor")
    co = Coordinator(Database.open(db_url), Identity(coordinator.signing))
    store = ServiceStore(co.db)
    enroll_sites(co, store, vf, [r for _, r in sites.values()])
    enroll_sites(co, store, other_vf, [mallory[1]])
    for key in (operator, auditor, flooder):
        store.enroll(co, key.record("regtest"))
    co.db.close()
    return World(root, db_url, make_test_pki(root / "pki"), coordinator, coordinator_file, holders, vf, other_vf,
                 sites, operator, auditor, flooder, mallory)


class ServerProcess(ServiceProcess):
    """``python -m msigvault coordinator serve`` on the world's database; stdout/stderr go to files."""

    def __init__(self, world: World, name: str, *, workers: int = 1, **limits) -> None:
        opts = {**LIMITS, **limits}
        super().__init__(world.db_url, world.coordinator_file, world.pki, log=world.root / f"{name}.stdout",
                         stderr_log=world.root / f"{name}.stderr", passphrase=PASSPHRASE,
                         args=["--max-body", str(opts["max_body"]), "--rate", str(opts["rate"]),
                               "--burst", str(opts["burst"]), "--workers", str(workers)])
        self.start()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("service")
    return make_world(root, f"sqlite:///{root / 'coordinator.sqlite'}")


@pytest.fixture(scope="module")
def server(world):
    proc = ServerProcess(world, "server")
    yield proc
    proc.stop()
