"""Scan a watch-only multisig descriptor (``policy/watch.py``) through a backend.

The same growing-batch discovery as ``scan.py`` does for vaults, over every multipath branch of
the descriptor (a non-ranged descriptor has one script per branch): each branch is scanned until
``gap_limit`` unused indexes follow its last used one; the answers are checked (a script we did
not ask about is a protocol error). Coins only: watching never makes anything spendable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..policy.watch import Watched
from .base import Backend, BackendError, BackendProtocolError, ChainUtxo, Tip
from .scan import MAX_GAP_LIMIT, MAX_INDEX, UTXO_ONLY_WINDOW


@dataclass(frozen=True)
class WatchedCoin:
    """An unspent output paying the descriptor at ``branch``/``index``."""

    coin: ChainUtxo
    branch: int
    index: int
    address: "str | None"  # None for bare multi(), which has no address

    def to_dict(self, tip_height: int) -> "dict[str, Any]":
        c = self.coin
        return {"txid": c.txid, "vout": c.vout, "amount": c.amount, "script_pubkey": c.script_pubkey.hex(),
                "address": self.address, "branch": self.branch, "index": self.index, "height": c.height,
                "confirmations": c.confirmations(tip_height)}


@dataclass(frozen=True)
class WatchScan:
    """What :func:`scan_watched` found: the used (branch, index) pairs and the coins."""

    tip: Tip
    gap_limit: int
    used: "tuple[tuple[int, int], ...]"
    coins: "tuple[WatchedCoin, ...]"

    @property
    def total(self) -> int:
        return sum(c.coin.amount for c in self.coins)

    def to_dict(self) -> "dict[str, Any]":
        return {"tip": {"height": self.tip.height, "hash": self.tip.hash, "time": self.tip.time},
                "gap_limit": self.gap_limit, "used": [{"branch": b, "index": i} for b, i in self.used],
                "coins": [c.to_dict(self.tip.height) for c in self.coins], "total": self.total}


def scan_watched(watched: Watched, backend: Backend, *, gap_limit: int = 20) -> WatchScan:
    """The coins of ``watched`` on ``backend`` (every branch; ranged ones with ``gap_limit``)."""
    if isinstance(gap_limit, bool) or not isinstance(gap_limit, int) or not 1 <= gap_limit <= MAX_GAP_LIMIT:
        raise BackendError(f"the gap limit must be a whole number from 1 to {MAX_GAP_LIMIT}, not {gap_limit!r}",
                           what="watch scan")
    if not isinstance(watched, Watched):
        raise BackendError(f"scan_watched needs a Watched descriptor, not {type(watched).__name__}", what="watch scan")
    tip = backend.tip()
    where: "dict[bytes, tuple[int, int]]" = {}
    used: "set[tuple[int, int]]" = set()
    branches = range(watched.branches)
    if watched.is_range:
        backend.watch([watched.text(b) for b in branches], gap_limit - 1)
    scanned = {b: 0 for b in branches}
    last = {b: -1 for b in branches}
    window = gap_limit if backend.has_history else max(gap_limit, UTXO_ONLY_WINDOW)
    coins: "list[ChainUtxo]" = []
    while True:
        end = {b: (last[b] + gap_limit + 1 if watched.is_range else 1) for b in branches}
        todo = {b: min(max(end[b] - scanned[b], window if watched.is_range else 1), MAX_INDEX + 1 - scanned[b])
                for b in branches if scanned[b] < end[b] and scanned[b] <= MAX_INDEX}
        if not todo:
            break
        batch = []
        for b, size in todo.items():
            for i in range(scanned[b], scanned[b] + size):
                spk = watched.script_pubkey(i, b)
                where.setdefault(spk, (b, i))
                batch.append(spk)
        if watched.is_range:
            backend.watch([watched.text(b) for b in branches], max(scanned[b] + s for b, s in todo.items()) - 1)
        hits = _used_scripts(backend, batch, coins)
        for spk in hits:
            if spk not in where:
                raise BackendProtocolError("the server answered about a script we did not ask about",
                                           where=backend.where, what="watch scan")
            b, i = where[spk]
            used.add((b, i))
            last[b] = max(last[b], i)
        for b, size in todo.items():
            scanned[b] += size
    if backend.has_history and used:
        coins = backend.utxos(sorted({spk for spk, bi in where.items() if bi in used}))
    out, seen = [], set()
    for c in coins:
        if c.outpoint in seen or c.script_pubkey not in where:
            continue
        seen.add(c.outpoint)
        b, i = where[c.script_pubkey]
        out.append(WatchedCoin(c, b, i, watched.address(i, b)))
    out.sort(key=lambda w: (w.coin.height is None, w.coin.height or 0, w.coin.txid, w.coin.vout))
    return WatchScan(tip, gap_limit, tuple(sorted(used)), tuple(out))


def _used_scripts(backend: Backend, batch: "list[bytes]", coins: "list[ChainUtxo]") -> "set[bytes]":
    """The scripts of ``batch`` with history (or, without history, with coins, added to ``coins``)."""
    if backend.has_history:
        return {s for s, h in backend.history(batch).items() if h}
    found = backend.utxos(batch)
    coins.extend(found)
    return {u.script_pubkey for u in found}


__all__ = ["WatchScan", "WatchedCoin", "scan_watched"]
