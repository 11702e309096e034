"""Batching: coins that do not fit one transaction under the weight limit are split into several,
each under the limit, each paying the vault's next receive address; all are accepted on the chain."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msigvault.backends.regtest import RegtestBackend
from msigvault.lifecycle.errors import PlanError
from msigvault.lifecycle.sweep import make_plan, sign_plan
from msigvault.regtest import RegtestChain

from .conftest import build_plan, secret_key, wif


def test_many_coins_are_split_under_the_weight_limit():
    with RegtestChain() as chain:
        chain.mine(110)
        b = build_plan(chain, f"{wif(secret_key('batch'))}\n", {"wif0/p2wpkh": [20_000] * 30, "wif0/p2pkh": [9_000] * 6})
        plan = make_plan(b.watch, b.found, b.vault_file, fee_rate=2, created="t", max_weight=4000, start_index=5)
        assert len(plan.transactions) >= 3
        assert sum(len(t.inputs) for t in plan.transactions) == 36
        assert [t.outputs[0][0] for t in plan.transactions] == list(range(5, 5 + len(plan.transactions)))
        with b.source() as src:
            signed = sign_plan(plan, src, b.vault_file, signed_at="t", policy_id=b.vault_file.vault.policy_id)
        backend = RegtestBackend(chain)
        for t in signed.transactions:
            assert t.vsize * 4 <= 4000
            backend.broadcast(t.raw)
        vault = b.vault_file.vault
        assert sum(chain.balance(vault.address(5 + n)) for n in range(len(plan.transactions))) == \
            20_000 * 30 + 9_000 * 6 - sum(t.fee for t in signed.transactions)


def test_nothing_to_sweep_a_dust_output_and_a_bad_fee_rate_are_plan_errors():
    with RegtestChain() as chain:
        chain.mine(110)
        b = build_plan(chain, f"{wif(secret_key('tiny'))}\n", {"wif0/p2pkh": [700]}, plan=False)
        with pytest.raises(PlanError, match="nothing to sweep"):
            make_plan(b.watch, b.found, b.vault_file, fee_rate=10, created="t")
        with pytest.raises(PlanError, match="fee rate"):
            make_plan(b.watch, b.found, b.vault_file, fee_rate=0.5, created="t")
        with pytest.raises(PlanError, match="would be dust"):  # swept anyway, the output itself is dust
            make_plan(b.watch, b.found, b.vault_file, fee_rate=2, created="t", include_dust=True)


def test_taproot_key_path_signatures_for_keys_of_both_parities_are_valid():
    from embit.util import secp256k1 as s

    keys = [secret_key(f"tr-{i}") for i in range(8)]
    parities = {s.ec_pubkey_serialize(s.ec_pubkey_create(k))[0] for k in keys}
    assert parities == {2, 3}  # the internal key is negated for odd y: both branches are signed
    with RegtestChain() as chain:
        chain.mine(110)
        b = build_plan(chain, "".join(wif(k) + "\n" for k in keys), {f"wif{i}/p2tr": [10_000] for i in range(8)})
        with b.source() as src:
            signed = sign_plan(b.plan, src, b.vault_file, signed_at="t", policy_id=b.vault_file.vault.policy_id)
        assert signed.verified_by_kernel
        chain.submit([t.raw for t in signed.transactions])
        assert chain.balance(b.vault_file.vault.address(0)) == 80_000 - sum(t.fee for t in signed.transactions)


def test_a_second_broadcast_is_a_no_op_and_a_coin_twice_is_refused():
    import json

    from msigvault.lifecycle.errors import SweepRefused
    from msigvault.lifecycle.sweep import broadcast, parse_plan

    with RegtestChain() as chain:
        chain.mine(110)
        b = build_plan(chain, f"{wif(secret_key('twice'))}\n", {"wif0/p2wpkh": [50_000]})
        with b.source() as src:
            signed = sign_plan(b.plan, src, b.vault_file, signed_at="t", policy_id=b.vault_file.vault.policy_id)
        backend = RegtestBackend(chain)
        height = chain.height
        assert broadcast(signed, backend) == broadcast(signed, backend) == [signed.transactions[0].txid]
        assert chain.height == height + 1  # mined once
        obj = json.loads(b.plan.to_bytes())
        obj["transactions"].append(obj["transactions"][0])
        with b.source() as src, pytest.raises(SweepRefused, match="twice"):
            sign_plan(parse_plan(json.dumps(obj).encode()), src, b.vault_file, signed_at="t",
                      policy_id=b.vault_file.vault.policy_id)



_KINDS = ["wif0/p2pkh", "wif0/p2sh-p2wpkh", "wif0/p2wpkh", "wif0/p2tr", "wif1/p2pkh"]


@settings(max_examples=12, deadline=None)
@given(coins=st.lists(st.tuples(st.sampled_from(_KINDS), st.integers(3_000, 2_000_000)), min_size=1, max_size=12),
       fee_rate=st.sampled_from([1, 2.5, 7, 30]), max_weight=st.sampled_from([4000, 10_000, 400_000]))
def test_property_any_coins_sweep_at_no_less_than_the_fee_rate(coins, fee_rate, max_weight):
    """Any mix of script types (an uncompressed key too), fee rates and weight limits: every transaction
    is accepted by the kernel, stays under the limit, and pays at least the planned rate (the weight
    estimate is an upper bound)."""
    from msigvault.lifecycle.errors import PlanError
    from msigvault.lifecycle.sweep import FeeLimits

    groups: "dict[str, list[int]]" = {}
    for gid, amount in coins:
        groups.setdefault(gid, []).append(amount)
    text = f"{wif(secret_key('p-a'))}\n{wif(secret_key('p-b'), False)}\n"
    with RegtestChain() as chain:
        chain.mine(110)
        b = build_plan(chain, text, groups, plan=False)
        try:
            plan = make_plan(b.watch, b.found, b.vault_file, fee_rate=fee_rate, created="t", max_weight=max_weight)
        except PlanError:
            return  # only dust at this rate: refusing is the documented outcome
        with b.source() as src:
            signed = sign_plan(plan, src, b.vault_file, signed_at="t", policy_id=b.vault_file.vault.policy_id,
                               limits=FeeLimits(max_fee_fraction=1.0))
        assert signed.verified_by_kernel
        chain.submit([t.raw for t in signed.transactions])
        assert sum(len(t.inputs) for t in plan.transactions) + len(plan.left_out) == len(coins)
        for t in signed.transactions:
            assert t.vsize * 4 <= max_weight + 3
            assert t.fee >= fee_rate * t.vsize
