"""Adversarial review of the coordinator service (issue 16), in process through ``Service.handle``: what a
site learns of another vault's sessions, hostile JSON, log forging through the path, the memory and cost
of the rate limiters under spoofed keys, and envelopes naming a session by a prefix of its id."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from msigvault.psbt.psbt import Psbt
from msigvault.service.app import ROUTES, Call, Service
from msigvault.service.auth import RateLimiter, sign_request
from msigvault.service.client import seal_submission

from .conftest import make_world


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    world = make_world(root, f"sqlite:///{root / 'coordinator.sqlite'}")
    co = world.open_coordinator()
    return world, co, Service(co, world.coordinator, network="regtest")


def _spec(method, path):
    return next(s for s in ROUTES if s.method == method and s.path == path)


def _call(service, key, method, path, body=b"", params=None, remote="127.0.0.1:1"):
    headers = sign_request(key, coordinator_id=service.id, method=method, target=path.encode(), body=body)
    return Call(method, path.encode(), path, headers, body, remote, params or {})


def _status(service, key, session_id):
    path = f"/v1/sessions/{session_id}"
    return service.handle(_spec("GET", "/v1/sessions/{session_id}"),
                          _call(service, key, "GET", path, params={"session_id": session_id}))


def test_a_site_learns_nothing_of_another_vaults_sessions(setup):
    """Before: 403 naming the other vault's session by its full id, even when asked by a 4-digit prefix."""
    world, co, service = setup
    theirs = co.new_session(world.vf.vault.policy_id, world.psbt(71_000))
    m_key = world.mallory[0]
    for asked in (theirs.id, theirs.id[:4], theirs.id[:8]):
        status, body = _status(service, m_key, asked)
        unknown_status, unknown = _status(service, m_key, "ffffffffffffffff" if asked == theirs.id else "ffff")
        assert status == unknown_status == 404
        assert body == unknown and body["error"]["code"] == "coordinator.session-not-found"
        assert theirs.id not in json.dumps(body)
    alice = world.sites[world.holders[0].label][0]
    status, body = _status(service, alice, theirs.id[:6])  # a site of the vault still finds it by prefix
    assert status == 200 and body["session"]["id"] == theirs.id


def test_deeply_nested_json_is_a_bad_request_not_a_crash(setup):
    """Before: json.loads raised RecursionError, answered 500 with a traceback in the log for every request."""
    world, co, service = setup
    alice = world.sites[world.holders[0].label][0]
    for body in (b"[" * 200_000, b'{"envelope":' * 100_000):
        status, answer = service.handle(_spec("POST", "/v1/envelopes"),
                                        _call(service, alice, "POST", "/v1/envelopes", body))
        assert status == 400 and answer["error"]["code"] == "service.bad-request"


def test_a_path_cannot_forge_log_lines(setup, caplog):
    """Before: the decoded path went into the log verbatim, so %0a in a URL wrote a line of the caller's choice."""
    world, co, service = setup
    path = "/v1/identity\nWARNING refused nothing: all is well\x1b[2J"
    with caplog.at_level(logging.WARNING, logger="msigvault.service"):
        status, _ = service.handle(_spec("GET", "/v1/identity"),
                                   Call("GET", path.encode(), path, {}, b"", "127.0.0.1:2", {}))
    assert status == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "msigvault.service"]
    assert lines and all("\n" not in line and "\x1b" not in line for line in lines)
    entry = co.audit_entries()[-1]
    assert entry["event"] == "service.refused" and "\n" not in entry["data"]["path"]


def test_the_rate_limiters_memory_is_bounded_under_spoofed_keys():
    """Before: a key that had taken two tokens was never forgotten (its stored count, not its refilled one,
    was compared), so a flood of new keys grew the table without bound; and once past the cap every call
    rebuilt the whole table."""
    limiter = RateLimiter(rate=50.0, burst=10)
    limiter.max_keys = 1_000
    start = time.monotonic()
    for i in range(20_000):
        limiter.allow(f"203.0.113.{i}")
        limiter.allow(f"203.0.113.{i}")
    assert len(limiter._buckets) <= 1_000
    assert time.monotonic() - start < 5.0
    limiter.max_keys = 100_000
    for _ in range(10):
        assert limiter.allow("honest")
    assert not limiter.allow("honest")  # a key still in the table keeps its count


def test_unauthenticated_refusals_from_many_hosts_write_a_bounded_audit(setup):
    """Before: the audit bound was per remote host only; an attacker with many addresses wrote 200 entries each."""
    world, co, service = setup
    spec = _spec("GET", "/v1/identity")
    before = len(co.audit_entries())
    for host in range(3_000):
        status, _ = service.handle(spec, Call("GET", b"/v1/identity", "/v1/identity", {}, b"",
                                              f"2001:db8::{host:x}:443", {}))
        assert status == 401
    written = [e for e in co.audit_entries()[before:] if e["event"] == "service.refused"]
    assert 0 < len(written) <= 1_100


def test_an_envelope_must_name_its_session_exactly(setup):
    """Before: an envelope naming a 4-digit prefix was resolved to whichever session starts with it."""
    world, co, service = setup
    session = co.new_session(world.vf.vault.policy_id, world.psbt(72_000))
    holder = world.holders[0]
    key, _ = world.sites[holder.label]
    raw = world.vf.vault.sign(Psbt.parse(session.psbt), holder.root)[0].serialize()
    envelope = seal_submission(key, service.record, session.id[:4], holder.fingerprint.hex(), raw, sequence=1)
    body = json.dumps({"envelope": base64.b64encode(envelope).decode()}).encode()
    status, answer = service.handle(_spec("POST", "/v1/envelopes"), _call(service, key, "POST", "/v1/envelopes", body))
    assert status == 404 and answer["error"]["code"] == "coordinator.session-not-found"
    assert co.get(session.id).signed == []


def test_the_same_bytes_again_answer_accepted_and_another_copy_of_known_signatures_is_a_duplicate(setup):
    """docs/service.md, POST /v1/envelopes: the outcome is decided once per PSBT hash; a lost answer's retry
    learns `accepted`; a different copy carrying only signatures already recorded is `duplicate`."""
    world, co, service = setup
    session = co.new_session(world.vf.vault.policy_id, world.psbt(73_000))
    holder = world.holders[1]
    key, _ = world.sites[holder.label]
    signed = world.vf.vault.sign(Psbt.parse(session.psbt), holder.root)[0]
    other = Psbt.parse(signed.serialize())
    other.globals.set(0xFC, b"\x04test\x00", b"another copy")  # a proprietary record: other bytes, same signature
    answers = []
    for seq, raw in enumerate((signed.serialize(), signed.serialize(), other.serialize()), start=1):
        envelope = seal_submission(key, service.record, session.id, holder.fingerprint.hex(), raw, sequence=seq)
        body = json.dumps({"envelope": base64.b64encode(envelope).decode()}).encode()
        status, answer = service.handle(_spec("POST", "/v1/envelopes"),
                                        _call(service, key, "POST", "/v1/envelopes", body))
        assert status == 200, answer
        answers.append(answer["outcome"])
    assert answers == ["accepted", "accepted", "duplicate"]
    assert [s["outcome"] for s in co.submissions(session.id)] == ["accepted", "duplicate"]
    assert co.get(session.id).signed == [holder.fingerprint.hex()]


def test_a_forged_request_never_makes_the_claimed_identity_an_audit_actor(setup):
    """Before: a request with a bad signature was audited with actor identity:<the id it claimed>."""
    world, co, service = setup
    alice = world.sites[world.holders[0].label][0]
    call = _call(service, alice, "GET", "/v1/identity")
    forged = dict(call.headers, **{"msigvault-signature": "00" * 64})
    status, _ = service.handle(_spec("GET", "/v1/identity"),
                               Call("GET", b"/v1/identity", "/v1/identity", forged, b"", "127.0.0.1:3", {}))
    assert status == 401
    entry = co.audit_entries()[-1]
    assert entry["event"] == "service.refused" and entry["data"]["identity"] == alice.id.hex()
    assert entry["data"]["authenticated"] is False and entry["actor"] == "unauthenticated"


def test_a_refusal_never_echoes_the_payload_at_length(setup):
    """Before: a payload's fingerprint field was echoed whole into the error (the answer and the audit entry)."""
    from msigvault.coordinator.audit import canonical
    from msigvault.identity import seal

    world, co, service = setup
    session = co.new_session(world.vf.vault.policy_id, world.psbt(74_000))
    key, _ = world.sites[world.holders[0].label]
    payload = canonical({"format": "msigvault-submission", "fingerprint": "\x1b[2J" + "f" * 100_000,
                         "psbt": "", "statement_signature": ""})
    envelope = seal(payload, sender=key, recipient=service.record, session_id=session.id, sequence=1,
                    content_type="partial-signature", expires=__import__("datetime").timedelta(hours=1))
    body = json.dumps({"envelope": base64.b64encode(envelope).decode()}).encode()
    status, answer = service.handle(_spec("POST", "/v1/envelopes"), _call(service, key, "POST", "/v1/envelopes", body))
    assert status == 403 and answer["error"]["code"] == "envelope.wrong-sender"
    assert len(answer["error"]["message"]) < 300 and "\x1b" not in answer["error"]["message"]
