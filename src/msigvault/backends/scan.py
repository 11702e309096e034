"""Vault scanning: used addresses on both branches with a gap limit, balance, UTXOs and history.

Scripts are asked about in growing batches (the first ``gap_limit`` per branch, then as many as
are already scanned), so a vault with N used addresses needs about log2(N / gap) + 2 round
trips of requests, whatever the backend batches them into. A backend without history (Bitcoin
Core without a wallet) is asked for unspent outputs instead, so "used" means "holds coins".

The UTXOs a backend reports are claims: :func:`fetch_spendable` fetches every previous
transaction, checks its txid and that the output it names pays the amount and script claimed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

from ..policy.vault import Vault
from ..types import Utxo
from .base import (
    Backend,
    BackendDisagreement,
    BackendProtocolError,
    ChainUtxo,
    HistoryItem,
    Tip,
)

DEFAULT_GAP_LIMIT = 20
MAX_GAP_LIMIT = 10_000
UTXO_ONLY_WINDOW = 1000  # per branch and round when a backend can only list unspent outputs
MAX_INDEX = 2**31 - 1


@dataclass(frozen=True)
class Balance:
    confirmed: int
    unconfirmed: int

    @property
    def total(self) -> int:
        return self.confirmed + self.unconfirmed


@dataclass(frozen=True)
class VaultUtxo:
    """A vault coin: the spendable record (with ``prev_tx`` once fetched) and its confirmation."""

    utxo: Utxo
    height: Optional[int]
    confirmations: int


@dataclass(frozen=True)
class VaultTx:
    """A transaction that paid to or spent from the vault."""

    txid: str
    height: Optional[int]
    confirmations: int
    touches: tuple  # ((branch, index), ...) of the vault's scripts it involves


@dataclass(frozen=True)
class ScanResult:
    """What a scan found. ``history`` is empty and ``history_known`` False when the backend has
    no history; ``next_receive_index`` is the first receive index after the last used one and
    ``change_high_water`` the highest used change index (-1: none)."""

    tip: Tip
    gap_limit: int
    used: tuple
    utxos: tuple
    history: tuple
    history_known: bool
    balance: Balance
    next_receive_index: int
    change_high_water: int
    round_trips: Optional[int]

    @property
    def spendable(self) -> list[Utxo]:
        return [u.utxo for u in self.utxos]

    def to_dict(self) -> dict:
        return {
            "tip": {"height": self.tip.height, "hash": self.tip.hash, "time": self.tip.time},
            "gap_limit": self.gap_limit,
            "used": [{"branch": b, "index": i} for b, i in self.used],
            "balance": {"confirmed": self.balance.confirmed, "unconfirmed": self.balance.unconfirmed,
                        "total": self.balance.total},
            "utxos": [{**u.utxo.to_dict(), "height": u.height, "confirmations": u.confirmations}
                      for u in self.utxos],
            "history": [{"txid": t.txid, "height": t.height, "confirmations": t.confirmations,
                         "touches": [{"branch": b, "index": i} for b, i in t.touches]}
                        for t in self.history] if self.history_known else None,
            "next_receive_index": self.next_receive_index,
            "change_high_water": self.change_high_water,
            "round_trips": self.round_trips,
        }


def scan_vault(vault: Vault, backend: Backend, *, gap_limit: int = DEFAULT_GAP_LIMIT,
               fetch_prev_txs: bool = True) -> ScanResult:
    """Discover the vault's used addresses on ``backend`` and read its coins and history."""
    if isinstance(gap_limit, bool) or not isinstance(gap_limit, int) or not 1 <= gap_limit <= MAX_GAP_LIMIT:
        from .base import BackendError

        raise BackendError(f"the gap limit must be a whole number from 1 to {MAX_GAP_LIMIT}, "
                           f"not {gap_limit!r}", what="vault scan")
    start = getattr(backend, "round_trips", None)
    network_tip = backend.tip()
    by_history = backend.has_history
    found, where = _discover(vault, backend, gap_limit, by_history)
    used = sorted(where[s] for s in found)
    if by_history:
        coins = backend.utxos([s for s in found])
    else:
        coins = [u for s in found for u in found[s]]
    records = _vault_utxos(coins, where, network_tip.height)
    if fetch_prev_txs:
        records = fetch_spendable(backend, records)
    history = _history(found, where, network_tip.height) if by_history else ()
    balance = Balance(sum(r.utxo.amount for r in records if r.height is not None),
                      sum(r.utxo.amount for r in records if r.height is None))
    receive = [i for b, i in used if b == 0]
    change = [i for b, i in used if b == 1]
    end = getattr(backend, "round_trips", None)
    return ScanResult(
        tip=network_tip, gap_limit=gap_limit, used=tuple(used), utxos=tuple(records),
        history=history, history_known=by_history, balance=balance,
        next_receive_index=(max(receive) + 1) if receive else 0,
        change_high_water=max(change) if change else -1,
        round_trips=(end - start) if start is not None and end is not None else None)


def _discover(vault: Vault, backend: Backend, gap: int, by_history: bool):
    """{script: history or utxos} of used scripts, and {script: (branch, index)} of all scanned."""
    scanned = {0: 0, 1: 0}
    last_used = {0: -1, 1: -1}
    found: dict = {}
    where: dict = {}
    window = gap if by_history else max(gap, UTXO_ONLY_WINDOW)
    while True:
        need = {b: last_used[b] + gap + 1 - scanned[b] for b in (0, 1)}
        todo = {b: min(max(n, window, scanned[b]), MAX_INDEX + 1 - scanned[b])
                for b, n in need.items() if n > 0 and scanned[b] <= MAX_INDEX}
        if not todo:
            return found, where
        batch = []
        for b, size in todo.items():
            for i in range(scanned[b], scanned[b] + size):
                spk = vault.derive_branch(b, i).script_pubkey
                where[spk] = (b, i)
                batch.append(spk)
        backend.watch(vault.descriptors(), max(scanned[b] + s for b, s in todo.items()) - 1)
        if by_history:
            answers = {s: h for s, h in backend.history(batch).items() if h}
        else:
            answers = {}
            for u in backend.utxos(batch):
                answers.setdefault(u.script_pubkey, []).append(u)
        for spk, answer in answers.items():
            if spk not in where:
                raise BackendProtocolError("the server answered about a script we did not ask "
                                           "about", where=backend.where, what="vault scan")
            found[spk] = answer
            b, i = where[spk]
            last_used[b] = max(last_used[b], i)
        for b, size in todo.items():
            scanned[b] += size


def _vault_utxos(coins: Sequence[ChainUtxo], where: dict, tip_height: int) -> list[VaultUtxo]:
    seen, out = set(), []
    for c in coins:
        if c.outpoint in seen:
            continue
        seen.add(c.outpoint)
        branch, index = where[c.script_pubkey]
        out.append(VaultUtxo(Utxo(c.txid, c.vout, c.amount, c.script_pubkey, branch, index),
                             c.height, c.confirmations(tip_height)))
    out.sort(key=lambda r: (r.height is None, r.height or 0, r.utxo.txid, r.utxo.vout))
    return out


def fetch_spendable(backend: Backend, records: Sequence[VaultUtxo]) -> list[VaultUtxo]:
    """``records`` with each previous transaction fetched and checked against the claim."""
    from ..psbt import fields as F

    txs = backend.get_txs(r.utxo.txid for r in records)
    out = []
    for r in records:
        raw = txs[r.utxo.txid]
        vout = F.parse_tx(raw, "previous transaction").vout
        if r.utxo.vout >= len(vout) or (vout[r.utxo.vout][0], bytes(vout[r.utxo.vout][1])) != (
                r.utxo.amount, r.utxo.script_pubkey):
            raise BackendProtocolError(
                f"the server claims {r.utxo.outpoint} pays {r.utxo.amount} sats to the vault, but "
                "the transaction itself says otherwise: do not trust this server",
                where=backend.where, what="UTXO check")
        out.append(replace(r, utxo=replace(r.utxo, prev_tx=raw)))
    return out


def _history(found: dict, where: dict, tip_height: int) -> tuple:
    txs: dict[str, list] = {}
    heights: dict[str, Optional[int]] = {}
    for spk, items in found.items():
        for item in items:
            assert isinstance(item, HistoryItem)
            txs.setdefault(item.txid, []).append(where[spk])
            heights[item.txid] = item.height
    out = [VaultTx(t, heights[t], HistoryItem(t, heights[t]).confirmations(tip_height),
                   tuple(sorted(set(places)))) for t, places in txs.items()]
    out.sort(key=lambda t: (t.height is None, t.height or 0, t.txid))
    return tuple(out)


def cross_check(first: ScanResult, second: ScanResult) -> None:
    """Raise :class:`BackendDisagreement` unless two scans found the same coins."""
    a = {(u.utxo.outpoint, u.utxo.amount, u.height is not None) for u in first.utxos}
    b = {(u.utxo.outpoint, u.utxo.amount, u.height is not None) for u in second.utxos}
    if a != b:
        only_a = sorted(x[0] for x in a - b)[:3]
        only_b = sorted(x[0] for x in b - a)[:3]
        raise BackendDisagreement(
            f"the two backends disagree about the vault's coins (only in the first: "
            f"{only_a or 'none'}; only in the second: {only_b or 'none'}): find out which "
            "server is wrong before spending", what="cross-check")
