"""BIP322 proofs of control for vaults: the offline signer recognises a proof PSBT only by its
exact shape, m keyholders sign it, it combines and finalizes like a spend, and its full and
simple encodings verify with libbitcoinkernel. A real spend dressed as a proof is never
treated as one: it goes through the normal checks (and here their fee-burn refusal)."""

import itertools

import pytest

from msigvault import Vault
from msigvault.errors import FeeLimitExceeded, SignerRefusal
from msigvault.network import Network
from msigvault.psbt import bip322 as B
from msigvault.psbt import fields as F
from msigvault.psbt.psbt import Psbt
from msigvault.psbt.signer import SignerPolicy, check, prepare, prepare_proof
from msigvault.psbt.updater import add_global_xpubs, update_input
from msigvault.reserves import bip322 as R
from msigvault.reserves.errors import ProofError, ProofInvalid
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
SCRIPTS = ["sh", "sh-wsh", "wsh", "tr"]
MSG = "Proof of control for auditor A, 2026-12-01, nonce 9f1c"
HOLDERS = [TestKeyholder.from_label(f"proof-{i}") for i in range(3)]
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))


def vault_for(script):
    return Vault.multisig(2, [h.cosigner(script) for h in HOLDERS], script=script, network=NET)


def signed_by(vault, psbt, holders, **kw):
    out = []
    for h in holders:
        out.append(prepare(psbt, vault, fingerprint=h.fingerprint, **kw).sign(h.root)[0])
    return out


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("pair", list(itertools.combinations(range(3), 2)))
def test_two_of_three_vault_proof_verifies_with_libbitcoinkernel(script, pair):
    vault = vault_for(script)
    psbt = R.create_proof(vault, MSG, index=7)
    full = vault.finalize(vault.combine(signed_by(vault, psbt, [HOLDERS[i] for i in pair])))
    enc = R.encode(full, vault)
    assert enc.verified_by_kernel and enc.address == vault.address(7)
    assert (enc.simple is None) == (script == "sh")  # legacy P2SH has no witness: full only
    for sig, fmt in ((enc.full, "full"), (enc.simple, "simple")):
        if sig is None:
            continue
        v = R.verify_for_vault(vault, MSG, enc.address, sig)
        assert (v.format, v.vault_branch, v.vault_index) == (fmt, 0, 7)
        with pytest.raises(ProofInvalid, match="invalid signature"):
            R.verify(MSG + ".", enc.address, sig, NET)
        with pytest.raises(ProofInvalid, match="invalid signature"):
            R.verify(MSG, vault.address(8), sig, NET)


@pytest.mark.parametrize("script", SCRIPTS)
def test_one_signature_is_not_a_proof(script):
    vault = vault_for(script)
    one = signed_by(vault, R.create_proof(vault, MSG), HOLDERS[:1])[0]
    with pytest.raises(Exception) as e:
        vault.finalize(one)
    assert "signature" in str(e.value)


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_signer_shows_the_message_and_that_no_coins_move(script):
    vault = vault_for(script)
    req = prepare(R.create_proof(vault, MSG, index=2), vault, fingerprint=HOLDERS[1].fingerprint)
    p = req.summary.proof
    assert p is not None and (p.message, p.address, p.index) == (MSG, vault.address(2), 2)
    text = req.summary.text()
    assert "PROOF OF CONTROL: no coins move" in text and MSG in text and vault.address(2) in text
    assert "PAY" not in text and req.summary.fee == 0
    assert req.summary.to_dict()["proof"]["message"] == MSG
    assert prepare_proof(R.create_proof(vault, MSG), vault, fingerprint=HOLDERS[0].fingerprint,
                         message=MSG).summary.proof.message == MSG


def test_a_message_with_control_characters_is_shown_escaped():
    vault = vault_for("wsh")
    msg = "pay\x1b[2Kto attacker\nline two"
    text = prepare(R.create_proof(vault, msg), vault, fingerprint=HOLDERS[0].fingerprint).summary.text()
    assert "\x1b" not in text and "\\u001b" in text and "\\n" in text


# -- adversarial: a spend dressed as a proof is a spend ---------------------------------------------

def _refused_as_spend(psbt, vault, message=MSG, policy=SignerPolicy()):
    """Not a proof: prepare_proof refuses, and the normal checks (fee burn) refuse it too."""
    fp = HOLDERS[0].fingerprint
    with pytest.raises(SignerRefusal):
        prepare_proof(psbt, vault, fingerprint=fp, message=message, policy=policy)
    with pytest.raises(FeeLimitExceeded, match="fee burn"):
        check(psbt, vault, fingerprint=fp, policy=policy, proof_message=message)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_different_message_than_the_one_committed_is_not_a_proof(script):
    vault = vault_for(script)
    psbt = R.create_proof(vault, "the real message")
    B.embed_message(psbt, MSG)  # the PSBT claims MSG, its to_spend commits to another message
    _refused_as_spend(psbt, vault)
    # and the keyholder expecting another message than the one the PSBT carries
    _refused_as_spend(R.create_proof(vault, "the real message"), vault, message=MSG)


def _to_sign_spending(vault, utxo, *, outputs=((0, B.OP_RETURN),), extra=None, version=0, sequence=0):
    vin = [(bytes.fromhex(utxo.txid)[::-1], utxo.vout, sequence)]
    if extra is not None:
        vin.append((bytes.fromhex(extra.txid)[::-1], extra.vout, 0))
    psbt = Psbt.from_unsigned_tx(F.serialize_tx(version, vin, list(outputs), 0))
    add_global_xpubs(psbt, vault)
    update_input(psbt, 0, vault, utxo)
    if extra is not None:
        update_input(psbt, 1, vault, extra)
    B.embed_message(psbt, MSG)
    return psbt


def _to_spend_utxo(vault, index=0, amount=0, message=MSG):
    from msigvault.types import Utxo

    spk = vault.derive(index).script_pubkey
    txid = B.to_spend_txid(spk, message.encode())
    prev = B.to_spend(spk, message.encode()) if amount == 0 else None  # a lie needs no previous tx
    return Utxo(txid[::-1].hex(), 0, amount, spk, 0, index, prev)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_real_coin_in_the_proof_shape_is_a_spend(script):
    """The exact to_sign shape and the message, but spending a real vault coin: its txid is not
    to_spend's, so it is a transaction that burns the coin as fees."""
    vault = vault_for(script)
    _refused_as_spend(_to_sign_spending(vault, synthetic_utxo(vault, 100_000, index=0)), vault)


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_extra_input_makes_it_a_spend(script):
    vault = vault_for(script)
    psbt = _to_sign_spending(vault, _to_spend_utxo(vault), extra=synthetic_utxo(vault, 50_000, index=1))
    _refused_as_spend(psbt, vault)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_non_zero_output_is_not_a_proof(script):
    """to_spend really is the input, but the output pays someone: not a proof (and here the
    outputs exceed the inputs, which the normal checks refuse)."""
    vault = vault_for(script)
    psbt = _to_sign_spending(vault, _to_spend_utxo(vault), outputs=[(5_000, EXTERNAL)])
    with pytest.raises(SignerRefusal, match="exceed the inputs|not a BIP322 proof"):
        prepare_proof(psbt, vault, fingerprint=HOLDERS[0].fingerprint, message=MSG)
    with pytest.raises(SignerRefusal, match="exceed the inputs"):
        check(psbt, vault, fingerprint=HOLDERS[0].fingerprint)


@pytest.mark.parametrize("script", SCRIPTS)
def test_other_versions_sequences_and_extra_outputs_are_not_proofs(script):
    vault = vault_for(script)
    utxo = _to_spend_utxo(vault)
    for psbt in (_to_sign_spending(vault, utxo, version=2), _to_sign_spending(vault, utxo, sequence=1),
                 _to_sign_spending(vault, utxo, outputs=[(0, B.OP_RETURN), (0, B.OP_RETURN)]),
                 _to_sign_spending(vault, utxo, outputs=[(0, B.OP_RETURN + b"\x00")])):
        _refused_as_spend(psbt, vault)
    assert prepare_proof(_to_sign_spending(vault, utxo), vault, fingerprint=HOLDERS[0].fingerprint,
                         message=MSG).summary.proof is not None  # the genuine shape passes


def test_a_taproot_to_spend_claimed_with_an_amount_is_not_a_proof():
    vault = vault_for("tr")
    psbt = _to_sign_spending(vault, _to_spend_utxo(vault, amount=1_000))
    _refused_as_spend(psbt, vault)


def test_a_proof_with_a_weaker_sighash_is_not_a_proof_even_when_allowed():
    vault = vault_for("wsh")
    psbt = R.create_proof(vault, MSG)
    psbt.inputs[0].set(F.PSBT_IN_SIGHASH_TYPE, b"", (0x82).to_bytes(4, "little"))
    _refused_as_spend(psbt, vault, policy=SignerPolicy(allowed_sighashes=frozenset({0x82})))


def test_a_normal_spend_carrying_a_message_is_shown_as_a_spend():
    vault = vault_for("wsh")
    utxo = synthetic_utxo(vault, 200_000)
    psbt = vault.create_psbt([utxo], [(EXTERNAL, 100_000)], fee_rate=2.0, change_index=0)
    B.embed_message(psbt, MSG)
    summary, _ = check(psbt, vault, fingerprint=HOLDERS[0].fingerprint, proof_message=MSG)
    assert summary.proof is None and summary.sent_out == 100_000
    assert "PAY" in summary.text() and "PROOF" not in summary.text()
    with pytest.raises(SignerRefusal, match="not a BIP322 proof"):
        prepare_proof(psbt, vault, fingerprint=HOLDERS[0].fingerprint, message=MSG)


def test_encode_refuses_what_is_not_a_finalized_proof():
    vault = vault_for("wsh")
    psbt = R.create_proof(vault, MSG)
    with pytest.raises(ProofError, match="cannot be encoded"):
        R.encode(psbt, vault)  # not finalized
    final = vault.finalize(vault.combine(signed_by(vault, psbt, HOLDERS[:2])))
    with pytest.raises(ProofError, match="not exactly a BIP322 proof"):
        R.encode(final, vault, message="another message")


def test_verify_for_vault_refuses_a_foreign_address():
    vault = vault_for("wsh")
    other = Vault.multisig(2, [TestKeyholder.from_label(f"x-{i}").cosigner("wsh") for i in range(3)],
                           script="wsh", network=NET)
    with pytest.raises(ProofInvalid, match="not among the vault's"):
        R.verify_for_vault(vault, MSG, other.address(0), "AA==")


# -- any message, hostile sizes -----------------------------------------------------------------

from hypothesis import given, strategies as st  # noqa: E402


@given(st.text(max_size=200), st.integers(0, 50), st.sampled_from(SCRIPTS))
def test_any_message_round_trips(message, index, script):
    vault = vault_for(script)
    psbt = R.create_proof(vault, message, index=index)
    req = prepare(psbt, vault, fingerprint=HOLDERS[0].fingerprint)
    assert req.summary.proof is not None and req.summary.proof.message == message
    copies = [req.sign(HOLDERS[0].root)[0], prepare(psbt, vault, fingerprint=HOLDERS[2].fingerprint).sign(HOLDERS[2].root)[0]]
    enc = R.encode(vault.finalize(vault.combine(copies)), vault)
    assert R.verify_for_vault(vault, message, enc.address, enc.full).vault_index == index


def test_hostile_sizes_are_refused_before_work():
    vault = vault_for("wsh")
    with pytest.raises(ProofError, match="limit"):
        R.create_proof(vault, "x" * (B.MAX_MESSAGE_BYTES + 1))
    with pytest.raises(ProofInvalid, match="limit"):
        R.verify(MSG, vault.address(0), "A" * (R.MAX_SIGNATURE_CHARS + 1), NET)
    psbt = R.create_proof(vault, MSG)
    psbt.globals.set(F.PSBT_GLOBAL_PROPRIETARY, B.MESSAGE_KEY, b"x" * (B.MAX_MESSAGE_BYTES + 1))
    assert B.embedded_message(psbt) is None  # an oversized embedded message is no message: not a proof
    with pytest.raises(FeeLimitExceeded):
        check(psbt, vault, fingerprint=HOLDERS[0].fingerprint)


def test_broadcasting_a_proof_is_refused():
    """A finalized proof is not a network transaction (its input does not exist): the extractor,
    which is for broadcast, keeps refusing its zero fee; encode() is the way out."""
    from msigvault.errors import ExtractError

    vault = vault_for("wsh")
    psbt = R.create_proof(vault, MSG)
    final = vault.finalize(vault.combine(signed_by(vault, psbt, HOLDERS[:2])))
    with pytest.raises(ExtractError, match="minimum relay fee"):
        vault.extract(final)
    assert R.encode(final, vault).verified_by_kernel
