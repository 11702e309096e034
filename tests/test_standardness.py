"""Mempool policy a broadcaster needs (consensus does not check it): dust, standard outputs,
minimum relay fee, standard weight; values from Bitcoin Core's defaults."""

import pytest

from msigvault import Vault
from msigvault.errors import CoinSelectionError, ExtractError, PolicyError
from msigvault.network import Network
from msigvault.psbt.extractor import extract
from msigvault.standardness import dust_threshold, is_dust, is_standard_output, output_kind
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

P2WPKH = b"\x00\x14" + bytes(20)
P2WSH = b"\x00\x20" + bytes(32)
P2TR = b"\x51\x20" + bytes(32)
P2SH = b"\xa9\x14" + bytes(20) + b"\x87"
P2PKH = b"\x76\xa9\x14" + bytes(20) + b"\x88\xac"


@pytest.mark.parametrize("script,threshold", [(P2WPKH, 294), (P2WSH, 330), (P2TR, 330), (P2SH, 540), (P2PKH, 546)])
def test_dust_thresholds_match_core(script, threshold):
    assert dust_threshold(script) == threshold
    assert is_dust(threshold - 1, script) and not is_dust(threshold, script)


def test_standard_outputs():
    for s in (P2WPKH, P2WSH, P2TR, P2SH, P2PKH, b"\x6a\x04abcd"):
        assert is_standard_output(s), output_kind(s)
    assert not is_standard_output(b"\x51")  # bare OP_TRUE
    assert not is_standard_output(b"\x6a" + b"\x4c\x50" + bytes(80) + bytes(10))  # oversized OP_RETURN


def vault_and_holders():
    holders = [TestKeyholder.from_label(f"std-{i}") for i in range(3)]
    return Vault.multisig(2, [h.cosigner("wsh") for h in holders], network=Network.REGTEST), holders


def finalized(vault, holders, psbt):
    return vault.finalize(vault.combine([vault.sign(psbt, h.root)[0] for h in holders[:2]]))


def test_creator_refuses_dust_payment_and_below_min_relay_fee():
    vault, _ = vault_and_holders()
    utxos = [synthetic_utxo(vault, 100_000)]
    with pytest.raises(PolicyError, match="dust"):
        vault.create_psbt(utxos, [(P2WPKH, 293)], fee_rate=1.0, change_index=0)
    with pytest.raises(PolicyError, match="minimum relay fee"):
        vault.create_psbt(utxos, [(P2WPKH, 50_000)], fee_rate=0.5, change_index=0)
    with pytest.raises(PolicyError, match="standard"):
        vault.create_psbt(utxos, [(b"\x51", 50_000)], fee_rate=1.0, change_index=0)


def test_extractor_enforces_min_relay_fee_rate():
    vault, holders = vault_and_holders()
    psbt = vault.create_psbt([synthetic_utxo(vault, 100_000)], [(P2WPKH, 50_000)], fee_rate=1.0, change_index=0)
    final = finalized(vault, holders, psbt)
    assert extract(final).fee >= extract(final).vsize
    with pytest.raises(ExtractError, match="minimum relay fee rate"):
        extract(final, min_fee_rate=5.0)


def test_creator_refuses_nonstandard_weight():
    vault, _ = vault_and_holders()
    utxos = [synthetic_utxo(vault, 20_000, index=i) for i in range(1_000)]
    with pytest.raises(CoinSelectionError, match="above 400000"):
        vault.create_psbt(utxos, [(P2WPKH, 19_500_000)], fee_rate=1.0, change_index=0)  # ~980 inputs
