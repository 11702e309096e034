"""Miniscript parsing (every fragment and wrapper, both contexts), errors with positions,
descriptor integration (sanity refusals by reason, tr leaves, multipath), hostile sizes."""

from __future__ import annotations

import hashlib

from embit.hashes import hash160

import pytest

from msigvault.errors import InvalidDescriptor, InvalidKey
from msigvault.policy.descriptors import Miniscript, Multi, Pk, Tr, Wsh, parse_descriptor
from msigvault.policy.miniscript import Context, Fragment, InsaneMiniscript, MiniscriptError, parse_miniscript
from msigvault.policy.vault import NUMS_H
from msigvault.testing.keyholders import TestKeyholder

KEYS = ["03d30199d74fb5a22d47b6e054e2f378cedacffcb89904a61d75d0dbd407143e65",
        "03fff97bd5755eeea420453a14355235d382f6472f8568a18b2f057a1460297556",
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"]
A, B, C, D = KEYS
H32 = hashlib.sha256(b"x").hexdigest()
H20 = "20195b5a3d650c17f0f29f91c33f8f6335193d07"
XPUBS = [str(TestKeyholder.from_label(f"msd{i}").cosigner("wsh")) + "/<0;1>/*" for i in range(4)]

EVERY_FRAGMENT = [
    "0", "1", f"c:pk_k({A})", f"c:pk_h({A})", f"pk({A})", f"pkh({A})", "older(144)", "after(500000)",
    f"sha256({H32})", f"hash256({H32})", f"ripemd160({H20})", f"hash160({H20})",
    f"andor(pk({A}),pk({B}),pk({C}))", f"and_v(v:pk({A}),pk({B}))", f"and_b(pk({A}),s:pk({B}))",
    f"and_n(pk({A}),pk({B}))", f"or_b(pk({A}),s:pk({B}))", f"t:or_c(pk({A}),v:pk({B}))",
    f"or_d(pk({A}),pk({B}))", f"or_i(pk({A}),pk({B}))", f"thresh(2,pk({A}),s:pk({B}),a:pk({C}))",
    f"j:pk({A})", f"n:pk({A})", f"l:pk({A})", f"u:pk({A})", f"tv:pk({A})", "dv:older(5)", f"s:pk({A})",
    f"a:pk({A})",
]


@pytest.mark.parametrize("ctx", [Context.P2WSH, Context.TAPSCRIPT])
@pytest.mark.parametrize("text", EVERY_FRAGMENT)
def test_every_fragment_parses_and_round_trips(text, ctx):
    node = parse_miniscript(text, ctx)
    again = parse_miniscript(str(node), ctx)
    assert again == node
    if node.is_valid:
        assert len(node.to_script()) == node.script_len


def test_multi_and_multi_a_belong_to_their_context():
    wsh = parse_miniscript(f"multi(2,{A},{B})", "wsh")
    assert wsh.fragment is Fragment.MULTI and wsh.to_script().hex().endswith("52ae")
    tap = parse_miniscript(f"multi_a(2,{A},{B})", "tr")
    assert tap.fragment is Fragment.MULTI_A and tap.to_script() == bytes.fromhex(
        "20" + A[2:] + "ac20" + B[2:] + "ba529c")
    with pytest.raises(MiniscriptError, match="not allowed in tapscript"):
        parse_miniscript(f"multi(2,{A},{B})", "tr")
    with pytest.raises(MiniscriptError, match="only allowed in tapscript"):
        parse_miniscript(f"multi_a(2,{A},{B})", "wsh")


@pytest.mark.parametrize("text,position,message", [
    ("and_v(v:pk(K),x:older(1))", None, None),  # key error first, checked below
    ("or_q(1,1)", 0, "not a miniscript fragment"),
    ("and_v(v:1,zz:1)", 10, "not a miniscript wrapper"),
    ("older(-1)", 6, "whole number"),
    ("older(0)", 6, "out of range"),
    ("after(2147483648)", 6, "out of range"),
    ("sha256(abcd)", 7, "32-byte hash"),
    ("hash160(" + "zz" * 20 + ")", 8, "20-byte hash"),
    ("thresh(3,1,a:1)", 7, "threshold 3"),
    ("thresh(1)", 0, "at least one"),
    ("and_b(1)", 0, "takes 2 arguments"),
    ("andor(1,1)", 0, "takes 3 arguments"),
    ("and_v(v:1,1", 5, "never closed"),
    ("and_v(v:1,1))", 12, "unbalanced"),
    ("and_v(v:1,)", 10, "missing"),
    (f"multi(0,{A})", 6, "threshold 0"),
    ("multi(1," + ",".join([A] * 21) + ")", 0, "between 1 and 20"),
])
def test_syntax_errors_carry_positions(text, position, message):
    if message is None:
        with pytest.raises(MiniscriptError, match="not a valid public key"):
            parse_miniscript(text)
        return
    with pytest.raises(MiniscriptError, match=message) as info:
        parse_miniscript(text)
    assert info.value.position == position and f"at position {position}" in str(info.value)


def test_ill_typed_expressions_parse_but_are_not_valid():
    node = parse_miniscript("and_b(1,1)")
    assert node.type == 0 and not node.is_valid


# -- descriptors -------------------------------------------------------------------------------


def test_descriptor_forms_that_existed_keep_their_ast():
    for text, kind in [(f"wsh(multi(2,{A},{B}))", Multi), (f"wsh(pk({A}))", Pk)]:
        assert isinstance(parse_descriptor(text).node.inner, kind)
    tr = parse_descriptor(f"tr({NUMS_H.hex()},{{pk({A}),multi_a(1,{B},{C})}})").node
    assert isinstance(tr.tree.left, Pk) and isinstance(tr.tree.right, Multi)


def test_wsh_miniscript_descriptor_round_trips_and_derives():
    text = f"wsh(or_d(multi(2,{XPUBS[0]},{XPUBS[1]}),and_v(v:pk({XPUBS[2]}),older(52560))))"
    desc = parse_descriptor(text)
    assert isinstance(desc.node, Wsh) and isinstance(desc.node.inner, Miniscript)
    assert parse_descriptor(desc.descriptor()) == desc
    assert desc.branches == 2 and desc.is_range
    assert desc.script_pubkey(3, 0) != desc.script_pubkey(3, 1) != desc.script_pubkey(4, 1)
    assert desc.branch(1).script_pubkey(3) == desc.script_pubkey(3, 1)


def test_tr_leaves_hold_miniscript_including_pkh():
    text = f"tr({NUMS_H.hex()},{{multi_a(2,{XPUBS[0]},{XPUBS[1]}),and_v(v:pkh({XPUBS[2]}),older(52560))}})"
    desc = parse_descriptor(text)
    assert isinstance(desc.node, Tr) and isinstance(desc.node.tree.right, Miniscript)
    assert desc.node.tree.right.ctx is Context.TAPSCRIPT
    assert parse_descriptor(desc.descriptor()) == desc
    lone = parse_descriptor(f"tr({NUMS_H.hex()},pkh({A}))").node.tree
    assert isinstance(lone, Miniscript)
    script = lone.to_script(lambda k: k.pubkey())
    assert script == b"\x76\xa9\x14" + hash160(bytes.fromhex(A)[1:]) + b"\x88\xac"  # x-only key hashed


def test_wrappers_come_in_one_prefix_as_in_core():
    with pytest.raises(MiniscriptError):
        parse_miniscript(f"t:v:pk({A})")


@pytest.mark.parametrize("inner,reason,at", [
    (f"or_b(pk({A}),a:pk({A}))", "duplicate-key", 4),
    ("older(10)", "no-signature", 4),
    (f"or_i(pk({A}),older(5))", "no-signature", 4),
    (f"and_v(v:pk({A}),and_b(after(100),a:after(1000000000)))", "timelock-mix", 83),
    ("and_v(1,1)", "invalid", 4),
    (f"or_b(pk({A}),a:older(1))", "invalid", 4),
    (f"and_v(v:pk({A}),or_i(older(10),older(20)))", "malleable", 83),
    (f"and_v(v:pk({A}),0)", "unsatisfiable", 4),
])
def test_insane_miniscript_is_refused_with_its_reason(inner, reason, at):
    with pytest.raises(InsaneMiniscript) as info:
        parse_descriptor(f"wsh({inner})")
    assert info.value.reason == reason and info.value.code == "descriptor.miniscript-insane"
    assert info.value.position == at


def test_resource_limits_are_a_reason():
    # 55 hash checks are 220 opcodes: well under 3600 bytes, but over P2WSH's 201-op limit
    inner = f"and_v(v:pk({A})," + f"and_v(v:sha256({H32}),".join([""] * 55) + f"sha256({H32})" + ")" * 55
    node = parse_miniscript(inner)
    assert node.is_valid and node.script_len < 3600 and node.ops > 201 and not node.check_ops_limit()
    with pytest.raises(InsaneMiniscript) as info:
        parse_descriptor(f"wsh({inner})")
    assert info.value.reason == "resource-limits"
    assert parse_descriptor(f"tr({NUMS_H.hex()},{inner})")  # tapscript has no ops limit


def test_miniscript_outside_wsh_and_tr_is_refused():
    with pytest.raises(InvalidDescriptor, match="only be used in wsh or tr"):
        parse_descriptor(f"sh(and_v(v:pk({A}),pk({B})))")
    with pytest.raises(InvalidDescriptor, match="only be used in wsh or tr"):
        parse_descriptor(f"and_v(v:pk({A}),pk({B}))")


def test_keys_in_miniscript_follow_the_context_rules():
    uncompressed = "04" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798" + \
        "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
    with pytest.raises(InvalidKey, match="Uncompressed"):
        parse_descriptor(f"wsh(and_v(v:pk({uncompressed}),pk({A})))")
    desc = parse_descriptor(f"tr({NUMS_H.hex()},and_v(v:pk({A[2:]}),pk({B})))")
    assert desc.node.tree.all_keys()[0].kind == "xonly"


def test_the_same_key_written_twice_differently_is_a_duplicate():
    holder = TestKeyholder.from_label("dup")
    tpub = str(holder.cosigner("wsh")) + "/0/*"
    other = str(TestKeyholder.from_label("dup2").cosigner("wsh")) + "/0/*"
    assert parse_descriptor(f"wsh(and_v(v:pk({tpub}),pk({other})))")
    with pytest.raises(InsaneMiniscript) as info:
        parse_descriptor(f"wsh(and_v(v:pk({tpub}),pk({tpub.split(']')[1]})))")
    assert info.value.reason == "duplicate-key"


def test_deep_nesting_is_parsed_without_recursion():
    depth = 3000
    text = "and_b(older(1),a:" * depth + f"pk({A})" + ")" * depth
    node = parse_miniscript(text, "tr")
    assert node.ops == 4 * depth + 1 and not node.check_stack_size()
    assert len(node.to_script()) == node.script_len
    assert not parse_miniscript(text, "wsh").is_valid  # far above 3600 bytes


def test_hostile_text_is_refused_early():
    with pytest.raises(MiniscriptError):
        parse_miniscript("a:" * 200_000 + "1")


def test_deep_descriptors_compare_hash_and_print_without_recursion():
    depth = 990  # the descriptor's comma bound (1,000) bounds the depth; this still overflows recursion
    text = f"tr({NUMS_H.hex()}," + "and_b(older(1),a:" * depth + f"pk({A})" + ")" * depth + ")"
    desc = parse_descriptor(text)
    again = parse_descriptor(desc.descriptor())
    assert again == desc and hash(again.node) == hash(desc.node)
    assert "Miniscript(tr" in repr(desc.node.tree)
    other = parse_descriptor(text.replace("older(1),a:pk", "older(2),a:pk"))
    assert other != desc
