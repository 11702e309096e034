"""A fee bump end to end: a session's transaction waits in the local node's mempool, a linked
replacement session pays more, the node replaces the original (BIP125) and mines the bump; the
coordinator reads everything through Core JSON-RPC on loopback. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from msigvault.backends.core import CoreBackend
from msigvault.coordinator.errors import CoordinatorError
from msigvault.coordinator.sessions import Status
from msigvault.regtest.node import RegtestNode


def test_fee_bump_replaces_the_broadcast_transaction_in_the_nodes_mempool(kit, db_url):
    vf = kit.make_vault_file("wsh")
    with RegtestNode() as node, CoreBackend(node.rpc_url, "regtest") as backend:
        with node.state.lock:
            node.state.mine(101, node.chain.wallet_script)
            utxos = node.chain.fund(vf.vault.address(3), [90_000])
            height = node.chain.height
        co = kit.open_coordinator(db_url)
        co.backend = backend
        pid = co.register_vault(vf)
        low = vf.vault.create_psbt(utxos, [(kit.PAYEE, 50_000)], fee_rate=1.0, change_index=3, current_height=height)
        high = vf.vault.create_psbt(utxos, [(kit.PAYEE, 50_000)], fee_rate=6.0, change_index=3, current_height=height)
        s = co.new_session(pid, low, memo="rent")
        for h in kit.HOLDERS[:2]:
            s = co.submit(s.id, kit.signed_copy(vf, low, h)).session
        assert s.status is Status.BROADCAST and s.final_txid in backend.call("getrawmempool")
        assert co.track(s.id).status is Status.BROADCAST  # waiting: nothing mines it
        with pytest.raises(CoordinatorError, match="more than"):
            co.replace(s.id, low)
        bump = co.replace(s.id, high, memo="fee bump")
        assert bump.replaces == s.id and co.get(s.id).status is Status.BROADCAST
        for h in kit.HOLDERS[1:]:
            bump = co.submit(bump.id, kit.signed_copy(vf, high, h)).session
        assert bump.status is Status.BROADCAST
        pool = backend.call("getrawmempool")
        assert bump.final_txid in pool and s.final_txid not in pool  # the node replaced the original
        old = co.get(s.id)
        assert old.status is Status.REPLACED and old.replaced_by == bump.id
        with node.state.lock:
            node.state.mine(1, node.chain.wallet_script)
        bump = co.track(bump.id)
        assert bump.status is Status.CONFIRMED and bump.confirmations == 1
        paid = [u for u in backend.utxos([kit.PAYEE]) if u.txid in (bump.final_txid, s.final_txid)]
        assert [(u.txid, u.amount) for u in paid] == [(bump.final_txid, 50_000)]
        assert bump.summary["fee"] > old.summary["fee"]
        events = [e["event"] for e in co.audit_entries(s.id)]
        assert events.count("session.broadcast") == 1 and events[-1] == "session.replaced"
        assert [e["event"] for e in co.audit_entries(bump.id)][-3:] == [
            "session.finalized", "session.broadcast", "session.confirmed"]
        co.verify_log()
