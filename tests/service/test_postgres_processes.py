"""Two service processes (the second with two uvicorn workers) against one PostgreSQL database share every piece of state: a session proposed
through one is signed through the other, a request (identity, nonce) accepted by one is refused by the
other, an envelope accepted by one is a replay at the other, and both write one verifiable audit log."""

from __future__ import annotations

import base64
import json
import time

import pytest

from msigvault.coordinator.audit import verify_export_bytes
from msigvault.identity import ReplayGuard
from msigvault.psbt.psbt import Psbt
from msigvault.service.auth import sign_request
from msigvault.service.client import seal_submission

from .conftest import ServerProcess, make_world


@pytest.fixture(scope="module")
def pg_world(tmp_path_factory, postgres):
    return make_world(tmp_path_factory.mktemp("service-pg"), postgres.new_database())


@pytest.fixture(scope="module")
def servers(pg_world):
    first = ServerProcess(pg_world, "first")
    try:
        second = ServerProcess(pg_world, "second", workers=2)  # uvicorn's worker processes, one more level
    except BaseException:
        first.stop()
        raise
    yield first, second
    first.stop()
    second.stop()


def test_a_nonce_used_at_one_process_is_refused_at_the_other(pg_world, servers):
    first, second = servers
    key, _ = pg_world.sites[pg_world.holders[0].label]
    with pg_world.client(key, first.url) as a, pg_world.client(key, second.url) as b:
        assert a.coordinator.id == b.coordinator.id  # one coordinator identity, two processes
        headers = sign_request(key, coordinator_id=a.coordinator.id.hex(), method="GET", target=b"/v1/identity",
                               body=b"")
        assert a.request("GET", "/v1/identity", headers=headers, signed=False).status_code == 200
        replay = b.request("GET", "/v1/identity", headers=headers, signed=False)
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "service.replayed-request"


def test_a_session_proposed_at_one_process_is_signed_through_both(pg_world, servers):
    first, second = servers
    with pg_world.client(pg_world.operator, first.url) as ops:
        session = ops.propose(pg_world.vf.vault.policy_id, pg_world.psbt(80_000))
    answers = []
    for h, server in zip(pg_world.holders[:2], (second, first)):
        key, _ = pg_world.sites[h.label]
        with pg_world.client(key, server.url) as client:
            (request,) = [r for r in client.pending() if r.session == session["id"]]
            unsigned = request.open(key, client.coordinator, ReplayGuard()).payload
            raw = pg_world.vf.vault.sign(Psbt.parse(unsigned), h.root)[0].serialize()
            envelope = seal_submission(key, client.coordinator, session["id"], h.fingerprint.hex(), raw, sequence=1)
            answers.append(client.submit(envelope))
            other = first if server is second else second
            with pg_world.client(key, other.url) as elsewhere:  # the same envelope at the other process
                r = elsewhere.request("POST", "/v1/envelopes", json.dumps(
                    {"envelope": base64.b64encode(envelope).decode()}).encode())
                assert r.status_code == 409 and r.json()["error"]["code"] == "envelope.replayed"
    assert [a["outcome"] for a in answers] == ["accepted", "accepted"]
    assert answers[-1]["session"]["status"] == "finalized"
    with pg_world.client(pg_world.auditor, second.url) as auditor:
        assert auditor.status(session["id"])["status"] == "finalized"
        export = auditor.audit_export()
    result = verify_export_bytes(export)  # both processes appended to one chain
    entries = [json.loads(line) for line in export.splitlines()[1:]]
    assert result.count == len(entries)
    assert any(e["event"] == "service.refused" and e["data"]["code"] == "service.replayed-request" for e in entries)


def test_concurrent_requests_at_both_processes_keep_one_audit_chain(pg_world, servers):
    """Refusals audited by both processes at the same time still form one verifiable hash chain."""
    from concurrent.futures import ThreadPoolExecutor

    first, second = servers
    key = pg_world.auditor

    def probe(i: int) -> int:
        server = (first, second)[i % 2]
        with pg_world.client(key, server.url) as c:
            return c.request("GET", "/v1/requests").status_code  # an auditor may not: 403, audited

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(probe, range(16)))
    assert codes == [403] * 16 and time.monotonic() - started < 60
    with pg_world.client(key, first.url) as auditor:
        verify_export_bytes(auditor.audit_export())
