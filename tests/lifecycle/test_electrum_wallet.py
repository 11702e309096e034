"""An unencrypted Electrum wallet file as a seized source: Electrum 4.0.1's own test wallet
(tests/vectors/intake, from spesmilo/electrum; see tests/vectors/README.md). The watch file
intake prepares from it derives exactly the receive and change addresses Electrum lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msigvault.address import address_from_script
from msigvault.lifecycle.discover import Deriver, watch_document, watch_groups
from msigvault.lifecycle.errors import SourceError
from msigvault.lifecycle.secrets import Secret
from msigvault.lifecycle.sources import SourceKind, parse_source
from msigvault.network import Network

WALLET = Path(__file__).resolve().parents[1] / "vectors" / "intake" / "electrum_4_0_1_standard_segwit_wallet.json"


def test_the_vector_is_the_stored_file():
    import subprocess

    blob = subprocess.run(["git", "hash-object", str(WALLET)], capture_output=True, text=True, check=True).stdout
    assert blob.strip() == "1a4b6438caa7bdbbad7aa63f25172443e5272abc" and len(WALLET.read_text()) == 5724


def test_a_standard_segwit_wallet_gives_electrums_own_addresses():
    data = WALLET.read_bytes()
    expected = json.loads(data)["addresses"]
    with parse_source(Secret(data), Network.MAINNET) as source:
        assert source.kind == SourceKind.XPRV and "Electrum standard wallet" in source.summary
        (group,) = watch_groups(source)
        watch = watch_document(source, [group], created="t")
    assert group.id == "account/p2wpkh"
    d = Deriver(group)
    net = Network.MAINNET
    assert [address_from_script(d.script(0, i), net) for i in range(20)] == expected["receiving"]
    assert [address_from_script(d.script(1, i), net) for i in range(10)] == expected["change"]
    keystore = json.loads(data)["keystore"]
    assert keystore["xprv"].encode() not in watch and keystore["seed"].encode() not in watch


def _wallet(**changes) -> bytes:
    obj = json.loads(WALLET.read_bytes())
    obj.update(changes)
    return json.dumps(obj).encode()


@pytest.mark.parametrize("changes,why", [
    ({"use_encryption": True}, "encrypted"),
    ({"wallet_type": "2of3"}, "not read"),
    ({"keystore": {"type": "bip32", "xpub": "zpub..."}}, "no unencrypted xprv"),
    ({"keystore": {"type": "imported", "keypairs": {}}}, "no keys"),
])
def test_encrypted_multisig_and_watch_only_wallets_are_refused(changes, why):
    if changes.get("keystore", {}).get("type") == "imported":
        changes["wallet_type"] = "imported"
    with pytest.raises(SourceError, match=why) as e:
        parse_source(Secret(_wallet(**changes)), Network.MAINNET)
    assert "zprvAYqz" not in str(e.value)


def test_an_imported_wallet_gives_its_keys():
    from embit import base58

    wif = base58.encode_check(b"\xef" + bytes(31) + b"\x07" + b"\x01")
    data = json.dumps({"wallet_type": "imported", "use_encryption": False, "seed_version": 31,
                       "keystore": {"type": "imported", "keypairs": {"02" + "00" * 32: f"p2wpkh:{wif}"}}}).encode()
    with parse_source(Secret(data), "regtest") as source:
        assert source.kind == SourceKind.WIF and len(source.keys) == 1
        assert "wif0/p2wpkh" in [g.id for g in watch_groups(source)]
