"""Signing sessions on SQLite and PostgreSQL: the ceremony, refusals, idempotence, lifecycle."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from msigvault.coordinator import db as D
from msigvault.coordinator.errors import CoinInUse, SessionStateError, SubmissionRefused
from msigvault.coordinator.sessions import CosignerState, Status
from msigvault.psbt import fields as F
from msigvault.psbt.psbt import Psbt


@pytest.mark.parametrize("script", ["sh", "sh-wsh", "wsh", "tr"])
def test_whole_ceremony_through_a_session(kit, db_url, chain, script):
    vf = kit.make_vault_file(script)
    co = kit.open_coordinator(db_url, chain)
    pid = co.register_vault(vf, kit.identity_keys())
    psbt = kit.funded_psbt(chain, vf)
    s = co.new_session(pid, psbt, memo="rent", proposed_by="ops")
    assert s.status is Status.OPEN and s.signatures_needed == 2
    assert [c.state for c in s.cosigners] == [CosignerState.REQUESTED] * 3
    assert s.summary["outputs"][0]["amount"] == 100_000 or s.summary["outputs"][1]["amount"] == 100_000
    alice, bob, carol = kit.HOLDERS
    raw = kit.signed_copy(vf, psbt, carol)
    r = co.submit(s.id, raw, identity_signatures=kit.attest(s.id, raw, carol))
    assert r.outcome == "accepted" and r.signers == (carol.fingerprint.hex(),)
    assert r.session.status is Status.OPEN and r.session.signed == [carol.fingerprint.hex()]
    raw = kit.signed_copy(vf, psbt, alice)
    r = co.submit(s.id, raw, identity_signatures=kit.attest(s.id, raw, alice))
    s = r.session
    # m signatures in: finalized, extracted against the chain's UTXOs, broadcast (mined) and confirmed
    assert s.status is Status.CONFIRMED and s.confirmations >= 1
    assert chain.get_tx(s.final_txid) is not None
    assert (s.final_txid == s.txid) == (script in ("wsh", "tr"))  # native segwit: no scriptSig in the txid
    assert sum(u.amount for u in chain.utxos(kit.PAYEE) if u.txid == s.final_txid) == 100_000
    events = [e["event"] for e in co.audit_entries(s.id)]
    assert events == ["session.created"] + ["cosigner.requested"] * 3 + [
        "submission.accepted", "submission.accepted", "session.finalized", "session.broadcast", "session.confirmed"]
    finalized = next(e for e in co.audit_entries(s.id) if e["event"] == "session.finalized")
    assert finalized["data"]["verified_against"] == "caller"  # the backend's UTXOs, not the PSBT's claims
    result = co.verify_log()
    assert result.count == len(co.audit_lines())
    # a late, valid signature is recorded, the transaction is unchanged
    raw = kit.signed_copy(vf, psbt, bob)
    late = co.submit(s.id, raw, identity_signatures=kit.attest(s.id, raw, bob))
    assert late.outcome == "accepted" and late.session.final_txid == s.final_txid
    assert late.session.status is Status.CONFIRMED and len(late.session.signed) == 3


def _refusal_cases(kit, vf, psbt, other_psbt):
    alice = kit.HOLDERS[0]
    good = Psbt.parse(kit.signed_copy(vf, psbt, alice))
    bad_sig = good.copy()
    for m in bad_sig.inputs:
        for key, value in m.items_of_type(F.PSBT_IN_PARTIAL_SIG):
            v = bytearray(value)
            v[10] ^= 1
            m.set(F.PSBT_IN_PARTIAL_SIG, key, bytes(v))
    foreign = good.copy()
    [(_, sig)] = good.inputs[0].items_of_type(F.PSBT_IN_PARTIAL_SIG)
    generator = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    foreign.inputs[0].set(F.PSBT_IN_PARTIAL_SIG, generator, sig)
    only_some = Psbt.parse(psbt.serialize())
    [(key, value)] = [kv for kv in good.inputs[0].items_of_type(F.PSBT_IN_PARTIAL_SIG)]
    only_some.inputs[0].set(F.PSBT_IN_PARTIAL_SIG, key, value)
    return {
        "another transaction": kit.signed_copy(vf, other_psbt, alice),
        "do not verify": bad_sig.serialize(),
        "not a vault key": foreign.serialize(),
        "no complete signature": only_some.serialize(),
        "not a valid PSBT": b"psbt\xff\x00garbage",
    }


def test_bad_submissions_are_refused_and_recorded(kit, db_url, chain):
    vf = kit.make_vault_file("wsh")
    co = kit.open_coordinator(db_url, chain)
    pid = co.register_vault(vf)
    psbt = kit.funded_psbt(chain, vf)
    other = kit.funded_psbt(chain, vf, amounts=(70_000,), pay=50_000, index=1)
    s = co.new_session(pid, psbt)
    cases = _refusal_cases(kit, vf, psbt, other)
    for words, raw in cases.items():
        with pytest.raises(SubmissionRefused, match=words):
            co.submit(s.id, raw)
    subs = co.submissions(s.id)
    assert [x["outcome"] for x in subs] == ["refused"] * len(cases)
    assert {x["psbt_sha256"] for x in subs} == {hashlib.sha256(r).hexdigest() for r in cases.values()}
    refused = [e for e in co.audit_entries(s.id) if e["event"] == "submission.refused"]
    assert len(refused) == len(cases)
    # the same refused bytes again: refused, nothing more written
    before = len(co.audit_lines())
    with pytest.raises(SubmissionRefused, match="refused before"):
        co.submit(s.id, cases["do not verify"])
    assert len(co.audit_lines()) == before
    s = co.get(s.id)
    assert s.status is Status.OPEN and s.signed == []
    co.verify_log()


def test_identity_signature_is_required_when_registered(kit, db_url, chain):
    vf = kit.make_vault_file("wsh")
    co = kit.open_coordinator(db_url, chain)
    pid = co.register_vault(vf, kit.identity_keys())
    psbt = kit.funded_psbt(chain, vf)
    s = co.new_session(pid, psbt)
    alice, bob = kit.HOLDERS[:2]
    raw = kit.signed_copy(vf, psbt, alice)
    with pytest.raises(SubmissionRefused, match="identity signature"):
        co.submit(s.id, raw)
    raw_b = kit.signed_copy(vf, psbt, bob)
    with pytest.raises(SubmissionRefused, match="does not verify"):  # alice's statement on bob's copy
        co.submit(s.id, raw_b, identity_signatures={bob.fingerprint.hex(): kit.attest(s.id, raw, alice)[
            alice.fingerprint.hex()]})
    assert co.get(s.id).signed == []


def test_duplicates_are_idempotent(kit, db_url, chain):
    vf = kit.make_vault_file("tr")  # BIP340 signatures use fresh randomness: a re-sign differs in bytes
    co = kit.open_coordinator(db_url, chain, auto=False)
    pid = co.register_vault(vf)
    psbt = kit.funded_psbt(chain, vf)
    s = co.new_session(pid, psbt)
    alice = kit.HOLDERS[0]
    raw = kit.signed_copy(vf, psbt, alice)
    first = co.submit(s.id, raw)
    lines = co.audit_lines()
    again = co.submit(s.id, raw)
    assert again.outcome == first.outcome == "accepted" and co.audit_lines() == lines  # nothing written
    resigned = kit.signed_copy(vf, psbt, alice)
    assert resigned != raw
    dup = co.submit(s.id, resigned)
    assert dup.outcome == "duplicate"
    s = co.get(s.id)
    assert s.signed == [alice.fingerprint.hex()]
    assert co.partial_psbt(s.id, alice.fingerprint.hex()) == Psbt.parse(raw).serialize()  # the first is kept


def test_refuse_unreachable_cancel(kit, db_url, chain):
    vf = kit.make_vault_file("wsh")
    co = kit.open_coordinator(db_url, chain)
    pid = co.register_vault(vf)
    psbt = kit.funded_psbt(chain, vf)
    s = co.new_session(pid, psbt)
    alice, bob, carol = (h.fingerprint.hex() for h in kit.HOLDERS)
    co.refuse(s.id, bob, "I do not know this payee")
    co.mark_unreachable(s.id, carol, "site offline")
    s = co.get(s.id)
    assert s.cosigner(bob).state is CosignerState.REFUSED and s.cosigner(bob).reason == "I do not know this payee"
    assert s.cosigner(carol).state is CosignerState.UNREACHABLE
    s = co.cancel(s.id, "payee unknown", by="ops")
    assert s.status is Status.CANCELLED
    with pytest.raises(SubmissionRefused, match="cancelled"):
        co.submit(s.id, kit.signed_copy(vf, psbt, kit.HOLDERS[0]))
    # the coins are free again for a new session
    s2 = co.new_session(pid, psbt)
    assert s2.status is Status.OPEN
    with pytest.raises(CoinInUse, match=s2.id):
        co.new_session(pid, psbt)


def test_expiry(kit, db_url, chain):
    vf = kit.make_vault_file("wsh")
    now = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    co = kit.open_coordinator(db_url, chain, clock=lambda: now[0])
    pid = co.register_vault(vf)
    psbt = kit.funded_psbt(chain, vf)
    s = co.new_session(pid, psbt, expires_in=timedelta(hours=1))
    raw = kit.signed_copy(vf, psbt, kit.HOLDERS[0])
    now[0] += timedelta(hours=2)
    with pytest.raises(SubmissionRefused, match="expired"):
        co.submit(s.id, raw)
    s = co.get(s.id)
    assert s.status is Status.EXPIRED and s.signed == []
    assert co.expire_due() == []
    events = [e["event"] for e in co.audit_entries(s.id)]
    assert events[-2:] == ["session.expired", "submission.refused"]


def test_replace_with_fee_bump_after_broadcast(kit, db_url, chain):
    from msigvault.backends.regtest import RegtestBackend

    vf = kit.make_vault_file("wsh")
    co = kit.open_coordinator(db_url, chain)
    co.backend = _HoldsFirst(RegtestBackend(chain))
    pid = co.register_vault(vf)
    utxos = chain.fund(vf.vault.address(3), [90_000])
    low = vf.vault.create_psbt(utxos, [(kit.PAYEE, 50_000)], fee_rate=1.0, change_index=3, current_height=chain.height)
    high = vf.vault.create_psbt(utxos, [(kit.PAYEE, 50_000)], fee_rate=5.0, change_index=3, current_height=chain.height)
    s = co.new_session(pid, low)
    for h in kit.HOLDERS[:2]:
        s = co.submit(s.id, kit.signed_copy(vf, low, h)).session
    assert s.status is Status.BROADCAST  # held, not mined
    with pytest.raises(SessionStateError, match="fee bump"):
        co.cancel(s.id)
    with pytest.raises(Exception, match="more than"):
        co.replace(s.id, low)
    r = co.replace(s.id, high, memo="bump")
    assert r.replaces == s.id and co.get(s.id).replaced_by == r.id and co.get(s.id).status is Status.BROADCAST
    for h in kit.HOLDERS[1:]:
        r = co.submit(r.id, kit.signed_copy(vf, high, h)).session
    assert r.status is Status.CONFIRMED
    old = co.get(s.id)
    assert old.status is Status.REPLACED and old.closed_reason == f"replaced by session {r.id}"
    assert chain.get_tx(r.final_txid) is not None
    events = [e["event"] for e in co.audit_entries(s.id)]
    assert events[-1] == "session.replaced"
    co.verify_log()


class _HoldsFirst:
    """A RegtestBackend whose first broadcast waits in a mempool of its own (RegtestBackend mines
    every broadcast at once), so the replacement is what reaches the chain (through the node's
    own replacement: tests/coordinator/test_rbf.py)."""

    def __init__(self, inner):
        self.inner = inner
        self.where = inner.where
        self.has_history = inner.has_history
        self.held = []

    def broadcast(self, raw):
        from msigvault.backends.base import txid_of

        if not self.held:
            self.held.append(raw)
            return txid_of(raw)
        return self.inner.broadcast(raw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_open_session_replaced_before_broadcast(kit, db_url, chain):
    vf = kit.make_vault_file("wsh")
    co = kit.open_coordinator(db_url, chain)
    pid = co.register_vault(vf)
    utxos = chain.fund(vf.vault.address(4), [90_000])
    a = vf.vault.create_psbt(utxos, [(kit.PAYEE, 50_000)], fee_rate=1.0, change_index=4, current_height=chain.height)
    b = vf.vault.create_psbt(utxos, [(kit.PAYEE, 40_000)], fee_rate=1.0, change_index=4, current_height=chain.height)
    s = co.new_session(pid, a)
    co.submit(s.id, kit.signed_copy(vf, a, kit.HOLDERS[0]))
    r = co.replace(s.id, b)
    old = co.get(s.id)
    assert old.status is Status.REPLACED and old.replaced_by == r.id
    with pytest.raises(SubmissionRefused, match="replaced"):
        co.submit(s.id, kit.signed_copy(vf, a, kit.HOLDERS[1]))
    assert co.get(r.id).status is Status.OPEN


def test_session_creation_refuses_signed_and_foreign_psbts(kit, db_url, chain):
    from msigvault.coordinator.errors import CoordinatorError

    vf = kit.make_vault_file("wsh")
    other = kit.make_vault_file("wsh", holders=kit.HOLDERS[:2], m=1, name="other")
    co = kit.open_coordinator(db_url, chain)
    pid = co.register_vault(vf)
    psbt = kit.funded_psbt(chain, vf)
    with pytest.raises(CoordinatorError, match="already signed"):
        co.new_session(pid, kit.signed_copy(vf, psbt, kit.HOLDERS[0]))
    with pytest.raises(CoordinatorError, match="not"):
        co.new_session(pid, kit.funded_psbt(chain, other))
    with pytest.raises(CoordinatorError, match="not a valid PSBT"):
        co.new_session(pid, b"nonsense")
    assert co.list() == []


def test_migrations_up_and_down(db_url):
    database = D.Database.open(db_url, migrate=False)
    assert D.current_revision(database) is None
    D.upgrade(database)
    assert D.current_revision(database) == D.head_revision() == "0004"
    names = set(sa.inspect(database.engine).get_table_names())
    assert {"sessions", "cosigner_states", "submissions", "audit_log", "audit_head", "session_coins"} <= names
    D.upgrade(database)  # idempotent
    D.downgrade(database)
    assert D.current_revision(database) is None
    assert set(sa.inspect(database.engine).get_table_names()) <= {"alembic_version"}
    D.upgrade(database)
    assert D.current_revision(database) == D.head_revision() == "0004"
    database.close()


def test_sqlite_is_in_wal_mode(tmp_path):
    database = D.Database.open(str(tmp_path / "c.sqlite"))
    with database.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
