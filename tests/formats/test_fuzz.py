"""Whatever bytes or text reach import_vault, the only exceptions are MsigvaultError subclasses.

Inputs: random bytes and text, random JSON, and real sample files (tests/vectors/formats) with
random edits: characters replaced, inserted and deleted, lines dropped, swapped and duplicated,
truncation. The sample run is reproducible (derandomized in CI); run with
HYPOTHESIS_PROFILE=deep for a longer search.
"""

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from msigvault.errors import MsigvaultError
from msigvault.formats import (
    FORMATS,
    detect_format,
    import_cosigner,
    import_vault,
    verify_bsms_key_record,
)
from msigvault.formats.bsms import parse_token

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "formats"
SAMPLES = sorted(
    p.read_text() for p in VECTORS.rglob("*")
    if p.is_file() and p.suffix in (".txt", ".json", ".bsms", ".dat")
)
assert len(SAMPLES) > 50, "the sample files are missing"
TOKENS = [None, "a54044308ceac9b7", "108a2360adb302774eb521daebbeda5e"]
NETWORKS = [None, "mainnet", "testnet", "regtest"]


def only_msigvault_errors(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except MsigvaultError:
        return None


def all_entry_points(data, network=None, fmt=None, token=None):
    only_msigvault_errors(detect_format, data)
    result = only_msigvault_errors(import_vault, data, network=network, fmt=fmt, token=token)
    only_msigvault_errors(import_cosigner, data, network=network, token=token)
    only_msigvault_errors(verify_bsms_key_record, data, token)
    return result


@st.composite
def mutated_sample(draw):
    text = draw(st.sampled_from(SAMPLES))
    edits = draw(st.integers(1, 6))
    for _ in range(edits):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "lines", "truncate", "dup"]))
        if not text:
            break
        pos = draw(st.integers(0, len(text) - 1))
        if kind == "replace":
            text = text[:pos] + draw(st.characters()) + text[pos + 1:]
        elif kind == "insert":
            text = text[:pos] + draw(st.text(max_size=8)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)):]
        elif kind == "truncate":
            text = text[:pos]
        elif kind == "dup":
            text = text[:pos] + text[pos:pos + 60] + text[pos:]
        else:
            lines = text.split("\n")
            lines = draw(st.permutations(lines)) if len(lines) < 9 else lines[::-1]
            if len(lines) > 1 and draw(st.booleans()):
                del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
    return text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=30)
    | st.sampled_from(["P2WSH", "P2SH-P2WSH", "mainnet", "regtest", "m/48'/1'/0'/2'", "BSMS 1.0", "@0/**",
                       "2of3", "0f056943", "wsh(sortedmulti(2,@0/**,@1/**))",
                       "tpubDF2rnouQaaYrXF4noGTv6rQYmx87cQ4GrUdhpvXkhtChwQPbdGTi8GA88NUaSrwZBwNsTkC9bFkkC8vDyGBVVAQTZ2AS6gs68RQXtXcCvkP"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["name", "addressType", "network", "quorum", "requiredSigners", "totalSigners",
                         "extendedPublicKeys", "xpub", "xfp", "bip32Path", "descriptor", "label", "devices",
                         "descriptor_template", "keys_info", "descriptors", "desc", "internal", "p2wsh",
                         "p2wsh_deriv", "startingAddressIndex", "recv_descriptor", "wallet_type", "x1/", "x2/",
                         "ckcc_xfp", "root_fingerprint", "derivation", "bip48_2", "_pub"]) | st.text(max_size=8),
        children, max_size=6),
    max_leaves=25,
)


@given(st.binary(max_size=600), st.sampled_from(NETWORKS))
def test_random_bytes(data, network):
    all_entry_points(data, network=network)


@given(st.text(max_size=600), st.sampled_from([None, *FORMATS]))
def test_random_text(text, fmt):
    all_entry_points(text, fmt=fmt)


@given(mutated_sample(), st.sampled_from(NETWORKS), st.sampled_from([None, *FORMATS]), st.sampled_from(TOKENS))
@settings(max_examples=200)
def test_mutated_samples(text, network, fmt, token):
    all_entry_points(text, network=network, fmt=fmt, token=token)
    all_entry_points(text.encode("utf-8", "surrogatepass"), network=network, fmt=fmt, token=token)


@given(json_values, st.sampled_from([None, "caravan", "specter", "bip388", "descriptor", "coldcard"]))
def test_random_json(value, fmt):
    all_entry_points(json.dumps(value), fmt=fmt)


@given(st.one_of(st.none(), st.integers(), st.text(max_size=60), st.binary(max_size=20), st.floats()))
def test_random_tokens(token):
    only_msigvault_errors(parse_token, token)


def test_every_sample_unmodified():
    for text in SAMPLES:
        for network in NETWORKS:
            all_entry_points(text, network=network)
            for fmt in FORMATS:
                all_entry_points(text, network=network, fmt=fmt)
