"""BIP322 proofs of control and proofs of reserves for a vault with recovery paths (issue 18):
the primary keyholders prove control exactly as for a plain vault; a recovery key cannot
sign a proof (BIP322's to_sign has version 0, nSequence 0 and nLockTime 0, which open no
recovery path); proofs of reserves refuse such a vault (docs/reserves.md)."""

import pytest

from msigvault import Vault
from msigvault.errors import MsigvaultError, SignerRefusal
from msigvault.network import Network
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.psbt import fields as F
from msigvault.psbt.signer import prepare_proof
from msigvault.reserves import bip322 as R
from msigvault.reserves.errors import ProofInvalid
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
MSG = "Proof of control of a recovery vault, 2026-12-01"
P = [TestKeyholder.from_label(f"proofrec-p{i}", NET) for i in range(3)]
R_ = [TestKeyholder.from_label(f"proofrec-r{i}", NET) for i in range(2)]
LOCKS = [Timelock.older(100), Timelock.after(1_000)]


def vault_for(script, lock, decaying=False):
    keys = P if decaying else R_
    return Vault.multisig(2, [h.cosigner(script) for h in P], script=script, network=NET,
                          recovery=[Recovery(1, [h.cosigner(script) for h in keys], lock)])


def proof_sigs(vault, psbt, holders):
    return [prepare_proof(psbt, vault, fingerprint=h.fingerprint, message=MSG).sign(h.root)[0] for h in holders]


@pytest.mark.parametrize("script", ["wsh", "tr"])
@pytest.mark.parametrize("lock", LOCKS, ids=["older", "after"])
def test_primary_keys_prove_control_of_a_recovery_vault_address(script, lock):
    v = vault_for(script, lock)
    psbt = R.create_proof(v, MSG, index=5)
    full = v.finalize(v.combine(proof_sigs(v, psbt, [P[0], P[2]])))
    enc = R.encode(full, v)
    assert enc.verified_by_kernel and enc.address == v.address(5)
    for sig, fmt in ((enc.full, "full"), (enc.simple, "simple")):
        got = R.verify_for_vault(v, MSG, enc.address, sig)
        assert (got.format, got.vault_index, got.sequence, got.locktime) == (fmt, 5, 0, 0)
        with pytest.raises(ProofInvalid):
            R.verify(MSG + "!", enc.address, sig, NET)
    # one primary signature is not a proof
    with pytest.raises(MsigvaultError):
        v.finalize(v.combine(proof_sigs(v, psbt, [P[1]])))


@pytest.mark.parametrize("script", ["wsh", "tr"])
@pytest.mark.parametrize("lock", LOCKS, ids=["older", "after"])
def test_a_recovery_key_cannot_sign_a_proof(script, lock):
    """to_sign's version 0 / nSequence 0 / nLockTime 0 never meet a recovery lock: the recovery
    keyholder's signature could not be used, and the signer says so instead of signing."""
    v = vault_for(script, lock)
    psbt = R.create_proof(v, MSG, index=5)
    with pytest.raises(SignerRefusal, match="do not meet that lock"):
        proof_sigs(v, psbt, [R_[0]])


def test_a_decaying_tr_keyholder_signs_a_proof_in_the_primary_leaf_only():
    v = vault_for("tr", Timelock.older(100), decaying=True)
    psbt = R.create_proof(v, MSG, index=2)
    [copy] = proof_sigs(v, psbt, [P[0]])
    leaves = [bytes(k[32:]) for k, _ in copy.inputs[0].items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)]
    assert leaves == [v.derive(2).leaves[0].leaf_hash]
    full = v.finalize(v.combine([copy] + proof_sigs(v, psbt, [P[1]])))
    assert R.encode(full, v).verified_by_kernel


def test_proofs_of_reserves_refuse_a_recovery_vault():
    from msigvault.reserves import por

    v = vault_for("wsh", Timelock.older(100))
    with pytest.raises(MsigvaultError, match="recovery paths are not supported"):
        por.create_proof(v, [synthetic_utxo(v, 10_000, index=0)], "reserves of 2026-12-01")


def test_recovery_keyholders_answer_key_health_checks():
    """What a recovery key may sign besides a recovery spend: its key-health challenge."""
    from msigvault.reserves import health

    v = vault_for("wsh", Timelock.older(100))
    challenges = health.issue(v, date="2026-12-01")
    assert len(challenges) == len(v.cosigners) == 5
    answers = [health.respond(c, v, h.root) for c, h in zip(challenges[3:], R_)]
    rows = health.report(v, challenges, answers, as_of="2026-12-02").rows
    assert [r.status for r in rows[3:]] == ["passed", "passed"]
    assert all(r.status != "passed" for r in rows[:3])
