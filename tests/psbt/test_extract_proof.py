"""The Extractor says what it verified against what (msigvault issue 11 item 6).

A BIP341 signature commits to the amounts the PSBT claims, so libbitcoinkernel run against those
claims says "valid if the claims are true". FinalTx.verified_against names the evidence, and
extract(spent_outputs=...) verifies against a chain the caller trusts, refusing a PSBT whose
claims disagree with it.
"""

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from msigvault import Vault
from msigvault.errors import ExtractError
from msigvault.network import Network
from msigvault.psbt import fields as F
from msigvault.psbt.combiner import combine
from msigvault.psbt.extractor import UtxoEvidence, extract
from msigvault.psbt.finalizer import finalize
from msigvault.psbt.sighash import TxOut
from msigvault.psbt.signer import SignerPolicy, sign
from msigvault.regtest import BlockRejected, RegtestChain
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
PAYEE = bytes.fromhex("0014") + bytes(range(20))
INFLATION = 400_000  # what the hostile coordinator adds to one coin's claimed amount


def vault_of(script, n=3):
    holders = [TestKeyholder.from_label(f"extract-proof-{i}") for i in range(n)]
    return Vault.multisig(2, [h.cosigner(script) for h in holders], script=script, network=NET), holders


def spend(vault, holders, utxos, pay=150_000, policy=None):
    psbt = vault.create_psbt(utxos, [(PAYEE, pay)], fee_rate=2.0, change_index=0)
    kw = {"policy": policy} if policy else {}
    parts = [sign(psbt, vault, h.root, **kw)[0] for h in holders[:2]]
    return finalize(combine(parts, vault), vault)


@pytest.fixture(scope="module")
def chain():
    with RegtestChain() as c:
        c.mine(101)
        yield c


def outputs_of(chain, psbt):
    out = []
    for i in range(psbt.input_count):
        txid, vout = psbt.prevout(i)
        u = chain.utxo(txid[::-1].hex(), vout)
        assert u is not None
        out.append(u)
    return out


def test_evidence_without_the_chain():
    wsh, holders = vault_of("wsh")
    tx = extract(spend(wsh, holders, [synthetic_utxo(wsh, 200_000, index=i) for i in range(2)]))
    assert tx.verified_against is UtxoEvidence.PREVIOUS_TRANSACTIONS  # non_witness_utxo, txids match
    tr, holders = vault_of("tr")
    tx = extract(spend(tr, holders, [synthetic_utxo(tr, 200_000, index=i) for i in range(2)]))
    assert tx.verified_by_kernel and tx.verified_against is UtxoEvidence.WITNESS_UTXO_CLAIMS
    assert not tx.vault_verified


def test_inflated_witness_utxo_on_tr_is_only_claims_and_refused_against_the_chain(chain):
    vault, holders = vault_of("tr")
    real = chain.fund(vault.address(0), [300_000])
    # the coordinator claims 400,000 sats more and sends it back as change: the fee looks normal
    lie = [replace(real[0], amount=real[0].amount + INFLATION, prev_tx=None, branch=0, index=0)]
    final = spend(vault, holders, lie)
    assert final.inputs[0].get(F.PSBT_IN_NON_WITNESS_UTXO) is None
    tx = extract(final)
    # the kernel verified the signatures against the claim, and says so: not a proof
    assert tx.verified_by_kernel and tx.verified_against is UtxoEvidence.WITNESS_UTXO_CLAIMS
    height = chain.height
    with pytest.raises(BlockRejected):  # the network: outputs exceed the real inputs
        chain.submit([tx.raw])
    assert chain.height == height
    # against the chain's own UTXO set, the extractor refuses before broadcast
    with pytest.raises(ExtractError, match=r"input 0: the PSBT claims .* 700000 sats, but your chain says 300000"):
        extract(final, spent_outputs=outputs_of(chain, final))
    with pytest.raises(ExtractError, match="your chain says"):
        extract(final, spent_outputs=[TxOut(u.amount, u.script_pubkey) for u in outputs_of(chain, final)],
                verify=False)


def test_honest_tr_spend_verified_against_the_chain(chain):
    vault, holders = vault_of("tr")
    real = [replace(u, branch=0, index=1) for u in chain.fund(vault.address(1), [120_000, 90_000])]
    final = spend(vault, holders, real)
    tx = extract(final, spent_outputs=outputs_of(chain, final), vault=vault)
    assert tx.verified_by_kernel and tx.verified_against is UtxoEvidence.CALLER and tx.vault_verified
    chain.submit([tx.raw])
    assert chain.get_tx(tx.txid) is not None
    assert all(chain.utxo(u.txid, u.vout) is None for u in real)  # spent now


def test_witness_only_wsh_amount_lie_is_refused_against_the_chain(chain):
    """CVE-2020-14199 shape: a segwit v0 coin claimed higher without its previous transaction."""
    vault, holders = vault_of("wsh")
    real = chain.fund(vault.address(2), [300_000])
    lie = [replace(real[0], amount=real[0].amount + INFLATION, prev_tx=None, branch=0, index=2)]
    final = spend(vault, holders, lie, policy=SignerPolicy(allow_witness_utxo_only=True))
    assert extract(final, verify=False).verified_against is UtxoEvidence.WITNESS_UTXO_CLAIMS
    with pytest.raises(ExtractError, match="your chain says 300000"):
        extract(final, spent_outputs=outputs_of(chain, final))


def test_spent_outputs_are_checked():
    vault, holders = vault_of("wsh")
    utxos = [synthetic_utxo(vault, 200_000, index=i) for i in range(2)]
    final = spend(vault, holders, utxos, pay=300_000)
    assert final.input_count == 2
    ordered = [next(u for u in utxos if (bytes.fromhex(u.txid)[::-1], u.vout) == final.prevout(i))
               for i in range(final.input_count)]
    tx = extract(final, spent_outputs=ordered)
    assert tx.verified_against is UtxoEvidence.CALLER
    with pytest.raises(ExtractError, match="1 entries for 2 inputs"):
        extract(final, spent_outputs=ordered[:1])
    with pytest.raises(ExtractError, match=r"spent_outputs\[0\] is the coin .* but input 0 spends"):
        extract(final, spent_outputs=list(reversed(ordered)))
    with pytest.raises(ExtractError, match="not a TxOut or Utxo"):
        extract(final, spent_outputs=[(u.amount, u.script_pubkey) for u in ordered])
    with pytest.raises(ExtractError, match="amount -1"):
        extract(final, spent_outputs=[TxOut(-1, ordered[0].script_pubkey), ordered[1]])
    other_script = [TxOut(ordered[0].amount, vault.derive_branch(0, 7).script_pubkey), ordered[1]]
    with pytest.raises(ExtractError, match="a different script"):
        extract(final, spent_outputs=other_script)


def test_cli_broadcast_verifies_against_the_chain(tmp_path):
    """`msigvault broadcast` passes the chain's UTXOs to the Extractor: the lie never reaches a block."""
    from msigvault.vaultfile import VaultFile

    vault, holders = vault_of("tr")
    vault_path = tmp_path / "vault.json"
    vault_path.write_text(VaultFile(vault, "proof").to_json())
    chain_dir = tmp_path / "chain"
    with RegtestChain(datadir=chain_dir) as c:
        c.mine(101)
        real = [replace(u, branch=0, index=3) for u in c.fund(vault.address(3), [300_000])]
    lie = [replace(real[0], amount=real[0].amount + INFLATION, prev_tx=None)]
    (tmp_path / "lie.psbt").write_bytes(spend(vault, holders, lie).serialize())
    (tmp_path / "honest.psbt").write_bytes(spend(vault, holders, real).serialize())
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}

    def broadcast(name):
        return subprocess.run([sys.executable, "-m", "msigvault", "broadcast", str(vault_path), name,
                               "--chain", str(chain_dir)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)

    refused = broadcast("lie.psbt")
    assert refused.returncode == 2 and "your chain says 300000" in refused.stderr, refused.stderr
    done = broadcast("honest.psbt")
    assert done.returncode == 0, done.stderr
    assert "against the spent outputs given by the caller's chain" in done.stdout
