"""The Electrum backend against a real ElectrumX (the e-x package) indexing the local node.

ElectrumX starts once for this module (the only one that needs it), over TCP and TLS with a
certificate made here, on the scripted history of conftest.py: the backend must give the
balance, UTXOs and history RegtestChain holds, the node's reject reasons, fee estimates, and
announce status changes of subscribed scripts.
"""

import datetime
import hashlib
import ipaddress
import json
import subprocess
import sys

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from msigvault.backends import (
    BackendError,
    BackendNetworkMismatch,
    BroadcastRejected,
    TxNotFound,
    open_backend,
    scan_vault,
)
from msigvault.backends.base import GENESIS, txid_of
from msigvault.backends.electrum import ElectrumBackend, scripthash, status_hash
from msigvault.psbt.psbt import Psbt
from msigvault.regtest.chain import spend_anyone_can_spend
from msigvault.testing.electrumx import ElectrumXServer
from msigvault.vaultfile import VaultFile

WATCHED_SCRIPT = bytes.fromhex("0014" + "22" * 20)
PAYEE = "bcrt1qzyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3lgth6c"


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files; its SHA-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = directory / "server.crt", directory / "server.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile, hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@pytest.fixture(scope="module")
def electrumx(history, tmp_path_factory):
    """(server, certfile, fingerprint): ElectrumX on the scripted history, stopped afterwards."""
    d = tmp_path_factory.mktemp("electrumx")
    certfile, keyfile, fingerprint = make_certificate(d)
    server = ElectrumXServer(history[0], d, certfile=str(certfile), keyfile=str(keyfile)).start()
    try:
        yield server, certfile, fingerprint
    finally:
        server.stop()


def tcp(electrumx, **kw):
    return ElectrumBackend("127.0.0.1", electrumx[0].tcp_port, "regtest", **kw)


@pytest.fixture(scope="module")
def expected(history, hx):
    """What RegtestChain itself holds for the vault, and the unconfirmed payment."""
    node, vault, _holders, facts = history
    scripts = hx.vault_scripts(vault)
    with node.state.lock:
        coins = node.chain.utxos_for_scripts(scripts)
        tip = (node.chain.height, node.chain.tip)
    confirmed = {(u.outpoint, u.amount) + scripts[u.script_pubkey] for u in coins}
    unconfirmed = {(f"{facts['payment_txid']}:0", hx.UNCONFIRMED_AMOUNT, 0, hx.UNCONFIRMED_INDEX)}
    return confirmed, unconfirmed, tip


def test_scan_through_electrumx_gives_regtestchains_balance_and_utxos(hx, history, electrumx, expected):
    _node, vault, _holders, _facts = history
    confirmed, unconfirmed, (height, tip) = expected
    with tcp(electrumx) as backend:
        backend.check_network()
        assert backend.server.protocol == (1, 6) and backend.server.software.startswith("ElectrumX 2")
        assert (backend.tip().height, backend.tip().hash) == (height, tip)
        result = scan_vault(vault, backend)
    got = {(u.utxo.outpoint, u.utxo.amount, u.utxo.branch, u.utxo.index): u for u in result.utxos}
    assert {k for k, u in got.items() if u.height is not None} == confirmed
    assert {k for k, u in got.items() if u.height is None} == unconfirmed
    assert result.balance.confirmed == sum(a for _o, a, _b, _i in confirmed)
    assert result.balance.unconfirmed == hx.UNCONFIRMED_AMOUNT
    for u in result.utxos:
        assert txid_of(u.utxo.prev_tx) == u.utxo.txid
        assert u.confirmations == (0 if u.height is None else height - u.height + 1)
    assert {i for b, i in result.used if b == 0} == set(hx.RECEIVE_FUNDED) | {hx.UNCONFIRMED_INDEX}
    assert {i for b, i in result.used if b == 1} == set(hx.CHANGE_FUNDED) | {hx.SPEND_CHANGE_INDEX}
    assert result.next_receive_index == 36 and result.change_high_water == hx.SPEND_CHANGE_INDEX
    # batched: discovery rounds, the UTXO list and the previous transactions, not one per script
    assert result.round_trips <= 12


def test_history_has_the_spend_and_the_unconfirmed_payment(hx, history, electrumx):
    _node, vault, _holders, facts = history
    with tcp(electrumx) as backend:
        result = scan_vault(vault, backend, fetch_prev_txs=False)
    by_txid = {t.txid: t for t in result.history}
    spend = by_txid[facts["spend"].txid]
    assert spend.height is not None and spend.confirmations >= 1
    assert set(spend.touches) == {(0, hx.SPENT_INDEX), (1, hx.SPEND_CHANGE_INDEX)}
    payment = by_txid[facts["payment_txid"]]
    assert payment.height is None and payment.confirmations == 0
    assert len(by_txid) == len(hx.RECEIVE_FUNDED) + len(hx.CHANGE_FUNDED) + 2


def test_server_balances_agree_with_the_checked_utxos(hx, history, electrumx):
    _node, vault, _holders, _facts = history
    scripts = [vault.derive(i).script_pubkey for i in (0, hx.SPENT_INDEX, hx.UNCONFIRMED_INDEX, 1)]
    with tcp(electrumx) as backend:
        balances = backend.balances(scripts)
    assert balances == {scripts[0]: (hx.RECEIVE_FUNDED[0], 0), scripts[1]: (0, 0),
                        scripts[2]: (0, hx.UNCONFIRMED_AMOUNT), scripts[3]: (0, 0)}


def test_transactions_are_fetched_in_batches_and_checked(history, electrumx):
    node, _vault, _holders, facts = history
    with node.state.lock:
        txids = [t for block in node.state.block_txids[-30:] for t in block][:30]
    with tcp(electrumx, batch_size=16) as backend:
        backend.tip()
        before = backend.round_trips
        txs = backend.get_txs(txids)
        assert backend.round_trips - before == 2  # 30 transactions, 16 to a batch
        assert all(txid_of(raw) == t for t, raw in txs.items()) and len(txs) == 30
        assert backend.get_tx(facts["payment_txid"]) == facts["payment"]
        with pytest.raises(TxNotFound, match="knows no transaction " + "ab" * 32):
            backend.get_tx("ab" * 32)


def test_a_double_spend_is_rejected_with_cores_reason(hx, history, electrumx):
    _node, _vault, _holders, facts = history
    coin = facts["spent_coin"]
    again = spend_anyone_can_spend([coin], [(hx.PAYEE_SCRIPT, coin.amount - 5_000)])
    with tcp(electrumx) as backend:
        with pytest.raises(BroadcastRejected) as e:
            backend.broadcast(again)
    assert e.value.reason == "Inputs missing or spent"
    assert txid_of(again) in str(e.value) and "nothing was broadcast" in str(e.value)
    assert again.hex() not in str(e.value)  # ElectrumX echoes the raw transaction: left out


def test_a_fee_below_the_relay_minimum_is_rejected_with_cores_words(hx, history, electrumx):
    node, _vault, _holders, _facts = history
    with node.state.lock:
        source = hx.wallet_coin(node.chain, skip=1)
    cheap = spend_anyone_can_spend([source], [(hx.PAYEE_SCRIPT, source.amount - 10)])
    with tcp(electrumx) as backend:
        with pytest.raises(BroadcastRejected) as e:
            backend.broadcast(cheap)
    assert e.value.reason.startswith("min relay fee not met, 10 < ")
    with node.state.lock:
        assert txid_of(cheap) not in node.state.mempool


def test_fee_estimates(hx, electrumx):
    with tcp(electrumx) as backend:
        estimates = backend.fee_estimates((1, 6))
    assert estimates.for_target(6) == pytest.approx(hx.FEE_ESTIMATE)
    assert estimates.for_target(1) == pytest.approx(hx.FEE_ESTIMATE)


def test_tls_with_the_ca_file_or_the_pinned_fingerprint(history, electrumx, expected):
    server, certfile, fingerprint = electrumx
    _node, vault, _holders, _facts = history
    confirmed, _u, (height, _tip) = expected
    for url in (f"electrum+ssl://127.0.0.1:{server.ssl_port}?ca={certfile}",
                f"electrum+ssl://127.0.0.1:{server.ssl_port}?fingerprint={fingerprint}",
                f"electrum+tcp://127.0.0.1:{server.tcp_port}?timeout=5&retries=1&batch=200"):
        with open_backend(url, vault.network) as backend:
            assert backend.tip().height == height
            result = scan_vault(vault, backend)
        assert {(u.utxo.outpoint, u.utxo.amount, u.utxo.branch, u.utxo.index)
                for u in result.utxos if u.height is not None} == confirmed


def test_tls_refuses_a_wrong_fingerprint_and_an_untrusted_certificate(history, electrumx):
    server, _certfile, fingerprint = electrumx
    wrong = ("00" if fingerprint[:2] != "00" else "11") + fingerprint[2:]
    with pytest.raises(BackendError, match="not the pinned one") as e:
        open_backend(f"electrum+ssl://127.0.0.1:{server.ssl_port}?fingerprint={wrong}", "regtest")
    assert fingerprint in str(e.value)  # says what the server showed, so it can be checked
    with pytest.raises(BackendError, match="certificate is not trusted"):
        open_backend(f"electrum+ssl://127.0.0.1:{server.ssl_port}?timeout=5", "regtest")
    with pytest.raises(BackendError, match="not a SHA-256 certificate fingerprint"):
        open_backend(f"electrum+ssl://127.0.0.1:{server.ssl_port}?fingerprint=abc", "regtest")
    with pytest.raises(BackendError, match="TLS failed"):  # a TLS client on the plain port
        open_backend(f"electrum+ssl://127.0.0.1:{server.tcp_port}?fingerprint={fingerprint}&retries=0&timeout=3",
                     "regtest")


def test_a_regtest_server_is_refused_for_a_mainnet_vault(history, electrumx):
    _node, vault, _holders, _facts = history
    with tcp(electrumx) as backend:
        assert backend.genesis_hash() == GENESIS["regtest"]
    with pytest.raises(BackendNetworkMismatch, match="serves regtest, but the vault is for mainnet"):
        open_backend(f"electrum+tcp://127.0.0.1:{electrumx[0].tcp_port}", "mainnet")


def test_a_subscribed_script_announces_a_payment(hx, history, electrumx):
    node, _vault, _holders, _facts = history
    with tcp(electrumx) as backend:
        assert backend.subscribe([WATCHED_SCRIPT]) == {WATCHED_SCRIPT: None}
        assert backend.poll_status() == {}
        with node.state.lock:
            source = hx.wallet_coin(node.chain, skip=2)
        pay = spend_anyone_can_spend([source], [(WATCHED_SCRIPT, 30_000),
                                                (source.script_pubkey, source.amount - 40_000)])
        with httpx.Client() as client:
            status, reply = hx.rpc(client, node, "sendrawtransaction", pay.hex())
        assert status == 200, reply
        announced = backend.poll_status(wait=10)
        assert announced == {WATCHED_SCRIPT: status_hash([(txid_of(pay), 0)])}
        # the status is the one the server's own history gives
        rows = backend.call("blockchain.scripthash.get_history", scripthash(WATCHED_SCRIPT))
        assert status_hash([(r["tx_hash"], r["height"]) for r in rows]) == announced[WATCHED_SCRIPT]
        assert backend.utxos([WATCHED_SCRIPT])[0].amount == 30_000


def test_cli_against_electrumx(history, electrumx, tmp_path, hx):
    """vault balance|utxos|history|scan, psbt create --backend and broadcast --backend; then a
    block confirms the spend and ElectrumX reports it."""
    node, vault, holders, _facts = history
    server = electrumx[0]
    url = f"electrum+tcp://127.0.0.1:{server.tcp_port}"
    VaultFile(vault, "backends").save(tmp_path / "vault.json")

    def cli(*args, as_json=True):
        proc = subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if as_json else proc.stdout

    with tcp(electrumx) as backend:
        before = scan_vault(vault, backend, fetch_prev_txs=False)
    balance = cli("vault", "balance", "vault.json", "--backend", url, "--json")
    assert (balance["confirmed"], balance["unconfirmed"]) == (before.balance.confirmed, before.balance.unconfirmed)
    utxos = cli("vault", "utxos", "vault.json", "--backend", url, "--json")
    assert {(u["txid"], u["vout"]) for u in utxos} == {(u.utxo.txid, u.utxo.vout) for u in before.utxos}
    assert len(cli("vault", "history", "vault.json", "--backend", url, "--json")) == len(before.history)
    assert cli("vault", "scan", "vault.json", "--backend", url, "--json")["next_receive_index"] == 36
    cli("psbt", "create", "vault.json", "--backend", url, "--to", f"{PAYEE}:150000", "--fee-rate", "2",
        "-o", "spend.psbt", as_json=False)
    psbt = Psbt.load((tmp_path / "spend.psbt").read_bytes())
    parts = [vault.sign(psbt, h.root)[0] for h in holders[:2]]
    (tmp_path / "final.psbt").write_bytes(vault.finalize(vault.combine(parts)).serialize())
    sent = cli("broadcast", "vault.json", "final.psbt", "--backend", url, "--json")
    with node.state.lock:
        assert sent["txid"] in node.state.mempool
    with httpx.Client() as client:
        status, reply = hx.rpc(client, node, "generatetoaddress", 1, node.chain.wallet_address)
    assert status == 200
    server.wait_synced()
    with tcp(electrumx) as backend:
        assert backend.tip().height == node.chain.height
        after = scan_vault(vault, backend)
        assert sent["txid"] in {t.txid for t in after.history if t.height == node.chain.height}
    assert after.balance.unconfirmed == 0
    spent_total = before.balance.total - after.balance.total
    assert 150_000 < spent_total < 152_000  # the payment and its fee

