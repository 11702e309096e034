"""BIP322's official vectors (tests/vectors/bip322.json): message hashes, to_spend/to_sign
txids, and simple/full signatures by single keys and multisig scripts, verified with
libbitcoinkernel; the error vectors must be refused with BIP322's reason."""

import hashlib
import json
from pathlib import Path

import pytest

from msigvault.address import script_from_address
from msigvault.network import Network
from msigvault.psbt import bip322 as B
from msigvault.reserves import bip322 as R
from msigvault.reserves.errors import ProofError, ProofInvalid

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "bip322.json").read_text())
NET = Network.MAINNET


def _dsha(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def test_the_vector_file_has_every_section():
    assert "bitcoin/bips" in VECTORS["source"]
    counts = {k: len(VECTORS[k]) for k in ("tx_hashes", "simple", "full", "error")}
    assert counts == {"tx_hashes": 3, "simple": 8, "full": 7, "error": 11}


@pytest.mark.parametrize("v", VECTORS["tx_hashes"], ids=lambda v: repr(v["message"][:12]))
def test_message_hash_and_virtual_transactions(v):
    msg = v["message"].encode("utf-8")
    assert B.message_hash(msg).hex() == v["message_hash"]
    spk = script_from_address(v["address"], NET)
    txid = B.to_spend_txid(spk, msg)
    assert txid[::-1].hex() == v["to_spend_tx_hash"]
    assert _dsha(B.to_spend(spk, msg)) == txid
    assert _dsha(B.to_sign(txid))[::-1].hex() == v["to_sign_tx_hash"]


def _signed(section):
    return [(v, s) for v in VECTORS[section] for s in v["bip322_signatures"]]


@pytest.mark.parametrize("v,sig", _signed("simple"), ids=lambda x: x["type"] if isinstance(x, dict) else "")
def test_simple_signatures_verify(v, sig):
    r = R.verify(v["message"], v["address"], sig, NET)
    assert (r.format, r.locktime, r.sequence, r.address) == ("simple", 0, 0, v["address"])


@pytest.mark.parametrize("v,sig", _signed("full"), ids=lambda x: x["type"] if isinstance(x, dict) else "")
def test_full_signatures_verify_with_their_timelocks(v, sig):
    r = R.verify(v["message"], v["address"], sig, NET)
    assert (r.format, r.locktime, r.sequence) == ("full", v["lock_time"], v["sequence"])


@pytest.mark.parametrize("v,sig", _signed("simple") + _signed("full"), ids=lambda x: x["type"] if isinstance(x, dict) else "")
def test_a_signature_proves_nothing_for_another_message(v, sig):
    with pytest.raises(ProofInvalid, match="invalid signature"):
        R.verify(v["message"] + " (edited)", v["address"], sig, NET)


@pytest.mark.parametrize("v", VECTORS["error"], ids=lambda v: v["description"][:40])
def test_error_vectors_are_refused_with_the_bips_reason(v):
    with pytest.raises(ProofError) as e:
        R.verify(v["message"], v["address"], v["signature"], NET)
    assert v["error_substr"] in str(e.value)


def test_our_p2wpkh_signer_reproduces_the_bips_signature():
    """The health check signs single-key BIP322 with the same primitives (low-R, RFC6979)."""
    from embit.ec import PrivateKey

    from msigvault.reserves.health import sign_p2wpkh_simple

    for v in VECTORS["simple"][:2]:
        secret = PrivateKey.from_wif(v["private_keys"][0]).secret
        assert sign_p2wpkh_simple(secret, v["message"]) == v["bip322_signatures"][0]
