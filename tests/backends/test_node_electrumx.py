"""What ElectrumX 2 needs from the local node beyond what other clients call: Core 31's version
number, ``-txospenderindex`` in getindexinfo and gettxspendingprevout's confirmed spenders
(options ``mempool_only`` and ``return_spending_tx``, as in Core's rpc_gettxspendingprevout.py)."""

import httpx
import pytest

from msigvault.backends.base import txid_of


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def call(client, node, method, *params):
    r = client.post(node.rpc_url, json={"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)})
    return r.json()


def test_version_and_indexes_are_what_electrumx_2_requires(history, client):
    node = history[0]
    assert call(client, node, "getnetworkinfo")["result"]["version"] >= 310000  # Core 31.0
    info = call(client, node, "getindexinfo")["result"]
    assert info["txospenderindex"] == {"synced": True, "best_block_height": node.chain.height}
    assert info["txindex"]["synced"] is True


def test_a_confirmed_spender_is_found_through_the_spender_index(history, client):
    node, _vault, _h, facts = history
    coin, spend = facts["spent_coin"], facts["spend"]
    outpoint = [{"txid": coin.txid, "vout": coin.vout}]
    with node.state.lock:
        block_hash = node.state.tx(spend.txid).place.block_hash
    found = call(client, node, "gettxspendingprevout", outpoint, {"mempool_only": False})["result"]
    assert found == [{"txid": coin.txid, "vout": coin.vout, "spendingtxid": spend.txid, "blockhash": block_hash}]
    assert call(client, node, "gettxspendingprevout", outpoint)["result"] == found  # the index is on
    with_tx = call(client, node, "gettxspendingprevout", outpoint, {"return_spending_tx": True})["result"][0]
    assert txid_of(bytes.fromhex(with_tx["spendingtx"])) == spend.txid
    only_mempool = call(client, node, "gettxspendingprevout", outpoint, {"mempool_only": True})["result"]
    assert only_mempool == outpoint


def test_spender_options_are_checked_like_cores(history, client):
    node, _vault, _h, facts = history
    coin = facts["spent_coin"]
    outpoint = [{"txid": coin.txid, "vout": coin.vout}]
    error = call(client, node, "gettxspendingprevout", outpoint, {"nosuch": 1})["error"]
    assert error == {"code": -3, "message": "Unexpected key nosuch"}
    error = call(client, node, "gettxspendingprevout", [{"txid": coin.txid, "vout": -1}])["error"]
    assert error == {"code": -8, "message": "Invalid parameter, vout cannot be negative"}


def test_without_the_indexes_only_the_mempool_is_searched(history, client):
    node, _vault, _h, facts = history
    coin = facts["spent_coin"]
    with node.state.lock:
        node.state.txindex = False
    try:
        assert call(client, node, "getindexinfo")["result"] == {}
        answer = call(client, node, "gettxspendingprevout", [{"txid": coin.txid, "vout": coin.vout}])
    finally:
        with node.state.lock:
            node.state.txindex = True
    assert answer["result"] == [{"txid": coin.txid, "vout": coin.vout}]
