"""Fuzzing the miniscript parser with token soup: only MiniscriptError (or InvalidDescriptor /
InvalidKey through a descriptor) ever comes out, and whatever parses round-trips."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from msigvault.errors import InvalidDescriptor, InvalidKey
from msigvault.policy.descriptors import parse_descriptor
from msigvault.policy.miniscript import Context, MiniscriptError, parse_miniscript
from msigvault.policy.vault import NUMS_H

KEY = "03d30199d74fb5a22d47b6e054e2f378cedacffcb89904a61d75d0dbd407143e65"
KEY2 = "03fff97bd5755eeea420453a14355235d382f6472f8568a18b2f057a1460297556"
TOKENS = ["and_v(", "and_b(", "and_n(", "andor(", "or_b(", "or_c(", "or_d(", "or_i(", "thresh(", "multi(",
          "multi_a(", "pk(", "pkh(", "pk_k(", "pk_h(", "older(", "after(", "sha256(", "hash160(", KEY, KEY2,
          "v:", "s:", "a:", "c:", "d:", "j:", "n:", "l:", "u:", "t:", "sc:", "vdv:", "0", "1", "2", "144",
          ",", ")", "(", ":", "x", "-1", "4294967296", "0" * 64, "ab" * 20, "[deadbeef/1h]", "/0/*", "{", "}"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=30), st.sampled_from(list(Context)))
def test_token_soup_parses_or_raises_miniscript_error(tokens, ctx):
    text = "".join(tokens)
    try:
        node = parse_miniscript(text, ctx)
    except MiniscriptError as e:
        assert isinstance(e.position, int) or e.position is None
        return
    assert parse_miniscript(str(node), ctx) == node
    if node.is_valid:
        assert len(node.to_script()) == node.script_len


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=30), st.booleans())
def test_token_soup_in_descriptors_raises_only_descriptor_errors(tokens, tap):
    inner = "".join(tokens)
    text = f"tr({NUMS_H.hex()},{inner})" if tap else f"wsh({inner})"
    try:
        desc = parse_descriptor(text)
    except (InvalidDescriptor, InvalidKey):
        return
    assert parse_descriptor(desc.descriptor()) == desc
    desc.script_pubkey()
