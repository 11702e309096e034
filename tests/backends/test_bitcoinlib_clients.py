"""bitcoinlib's own bitcoind and Esplora (Blockstream) clients, independent code, read the local
node's UTXOs, transactions and fees and broadcast through it: the node speaks both dialects."""

import pytest

from msigvault.backends.base import txid_of
from msigvault.backends.core import CoreBackend
from msigvault.regtest.chain import ANYONE_CAN_SPEND_SCRIPT_PUBKEY, spend_anyone_can_spend


@pytest.fixture(scope="module")
def clients(history, hx):
    node, vault, _holders, _facts = history
    hx.write_bitcoinlib_providers(node)
    from bitcoinlib.services.bitcoind import BitcoindClient
    from bitcoinlib.services.blockstream import BlockstreamClient

    with CoreBackend(node.rpc_url, "regtest", wallet="bitcoinlib") as core:
        core.watch(vault.descriptors(), 50)  # bitcoinlib's bitcoind client reads a wallet
    return {"bitcoind": BitcoindClient("regtest", node.rpc_url + "/wallet/bitcoinlib", 100_000_000),
            "esplora": BlockstreamClient("regtest", node.esplora_url + "/", 100_000_000)}


def vault_coins(node, vault, hx):
    scripts = hx.vault_scripts(vault)
    with node.state.lock:
        return node.chain.utxos_for_scripts(scripts), node.chain.height


@pytest.mark.parametrize("kind", ["bitcoind", "esplora"])
def test_bitcoinlib_reads_the_vaults_utxos(hx, history, clients, kind):
    node, vault, _h, facts = history
    coins, height = vault_coins(node, vault, hx)
    client = clients[kind]
    assert client.blockcount() == height
    got = set()
    for index in sorted(hx.RECEIVE_FUNDED) + [hx.UNCONFIRMED_INDEX]:
        for u in client.getutxos(vault.address(index)):
            got.add((u["txid"], u["output_n"], u["value"]))
    for index in sorted(hx.CHANGE_FUNDED) + [hx.SPEND_CHANGE_INDEX]:
        for u in client.getutxos(vault.change_address(index)):
            got.add((u["txid"], u["output_n"], u["value"]))
    expected = {(c.txid, c.vout, c.amount) for c in coins}
    expected.add((facts["payment_txid"], 0, hx.UNCONFIRMED_AMOUNT))
    assert got == expected


@pytest.mark.parametrize("kind", ["bitcoind", "esplora"])
def test_bitcoinlib_parses_the_spend_with_its_input_values_and_fee(hx, history, clients, kind):
    node, vault, _h, facts = history
    spend = facts["spend"]
    t = clients[kind].gettransaction(spend.txid)
    assert t.txid == spend.txid and t.status == "confirmed"
    assert [i.value for i in t.inputs] == [facts["spent_coin"].amount]
    assert t.fee == spend.fee
    assert clients[kind].getrawtransaction(spend.txid) == spend.hex()


@pytest.mark.parametrize("kind", ["bitcoind", "esplora"])
def test_bitcoinlib_reads_fees_blocks_and_the_mempool(hx, history, clients, kind):
    node, _vault, _h, facts = history
    client = clients[kind]
    assert client.estimatefee(6) == round(hx.FEE_ESTIMATE * 1000)  # sat/kB
    assert facts["payment_txid"] in client.mempool("")
    block = client.getblock(1, False, 1, 10) if kind == "esplora" else client.getblock(1, False)
    with node.state.lock:
        assert block["block_hash"] == node.chain.block_hash(1)
    assert block["height"] == 1


@pytest.mark.parametrize("kind", ["bitcoind", "esplora"])
def test_bitcoinlib_broadcasts_through_the_node(hx, history, clients, kind):
    node, _vault, _h, _facts = history
    with node.state.lock:
        source = hx.wallet_coin(node.chain, skip=2 if kind == "bitcoind" else 3)
    raw = spend_anyone_can_spend([source], [(ANYONE_CAN_SPEND_SCRIPT_PUBKEY, source.amount - 2_000)])
    answer = clients[kind].sendrawtransaction(raw.hex())
    assert answer["txid"] == txid_of(raw)
    with node.state.lock:
        assert txid_of(raw) in node.state.mempool
