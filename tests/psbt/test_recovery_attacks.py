"""A hostile coordinator against a tr vault with recovery leaves: every leaf, leaf hash and tree
the signer accepts is rebuilt from the registered vault."""

import pytest

from msigvault import Vault
from msigvault.errors import ChangeFraud, ForeignInput, SignerRefusal
from msigvault.network import Network
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.psbt import fields as F
from msigvault.psbt.signer import SignerPolicy
from msigvault.script import compact_size
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
PAYEE = bytes.fromhex("0014") + bytes(range(20))
P = [TestKeyholder.from_label(f"atk-p{i}", NET) for i in range(3)]
R = [TestKeyholder.from_label(f"atk-r{i}", NET) for i in range(2)]
POLICY = SignerPolicy(max_fee_fraction=1.0)


def vault(lock=Timelock.older(100)):
    return Vault.multisig(2, [h.cosigner("tr") for h in P], script="tr", network=NET,
                          recovery=[Recovery(1, [h.cosigner("tr") for h in R], lock)])


def fresh_psbt(v, path=None):
    return v.create_psbt([synthetic_utxo(v, 90_000, index=4)], [(PAYEE, 30_000)], fee_rate=2.0, change_index=4,
                         path=path, fee_limits=POLICY)


def test_a_leaf_the_vault_does_not_have_is_refused():
    v = vault()
    psbt = fresh_psbt(v)
    d = v.derive(4)
    # the recovery leaf swapped for one of another lock (a shorter one, say)
    other = vault(Timelock.older(1)).derive(4).leaves[1]
    psbt.inputs[0].set(F.PSBT_IN_TAP_LEAF_SCRIPT, other.control_block, other.script + b"\xc0")
    with pytest.raises(ForeignInput, match="leaf script is not the vault's"):
        v.sign(psbt, P[0].root, policy=POLICY)
    # a merkle root of another tree
    psbt = fresh_psbt(v)
    psbt.inputs[0].set(F.PSBT_IN_TAP_MERKLE_ROOT, b"", d.leaves[0].leaf_hash)
    with pytest.raises(ForeignInput, match="TAP_MERKLE_ROOT"):
        v.sign(psbt, P[0].root, policy=POLICY)


def test_a_key_listed_with_other_leaves_is_refused():
    v = vault()
    psbt = fresh_psbt(v)
    d = v.derive(4)
    m = psbt.inputs[0]
    xonly = d.pubkeys[3][1:]  # a recovery-only key, which is on the recovery leaf only
    value = bytes(m.get(F.PSBT_IN_TAP_BIP32_DERIVATION, xonly))
    origin = value[1 + 32:]
    m.set(F.PSBT_IN_TAP_BIP32_DERIVATION, xonly,
          compact_size(2) + d.leaves[0].leaf_hash + d.leaves[1].leaf_hash + origin)
    with pytest.raises(ForeignInput, match="leaf hashes that are not the vault's leaves"):
        v.sign(psbt, P[0].root, policy=POLICY)


def test_change_with_another_script_tree_is_change_fraud():
    v = vault()
    psbt = fresh_psbt(v)
    change = next(o for o in range(psbt.output_count) if psbt.outputs[o].get(F.PSBT_OUT_TAP_TREE) is not None)
    leaf = v.derive_branch(1, 4).leaves[0]
    psbt.outputs[change].set(F.PSBT_OUT_TAP_TREE, b"", bytes([0, 0xC0]) + compact_size(len(leaf.script)) + leaf.script)
    with pytest.raises(ChangeFraud):
        v.sign(psbt, P[0].root, policy=POLICY)


def test_a_signature_for_a_leaf_the_key_is_not_on_is_refused_by_combine():
    v = vault()
    psbt = fresh_psbt(v, path="recovery")
    signed = v.sign(psbt, R[0].root, policy=POLICY)[0]
    d = v.derive(4)
    m = signed.inputs[0]
    [(key, sig)] = m.items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)
    # the same signature claimed for the primary leaf, where that key is not
    m.set(F.PSBT_IN_TAP_SCRIPT_SIG, bytes(key[:32]) + d.leaves[0].leaf_hash, bytes(sig))
    from msigvault.errors import CombineError

    with pytest.raises(CombineError, match="not a vault key of this input"):
        v.combine([signed])


def test_recovery_keyholder_is_not_asked_before_the_lock():
    v = vault(Timelock.after(5_000))
    psbt = fresh_psbt(v)  # a primary spend: nLockTime 0
    with pytest.raises(SignerRefusal, match="from block height 5,000"):
        v.sign(psbt, R[1].root, policy=POLICY)
    signed, summary = v.sign(fresh_psbt(v, path="recovery"), R[1].root, policy=POLICY)
    assert signed.locktime == 5_000 and [p.name for p in summary.spend_paths] == ["primary", "recovery 1"]


def test_leaf_hashes_of_a_key_in_any_order_are_accepted():
    """BIP371 does not order a key's leaf hashes (Core writes them sorted): both orders sign."""
    v = Vault.multisig(2, [h.cosigner("tr") for h in P], script="tr", network=NET,
                       recovery=[Recovery(1, [h.cosigner("tr") for h in P], Timelock.older(100))])
    psbt = fresh_psbt(v, path="recovery")  # its nSequence opens both leaves of the key
    d = v.derive(4)
    m = psbt.inputs[0]
    xonly = d.pubkeys[0][1:]
    value = bytes(m.get(F.PSBT_IN_TAP_BIP32_DERIVATION, xonly))
    assert value[0] == 2 and value[1:65] == d.leaves[0].leaf_hash + d.leaves[1].leaf_hash
    m.set(F.PSBT_IN_TAP_BIP32_DERIVATION, xonly, value[:1] + value[33:65] + value[1:33] + value[65:])
    signed, _ = v.sign(psbt, P[0].root, policy=POLICY)
    assert len(signed.inputs[0].items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)) == 2  # one per leaf of the key
    m.set(F.PSBT_IN_TAP_BIP32_DERIVATION, xonly, value[:1] + value[1:33] * 2 + value[65:])
    with pytest.raises(ForeignInput, match="leaf hashes"):
        v.sign(psbt, P[0].root, policy=POLICY)
