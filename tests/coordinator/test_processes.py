"""Concurrency and crashes across real OS processes, on SQLite and on PostgreSQL.

Each coordinator here is its own Python process (tests/coordinator/proc_worker.py) with its own
engine and connections: processes submitting to one session at the same moment, two
coordinators (two keys) on one database, and a process killed with SIGKILL between "signature
stored" and "finalized" (or "sent" and "recorded as broadcast"), then ``recover()``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from msigvault.coordinator import db as D
from msigvault.coordinator.audit import Identity
from msigvault.coordinator.sessions import Status
from msigvault.psbt import fields as F
from msigvault.psbt.psbt import Psbt

WORKER = Path(__file__).with_name("proc_worker.py")
SECOND = "second-coordinator"


def _spawn(cfg) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), json.dumps(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> "tuple[int, str, str]":
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _bad_copy(raw: bytes) -> bytes:
    bad = Psbt.parse(raw)
    for m in bad.inputs:
        for key, value in m.items_of_type(F.PSBT_IN_PARTIAL_SIG):
            m.set(F.PSBT_IN_PARTIAL_SIG, key, value[:8] + bytes([value[8] ^ 1]) + value[9:])
    return bad.serialize()


def _seqs_are_contiguous(url: str) -> None:
    database = D.Database.open(url, migrate=False)
    try:
        with database.read() as conn:
            seqs = [r.seq for r in conn.execute(sa.select(D.audit_log.c.seq).order_by(D.audit_log.c.seq))]
            head = conn.execute(sa.select(D.audit_head)).one()
    finally:
        database.close()
    assert seqs == list(range(len(seqs))) and head.count == len(seqs)


def test_processes_and_two_coordinators_submit_to_one_session_at_the_same_moment(kit, db_url, chain, tmp_path):
    """Four processes (two with the first coordinator's key, two with a second, authorised key)
    each open a session of their own and submit every signed copy, in different orders, plus the
    same bad copy, all at once: every copy is applied once, the session finalizes once, the bad
    copy is recorded once, and the log is one unbroken chain."""
    vf = kit.make_vault_file("wsh")
    co = kit.open_coordinator(db_url)
    pid = co.register_vault(vf)
    co.authorize_key(Identity.from_seed(SECOND.encode()).public_hex, note="second site")
    psbt = kit.funded_psbt(chain, vf)
    s = co.new_session(pid, psbt)
    files = []
    for i, h in enumerate(kit.HOLDERS):
        files.append(tmp_path / f"copy{i}.psbt")
        files[-1].write_bytes(kit.signed_copy(vf, psbt, h))
    bad = tmp_path / "bad.psbt"
    bad.write_bytes(_bad_copy(files[0].read_bytes()))
    own = []
    for w in range(4):
        own.append(tmp_path / f"own{w}.psbt")
        own[-1].write_bytes(kit.funded_psbt(chain, vf, amounts=(40_000,), pay=10_000, index=10 + w).serialize())
    go = tmp_path / "go"
    orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]]
    procs = []
    for w, order in enumerate(orders):
        cfg = {"mode": "submit", "url": db_url, "seed": "coordinator-key" if w % 2 == 0 else SECOND,
               "session": s.id, "vault": pid, "ready": str(tmp_path / f"ready{w}"), "go": str(go),
               "new": [str(own[w])], "files": [str(files[k]) for k in order] + [str(bad)]}
        procs.append(_spawn(cfg))
    deadline = time.monotonic() + 180
    while not all((tmp_path / f"ready{w}").exists() for w in range(len(procs))):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
            [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.01)
    go.write_text("go")
    results = []
    for p in procs:
        code, out, err = _finish(p)
        assert code == 0, err
        results.append(json.loads(out))
    # each copy carries one new signer: every process is told "accepted" (the same bytes again get
    # the first outcome back) and "refused" for the bad copy; the database holds each once
    assert [r["outcomes"] for r in results] == [["accepted"] * 3 + ["refused"]] * 4
    final = co.get(s.id)
    assert final.status is Status.FINALIZED and len(final.signed) == 3
    events = Counter(e["event"] for e in co.audit_entries(s.id))
    assert events["submission.accepted"] == 3 and events["session.finalized"] == 1
    assert events["submission.refused"] == 1
    subs = co.submissions(s.id)
    assert sorted(x["outcome"] for x in subs) == ["accepted", "accepted", "accepted", "refused"]
    created = [sid for r in results for sid in r["created"]]
    assert len(set(created)) == 4 and all(co.get(sid).status is Status.OPEN for sid in created)
    keys = Counter(e["key"] for e in co.audit_entries() if e["event"] == "session.created" and e["session"] in created)
    assert keys == Counter({kit.COORDINATOR_KEY.public_hex: 2, Identity.from_seed(SECOND.encode()).public_hex: 2})
    _seqs_are_contiguous(db_url)
    assert co.verify_log().count == len(co.audit_lines())


@pytest.mark.parametrize("step", ["submit:before-commit", "submit:after-store", "finalize:before-commit",
                                  "finalize:after-store", "broadcast:after-send"])
def test_a_process_killed_mid_ceremony_is_recovered(kit, db_url, tmp_path, step):
    """SIGKILL at ``step`` while submitting the last signature (``*:before-commit``: inside the
    write transaction, its rows and audit entries written but not committed); a new process's
    recover() (and, if the signature itself was lost, the keyholder's copy sent again) reaches the
    state of an uninterrupted run: confirmed once, every event once, the payment on the chain once."""
    from msigvault.backends.regtest import RegtestBackend
    from msigvault.regtest import RegtestChain

    vf = kit.make_vault_file("wsh")
    chain_dir = tmp_path / "chain"
    with RegtestChain(datadir=chain_dir) as chain:
        chain.mine(101)
        psbt = kit.funded_psbt(chain, vf)
    co = kit.open_coordinator(db_url)
    s = co.new_session(co.register_vault(vf), psbt, session_id="dead0000beef1111")
    co.submit(s.id, kit.signed_copy(vf, psbt, kit.HOLDERS[0]))
    last = tmp_path / "last.psbt"
    last.write_bytes(kit.signed_copy(vf, psbt, kit.HOLDERS[2]))
    code, out, err = _finish(_spawn({"mode": "crash", "url": db_url, "seed": "coordinator-key", "session": s.id,
                                     "files": [str(last)], "step": step, "chain": str(chain_dir)}))
    assert code == -9, (code, out, err)  # killed, not finished
    assert co.get(s.id).status is not Status.CONFIRMED
    co.verify_log()  # whatever was killed half-way left no trace in the log
    if step == "submit:before-commit":  # rolled back: as if the copy never arrived
        assert len(co.get(s.id).signed) == 1 and len(co.submissions(s.id)) == 1
    with RegtestChain(datadir=chain_dir) as chain:
        restarted = kit.open_coordinator(db_url, chain)
        if step == "submit:before-commit":
            assert [x.status for x in restarted.recover()] == [Status.OPEN]
            restarted.submit(s.id, last.read_bytes())  # the keyholder sends it again
        [recovered] = restarted.recover() or [restarted.get(s.id)]
        assert recovered.id == s.id and recovered.status is Status.CONFIRMED
        assert restarted.recover() == []
        events = [e["event"] for e in restarted.audit_entries(s.id)]
        assert events == ["session.created"] + ["cosigner.requested"] * 3 + [
            "submission.accepted", "submission.accepted", "session.finalized", "session.broadcast",
            "session.confirmed"]
        assert restarted.submissions(s.id)[-1]["outcome"] == "accepted" and len(restarted.submissions(s.id)) == 2
        backend = RegtestBackend(chain)
        paid = [u for u in backend.utxos([kit.PAYEE]) if u.txid == recovered.final_txid]
        assert [u.amount for u in paid] == [100_000]
        spends = [txid for txid in {h.txid for items in backend.history([kit.PAYEE]).values() for h in items}
                  if txid == recovered.final_txid]
        assert len(spends) == 1
    _seqs_are_contiguous(db_url)
    restarted.verify_log()
