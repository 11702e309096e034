"""BIP127 proofs of reserves and the offline signer: a proof is shown as one (message, total, coins)
and signed m-of-n like a spend; anything that looks like a proof but could be valid on the network
is refused with a stable code. Each refusal test changes one thing of a proof the signer accepts,
so a signer that did not check that thing would sign it."""

import hashlib
from dataclasses import replace

import pytest

from msigvault import Vault
from msigvault.errors import (CombineError, ExtractError, ForeignInput, NotEnoughSignatures, SighashRefused,
                             SignerRefusal)
from msigvault.network import Network
from msigvault.psbt import fields as F
from msigvault.psbt import por as P
from msigvault.psbt.extractor import verify_scripts
from msigvault.psbt.psbt import Psbt
from msigvault.psbt.sighash import TxOut
from msigvault.psbt.signer import SignerPolicy, prepare
from msigvault.psbt.updater import add_global_xpubs, update_input
from msigvault.reserves import por as R
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
SCRIPTS = ["sh", "sh-wsh", "wsh", "tr"]
HOLDERS = [TestKeyholder.from_label(f"por-signer-{i}") for i in range(3)]
OTHERS = [TestKeyholder.from_label(f"por-other-{i}") for i in range(3)]
MSG = "msigvault proof of reserves\nauditor: Auditor Ltd\ndate: 2026-12-01\nnonce: 5be1"
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
SIGHASH_NONE, SIGHASH_SINGLE, ALL_ANYONECANPAY = 0x02, 0x03, 0x81
_VAULTS = {}


def vault_for(script, holders=HOLDERS):
    key = (script, holders[0].fingerprint)
    if key not in _VAULTS:
        _VAULTS[key] = Vault.multisig(2, [h.cosigner(script) for h in holders], script=script, network=NET)
    return _VAULTS[key]


def coins(vault):
    return [synthetic_utxo(vault, 50_000, index=1, seed="a"), synthetic_utxo(vault, 70_000, branch=1, index=2, seed="b")]


def build(vault, utxos, message=MSG, *, commitment=None, outputs=None, field_on=0, extra_inputs=(), foreign=None):
    """A proof PSBT as create_proof makes it, with one part replaced (what an attacker controls)."""
    first = commitment if commitment is not None else (P.commitment_txid(message), 0)
    vin = [(first[0], first[1], 0xFFFFFFFF)] + [(bytes.fromhex(u.txid)[::-1], u.vout, 0xFFFFFFFF)
                                               for u in list(utxos) + list(extra_inputs)]
    total = sum(u.amount for u in utxos) + sum(u.amount for u in extra_inputs)
    psbt = Psbt.from_unsigned_tx(F.serialize_tx(2, vin, outputs or [(total, P.OUTPUT_SCRIPT)], 0))
    add_global_xpubs(psbt, vault)
    psbt.inputs[field_on].set(F.PSBT_IN_POR_COMMITMENT, b"", message.encode())
    if field_on == 0:
        psbt.inputs[0].set(F.PSBT_IN_WITNESS_UTXO, b"", P.COMMITMENT_WITNESS_UTXO)
    for i, u in enumerate(list(utxos) + list(extra_inputs), 1):
        update_input(psbt, i, vault if foreign is None or u not in extra_inputs else foreign, u)
    return psbt


def sign_by(vault, psbt, holders, **kw):
    return [prepare(psbt, vault, fingerprint=h.fingerprint, **kw).sign(h.root)[0] for h in holders]


def refused(psbt, vault, **kw):
    with pytest.raises(P.ReserveProofRefused) as e:
        prepare(psbt, vault, fingerprint=HOLDERS[0].fingerprint, **kw)
    assert e.value.code == "signer.reserves-proof"
    return e.value


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("pair", [(0, 2), (2, 1), (1, 0)])
def test_the_signer_shows_a_proof_of_reserves_and_it_verifies_to_the_exact_amount(script, pair):
    vault = vault_for(script)
    utxos = coins(vault)
    psbt = R.create_proof(vault, utxos, MSG)
    assert psbt.serialize() == build(vault, utxos).canonicalize().serialize()  # the test builder is create_proof
    req = prepare(psbt, vault, fingerprint=HOLDERS[1].fingerprint)
    shown = req.summary.reserves
    assert (shown.message, shown.total, shown.coins) == (MSG, 120_000, 2)
    text = req.summary.text()
    assert "PROOF OF RESERVES: no coins move" in text and "in 2 coin(s)" in text and "120,000 sat" in text
    assert all(line in text for line in MSG.split("\n")) and "PAY" not in text
    assert req.summary.outputs == () and req.summary.sent_out == 0 and req.summary.fee == 0
    assert req.summary.to_dict()["reserves"]["total"] == 120_000
    copies = sign_by(vault, psbt, [HOLDERS[i] for i in pair])  # any two, combined in any order
    assert prepare(copies[0], vault, fingerprint=HOLDERS[pair[0]].fingerprint).already_signed
    assert not prepare(copies[0], vault, fingerprint=HOLDERS[pair[1]].fingerprint).already_signed
    final = R.finalize(R.combine(copies[::-1], vault), vault)
    proof = R.encode(final, vault)
    snap = R.Snapshot("regtest", 7, None, tuple(utxos))
    report = R.verify(proof, vault, snap)
    assert (report.proven_amount, len(report.coins), report.height) == (120_000, 2, 7)
    assert report.verified_by_kernel and report.valid
    # the signatures commit to the commitment input: without it they verify for nothing
    tx = F.parse_tx(proof.tx, "proof")
    witnesses = tx.witnesses or [[] for _ in tx.vin]
    spent = [TxOut(u.amount, u.script_pubkey) for u in utxos]
    without = _serialize(tx.version, tx.vin[1:], witnesses[1:], tx.vout, tx.locktime)
    with pytest.raises(ExtractError, match="rejects its signature"):
        verify_scripts(without, spent)


def _serialize(version, vin, witnesses, vout, locktime):
    segwit = any(witnesses)
    parts = [version.to_bytes(4, "little")] + ([b"\x00\x01"] if segwit else []) + [F.compact_size(len(vin))]
    for txid, n, ss, seq in vin:
        parts += [bytes(txid), n.to_bytes(4, "little"), F.compact_size(len(ss)), bytes(ss), seq.to_bytes(4, "little")]
    parts.append(F.compact_size(len(vout)))
    for amount, spk in vout:
        parts += [amount.to_bytes(8, "little"), F.compact_size(len(spk)), bytes(spk)]
    if segwit:
        for stack in witnesses:
            parts.append(F.compact_size(len(stack)) + b"".join(F.compact_size(len(x)) + bytes(x) for x in stack))
    parts.append(locktime.to_bytes(4, "little"))
    return b"".join(parts)


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("how", ["sha256d", "other message", "output 1", "a vault coin"])
def test_a_commitment_input_that_is_not_the_messages_is_refused(script, how):
    vault = vault_for(script)
    utxos = coins(vault)
    if how == "sha256d":  # bdk-reserves' choice, not BIP127's
        data = (P.PREFIX + MSG).encode()
        commitment = (hashlib.sha256(hashlib.sha256(data).digest()).digest(), 0)
    elif how == "other message":
        commitment = (P.commitment_txid(MSG + " "), 0)
    elif how == "output 1":
        commitment = (P.commitment_txid(MSG), 1)
    else:  # a real coin in the commitment's place: the transaction would be valid
        spare = synthetic_utxo(vault, 10_000, index=9, seed="spare")
        commitment = (bytes.fromhex(spare.txid)[::-1], spare.vout)
    e = refused(build(vault, utxos, commitment=commitment), vault)
    assert e.input_index == 0 and "could be valid" in str(e)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_commitment_on_another_input_is_refused(script):
    vault = vault_for(script)
    utxos = coins(vault)
    spare = synthetic_utxo(vault, 10_000, index=9, seed="spare")
    psbt = build(vault, [spare] + utxos, commitment=(bytes.fromhex(spare.txid)[::-1], spare.vout), field_on=1)
    # input 0 is a real vault coin now; input 1 claims to be the commitment
    psbt = Psbt.parse(psbt.serialize())
    e = refused(psbt, vault)
    assert e.input_index == 1


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("what", ["non_witness_utxo", "witness_utxo with value", "partial signature", "derivation"])
def test_a_commitment_input_that_claims_a_coin_or_a_signature_is_refused(script, what):
    vault = vault_for(script)
    psbt = build(vault, coins(vault))
    m = psbt.inputs[0]
    real = synthetic_utxo(vault, 10_000, index=9, seed="exists")
    if what == "non_witness_utxo":
        m.set(F.PSBT_IN_NON_WITNESS_UTXO, b"", real.prev_tx)
    elif what == "witness_utxo with value":
        m.set(F.PSBT_IN_WITNESS_UTXO, b"", (5 * 10**8).to_bytes(8, "little") + F.compact_size(1) + P.OP_TRUE)
    elif what == "partial signature":
        m.set(F.PSBT_IN_PARTIAL_SIG, b"\x02" + bytes(32), bytes(71))
    else:
        m.set(F.PSBT_IN_BIP32_DERIVATION, b"\x02" + bytes(32), HOLDERS[0].fingerprint + bytes(4))
    e = refused(psbt, vault)
    assert e.input_index == 0 and e.field is not None


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("what", ["extra output", "pays an address", "a fee", "more than the coins"])
def test_outputs_other_than_one_op_return_of_the_total_are_refused(script, what):
    vault = vault_for(script)
    utxos = coins(vault)
    total = 120_000
    outputs = {"extra output": [(total - 1_000, P.OUTPUT_SCRIPT), (1_000, EXTERNAL)],
               "pays an address": [(total, EXTERNAL)],
               "a fee": [(total - 500, P.OUTPUT_SCRIPT)],
               "more than the coins": [(total + 1, P.OUTPUT_SCRIPT)]}[what]
    e = refused(build(vault, utxos, outputs=outputs), vault)
    assert e.output_index == 0 or "output" in str(e)


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("sighash", [SIGHASH_NONE, SIGHASH_SINGLE, ALL_ANYONECANPAY])
def test_a_proof_is_signed_only_with_sighash_all_whatever_the_policy_allows(script, sighash):
    vault = vault_for(script)
    utxos = coins(vault)
    loose = SignerPolicy(allowed_sighashes=frozenset({sighash}))
    psbt = build(vault, utxos)
    psbt.inputs[2].set(F.PSBT_IN_SIGHASH_TYPE, b"", sighash.to_bytes(4, "little"))
    with pytest.raises(SighashRefused) as e:
        prepare(psbt, vault, fingerprint=HOLDERS[0].fingerprint, policy=loose)
    assert e.value.code == "signer.sighash" and e.value.input_index == 2
    # the same policy lets that sighash through on an ordinary spend: the proof path is stricter
    spend = vault.create_psbt(utxos, [(_address(EXTERNAL), 60_000)], fee_rate=2.0, change_index=0)
    spend.inputs[0].set(F.PSBT_IN_SIGHASH_TYPE, b"", sighash.to_bytes(4, "little"))
    prepare(spend, vault, fingerprint=HOLDERS[0].fingerprint, policy=loose)


def _address(script):
    from msigvault.address import address_from_script

    return address_from_script(script, NET)


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_the_message_the_keyholder_was_told_must_be_the_proofs(script):
    vault = vault_for(script)
    psbt = build(vault, coins(vault))
    refused(psbt, vault, proof_message=MSG + "x")
    assert prepare(psbt, vault, fingerprint=HOLDERS[0].fingerprint, proof_message=MSG).summary.reserves.total == 120_000


@pytest.mark.parametrize("script", ["sh", "tr"])
def test_a_coin_twice_is_refused(script):
    vault = vault_for(script)
    utxos = coins(vault)
    e = refused(build(vault, utxos, extra_inputs=[utxos[0]]), vault)
    assert "twice" in str(e)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_other_check_holds_for_the_coins(script):
    vault = vault_for(script)
    other = vault_for(script, OTHERS)
    foreign = synthetic_utxo(other, 30_000, index=0, seed="foreign")
    psbt = build(vault, coins(vault), extra_inputs=[foreign], foreign=other)  # another vault's coin
    with pytest.raises(ForeignInput) as e:
        prepare(psbt, vault, fingerprint=HOLDERS[0].fingerprint)
    assert e.value.input_index == 3


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_without_the_commitment_field_it_is_a_spend_and_refused(script):
    vault = vault_for(script)
    psbt = build(vault, coins(vault))
    psbt.inputs[0].delete_type(F.PSBT_IN_POR_COMMITMENT)
    with pytest.raises(SignerRefusal) as e:  # the commitment is no vault coin (nor has a previous tx)
        prepare(psbt, vault, fingerprint=HOLDERS[0].fingerprint)
    assert e.value.input_index == 0


def test_hostile_sizes_are_refused():
    vault = vault_for("wsh")
    big = "x" * (P.MAX_MESSAGE_BYTES + 1)
    with pytest.raises(R.ReservesError):
        R.create_proof(vault, coins(vault), big)
    e = refused(build(vault, coins(vault), big), vault)
    assert e.limit == P.MAX_MESSAGE_BYTES


@pytest.mark.parametrize("script", ["sh-wsh", "tr"])
def test_combine_verifies_every_signature_and_finalize_needs_m(script):
    vault = vault_for(script)
    psbt = R.create_proof(vault, coins(vault), MSG)
    a, b = sign_by(vault, psbt, HOLDERS[:2])
    with pytest.raises(NotEnoughSignatures) as e:
        R.finalize(R.combine([a], vault), vault)
    assert e.value.limit == 2
    t = F.PSBT_IN_TAP_SCRIPT_SIG if script == "tr" else F.PSBT_IN_PARTIAL_SIG
    (key, sig), = b.inputs[1].items_of_type(t)
    forged = b.copy()
    forged.inputs[1].set(t, key, bytes([sig[0] ^ 1]) + sig[1:])
    with pytest.raises(CombineError) as e:
        R.combine([a, forged], vault)
    assert (e.value.psbt_index, e.value.input_index) == (2, 1)
    other = sign_by(vault, R.create_proof(vault, coins(vault), MSG + "!"), HOLDERS[1:2])[0]
    with pytest.raises(CombineError):
        R.combine([a, other], vault)


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_the_verifier_refuses_what_the_proof_does_not_prove(script):
    vault = vault_for(script)
    utxos = coins(vault)
    proof = R.encode(R.finalize(R.combine(sign_by(vault, R.create_proof(vault, utxos, MSG), HOLDERS[1:]), vault),
                                vault), vault)
    snap = R.Snapshot("regtest", 9, None, tuple(utxos))
    with pytest.raises(R.ReservesInvalid, match="commitment"):
        R.verify(proof, vault, snap, message=MSG + ".")
    other = vault_for(script, OTHERS)
    with pytest.raises(R.ReservesInvalid, match="not of this vault"):
        R.verify(proof, other, snap)
    with pytest.raises(R.ReservesInvalid, match="not a coin of this vault"):  # the bare transaction
        R.verify(proof.tx, other, snap, message=MSG)
    # a lie about an amount in the UTXO set: the signatures (or the total) no longer check
    lying = R.Snapshot("regtest", 9, None, (utxos[0], replace(utxos[1], amount=70_001)))
    with pytest.raises(R.ReservesInvalid):
        R.verify(proof, vault, lying)
    # a coin confirmed only after the height: reported, named, and verify fails with its outpoint
    late = R.Snapshot("regtest", 9, None, tuple(utxos), (3, 10))
    report = R.check(proof, vault, late)
    assert [c.outpoint for c in report.failing] == [utxos[1].outpoint] and report.proven_amount == 50_000
    assert not report.valid and report.to_dict()["failing"][0]["outpoint"] == utxos[1].outpoint
    with pytest.raises(R.CoinNotUnspent, match=utxos[1].outpoint) as e:
        R.verify(proof, vault, late)
    assert e.value.code == "reserves.coin-spent"
    # a coin missing from the set: named, with code reserves.coin-spent
    with pytest.raises(R.CoinNotUnspent, match=utxos[0].outpoint):
        R.check(proof, vault, R.Snapshot("regtest", 9, None, (utxos[1],)))


@pytest.mark.parametrize("script", ["sh", "tr"])
def test_a_version_2_proof_psbt_signs_and_verifies_too(script):
    vault = vault_for(script)
    utxos = coins(vault)
    psbt = R.create_proof(vault, utxos, MSG).to_v2()
    assert psbt.version == 2
    final = R.finalize(R.combine(sign_by(vault, psbt, HOLDERS[1:]), vault), vault)
    report = R.verify(R.encode(final, vault), vault, R.Snapshot("regtest", 1, None, tuple(utxos)))
    assert report.proven_amount == 120_000
    assert report.text().startswith("VALID proof of reserves: ") and "auditor: Auditor Ltd" in report.text()


def test_a_vault_with_recovery_paths_is_refused_by_every_proof_role():
    """The proof roles know only the vault's one m-of-n script: for a vault with a recovery leaf they
    built a witness of every key's slots (which no leaf has) and signed a recovery keyholder's
    inputs with the primary leaf's data. Until they know the paths, each refuses it clearly."""
    from msigvault.errors import FinalizeError
    from msigvault.policy.recovery import Recovery, Timelock

    recovery = [TestKeyholder.from_label(f"por-recovery-{i}") for i in range(2)]
    v = Vault.multisig(2, [h.cosigner("tr") for h in HOLDERS], script="tr", network=NET,
                       recovery=[Recovery(1, [h.cosigner("tr") for h in recovery], Timelock.older(100))])
    utxos = [synthetic_utxo(v, 40_000, index=1, seed="r")]
    with pytest.raises(R.ReservesError, match="recovery paths"):
        R.create_proof(v, utxos, MSG)
    psbt = build(v, utxos)
    for who in (HOLDERS[0], recovery[0]):
        with pytest.raises(P.ReserveProofRefused, match="recovery paths"):
            prepare(psbt, v, fingerprint=who.fingerprint)
    with pytest.raises(CombineError, match="recovery paths"):
        R.combine([psbt], v)
    with pytest.raises(FinalizeError, match="recovery paths"):
        R.finalize(psbt, v)
