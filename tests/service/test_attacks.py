"""Every attack on the service is refused with a JSON error and its code, and written to the audit log
(who, what, why; never the body): forged, tampered, replayed, stale and cross-coordinator requests, an
unknown identity, wrong roles, another vault's site, another cosigner's payload, another site's envelope,
a replayed envelope, an envelope carrying another session's PSBT, an oversized body, a flood."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import pytest

from msigvault.coordinator.audit import verify_export_bytes
from msigvault.coordinator.envelopes import submission_payload
from msigvault.identity import IdentityKey, ReplayGuard, seal
from msigvault.psbt.psbt import Psbt
from msigvault.service.auth import IDENTITY_HEADER, sign_request
from msigvault.service.client import seal_submission


def _error(response) -> "tuple[int, str]":
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"} and body["error"]["message"]
    return response.status_code, body["error"]["code"]


def _signed(client, key, method, path, body=b"", **overrides):
    """Headers for a request signed by ``key`` for this coordinator (``overrides`` change the signing inputs)."""
    params = {"coordinator_id": client.coordinator.id.hex(), "method": method, "target": path.encode(), "body": body}
    params.update(overrides)
    return sign_request(key, **params)


@pytest.fixture(scope="module")
def session(world, server):
    with world.client(world.operator, server.url) as ops:
        return ops.propose(world.vf.vault.policy_id, world.psbt(70_000))


@pytest.fixture(scope="module")
def alice(world, server):
    key, record = world.sites[world.holders[0].label]
    client = world.client(key, server.url)
    yield key, record, client
    client.close()


def _audited(world, server) -> "list[dict]":
    with world.client(world.auditor, server.url) as auditor:
        export = auditor.audit_export()
    verify_export_bytes(export)
    return [json.loads(line) for line in export.splitlines()[1:]]


REFUSED = []  # (identity id or None, code, path) of every refusal made below, checked against the audit log


def _refused(response, status, code, identity, path):
    assert _error(response) == (status, code)
    REFUSED.append((identity, code, path))


def test_a_forged_signature_is_refused(world, server, alice):
    key, _, client = alice
    mallory_key = world.mallory[0]
    headers = _signed(client, mallory_key, "GET", "/v1/requests")
    headers[IDENTITY_HEADER] = key.id.hex()  # claims to be alice, signed by mallory
    r = client.request("GET", "/v1/requests", headers=headers, signed=False)
    _refused(r, 401, "service.unauthenticated", key.id.hex(), "/v1/requests")


def test_a_request_changed_on_the_way_is_refused(world, server, alice, session):
    key, _, client = alice
    body = json.dumps({"envelope": base64.b64encode(b"x" * 100).decode()}).encode()
    headers = _signed(client, key, "POST", "/v1/envelopes", body)
    tampered = body.replace(b"x", b"y", 1) if b"x" in body else body + b" "
    r = client.request("POST", "/v1/envelopes", tampered, headers=headers, signed=False)
    _refused(r, 401, "service.unauthenticated", key.id.hex(), "/v1/envelopes")
    headers = _signed(client, key, "GET", f"/v1/sessions/{session['id']}")
    r = client.request("GET", "/v1/sessions/0000", headers=headers, signed=False)  # another path
    _refused(r, 401, "service.unauthenticated", key.id.hex(), "/v1/sessions/0000")


def test_a_request_signed_for_another_coordinator_is_refused(world, server, alice):
    key, _, client = alice
    headers = _signed(client, key, "GET", "/v1/identity", coordinator_id="ab" * 16)
    r = client.request("GET", "/v1/identity", headers=headers, signed=False)
    _refused(r, 401, "service.unauthenticated", key.id.hex(), "/v1/identity")


def test_an_unknown_identity_and_an_unsigned_request_are_refused(world, server, alice):
    _, _, client = alice
    stranger = IdentityKey.generate("stranger", "auditor")
    r = client.request("GET", "/v1/identity", headers=_signed(client, stranger, "GET", "/v1/identity"), signed=False)
    _refused(r, 401, "service.unauthenticated", stranger.id.hex(), "/v1/identity")
    r = client.request("GET", "/v1/audit", signed=False)
    _refused(r, 401, "service.unauthenticated", None, "/v1/audit")


def test_a_replayed_request_is_refused(world, server, alice):
    key, _, client = alice
    headers = _signed(client, key, "GET", "/v1/identity")
    first = client.request("GET", "/v1/identity", headers=headers, signed=False)
    assert first.status_code == 200 and first.json()["id"] == key.id.hex()
    again = client.request("GET", "/v1/identity", headers=headers, signed=False)
    _refused(again, 401, "service.replayed-request", key.id.hex(), "/v1/identity")


@pytest.mark.parametrize("skew", [-300, 300])
def test_a_stale_or_future_request_is_refused(world, server, alice, skew):
    key, _, client = alice
    headers = _signed(client, key, "GET", "/v1/identity", timestamp=int(time.time()) + skew)
    r = client.request("GET", "/v1/identity", headers=headers, signed=False)
    _refused(r, 401, "service.stale-request", key.id.hex(), "/v1/identity")


def test_each_role_is_held_to_its_routes(world, server, alice, session):
    key, _, site = alice
    with world.client(world.auditor, server.url) as auditor, world.client(world.operator, server.url) as ops:
        r = auditor.request("POST", "/v1/sessions", json.dumps({"vault": world.vf.vault.policy_id,
                                                                  "psbt": "AA=="}).encode())
        _refused(r, 403, "service.forbidden", world.auditor.id.hex(), "/v1/sessions")
        r = auditor.request("POST", f"/v1/sessions/{session['id']}/cancel", b"{}")
        _refused(r, 403, "service.forbidden", world.auditor.id.hex(), f"/v1/sessions/{session['id']}/cancel")
        r = ops.request("POST", "/v1/envelopes", json.dumps({"envelope": "AA=="}).encode())
        _refused(r, 403, "service.forbidden", world.operator.id.hex(), "/v1/envelopes")
        r = ops.request("GET", "/v1/requests")
        _refused(r, 403, "service.forbidden", world.operator.id.hex(), "/v1/requests")
        r = site.request("GET", "/v1/audit")
        _refused(r, 403, "service.forbidden", key.id.hex(), "/v1/audit")
        r = site.request("POST", "/v1/sessions", b"{}")
        _refused(r, 403, "service.forbidden", key.id.hex(), "/v1/sessions")
        assert auditor.status(session["id"])["status"] == "open"  # what the roles may do still works


def test_another_vaults_site_sees_and_submits_nothing_here(world, server, session):
    m_key, m_record, m_holder = world.mallory
    with world.client(m_key, server.url) as mallory:
        assert mallory.pending() == []
        r = mallory.request("GET", f"/v1/sessions/{session['id']}")
        # another vault's session answers as one that does not exist (no id, no existence leaked)
        _refused(r, 404, "coordinator.session-not-found", m_key.id.hex(), f"/v1/sessions/{session['id']}")
        assert session["id"] not in r.text
        raw = Psbt.parse(world.psbt(60_000)).serialize()  # whatever mallory claims to have signed
        envelope = seal_submission(m_key, mallory.coordinator, session["id"], m_holder.fingerprint.hex(), raw,
                                   sequence=1)
        r = mallory.request("POST", "/v1/envelopes", json.dumps({"envelope": base64.b64encode(envelope).decode()})
                            .encode())
        status, code = _error(r)
        assert status in (403, 422) and code in ("identity.record", "envelope.wrong-sender")
        REFUSED.append((m_key.id.hex(), code, "/v1/envelopes"))
    with world.client(world.auditor, server.url) as auditor:
        assert auditor.status(session["id"])["signed"] == []


def _submit(client, envelope):
    return client.request("POST", "/v1/envelopes", json.dumps({"envelope": base64.b64encode(envelope).decode()})
                          .encode())


def test_a_payload_for_another_cosigner_is_refused(world, server, alice, session):
    key, _, client = alice
    bob = world.holders[1]
    (request,) = [r for r in client.pending() if r.session == session["id"]]
    unsigned = request.open(key, client.coordinator, ReplayGuard()).payload
    signed_by_bob, _ = world.vf.vault.sign(Psbt.parse(unsigned), bob.root)
    envelope = seal_submission(key, client.coordinator, session["id"], bob.fingerprint.hex(),
                               signed_by_bob.serialize(), sequence=10)
    _refused(_submit(client, envelope), 403, "envelope.wrong-sender", key.id.hex(), "/v1/envelopes")


def test_another_sites_envelope_is_refused_from_this_identity(world, server, alice, session):
    """Alice's connection carries an envelope bob's site sealed: the sender must be the caller."""
    key, _, client = alice
    bob = world.holders[1]
    bob_key, _ = world.sites[bob.label]
    raw = world.vf.vault.sign(Psbt.parse(_unsigned(world, server, session)), bob.root)[0].serialize()
    envelope = seal_submission(bob_key, client.coordinator, session["id"], bob.fingerprint.hex(), raw, sequence=1)
    _refused(_submit(client, envelope), 403, "envelope.wrong-sender", key.id.hex(), "/v1/envelopes")


def _unsigned(world, server, session) -> bytes:
    key, _ = world.sites[world.holders[2].label]
    with world.client(key, server.url) as carol:
        (request,) = [r for r in carol.pending() if r.session == session["id"]]
        return request.open(key, carol.coordinator, ReplayGuard()).payload


def test_a_replayed_envelope_is_refused(world, server, alice, session):
    key, _, client = alice
    raw = world.vf.vault.sign(Psbt.parse(_unsigned(world, server, session)), world.holders[0].root)[0].serialize()
    envelope = seal_submission(key, client.coordinator, session["id"], world.holders[0].fingerprint.hex(), raw,
                               sequence=20)
    assert client.submit(envelope)["outcome"] == "accepted"
    _refused(_submit(client, envelope), 409, "envelope.replayed", key.id.hex(), "/v1/envelopes")
    older = seal_submission(key, client.coordinator, session["id"], world.holders[0].fingerprint.hex(), raw,
                            sequence=19)
    _refused(_submit(client, older), 409, "envelope.out-of-order", key.id.hex(), "/v1/envelopes")


def test_an_envelope_for_another_session_is_refused(world, server, alice, session):
    """An envelope for a second session carrying a signature of the first session's PSBT."""
    key, _, client = alice
    with world.client(world.operator, server.url) as ops:
        other = ops.propose(world.vf.vault.policy_id, world.psbt(65_000))
    raw = world.vf.vault.sign(Psbt.parse(_unsigned(world, server, session)), world.holders[0].root)[0].serialize()
    payload = submission_payload(key, other["id"], world.holders[0].fingerprint.hex(), raw)
    envelope = seal(payload, sender=key, recipient=client.coordinator, session_id=other["id"], sequence=1,
                    content_type="partial-signature", expires=dt.timedelta(hours=1))
    _refused(_submit(client, envelope), 422, "coordinator.submission-refused", key.id.hex(), "/v1/envelopes")
    assert client.status(other["id"])["signed"] == []


def test_an_oversized_body_is_refused_unread(world, server, alice):
    key, _, client = alice
    marker = b"OVERSIZED-BODY-MARKER"
    body = marker + b"A" * (256 * 1024)
    r = client.request("POST", "/v1/envelopes", body)
    _refused(r, 413, "service.too-large", key.id.hex(), "/v1/envelopes")
    assert marker.decode() not in json.dumps(_audited(world, server)) and marker.decode() not in server.logs()


def test_a_malformed_body_is_refused(world, server, alice):
    key, _, client = alice
    for body in (b"not json", b"[]", b'{"envelope": 5}', b'{"envelope": "!!"}', b'{"envelope": "", "SECRETX": 1}'):
        r = client.request("POST", "/v1/envelopes", body)
        assert _error(r) == (400, "service.bad-request"), body
        assert "SECRETX" not in r.text  # the body is never echoed
    REFUSED.append((key.id.hex(), "service.bad-request", "/v1/envelopes"))


def test_a_flood_is_rate_limited(world, server):
    """The server allows a burst of 30 per identity: of 45 requests at once, the last are refused."""
    with world.client(world.flooder, server.url) as flooder:
        codes = [flooder.request("GET", "/v1/identity").status_code for _ in range(45)]
        assert codes.count(200) >= 30 and codes.count(429) >= 10 and codes[-1] == 429
        r = flooder.request("GET", "/v1/identity")
        _refused(r, 429, "service.rate-limited", world.flooder.id.hex(), "/v1/identity")
    with world.client(world.auditor, server.url) as auditor:  # another identity is not slowed down
        assert auditor.whoami()["role"] == "auditor"


def test_unknown_routes_and_methods_answer_json_errors(world, server, alice):
    _, _, client = alice
    assert _error(client.request("GET", "/v1/nothing")) == (404, "service.not-found")
    assert _error(client.request("DELETE", "/v1/requests")) == (405, "service.bad-request")


def test_every_refusal_is_in_the_audit_log(world, server):
    """Runs last: each refusal above has a service.refused entry naming who, what and why."""
    assert len(REFUSED) >= 20
    entries = [e for e in _audited(world, server) if e["event"] == "service.refused"]
    assert "SECRETX" not in json.dumps(entries)  # a body's field name is not echoed into the log either
    seen = {(e["data"]["identity"], e["data"]["code"], e["data"]["path"]) for e in entries}
    missing = [r for r in REFUSED if r not in seen]
    assert not missing, missing
    for e in entries:
        assert e["actor"] == (f"identity:{e['data']['identity']}" if e["data"]["authenticated"]
                              else "unauthenticated")  # a claimed id is data, never the entry's actor
        assert e["data"]["reason"] and e["data"]["method"]
        assert set(e["data"]) == {"identity", "authenticated", "suppressed", "name", "role", "method", "path",
                                  "remote", "status", "code", "reason"}
    rate = [e for e in entries if e["data"]["code"] == "service.rate-limited"]
    assert 1 <= len(rate) <= 3  # a flood is audited once per interval, not once per request
