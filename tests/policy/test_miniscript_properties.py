"""Property tests over random sane miniscripts: the P2WSH address equals embit's and BDK's for
the same descriptor (and a two-leaf tr() tree's equals BDK's), and the witness Descriptor.satisfy builds (every key signed, every preimage
known, the timelocks reached) is accepted by libbitcoinkernel, in wsh() and as a tr() leaf; with
a random subset of keys any witness produced is accepted too."""

from __future__ import annotations

import hashlib

import bdkpython as bdk
from embit import ec
from embit.descriptor import Descriptor as EmbitDescriptor
from embit.networks import NETWORKS
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from msigvault.policy.descriptors import parse_descriptor
from msigvault.policy.miniscript import Satisfier
from msigvault.policy.vault import NUMS_H
from msigvault.psbt.extractor import _serialize, verify_scripts
from msigvault.psbt.sighash import SighashCache, TxIn, TxOut, UnsignedTx
from msigvault.script import compact_size, tapleaf_hash

PRIV = [ec.PrivateKey((1000 + i).to_bytes(32, "big")) for i in range(40)]
PUB = [p.get_public_key().sec() for p in PRIV]
PRE = [bytes(31) + bytes([i + 1]) for i in range(8)]
AMOUNT = 50_000
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                           HealthCheck.too_slow])


def _hash(kind: str, i: int) -> str:
    p = PRE[i]
    if kind == "sha256":
        return hashlib.sha256(p).hexdigest()
    if kind == "hash256":
        return hashlib.sha256(hashlib.sha256(p).digest()).hexdigest()
    r = hashlib.new("ripemd160", p if kind == "ripemd160" else hashlib.sha256(p).digest()).hexdigest()
    return r


@st.composite
def _leaf(draw, tap: bool) -> str:
    kind = draw(st.sampled_from(["pk", "pkh", "multi", "timelocked", "hashlocked", "decaying"]))
    if kind in ("pk", "pkh"):
        return f"{kind}(K)"
    if kind == "multi":
        n = draw(st.integers(1, 3))
        k = draw(st.integers(1, n))
        return f"{'multi_a' if tap else 'multi'}({k}," + ",".join(["K"] * n) + ")"
    if kind == "decaying":  # thresh(k, keys..., a timelock): a threshold that drops after the lock
        n = draw(st.integers(2, 4))
        lock = draw(st.sampled_from(["sln:older", "sln:after"]))
        subs = ["pk(K)"] + ["s:pk(K)"] * (n - 1) + [f"{lock}({draw(st.integers(1, 1000))})"]
        return f"thresh({draw(st.integers(2, n))},{','.join(subs)})"
    if kind == "timelocked":
        lock = draw(st.sampled_from(["older", "after"]))
        value = draw(st.integers(1, 1000))
        return f"and_v(v:pk(K),{lock}({value}))"
    h = draw(st.sampled_from(["sha256", "hash256", "ripemd160", "hash160"]))
    return f"and_v(v:pk(K),{h}({_hash(h, draw(st.integers(0, len(PRE) - 1)))}))"


@st.composite
def b_expr(draw, tap: bool, depth: int = 2) -> str:
    """A B-type expression (mostly Bdu), built from a small grammar over the fragments."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(_leaf(tap))
    x = draw(b_expr(tap, depth - 1))
    y = draw(b_expr(tap, depth - 1))
    form = draw(st.sampled_from(["and_v", "or_d", "or_i", "andor", "thresh", "or_b", "and_b", "or_c"]))
    if form == "and_v":
        return f"and_v(v:{x},{y})"
    if form == "or_d":
        return f"or_d({x},{y})"
    if form == "or_i":
        return f"or_i({x},{y})"
    if form == "or_c":
        return f"t:or_c({x},v:{y})"
    if form == "andor":
        return f"andor({x},{y},{draw(b_expr(tap, depth - 1))})"
    if form == "or_b":
        return f"or_b({x},s:{y})" if y.startswith(("pk(", "pkh(")) else f"or_b({x},a:{y})"
    if form == "and_b":
        return f"and_b({x},a:{y})"
    z = draw(b_expr(tap, depth - 1))
    k = draw(st.integers(1, 3))
    return f"thresh({k},{x},a:{y},a:{z})"


def _fill(template: str) -> "tuple[str, list[int]]":
    parts = template.split("K")
    used = list(range(len(parts) - 1))
    assume(len(used) <= len(PRIV))
    return "".join(p + (PUB[i].hex() if i < len(used) else "") for i, p in enumerate(parts)), used


def _locks(text: str) -> "tuple[int, int]":
    import re

    afters = [int(v) for v in re.findall(r"after\((\d+)\)", text)]
    olders = [int(v) for v in re.findall(r"older\((\d+)\)", text)]
    return max(afters, default=0), max(olders, default=0)


def _spend(desc, keys: "list[int]", lock_time: int, sequence: int):
    tx = UnsignedTx(2, lock_time, (TxIn(b"\x33" * 32, 1, sequence),), (TxOut(AMOUNT - 500, b"\x51"),))
    spk = desc.script_pubkey()
    cache = SighashCache(tx, [TxOut(AMOUNT, spk)])
    from msigvault.policy.descriptors import _spend_paths

    sigs: dict = {}
    for _, script, tail in _spend_paths(desc.node, 0, 0):
        if tail:  # tapscript leaf
            leaf = tapleaf_hash(script)
            digest = cache.taproot(0, leaf_hash=leaf)
            for i in keys:
                sigs[(PUB[i][1:], leaf)] = PRIV[i].schnorr_sign(digest).serialize()
        else:
            digest = cache.segwit_v0(0, script, AMOUNT)
            for i in keys:
                sigs[PUB[i]] = PRIV[i].sign(digest).serialize() + b"\x01"
    witness = desc.satisfy(Satisfier(sigs, PRE, lock_time=lock_time, sequence=sequence))
    return tx, witness


def _accepted(desc, tx, witness) -> bool:
    wit = compact_size(len(witness)) + b"".join(compact_size(len(w)) + w for w in witness)
    return verify_scripts(_serialize(tx, [b""], [wit]), [TxOut(AMOUNT, desc.script_pubkey())])


def _sane(text: str):
    from msigvault.errors import InvalidDescriptor

    try:
        return parse_descriptor(text)
    except InvalidDescriptor:
        assume(False)
        raise AssertionError  # pragma: no cover


@SETTINGS
@given(b_expr(tap=False))
def test_wsh_address_equals_embit_and_bdk(template):
    text, _ = _fill(template)
    desc = _sane(f"wsh({text})")
    ours = desc.address(network="regtest")
    assert EmbitDescriptor.from_string(desc.descriptor(checksum=False)).address(NETWORKS["regtest"]) == ours
    theirs = bdk.Descriptor(desc.descriptor(checksum=False), bdk.NetworkKind.TEST)
    assert str(theirs.derive_address(0, bdk.Network.REGTEST)) == ours


@SETTINGS
@given(st.booleans(), b_expr(tap=False), b_expr(tap=True))
def test_full_satisfaction_is_accepted_by_libbitcoinkernel(tap, wsh_template, tap_template):
    text, keys = _fill(tap_template if tap else wsh_template)
    desc = _sane(f"tr({NUMS_H.hex()},{text})" if tap else f"wsh({text})")
    after, older = _locks(text)
    tx, witness = _spend(desc, keys, after, older if older else 0xFFFFFFFE)
    assert witness is not None, "a sane miniscript with everything available must be satisfiable"
    assert _accepted(desc, tx, witness)
    size = len(compact_size(len(witness))) + sum(len(compact_size(len(w))) + len(w) for w in witness)
    assert size <= desc.max_witness_weight()


@SETTINGS
@given(st.booleans(), b_expr(tap=False), b_expr(tap=True), st.randoms(use_true_random=False))
def test_partial_satisfactions_are_accepted_or_absent(tap, wsh_template, tap_template, rnd):
    text, keys = _fill(tap_template if tap else wsh_template)
    desc = _sane(f"tr({NUMS_H.hex()},{text})" if tap else f"wsh({text})")
    after, older = _locks(text)
    subset = [k for k in keys if rnd.random() < 0.5]
    tx, witness = _spend(desc, subset, after, older if older else 0xFFFFFFFE)
    if witness is not None:
        assert _accepted(desc, tx, witness)


@SETTINGS
@given(b_expr(tap=True), b_expr(tap=True))
def test_tr_address_with_miniscript_leaves_equals_bdk(left, right):
    text, _ = _fill(left + "|" + right)
    a, b = text.split("|")
    desc = _sane(f"tr({NUMS_H.hex()},{{{a},{b}}})")
    theirs = bdk.Descriptor(desc.descriptor(checksum=False), bdk.NetworkKind.TEST)
    assert str(theirs.derive_address(0, bdk.Network.REGTEST)) == desc.address(network="regtest")
