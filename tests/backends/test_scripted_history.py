"""Every backend, on the same scripted history, gives the balance and UTXOs RegtestChain has.

The node (msigvault regtest serve's engine) is the server; each backend talks to it over
loopback the way it talks to a real Core, Esplora or bitcoinlib provider.
"""

import httpx
import pytest

from msigvault.backends import BroadcastRejected, TxNotFound, open_backend, scan_vault
from msigvault.backends.base import txid_of
from msigvault.backends.bitcoinlib_service import BitcoinlibBackend
from msigvault.backends.core import CoreBackend
from msigvault.backends.esplora import EsploraBackend
from msigvault.backends.regtest import RegtestBackend
from msigvault.regtest.chain import spend_anyone_can_spend


BACKENDS = ["core", "core-wallet", "esplora", "regtest", "bitcoinlib-bitcoind", "bitcoinlib-esplora"]
HISTORY_BACKENDS = [b for b in BACKENDS if b != "core"]


def open_named(name, node, vault, hx=None):
    if name == "core":
        return CoreBackend(node.rpc_url, "regtest")
    if name == "core-wallet":
        return CoreBackend(node.rpc_url, "regtest", wallet="vault")
    if name == "esplora":
        return EsploraBackend(node.esplora_url, "regtest")
    if name == "regtest":
        return RegtestBackend(node.chain, state=node.state)
    hx.write_bitcoinlib_providers(node)
    if name == "bitcoinlib-bitcoind":
        # bitcoinlib's bitcoind client reads UTXOs through a wallet: import the vault first
        with CoreBackend(node.rpc_url, "regtest", wallet="vault") as core:
            core.watch(vault.descriptors(), 100)
        return BitcoinlibBackend("msigvault-node.bitcoind", "regtest")
    return BitcoinlibBackend("msigvault-node.esplora", "regtest")


@pytest.fixture(scope="module")
def expected(history, hx):
    """What RegtestChain itself holds for the vault (confirmed only: it has no mempool)."""
    node, vault, _holders, facts = history
    scripts = hx.vault_scripts(vault)
    with node.state.lock:
        coins = node.chain.utxos_for_scripts(scripts)
        tip = (node.chain.height, node.chain.tip)
    confirmed = {(u.outpoint, u.amount) + scripts[u.script_pubkey] for u in coins}
    pay_txid = facts["payment_txid"]
    unconfirmed = {(f"{pay_txid}:0", hx.UNCONFIRMED_AMOUNT, 0, hx.UNCONFIRMED_INDEX)}
    return confirmed, unconfirmed, tip


def test_the_scripted_history_is_what_regtestchain_holds(hx, history, expected):
    confirmed, _unconfirmed, _tip = expected
    funded = {(0, i, a) for i, a in hx.RECEIVE_FUNDED.items() if i != hx.SPENT_INDEX}
    funded |= {(1, i, a) for i, a in hx.CHANGE_FUNDED.items()}
    assert {(b, i, a) for _o, a, b, i in confirmed} - funded == {
        (1, hx.SPEND_CHANGE_INDEX, next(a for _o, a, b, i in confirmed if (b, i) == (1, hx.SPEND_CHANGE_INDEX)))}
    assert funded <= {(b, i, a) for _o, a, b, i in confirmed}


@pytest.mark.parametrize("name", BACKENDS)
def test_scan_gives_regtestchains_balance_and_utxos(hx, history, expected, name):
    node, vault, _holders, _facts = history
    confirmed, unconfirmed, (height, tip) = expected
    with open_named(name, node, vault, hx) as backend:
        backend.check_network()
        assert (backend.tip().height, backend.tip().hash) == (height, tip)
        result = scan_vault(vault, backend)
    got = {(u.utxo.outpoint, u.utxo.amount, u.utxo.branch, u.utxo.index): u for u in result.utxos}
    assert {k for k, u in got.items() if u.height is not None} == confirmed
    assert {k for k, u in got.items() if u.height is None} == unconfirmed
    assert result.balance.confirmed == sum(a for _o, a, _b, _i in confirmed)
    assert result.balance.unconfirmed == hx.UNCONFIRMED_AMOUNT
    for u in result.utxos:  # every previous transaction fetched and checked against its txid
        assert txid_of(u.utxo.prev_tx) == u.utxo.txid
        assert u.confirmations == (0 if u.height is None else height - u.height + 1)
    receive = {i for b, i in result.used if b == 0}
    change = {i for b, i in result.used if b == 1}
    assert result.next_receive_index == 36 and result.change_high_water == hx.SPEND_CHANGE_INDEX
    if backend.has_history:
        assert receive == set(hx.RECEIVE_FUNDED) | {hx.UNCONFIRMED_INDEX}
        assert change == set(hx.CHANGE_FUNDED) | {hx.SPEND_CHANGE_INDEX}
    else:  # wallet-less Core sees only addresses that hold coins now
        assert receive == (set(hx.RECEIVE_FUNDED) - {hx.SPENT_INDEX}) | {hx.UNCONFIRMED_INDEX}
        assert not result.history_known and result.history == ()


@pytest.mark.parametrize("name", HISTORY_BACKENDS)
def test_history_has_the_spend_and_the_unconfirmed_payment(hx, history, name):
    node, vault, _holders, facts = history
    with open_named(name, node, vault, hx) as backend:
        result = scan_vault(vault, backend, fetch_prev_txs=False)
    by_txid = {t.txid: t for t in result.history}
    spend = by_txid[facts["spend"].txid]
    assert spend.height is not None and spend.confirmations >= 1
    touches = {(0, hx.SPENT_INDEX), (1, hx.SPEND_CHANGE_INDEX)}
    if name == "bitcoinlib-bitcoind":
        # bitcoinlib's bitcoind client keeps only wallet entries whose address is the one asked
        # about; Core's 'send' entries name the payee, so it never lists a spend under the
        # address spent from
        touches = {(1, hx.SPEND_CHANGE_INDEX)}
    assert set(spend.touches) == touches
    payment = by_txid[facts["payment_txid"]]
    assert payment.height is None and payment.confirmations == 0
    assert len(by_txid) == len(hx.RECEIVE_FUNDED) + len(hx.CHANGE_FUNDED) + 2


@pytest.mark.parametrize("name", BACKENDS)
def test_a_double_spend_is_rejected_with_cores_reason(hx, history, name):
    node, vault, _holders, facts = history
    coin = facts["spent_coin"]
    again = spend_anyone_can_spend([coin], [(hx.PAYEE_SCRIPT, coin.amount - 5_000)])
    with open_named(name, node, vault, hx) as backend:
        with pytest.raises(BroadcastRejected) as e:
            backend.broadcast(again)
    text = str(e.value)
    assert "missing-inputs" in text if name == "regtest" else "Inputs missing or spent" in text
    assert txid_of(again) in text and "nothing was broadcast" in text


@pytest.mark.parametrize("name", ["core", "esplora", "regtest"])
def test_a_fee_below_the_relay_minimum_is_rejected_with_cores_words(hx, history, name):
    node, vault, _holders, _facts = history
    with node.state.lock:
        source = hx.wallet_coin(node.chain, skip=1)
    cheap = spend_anyone_can_spend([source], [(hx.PAYEE_SCRIPT, source.amount - 10)])
    with open_named(name, node, vault, hx) as backend:
        with pytest.raises(BroadcastRejected) as e:
            backend.broadcast(cheap)
        assert e.value.reason.startswith("min relay fee not met, 10 < ")
        if name == "core":
            assert e.value.rpc_code == -26
        if name in ("core", "regtest"):
            verdict = backend.test_accept(cheap)
            assert not verdict.allowed and "min relay fee not met" in verdict.reason
    with node.state.lock:
        assert txid_of(cheap) not in node.state.mempool


@pytest.mark.parametrize("name", ["core", "esplora", "regtest", "bitcoinlib-esplora"])
def test_fee_estimates(hx, history, name):
    node, vault, _holders, _facts = history
    with open_named(name, node, vault, hx) as backend:
        estimates = backend.fee_estimates((1, 6))
    assert estimates.for_target(6) == pytest.approx(hx.FEE_ESTIMATE)


def test_open_backend_url_forms_reach_the_same_node(hx, history, expected):
    node, vault, _holders, _facts = history
    confirmed, _u, _t = expected
    port = node.rpc_port
    user, password = node.credentials()[0].decode().split(":", 1)
    for url in (f"core+http://{user}:{password}@127.0.0.1:{port}",
                f"core+http://{user}:{password}@127.0.0.1:{port}?wallet=vault&timeout=5",
                f"esplora+{node.esplora_url}?concurrency=4"):
        with open_backend(url, vault.network) as backend:
            result = scan_vault(vault, backend)
        assert {(u.utxo.outpoint, u.utxo.amount, u.utxo.branch, u.utxo.index)
                for u in result.utxos if u.height is not None} == confirmed


@pytest.mark.parametrize("wallet", [None, "vault-noindex"])
def test_core_without_txindex_still_fetches_every_previous_transaction(hx, history, expected, wallet):
    """Core without -txindex finds confirmed transactions only in its wallet or in a given block."""
    node, vault, _holders, facts = history
    confirmed, _unconfirmed, _tip = expected
    with node.state.lock:
        node.state.txindex = False
    try:
        with CoreBackend(node.rpc_url, "regtest", wallet=wallet) as backend:
            with pytest.raises(TxNotFound, match="-txindex"):
                CoreBackend(node.rpc_url, "regtest").get_tx(facts["spend"].txid)
            result = scan_vault(vault, backend)
    finally:
        with node.state.lock:
            node.state.txindex = True
    assert {(u.utxo.outpoint, u.utxo.amount, u.utxo.branch, u.utxo.index)
            for u in result.utxos if u.height is not None} == confirmed
    assert all(txid_of(u.utxo.prev_tx) == u.utxo.txid for u in result.utxos)


def test_core_wallet_imports_once_and_reuses_what_the_wallet_watches(history):
    """Each importdescriptors makes Core rescan: a scan imports once, a later scan not at all."""
    node, vault, _holders, _facts = history
    calls = []
    original = CoreBackend.call

    def counting(self, method, *params, **kw):
        calls.append(method)
        return original(self, method, *params, **kw)

    CoreBackend.call = counting
    try:
        for _ in range(2):
            with CoreBackend(node.rpc_url, "regtest", wallet="import-once") as backend:
                scan_vault(vault, backend)
    finally:
        CoreBackend.call = original
    assert calls.count("importdescriptors") == 1 and calls.count("listdescriptors") == 2
