"""The service killed with SIGKILL while submissions are in flight, then restarted on the same database:
nothing is lost (every site re-seals what it has no answer for, with its next sequence number) and nothing
is duplicated (one accepted submission per cosigner and session; the audit chain verifies). Also: old
request nonces are pruned, and a pruned nonce's request is still refused by its timestamp."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

import sqlalchemy as sa

from msigvault.coordinator import db as D
from msigvault.coordinator.db import Database
from msigvault.identity import ReplayGuard
from msigvault.psbt.psbt import Psbt
from msigvault.service.client import seal_submission
from msigvault.service.errors import ReplayedRequest, ServiceError
from msigvault.service.store import ServiceStore

from .conftest import ServerProcess


def _signed_copies(world, server, sessions):
    """(site label, session id, fingerprint, signed PSBT) for every site and session, pulled through the service."""
    out = []
    for h in world.holders:
        key, _ = world.sites[h.label]
        with world.client(key, server.url) as client:
            for request in client.pending():
                if request.session in sessions:
                    unsigned = request.open(key, client.coordinator, ReplayGuard()).payload
                    raw = world.vf.vault.sign(Psbt.parse(unsigned), h.root)[0].serialize()
                    out.append((h.label, request.session, request.fingerprint, raw))
    return out


def test_a_killed_server_loses_and_duplicates_nothing(world):
    server = ServerProcess(world, "crash-1", rate=1000.0, burst=1000)
    try:
        with world.client(world.operator, server.url) as ops:
            sessions = {ops.propose(world.vf.vault.policy_id, world.psbt(50_000 + i))["id"] for i in range(10)}
        work = _signed_copies(world, server, sessions)
        assert len(work) == 3 * len(sessions)
        answered: "dict[tuple[str, str], str]" = {}

        def site(label):
            key, _ = world.sites[label]
            try:
                with world.client(key, server.url) as client:
                    for lab, sid, fp, raw in work:
                        if lab == label:
                            env = seal_submission(key, client.coordinator, sid, fp, raw, sequence=1)
                            answered[(label, sid)] = client.submit(env)["outcome"]
            except ServiceError:
                pass  # the server died under this site

        threads = [threading.Thread(target=site, args=(h.label,)) for h in world.holders]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(answered) < 4 and time.monotonic() < deadline:  # kill once submissions are flowing
            time.sleep(0.005)
        server.proc.send_signal(signal.SIGKILL)
        for t in threads:
            t.join(60)
    finally:
        server.stop()
    assert 4 <= len(answered) < len(work)  # the kill landed while submissions were still coming
    server = ServerProcess(world, "crash-2", rate=1000.0, burst=1000)
    try:
        for label, sid, fp, raw in work:  # each site re-seals what it has no answer for, with its next sequence
            if (label, sid) in answered:
                continue
            key, _ = world.sites[label]
            with world.client(key, server.url) as client:
                outcome = client.submit(seal_submission(key, client.coordinator, sid, fp, raw, sequence=2))["outcome"]
                assert outcome in ("accepted", "duplicate")
        with world.client(world.auditor, server.url) as auditor:
            statuses = [auditor.status(sid) for sid in sessions]
            export = auditor.audit_export()
    finally:
        server.stop()
    assert all(s["status"] == "finalized" and len(s["signed"]) == 3 for s in statuses), statuses
    db = Database.open(world.db_url)
    with db.read() as conn:
        rows = conn.execute(sa.select(D.submissions.c.session_id, D.submissions.c.psbt_sha256)
                            .where(D.submissions.c.session_id.in_(sessions))).all()
    assert all(n == 1 for n in Counter(rows).values()) and len(rows) == len(work)
    co = world.open_coordinator()
    accepted = Counter((e["session"], e["data"]["fingerprint"]) for e in co.audit_entries()
                       if e["event"] == "submission.accepted" and e["session"] in sessions)
    assert len(accepted) == len(work) and set(accepted.values()) == {1}
    co.verify_log()
    from msigvault.coordinator.audit import verify_export_bytes

    verify_export_bytes(export)


def test_old_nonces_are_pruned_and_replays_still_refused(world):
    store = ServiceStore(Database.open(world.db_url))
    now = int(time.time())
    store.use_nonce("ab" * 16, "01" * 16, now - 1000)
    store.use_nonce("ab" * 16, "02" * 16, now)
    try:
        store.use_nonce("ab" * 16, "02" * 16, now)
        raise AssertionError("a nonce was accepted twice")
    except ReplayedRequest:
        pass
    assert store.prune_nonces(now - 240) == 1
    with store.db.read() as conn:
        left = conn.execute(sa.select(D.service_nonces.c.nonce).where(
            D.service_nonces.c.identity_id == "ab" * 16)).scalars().all()
    assert left == ["02" * 16]
