"""The local node's Core JSON-RPC and Esplora REST answers: Core's codes and shapes, checked
against values computed here from the raw bytes (header hashes, txids, sizes)."""

import base64
import hashlib
import json

import httpx
import pytest
from embit.transaction import Transaction

from msigvault.regtest.chain import ANYONE_CAN_SPEND_SCRIPT_PUBKEY, spend_anyone_can_spend


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=10) as c:
        yield c


def call(client, node, method, *params, v2=False, path=""):
    body = {"id": 7, "method": method, "params": list(params)}
    body["jsonrpc"] = "2.0" if v2 else "1.0"
    r = client.post(node.rpc_url + path, json=body)
    return r.status_code, r.json() if r.content else None


def ok(client, node, method, *params, path=""):
    status, reply = call(client, node, method, *params, path=path)
    assert status == 200 and reply["error"] is None, reply
    return reply["result"]


def error(client, node, method, *params, path=""):
    status, reply = call(client, node, method, *params, path=path)
    assert reply["result"] is None
    return status, reply["error"]["code"], reply["error"]["message"]


def sha256d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def test_blocks_and_headers_agree_with_their_bytes(history, client):
    node = history[0]
    height = ok(client, node, "getblockcount")
    best = ok(client, node, "getbestblockhash")
    assert ok(client, node, "getblockhash", height) == best
    header = bytes.fromhex(ok(client, node, "getblockheader", best, False))
    assert len(header) == 80 and sha256d(header)[::-1].hex() == best
    raw = bytes.fromhex(ok(client, node, "getblock", best, 0))
    assert raw[:80] == header
    info = ok(client, node, "getblock", best, 1)
    assert info["hash"] == best and info["height"] == height and info["confirmations"] == 1
    assert info["size"] == len(raw) and info["nTx"] == len(info["tx"])
    prev = ok(client, node, "getblockheader", info["previousblockhash"])
    assert prev["nextblockhash"] == best and prev["height"] == height - 1
    assert prev["confirmations"] == 2
    full = ok(client, node, "getblock", best, 2)
    assert [t["txid"] for t in full["tx"]] == info["tx"]
    chaininfo = ok(client, node, "getblockchaininfo")
    assert (chaininfo["chain"], chaininfo["blocks"], chaininfo["bestblockhash"]) == ("regtest", height, best)


def test_transactions_in_cores_shape(history, client):
    node, _vault, _h, facts = history
    spend = facts["spend"]
    assert ok(client, node, "getrawtransaction", spend.txid) == spend.hex()
    v = ok(client, node, "getrawtransaction", spend.txid, True)
    parsed = Transaction.parse(bytes.fromhex(spend.hex()))
    assert v["txid"] == spend.txid == parsed.txid().hex() and v["hex"] == spend.hex()
    assert v["vsize"] == spend.vsize and v["confirmations"] >= 1 and "blockhash" in v
    assert [o["value"] for o in v["vout"]] == [o.value / 1e8 for o in parsed.vout]
    assert v["vin"][0]["txid"] == facts["spent_coin"].txid and len(v["vin"][0]["txinwitness"]) == 4
    assert v["vout"][0]["scriptPubKey"]["type"] in ("witness_v0_keyhash", "witness_v0_scripthash")
    decoded = ok(client, node, "decoderawtransaction", spend.hex())
    assert decoded["txid"] == spend.txid and "hex" not in decoded
    pending = ok(client, node, "getrawtransaction", facts["payment_txid"], 1)
    assert "confirmations" not in pending and "blockhash" not in pending


@pytest.mark.parametrize("method,params,code,message", [
    ("getblockhash", [10**6], -8, "Block height out of range"),
    ("getblock", ["00" * 32], -5, "Block not found"),
    ("getrawtransaction", ["11" * 32], -5, "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."),
    ("getrawtransaction", ["zz"], -8, "txid must be hexadecimal string (not 'zz')"),
    ("sendrawtransaction", ["00"], -22, "TX decode failed. Make sure the tx has at least one input."),
    ("estimatesmartfee", [0], -8, "Invalid conf_target, must be between 1 and 1008"),
    ("nosuchmethod", [], -32601, "Method not found"),
])
def test_errors_have_cores_codes_and_words(history, client, method, params, code, message):
    node = history[0]
    status, got_code, got_message = error(client, node, method, *params)
    assert (got_code, got_message) == (code, message)
    assert status == (404 if code == -32601 else 500)  # Core's legacy JSON-RPC 1.0 statuses


def test_jsonrpc_2_batches_notifications_and_auth(history, client):
    node = history[0]
    status, reply = call(client, node, "nosuchmethod", v2=True)
    assert status == 200 and reply == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 7}
    r = client.post(node.rpc_url, json=[{"jsonrpc": "2.0", "id": 1, "method": "getblockcount"},
                                        {"jsonrpc": "2.0", "method": "getblockcount"},
                                        {"jsonrpc": "2.0", "id": 2, "method": "getbestblockhash"}])
    assert r.status_code == 200 and [x["id"] for x in r.json()] == [1, 2]
    url = f"http://127.0.0.1:{node.rpc_port}/"
    bad = base64.b64encode(b"__cookie__:wrong").decode()
    r = client.post(url, json={"method": "getblockcount"}, headers={"Authorization": "Basic " + bad})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="jsonrpc"'
    r = client.post(url, content=b"{not json", headers={"Authorization": "Basic " + base64.b64encode(node.credentials()[0]).decode()})
    assert r.status_code == 500 and r.json()["error"]["code"] == -32700


def test_what_electrumx_calls(history, client):
    node, _vault, _h, facts = history
    net = ok(client, node, "getnetworkinfo")
    assert net["relayfee"] == 0.00001 and isinstance(net["version"], int)
    assert ok(client, node, "getindexinfo")["txindex"]["synced"] is True
    info = ok(client, node, "getmempoolinfo")
    assert info["size"] == len(ok(client, node, "getrawmempool")) >= 1
    coin = Transaction.parse(facts["payment"]).vin[0]
    spending = ok(client, node, "gettxspendingprevout", [{"txid": coin.txid.hex(), "vout": coin.vout}])
    assert spending == [{"txid": coin.txid.hex(), "vout": coin.vout, "spendingtxid": facts["payment_txid"]}]
    assert ok(client, node, "estimatesmartfee", 6) == {"feerate": 0.00002, "blocks": 6}


def test_wallet_errors_and_scantxoutset(history, client, hx):
    node, vault, _h, facts = history
    assert error(client, node, "getwalletinfo", path="/wallet/nosuch")[1:] == (-18, "Requested wallet does not exist or is not loaded")
    scan = ok(client, node, "scantxoutset", "start", [{"desc": vault.descriptor(0), "range": 40}])
    assert scan["success"] is True and scan["bestblock"] == ok(client, node, "getbestblockhash")
    got = {(u["txid"], u["vout"]) for u in scan["unspents"]}
    with node.state.lock:
        expected = {(u.txid, u.vout) for u in node.chain.utxos_for_scripts(
            {vault.derive(i).script_pubkey for i in range(41)})}
    assert got == expected and all(u["confirmations"] >= 1 for u in scan["unspents"])
    no_checksum = ok(client, node, "importdescriptors", [{"desc": vault.descriptor(0, checksum=False), "timestamp": 0}],
                     path="/wallet/" + _wallet(client, node, "strict"))
    assert no_checksum == [{"success": False, "error": {"code": -5, "message": "Missing checksum"}}]


def _wallet(client, node, name):
    ok(client, node, "createwallet", name, True, True)
    return name


def test_esplora_answers_in_its_shapes(history, client, hx):
    node, vault, _h, facts = history
    e = node.esplora_url
    spend = facts["spend"]
    tx = client.get(f"{e}/tx/{spend.txid}").json()
    assert tx["txid"] == spend.txid and tx["fee"] == spend.fee and tx["status"]["confirmed"] is True
    assert tx["vin"][0]["prevout"]["value"] == facts["spent_coin"].amount
    assert tx["weight"] == spend.weight if hasattr(spend, "weight") else True
    out = client.get(f"{e}/tx/{facts['spent_coin'].txid}/outspend/{facts['spent_coin'].vout}").json()
    assert out["spent"] is True and out["txid"] == spend.txid and out["vin"] == 0
    assert client.get(f"{e}/tx/{'11' * 32}").status_code == 404
    assert client.get(f"{e}/tx/{'11' * 32}").text == "Transaction not found"
    stats = client.get(f"{e}/address/{vault.address(hx.SPENT_INDEX)}").json()
    assert stats["chain_stats"]["funded_txo_sum"] == stats["chain_stats"]["spent_txo_sum"] == hx.RECEIVE_FUNDED[hx.SPENT_INDEX]
    assert stats["chain_stats"]["tx_count"] == 2 and stats["mempool_stats"]["tx_count"] == 0
    pending = client.get(f"{e}/address/{vault.address(hx.UNCONFIRMED_INDEX)}/utxo").json()
    assert pending == [{"txid": facts["payment_txid"], "vout": 0, "status": {"confirmed": False},
                        "value": hx.UNCONFIRMED_AMOUNT}]
    sh = hashlib.sha256(vault.derive(hx.UNCONFIRMED_INDEX).script_pubkey).hexdigest()
    assert client.get(f"{e}/scripthash/{sh}/utxo").json() == pending
    tip = client.get(f"{e}/blocks/tip/hash").text
    block = client.get(f"{e}/block/{tip}").json()
    assert block["id"] == tip and block["height"] == int(client.get(f"{e}/blocks/tip/height").text)
    assert bytes.fromhex(client.get(f"{e}/block/{tip}/header").text) == client.get(f"{e}/block/{tip}/raw").content[:80]
    bad = client.post(f"{e}/tx", content=spend.hex())
    assert bad.status_code == 400 and bad.text == 'sendrawtransaction RPC error: {"code":-27,"message":"Transaction outputs already in utxo set"}'
    assert client.get(f"{e}/address/bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq").text == "Invalid Bitcoin address"


def test_mining_confirms_the_mempool(hx):
    from msigvault.regtest.node import RegtestNode

    with RegtestNode() as node, httpx.Client() as client:
        ok(client, node, "generatetoaddress", 101, node.chain.wallet_address)
        with node.state.lock:
            coin = hx.wallet_coin(node.chain)
        raw = spend_anyone_can_spend([coin], [(ANYONE_CAN_SPEND_SCRIPT_PUBKEY, coin.amount - 500)])
        accepted = ok(client, node, "testmempoolaccept", [raw.hex()])[0]
        assert accepted["allowed"] is True and accepted["fees"]["base"] == 0.000005
        txid = ok(client, node, "sendrawtransaction", raw.hex())
        assert ok(client, node, "getrawmempool") == [txid]
        [block] = ok(client, node, "generatetoaddress", 1, node.chain.wallet_address)
        assert ok(client, node, "getrawmempool") == []
        assert txid in ok(client, node, "getblock", block)["tx"]
        assert error(client, node, "sendrawtransaction", raw.hex())[1:] == (-27, "Transaction outputs already in utxo set")
        assert ok(client, node, "testmempoolaccept", [raw.hex()])[0]["reject-reason"] == "txn-already-known"


def test_getrawtransaction_in_a_given_block(history, client):
    node, _vault, _h, facts = history
    spend = facts["spend"]
    block = ok(client, node, "getrawtransaction", spend.txid, True)["blockhash"]
    assert ok(client, node, "getrawtransaction", spend.txid, False, block) == spend.hex()
    genesis = ok(client, node, "getblockhash", 0)
    assert error(client, node, "getrawtransaction", spend.txid, False, genesis)[1:] == (
        -5, "No such transaction found in the provided block. Use gettransaction for wallet transactions.")
    assert error(client, node, "getrawtransaction", spend.txid, False, "00" * 32)[1:] == (-5, "Block hash not found")


def test_a_request_body_above_the_limit_is_refused_unread(history):
    import socket

    node = history[0]
    with socket.create_connection(("127.0.0.1", node.rpc_port), timeout=5) as s:
        auth = base64.b64encode(node.credentials()[0]).decode()
        s.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
                  f"Content-Length: {64 * 1024 * 1024}\r\n\r\n".encode())
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413") and "Connection: close" in head


def test_electrumx_daemon_payloads(history, client):
    """The exact payloads ElectrumX's Daemon sends (no "jsonrpc", no "params" when empty, vectors
    of one method) and the answers it reads (Content-Type application/json, an "error" key)."""
    node = history[0]

    def send(payload):
        r = client.post(node.rpc_url, content=json.dumps(payload).encode())
        assert r.headers["Content-Type"] == "application/json"
        return r.json()

    height = send({"method": "getblockcount", "id": 1})["result"]
    hashes = send([{"method": "getblockhash", "params": [h], "id": 10 + h} for h in range(height + 1)])
    assert [x["error"] for x in hashes] == [None] * (height + 1)
    assert hashes[0]["result"] == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    raw = send([{"method": "getblock", "params": [h["result"], False], "id": 1} for h in hashes[-2:]])
    assert all(sha256d(bytes.fromhex(b["result"])[:80])[::-1].hex() == h["result"]
               for b, h in zip(raw, hashes[-2:]))
    assert send({"method": "getblock", "params": [hashes[-1]["result"], True], "id": 2})["result"]["height"] == height
    probe = send({"method": "estimatesmartfee", "id": 3})  # ElectrumX's "is this RPC available?"
    assert probe["error"]["code"] != -32601
    txs = send([{"method": "getrawtransaction", "params": [t, 0], "id": 4}
                for t in send({"method": "getrawmempool", "id": 5})["result"] + ["00" * 32]])
    assert txs[-1]["error"]["code"] == -5 and all(t["error"] is None for t in txs[:-1])
