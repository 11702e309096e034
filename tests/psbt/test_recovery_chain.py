"""Recovery paths through every role, judged by libbitcoinkernel on the regtest chain.

A 2-of-3 vault with a timelocked 2-of-2 recovery path (wsh and tr, relative and absolute
locks): the normal spend confirms; a recovery spend is refused by the chain before its lock and
confirms once it has passed."""

import pytest

from msigvault import Vault
from msigvault.errors import CombineError, ExtractError, FinalizeError, NotEnoughSignatures, SignerRefusal
from msigvault.network import Network
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.psbt import fields as F
from msigvault.psbt.extractor import extract
from msigvault.psbt.paths import choose_witness, input_weight, opens_at_height, select_path, spend_paths
from msigvault.psbt.signer import SignerPolicy, prepare
from msigvault.regtest import BlockRejected, RegtestChain
from msigvault.regtest.nodestate import NodeState, Reject
from msigvault.testing.keyholders import TestKeyholder

NET = Network.REGTEST
PAYEE = bytes.fromhex("0014") + bytes(range(20))
P = [TestKeyholder.from_label(f"p{i}", NET) for i in range(3)]
R = [TestKeyholder.from_label(f"r{i}", NET) for i in range(2)]
LOCK = 10


def vault_for(script, lock):
    return Vault.multisig(2, [h.cosigner(script) for h in P], script=script, network=NET,
                          recovery=[Recovery(2, [h.cosigner(script) for h in R], lock)])


@pytest.fixture(scope="module")
def chain():
    with RegtestChain() as c:
        c.mine(105)
        yield c


def final_witness(psbt, i=0):
    items, _ = F.read_witness_stack(bytes(psbt.inputs[i].get(F.PSBT_IN_FINAL_SCRIPTWITNESS)), 0,
                                    len(psbt.inputs[i].get(F.PSBT_IN_FINAL_SCRIPTWITNESS)), "w")
    return [bytes(x) for x in items]


def signed(vault, psbt, holders):
    return vault.combine([vault.sign(psbt, h.root)[0] for h in holders])


def refused_then_mined(chain, raw, early, mempool_reason):
    """``raw`` cannot be in the next block, nor in the one after ``early - 1`` more blocks (the
    regtest node's mempool refuses it too, with Core's ``mempool_reason``); it is mined in the
    block after that."""
    node = NodeState(chain)
    for blocks in ((0, early - 1) if early > 1 else (0,)):
        chain.mine(blocks) if blocks else None
        node.sync()
        with pytest.raises(BlockRejected) as e:
            chain.submit([raw])
        assert e.value.reason == "bad-txns-nonfinal"
        with pytest.raises(Reject, match=mempool_reason):
            node.accept(raw, test_only=True)
    chain.mine(1)
    node.sync()
    node.accept(raw, test_only=True)
    chain.submit([raw])


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_normal_spend_then_relative_recovery_spend(chain, script):
    v = vault_for(script, Timelock.older(LOCK))
    index = 3 if script == "wsh" else 4
    # the normal spend: primary keys, no lock set
    utxos = chain.fund(v.address(index), [120_000])
    psbt = v.create_psbt(utxos, [(PAYEE, 50_000)], fee_rate=2.0, change_index=index, current_height=chain.height)
    assert all(psbt.sequence(i) == 0xFFFFFFFD for i in range(psbt.input_count))
    assert psbt.locktime == chain.height
    tx = v.extract(v.finalize(signed(v, psbt, [P[2], P[0]])))
    assert tx.verified_by_kernel and v.analyze(psbt)["estimated_vsize"] >= tx.vsize
    chain.submit([tx.raw])
    assert chain.get_tx(tx.txid) is not None

    # the recovery keyholders cannot sign a primary spend: their signature could never be used
    with pytest.raises(SignerRefusal, match="nSequence/nLockTime do not meet"):
        v.sign(psbt, R[0].root)

    # the recovery spend: nSequence = the lock, witness by the recovery path
    utxos = chain.fund(v.address(index + 10), [120_000])
    psbt = v.create_psbt(utxos, [(PAYEE, 50_000)], fee_rate=2.0, change_index=index, current_height=chain.height,
                         path="recovery")
    assert [psbt.sequence(i) for i in range(psbt.input_count)] == [LOCK]
    signed_r0, summary = v.sign(psbt, R[0].root)
    assert [p.name for p in summary.spend_paths] == ["primary", "recovery 1"]
    assert summary.spend_paths[1].lock == Timelock.older(LOCK)
    assert "recovery 1: 2-of-2" in summary.text() and "(your key)" in summary.text()
    # one recovery signature is not enough: the finalizer says what each path lacks
    with pytest.raises(NotEnoughSignatures, match="recovery 1 path needs 1 more"):
        v.finalize(signed_r0)
    final = v.finalize(v.combine([signed_r0, v.sign(psbt, R[1].root)[0]]))
    tx = v.extract(final)
    assert tx.verified_by_kernel
    assert v.analyze(psbt)["estimated_vsize"] >= tx.vsize
    witness = final_witness(final)
    d = v.derive(index + 10)
    if script == "tr":
        assert witness[-1] == d.leaves[1].control_block and witness[-2] == d.leaves[1].script
    else:
        # bottom first: the recovery multi's dummy and two signatures, then the primary multi dissatisfied
        assert witness[-1] == d.witness_script and witness[-4:-1] == [b"", b"", b""] and len(witness) == 7
    # the chain refuses it until LOCK blocks after the coin confirmed (BIP68), then mines it
    [(path, first)] = opens_at_height(v, chain.height)  # the funding block is the tip
    assert path.name == "recovery 1" and first == chain.height + LOCK
    refused_then_mined(chain, tx.raw, LOCK - 1, "non-BIP68-final")
    assert chain.height == first
    assert chain.get_tx(tx.txid) is not None


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_absolute_recovery_lock(chain, script):
    height = chain.height + 12
    v = vault_for(script, Timelock.after(height))
    utxos = chain.fund(v.address(7), [90_000])
    psbt = v.create_psbt(utxos, [(PAYEE, 40_000)], fee_rate=2.0, change_index=7, current_height=chain.height,
                         path="recovery")
    assert psbt.locktime == height and psbt.sequence(0) == 0xFFFFFFFD
    tx = v.extract(v.finalize(signed(v, psbt, R)))
    assert tx.verified_by_kernel
    assert [h for _, h in opens_at_height(v, 1)] == [height + 1]
    # IsFinalTx: nLockTime must be below the block's height
    chain.mine_until(height - 2)
    refused_then_mined(chain, tx.raw, 2, "non-final")
    assert chain.height == height + 1


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_finalizer_prefers_the_primary_path(chain, script):
    v = vault_for(script, Timelock.older(LOCK))
    utxos = chain.fund(v.address(20), [80_000])
    psbt = v.create_psbt(utxos, [(PAYEE, 30_000)], fee_rate=2.0, change_index=20, path="recovery")
    everyone = signed(v, psbt, [P[0], P[1], R[0], R[1]])
    final = v.finalize(everyone)
    witness = final_witness(final)
    d = v.derive(20)
    if script == "tr":
        assert witness[-1] == d.leaves[0].control_block  # the primary leaf, though a recovery one is cheaper
    else:
        assert witness[0] == b"" and len(witness) == 4  # OP_0 dummy, two primary signatures, the script
    tx = v.extract(final)
    assert tx.verified_by_kernel
    # the PSBT was made for the recovery path: its nSequence holds the lock (BIP68) whichever path signs
    refused_then_mined(chain, tx.raw, LOCK - 1, "non-BIP68-final")
    # without the primary signatures the recovery path is used
    only_recovery = v.finalize(signed(v, psbt, R))
    assert final_witness(only_recovery) != witness


@pytest.mark.parametrize("script", ["wsh", "tr"])
def test_final_witnesses_are_exactly_the_vaults_paths(chain, script):
    v = vault_for(script, Timelock.older(LOCK))
    utxos = chain.fund(v.address(30), [80_000])
    psbt = v.create_psbt(utxos, [(PAYEE, 30_000)], fee_rate=2.0, change_index=30, path="recovery")
    final = v.finalize(signed(v, psbt, R))
    # a finalized copy combines with a partial one and finalizes again to the same
    again = v.finalize(v.combine([final, v.sign(psbt, R[0].root)[0]]))
    assert final_witness(again) == final_witness(final)
    assert extract(final, vault=v).vault_verified
    # one byte of a signature changed, or an extra item: refused by combine, finalize and extract
    witness = final_witness(final)
    bad_sig = [bytearray(x) for x in witness]
    k = next(j for j, x in enumerate(bad_sig) if len(x) in (64, 65, 71, 72))
    bad_sig[k][5] ^= 1
    for items in ([bytes(x) for x in bad_sig], [b"\x01"] + witness):
        tampered = final.copy()
        tampered.inputs[0].set(F.PSBT_IN_FINAL_SCRIPTWITNESS, b"", _witness_bytes(items))
        with pytest.raises(FinalizeError):
            v.finalize(tampered)
        with pytest.raises(CombineError):
            v.combine([tampered, psbt])
        with pytest.raises(ExtractError):
            extract(tampered, vault=v)


def _witness_bytes(items):
    from msigvault.psbt.satisfaction import witness_bytes

    return witness_bytes(items)


def test_paths_weights_and_selection():
    for script in ("wsh", "tr"):
        v = vault_for(script, Timelock.older(LOCK))
        assert [p.name for p in spend_paths(v)] == ["primary", "recovery 1"]
        assert select_path(v, "recovery") == select_path(v, 1) == select_path(v, "recovery 1")
        with pytest.raises(Exception, match="unknown spending path"):
            select_path(v, "recovery 2")
        primary, recovery = input_weight(v), input_weight(v, select_path(v, "recovery"))
        assert primary != recovery
        from msigvault.policy.descriptors import parse_descriptor

        bound = parse_descriptor(v.descriptor()).max_witness_weight()
        assert max(primary[1], recovery[1]) <= bound
    plain = Vault.multisig(2, [h.cosigner("wsh") for h in P], network=NET)
    with pytest.raises(Exception, match="no recovery paths"):
        select_path(plain, "recovery")


def test_tr_psbt_fields_name_every_leaf():
    v = vault_for("tr", Timelock.older(LOCK))
    from msigvault.testing.utxos import synthetic_utxo

    utxo = synthetic_utxo(v, 50_000, index=2)
    psbt = v.create_psbt([utxo], [(PAYEE, 20_000)], fee_rate=2.0, change_index=2)
    d = v.derive(2)
    m = psbt.inputs[0]
    leaf_scripts = {(bytes(k), bytes(val)) for k, val in m.items_of_type(F.PSBT_IN_TAP_LEAF_SCRIPT)}
    assert leaf_scripts == set(d.tap_leaf_entries) and len(leaf_scripts) == 2
    assert bytes(m.get(F.PSBT_IN_TAP_MERKLE_ROOT)) == d.merkle_root
    assert len(m.items_of_type(F.PSBT_IN_TAP_BIP32_DERIVATION)) == 5
    # the primary keyholder signs only the primary leaf, the recovery keyholder only theirs
    signed_p = v.sign(psbt, P[0].root, policy=SignerPolicy(allow_witness_utxo_only=True))[0]
    assert [bytes(k)[32:] for k, _ in signed_p.inputs[0].items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)] == [d.leaves[0].leaf_hash]
    request = prepare(psbt, v, fingerprint=P[0].fingerprint)
    assert request.summary.spend_paths[0].name == "primary" and len(request.summary.spend_paths) == 1
    assert choose_witness(v, d, {}, version=2, locktime=0, sequence=LOCK) is None
