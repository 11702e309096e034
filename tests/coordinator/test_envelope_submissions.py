"""Submissions as sealed envelopes: opened, sender checked against the vault registration, then submitted."""

from __future__ import annotations

import datetime as dt

import pytest

from msigvault.coordinator.envelopes import refusal_payload, submission_payload, submit_envelope
from msigvault.identity import EnvelopeReplayed, IdentityKey, ReplayGuard, WrongSender, seal
from msigvault.testing.utxos import synthetic_utxo


@pytest.fixture
def setup(kit, tmp_path):
    vf = kit.make_vault_file("wsh")
    alice, bob, _ = kit.HOLDERS
    sites = {}
    for h in (alice, bob):
        key = IdentityKey.generate(f"{h.label}-site", "keyholder-site")
        sites[h.label] = (key, key.record("regtest", root=h.root, cosigner=h.cosigner("wsh")))
    me = IdentityKey.generate("coordinator", "coordinator")
    co = kit.open_coordinator(f"sqlite:///{tmp_path / 'co.sqlite'}")
    co.register_vault(vf, {alice.fingerprint.hex(): sites[alice.label][1].signing_key.hex()})
    utxos = [synthetic_utxo(vf.vault, 100_000, index=i, seed=f"env{i}") for i in range(2)]
    psbt = vf.vault.create_psbt(utxos, [(kit.PAYEE, 120_000)], fee_rate=2.0, change_index=0)
    session = co.new_session(vf, psbt)
    return kit, vf, co, me, me.record("regtest"), sites, session, psbt


def _envelope(site, coordinator_record, session_id, payload, seq=1, kind="partial-signature"):
    return seal(payload, sender=site[0], recipient=coordinator_record, session_id=session_id, sequence=seq,
                content_type=kind, expires=dt.timedelta(hours=1))


def test_a_sites_envelope_is_submitted_and_attested(setup):
    kit, vf, co, me, me_record, sites, session, psbt = setup
    alice = kit.HOLDERS[0]
    raw = kit.signed_copy(vf, psbt, alice)
    env = _envelope(sites[alice.label], me_record, session.id,
                    submission_payload(sites[alice.label][0], session.id, alice.fingerprint.hex(), raw))
    guard = ReplayGuard()
    result = submit_envelope(co, env, identity=me, senders=[r for _, r in sites.values()], guard=guard)
    assert result.outcome == "accepted" and result.signers == (alice.fingerprint.hex(),)
    entry = [e for e in co.audit_entries(session.id) if e["event"] == "submission.accepted"][-1]
    assert entry["attestation"]["key"] == sites[alice.label][1].signing_key.hex()
    co.verify_log()
    with pytest.raises(EnvelopeReplayed):
        submit_envelope(co, env, identity=me, senders=[r for _, r in sites.values()], guard=guard)


def test_a_site_without_the_registered_identity_is_refused_before_submit(setup):
    """Bob's site is genuine (signed by bob's vault key) but the vault lists no identity for bob."""
    kit, vf, co, me, me_record, sites, session, psbt = setup
    bob = kit.HOLDERS[1]
    raw = kit.signed_copy(vf, psbt, bob)
    env = _envelope(sites[bob.label], me_record, session.id,
                    submission_payload(sites[bob.label][0], session.id, bob.fingerprint.hex(), raw))
    with pytest.raises(WrongSender, match="no identity key"):
        submit_envelope(co, env, identity=me, senders=[r for _, r in sites.values()], guard=ReplayGuard())
    assert co.submissions(session.id) == []


def test_a_payload_for_another_cosigner_is_refused(setup):
    kit, vf, co, me, me_record, sites, session, psbt = setup
    alice, bob = kit.HOLDERS[:2]
    raw = kit.signed_copy(vf, psbt, bob)
    env = _envelope(sites[alice.label], me_record, session.id,
                    submission_payload(sites[alice.label][0], session.id, bob.fingerprint.hex(), raw))
    with pytest.raises(WrongSender, match="speaks for cosigner"):
        submit_envelope(co, env, identity=me, senders=[r for _, r in sites.values()], guard=ReplayGuard())
    assert co.submissions(session.id) == []


def test_a_refusal_envelope_is_recorded_with_its_attestation(setup):
    kit, vf, co, me, me_record, sites, session, psbt = setup
    alice = kit.HOLDERS[0]
    env = _envelope(sites[alice.label], me_record, session.id,
                    refusal_payload(sites[alice.label][0], session.id, alice.fingerprint.hex(), "fee too high"),
                    kind="refusal")
    updated = submit_envelope(co, env, identity=me, senders=[r for _, r in sites.values()], guard=ReplayGuard())
    assert updated.cosigner(alice.fingerprint.hex()).reason == "fee too high"
    entry = [e for e in co.audit_entries(session.id) if e["event"] == "cosigner.refused"][-1]
    assert entry["attestation"]["statement"]["reason"] == "fee too high"


def test_only_keyholder_sites_submit(setup):
    kit, vf, co, me, me_record, sites, session, psbt = setup
    alice = kit.HOLDERS[0]
    other = IdentityKey.generate("other-coordinator", "coordinator")
    raw = kit.signed_copy(vf, psbt, alice)
    env = seal(submission_payload(other, session.id, alice.fingerprint.hex(), raw), sender=other,
               recipient=me_record, session_id=session.id, sequence=1, content_type="partial-signature",
               expires=dt.timedelta(hours=1))
    with pytest.raises(WrongSender, match="only keyholder sites"):
        submit_envelope(co, env, identity=me, senders=[other.record("regtest")], guard=ReplayGuard())
    assert co.submissions(session.id) == []


def test_an_envelope_for_one_session_carrying_another_sessions_psbt_is_refused(setup):
    """The statement signature names the session, and the PSBT's txid must be that session's."""
    from msigvault.coordinator import SubmissionRefused

    kit, vf, co, me, me_record, sites, session, psbt = setup
    alice = kit.HOLDERS[0]
    utxos = [synthetic_utxo(vf.vault, 90_000, index=5, seed="other")]
    other = co.new_session(vf, vf.vault.create_psbt(utxos, [(kit.PAYEE, 50_000)], fee_rate=2.0, change_index=1))
    raw_other = kit.signed_copy(vf, vf.vault.create_psbt(utxos, [(kit.PAYEE, 50_000)], fee_rate=2.0,
                                                         change_index=1), alice)
    env = _envelope(sites[alice.label], me_record, session.id,
                    submission_payload(sites[alice.label][0], session.id, alice.fingerprint.hex(), raw_other))
    with pytest.raises(SubmissionRefused, match="another transaction"):
        submit_envelope(co, env, identity=me, senders=[r for _, r in sites.values()], guard=ReplayGuard())
    # a statement made for the other session does not pass in this one either
    env = _envelope(sites[alice.label], me_record, session.id,
                    submission_payload(sites[alice.label][0], other.id, alice.fingerprint.hex(),
                                       kit.signed_copy(vf, psbt, alice)), seq=2)
    with pytest.raises(SubmissionRefused, match="identity signature"):
        submit_envelope(co, env, identity=me, senders=[r for _, r in sites.values()], guard=ReplayGuard())


def test_site_records_are_verified_before_they_are_registered(kit, tmp_path):
    from msigvault.coordinator.envelopes import register_site_records
    from msigvault.identity import IdentityRecordError

    vf = kit.make_vault_file("wsh")
    alice, bob, carol = kit.HOLDERS
    co = kit.open_coordinator(f"sqlite:///{tmp_path / 'reg.sqlite'}")
    good = {h.label: IdentityKey.generate(f"{h.label}-site", "keyholder-site").record(
        "regtest", root=h.root, cosigner=h.cosigner("wsh")) for h in (alice, bob)}
    pid = register_site_records(co, vf, good.values())
    assert co.identities(pid) == {alice.fingerprint.hex(): good[alice.label].signing_key.hex(),
                                  bob.fingerprint.hex(): good[bob.label].signing_key.hex()}
    # a record "for carol" that carol's vault key did not sign (the coordinator made it up)
    fake = IdentityKey.generate("carol-site", "keyholder-site").record("regtest", root=bob.root,
                                                                       cosigner=bob.cosigner("wsh"))
    from msigvault.identity import IdentityRecord

    forged = IdentityRecord(fake.name, fake.role, fake.signing_key, fake.encryption_key, str(carol.cosigner("wsh")),
                            fake.network, fake.created, fake.self_signature, fake.cosigner_signature)
    with pytest.raises(IdentityRecordError):
        register_site_records(co, vf, [forged])
    with pytest.raises(WrongSender, match="one identity per cosigner"):
        register_site_records(co, vf, [good[alice.label], IdentityKey.generate("a2", "keyholder-site").record(
            "regtest", root=alice.root, cosigner=alice.cosigner("wsh"))])
    assert co.identities(pid) == {alice.fingerprint.hex(): good[alice.label].signing_key.hex(),
                                  bob.fingerprint.hex(): good[bob.label].signing_key.hex()}


def _refused_entries(co):
    return [e for e in co.audit_entries() if e["event"] == "envelope.refused"]


def test_refused_envelopes_are_recorded_without_their_payload(setup):
    """Replayed, tampered, wrong sender, another cosigner's payload, unknown session: each one an
    envelope.refused entry (who, what, why), no session changed, the PSBT nowhere in the log."""
    import base64
    import hashlib

    from msigvault.identity import EnvelopeTampered

    kit, vf, co, me, me_record, sites, session, psbt = setup
    alice, bob = kit.HOLDERS[:2]
    senders = [r for _, r in sites.values()]
    raw = kit.signed_copy(vf, psbt, alice)
    guard = ReplayGuard()
    good = _envelope(sites[alice.label], me_record, session.id,
                     submission_payload(sites[alice.label][0], session.id, alice.fingerprint.hex(), raw))
    assert submit_envelope(co, good, identity=me, senders=senders, guard=guard).outcome == "accepted"
    assert _refused_entries(co) == []
    before = co.get(session.id)
    tampered = bytearray(_envelope(sites[alice.label], me_record, session.id,
                                   submission_payload(sites[alice.label][0], session.id, alice.fingerprint.hex(),
                                                      raw), seq=2))
    tampered[-40] ^= 1
    raw_bob = kit.signed_copy(vf, psbt, bob)
    cases = [
        (good, EnvelopeReplayed, "envelope.replayed", None),
        (bytes(tampered), EnvelopeTampered, "envelope.tampered", None),
        (_envelope(sites[bob.label], me_record, session.id,
                   submission_payload(sites[bob.label][0], session.id, bob.fingerprint.hex(), raw_bob)),
         WrongSender, "envelope.wrong-sender", bob),
        (_envelope(sites[alice.label], me_record, session.id,
                   submission_payload(sites[alice.label][0], session.id, bob.fingerprint.hex(), raw_bob), seq=3),
         WrongSender, "envelope.wrong-sender", alice),
    ]
    for data, error, code, sender in cases:
        with pytest.raises(error):
            submit_envelope(co, data, identity=me, senders=senders, guard=guard)
        entry = _refused_entries(co)[-1]
        assert entry["actor"] == "coordinator" and entry["data"]["code"] == code
        assert entry["data"]["envelope_sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["data"]["bytes"] == len(data) and entry["data"]["reason"]
        if sender is None:  # not opened (or opened inside the replay check): no sender claimed
            assert entry["data"]["sender"] is None and entry["session"] is None
        else:  # opened: the authenticated sender and the session are named
            assert entry["data"]["fingerprint"] == sender.fingerprint.hex()
            assert entry["data"]["sender"] == sites[sender.label][1].id.hex()
            assert entry["session"] == session.id and entry["data"]["content_type"] == "partial-signature"
    ghost = _envelope(sites[alice.label], me_record, "ffffffffffffffff",
                      submission_payload(sites[alice.label][0], "ffffffffffffffff", alice.fingerprint.hex(), raw),
                      seq=4)
    with pytest.raises(Exception, match="no session"):
        submit_envelope(co, ghost, identity=me, senders=senders, guard=guard)
    entry = _refused_entries(co)[-1]
    assert entry["data"]["code"] == "coordinator.session-not-found" and entry["session"] is None
    assert entry["data"]["session"] == "ffffffffffffffff"
    assert len(_refused_entries(co)) == 5
    after = co.get(session.id)
    assert after.cosigners == before.cosigners and after.status is before.status
    assert co.submissions(session.id) == [s for s in co.submissions(session.id) if s["outcome"] == "accepted"]
    log = b"\n".join(co.audit_lines())
    for payload in (raw, raw_bob):
        assert base64.b64encode(payload) not in log and payload.hex().encode() not in log
    co.verify_log()
