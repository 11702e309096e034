"""A 2-of-3 ceremony through a real ``msigvault coordinator serve`` over TLS: an operator proposes, three sites
pull their sealed requests, sign offline (here, in the test process), submit sealed partial signatures, and
the session finalizes. The server's output never shows a PSBT; an auditor's export verifies."""

from __future__ import annotations

import base64
import json

import pytest

from msigvault.coordinator.audit import verify_export_bytes
from msigvault.identity import ContentType, ReplayGuard
from msigvault.psbt.psbt import Psbt
from msigvault.service.client import ServiceClient, seal_submission
from msigvault.service.errors import ServiceRefused, ServiceUnreachable
from msigvault.testing.tls import make_test_pki


@pytest.fixture(scope="module")
def ceremony(world, server):
    """Run the ceremony once; what the tests below check."""
    unsigned = world.psbt()
    with world.client(world.operator, server.url) as ops:
        proposed = ops.propose(world.vf.vault.policy_id, unsigned, memo="rent", expires_in=3600)
    pulled, partials, answers = {}, [], []
    for h in world.holders:  # every site pulls first: all three requests are open
        key, _ = world.sites[h.label]
        with world.client(key, server.url) as client:
            pulled[h.label] = client.pending()
    for h in world.holders:
        key, _ = world.sites[h.label]
        with world.client(key, server.url) as client:
            (request,) = pulled[h.label]
            opened = request.open(key, client.coordinator, ReplayGuard())
            signed, _ = world.vf.vault.sign(Psbt.parse(opened.payload), h.root)
            raw = signed.serialize()
            partials.append(raw)
            envelope = seal_submission(key, client.coordinator, request.session, request.fingerprint, raw,
                                       sequence=1)
            answers.append(client.submit(envelope))
    with world.client(world.auditor, server.url) as auditor:
        status = auditor.status(proposed["id"])
        export = auditor.audit_export()
    return {"unsigned": unsigned, "proposed": proposed, "pulled": pulled, "partials": partials,
            "answers": answers, "status": status, "export": export}


def test_the_session_finalizes_after_two_of_three(world, ceremony):
    assert ceremony["proposed"]["status"] == "open" and ceremony["proposed"]["proposed_by"].startswith("ops (")
    first, second, third = ceremony["answers"]
    assert [a["outcome"] for a in ceremony["answers"]] == ["accepted", "accepted", "accepted"]
    assert first["session"]["status"] == "open" and first["session"]["signatures_needed"] == 1
    assert second["session"]["status"] == "finalized" and second["session"]["final_txid"]
    assert third["session"]["status"] == "finalized"  # a late signature is kept, the session stays final
    assert ceremony["status"]["status"] == "finalized"
    assert sorted(ceremony["status"]["signed"]) == sorted(h.fingerprint.hex() for h in world.holders)


def test_each_site_got_the_sessions_psbt_sealed_to_it(world, ceremony):
    sid = ceremony["proposed"]["id"]
    for h in world.holders:
        (request,) = ceremony["pulled"][h.label]
        assert request.session == sid and request.fingerprint == h.fingerprint.hex()
        assert ceremony["unsigned"] not in request.envelope  # encrypted, not carried in the clear
        other = world.sites[[x for x in world.sites if x != h.label][0]][0]
        with pytest.raises(Exception, match="addressed to"):
            request.open(other, None, ReplayGuard())  # type: ignore[arg-type]


def test_a_site_sees_no_request_once_the_session_is_done(world, server, ceremony):
    key, _ = world.sites[world.holders[0].label]
    with world.client(key, server.url) as client:
        assert client.pending() == []
        assert client.whoami()["vaults"] == {world.vf.vault.policy_id: world.holders[0].fingerprint.hex()}


def test_the_audit_export_verifies_and_records_the_ceremony(world, ceremony):
    result = verify_export_bytes(ceremony["export"])
    entries = [json.loads(line) for line in ceremony["export"].splitlines()[1:]]
    sid = ceremony["proposed"]["id"]
    events = [e["event"] for e in entries if e["session"] == sid]
    assert events.count("submission.accepted") == 3 and "session.finalized" in events
    assert result.count == len(entries)
    enrolled = {e["data"]["name"] for e in entries if e["event"] == "service.identity-enrolled"}
    assert {"alice-site", "ops", "auditor"} <= {n.replace("svc-", "") for n in enrolled}


def _forms(raw: bytes) -> "list[str]":
    b64 = base64.b64encode(raw).decode()
    return [b64[:40], b64[-40:], raw.hex()[:40], raw.hex()[-40:]]


def test_no_psbt_reaches_the_servers_logs_or_the_audit_log(world, server, ceremony):
    logs = server.logs()
    assert "POST /v1/envelopes" in logs and "GET /v1/requests" in logs  # the log is there and was captured
    audit = ceremony["export"].decode()
    for raw in [ceremony["unsigned"], *ceremony["partials"]]:
        for form in _forms(raw):
            assert form not in logs
            assert form not in audit


def test_the_client_refuses_a_server_the_pinned_ca_did_not_sign(world, server, tmp_path):
    stranger = make_test_pki(tmp_path / "other")
    with ServiceClient(server.url, world.auditor, ca=stranger.ca_cert) as client:
        with pytest.raises(ServiceUnreachable, match="pinned CA did not sign"):
            client.status("00000000")
    with world.client(world.auditor, server.url) as client:  # the right CA connects
        with pytest.raises(ServiceRefused) as e:
            client.status("00000000")
        assert e.value.remote_code == "coordinator.session-not-found" and e.value.http_status == 404


def test_a_refusal_envelope_is_recorded(world, server):
    from msigvault.service.client import seal_refusal

    with world.client(world.operator, server.url) as ops:
        proposed = ops.propose(world.vf.vault.policy_id, world.psbt(90_000))
    h = world.holders[1]
    key, _ = world.sites[h.label]
    with world.client(key, server.url) as client:
        (request,) = [r for r in client.pending() if r.session == proposed["id"]]
        opened = request.open(key, client.coordinator, ReplayGuard())
        assert opened.content_type is ContentType.PSBT
        answer = client.submit(seal_refusal(key, client.coordinator, request.session, request.fingerprint,
                                            "the fee is too high", sequence=1))
    assert answer["kind"] == "refusal"
    states = {c["fingerprint"]: c for c in answer["session"]["cosigners"]}
    assert states[h.fingerprint.hex()]["state"] == "refused"
    assert states[h.fingerprint.hex()]["reason"] == "the fee is too high"
    with world.client(world.operator, server.url) as ops:
        assert ops.cancel(proposed["id"], "replaced by a cheaper one")["status"] == "cancelled"
