"""One adversarial test per signer refusal (docs/psbt.md lists each and the attack it stops).

The attacker controls the coordinator: every test builds an honest PSBT, tampers with it the way
a hostile coordinator or USB stick could, and expects the keyholder's signer to refuse.
"""

import dataclasses

import pytest

from msigvault import Vault
from msigvault.errors import SignerRefusal
from msigvault.keys.paths import HARDENED
from msigvault.network import Network
from msigvault.psbt import fields as F
from msigvault.psbt.common import encode_origin
from msigvault.psbt.psbt import Psbt
from msigvault.psbt.signer import SignerPolicy, check, sign
from msigvault.psbt.sighash import SIGHASH_NONE
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
SCRIPTS = ["sh", "sh-wsh", "wsh", "tr"]
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))  # a P2WPKH payee


def setup(script, m=2, n=3, amounts=(200_000, 300_000), pay=400_000, fee_rate=2.0, **kw):
    holders = [TestKeyholder.from_label(f"signer-{i}") for i in range(n)]
    vault = Vault.multisig(m, [h.cosigner(script) for h in holders], script=script, network=NET)
    utxos = [synthetic_utxo(vault, a, index=i, seed=script) for i, a in enumerate(amounts)]
    psbt = vault.create_psbt(utxos, [(EXTERNAL, pay)], fee_rate=fee_rate, change_index=0, **kw)
    return vault, holders, psbt


def change_output(psbt):
    for o, m in enumerate(psbt.outputs):
        if m.items_of_type(F.PSBT_OUT_BIP32_DERIVATION) or m.items_of_type(F.PSBT_OUT_TAP_BIP32_DERIVATION):
            return o
    raise AssertionError("no change output")


def set_output_script(psbt, o, script):
    """Replace output o's script (v0: in the unsigned tx) as a hostile coordinator would."""
    v2 = psbt.to_v2()
    v2.outputs[o].set(F.PSBT_OUT_SCRIPT, b"", script)
    return v2.to_v0()


@pytest.mark.parametrize("script", SCRIPTS)
def test_honest_psbt_is_signed_and_summarised(script):
    vault, holders, psbt = setup(script)
    signed, summary = sign(psbt, vault, holders[0].root)
    assert summary.signed_inputs == psbt.input_count
    assert [o.kind for o in summary.outputs].count("change") == 1
    assert summary.sent_out == 400_000
    assert summary.input_total == 500_000
    assert summary.fee == 500_000 - sum(o.amount for o in summary.outputs) > 0
    assert "PAY" in summary.text() and "change back to vault" in summary.text()
    assert summary.to_dict()["sent_out"] == 400_000
    # the original is untouched; the result carries our signature on every input
    t = F.PSBT_IN_TAP_SCRIPT_SIG if script == "tr" else F.PSBT_IN_PARTIAL_SIG
    assert all(not m.items_of_type(t) for m in psbt.inputs)
    assert all(len(m.items_of_type(t)) == 1 for m in signed.inputs)


def test_signing_twice_keeps_the_same_signature():
    vault, holders, psbt = setup("tr")
    once, _ = sign(psbt, vault, holders[1].root)
    twice, _ = sign(once, vault, holders[1].root)
    assert twice.serialize() == once.serialize()


@pytest.mark.parametrize("script", SCRIPTS)
def test_key_not_in_vault(script):
    vault, _, psbt = setup(script)
    stranger = TestKeyholder.from_label("stranger")
    with pytest.raises(SignerRefusal, match="not a cosigner") as exc:
        sign(psbt, vault, stranger.root)
    assert exc.value.code == "signer.registration" and exc.value.fingerprint == stranger.fingerprint.hex()


def test_cosigner_xpub_substitution_in_registered_vault():
    vault, holders, psbt = setup("wsh")
    me = vault.cosigners[0]
    evil = TestKeyholder.from_label("evil").cosigner("wsh")
    forged = dataclasses.replace(me, xpub=evil.xpub, _key=None)
    bad_vault = Vault.multisig(2, [forged, *vault.cosigners[1:]], network=NET)
    with pytest.raises(SignerRefusal, match="substitution") as exc:
        sign(psbt, bad_vault, holders[0].root)
    assert exc.value.code == "signer.registration" and exc.value.fingerprint == holders[0].fingerprint.hex()


def test_psbt_for_a_different_vault_is_refused_by_global_xpubs():
    vault, holders, psbt = setup("wsh")
    evil = TestKeyholder.from_label("evil").cosigner("wsh")
    psbt.globals.set(F.PSBT_GLOBAL_XPUB, evil.key.serialize(), encode_origin(evil.fingerprint, evil.path))
    with pytest.raises(SignerRefusal) as exc:
        check(psbt, vault, fingerprint=holders[0].fingerprint)
    assert exc.value.code == "signer.foreign-key"
    assert exc.value.field == "PSBT_GLOBAL_XPUB"
    assert exc.value.fingerprint == evil.fingerprint.hex()


@pytest.mark.parametrize("script", SCRIPTS)
def test_foreign_input(script):
    vault, holders, psbt = setup(script)
    m = psbt.inputs[1]
    for t in (F.PSBT_IN_BIP32_DERIVATION, F.PSBT_IN_TAP_BIP32_DERIVATION):
        m.delete_type(t)
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.foreign-input" and exc.value.input_index == 1 and exc.value.field is not None


@pytest.mark.parametrize("script", SCRIPTS)
def test_input_claims_wrong_index(script):
    vault, holders, psbt = setup(script)
    m = psbt.inputs[0]
    t = F.PSBT_IN_TAP_BIP32_DERIVATION if script == "tr" else F.PSBT_IN_BIP32_DERIVATION
    for keydata, value in m.items_of_type(t):
        m.set(t, keydata, value[:-4] + (7).to_bytes(4, "little"))  # claim index 7
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.foreign-input" and exc.value.input_index == 0


@pytest.mark.parametrize("script", SCRIPTS)
def test_change_fraud_script_swapped(script):
    vault, holders, psbt = setup(script)
    o = change_output(psbt)
    attacker = Vault.multisig(2, [TestKeyholder.from_label(f"x{i}").cosigner(script) for i in range(3)],
                              script=script, network=NET)
    forged = set_output_script(psbt, o, attacker.derive(0, change=True).script_pubkey)
    with pytest.raises(SignerRefusal) as exc:
        sign(forged, vault, holders[0].root)
    assert exc.value.code == "signer.change-fraud" and exc.value.output_index == o


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("slot", [0, 1, 2])
def test_change_fraud_flipped_key_byte_in_every_slot(script, slot):
    """Coldcard's test_ms_change_fraud: flip one byte of one change key's derivation entry."""
    vault, holders, psbt = setup(script)
    o = change_output(psbt)
    m = psbt.outputs[o]
    t = F.PSBT_OUT_TAP_BIP32_DERIVATION if script == "tr" else F.PSBT_OUT_BIP32_DERIVATION
    keydata, value = m.items_of_type(t)[slot]
    m.delete(t, keydata)
    m.set(t, keydata[:-1] + bytes([keydata[-1] ^ 1]), value)
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.change-fraud" and exc.value.output_index == o


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("slot", [0, 1, 2])
def test_change_fraud_flipped_last_path_bit(script, slot):
    vault, holders, psbt = setup(script)
    o = change_output(psbt)
    m = psbt.outputs[o]
    t = F.PSBT_OUT_TAP_BIP32_DERIVATION if script == "tr" else F.PSBT_OUT_BIP32_DERIVATION
    keydata, value = m.items_of_type(t)[slot]
    m.set(t, keydata, value[:-1] + bytes([value[-1] ^ 1]))
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.change-fraud" and exc.value.output_index == o


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_derivation_path_ransom_far_index(script):
    vault, holders, psbt = setup(script)
    o = change_output(psbt)
    far = 5_000_000
    d = vault.derive(far, change=True)
    forged = set_output_script(psbt, o, d.script_pubkey)
    m = forged.outputs[o]
    t = F.PSBT_OUT_TAP_BIP32_DERIVATION if script == "tr" else F.PSBT_OUT_BIP32_DERIVATION
    m.delete_type(t)
    from msigvault.psbt.updater import update_output
    update_output(forged, o, vault, 1, far)
    with pytest.raises(SignerRefusal) as exc:
        sign(forged, vault, holders[0].root)
    assert exc.value.code == "signer.index-limit" and exc.value.output_index == o and exc.value.limit == 1000
    # the same output below an explicit index limit is accepted as change
    ok, summary = sign(forged, vault, holders[0].root, policy=SignerPolicy(index_limit=far + 1))
    assert any(x.kind == "change" and x.vault_index == far for x in summary.outputs)


def test_hardened_change_path_with_our_fingerprint():
    vault, holders, psbt = setup("wsh")
    o = change_output(psbt)
    m = psbt.outputs[o]
    for keydata, value in m.items_of_type(F.PSBT_OUT_BIP32_DERIVATION):
        m.set(F.PSBT_OUT_BIP32_DERIVATION, keydata, value[:-4] + (HARDENED).to_bytes(4, "little"))
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.change-fraud" and exc.value.output_index == o


def test_fee_limits():
    vault, holders, psbt = setup("wsh", fee_rate=50.0)
    fp = holders[0].fingerprint
    summary, _ = check(psbt, vault, fingerprint=fp)
    with pytest.raises(SignerRefusal) as exc:
        check(psbt, vault, fingerprint=fp, policy=SignerPolicy(max_fee_sats=100))
    assert exc.value.code == "signer.fee-limit" and exc.value.limit == 100
    with pytest.raises(SignerRefusal) as exc:
        check(psbt, vault, fingerprint=fp, policy=SignerPolicy(max_fee_rate=10.0))
    assert exc.value.code == "signer.fee-limit" and exc.value.limit == 10.0
    with pytest.raises(SignerRefusal) as exc:
        check(psbt, vault, fingerprint=fp, policy=SignerPolicy(max_fee_fraction=0.01))
    assert exc.value.code == "signer.fee-limit" and exc.value.limit == 0.01
    assert summary.fee_rate >= 49.0


def test_default_fee_fraction_stops_an_overpaying_coordinator():
    vault, holders, _ = setup("wsh")
    utxos = [synthetic_utxo(vault, 1_000_000, index=0)]
    # pays 100,000 but leaves 400,000 as fee: no change output
    psbt = Psbt.from_unsigned_tx(F.serialize_tx(
        2, [(bytes.fromhex(utxos[0].txid)[::-1], 0, 0xFFFFFFFD)],
        [(100_000, EXTERNAL), (500_000, vault.derive(0, change=True).script_pubkey)], 0))
    from msigvault.psbt.updater import update_input, update_output
    update_input(psbt, 0, vault, utxos[0])
    update_output(psbt, 1, vault, 1, 0)
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.fee-limit" and exc.value.limit == 1000.0
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root, policy=SignerPolicy(max_fee_rate=1e9))
    assert exc.value.code == "signer.fee-limit" and exc.value.limit == 0.1


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_sighash_none_refused_unless_allowed(script):
    vault, holders, psbt = setup(script)
    psbt.inputs[0].set(F.PSBT_IN_SIGHASH_TYPE, b"", SIGHASH_NONE.to_bytes(4, "little"))
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.sighash"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_SIGHASH_TYPE"
    signed, _ = sign(psbt, vault, holders[0].root, policy=SignerPolicy(allowed_sighashes=frozenset({SIGHASH_NONE})))
    assert signed.input_count == psbt.input_count


def test_wrong_network_global_xpub():
    vault, holders, psbt = setup("wsh")
    c = vault.cosigners[1]
    psbt.globals.delete(F.PSBT_GLOBAL_XPUB, c.key.serialize())
    psbt.globals.set(F.PSBT_GLOBAL_XPUB, c.key.serialize(Network.MAINNET.xpub_version),
                     encode_origin(c.fingerprint, c.path))
    with pytest.raises(SignerRefusal, match="another network") as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.refused" and exc.value.field == "PSBT_GLOBAL_XPUB"


@pytest.mark.parametrize("script", ["sh", "sh-wsh", "wsh"])
def test_non_witness_utxo_must_match_outpoint(script):
    vault, holders, psbt = setup(script)
    other = synthetic_utxo(vault, 200_000, index=0, seed="another")
    psbt.inputs[0].set(F.PSBT_IN_NON_WITNESS_UTXO, b"", other.prev_tx)
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.utxo-mismatch"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_NON_WITNESS_UTXO"


@pytest.mark.parametrize("script", ["sh-wsh", "wsh"])
def test_segwit_v0_needs_previous_transaction(script):
    vault, holders, psbt = setup(script)
    for m in psbt.inputs:
        m.delete(F.PSBT_IN_NON_WITNESS_UTXO)
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.missing-prev-tx"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_NON_WITNESS_UTXO"
    signed, _ = sign(psbt, vault, holders[0].root, policy=SignerPolicy(allow_witness_utxo_only=True))
    assert signed.input_count == 2


def test_taproot_needs_no_previous_transaction():
    vault, holders, psbt = setup("tr")
    assert all(m.get(F.PSBT_IN_NON_WITNESS_UTXO) is None for m in psbt.inputs)
    sign(psbt, vault, holders[0].root)


def test_witness_utxo_amount_lie():
    vault, holders, psbt = setup("wsh")
    m = psbt.inputs[0]
    amount, spk = F.parse_txout(m.get(F.PSBT_IN_WITNESS_UTXO), "x")
    m.set(F.PSBT_IN_WITNESS_UTXO, b"", (amount * 10).to_bytes(8, "little") + F.compact_size(len(spk)) + spk)
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.utxo-mismatch"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_WITNESS_UTXO"


def test_witness_script_swapped():
    vault, holders, psbt = setup("wsh")
    psbt.inputs[0].set(F.PSBT_IN_WITNESS_SCRIPT, b"", b"\x51")
    with pytest.raises(SignerRefusal) as exc:
        sign(psbt, vault, holders[0].root)
    assert exc.value.code == "signer.foreign-input" and exc.value.input_index == 0


def test_outputs_exceeding_inputs():
    vault, holders, psbt = setup("tr")
    o = change_output(psbt)
    v2 = psbt.to_v2()
    v2.outputs[o].set(F.PSBT_OUT_AMOUNT, b"", (10**8).to_bytes(8, "little"))
    with pytest.raises(SignerRefusal, match="exceed the inputs") as exc:
        sign(v2.to_v0(), vault, holders[0].root)
    assert exc.value.code == "signer.refused"


def test_finalized_psbts_are_refused_with_a_clear_message():
    from msigvault.psbt.combiner import combine
    from msigvault.psbt.finalizer import finalize

    vault, holders, psbt = setup("wsh")
    final = finalize(combine([sign(psbt, vault, h.root)[0] for h in holders[:2]], vault), vault)
    with pytest.raises(SignerRefusal, match="already finalized") as exc:
        sign(final, vault, holders[2].root)
    assert exc.value.code == "signer.refused"
    mixed = psbt.copy()
    mixed.inputs[0] = final.inputs[0].copy()
    with pytest.raises(SignerRefusal, match="input 0 is already finalized but others are not") as exc:
        sign(mixed, vault, holders[2].root)
    assert exc.value.code == "signer.refused" and exc.value.input_index == 0
