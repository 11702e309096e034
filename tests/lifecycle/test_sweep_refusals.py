"""The offline signer trusts nothing in a sweep plan: every tampering a hostile online machine could
make is refused before any signature, and a fair plan signs into a transaction the kernel accepts."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msigvault.errors import FeeLimitExceeded
from msigvault.lifecycle.discover import single_script
from msigvault.lifecycle.errors import SweepRefused
from msigvault.lifecycle.sources import ScriptKind
from msigvault.lifecycle.sweep import FeeLimits, parse_plan, sign_plan
from msigvault.psbt import fields as F
from msigvault.regtest import RegtestChain

from .conftest import NET, build_plan, registered_vault, secret_key, wif

KEY = secret_key("refusals")
SOURCE = f"{wif(KEY)}\n"
ATTACKER = b"\x00\x14" + b"\xaa" * 20


@pytest.fixture(scope="module")
def built():
    chain = RegtestChain()
    chain.mine(110)
    b = build_plan(chain, SOURCE, {"wif0/p2wpkh": [100_000], "wif0/p2tr": [50_000], "wif0/p2pkh": [30_000]})
    yield b
    chain.close()


def _tamper(plan, edit):
    obj = json.loads(plan.to_bytes())
    edit(obj, obj["transactions"][0])
    return parse_plan(json.dumps(obj).encode())


def _outputs(t, outputs):
    """Rewrite transaction ``t``'s outputs (in the unsigned tx and in the plan's list)."""
    raw = F.parse_tx(bytes.fromhex(t["unsigned_tx"]), "tx", allow_witness=False)
    vin = [(bytes(txid), n, seq) for txid, n, _, seq in raw.vin]
    t["unsigned_tx"] = F.serialize_tx(raw.version, vin, [(a, s) for _, s, a in outputs], raw.locktime).hex()
    t["outputs"] = [{"vault_index": i, "script_pubkey": s.hex(), "amount": a, "address": ""} for i, s, a in outputs]


def _sign(b, plan, **kw):
    vault_file = kw.pop("vault_file", b.vault_file)
    kw.setdefault("policy_id", vault_file.vault.policy_id)
    with b.source() as src:
        return sign_plan(plan, src, vault_file, signed_at="t3", **kw)


def test_a_fair_plan_signs_and_the_kernel_accepts_it(built):
    signed = _sign(built, built.plan)
    (tx,) = signed.transactions
    assert signed.verified_by_kernel
    built.chain.submit([tx.raw])  # mined: libbitcoinkernel validates the block
    assert built.chain.get_tx(tx.txid) is not None
    assert tx.outputs[0][1] == built.vault_file.vault.address(0)


def test_an_output_to_another_address_is_refused(built):
    def edit(obj, t):
        (i, _, a), = [(o["vault_index"], o["script_pubkey"], o["amount"]) for o in t["outputs"]]
        _outputs(t, [(i, ATTACKER, a)])
    with pytest.raises(SweepRefused) as e:
        _sign(built, _tamper(built.plan, edit))
    assert e.value.output_index == 0 and "not the registered vault" in str(e.value)


def test_an_extra_output_is_refused(built):
    vault = built.vault_file.vault

    def edit(obj, t):
        o = t["outputs"][0]
        _outputs(t, [(0, vault.script_pubkey(0), o["amount"] - 10_000), (0, ATTACKER, 10_000)])
    with pytest.raises(SweepRefused) as e:
        _sign(built, _tamper(built.plan, edit))
    assert e.value.output_index == 1


@pytest.mark.parametrize("index,change", [(1001, False), (0, True), (2**31 - 1, False)])
def test_vault_change_addresses_and_far_indexes_are_refused(built, index, change):
    vault = built.vault_file.vault
    spk = vault.script_pubkey(min(index, 1001), change=change)

    def edit(obj, t):
        _outputs(t, [(index if not change else 0, spk, t["outputs"][0]["amount"])])
    with pytest.raises(SweepRefused):
        _sign(built, _tamper(built.plan, edit))


def test_a_fee_above_the_limit_is_refused(built):
    def edit(obj, t):
        o = t["outputs"][0]
        _outputs(t, [(0, bytes.fromhex(o["script_pubkey"]), o["amount"] - 20_000)])
    with pytest.raises(FeeLimitExceeded):
        _sign(built, _tamper(built.plan, edit))
    _sign(built, _tamper(built.plan, edit), limits=FeeLimits(max_fee_fraction=0.5))  # the limit is the reason


def test_a_swapped_previous_transaction_is_refused(built):
    def edit(obj, t):
        t["inputs"][0]["prev_tx"], t["inputs"][1]["prev_tx"] = t["inputs"][1]["prev_tx"], t["inputs"][0]["prev_tx"]
        for c in t["inputs"][:2]:  # keep the plan's own records self-consistent; the txid check remains
            tx = F.parse_tx(bytes.fromhex(c["prev_tx"]), "tx")
            c["txid"] = tx.txid()[::-1].hex()
            c["amount"], spk = tx.vout[c["vout"]] if c["vout"] < len(tx.vout) else tx.vout[0]
            c["vout"] = min(c["vout"], len(tx.vout) - 1)
            c["script_pubkey"] = bytes(spk).hex()
    with pytest.raises(SweepRefused) as e:
        _sign(built, _tamper(built.plan, edit))
    assert "does not hash to the outpoint" in str(e.value)


def test_a_foreign_coin_claimed_as_the_sources_is_refused(built):
    other = built.chain.fund(single_script(ScriptKind.P2WPKH, _other_pub()), [70_000])[0]

    def edit(obj, t):
        coin = dict(t["inputs"][0], txid=other.txid, vout=other.vout, amount=other.amount,
                    script_pubkey=other.script_pubkey.hex(), prev_tx=other.prev_tx.hex(), group="wif0/p2wpkh")
        t["inputs"].append(coin)
        raw = F.parse_tx(bytes.fromhex(t["unsigned_tx"]), "tx", allow_witness=False)
        vin = [(bytes(txid), n, seq) for txid, n, _, seq in raw.vin] + [(bytes.fromhex(other.txid)[::-1], other.vout,
                                                                       0xFFFFFFFD)]
        t["unsigned_tx"] = F.serialize_tx(raw.version, vin, [(a, bytes(s)) for a, s in raw.vout], 0).hex()
    with pytest.raises(SweepRefused) as e:
        _sign(built, _tamper(built.plan, edit))
    assert e.value.input_index == len(built.plan.transactions[0].inputs)


def _other_pub() -> bytes:
    from embit.util import secp256k1 as s

    return s.ec_pubkey_serialize(s.ec_pubkey_create(secret_key("someone else")))


@pytest.mark.parametrize("group", ["wif5/p2wpkh", "wif0/p2wsh", "bip84/0", "desc0"])
def test_a_group_the_source_does_not_have_is_refused(built, group):
    def edit(obj, t):
        t["inputs"][0]["group"] = group
    with pytest.raises(SweepRefused):
        _sign(built, _tamper(built.plan, edit))


def test_an_unregistered_vault_or_another_policy_id_is_refused(built):
    unregistered = registered_vault(registered=False)
    with pytest.raises(SweepRefused, match="registration"):
        _sign(built, built.plan, vault_file=unregistered)
    with pytest.raises(SweepRefused, match="policy id"):
        _sign(built, built.plan, policy_id="00" * 32)
    with pytest.raises(SweepRefused, match="policy id"):
        _sign(built, built.plan, vault_file=registered_vault("another"))


def test_a_plan_with_signatures_already_is_refused(built):
    def edit(obj, t):
        raw = bytearray(bytes.fromhex(t["unsigned_tx"]))
        # version(4) count(1) outpoint(36) then the scriptSig length: make it a one-byte script
        raw[41:42] = b"\x01\x51"
        t["unsigned_tx"] = raw.hex()
    with pytest.raises(SweepRefused, match="scriptSig"):
        _sign(built, _tamper(built.plan, edit))


def test_the_network_must_agree(built):
    from msigvault.lifecycle.secrets import Secret
    from msigvault.lifecycle.sources import parse_source

    with parse_source(Secret(SOURCE.encode()), "testnet") as src:
        with pytest.raises(SweepRefused, match="regtest"):
            sign_plan(built.plan, src, built.vault_file, signed_at="t",
                      policy_id=built.vault_file.vault.policy_id)
    assert NET.name == "regtest"


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


_VALUES = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=8) | \
    st.sampled_from(["", "00", "ff" * 40, "wif0/p2tr", "bip84/0", []])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_a_mutated_plan_is_refused_with_an_msigvault_error_or_signs_the_same(built, data):
    from msigvault.errors import MsigvaultError

    obj = json.loads(built.plan.to_bytes())
    paths = list(_paths(obj))
    path = data.draw(st.sampled_from(paths))
    target = obj
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = data.draw(_VALUES)
    try:
        plan = parse_plan(json.dumps(obj).encode())
        signed = _sign(built, plan)
    except MsigvaultError:
        return
    # what was changed did not matter to what is signed: the same vault outputs, no more fee
    fair = _sign(built, built.plan)
    assert [t.outputs for t in signed.transactions] == [t.outputs for t in fair.transactions]
    assert [t.fee for t in signed.transactions] == [t.fee for t in fair.transactions]


# -- review: a hostile online machine or USB stick (docs/intake.md, step 4) ------------------------


def _rebuild(t, *, version=None, locktime=None, sequence=None):
    raw = F.parse_tx(bytes.fromhex(t["unsigned_tx"]), "tx", allow_witness=False)
    vin = [(bytes(txid), n, seq if sequence is None else sequence) for txid, n, _, seq in raw.vin]
    t["unsigned_tx"] = F.serialize_tx(raw.version if version is None else version, vin,
                                      [(a, bytes(s)) for a, s in raw.vout],
                                      raw.locktime if locktime is None else locktime).hex()


@pytest.mark.parametrize("change,field", [
    (dict(locktime=1_900_000_000), "locktime"),  # not minable before 2030
    (dict(locktime=5_000_000), "locktime"),  # not before block 5,000,000
    (dict(sequence=0x0000FFFF), "sequence"),  # BIP68: 65,535 blocks after each coin confirmed
    (dict(sequence=0x00400000 | 0xFFFF), "sequence"),  # BIP68 in time: about a year
    (dict(version=3), "version"),  # TRUC relay rules: a heavy sweep would never relay
])
def test_a_sweep_that_cannot_be_mined_at_once_is_refused(built, change, field):
    with pytest.raises(SweepRefused) as e:
        _sign(built, _tamper(built.plan, lambda obj, t: _rebuild(t, **change)))
    assert e.value.field == field


def test_the_registered_index_limit_is_exclusive(built):
    """Registrations accept indexes *below* the limit (as the vault signer does): a sweep to the
    index equal to it would put the coins where no keyholder's signer will spend them."""
    vault = built.vault_file.vault
    limit = min(r.index_limit for r in built.vault_file.registrations)

    def edit(obj, t):
        _outputs(t, [(limit, vault.script_pubkey(limit), t["outputs"][0]["amount"])])
    with pytest.raises(SweepRefused) as e:
        _sign(built, _tamper(built.plan, edit))
    assert e.value.output_index == 0 and f"below the index limit {limit}" in str(e.value)

    def edit_below(obj, t):
        _outputs(t, [(limit - 1, vault.script_pubkey(limit - 1), t["outputs"][0]["amount"])])
    (tx,) = _sign(built, _tamper(built.plan, edit_below)).transactions
    assert tx.outputs[0][0] == limit - 1


def test_a_substituted_vault_file_with_its_own_registrations_needs_the_policy_id(built):
    """Whoever writes the USB stick makes a vault of their own keys, registers it with those keys
    and plans the sweep into it: the file "carries registrations" that verify. Only the policy id
    the operator was given out of band tells it apart, so it is required."""
    attacker = registered_vault("attacker")

    def edit(obj, t):
        obj["vault"]["policy_id"] = attacker.vault.policy_id
        _outputs(t, [(0, attacker.vault.script_pubkey(0), t["outputs"][0]["amount"])])
    forged = _tamper(built.plan, edit)
    with pytest.raises(SweepRefused, match="policy id"):
        _sign(built, forged, vault_file=attacker, policy_id=built.vault_file.vault.policy_id)
    with built.source() as src:
        with pytest.raises(TypeError):
            sign_plan(forged, src, attacker, signed_at="t")  # type: ignore[call-arg]
        for missing in ("", "  "):
            with pytest.raises(SweepRefused, match="out of band") as e:
                sign_plan(forged, src, attacker, signed_at="t", policy_id=missing)
            assert e.value.field == "policy_id"


def test_the_planner_refuses_indexes_the_signer_would_refuse(built):
    from msigvault.lifecycle.errors import PlanError
    from msigvault.lifecycle.sweep import make_plan

    limit = min(r.index_limit for r in built.vault_file.registrations)
    with pytest.raises(PlanError, match=f"below {limit}"):
        make_plan(built.watch, built.found, built.vault_file, fee_rate=2, created="t", start_index=limit)
    plan = make_plan(built.watch, built.found, built.vault_file, fee_rate=2, created="t", start_index=limit - 1)
    assert plan.transactions[0].outputs[0][0] == limit - 1
