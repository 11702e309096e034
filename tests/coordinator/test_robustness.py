"""Order, duplicates, crashes and concurrency: nothing lost, nothing applied twice."""

from __future__ import annotations

import shutil
import threading
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from msigvault.coordinator.db import Database
from msigvault.coordinator.errors import SubmissionRefused
from msigvault.coordinator.sessions import Coordinator, Status
from msigvault.psbt import fields as F
from msigvault.psbt.psbt import Psbt


class Crash(Exception):
    """A simulated crash at a named step (not a MsigvaultError: nothing catches it)."""


def _snapshot(co, sid):
    s = co.get(sid)
    events = Counter(e["event"] for e in co.audit_entries(sid))
    refused = sorted(x["psbt_sha256"] for x in co.submissions(sid) if x["outcome"] == "refused")
    return {"status": s.status, "cosigners": {c.fingerprint: c.state for c in s.cosigners},
            "final_txid": s.final_txid, "refused": refused, "finalized": events["session.finalized"],
            "broadcast": events["session.broadcast"], "confirmed": events["session.confirmed"]}


# -- any arrival order, duplicates and bad submissions: the same final state -------------------


@pytest.fixture(scope="module")
def ceremony(kit, chain, tmp_path_factory):
    """One wsh 2-of-3 PSBT, three valid signed copies, a re-signed copy, bad copies, a migrated
    template database."""
    vf = kit.make_vault_file("wsh")
    psbt = kit.funded_psbt(chain, vf)
    valid = [kit.signed_copy(vf, psbt, h) for h in kit.HOLDERS]
    bad = Psbt.parse(valid[0])
    for m in bad.inputs:
        for key, value in m.items_of_type(F.PSBT_IN_PARTIAL_SIG):
            m.set(F.PSBT_IN_PARTIAL_SIG, key, value[:8] + bytes([value[8] ^ 1]) + value[9:])
    other = kit.signed_copy(vf, kit.funded_psbt(chain, vf, amounts=(55_000,), pay=20_000, index=2), kit.HOLDERS[1])
    both = Psbt.parse(valid[1])
    for m_from, m_to in zip(Psbt.parse(valid[2]).inputs, both.inputs):
        for key, value in m_from.items_of_type(F.PSBT_IN_PARTIAL_SIG):
            m_to.set(F.PSBT_IN_PARTIAL_SIG, key, value)
    template = tmp_path_factory.mktemp("template") / "template.sqlite"
    Database.open(f"sqlite:///{template}").close()
    return {"vf": vf, "psbt": psbt, "valid": valid, "bad": [bad.serialize(), other, b"not a psbt"],
            "both": both.serialize(), "template": template, "expected": {}}


_DIR = [0]


def _run(kit, ceremony, tmp_path, order):
    _DIR[0] += 1
    path = tmp_path / f"db{_DIR[0]}.sqlite"
    shutil.copy(ceremony["template"], path)
    co = Coordinator(Database.open(f"sqlite:///{path}"), kit.COORDINATOR_KEY)
    pid = co.register_vault(ceremony["vf"])
    s = co.new_session(pid, ceremony["psbt"], session_id="0123456789abcdef")
    for raw in order:
        try:
            co.submit(s.id, raw)
        except SubmissionRefused:
            pass
    co.verify_log()
    return _snapshot(co, s.id)


@settings(max_examples=min(settings().max_examples, 12), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_final_state_does_not_depend_on_arrival_order(kit, ceremony, tmp_path, data):
    signers = data.draw(st.lists(st.sampled_from([0, 1, 2, "both"]), min_size=0, max_size=4, unique=True))
    bad = data.draw(st.lists(st.sampled_from([0, 1, 2]), max_size=3, unique=True))
    items = [ceremony["both"] if k == "both" else ceremony["valid"][k] for k in signers]
    items += [ceremony["bad"][k] for k in bad]
    dups = data.draw(st.lists(st.sampled_from(items), max_size=3)) if items else []
    arrival = data.draw(st.permutations(items + dups))
    got = _run(kit, ceremony, tmp_path, arrival)
    key = frozenset(items)
    if key not in ceremony["expected"]:  # one canonical order, no duplicates
        ceremony["expected"][key] = _run(kit, ceremony, tmp_path, sorted(key))
    expected = ceremony["expected"][key]
    assert got == expected
    who = {fp for k in signers for fp in ([kit.HOLDERS[1], kit.HOLDERS[2]] if k == "both" else [kit.HOLDERS[k]])
           for fp in [fp.fingerprint.hex()]}
    assert {fp for fp, state in got["cosigners"].items() if state.value == "signed"} == who
    assert got["status"] is (Status.FINALIZED if len(who) >= 2 else Status.OPEN)
    assert got["finalized"] == (1 if len(who) >= 2 else 0)
    assert len(got["refused"]) == len(bad)


STEPS = ["submit:before-commit", "submit:after-store", "finalize:before-store", "finalize:before-commit",
         "finalize:after-store"]


def _run_with_crash(kit, ceremony, tmp_path, order, crash_at, step):
    """As _run, but the coordinator "crashes" at ``step`` while handling item ``crash_at``; a new
    coordinator on the same database recovers, the keyholder sends that copy again (they got no
    answer), and the rest arrive."""
    _DIR[0] += 1
    path = tmp_path / f"crash{_DIR[0]}.sqlite"
    shutil.copy(ceremony["template"], path)
    armed = []

    def fault(name):
        if armed and name == step:
            armed.clear()
            raise Crash(name)

    co = Coordinator(Database.open(f"sqlite:///{path}"), kit.COORDINATOR_KEY, fault=fault)
    s = co.new_session(co.register_vault(ceremony["vf"]), ceremony["psbt"], session_id="0123456789abcdef")
    for i, raw in enumerate(order):
        armed[:] = [True] if i == crash_at else []
        try:
            co.submit(s.id, raw)
        except SubmissionRefused:
            pass
        except Crash:
            co = Coordinator(Database.open(f"sqlite:///{path}"), kit.COORDINATOR_KEY)  # restarted
            co.recover()
            try:
                co.submit(s.id, raw)
            except SubmissionRefused:
                pass
    co.verify_log()
    return _snapshot(co, s.id)


@settings(max_examples=min(settings().max_examples, 12), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_a_crash_at_any_step_then_recovery_equals_a_run_without_it(kit, ceremony, tmp_path, data):
    signers = data.draw(st.lists(st.sampled_from([0, 1, 2, "both"]), min_size=1, max_size=4, unique=True))
    bad = data.draw(st.lists(st.sampled_from([0, 1, 2]), max_size=2, unique=True))
    items = [ceremony["both"] if k == "both" else ceremony["valid"][k] for k in signers]
    items += [ceremony["bad"][k] for k in bad]
    dups = data.draw(st.lists(st.sampled_from(items), max_size=2))
    arrival = data.draw(st.permutations(items + dups))
    crash_at = data.draw(st.integers(0, len(arrival) - 1))
    step = data.draw(st.sampled_from(STEPS))
    got = _run_with_crash(kit, ceremony, tmp_path, arrival, crash_at, step)
    key = frozenset(items)
    if key not in ceremony["expected"]:
        ceremony["expected"][key] = _run(kit, ceremony, tmp_path, sorted(key))
    assert got == ceremony["expected"][key]


# -- a crash between any two steps: recovery reaches the state of a run without the crash ------


@pytest.mark.parametrize("step", ["submit:after-store", "finalize:before-store", "finalize:after-store",
                                  "broadcast:after-send"])
def test_crash_between_steps_then_recover(kit, chain, tmp_path, step):
    def run(url, crash_at=None):
        vf = kit.make_vault_file("wsh")
        psbt = kit.funded_psbt(chain, vf)

        armed = []

        def fault(name):
            if armed and name == crash_at:
                raise Crash(name)

        co = kit.open_coordinator(url, chain, fault=fault)
        pid = co.register_vault(vf)
        s = co.new_session(pid, psbt, session_id="feedfacefeedface")
        co.submit(s.id, kit.signed_copy(vf, psbt, kit.HOLDERS[0]))
        if crash_at is None:
            co.submit(s.id, kit.signed_copy(vf, psbt, kit.HOLDERS[2]))
            return co, s.id
        armed.append(True)
        with pytest.raises(Crash):
            co.submit(s.id, kit.signed_copy(vf, psbt, kit.HOLDERS[2]))
        assert co.get(s.id).status is not Status.CONFIRMED
        restarted = kit.open_coordinator(url, chain)  # a new process on the same database
        restarted.recover()
        return restarted, s.id

    clean, sid = run(f"sqlite:///{tmp_path / 'clean.sqlite'}")
    crashed, sid2 = run(f"sqlite:///{tmp_path / 'crashed.sqlite'}", crash_at=step)
    want, got = _snapshot(clean, sid), _snapshot(crashed, sid2)
    assert want["status"] is got["status"] is Status.CONFIRMED
    assert {k: v for k, v in got.items() if k != "final_txid"} == {k: v for k, v in want.items() if k != "final_txid"}
    assert chain.get_tx(got["final_txid"]) is not None
    assert [e["event"] for e in clean.audit_entries(sid)] == [e["event"] for e in crashed.audit_entries(sid2)]
    crashed.verify_log()
    assert crashed.recover() == []  # nothing left to do: a second recovery changes nothing


# -- threads and two coordinators on one database, SQLite and PostgreSQL ------------------------


def test_concurrent_submissions_from_two_coordinators(kit, db_url, chain):
    vf = kit.make_vault_file("wsh")
    psbt = kit.funded_psbt(chain, vf)
    first = kit.open_coordinator(db_url, chain)
    second = kit.open_coordinator(db_url, chain)  # another process's engine on the same database
    pid = first.register_vault(vf)
    assert second.register_vault(vf) == pid  # idempotent
    s = first.new_session(pid, psbt)
    copies = [kit.signed_copy(vf, psbt, h) for h in kit.HOLDERS]
    work = [(c, raw) for raw in copies for c in (first, second)] * 2  # every copy twice through each
    barrier = threading.Barrier(len(work))
    errors = []

    def submit(co, raw):
        barrier.wait()
        try:
            co.submit(s.id, raw)
        except Exception as e:  # noqa: BLE001  (collected and reported below)
            errors.append(e)

    threads = [threading.Thread(target=submit, args=w) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    final = first.get(s.id)
    assert final.status is Status.CONFIRMED and len(final.signed) == 3
    events = Counter(e["event"] for e in first.audit_entries(s.id))
    assert events["session.finalized"] == events["session.broadcast"] == events["session.confirmed"] == 1
    assert events["submission.accepted"] == 3
    subs = first.submissions(s.id)
    assert len(subs) == 3 and {x["outcome"] for x in subs} == {"accepted"}
    result = second.verify_log()
    assert result.count == len(first.audit_lines())
