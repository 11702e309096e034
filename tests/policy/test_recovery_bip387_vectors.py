"""BIP387's multi_a()/sortedmulti_a() test vectors (tests/vectors/bip387.json): the tr() shapes a
vault's primary path and recovery leaves are built from give the BIP's scriptPubKeys."""

import json
from pathlib import Path

import pytest
from embit.ec import PrivateKey

from msigvault.errors import InvalidDescriptor, InvalidKey
from msigvault.keys.bip32 import ExtendedKey
from msigvault.policy.descriptors import parse_descriptor

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "bip387.json").read_text())
PUBLIC = [v for v in VECTORS["valid"] if v["public"] is not None]


def test_the_file_is_what_its_notes_say():
    assert VECTORS["source"].startswith("bitcoin/bips bip-0387.mediawiki")
    assert len(VECTORS["valid"]) == 6 and len(VECTORS["invalid"]) == 7 and len(PUBLIC) == 4


@pytest.mark.parametrize("vector", PUBLIC, ids=range(len(PUBLIC)))
def test_valid_vectors_give_the_bips_scripts(vector):
    desc = parse_descriptor(vector["public"])
    for index, script in enumerate(vector["scripts"]):
        assert desc.script_pubkey(index).hex() == script
    assert desc.is_range == (len(vector["scripts"]) > 1)


def test_public_forms_are_the_bips_keys():
    """Each xpub put in place of a BIP xprv is that xprv's public key (and chain code); the WIF
    vector's keys are the hex keys of the next vector."""
    for vector in PUBLIC:
        bip, pub = vector["bip_descriptor"], vector["public"]
        for word_bip, word_pub in zip(bip.replace(")", ",").split(","), pub.replace(")", ",").split(",")):
            if "xprv" in word_bip:
                prv = ExtendedKey.parse(word_bip[word_bip.index("xprv"):].split("/")[0])
                xpub = ExtendedKey.parse(word_pub[word_pub.index("xpub"):].split("/")[0])
                assert prv.neuter().public_key == xpub.public_key and prv.chain_code == xpub.chain_code
            else:
                assert word_bip == word_pub
    wif, hexed = VECTORS["valid"][0]["bip_descriptor"], VECTORS["valid"][1]["public"]
    keys = [PrivateKey.from_wif(w).get_public_key().xonly().hex()
            for w in (wif[3:wif.index(",")], wif[wif.index("(1,") + 3:wif.index("))")])]
    assert hexed == f"tr({keys[0]},multi_a(1,{keys[1]}))"
    assert VECTORS["valid"][0]["scripts"] == VECTORS["valid"][1]["scripts"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["reason"])
def test_invalid_vectors_are_refused(vector):
    """(The last one holds private keys, which the watch-only parser refuses before the threshold.)"""
    with pytest.raises((InvalidDescriptor, InvalidKey)) as e:
        parse_descriptor(vector["descriptor"])
    if vector["reason"] == "Uncompressed pubkey":
        assert "Uncompressed" in str(e.value)
