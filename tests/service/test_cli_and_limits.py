"""``msigvault coordinator enroll`` and ``revoke`` through the command line, and the bound on what a flood
of unauthenticated refusals writes into the audit log (in-process: the Service behind the routes)."""

from __future__ import annotations

import json

from msigvault.coordinator.db import Database
from msigvault.identity import IdentityKey
from msigvault.service.app import ROUTES, Call, Service
from msigvault.service.auth import RateLimiter
from msigvault.service.store import ServiceStore
from msigvault.testing.cli import run_cli

from .conftest import PASSPHRASE, make_world


def _cli(*args, cwd):
    return run_cli(*args, cwd=cwd)


def test_enroll_and_revoke_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MSIGVAULT_IDENTITY_PASSPHRASE", PASSPHRASE)  # the subprocess inherits it
    world = make_world(tmp_path / "w", f"sqlite:///{tmp_path / 'w.sqlite'}")
    auditor = IdentityKey.generate("second-auditor", "auditor")
    (tmp_path / "auditor.record").write_bytes(auditor.record("regtest").to_bytes())
    common = ("--db", world.db_url, "--identity", world.coordinator_file)
    r = _cli("coordinator", "enroll", *common, "auditor.record", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"id": auditor.id.hex(), "name": "second-auditor", "role": "auditor"}]
    store = ServiceStore(Database.open(world.db_url))
    assert store.lookup(auditor.id.hex()).role == "auditor"
    # a site record without its vault is refused; with it, it is registered and enrolled
    site_key, site_record = world.sites[world.holders[0].label]
    (tmp_path / "site.record").write_bytes(site_record.to_bytes())
    r = _cli("coordinator", "enroll", *common, "site.record", cwd=tmp_path)
    assert r.returncode == 2 and "--vault" in r.stderr
    world.vf.save(tmp_path / "vault.json")
    r = _cli("coordinator", "enroll", *common, "--vault", "vault.json", "site.record", cwd=tmp_path)
    assert r.returncode == 0 and f"({site_key.id.hex()}) as keyholder-site" in r.stdout, r.stderr
    r = _cli("coordinator", "revoke", *common, auditor.id.hex(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert ServiceStore(Database.open(world.db_url)).lookup(auditor.id.hex()) is None
    r = _cli("coordinator", "revoke", *common, auditor.id.hex(), cwd=tmp_path)
    assert r.returncode == 2 and "not enrolled" in r.stderr
    co = world.open_coordinator()
    events = [e["event"] for e in co.audit_entries()]
    assert events.count("service.identity-enrolled") >= 1 and events[-1] == "service.identity-revoked"
    co.verify_log()


def test_a_flood_of_unauthenticated_requests_writes_a_bounded_audit(tmp_path):
    world = make_world(tmp_path / "w", f"sqlite:///{tmp_path / 'w.sqlite'}")
    co = world.open_coordinator()
    service = Service(co, world.coordinator, network="regtest")
    service._audit_limiter = RateLimiter(0.001, 5)  # five at once, then (almost) nothing
    spec = next(s for s in ROUTES if s.path == "/v1/identity")
    before = len(co.audit_entries())
    for port in range(40):
        status, body = service.handle(spec, Call("GET", b"/v1/identity", "/v1/identity", {}, b"",
                                                 f"203.0.113.9:{1000 + port}", {}))
        assert status == 401 and body["error"]["code"] == "service.unauthenticated"  # every one is refused
    refused = [e for e in co.audit_entries()[before:] if e["event"] == "service.refused"]
    assert len(refused) == 5
    service._audit_limiter = RateLimiter(1000, 5)
    service.handle(spec, Call("GET", b"/v1/identity", "/v1/identity", {}, b"", "203.0.113.9:9", {}))
    last = co.audit_entries()[-1]
    assert last["event"] == "service.refused" and last["data"]["suppressed"] == 35
