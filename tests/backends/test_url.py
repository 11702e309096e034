"""--backend URLs: every form parses to the right backend; mistakes are clear errors."""

import pytest

from msigvault.backends import BackendNetworkMismatch, BackendUrlError, open_backend, parse_backend_url, scan_vault
from msigvault.backends.base import BackendError, BackendUnsupported, txid_of
from msigvault.backends.regtest import RegtestBackend
from msigvault.regtest import RegtestChain
from msigvault.regtest.chain import spend_anyone_can_spend


@pytest.mark.parametrize("url,kind,target,options", [
    ("core+http://u:p@127.0.0.1:18443", "core", "http://u:p@127.0.0.1:18443", {}),
    ("core+https://node.example:8332/?wallet=w&cookie=/d/.cookie", "core", "https://node.example:8332/",
     {"wallet": "w", "cookie": "/d/.cookie"}),
    ("esplora+https://host.example/api?concurrency=4&timeout=3", "esplora", "https://host.example/api",
     {"concurrency": "4", "timeout": "3"}),
    ("regtest:chain/", "regtest", "chain/", {}),
    ("bitcoinlib:blockstream", "bitcoinlib", "blockstream", {}),
    ("electrum+ssl://host.example:50002", "electrum", "ssl://host.example:50002", {}),
])
def test_url_forms(url, kind, target, options):
    spec = parse_backend_url(url)
    assert (spec.kind, spec.target, dict(spec.options)) == (kind, target, options)


@pytest.mark.parametrize("url,words", [
    ("", "give a backend URL"),
    ("http://127.0.0.1:18443", "is not a backend URL"),
    ("core+ftp://127.0.0.1", "core URLs start with core+http:// or core+https://"),
    ("core+http://127.0.0.1:99999", "invalid port"),
    ("core+http://127.0.0.1:18443?walet=x", "unknown option 'walet'"),
    ("esplora+http://127.0.0.1:3002?timeout=soon", "must be a number"),
    ("regtest:", "needs a directory"),
    ("electrum+tcp://127.0.0.1:50001/x", "has no path"),
    ("electrum+tcp://127.0.0.1:50001?fingerprint=ab", "needs electrum+ssl://"),
    ("electrum+ssl://127.0.0.1:50002?pin=ab", "unknown option 'pin'"),
])
def test_url_mistakes(url, words):
    with pytest.raises((BackendUrlError, BackendUnsupported)) as e:
        open_backend(url, "regtest")
    assert words in str(e.value)


def test_passwords_are_redacted_in_the_spec_repr():
    assert "secret" not in repr(parse_backend_url("core+http://u:secret@127.0.0.1:1"))


def test_regtest_dir_backend_scans_and_broadcasts_by_mining(tmp_path, hx):
    vault, _holders = hx.make_vault()
    with RegtestChain(datadir=tmp_path / "chain") as chain:
        [coin] = chain.fund(vault.address(4), [90_000])
        source = hx.wallet_coin(chain)
    with open_backend(f"regtest:{tmp_path / 'chain'}", "regtest") as backend:
        assert isinstance(backend, RegtestBackend)
        result = scan_vault(vault, backend)
        assert [(u.utxo.outpoint, u.utxo.index) for u in result.utxos] == [(coin.outpoint, 4)]
        height = backend.tip().height
        raw = spend_anyone_can_spend([source], [(vault.derive(6).script_pubkey, 50_000),
                                                (source.script_pubkey, source.amount - 60_000)])
        assert backend.broadcast(raw) == txid_of(raw)
        assert backend.tip().height == height + 1  # mined at once
        assert scan_vault(vault, backend).balance.confirmed == 140_000
    with pytest.raises(BackendNetworkMismatch):
        open_backend(f"regtest:{tmp_path / 'chain'}", "mainnet")
    with pytest.raises(BackendError, match="is not a regtest chain directory"):
        open_backend(f"regtest:{tmp_path / 'nochain'}", "regtest")
