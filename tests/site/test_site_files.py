"""The files that cross the air gap and the folder, in-process: strict parsing, the checks that bind an answer to
its request, and a pull that refuses what a hostile relay or coordinator could hand a site."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os

import pytest

from msigvault.identity import ContentType, IdentityKey, ReplayGuard, open_envelope, seal
from msigvault.site.errors import FolderError, SiteRequestError, SiteResponseError
from msigvault.site.folder import SiteFolder, read_limited
from msigvault.site.online import next_sequence, pull_from_folder, seal_response
from msigvault.site.request import MAX_FILE, SiteRequest, SiteResponse
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.samples import example_psbt

ALICE = TestKeyholder.from_label("alice")


@pytest.fixture(scope="module")
def parts():
    vault, psbt = example_psbt(inputs=2)
    _, other = example_psbt(inputs=3)
    coordinator = IdentityKey.generate("coordinator", "coordinator")
    site = IdentityKey.generate("alice-site", "keyholder-site")
    request = SiteRequest("3fa1c0de", vault.policy_id, "treasury", ALICE.fingerprint.hex(), "rent",
                          "2026-12-02T10:00:00Z", coordinator.id.hex(), "coordinator", 7, psbt.serialize())
    return {"vault": vault, "psbt": psbt.serialize(), "other": other.serialize(), "coordinator": coordinator,
            "coordinator_record": coordinator.record("regtest"), "site": site, "request": request}


def _edit(data: bytes, **changes) -> bytes:
    obj = json.loads(data)
    obj.update(changes)
    return json.dumps(obj).encode()


def test_a_request_file_round_trips_and_shows_no_psbt_in_its_repr(parts):
    request = parts["request"]
    assert SiteRequest.from_bytes(request.to_bytes()) == request
    assert base64.b64encode(parts["psbt"]).decode()[:40] not in repr(request)
    assert request.to_dict()["psbt_sha256"] == request.psbt_sha256


@pytest.mark.parametrize("changes, what", [
    ({"psbt": None}, "type"),
    ({"psbt_sha256": "00" * 32}, "does not match"),
    ({"format": "msigvault-site-response"}, "not a msigvault-site-request"),
    ({"version": 2}, "version 1"),
    ({"extra": 1}, "unknown fields"),
    ({"sequence": True}, "wrong type"),
    ({"sequence": -1}, "out of range"),
    ({"session": "../../etc"}, "session id"),
    ({"fingerprint": "ABCDEF01"}, "fingerprint"),
    ({"coordinator_id": "zz" * 16}, "coordinator_id"),
    ({"vault": "00"}, "policy id"),
    # the expiry is shown beside the signer's summary: no escape sequence may ride in it (it was not checked)
    ({"expires": "2026-12-02T10:00:00Z\x1b[8m"}, "expires"),
    ({"expires": "tomorrow"}, "expires"),
    ({"expires": "\u0662026-12-02T10:00:00Z"}, "expires"),
])
def test_an_edited_request_file_is_refused(parts, changes, what):
    with pytest.raises(SiteRequestError, match=what):
        SiteRequest.from_bytes(_edit(parts["request"].to_bytes(), **changes))


def test_a_request_with_another_psbt_but_its_hash_fixed_up_still_fails_the_vault_check_on_the_laptop(parts):
    """Whoever edits the file can fix the hash; the laptop's vault and cosigner checks do not depend on it."""
    request = parts["request"]
    forged = _edit(request.to_bytes(), vault="11" * 32)
    with pytest.raises(SiteRequestError, match="not for the vault you gave"):
        SiteRequest.from_bytes(forged).check_vault(parts["vault"], ALICE.fingerprint.hex())
    with pytest.raises(SiteRequestError, match="asks cosigner"):
        request.check_vault(parts["vault"], TestKeyholder.from_label("bob").fingerprint.hex())
    request.check_vault(parts["vault"], ALICE.fingerprint.hex())


def test_oversized_and_non_json_request_files_are_refused_unparsed(parts):
    with pytest.raises(SiteRequestError, match="larger than"):
        SiteRequest.from_bytes(b" " * (MAX_FILE + 1))
    with pytest.raises(SiteRequestError, match="not JSON"):
        SiteRequest.from_bytes(b"\xff\xfe{")


def test_a_response_answers_only_its_own_request(parts):
    request = parts["request"]
    signed = SiteResponse.signed(request, parts["psbt"])
    assert SiteResponse.from_bytes(signed.to_bytes()) == signed
    signed.check_answers(request)
    other_session = SiteRequest.from_bytes(_edit(request.to_bytes(), session="another"))
    with pytest.raises(SiteResponseError, match="answers session 3fa1c0de"):
        signed.check_answers(other_session)
    wrong_tx = SiteResponse.signed(request, parts["other"])  # a signed copy of another transaction
    with pytest.raises(SiteResponseError, match="for transaction"):
        wrong_tx.check_answers(request)
    with pytest.raises(SiteResponseError, match="1 to 2000 bytes"):
        SiteResponse.refused(request, "")
    with pytest.raises(SiteResponseError, match="1 to 2000 bytes"):
        SiteResponse.refused(request, "x" * 2001)
    with pytest.raises(SiteResponseError, match="carries a PSBT"):
        SiteResponse("partial-signature", request.session, request.fingerprint, request.psbt_sha256)


def test_an_answer_is_sealed_to_the_coordinator_that_asked(parts):
    request, site = parts["request"], parts["site"]
    site_record = site.record("regtest", root=ALICE.root, cosigner=ALICE.cosigner("wsh"))
    sealed = seal_response(site, parts["coordinator_record"], request, SiteResponse.refused(request, "not today"))
    opened = open_envelope(sealed.envelope, recipient=parts["coordinator"], senders=[site_record],
                           guard=ReplayGuard())
    payload = json.loads(opened.payload)
    assert opened.content_type is ContentType.REFUSAL and opened.session_id == request.session
    assert payload["reason"] == "not today" and payload["fingerprint"] == request.fingerprint
    assert repr(sealed).startswith("Sealed(session='3fa1c0de'")
    stranger = IdentityKey.generate("other-coordinator", "coordinator").record("regtest")
    with pytest.raises(SiteRequestError, match="push it to the coordinator that asked"):
        seal_response(site, stranger, request, SiteResponse.refused(request, "not today"))


def test_an_answer_left_in_a_folder_lives_as_long_as_its_request(parts):
    """A folder may be a USB stick carried between cities: before, an answer expired an hour after sealing
    whatever the transport, so one carried for a day was refused as expired at the folder-sync."""
    import dataclasses

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    request = dataclasses.replace(parts["request"], expires=(now + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    site, coordinator = parts["site"], parts["coordinator"]
    site_record = site.record("regtest", root=ALICE.root, cosigner=ALICE.cosigner("wsh"))
    response = SiteResponse.refused(request, "not today")
    carried = seal_response(site, parts["coordinator_record"], request, response, until_request_expires=True)
    opened = open_envelope(carried.envelope, recipient=coordinator, senders=[site_record], guard=ReplayGuard(),
                           now=now + dt.timedelta(days=1))  # a day on the road: still valid
    assert opened.expires == now + dt.timedelta(days=2)
    direct = seal_response(site, parts["coordinator_record"], request, response)  # over the service: one hour
    opened = open_envelope(direct.envelope, recipient=coordinator, senders=[site_record], guard=ReplayGuard())
    assert opened.expires - opened.created == dt.timedelta(hours=1)
    far = dataclasses.replace(request, expires="2099-01-01T00:00:00Z")  # an edited request: at most 90 days
    opened = open_envelope(seal_response(site, parts["coordinator_record"], far, SiteResponse.refused(far, "no"),
                                         until_request_expires=True).envelope,
                           recipient=coordinator, senders=[site_record], guard=ReplayGuard())
    assert opened.expires - opened.created <= dt.timedelta(days=90, seconds=1)


def test_sequences_only_grow():
    seen = [next_sequence() for _ in range(1000)]
    assert seen == sorted(set(seen))


# -- pulling from a folder a hostile relay wrote into ---------------------------------------------


def _leave(parts, root, session, *, payload=None, kind=ContentType.PSBT, sealed_session=None, context=None):
    site, coordinator = parts["site"], parts["coordinator"]
    folder = SiteFolder.at(root, site.id.hex(), create=True)
    envelope = seal(parts["psbt"] if payload is None else payload, sender=coordinator,
                    recipient=site.record("regtest", root=ALICE.root, cosigner=ALICE.cosigner("wsh")),
                    session_id=sealed_session or session, sequence=next_sequence(), content_type=kind,
                    expires=dt.timedelta(hours=1))
    import hashlib

    ctx = {"session": session, "vault": parts["vault"].policy_id, "vault_name": "treasury",
           "fingerprint": ALICE.fingerprint.hex(), "memo": "", "expires_at": None,
           "psbt_sha256": hashlib.sha256(parts["psbt"]).hexdigest(), **(context or {})}
    folder.write_request(session, envelope, ctx)


def test_pull_from_folder_refuses_what_does_not_match(parts, tmp_path):
    _leave(parts, tmp_path, "good")
    _leave(parts, tmp_path, "mixed", sealed_session="good")  # a relay renamed another session's request
    _leave(parts, tmp_path, "wrongtype", kind=ContentType.REFUSAL)
    _leave(parts, tmp_path, "wronghash", context={"psbt_sha256": "00" * 32})
    _leave(parts, tmp_path, "wrongfp", context={"fingerprint": "deadbeef"})
    pulled = pull_from_folder(tmp_path, parts["site"], parts["coordinator_record"], ReplayGuard(),
                              fingerprint=ALICE.fingerprint.hex())
    assert [r.session for r in pulled.requests] == ["good"]
    assert pulled.requests[0].psbt == parts["psbt"] and pulled.requests[0].coordinator_name == "coordinator"
    refused = {session: (code, message) for session, code, message in pulled.refused}
    assert set(refused) == {"mixed", "wrongtype", "wronghash", "wrongfp"}
    assert {code for code, _ in refused.values()} == {"site.request"}
    assert "sealed for session good" in refused["mixed"][1]


def test_pull_from_folder_refuses_a_request_sealed_by_someone_else(parts, tmp_path):
    _leave(parts, tmp_path, "s1")
    impostor = IdentityKey.generate("coordinator", "coordinator")  # same name, another key
    pulled = pull_from_folder(tmp_path, parts["site"], impostor.record("regtest"), ReplayGuard())
    assert pulled.requests == () and [c for _, c, _ in pulled.refused] == ["envelope.wrong-sender"]


def test_the_folder_reads_with_limits_and_refuses_links(tmp_path):
    with pytest.raises(FolderError, match="does not exist"):
        SiteFolder.at(tmp_path / "missing", "00" * 16)
    big = tmp_path / "big.msve"
    big.write_bytes(b"x" * 101)
    with pytest.raises(FolderError, match="larger than 100 bytes"):
        read_limited(big, 100)
    link = tmp_path / "link.msve"
    os.symlink(big, link)
    with pytest.raises(FolderError, match="not a plain file"):
        read_limited(link, 1000)
    folder = SiteFolder.at(tmp_path, "00" * 16, create=True)
    (folder.outbox / "not-an-envelope.txt").write_text("x")
    (folder.outbox / ".s1-5.msve.abc.tmp").write_text("x")  # a half-written file is never read
    (folder.outbox / "s1-5.msve").write_bytes(b"MSVE")
    assert [(p.name, s, n) for p, s, n in folder.outgoing()] == [("s1-5.msve", "s1", 5)]


def test_two_syncs_never_both_take_one_envelope(tmp_path):
    folder = SiteFolder.at(tmp_path, "00" * 16, create=True)
    path = folder.outbox / "s1-5.msve"
    path.write_bytes(b"MSVE")
    first = folder.claim(path)
    assert first == folder.processed / "s1-5.msve" and not path.exists()
    assert folder.claim(path) is None  # the second sync finds it gone
    path.write_bytes(b"MSVE again")  # the same name once more (a replay): filed beside, never over, the first
    again = folder.claim(path)
    assert again is not None and again != first and first.read_bytes() == b"MSVE"
    folder.record_result(again, {"outcome": "refused"})
    assert [r["outcome"] for r in folder.results()] == ["refused"]
