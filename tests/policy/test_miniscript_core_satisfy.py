"""Core's TestSatisfy over the fixed-test vectors, with a real transaction and libbitcoinkernel
as the judge: Core's keys are the private keys 1..255 and its preimages 31 zero bytes and one
byte 1..255 (miniscript_tests.cpp's TestData), so every signature and preimage can be made here.
For each valid vector in each context, and each way of setting nLockTime/nSequence: a
non-malleable witness, when one is produced, is accepted (and so is a malleable one); a sane miniscript is satisfied by at
least one setting; with nothing available no non-malleable witness exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from embit import ec
from embit.hashes import tagged_hash
from embit.util import secp256k1 as secp

from msigvault.policy.miniscript import Context, Fragment, MiniscriptError, Satisfier, parse_miniscript
from msigvault.policy.vault import NUMS_H
from msigvault.psbt.extractor import _serialize, verify_scripts
from msigvault.psbt.sighash import SighashCache, TxIn, TxOut, UnsignedTx
from msigvault.script import compact_size, p2tr_script_pubkey, p2wsh_script_pubkey, tapleaf_hash

DATA = json.loads((Path(__file__).parent.parent / "vectors" / "core_miniscript.json").read_text())
PRIV = {}
for _i in range(1, 256):
    _k = ec.PrivateKey(_i.to_bytes(32, "big"))
    PRIV[_k.get_public_key().sec()] = _k
PREIMAGES = [bytes(31) + bytes([i]) for i in range(1, 256)]
AMOUNT = 20_000


def _cases():
    for case in DATA["tests"]:
        for ctx in Context:
            try:
                node = parse_miniscript(case["miniscript"], ctx)
            except MiniscriptError:
                continue
            if node.is_valid_top_level and all(k in PRIV for k in node.all_keys()):
                yield case["miniscript"], ctx


CASES = list(_cases())


def _output(node):
    script = node.to_script()
    if node.ctx is Context.P2WSH:
        return script, p2wsh_script_pubkey(script), None
    leaf = tapleaf_hash(script)
    point = secp.ec_pubkey_parse(b"\x02" + NUMS_H)
    tweaked = secp.ec_pubkey_serialize(secp.ec_pubkey_add(point, tagged_hash("TapTweak", NUMS_H + leaf)))
    control = bytes([0xC0 | (tweaked[0] - 2)]) + NUMS_H
    return script, p2tr_script_pubkey(tweaked[1:]), control


def _settings(node):
    afters = [n.k for n in node.nodes() if n.fragment is Fragment.AFTER]
    olders = [n.k for n in node.nodes() if n.fragment is Fragment.OLDER]
    lock_times = {0} | {max((a for a in afters if (a < 500_000_000) is kind), default=0) for kind in (True, False)}
    sequences = {0xFFFFFFFE}
    for kind in (True, False):  # blocks, then 512-second units
        group = [o for o in olders if (not o & (1 << 22)) is kind]
        if group:
            sequences.add(max(o & 0xFFFF for o in group) | (0 if kind else 1 << 22))
    return [(lt, seq) for lt in lock_times for seq in sequences]


def _witness(node, lock_time, sequence, *, everything=True, nonmalleable=True):
    script, spk, control = _output(node)
    tx = UnsignedTx(2, lock_time, (TxIn(b"\x55" * 32, 0, sequence),), (TxOut(AMOUNT - 400, b"\x51"),))
    cache = SighashCache(tx, [TxOut(AMOUNT, spk)])
    sigs = {}
    if everything:
        for key in node.all_keys():
            if control is None:
                sigs[key] = PRIV[key].sign(cache.segwit_v0(0, script, AMOUNT)).serialize() + b"\x01"
            else:
                sigs[key[1:]] = PRIV[key].schnorr_sign(cache.taproot(0, leaf_hash=tapleaf_hash(script))).serialize()
    sat = Satisfier(sigs, PREIMAGES if everything else (), lock_time=lock_time, sequence=sequence)
    stack = node.satisfy(sat, nonmalleable=nonmalleable)
    if stack is None:
        return None, None
    witness = stack + [script] + ([control] if control else [])
    wit = compact_size(len(witness)) + b"".join(compact_size(len(w)) + w for w in witness)
    return _serialize(tx, [b""], [wit]), [TxOut(AMOUNT, spk)]


@pytest.mark.parametrize("text,ctx", CASES, ids=[f"{c.value}:{t[:40]}" for t, c in CASES])
def test_satisfactions_of_cores_vectors_are_accepted(text, ctx):
    node = parse_miniscript(text, ctx)
    found = False
    for lock_time, sequence in _settings(node):
        raw, spent = _witness(node, lock_time, sequence)
        mal_raw, mal_spent = _witness(node, lock_time, sequence, nonmalleable=False)
        if raw is not None:
            found = True
            assert mal_raw == raw  # Core: the malleable algorithm finds the same witness
            if node.valid_satisfactions():
                assert verify_scripts(raw, spent), (lock_time, sequence)
        if mal_raw is not None and node.valid_satisfactions():
            # malleable witnesses can only fail on resource limits, which valid_satisfactions excludes
            assert verify_scripts(mal_raw, mal_spent), (lock_time, sequence)
    if node.is_sane() and node.is_satisfiable_at_all:
        assert found, "a sane miniscript must be satisfiable when everything is available"
    assert _witness(node, 0, 0xFFFFFFFE, everything=False)[0] is None or not node.needs_signature


def test_the_cases_cover_both_contexts():
    assert {c for _, c in CASES} == set(Context) and len(CASES) > 100
