"""Official BIP vectors (tests/vectors/*.json, sources named in each file and in its README)."""

import json
from pathlib import Path

import pytest
from embit import ec

from msigvault.errors import ChecksumError, InvalidDescriptor, InvalidKey, MsigvaultError, PolicyError
from msigvault.keys import ExtendedKey, parse_path, root_from_seed
from msigvault.keys.keyexpr import parse_key_expression
from msigvault.network import Network
from msigvault.policy import add_checksum, descriptor_checksum, split_checksum
from msigvault.policy.descriptor import expand_multipath, parse_multi_args
from msigvault.policy.vault import check_limits
from msigvault.script import multisig_script, p2sh_script_pubkey, p2wsh_script_pubkey
from msigvault.address import address_from_script

VECTORS = Path(__file__).parent / "vectors"


def load(name):
    path = VECTORS / name
    assert path.exists(), f"missing vector file {path}: the vectors are part of the repository"
    return json.loads(path.read_text())


# -- BIP32 -------------------------------------------------------------------------------------

BIP32 = load("bip32.json")


@pytest.mark.parametrize("vector", BIP32["vectors"], ids=lambda v: f"vector{v['vector']}")
def test_bip32_derivation(vector):
    root = root_from_seed(bytes.fromhex(vector["seed_hex"]), Network.MAINNET)
    for chain in vector["chains"]:
        key = root.derive(parse_path(chain["path"]))
        assert key.to_base58() == chain["xprv"], chain["path"]
        assert key.neuter().to_base58() == chain["xpub"], chain["path"]
        # and parsing gives back the same keys
        assert ExtendedKey.parse(chain["xprv"]) == key
        assert ExtendedKey.parse(chain["xpub"]).public_key == key.public_key
    # public derivation of the unhardened steps agrees with private derivation
    for chain, nxt in zip(vector["chains"], vector["chains"][1:]):
        step = parse_path(nxt["path"])[-1]
        if step < 0x80000000:
            assert ExtendedKey.parse(chain["xpub"]).child(step).to_base58() == nxt["xpub"]


@pytest.mark.parametrize("case", BIP32["vector_5"]["invalid_keys"], ids=lambda c: c["reason"])
def test_bip32_vector5_invalid_keys(case):
    with pytest.raises(InvalidKey) as e:
        ExtendedKey.parse(case["key"])
    assert case["key"] not in str(e.value)  # never echo a (possibly private) key


# -- BIP67 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("vector", load("bip67.json")["vectors"], ids=lambda v: v["title"])
def test_bip67_sorted_multisig(vector):
    keys = [bytes.fromhex(k) for k in vector["pubkeys"]]
    assert [k.hex() for k in sorted(keys)] == vector["sorted"]
    script = multisig_script(2, sorted(keys))
    assert script.hex() == vector["script"]
    assert address_from_script(p2sh_script_pubkey(script), Network.MAINNET) == vector["address"]


# -- BIP380 ------------------------------------------------------------------------------------

BIP380 = load("bip380.json")


@pytest.mark.parametrize("case", BIP380["checksum_vectors"], ids=lambda c: c["label"])
def test_bip380_checksums(case):
    text = case["descriptor"]
    if case["expected"] == "valid":
        desc, checksum = split_checksum(text)
        assert add_checksum(desc) == text and descriptor_checksum(desc) == checksum
    elif case["expected"] == "valid_without_checksum":
        assert split_checksum(text, require=False) == (text, None)
        with pytest.raises(ChecksumError):
            split_checksum(text)
    else:
        with pytest.raises(InvalidDescriptor):
            split_checksum(text)


@pytest.mark.parametrize("case", BIP380["key_expressions"]["valid"], ids=lambda c: c["label"])
def test_bip380_valid_key_expressions(case):
    expr = parse_key_expression(case["expression"])
    if expr.kind in ("xpub", "xprv"):
        key = ExtendedKey.parse(expr.key)
        assert key.is_private == (expr.kind == "xprv")


@pytest.mark.parametrize("case", BIP380["key_expressions"]["invalid"], ids=lambda c: c["reason"])
def test_bip380_invalid_key_expressions(case):
    with pytest.raises(InvalidKey):
        expr = parse_key_expression(case["expression"])
        if expr.kind in ("xpub", "xprv"):
            ExtendedKey.parse(expr.key)


# -- BIP383 ------------------------------------------------------------------------------------

def _pubkey(expr, index):
    if expr.kind == "pubkey":
        return bytes.fromhex(expr.key)
    if expr.kind == "wif":
        return ec.PrivateKey.from_wif(expr.key).get_public_key().sec()
    child = {None: (), "*": (index,), "*h": (index + 0x80000000,)}[expr.wildcard]
    key = ExtendedKey.parse(expr.key).derive(expr.steps + child)
    return key.public_key


def _bip383_scripts(descriptor, index):
    wrappers = []
    text = descriptor
    for w in ("sh", "wsh"):
        if text.startswith(w + "("):
            wrappers.append(w)
            text = text[len(w) + 1:-1]
    name, m, key_texts = parse_multi_args(text, ("sortedmulti", "multi"))
    keys = [_pubkey(parse_key_expression(k), index) for k in key_texts]
    script = multisig_script(m, sorted(keys) if name == "sortedmulti" else keys)
    for w in reversed(wrappers):
        script = p2wsh_script_pubkey(script) if w == "wsh" else p2sh_script_pubkey(script)
    return script


@pytest.mark.parametrize("case", load("bip383.json")["valid"], ids=lambda c: c["descriptor"][:40])
def test_bip383_multisig_scripts(case):
    indexes = case.get("script_indexes") or [0] * len(case["scripts"])
    for index, expected in zip(indexes, case["scripts"]):
        assert _bip383_scripts(case["descriptor"], index).hex() == expected


@pytest.mark.parametrize("case", load("bip383.json")["invalid"], ids=lambda c: c["reason"])
def test_bip383_invalid(case):
    text = case["descriptor"]
    script = "sh" if text.startswith("sh(multi") else "wsh" if text.startswith("wsh(") else "bare"
    with pytest.raises((PolicyError, InvalidDescriptor)):
        inner = text[3:-1] if script == "sh" else text
        _, m, keys = parse_multi_args(inner, ("sortedmulti", "multi"))
        check_limits(m, len(keys), "sh" if script == "sh" else "wsh")


# -- BIP389 ------------------------------------------------------------------------------------

BIP389 = load("bip389.json")


@pytest.mark.parametrize("case", BIP389["valid"], ids=lambda c: c["multipath_descriptor"][:30])
def test_bip389_expansions(case):
    text = case["multipath_descriptor"]
    if text.count("(") > text.count(")"):
        text += ")"  # the BIP's own typo (see the file's notes): its expansions close the paren
    assert expand_multipath(text) == case["expansions"]


@pytest.mark.parametrize("case", BIP389["invalid"], ids=lambda c: c["reason"])
def test_bip389_invalid(case):
    with pytest.raises(MsigvaultError):
        expansions = expand_multipath(case["descriptor"])
        for e in expansions:  # a multipath inside a key origin only shows when keys are parsed
            for part in e.replace("(", ",").replace(")", ",").split(","):
                if part.startswith("[") or part[1:4] in ("pub", "prv"):
                    parse_key_expression(part)
