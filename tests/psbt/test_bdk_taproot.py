"""Taproot interop with BDK both ways (issue: "Taproot PSBTs from BDK are refused").

BDK writes a BIP371 derivation for the vault's unspendable NUMS internal key (no leaf hashes, a
fingerprint, an empty path). msigvault accepts and ignores exactly that record. BDK refuses
``sortedmulti_a``, so these vaults use ``multi_a`` (keys in the given order).

1. A PSBT BDK creates for the vault is signed by msigvault for two cosigners, combined, finalized
   and extracted by msigvault (libbitcoinkernel verifies the scripts).
2. A PSBT msigvault creates is signed by BDK for one cosigner and by msigvault for another; BDK
   finalizes the combined PSBT, and msigvault's analyzer still finds the vault's change in BDK's
   finalized PSBT (BDK clears output derivations).
"""

import time

import bdkpython as bdk

from msigvault import Vault
from msigvault.network import Network
from msigvault.policy.vault import NUMS_H
from msigvault.psbt import fields as F
from msigvault.psbt.analyzer import analyze
from msigvault.psbt.combiner import combine
from msigvault.psbt.extractor import extract
from msigvault.psbt.finalizer import finalize
from msigvault.psbt.psbt import Psbt
from msigvault.psbt.signer import sign
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
HOLDERS = [TestKeyholder.from_label(f"bdk-tr-{i}") for i in range(3)]
VAULT = Vault.multisig(2, [h.cosigner("tr") for h in HOLDERS], script="tr", sorted=False, network=NET)


def bdk_wallet(signer_index):
    def desc(branch):
        keys = []
        for i, (c, h) in enumerate(zip(VAULT.cosigners, HOLDERS)):
            if i == signer_index:
                keys.append(f"{c.origin()}{h.root.derive(c.path).to_base58()}/{branch}/*")
            else:
                keys.append(f"{c}/{branch}/*")
        return bdk.Descriptor(f"tr({NUMS_H.hex()},multi_a({VAULT.m},{','.join(keys)}))", bdk.NetworkKind.TEST)
    return bdk.Wallet(desc(0), desc(1), bdk.Network.REGTEST, bdk.Persister.new_in_memory())


def sign_options():
    return bdk.SignOptions(trust_witness_utxo=True, assume_height=None, allow_all_sighashes=False,
                           try_finalize=False, sign_with_tap_internal_key=False, allow_grinding=True)


def fp(i):
    return HOLDERS[i].fingerprint.hex()


def test_bdk_created_taproot_psbt_through_msigvault():
    wallet = bdk_wallet(1)
    assert wallet.reveal_next_address(bdk.KeychainKind.EXTERNAL).address.__str__() == VAULT.address(0)
    funding = synthetic_utxo(VAULT, 300_000, index=0, seed="bdk-tr-created")
    wallet.apply_unconfirmed_txs([bdk.UnconfirmedTx(tx=bdk.Transaction(funding.prev_tx), last_seen=int(time.time()))])
    bpsbt = (bdk.TxBuilder().add_recipient(bdk.Script(EXTERNAL), bdk.Amount.from_sat(120_000))
             .fee_rate(bdk.FeeRate.from_sat_per_vb(3)).finish(wallet))
    created = Psbt.from_base64(bpsbt.serialize())
    # BDK's record for the internal key is there (the case that used to be refused)
    assert created.inputs[0].get(F.PSBT_IN_TAP_BIP32_DERIVATION, NUMS_H) is not None
    a, summary = sign(created, VAULT, HOLDERS[0].root)
    assert [o.kind for o in summary.outputs].count("change") == 1 and summary.sent_out == 120_000
    c, _ = sign(created, VAULT, HOLDERS[2].root)
    combined = combine([c, a], VAULT)
    report = analyze(combined, VAULT)
    assert report["signed_by"] == sorted([fp(0), fp(2)]) and report["next_role"] == "finalizer"
    tx = extract(finalize(combined, VAULT))
    assert tx.verified_by_kernel
    # BDK agrees msigvault's combined PSBT is complete
    assert bdk.Psbt(combined.to_base64()).finalize().could_finalize


def test_bdk_signs_and_finalizes_msigvault_taproot_psbt():
    utxos = [synthetic_utxo(VAULT, 150_000, index=i, seed="bdk-tr-ours") for i in range(2)]
    psbt = VAULT.create_psbt(utxos, [(EXTERNAL, 200_000)], fee_rate=2.0, change_index=3)
    wallet = bdk_wallet(0)
    bpsbt = bdk.Psbt(psbt.to_base64())
    assert wallet.sign(bpsbt, sign_options()) is False  # signed, not finalized: 2 of 3 needed
    by_bdk = Psbt.from_base64(bpsbt.serialize())
    assert analyze(by_bdk, VAULT)["signed_by"] == [fp(0)]
    by_us, _ = sign(psbt, VAULT, HOLDERS[2].root)
    combined = combine([by_bdk, by_us], VAULT)
    ours = analyze(combined, VAULT)
    assert ours["signed_by"] == sorted([fp(0), fp(2)])
    assert bdk.Psbt(combined.to_base64()).finalize().could_finalize
    # a second BDK keyholder signs BDK's copy and lets BDK finalize: BDK then clears the output
    # derivations, and the analyzer still finds the change, by its script
    opts = bdk.SignOptions(trust_witness_utxo=True, assume_height=None, allow_all_sighashes=False,
                           try_finalize=True, sign_with_tap_internal_key=False, allow_grinding=True)
    assert bdk_wallet(2).sign(bpsbt, opts) is True
    bdk_final = Psbt.from_base64(bpsbt.serialize())
    assert not any(m.items_of_type(F.PSBT_OUT_TAP_BIP32_DERIVATION) for m in bdk_final.outputs)
    after = analyze(bdk_final, VAULT)
    change = [o for o in after["outputs"] if o["kind"] == "change"]
    assert [(o["vault_index"], o["proven_by"]) for o in change] == [(3, "script")]
    assert after["next_role"] == "extractor" and after["spends_from_vault"]
    tx = extract(bdk_final)
    assert tx.verified_by_kernel and tx.txid == extract(finalize(combined, VAULT)).txid
