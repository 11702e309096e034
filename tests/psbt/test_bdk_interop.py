"""Interop both ways with BDK (bdkpython, rust-bitcoin/rust-miniscript) as the independent oracle.

1. A PSBT msigvault creates is signed by BDK for one cosigner and by msigvault for another, then
   combined, finalized and extracted by msigvault (libbitcoinkernel verifies the scripts).
2. A PSBT BDK creates for the same descriptor is signed by msigvault for two cosigners and
   finalized by msigvault.
"""

import time

import bdkpython as bdk
import pytest

from msigvault import Vault
from msigvault.network import Network
from msigvault.psbt.combiner import combine
from msigvault.psbt.extractor import extract
from msigvault.psbt.finalizer import finalize
from msigvault.psbt.psbt import Psbt
from msigvault.psbt.signer import SignerPolicy, sign
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))


def vault_and_holders(script):
    holders = [TestKeyholder.from_label(f"bdk-interop-{i}") for i in range(3)]
    return Vault.multisig(2, [h.cosigner(script) for h in holders], script=script, network=NET), holders


def bdk_wallet(vault, holders, signer_index):
    """A BDK wallet for the vault that holds the private key of one cosigner."""
    def desc(branch):
        keys = []
        for i, (c, h) in enumerate(zip(vault.cosigners, holders)):
            if i == signer_index:
                account = h.root.derive(c.path)
                keys.append(f"{c.origin()}{account.to_base58()}/{branch}/*")
            else:
                keys.append(f"{c}/{branch}/*")
        inner = ("sortedmulti" if vault.sorted else "multi") + f"({vault.m},{','.join(keys)})"
        return bdk.Descriptor({"wsh": f"wsh({inner})", "sh-wsh": f"sh(wsh({inner}))", "sh": f"sh({inner})"}[vault.script],
                              bdk.NetworkKind.TEST)
    return bdk.Wallet(desc(0), desc(1), bdk.Network.REGTEST, bdk.Persister.new_in_memory())


def sign_options():
    return bdk.SignOptions(trust_witness_utxo=True, assume_height=None, allow_all_sighashes=False,
                           try_finalize=False, sign_with_tap_internal_key=False, allow_grinding=True)


@pytest.mark.parametrize("script", ["wsh", "sh-wsh", "sh"])
def test_bdk_signs_msigvault_psbt(script):
    vault, holders = vault_and_holders(script)
    utxos = [synthetic_utxo(vault, 150_000, index=i, seed="interop") for i in range(2)]
    psbt = vault.create_psbt(utxos, [(EXTERNAL, 200_000)], fee_rate=2.0, change_index=3)
    wallet = bdk_wallet(vault, holders, 0)
    bpsbt = bdk.Psbt(psbt.to_base64())
    assert wallet.sign(bpsbt, sign_options()) is False  # signed, but not finalized: 2 of 3 needed
    by_bdk = Psbt.from_base64(bpsbt.serialize())
    by_us, _ = sign(psbt, vault, holders[2].root)
    final = finalize(combine([by_bdk, by_us], vault), vault)
    tx = extract(final)
    assert tx.verified_by_kernel
    # BDK agrees the combined PSBT is complete
    assert bdk.Psbt(combine([by_bdk, by_us], vault).to_base64()).finalize().could_finalize


@pytest.mark.parametrize("script", ["wsh", "sh-wsh"])
def test_msigvault_signs_bdk_psbt(script):
    vault, holders = vault_and_holders(script)
    wallet = bdk_wallet(vault, holders, 1)
    funding = synthetic_utxo(vault, 300_000, index=0, seed="bdk-funding")
    wallet.reveal_addresses_to(bdk.KeychainKind.EXTERNAL, 5)
    wallet.apply_unconfirmed_txs([bdk.UnconfirmedTx(tx=bdk.Transaction(funding.prev_tx), last_seen=int(time.time()))])
    builder = (bdk.TxBuilder().add_recipient(bdk.Script(EXTERNAL), bdk.Amount.from_sat(120_000))
               .fee_rate(bdk.FeeRate.from_sat_per_vb(3)))
    bpsbt = builder.finish(wallet)
    created = Psbt.from_base64(bpsbt.serialize())
    # BDK's change output rebuilds from the vault: the signer labels it change
    a, summary = sign(created, vault, holders[0].root)
    assert [o.kind for o in summary.outputs].count("change") == 1
    assert summary.sent_out == 120_000
    b, _ = sign(created, vault, holders[2].root)
    tx = extract(finalize(combine([a, b], vault), vault))
    assert tx.verified_by_kernel


def test_bdk_psbt_without_previous_tx_needs_explicit_permission():
    vault, holders = vault_and_holders("wsh")
    wallet = bdk_wallet(vault, holders, 1)
    funding = synthetic_utxo(vault, 300_000, index=0, seed="bdk-witness-only")
    wallet.apply_unconfirmed_txs([bdk.UnconfirmedTx(tx=bdk.Transaction(funding.prev_tx), last_seen=int(time.time()))])
    bpsbt = (bdk.TxBuilder().add_recipient(bdk.Script(EXTERNAL), bdk.Amount.from_sat(120_000))
             .fee_rate(bdk.FeeRate.from_sat_per_vb(3)).only_witness_utxo().finish(wallet))
    created = Psbt.from_base64(bpsbt.serialize())
    from msigvault.errors import SignerRefusal
    with pytest.raises(SignerRefusal, match="CVE-2020-14199"):
        sign(created, vault, holders[0].root)
    signed, _ = sign(created, vault, holders[0].root, policy=SignerPolicy(allow_witness_utxo_only=True))
    assert signed.input_count == 1
