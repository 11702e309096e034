"""Proof of reserves on the regtest chain: fund a 2-of-3 vault, prove its reserves, verify them to
the exact amount against the chain; spend one coin, mine, and the verification fails naming it
(yet still holds at the proof's own block, as BIP127 asks); the proof can never be broadcast; the
result goes into the coordinator's audit log."""

import pytest

from msigvault import Network, Vault
from msigvault.address import address_from_script
from msigvault.backends.base import BroadcastRejected
from msigvault.backends.regtest import RegtestBackend
from msigvault.coordinator.audit import Identity
from msigvault.coordinator.db import Database
from msigvault.coordinator.errors import CoordinatorError
from msigvault.coordinator.sessions import Coordinator
from msigvault.policy.registration import Registration
from msigvault.psbt.signer import prepare
from msigvault.regtest import RegtestChain
from msigvault.regtest.chain import BlockRejected
from msigvault.reserves import por as R
from msigvault.testing.keyholders import TestKeyholder
from msigvault.vaultfile import VaultFile

NET = Network.REGTEST
HOLDERS = [TestKeyholder.from_label(f"por-chain-{i}") for i in range(3)]
EXTERNAL = address_from_script(bytes.fromhex("0014") + bytes(range(20)), NET)
FUNDING = {(0, 0): [40_000, 25_000], (0, 4): [110_000], (1, 2): [7_777]}


def signed(vault, psbt, who):
    return [prepare(psbt, vault, fingerprint=HOLDERS[i].fingerprint).sign(HOLDERS[i].root)[0] for i in who]


@pytest.fixture(params=["wsh", "tr", "sh", "sh-wsh"])
def funded(request):
    vault = Vault.multisig(2, [h.cosigner(request.param) for h in HOLDERS], script=request.param, network=NET)
    chain = RegtestChain()
    for (branch, index), amounts in FUNDING.items():
        chain.fund(vault.derive_branch(branch, index).address, amounts)
    chain.mine(1)
    yield vault, chain, RegtestBackend(chain)
    chain.close()


def prove(vault, backend, who=(0, 2)):
    snap = R.snapshot(vault, backend)
    msg = R.make_message(vault, auditor="Insurer plc", date="2026-12-01", height=snap.height,
                         block_hash=snap.block_hash, nonce="c0ffee42")
    final = R.finalize(R.combine(signed(vault, R.create_proof(vault, snap.utxos, msg), who), vault), vault)
    return snap, R.encode(final, vault)


def test_reserves_verify_to_the_exact_amount_and_fail_when_a_coin_is_spent(funded):
    vault, chain, backend = funded
    snap, proof = prove(vault, backend)
    expected = sum(sum(a) for a in FUNDING.values())
    assert proof.total == expected and len(proof.coins) == 4
    assert (proof.height, proof.block_hash) == (chain.height, chain.tip)  # from the message it commits to
    report = R.verify(proof, vault, R.BackendSource(backend))
    assert (report.proven_amount, len(report.coins), report.height) == (expected, 4, chain.height)
    assert report.verified_by_kernel and report.stated_block == (chain.height, chain.tip)
    assert R.verify(proof, vault, snap).proven_amount == expected
    proof_height = chain.height

    # spend the 110,000 sat coin in an ordinary 2-of-3 ceremony, and mine it
    coin = next(u for u in snap.utxos if u.amount == 110_000)
    spend = vault.create_psbt([coin], [(EXTERNAL, 60_000)], fee_rate=2.0, change_index=5)
    tx = vault.extract(vault.finalize(vault.combine(signed(vault, spend, (1, 2)))))
    backend.broadcast(tx.raw)
    assert chain.height == proof_height + 1 and chain.utxo(coin.txid, coin.vout) is None

    with pytest.raises(R.CoinNotUnspent) as e:
        R.verify(proof, vault, R.BackendSource(backend))
    assert e.value.code == "reserves.coin-spent" and coin.outpoint in str(e.value)
    assert [c.outpoint for c in R.check(proof, vault, R.BackendSource(backend)).failing] == [coin.outpoint]
    report = R.check(proof, vault, R.BackendSource(backend))
    assert report.proven_amount == expected - 110_000 and f"spent by {tx.txid}" in report.failing[0].note
    # at the block the proof is of, every coin was unspent (BIP127: whatever happened after)
    then = R.verify(proof, vault, R.BackendSource(backend), height=proof_height)
    assert then.proven_amount == expected
    assert [c.note for c in then.coins if c.note] == [f"spent later by {tx.txid} in block {proof_height + 1}"]
    # a snapshot taken after the spend does not hold the coin
    with pytest.raises(R.CoinNotUnspent, match=coin.outpoint):
        R.verify(proof, vault, R.snapshot(vault, backend))


def test_a_proof_can_never_be_broadcast_or_mined(funded):
    vault, chain, backend = funded
    _, proof = prove(vault, backend, who=(1, 2))
    height = chain.height
    with pytest.raises(BroadcastRejected) as e:
        backend.broadcast(proof.tx)
    assert "missing-inputs" in str(e.value)  # the commitment input does not exist
    with pytest.raises(BlockRejected) as e:
        chain.submit([proof.tx])
    assert e.value.reason == "bad-txns-inputs-missingorspent"
    assert chain.height == height and len(chain.utxos_for_scripts(
        {vault.derive_branch(b, i).script_pubkey for b, i in FUNDING})) == 4


def test_the_verification_is_recorded_in_the_audit_log(funded, tmp_path):
    vault, chain, backend = funded
    _, proof = prove(vault, backend)
    vf = VaultFile(vault, "reserve", registrations=tuple(Registration.create(vault, h.root, name="reserve")
                                                         for h in HOLDERS))
    co = Coordinator(Database.open(f"sqlite:///{tmp_path / 'c.sqlite'}"), Identity.generate())
    with pytest.raises(CoordinatorError):  # not yet a registered vault
        co.record_reserve_proof(R.verify(proof, vault, R.BackendSource(backend)).to_dict())
    co.register_vault(vf)
    report = R.verify(proof, vault, R.BackendSource(backend)).to_dict()
    co.record_reserve_proof(report)
    with pytest.raises(CoordinatorError, match="not a proof-of-reserves verification"):
        co.record_reserve_proof({"kind": "msigvault-key-health-report", "policy_id": vault.policy_id})
    entries = [e for e in co.audit_entries() if e["event"] == "reserves.verified"]
    assert len(entries) == 1 and entries[0]["data"] == report
    assert entries[0]["data"]["proven_amount"] == proof.total and entries[0]["data"]["valid"] is True
    assert co.verify_log().count == 3
