"""Bitcoin Core's miniscript_tests.cpp fixed tests (tests/vectors/core_miniscript.json): validity per
context, type properties, Core's scripts, ops / stack / witness-size bounds, sanity checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msigvault.policy.miniscript import Context, MiniscriptError, parse_miniscript

DATA = json.loads((Path(__file__).parent.parent / "vectors" / "core_miniscript.json").read_text())
CASES = [(case, ctx) for case in DATA["tests"] for ctx in (Context.P2WSH, Context.TAPSCRIPT)]


def _invalid_in(case, ctx: Context) -> bool:
    mode = case["mode"]
    return ("INVALID" in mode or ("P2WSH_INVALID" in mode and ctx is Context.P2WSH)
            or ("TAPSCRIPT_INVALID" in mode and ctx is Context.TAPSCRIPT))


@pytest.mark.parametrize("case,ctx", CASES, ids=lambda v: v.value if isinstance(v, Context) else v["miniscript"][:40])
def test_core_fixed_tests(case, ctx):
    ms = case["miniscript"]
    if _invalid_in(case, ctx):
        try:
            node = parse_miniscript(ms, ctx)
        except MiniscriptError:
            return
        assert not node.is_valid, f"unexpectedly valid in {ctx.value}: {ms}"
        return
    node = parse_miniscript(ms, ctx)
    assert node.is_valid and node.is_valid_top_level
    script = node.to_script()
    assert node.script_len == len(script)
    expected = case["script"] if ctx is Context.P2WSH else (
        case["script"] if case["tapscript"] == "=" else case["tapscript"])
    if expected != "?":
        assert script.hex() == expected
    mode = case["mode"]
    assert node.is_non_malleable is ("NONMAL" in mode)
    assert node.needs_signature is ("NEEDSIG" in mode)
    assert node.no_timelock_mix is ("TIMELOCKMIX" not in mode)
    # our own text round trip gives the same script
    assert parse_miniscript(str(node), ctx).to_script() == script
    if "ops" in case:
        assert node.ops == case["ops"]
        assert node.stack_size == case["stack"]
        assert node.exec_stack_size == case["exec_stack"]
        size = case["witness_size"] if ctx is Context.P2WSH else case["tap_witness_size"]
        if size is not None:
            assert node.max_witness_size == size


def test_vector_file_is_whole():
    assert len(DATA["tests"]) == 97
    assert sum("ops" in c for c in DATA["tests"]) == 33


def test_multi_counts_keys_as_ops_and_signatures_as_stack():
    check = DATA["checks"]["multi_ops_and_stack"]
    node = parse_miniscript(check["miniscript"])
    assert (node.ops, node.stack_size) == (check["ops"], check["stack"])


def test_d_wrapper_is_not_u_in_p2wsh():
    text = DATA["checks"]["p2wsh_invalid_minimalif"]
    assert not parse_miniscript(text, Context.P2WSH).is_valid
    assert parse_miniscript(text, Context.TAPSCRIPT).is_valid


@pytest.mark.parametrize("text", DATA["checks"]["duplicate_keys_not_sane"])
def test_duplicate_keys_are_not_sane(text):
    node = parse_miniscript(text)
    assert not node.check_duplicate_key() and not node.is_sane()


def test_sane_and_first_insane_sub():
    assert parse_miniscript(DATA["checks"]["sane"]).is_sane()
    check = DATA["checks"]["insane_sub"]
    node = parse_miniscript(check["miniscript"])
    assert node.is_valid is check["valid"] and node.is_sane() is check["sane"]
    assert str(node.find_insane_sub()) == check["first_insane_sub"]


@pytest.mark.parametrize("text", DATA["checks"]["unparsable"])
def test_signed_numbers_are_refused(text):
    with pytest.raises(MiniscriptError) as info:
        parse_miniscript(text)
    assert isinstance(info.value.position, int)
