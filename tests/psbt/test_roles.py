"""Combiner, Finalizer, Extractor and Analyzer on synthetic vault coins (no chain needed);
the regtest property tests check the same transactions against libbitcoinkernel blocks."""

import pytest
from hypothesis import given, strategies as st

from msigvault import Vault
from msigvault.errors import CombineError, ExtractError, FinalizeError
from msigvault.network import Network
from msigvault.psbt import fields as F
from msigvault.psbt.combiner import combine
from msigvault.psbt.extractor import extract
from msigvault.psbt.finalizer import finalize
from msigvault.psbt.signer import sign
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.strategies import vault_keyholders
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))


def make(script, m=2, n=3, inputs=2):
    holders = [TestKeyholder.from_label(f"roles-{i}") for i in range(n)]
    vault = Vault.multisig(m, [h.cosigner(script) for h in holders], script=script, network=NET)
    utxos = [synthetic_utxo(vault, 100_000, index=i) for i in range(inputs)]
    psbt = vault.create_psbt(utxos, [(EXTERNAL, 100_000 * inputs - 50_000)], fee_rate=3.0, change_index=0)
    return vault, holders, psbt


def sig_type(vault):
    return F.PSBT_IN_TAP_SCRIPT_SIG if vault.script == "tr" else F.PSBT_IN_PARTIAL_SIG


@pytest.mark.parametrize("script", ["sh", "sh-wsh", "wsh", "tr"])
def test_full_ceremony_extracts_kernel_verified_tx(script):
    vault, holders, psbt = make(script)
    parts = [sign(psbt, vault, h.root)[0] for h in holders[:2]]
    final = finalize(combine(parts, vault), vault)
    tx = extract(final)
    assert tx.verified_by_kernel
    assert tx.fee == 200_000 - sum(psbt.amount(o) for o in range(psbt.output_count))
    # the fee estimate the creator used is never below the real size
    analysis = vault.analyze(psbt)
    assert analysis["estimated_vsize"] >= tx.vsize
    # at most 1 vbyte per signature over (plus, for sh, a scriptSig length prefix per input)
    assert analysis["estimated_vsize"] - tx.vsize <= psbt.input_count * (vault.m + (2 if script == "sh" else 0)) + 1
    # finalized inputs keep only UTXO and final fields
    for m in final.inputs:
        kept = {F.keytype_of(k) for k in m.keys()}
        assert kept <= {F.PSBT_IN_NON_WITNESS_UTXO, F.PSBT_IN_WITNESS_UTXO,
                        F.PSBT_IN_FINAL_SCRIPTSIG, F.PSBT_IN_FINAL_SCRIPTWITNESS}


@pytest.mark.parametrize("script", ["sh", "wsh", "tr"])
def test_finalize_names_missing_cosigners(script):
    vault, holders, psbt = make(script, m=3, n=5)
    parts = [sign(psbt, vault, h.root)[0] for h in holders[:2]]
    with pytest.raises(FinalizeError) as e:
        finalize(combine(parts, vault), vault)
    text = str(e.value)
    assert "needs 1 more signature" in text
    for h in holders[2:]:
        assert h.fingerprint.hex() in text
    for h in holders[:2]:
        assert h.fingerprint.hex() not in text.split("missing")[1]


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_more_than_m_signatures_finalize_with_exactly_m(script):
    vault, holders, psbt = make(script)
    parts = [sign(psbt, vault, h.root)[0] for h in holders]
    tx = extract(finalize(combine(parts, vault), vault))
    assert tx.verified_by_kernel


@pytest.mark.parametrize("script", ["sh", "sh-wsh", "wsh", "tr"])
def test_flipped_signature_bit_is_rejected_by_combiner(script):
    vault, holders, psbt = make(script)
    good = sign(psbt, vault, holders[0].root)[0]
    bad = good.copy()
    t = sig_type(vault)
    keydata, value = bad.inputs[1].items_of_type(t)[0]
    bad.inputs[1].set(t, keydata, value[:10] + bytes([value[10] ^ 0x01]) + value[11:])
    with pytest.raises(CombineError, match="does not verify|other than"):
        combine([bad, sign(psbt, vault, holders[1].root)[0]], vault)


def test_signature_by_foreign_key_is_rejected():
    vault, holders, psbt = make("wsh")
    bad = sign(psbt, vault, holders[0].root)[0]
    stranger = TestKeyholder.from_label("stranger").cosigner("wsh").pubkey_at(0, 0)
    keydata, value = bad.inputs[0].items_of_type(F.PSBT_IN_PARTIAL_SIG)[0]
    bad.inputs[0].set(F.PSBT_IN_PARTIAL_SIG, stranger, value)
    with pytest.raises(CombineError, match="not a vault key"):
        combine([bad], vault)


def test_high_s_signature_is_rejected():
    vault, holders, psbt = make("wsh")
    signed = sign(psbt, vault, holders[0].root)[0]
    keydata, value = signed.inputs[0].items_of_type(F.PSBT_IN_PARTIAL_SIG)[0]
    from embit.util import secp256k1 as secp
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    compact = secp.ecdsa_signature_serialize_compact(secp.ecdsa_signature_parse_der(value[:-1]))
    r, s = compact[:32], int.from_bytes(compact[32:], "big")
    high = secp.ecdsa_signature_serialize_der(secp.ecdsa_signature_parse_compact(r + (n - s).to_bytes(32, "big")))
    signed.inputs[0].set(F.PSBT_IN_PARTIAL_SIG, keydata, high + value[-1:])
    with pytest.raises(CombineError, match="high S"):
        combine([signed], vault)


def test_combining_different_transactions_says_what_differs():
    vault, holders, psbt = make("wsh")
    other = vault.create_psbt([synthetic_utxo(vault, 100_000, index=0), synthetic_utxo(vault, 100_000, index=1)],
                              [(EXTERNAL, 120_000)], fee_rate=3.0, change_index=0)
    with pytest.raises(CombineError, match="different transaction: output"):
        combine([psbt, other], vault)


def test_conflicting_field_values_are_an_error():
    vault, holders, psbt = make("wsh")
    a, b = psbt.copy(), psbt.copy()
    b.inputs[0].set(0xFC, b"\x05hello\x00", b"one")
    a.inputs[0].set(0xFC, b"\x05hello\x00", b"two")
    with pytest.raises(CombineError, match="different value for PSBT_IN_PROPRIETARY"):
        combine([a, b], vault)


def test_unknown_fields_survive_combine():
    vault, holders, psbt = make("wsh")
    a = sign(psbt, vault, holders[0].root)[0]
    a.outputs[0].set(0xFC, b"\x03abc\x01", b"kept")
    combined = combine([a, sign(psbt, vault, holders[1].root)[0]], vault)
    assert combined.outputs[0].get(0xFC, b"\x03abc\x01") == b"kept"


def test_extract_refuses_unfinalized_and_dust():
    vault, holders, psbt = make("wsh")
    with pytest.raises(ExtractError, match="not finalized"):
        extract(psbt)


def test_v2_ceremony():
    vault, holders, psbt = make("tr")
    v2 = psbt.to_v2()
    parts = [sign(v2, vault, h.root)[0] for h in holders[1:]]
    final = finalize(combine(parts, vault), vault)
    assert final.version == 2
    assert extract(final).verified_by_kernel
    # combining a v0 and a v2 copy of the same transaction works
    mixed = combine([sign(psbt, vault, holders[0].root)[0], parts[0]], vault)
    assert extract(finalize(mixed, vault)).verified_by_kernel


def test_analyzer_tracks_progress():
    vault, holders, psbt = make("wsh", m=2, n=3)
    a = vault.analyze(psbt)
    assert a["next_role"] == "signer" and a["signed_by"] == [] and a["problems"] == []
    assert [o["kind"] for o in a["outputs"]].count("change") == 1
    one = sign(psbt, vault, holders[0].root)[0]
    a = vault.analyze(one)
    assert a["signed_by"] == [holders[0].fingerprint.hex()]
    assert all(x["signatures_needed"] == 1 for x in a["inputs"])
    both = combine([one, sign(psbt, vault, holders[2].root)[0]], vault)
    assert vault.analyze(both)["next_role"] == "finalizer"
    assert vault.analyze(finalize(both, vault))["next_role"] == "extractor"
    import json
    json.dumps(a)


@given(vh=vault_keyholders(max_n=4), data=st.data())
def test_combine_is_idempotent_commutative_associative(vh, data):
    vault, holders = vh
    utxos = [synthetic_utxo(vault, 50_000, index=i) for i in range(2)]
    psbt = vault.create_psbt(utxos, [(EXTERNAL, 60_000)], fee_rate=2.0, change_index=0)
    signers = data.draw(st.lists(st.sampled_from(holders), min_size=1, max_size=3))
    parts = [sign(psbt, vault, h.root)[0] for h in signers] + [psbt]
    a, b, c = (data.draw(st.sampled_from(parts)) for _ in range(3))
    ser = lambda p: p.serialize()  # noqa: E731
    assert ser(combine([a, a], vault)) == ser(combine([a], vault))
    assert ser(combine([a, b], vault)) == ser(combine([b, a], vault))
    assert ser(combine([combine([a, b], vault), c], vault)) == ser(combine([a, combine([b, c], vault)], vault))
    order = data.draw(st.permutations(parts))
    assert ser(combine(order, vault)) == ser(combine(parts, vault))
