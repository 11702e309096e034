"""Hypothesis strategies for msigvault objects, importable by users' own test suites.

    from msigvault.testing.strategies import vaults
    @given(vaults(script_types=("wsh", "tr"), max_n=5))
    def test_something(vault): ...
"""

from __future__ import annotations

from hypothesis import strategies as st

from ..network import Network
from ..policy.vault import MAX_KEYS, SCRIPT_TYPES, Vault
from .keyholders import TestKeyholder


def keyholders(network: Network = Network.REGTEST) -> "st.SearchStrategy[TestKeyholder]":
    """Deterministic keyholders labelled by a small integer (so failures shrink and reproduce)."""
    return st.integers(min_value=0, max_value=10_000).map(
        lambda i: TestKeyholder.from_label(f"keyholder-{i}", network)
    )


@st.composite
def vault_keyholders(draw, *, script_types=SCRIPT_TYPES, min_n: int = 1, max_n: int = 5,
                     network: Network = Network.REGTEST, sorted_choices=(True, False)):
    """(vault, keyholders in cosigner order): any m <= n within the script type's limits."""
    script = draw(st.sampled_from(tuple(script_types)))
    n = draw(st.integers(min_value=min_n, max_value=min(max_n, MAX_KEYS[script])))
    labels = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    m = draw(st.integers(min_value=1, max_value=n))
    is_sorted = draw(st.sampled_from(tuple(sorted_choices)))
    holders = [TestKeyholder.from_label(f"keyholder-{i}", network) for i in labels]
    vault = Vault.multisig(m, [h.cosigner(script) for h in holders], script=script,
                           sorted=is_sorted, network=network)
    return vault, holders


def vaults(**kwargs) -> "st.SearchStrategy[Vault]":
    """Any vault (see :func:`vault_keyholders` for the options)."""
    return vault_keyholders(**kwargs).map(lambda vh: vh[0])


def utxo_amounts(*, min_count: int = 1, max_count: int = 5, min_sats: int = 20_000,
                 max_sats: int = 5_000_000) -> "st.SearchStrategy[list[int]]":
    """Amounts (sats) for the coins a test funds a vault with."""
    return st.lists(st.integers(min_sats, max_sats), min_size=min_count, max_size=max_count)


@st.composite
def payment_requests(draw, total_available: int, *, max_outputs: int = 3, min_sats: int = 1_000):
    """[(fraction-derived amount)] payments that leave room for fees: at most half of ``total_available``."""
    budget = total_available // 2
    k = draw(st.integers(1, max_outputs))
    amounts = [draw(st.integers(min_sats, max(min_sats, budget // k))) for _ in range(k)]
    return amounts


@st.composite
def signer_orders(draw, holders, m: int, *, exact: bool = True):
    """A subset of ``holders`` of size m (or m..n when ``exact=False``) in a random order."""
    size = m if exact else draw(st.integers(m, len(holders)))
    chosen = draw(st.permutations(range(len(holders))))[:size]
    return [holders[i] for i in chosen]


def combine_orders(parts: list) -> "st.SearchStrategy[list]":
    """Any permutation of partial PSBTs, each possibly repeated once (a copy that arrived twice)."""
    return st.permutations(parts).flatmap(
        lambda order: st.lists(st.sampled_from(order), max_size=2).map(lambda extra: list(order) + extra)
    )
