"""Replacement (RBF) in the local node's mempool, through Core JSON-RPC on loopback: BIP125 as
Bitcoin Core 28+ applies it (full RBF), each rule refused in Core's words, conflicts and their
descendants evicted, the replacement mined."""

import httpx
import pytest

from msigvault.regtest.chain import ANYONE_CAN_SPEND_SCRIPT_PUBKEY as OP_TRUE, spend_anyone_can_spend
from msigvault.regtest.nodestate import MAX_BIP125_RBF_SEQUENCE

SINK = bytes.fromhex("0014" + "22" * 20)


@pytest.fixture(scope="module")
def node():
    from msigvault.regtest.node import RegtestNode

    with RegtestNode() as n, httpx.Client(timeout=30) as client:
        n.client = client
        rpc(n, "generatetoaddress", 130, n.chain.wallet_address)
        yield n


def rpc(node, method, *params):
    r = node.client.post(node.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    return r.json()


def ok(node, method, *params):
    reply = rpc(node, method, *params)
    assert reply.get("error") is None, reply
    return reply["result"]


def rejected(node, raw: bytes) -> str:
    """sendrawtransaction's error message (code -26), after testmempoolaccept gave the same reason."""
    [test] = ok(node, "testmempoolaccept", [raw.hex()])
    assert test["allowed"] is False, test
    reply = rpc(node, "sendrawtransaction", raw.hex())
    assert reply["error"]["code"] == -26 and reply["error"]["message"].startswith(test["reject-reason"])
    return reply["error"]["message"]


_used = [0]


def fresh_coin(node):
    """A mature coin of the node's own (anyone-can-spend) wallet that no test has used."""
    ok(node, "generatetoaddress", 1, node.chain.wallet_address)
    with node.state.lock:
        coins = sorted((u for u in node.chain.utxos(node.chain.wallet_script)
                        if u.amount > 0 and node.state.coin(u.txid, u.vout) is not None),
                       key=lambda u: (node.state.coin(u.txid, u.vout)[1], u.txid, u.vout))  # the oldest: mature
    coin = coins[_used[0]]
    _used[0] += 1
    return coin


def spend(coins, fee, *, sequence=0xFFFFFFFF, to=OP_TRUE, extra=()):
    total = sum(c.amount for c in coins)
    return spend_anyone_can_spend(coins, [(to, total - fee), *extra], sequence=sequence)


class Out:
    """An output of a mempool transaction, shaped like a Utxo for spend_anyone_can_spend."""

    def __init__(self, txid, vout, amount):
        self.txid, self.vout, self.amount = txid, vout, amount


def mempool(node) -> set:
    return set(ok(node, "getrawmempool"))


def test_a_fee_bump_replaces_the_original_and_its_descendants(node):
    coin = fresh_coin(node)
    original = spend([coin], 1_000)
    a = ok(node, "sendrawtransaction", original.hex())
    child = spend([Out(a, 0, coin.amount - 1_000)], 500)
    c = ok(node, "sendrawtransaction", child.hex())
    assert {a, c} <= mempool(node)
    bump = spend([coin], 1_000 + 500 + 200, to=SINK)  # more than both, plus its own relay
    [test] = ok(node, "testmempoolaccept", [bump.hex()])
    assert test["allowed"] is True and {a, c} <= mempool(node)  # a test changes nothing
    b = ok(node, "sendrawtransaction", bump.hex())
    pool = mempool(node)
    assert b in pool and a not in pool and c not in pool
    assert rpc(node, "getmempoolentry", a)["error"]["code"] == -5
    assert ok(node, "gettxspendingprevout", [{"txid": coin.txid, "vout": coin.vout}])[0]["spendingtxid"] == b
    [block] = ok(node, "generatetoaddress", 1, node.chain.wallet_address)
    txs = ok(node, "getblock", block)["tx"]
    assert b in txs and a not in txs and c not in txs
    assert rpc(node, "getrawtransaction", a)["error"]["code"] == -5


def test_a_replacement_must_pay_a_higher_fee_rate(node):
    coin = fresh_coin(node)
    original = spend([coin], 2_000)
    a = ok(node, "sendrawtransaction", original.hex())
    same = spend([coin], 2_000, sequence=0xFFFFFFFE)  # another txid, the same size and fee
    rate = 2_000 * 1000 // vsize_of(original)
    assert rejected(node, same) == (f"insufficient fee, rejecting replacement {same_txid(same)}; new feerate "
                                    f"0.{rate:08d} BTC/kvB <= old feerate 0.{rate:08d} BTC/kvB")
    assert a in mempool(node)


def vsize_of(raw: bytes) -> int:
    from msigvault.regtest.blocks import parse_tx
    from msigvault.regtest.shapes import sizes

    return sizes(parse_tx(raw))[1]


def same_txid(raw: bytes) -> str:
    from msigvault.regtest.blocks import parse_tx

    return parse_tx(raw).txid


def test_a_replacement_must_pay_for_the_descendants_it_evicts(node):
    coin = fresh_coin(node)
    a = ok(node, "sendrawtransaction", spend([coin], 200).hex())
    child = spend([Out(a, 0, coin.amount - 200)], 5_000)
    ok(node, "sendrawtransaction", child.hex())
    bump = spend([coin], 2_000, to=SINK)  # a higher rate than a, less than a + child's fees
    message = rejected(node, bump)
    assert message == (f"insufficient fee, rejecting replacement {same_txid(bump)}, less fees than conflicting "
                       "txs; 0.00002 < 0.000052")
    assert a in mempool(node)


def test_a_replacement_must_pay_for_its_own_relay(node):
    coin = fresh_coin(node)
    ok(node, "sendrawtransaction", spend([coin], 500).hex())
    size = vsize_of(spend([coin], 500, to=SINK))
    short = spend([coin], 500 + size - 1, to=SINK)
    assert rejected(node, short) == (f"insufficient fee, rejecting replacement {same_txid(short)}, not enough "
                                     f"additional fees to relay; {_money(size - 1)} < {_money(size)}")
    enough = spend([coin], 500 + size, to=SINK)
    assert ok(node, "sendrawtransaction", enough.hex()) == same_txid(enough)


def _money(sats: int) -> str:
    whole, frac = divmod(sats, 100_000_000)
    return f"{whole}.{f'{frac:08d}'.rstrip('0').ljust(2, '0')}"


def test_a_replacement_may_not_add_unconfirmed_inputs_or_spend_what_it_replaces(node):
    coin, other = fresh_coin(node), fresh_coin(node)
    a = ok(node, "sendrawtransaction", spend([coin], 500).hex())
    d = ok(node, "sendrawtransaction", spend([other], 500).hex())
    adds = spend([coin, Out(d, 0, other.amount - 500)], 5_000, to=SINK)
    assert rejected(node, adds) == f"replacement-adds-unconfirmed, replacement {same_txid(adds)} adds unconfirmed input, idx 1"
    own = spend([coin, Out(a, 0, coin.amount - 500)], 5_000, to=SINK)
    assert rejected(node, own) == f"bad-txns-spends-conflicting-tx, {same_txid(own)} spends conflicting transaction {a}"
    assert {a, d} <= mempool(node)


def test_at_most_100_transactions_are_evicted(node):
    coin = fresh_coin(node)
    fanout = spend_anyone_can_spend([coin], [(OP_TRUE, 10_000)] * 101 + [(OP_TRUE, coin.amount - 1_020_000)])
    root = ok(node, "sendrawtransaction", fanout.hex())
    for n in range(101):
        ok(node, "sendrawtransaction", spend([Out(root, n, 10_000)], 300).hex())
    bump = spend([coin], 500_000, to=SINK)
    assert rejected(node, bump) == (f"too many potential replacements, rejecting replacement {same_txid(bump)}; "
                                    "too many potential replacements (102 > 100)")
    assert root in mempool(node)


def test_without_full_rbf_only_signaling_transactions_are_replaced(node):
    coin, signaling = fresh_coin(node), fresh_coin(node)
    with node.state.lock:
        node.state.full_rbf = False
    try:
        a = ok(node, "sendrawtransaction", spend([coin], 500).hex())
        assert ok(node, "getmempoolentry", a)["bip125-replaceable"] is False
        bump = spend([coin], 5_000, to=SINK)
        assert rejected(node, bump) == "txn-mempool-conflict"
        s = ok(node, "sendrawtransaction", spend([signaling], 500, sequence=MAX_BIP125_RBF_SEQUENCE).hex())
        assert ok(node, "getmempoolentry", s)["bip125-replaceable"] is True
        b = ok(node, "sendrawtransaction", spend([signaling], 5_000, to=SINK).hex())
        assert b in mempool(node) and s not in mempool(node) and a in mempool(node)
    finally:
        with node.state.lock:
            node.state.full_rbf = True


def test_a_block_with_a_conflicting_spend_drops_the_original_and_its_descendants(node):
    coin = fresh_coin(node)
    a = ok(node, "sendrawtransaction", spend([coin], 500).hex())
    c = ok(node, "sendrawtransaction", spend([Out(a, 0, coin.amount - 500)], 500).hex())
    other = spend([coin], 300, to=SINK)  # mined straight into a block, never through this mempool
    with node.state.lock:
        node.chain.submit([other])
    pool = mempool(node)
    assert a not in pool and c not in pool
    assert ok(node, "getrawtransaction", same_txid(other), True)["confirmations"] == 1
