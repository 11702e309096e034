"""Script -> miniscript (Core's FromScript): every valid Core vector decodes back to a miniscript
with the same script, Core's malformed scripts are refused, and arbitrary bytes never raise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from msigvault.policy.miniscript import Context, MiniscriptError, parse_miniscript
from msigvault.policy.miniscript_decode import decode_script

DATA = json.loads((Path(__file__).parent.parent / "vectors" / "core_miniscript.json").read_text())


def _valid_cases():
    for case in DATA["tests"]:
        for ctx in (Context.P2WSH, Context.TAPSCRIPT):
            try:
                node = parse_miniscript(case["miniscript"], ctx)
            except MiniscriptError:
                continue
            if node.is_valid_top_level:
                yield case["miniscript"], ctx


CASES = list(_valid_cases())


@pytest.mark.parametrize("text,ctx", CASES, ids=[f"{c.value}:{t[:40]}" for t, c in CASES])
def test_every_valid_core_vector_decodes_to_the_same_script(text, ctx):
    node = parse_miniscript(text, ctx)
    script = node.to_script()
    decoded = decode_script(script, ctx, keys=node.all_keys())
    assert decoded is not None and decoded.to_script() == script
    assert decoded.type_letters and decoded.is_valid_top_level


def test_many_cases_are_covered():
    assert len(CASES) > 100


@pytest.mark.parametrize("script", DATA["checks"]["from_script_fails"]["tapscript"])
def test_incomplete_multi_a_is_refused(script):
    assert decode_script(bytes.fromhex(script), Context.TAPSCRIPT) is None


@pytest.mark.parametrize("script", DATA["checks"]["from_script_fails"]["both"])
def test_non_minimal_scripts_are_refused(script):
    for ctx in Context:
        assert decode_script(bytes.fromhex(script), ctx) is None


def test_pk_h_needs_a_known_key():
    node = parse_miniscript("pkh(03d30199d74fb5a22d47b6e054e2f378cedacffcb89904a61d75d0dbd407143e65)")
    assert decode_script(node.to_script()) is None
    assert decode_script(node.to_script(), keys=node.all_keys()) == node


def test_deep_scripts_decode_without_recursion():
    key = "03d30199d74fb5a22d47b6e054e2f378cedacffcb89904a61d75d0dbd407143e65"
    depth = 2000
    node = parse_miniscript("and_b(older(1),a:" * depth + f"pk({key})" + ")" * depth, "tr")
    decoded = decode_script(node.to_script(), "tr")
    assert decoded is not None and decoded.to_script() == node.to_script()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(list(Context)))
def test_arbitrary_bytes_decode_to_nothing_or_to_themselves(data, ctx):
    node = decode_script(data, ctx)
    assert node is None or node.to_script() == data


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CASES), st.integers(0, 10_000), st.integers(0, 255))
def test_a_changed_byte_decodes_to_nothing_or_to_itself(case, where, value):
    text, ctx = case
    script = bytearray(parse_miniscript(text, ctx).to_script())
    script[where % len(script)] = value
    node = decode_script(bytes(script), ctx)
    assert node is None or node.to_script() == bytes(script)
