"""Bitcoin Core's descriptor_tests.cpp miniscript cases (tests/vectors/core_descriptors_miniscript.json):
Core's scriptPubKeys, Core's refusals (by reason), and the preimage spends Core signs, here
satisfied and judged by libbitcoinkernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from embit import bip32

from msigvault.errors import InvalidDescriptor, InvalidKey
from msigvault.policy.descriptors import _inner_script, parse_descriptor
from msigvault.policy.miniscript import InsaneMiniscript, Satisfier
from msigvault.psbt.extractor import _serialize, verify_scripts
from msigvault.psbt.sighash import SighashCache, TxIn, TxOut, UnsignedTx
from msigvault.script import compact_size

DATA = json.loads((Path(__file__).parent.parent / "vectors" / "core_descriptors_miniscript.json").read_text())
AMOUNT = 10_000


@pytest.mark.parametrize("case", DATA["valid"], ids=lambda c: c["descriptor"][:50])
def test_cores_scripts(case):
    desc = parse_descriptor(case["descriptor"])
    for i in range(3):
        assert desc.script_pubkey(i).hex() == case["script"]
    assert parse_descriptor(desc.descriptor()).script_pubkey() == desc.script_pubkey()


@pytest.mark.parametrize("case", DATA["unparsable"], ids=lambda c: c["core_error"][:50])
def test_cores_refusals(case):
    with pytest.raises((InvalidDescriptor, InvalidKey)) as info:
        parse_descriptor(case["descriptor"])
    message = str(info.value)
    if "reason" in case:
        assert isinstance(info.value, InsaneMiniscript) and info.value.reason == case["reason"]
        error = case["core_error"]
        cut = min(error.find(v) for v in (" is invalid", " is insecure: ", " is not safe: ", " contains mixes")
                  if v in error)
        sub, verdict = error[:cut], error[cut:]
        assert message.startswith(sub[:40])  # the insane sub-expression (long ones are shortened)
        assert verdict.split(": ")[-1].replace(" is invalid", "is invalid").strip() in message
    elif case["core_error"].startswith("key '"):
        assert "is not valid" in message and message.startswith("tr(): key 'and_v(")
    else:
        assert case["core_error"] in message
    assert isinstance(info.value.position, int)


def test_a_case_core_later_refused_is_refused():
    (case,) = DATA["changed"]
    with pytest.raises(InsaneMiniscript) as info:
        parse_descriptor(case["descriptor"])
    assert info.value.reason == "invalid" and "dv:after(1000)" in str(info.value)


def _spend(desc, privs, preimages):
    tx = UnsignedTx(2, 0, (TxIn(b"\x44" * 32, 0, 0xFFFFFFFF),), (TxOut(AMOUNT - 300, b"\x51"),))
    script = _inner_script(desc.node.inner, 0, 0)
    digest = SighashCache(tx).segwit_v0(0, script, AMOUNT)
    sigs = {}
    for text in privs:
        key = bip32.HDKey.from_string(text.split("/")[0])
        if "/" in text:
            key = key.derive("m/" + text.split("/", 1)[1])
        sigs[key.key.get_public_key().sec()] = key.key.sign(digest).serialize() + b"\x01"
    witness = desc.satisfy(Satisfier(sigs, preimages))
    if witness is None:
        return None
    wit = compact_size(len(witness)) + b"".join(compact_size(len(w)) + w for w in witness)
    return verify_scripts(_serialize(tx, [b""], [wit]), [TxOut(AMOUNT, desc.script_pubkey())])


@pytest.mark.parametrize("case", [c for c in DATA["valid"] if "preimage" in c], ids=lambda c: c["descriptor"][9:18])
def test_preimage_spends_need_the_preimage(case):
    desc = parse_descriptor(case["descriptor"])
    assert _spend(desc, case["private"], []) is None  # SIGNABLE_FAILS without it
    assert _spend(desc, case["private"], [bytes.fromhex(case["preimage"])]) is True


def test_exotic_multisig_signs_with_either_branch():
    case = next(c for c in DATA["valid"] if c["descriptor"].startswith("wsh(thresh(1,pk("))
    desc = parse_descriptor(case["descriptor"])
    for privs in ([case["private"][0]], [case["private"][1]]):
        assert _spend(desc, privs, []) is True
