"""A :class:`~msigvault.regtest.RegtestChain` (in this process) behind the backend interface.

The chain is indexed by :class:`~msigvault.regtest.nodestate.NodeState` (the local node's own
index and mempool); :meth:`RegtestBackend.broadcast` runs the mempool's checks and then mines
the transaction in a block at once, as ``msigvault broadcast --chain`` always has.
"""

from __future__ import annotations

import threading
from typing import Optional, Sequence

from .base import (
    AcceptResult,
    Backend,
    BroadcastRejected,
    ChainUtxo,
    FEE_TARGETS,
    FeeEstimates,
    HistoryItem,
    Tip,
    TxNotFound,
    txid_of,
)


_STATES_LOCK = threading.Lock()


def _shared_state(chain, make):
    """The one NodeState (index, mempool, lock) of ``chain``: every backend on one chain shares it,
    so two backends (two coordinators in one process) never touch the chain at the same time."""
    with _STATES_LOCK:
        state = chain.__dict__.get("_msigvault_node_state")
        if state is None:
            state = chain.__dict__["_msigvault_node_state"] = make(chain)
        return state


class RegtestBackend(Backend):
    """``RegtestBackend(chain)`` or ``RegtestBackend.open(directory)`` (closed with the backend)."""

    name = "regtest"

    def __init__(self, chain, *, state=None, owns_chain: bool = False):
        from ..regtest.nodestate import NodeState

        self.chain = chain
        self.network = chain.network
        self.where = f"regtest chain {chain.datadir}"
        self.state = state if state is not None else _shared_state(chain, NodeState)
        self._owns = owns_chain
        self.round_trips = 0

    @classmethod
    def open(cls, directory) -> "RegtestBackend":
        from pathlib import Path

        from ..regtest import RegtestChain
        from .base import BackendError

        p = Path(directory)
        if not (p / "msigvault-regtest.json").exists():
            raise BackendError(f"{p} is not a regtest chain directory: create one with "
                               f"'msigvault regtest init {p}'", what="regtest backend")
        return cls(RegtestChain(datadir=p), owns_chain=True)

    def close(self) -> None:
        if self._owns:
            self.chain.close()

    def _synced(self):
        self.round_trips += 1
        self.state.sync()
        return self.state

    def genesis_hash(self) -> str:
        return self.chain.block_hash(0)

    def tip(self) -> Tip:
        with self.state.lock:
            self._synced()
            return Tip(self.chain.height, self.chain.tip, self.chain.tip_time)

    def fee_estimates(self, targets: Sequence[int] = FEE_TARGETS) -> FeeEstimates:
        with self.state.lock:
            rate = self._synced().fee_rate()
        return FeeEstimates({} if rate is None else {t: rate for t in targets})

    def utxos(self, script_pubkeys: Sequence[bytes]) -> list[ChainUtxo]:
        with self.state.lock:
            state = self._synced()
            return [ChainUtxo(txid, vout, o.amount, o.script, place.height if place else None)
                    for s in dict.fromkeys(map(bytes, script_pubkeys))
                    for txid, vout, o, place in state.unspent(s)]

    def history(self, script_pubkeys: Sequence[bytes]) -> dict[bytes, tuple[HistoryItem, ...]]:
        with self.state.lock:
            state = self._synced()
            return {s: tuple(HistoryItem(r.ptx.txid, r.place.height if r.place else None)
                             for r in state.history(s))
                    for s in dict.fromkeys(map(bytes, script_pubkeys))}

    def _raw_tx(self, txid: str) -> bytes:
        with self.state.lock:
            rec = self._synced().tx(txid)
        if rec is None:
            raise TxNotFound(f"the chain has no transaction {txid}", where=self.where,
                             what="transaction look-up")
        return rec.ptx.raw

    def get_txs(self, txids) -> dict[str, bytes]:
        from .base import check_txid, verify_txid

        ids = [check_txid(t) for t in dict.fromkeys(txids)]
        with self.state.lock:
            state = self._synced()
            recs = {t: state.tx(t) for t in ids}
        missing = [t for t, r in recs.items() if r is None]
        if missing:
            raise TxNotFound(f"the chain has no transaction {missing[0]}", where=self.where,
                             what="transaction look-up")
        return {t: verify_txid(r.ptx.raw, t, self.where) for t, r in recs.items()}

    def test_accept(self, raw_tx: bytes) -> AcceptResult:
        from ..regtest.nodestate import Reject

        txid = txid_of(raw_tx)
        with self.state.lock:
            try:
                rec = self._synced().accept(raw_tx, test_only=True)
            except Reject as r:
                return AcceptResult(txid, False, reason=r.text)
        from ..regtest.shapes import sizes

        return AcceptResult(txid, True, vsize=sizes(rec.ptx)[1], fee=rec.fee)

    def broadcast(self, raw_tx: bytes, *, mine: bool = True) -> str:
        """Accept ``raw_tx`` into the mempool and (``mine=True``) mine it in a new block."""
        from ..regtest.chain import BlockRejected
        from ..regtest.nodestate import Reject

        txid = txid_of(raw_tx)
        with self.state.lock:
            state = self._synced()
            try:
                state.accept(raw_tx)
            except Reject as r:
                if r.reason != "txn-already-in-mempool":
                    raise BroadcastRejected(r.text, where=self.where, txid=txid) from None
            if mine:
                try:
                    state.mine(1, self.chain.wallet_script)
                except BlockRejected as e:
                    raise BroadcastRejected(f"{e.reason}, {e.detail}" if e.detail else e.reason,
                                            where=self.where, txid=txid) from None
        return txid

    @property
    def last_block(self) -> Optional[str]:
        return self.chain.tip
