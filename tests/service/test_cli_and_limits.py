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


def _signed_call(service, key, method, path, body=b""):
    from msigvault.service.auth import sign_request

    headers = sign_request(key, coordinator_id=service.id, method=method, target=path.encode(), body=body)
    return Call(method, path.encode(), path, headers, body, "127.0.0.1:1", {})


def test_a_session_left_unfinalized_by_a_crash_is_finalized(tmp_path):
    """A process dies between storing the threshold signature and finalizing: the next submission (a re-sealed
    copy) finalizes it, and so does the next service start (Coordinator.recover)."""
    import base64

    from msigvault.psbt.psbt import Psbt
    from msigvault.service.client import seal_submission

    world = make_world(tmp_path / "w", f"sqlite:///{tmp_path / 'w.sqlite'}")
    crash = {"on": True}

    def fault(step):
        if step == "submit:after-store" and crash["on"]:
            raise KeyboardInterrupt("the process dies here")

    from msigvault.coordinator.audit import Identity
    from msigvault.coordinator.sessions import Coordinator

    co = Coordinator(Database.open(world.db_url), Identity(world.coordinator.signing), fault=fault)
    service = Service(co, world.coordinator, network="regtest")
    spec = next(s for s in ROUTES if s.path == "/v1/envelopes")
    sids = [co.new_session(world.vf.vault.policy_id, world.psbt(60_000 + i)).id for i in range(2)]

    def envelope(sid, h, seq):
        key, _ = world.sites[h.label]
        raw = world.vf.vault.sign(Psbt.parse(co.get(sid).psbt), h.root)[0].serialize()
        env = seal_submission(key, service.record, sid, h.fingerprint.hex(), raw, sequence=seq)
        return key, json.dumps({"envelope": base64.b64encode(env).decode()}).encode()

    for sid in sids:
        for h in world.holders[:2]:
            key, body = envelope(sid, h, 1)
            try:
                service.handle(spec, _signed_call(service, key, "POST", "/v1/envelopes", body))
            except KeyboardInterrupt:
                pass
    assert [co.get(sid).status.value for sid in sids] == ["open", "open"]
    assert all(co.get(sid).signatures_needed == 0 for sid in sids)
    crash["on"] = False
    key, body = envelope(sids[0], world.holders[1], 2)  # the site had no answer: it re-seals, sequence 2
    status, answer = service.handle(spec, _signed_call(service, key, "POST", "/v1/envelopes", body))
    # the same bytes were stored before the crash: their first outcome is repeated, nothing new is written
    assert status == 200 and answer["outcome"] == "accepted" and answer["session"]["status"] == "finalized"
    assert co.get(sids[1]).status.value == "open"
    Service(co, world.coordinator, network="regtest")  # a restart recovers the other one
    assert co.get(sids[1]).status.value == "finalized"
    co.verify_log()
