"""Three keyholder sites on one machine, each in its own directory with its own key and identity files,
set up through the ``msigvault`` command as their operators would (subprocesses); a coordinator with its
identity, database and regtest chain; a real ``msigvault coordinator serve`` over TLS on 127.0.0.1.

Each site has ``online/`` (the online machine: identity, pulled requests) and ``laptop/`` (the air-gapped
laptop: key file, vault file); files move between them only by :meth:`Site.carry` (the USB stick) or as
QR images rendered on one side and decoded on the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from msigvault.testing.cli import run_cli
from msigvault.testing.service import ServiceProcess
from msigvault.testing.tls import TestPki, make_test_pki

KEY_PASSPHRASE = "site test key passphrase"
ID_PASSPHRASE = "site test identity passphrase"
PAYEE = "bcrt1qzyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3lgth6c"  # 0014 1111...11
PAYEE_SCRIPT = bytes.fromhex("0014" + "11" * 20)
KDF = ("--kdf-cost", "16384")
_ID_ENV = "MSIGVAULT_IDENTITY_PASSPHRASE"


@contextlib.contextmanager
def identity_passphrase():
    """$MSIGVAULT_IDENTITY_PASSPHRASE set for the subprocesses started inside (and restored after)."""
    old = os.environ.get(_ID_ENV)
    os.environ[_ID_ENV] = ID_PASSPHRASE
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_ID_ENV, None)
        else:
            os.environ[_ID_ENV] = old


def cli(*args, cwd, passphrase: "str | None" = None, ok: bool = True, timeout: float = 180, stdin=None):
    """``msigvault ARGS`` in ``cwd`` (a subprocess, given the identity passphrase); with ``ok``, it must succeed."""
    with identity_passphrase():
        r = run_cli(*args, cwd=cwd, passphrase=passphrase, timeout=timeout, stdin=stdin)
    if ok:
        assert r.returncode == 0, f"msigvault {' '.join(map(str, args))}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def cli_json(*args, cwd, passphrase: "str | None" = None):
    return json.loads(cli(*args, "--json", cwd=cwd, passphrase=passphrase).stdout)


@dataclass
class Site:
    name: str
    root: Path
    fingerprint: str
    identity_id: str

    @property
    def online(self) -> Path:
        return self.root / "online"

    @property
    def laptop(self) -> Path:
        return self.root / "laptop"

    def carry(self, src: Path, dst_dir: Path) -> Path:
        """A file or a directory of QR images from one machine to the other (the USB stick, the camera)."""
        target = dst_dir / src.name
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            shutil.copy(src, target)
        return target

    def online_args(self, world: "SiteWorld", url: str) -> "tuple[str, ...]":
        return ("--identity", "site.identity", "--url", url, "--ca", str(world.pki.ca_cert))

    def folder_args(self, world: "SiteWorld") -> "tuple[str, ...]":
        return ("--identity", "site.identity", "--folder", str(world.share), "--coordinator", "coordinator.record")


@dataclass
class SiteWorld:
    root: Path
    coord: Path  # the coordinator's directory
    db_url: str
    pki: TestPki
    sites: "dict[str, Site]"
    share: Path  # the shared folder
    policy_id: str

    def site(self, name: str) -> Site:
        return self.sites[name]


def _site(root: Path, name: str, coord: Path) -> Site:
    base = root / name
    (base / "online").mkdir(parents=True)
    (base / "laptop").mkdir()
    laptop = base / "laptop"
    cli("key", "new", "key.key", "--skip-backup-check", cwd=laptop, passphrase=KEY_PASSPHRASE)
    cli("key", "cosigner", "key.key", "-n", "regtest", "-o", "key.cosigner", cwd=laptop, passphrase=KEY_PASSPHRASE)
    shutil.copy(laptop / "key.cosigner", coord / f"{name}.cosigner")
    fingerprint = (laptop / "key.cosigner").read_text()[1:9]
    return Site(name, base, fingerprint, "")


def make_site_world(root: Path) -> SiteWorld:
    coord = root / "coordinator"
    coord.mkdir(parents=True)
    sites = {n: _site(root, n, coord) for n in ("alice", "bob", "carol")}
    cli("vault", "create", "-m", "2", *(f"{n}.cosigner" for n in sites), "-n", "regtest", "--name", "treasury",
        "-o", "vault.json", cwd=coord)
    # the vault file travels from site to site; each keyholder checks it and registers it with their key
    travelling = coord / "vault.json"
    for s in sites.values():
        shutil.copy(travelling, s.laptop / "vault.json")
        cli("vault", "verify", "vault.json", "--key", "key.key", "--yes", cwd=s.laptop, passphrase=KEY_PASSPHRASE)
        travelling = s.laptop / "vault.json"
    shutil.copy(travelling, coord / "vault.json")
    for s in sites.values():
        if s.laptop / "vault.json" != travelling:
            shutil.copy(travelling, s.laptop / "vault.json")
    policy_id = cli_json("vault", "show", "vault.json", cwd=coord)["policy_id"]
    # identities: the coordinator's, an operator's and an auditor's; each site's, signed by its vault key
    for name, role in (("coordinator", "coordinator"), ("ops", "coordinator"), ("auditor", "auditor")):
        cli("identity", "new", f"{name}.identity", "--name", name, "--role", role, *KDF, cwd=coord)
        cli("identity", "export-record", f"{name}.identity", "-n", "regtest", "-o", f"{name}.record", cwd=coord)
    for s in sites.values():
        cli("identity", "new", "site.identity", "--name", f"{s.name}-site", "--role", "keyholder-site", *KDF,
            cwd=s.online)
        # the identity file visits the laptop once, to have its record signed by the vault key
        shutil.copy(s.online / "site.identity", s.laptop / "site.identity")
        cli("identity", "export-record", "site.identity", "-n", "regtest", "--key", "key.key", "--vault",
            "vault.json", "-o", "site.record", cwd=s.laptop, passphrase=KEY_PASSPHRASE)
        (s.laptop / "site.identity").unlink()
        shutil.copy(s.laptop / "site.record", coord / f"{s.name}-site.record")
        shutil.copy(coord / "coordinator.record", s.online / "coordinator.record")
        s.identity_id = cli_json("identity", "show", "site.identity", cwd=s.online)["id"]
    db_url = f"sqlite:///{coord / 'coordinator.sqlite'}"
    common = ("--db", db_url, "--identity", "coordinator.identity")
    cli("coordinator", "enroll", *common, "--vault", "vault.json", *(f"{n}-site.record" for n in sites), cwd=coord)
    cli("coordinator", "enroll", *common, "ops.record", "auditor.record", cwd=coord)
    _authorize_operator_key(coord, db_url)
    share = root / "share"
    share.mkdir()
    return SiteWorld(root, coord, db_url, make_test_pki(root / "pki"), sites, share, policy_id)


def _authorize_operator_key(coord: Path, db_url: str) -> None:
    """The coordinator authorises its operator's key (coord/broadcast.key) to sign into its audit log, so that
    ``msigvault session broadcast --coordinator-key`` may run on the same database as the service."""
    from msigvault.coordinator.audit import Identity
    from msigvault.coordinator.db import Database
    from msigvault.coordinator.sessions import Coordinator
    from msigvault.identity import IdentityKey

    key = IdentityKey.load(coord / "coordinator.identity", ID_PASSPHRASE)
    co = Coordinator(Database.open(db_url), Identity(key.signing))
    co.authorize_key(Identity.load_or_create(coord / "broadcast.key").public_hex, note="the operator's CLI key")
    co.db.close()


class Server(ServiceProcess):
    """``msigvault coordinator serve`` on the world's database over TLS (the test CA); output in a file."""

    def __init__(self, world: SiteWorld) -> None:
        super().__init__(world.db_url, "coordinator.identity", world.pki, log=world.coord / "server.log",
                         passphrase=ID_PASSPHRASE, cwd=world.coord)
        self.start()


@pytest.fixture(scope="session")
def site_world(tmp_path_factory):
    """One world for tests/site (its set-up takes about 15 s): each module's sessions are its own."""
    return make_site_world(tmp_path_factory.mktemp("sites"))


@pytest.fixture(scope="module")
def server(site_world):
    proc = Server(site_world)
    yield proc
    proc.stop()
