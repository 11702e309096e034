"""The one descriptor parser (policy.descriptors): Core's vectors, BIP341 trees, positions,
limits, the vault shape, and fuzzing (only InvalidDescriptor/InvalidKey; round trip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from msigvault import Vault
from msigvault.errors import ChecksumError, InvalidDescriptor, InvalidKey, PolicyError
from msigvault.network import Network
from msigvault.policy.descriptors import (
    MAX_TAPROOT_DEPTH, Descriptor, Multi, Sh, TapBranch, ThresholdError, Tr, Wsh, parse_descriptor,
)
from msigvault.policy.vault import NUMS_H
from msigvault.testing.keyholders import TestKeyholder

VECTORS = Path(__file__).parent.parent / "vectors"
CORE = json.loads((VECTORS / "core_descriptors.json").read_text())
NET = Network.REGTEST
HOLDERS = [TestKeyholder.from_label(f"desc{i}") for i in range(3)]
XONLY = "a34b99f22c790c4e36b2b3c2c35a36db06226e41c692fc82b8b56ac1c540c5bd"


def vault(script: str, m: int = 2) -> Vault:
    return Vault.multisig(m, [h.cosigner(script) for h in HOLDERS], script=script, network=NET)


# -- Bitcoin Core's descriptor_tests.cpp ----------------------------------------------------------


@pytest.mark.parametrize("case", CORE["valid"], ids=lambda c: c["descriptor"][:48])
def test_core_valid_descriptors_derive_cores_scripts(case):
    desc = parse_descriptor(case["descriptor"])
    assert desc.is_range is case["range"]
    assert parse_descriptor(desc.descriptor()) == desc  # round trip through our own text
    indexes = range(len(case["scripts"])) if case["range"] else (0, 1, 2)
    for i in indexes:
        expected = case["scripts"][i if case["range"] else 0]
        if case["hardened"]:
            with pytest.raises(InvalidDescriptor, match="private key"):
                desc.script_pubkey(i)
        else:
            assert desc.script_pubkey(i).hex() == expected


@pytest.mark.parametrize("case", CORE["invalid"], ids=lambda c: c["core_error"][:40])
def test_core_unparsable_descriptors_are_refused_with_cores_message(case):
    with pytest.raises((InvalidDescriptor, InvalidKey)) as info:
        parse_descriptor(case["descriptor"])
    assert case.get("core_error_now", case["core_error"]) in str(info.value)
    assert isinstance(info.value.position, int)
    assert f"at position {info.value.position}" in str(info.value)


def test_bip341_trees_of_pk_leaves_give_the_bip_scripts():
    checked = 0
    for vector in json.loads((VECTORS / "bip341_wallet.json").read_text())["scriptPubKey"]:
        given_, expected = vector["given"], vector["expected"]["scriptPubKey"]

        def text(tree):
            if isinstance(tree, list):
                return "{" + text(tree[0]) + "," + text(tree[1]) + "}"
            script = tree["script"]
            if tree["leafVersion"] != 0xC0 or len(script) != 68 or script[:2] != "20" or script[-2:] != "ac":
                raise ValueError("not a pk() leaf")
            return f"pk({script[2:-2]})"

        try:
            tree = "" if given_["scriptTree"] is None else "," + text(given_["scriptTree"])
        except ValueError:
            continue
        desc = parse_descriptor(f"tr({given_['internalPubkey']}{tree})")
        assert desc.script_pubkey().hex() == expected
        checked += 1
    assert checked >= 4


# -- positions and messages -----------------------------------------------------------------------


def test_errors_carry_the_position_in_the_text():
    key = HOLDERS[0].cosigner("wsh")
    text = f"wsh(multi(1,{key}/<0;1>/*,{key}/0/1x))"
    with pytest.raises(InvalidKey) as info:
        parse_descriptor(text)
    assert info.value.position == text.index("/1x") + 1
    assert "Key path value '1x' is not a valid uint32" in str(info.value)
    with pytest.raises(InvalidDescriptor) as info:
        parse_descriptor("wsh(sh(pk(" + XONLY + ")))")
    assert info.value.position == 4 and "Can only have sh() at top level (at position 4)" in str(info.value)


def test_checksum_errors_say_what_and_where():
    good = vault("wsh").descriptor()
    with pytest.raises(ChecksumError, match="Missing checksum"):
        parse_descriptor(good.split("#")[0], require_checksum=True)
    bad = good[:-1] + ("q" if good[-1] != "q" else "p")
    with pytest.raises(ChecksumError, match="does not match computed checksum") as info:
        parse_descriptor(bad)
    assert info.value.position == good.index("#") + 1


def test_private_keys_are_refused_without_echoing_them():
    xprv = HOLDERS[0].root.to_base58()
    with pytest.raises(InvalidKey, match="private key") as info:
        parse_descriptor(f"wsh(multi(1,{xprv}/0/*))")
    assert xprv[4:20] not in str(info.value)


def test_threshold_errors_are_descriptor_and_policy_errors():
    with pytest.raises(ThresholdError) as info:
        parse_descriptor(f"wsh(multi(0,{HOLDERS[0].cosigner('wsh')}/0/*))")
    assert isinstance(info.value, InvalidDescriptor) and isinstance(info.value, PolicyError)


# -- every key expression -----------------------------------------------------------------------


def test_multipath_of_any_arity_derives_each_branch():
    a, b = (h.cosigner("wsh") for h in HOLDERS[:2])
    desc = parse_descriptor(f"wsh(multi(1,{a}/<0;1;7>/*,{b}/<2;3;9>/*))")
    assert desc.branches == 3
    for branch, (i, j) in enumerate([(0, 2), (1, 3), (7, 9)]):
        single = parse_descriptor(f"wsh(multi(1,{a}/{i}/*,{b}/{j}/*))")
        assert desc.script_pubkey(5, branch) == single.script_pubkey(5) == desc.branch(branch).script_pubkey(5)
    with pytest.raises(InvalidDescriptor, match="mismatched lengths"):
        parse_descriptor(f"wsh(multi(1,{a}/<0;1;7>/*,{b}/<2;3>/*))")
    with pytest.raises(InvalidDescriptor, match="branch must be"):
        desc.script_pubkey(0, 3)


def test_fixed_paths_and_raw_keys_are_watchable():
    a = HOLDERS[0].cosigner("sh")
    desc = parse_descriptor(f"sh(multi(1,{a}/1/2,02{XONLY}))")
    assert not desc.is_range and desc.script_pubkey(0) == desc.script_pubkey(9)
    assert desc.address(0, network=NET).startswith("2")


def test_xonly_keys_only_inside_tr():
    assert parse_descriptor(f"tr({NUMS_H.hex()},multi_a(1,{XONLY}))")
    with pytest.raises(InvalidKey, match="is invalid"):
        parse_descriptor(f"wsh(pk({XONLY}))")


def test_tr_tree_depth_limit():
    leaf = f"pk({XONLY})"
    ok = "{" * MAX_TAPROOT_DEPTH + leaf + ("," + leaf + "}") * MAX_TAPROOT_DEPTH
    desc = parse_descriptor(f"tr({NUMS_H.hex()},{ok})")
    assert isinstance(desc.node, Tr) and isinstance(desc.node.tree, TapBranch)
    assert max(d for d, _ in desc.node.leaves()) == MAX_TAPROOT_DEPTH
    deep = "{" * (MAX_TAPROOT_DEPTH + 1) + leaf + ("," + leaf + "}") * (MAX_TAPROOT_DEPTH + 1)
    with pytest.raises(InvalidDescriptor, match="at most 128 nesting levels"):
        parse_descriptor(f"tr({NUMS_H.hex()},{deep})")


def test_key_limits_per_context():
    keys = ",".join(f"{h.cosigner('wsh')}/0/*" for h in HOLDERS) + "," + ",".join(
        f"{h.cosigner('wsh')}/{i}/*" for i in range(1, 7) for h in HOLDERS)
    with pytest.raises(InvalidDescriptor, match="Cannot have 21 keys in multisig; must have between 1 and 20"):
        parse_descriptor(f"wsh(multi(1,{keys}))")
    assert isinstance(parse_descriptor(f"tr({NUMS_H.hex()},multi_a(1,{keys}))").node.tree, Multi)


# -- the vault shape ------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["sh", "sh-wsh", "wsh", "tr"])
def test_descriptor_and_vault_agree(script):
    v = vault(script)
    desc = Descriptor.parse(v.descriptor())
    assert desc.descriptor() == v.descriptor() and desc.branches == 2 and desc.is_range
    for branch in (0, 1):
        for i in (0, 1, 17):
            assert desc.script_pubkey(i, branch) == v.derive_branch(branch, i).script_pubkey
    assert desc.to_vault(network=NET) == v
    assert desc.to_vault(network=NET).policy_id == v.policy_id
    assert Vault.from_descriptor(v.descriptor(0), network=NET).descriptor() == v.descriptor()


def test_shape(script="sh-wsh"):
    node = parse_descriptor(vault(script).descriptor()).node
    assert isinstance(node, Sh) and isinstance(node.inner, Wsh) and node.inner.inner.sorted


@pytest.mark.parametrize("text,match", [
    (f"wpkh(02{XONLY})", r"wpkh\(\.\.\.\) is not a vault descriptor"),
    (f"sh(wpkh(02{XONLY}))", "not a multisig vault"),
    (f"tr({XONLY})", "single-key wallet"),
    (f"tr({NUMS_H.hex()},{{pk({XONLY}),pk({XONLY})}})", "more than one leaf"),
    (f"wsh(multi(1,02{XONLY}))", "/<0;1>/"),
])
def test_to_vault_says_what_is_missing(text, match):
    with pytest.raises((InvalidDescriptor, InvalidKey), match=match):
        parse_descriptor(text).to_vault(network=NET)


# -- adversarial: regressions for the old parsers ----------------------------------------------------


def test_xonly_and_fixed_keys_were_refused_by_the_old_parser_and_now_derive():
    # the old policy parser refused every shape but /<0;1>/*; Core's vectors need these
    a = HOLDERS[0].cosigner("wsh")
    desc = parse_descriptor(f"wsh(sortedmulti(1,{a}/1/2,02{XONLY}))")
    assert len(desc.script_pubkey()) == 34


def test_unbalanced_and_huge_nesting_is_refused_quickly():
    with pytest.raises(InvalidDescriptor, match="never closed"):
        parse_descriptor("wsh(" * 50_000)
    with pytest.raises(InvalidDescriptor):
        parse_descriptor(f"tr({XONLY}," + "{" * 50_000 + "pk(" + XONLY + ")" + "}" * 50_000 + ")")


# -- fuzzing --------------------------------------------------------------------------------------

SEEDS = [vault(s).descriptor() for s in ("sh", "sh-wsh", "wsh", "tr")] + [
    c["descriptor"] for c in CORE["valid"]] + [
    f"tr({NUMS_H.hex()},{{pk({XONLY}),{{multi_a(1,{XONLY}),pk({XONLY})}}}})",
    f"wsh(multi(1,{HOLDERS[0].cosigner('wsh')}/<0;1;2>/*,{HOLDERS[1].cosigner('wsh')}/<3;4;5>/*h))",
]
ALPHABET = "0123456789()[],'/*abcdefgh{}<>;#hxpubtpubsortedmulti_awsh "


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(["flip", "delete", "insert", "duplicate"]))
        if op == "flip":
            text = text[:i] + draw(st.sampled_from(ALPHABET)) + text[i + 1:]
        elif op == "delete":
            text = text[:i] + text[i + 1:]
        elif op == "insert":
            text = text[:i] + draw(st.text(ALPHABET, max_size=4)) + text[i:]
        else:
            j = draw(st.integers(i, min(len(text), i + 80)))
            text = text[:j] + text[i:j] + text[j:]
    return text


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_fuzz_only_descriptor_errors_and_round_trip(text):
    try:
        desc = parse_descriptor(text)
    except (InvalidDescriptor, InvalidKey) as e:
        assert isinstance(e.position, (int, type(None)))
        return
    again = parse_descriptor(desc.descriptor())
    assert again == desc and again.descriptor() == desc.descriptor()
