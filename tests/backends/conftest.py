"""A local regtest node with a scripted history, shared by the backend tests of one module.

The history: vault coins at scattered indexes inside the gap (receive 0, 7, 19, 35; change 3),
a spend of the coin at receive 7 with change to change index 5 (broadcast through Core's RPC,
then confirmed by generatetoaddress), and an unconfirmed payment to receive 12.
"""

import json
import os
import tempfile

import pytest

# bitcoinlib reads its data directory when first imported: keep it out of the user's home
_BCL_DIR = tempfile.mkdtemp(prefix="msigvault-bitcoinlib-")
os.environ["BCL_DATA_DIR"] = _BCL_DIR

from msigvault.policy.vault import Vault  # noqa: E402
from msigvault.regtest.chain import ANYONE_CAN_SPEND_SCRIPT_PUBKEY, spend_anyone_can_spend  # noqa: E402
from msigvault.regtest.node import RegtestNode  # noqa: E402
from msigvault.testing.keyholders import TestKeyholder  # noqa: E402

RECEIVE_FUNDED = {0: 100_000, 7: 200_000, 19: 300_000, 35: 70_000}
CHANGE_FUNDED = {3: 50_000}
SPENT_INDEX = 7
SPEND_CHANGE_INDEX = 5
PAY = 120_000
UNCONFIRMED_INDEX = 12
UNCONFIRMED_AMOUNT = 40_000
FEE_ESTIMATE = 2.0
PAYEE_SCRIPT = bytes.fromhex("0014" + "11" * 20)


def make_vault():
    holders = [TestKeyholder.from_label(f"backends-{i}") for i in range(3)]
    return Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network="regtest"), holders


def wallet_coin(chain, skip: int = 0):
    """A mature coin of the chain's own wallet."""
    mature = [u for u in chain.utxos(chain.wallet_script) if u.amount > 0]
    return mature[skip]


def rpc(client, node, method, *params, wallet=None):
    url = node.rpc_url + (f"/wallet/{wallet}" if wallet else "")
    r = client.post(url, json={"jsonrpc": "1.0", "id": "t", "method": method, "params": list(params)})
    return r.status_code, r.json()


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """(node, vault, holders, facts) with the scripted history in place; stopped afterwards."""
    import httpx

    vault, holders = make_vault()
    node = RegtestNode(fee_estimate=FEE_ESTIMATE).start()
    try:
        chain, state = node.chain, node.state
        with state.lock:
            chain.mine(110)
            for i, amount in RECEIVE_FUNDED.items():
                chain.fund(vault.address(i), [amount])
            for i, amount in CHANGE_FUNDED.items():
                chain.fund(vault.change_address(i), [amount])
            state.sync()
        facts = _spend_and_pay(node, vault, holders)
        yield node, vault, holders, facts
    finally:
        node.stop()


def _spend_and_pay(node, vault, holders):
    import httpx

    chain = node.chain
    with node.state.lock:
        coin = [u for u in chain.utxos(vault.address(SPENT_INDEX))][0]
        coin = type(coin)(coin.txid, coin.vout, coin.amount, coin.script_pubkey, 0, SPENT_INDEX, coin.prev_tx)
    psbt = vault.create_psbt([coin], [(PAYEE_SCRIPT, PAY)], fee_rate=2.0, change_index=SPEND_CHANGE_INDEX)
    parts = [vault.sign(psbt, h.root)[0] for h in holders[:2]]
    tx = vault.extract(vault.finalize(vault.combine(parts)))
    with httpx.Client() as client:
        status, reply = rpc(client, node, "sendrawtransaction", tx.hex())
        assert status == 200 and reply["result"] == tx.txid, reply
        status, reply = rpc(client, node, "generatetoaddress", 1, chain.wallet_address)
        assert status == 200 and len(reply["result"]) == 1
        with node.state.lock:
            source = wallet_coin(chain)
        payment = spend_anyone_can_spend(
            [source], [(vault.derive(UNCONFIRMED_INDEX).script_pubkey, UNCONFIRMED_AMOUNT),
                       (ANYONE_CAN_SPEND_SCRIPT_PUBKEY, source.amount - UNCONFIRMED_AMOUNT - 1_000)])
        status, reply = rpc(client, node, "sendrawtransaction", payment.hex())
        assert status == 200, reply
    return {"spend": tx, "spent_coin": coin, "payment": payment, "payment_txid": reply["result"]}


def vault_scripts(vault, upto: int = 80):
    return {vault.derive_branch(b, i).script_pubkey: (b, i) for b in (0, 1) for i in range(upto)}


def write_bitcoinlib_providers(node) -> None:
    """bitcoinlib's providers.json naming the local node's RPC and Esplora servers."""
    import bitcoinlib.services.services  # noqa: F401  (its first import installs default files)

    providers = {
        "msigvault-node.bitcoind": {
            "provider": "bitcoind", "network": "regtest", "client_class": "BitcoindClient",
            "provider_coin_id": "", "url": node.rpc_url, "api_key": "", "priority": 10,
            "denominator": 100_000_000, "network_overrides": None},
        "msigvault-node.esplora": {
            "provider": "blockstream", "network": "regtest", "client_class": "BlockstreamClient",
            "provider_coin_id": "", "url": node.esplora_url + "/", "api_key": "", "priority": 10,
            "denominator": 100_000_000, "network_overrides": None},
    }
    with open(os.path.join(_BCL_DIR, "providers.json"), "w") as f:
        json.dump(providers, f)


@pytest.fixture(scope="session")
def hx():
    """This module's constants and helpers (test modules cannot import conftest by name)."""
    import sys

    return sys.modules[__name__]
