"""Coin selection: branch-and-bound finds changeless spends; the fallback always pays target + fee."""

import pytest
from hypothesis import given, strategies as st

from msigvault.errors import CoinSelectionError
from msigvault.psbt.coinselect import fee_for, select_coins
from msigvault.types import Utxo

IN_W, BASE_W, CHG_W, SPEND_W, MIN_CHANGE = 420, 200, 172, 420, 330


def coins(amounts):
    return [Utxo(f"{i:064x}", 0, a, b"\x00\x20" + bytes(32), 0, i) for i, a in enumerate(amounts)]


def select(amounts, target, rate=2.0):
    return select_coins(coins(amounts), target=target, fee_rate=rate, base_weight=BASE_W, input_weight=IN_W,
                        change_output_weight=CHG_W, change_spend_weight=SPEND_W, min_change=MIN_CHANGE)


def test_branch_and_bound_finds_an_exact_changeless_subset():
    input_fee = fee_for(IN_W, 2.0)
    need = 150_000 + fee_for(BASE_W, 2.0)
    # 100k + 50k (plus their input fees) pay exactly; the big coin would need change
    amounts = [1_000_000, 100_000 + input_fee, 50_000 + input_fee + need - 150_000, 70_000]
    s = select(amounts, 150_000)
    assert s.algorithm == "branch-and-bound" and not s.change
    assert sorted(u.amount for u in s.utxos) == sorted(amounts[1:3])


def test_fallback_uses_smallest_single_coin_with_change():
    s = select([1_000_000, 500_000, 30_000], 200_000)
    assert s.algorithm == "smallest-single" and s.change and [u.amount for u in s.utxos] == [500_000]


def test_largest_first_when_no_single_coin_suffices():
    s = select([90_000, 80_000, 70_000, 10_000], 200_000)
    assert s.algorithm == "largest-first" and s.change
    assert [u.amount for u in s.utxos] == [90_000, 80_000, 70_000]


def test_insufficient_funds_and_uneconomic_coins():
    with pytest.raises(CoinSelectionError, match="insufficient funds"):
        select([10_000, 20_000], 100_000)
    with pytest.raises(CoinSelectionError, match="no coin is worth spending"):
        select([400, 500], 100, rate=5.0)
    with pytest.raises(CoinSelectionError, match="positive amount"):
        select([10_000], 0)


@given(st.lists(st.integers(1_000, 2_000_000), min_size=1, max_size=12), st.integers(1_000, 3_000_000),
       st.sampled_from([1.0, 3.0, 25.0]))
def test_selection_always_pays_target_and_fee(amounts, target, rate):
    try:
        s = select(amounts, target, rate)
    except CoinSelectionError:
        input_fee = fee_for(IN_W, rate)
        assert sum(a - input_fee for a in amounts if a > input_fee) < target + fee_for(BASE_W, rate)
        return
    total = sum(u.amount for u in s.utxos)
    weight = BASE_W + IN_W * len(s.utxos) + (CHG_W if s.change else 0)
    assert total >= target + fee_for(weight, rate) - len(s.utxos)  # per-input fee rounding
    if not s.change and s.algorithm == "branch-and-bound":
        cost_of_change = fee_for(CHG_W, rate) + fee_for(SPEND_W, rate)
        excess = total - len(s.utxos) * fee_for(IN_W, rate) - target - fee_for(BASE_W, rate)
        assert 0 <= excess <= cost_of_change
