"""Coin selection: branch-and-bound for a changeless spend (as Bitcoin Core does), then a sound
fallback (the smallest single coin that covers the spend with change, else largest-first).

Amounts are satoshis; fee rates are sat/vB. Every candidate is valued by its *effective value*:
its amount minus the fee its own input adds at the target fee rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..errors import CoinSelectionError
from ..types import Utxo

BNB_MAX_TRIES = 100_000


@dataclass(frozen=True)
class Selection:
    utxos: "tuple[Utxo, ...]"
    change: bool  # whether a change output is created
    algorithm: str


def fee_for(weight: int, fee_rate: float) -> int:
    """Fee in sats for ``weight`` WU at ``fee_rate`` sat/vB: the rate times the virtual size
    (weight / 4 rounded up, as Bitcoin Core counts it), rounded up to a whole sat."""
    return math.ceil(fee_rate * ((weight + 3) // 4) - 1e-9)


def select_coins(utxos: Sequence[Utxo], *, target: int, fee_rate: float, base_weight: int,
                 input_weight: int, change_output_weight: int, change_spend_weight: int,
                 min_change: int) -> Selection:
    """Choose inputs paying ``target`` sats plus the fee.

    ``base_weight`` is the transaction without inputs and without a change output;
    ``input_weight`` the weight each input adds; a change output adds ``change_output_weight`` now
    and costs ``change_spend_weight`` to spend later. Change below ``min_change`` is folded into
    the fee.
    """
    if target <= 0:
        raise CoinSelectionError("the outputs must pay a positive amount")
    input_fee = fee_for(input_weight, fee_rate)
    pool = [u for u in utxos if u.amount - input_fee > 0]
    if not pool:
        raise CoinSelectionError(
            f"no coin is worth spending at {fee_rate} sat/vB: each input costs {input_fee} sats in fees"
        )
    total_effective = sum(u.amount - input_fee for u in pool)
    need = target + fee_for(base_weight, fee_rate)
    if total_effective < need:
        raise CoinSelectionError(
            f"insufficient funds: the vault's spendable coins are worth {total_effective} sats after "
            f"input fees, the payment needs {need} sats including fees"
        )
    cost_of_change = fee_for(change_output_weight, fee_rate) + fee_for(change_spend_weight, fee_rate)

    found = _branch_and_bound(pool, need, cost_of_change, input_fee)
    if found is not None:
        return Selection(tuple(found), False, "branch-and-bound")

    need_with_change = need + fee_for(change_output_weight, fee_rate) + min_change
    single = [u for u in pool if u.amount - input_fee >= need_with_change]
    if single:
        best = min(single, key=lambda u: (u.amount, u.txid, u.vout))
        return Selection((best,), True, "smallest-single")
    chosen, acc = [], 0
    for u in sorted(pool, key=lambda u: (-u.amount, u.txid, u.vout)):
        chosen.append(u)
        acc += u.amount - input_fee
        if acc >= need_with_change:
            return Selection(tuple(chosen), True, "largest-first")
    # enough for the payment but not for a change output worth keeping: no change, excess -> fee
    return Selection(tuple(chosen), False, "largest-first-no-change")


def _branch_and_bound(pool: "Sequence[Utxo]", need: int, cost_of_change: int,
                      input_fee: int) -> "list[Utxo] | None":
    """Depth-first search for a subset whose effective value is in [need, need + cost_of_change]."""
    coins = sorted(pool, key=lambda u: (-u.amount, u.txid, u.vout))
    values = [u.amount - input_fee for u in coins]
    remaining = [0] * (len(values) + 1)
    for i in range(len(values) - 1, -1, -1):
        remaining[i] = remaining[i + 1] + values[i]
    best: "tuple[int, ...] | None" = None
    best_waste: "int | None" = None
    tries = 0
    # iterative DFS: stack of (index, current sum, chosen indexes)
    stack: "list[tuple[int, int, tuple[int, ...]]]" = [(0, 0, ())]
    while stack and tries < BNB_MAX_TRIES:
        i, total, chosen = stack.pop()
        tries += 1
        if total > need + cost_of_change:
            continue
        if total >= need:
            waste = total - need
            if best_waste is None or waste < best_waste:
                best, best_waste = chosen, waste
                if waste == 0:
                    break
            continue
        if i >= len(values) or total + remaining[i] < need:
            continue
        # explore "omit" after "include" (stack is LIFO: push omit first)
        stack.append((i + 1, total, chosen))
        stack.append((i + 1, total + values[i], chosen + (i,)))
    if best is None:
        return None
    return [coins[i] for i in best]
