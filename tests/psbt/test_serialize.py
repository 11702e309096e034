"""PSBT container: official BIP174/BIP370 vectors, views, versions, hostile input.

Vectors come from tests/vectors/bip174.json and bip370.json (copies of the
BIPs' test vector sections; see tests/vectors/README.md).
"""

import base64
import hashlib
import json
import random
from pathlib import Path

import pytest
from embit.bip32 import HDKey
from embit.transaction import Transaction

from msigvault.errors import InvalidPSBT, MsigvaultError
from msigvault.psbt import DEFAULT_MAX_SIZE, Psbt, PsbtMap
from msigvault.psbt import fields as F

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
BIP174 = json.loads((VECTORS / "bip174.json").read_text())
BIP370 = json.loads((VECTORS / "bip370.json").read_text())
ROLES = BIP174["roles"]


def _role_psbts():
    out = []
    for name, step in ROLES.items():
        if isinstance(step, dict) and "expected_psbt" in step:
            out.append((f"role {name}", step["expected_psbt"]))
    for i, v in enumerate(ROLES["combiner_unknown_keys"]["input_psbts"]):
        out.append((f"role combiner_unknown_keys input {i}", v))
    return out


VALID = (
    [(f"bip174 valid: {v['description']}", v) for v in BIP174["valid"]]
    + [(f"bip174 signer check: {v['description']}", v) for v in BIP174["signer_check_failures"]]
    + _role_psbts()
    + [(f"bip370 valid: {v['description']}", v) for v in BIP370["valid"]]
    + [(f"bip370 timelock: {v['description']}", v) for v in BIP370["timelock"]]
)
INVALID = [(f"bip174: {v['description']}", v) for v in BIP174["invalid"]] + [
    (f"bip370: {v['description']}", v) for v in BIP370["invalid"]
]

# What each official invalid vector's error message must mention.
BIP174_INVALID_REASON = {
    "Network transaction, not PSBT format": "magic",
    "PSBT missing outputs": "output 0",
    "PSBT where one input has a filled scriptSig in the unsigned tx": "non-empty scriptSig",
    "PSBT where inputs and outputs are provided but without an unsigned tx":
        "PSBT_GLOBAL_UNSIGNED_TX is required",
    "PSBT with duplicate keys in an input": "input 0: duplicate key",
    "PSBT with invalid global transaction typed key": "PSBT_GLOBAL_UNSIGNED_TX key",
    "PSBT with invalid input witness utxo typed key": "input 0: PSBT_IN_WITNESS_UTXO key",
    "PSBT with invalid pubkey length for input partial signature typed key":
        "input 0: PSBT_IN_PARTIAL_SIG key data",
    "PSBT with invalid redeemscript typed key": "input 0: PSBT_IN_REDEEM_SCRIPT key",
    "PSBT with invalid witnessscript typed key": "input 0: PSBT_IN_WITNESS_SCRIPT key",
    "PSBT with invalid pubkey in input BIP 32 derivation paths typed key":
        "input 0: PSBT_IN_BIP32_DERIVATION key data",
    "PSBT with invalid non-witness utxo typed key": "input 0: PSBT_IN_NON_WITNESS_UTXO key",
    "PSBT with invalid final scriptsig typed key": "input 0: PSBT_IN_FINAL_SCRIPTSIG key",
    "PSBT with invalid final script witness typed key": "input 1: PSBT_IN_FINAL_SCRIPTWITNESS key",
    "PSBT with invalid pubkey in output BIP 32 derivation paths typed key":
        "output 0: PSBT_OUT_BIP32_DERIVATION key data",
    "PSBT with invalid input sighash type typed key": "input 0: PSBT_IN_SIGHASH_TYPE key",
    "PSBT with invalid output redeemScript typed key": "output 0: PSBT_OUT_REDEEM_SCRIPT key",
    "PSBT with invalid output witnessScript typed key": "output 1: PSBT_OUT_WITNESS_SCRIPT key",
    "PSBT with unsigned tx serialized with witness serialization format": "segwit serialization",
}


def bip370_reason(description: str) -> str:
    d = description.rstrip(".")
    if d == "PSBTv0 but with PSBT_GLOBAL_VERSION set to 2":
        return "PSBT_GLOBAL_UNSIGNED_TX is not allowed in PSBTv2"
    if d.startswith("PSBTv0 but with "):
        return d[len("PSBTv0 but with "):] + " is not allowed in PSBTv0"
    if d.startswith("PSBTv2 missing "):
        return d[len("PSBTv2 missing "):] + " is required in PSBTv2"
    if d.startswith("PSBTv2 with PSBT_IN_REQUIRED_TIME_LOCKTIME"):
        return "input 0: PSBT_IN_REQUIRED_TIME_LOCKTIME"
    if d.startswith("PSBTv2 with PSBT_IN_REQUIRED_HEIGHT_LOCKTIME"):
        return "input 0: PSBT_IN_REQUIRED_HEIGHT_LOCKTIME"
    raise AssertionError(f"no expected reason for BIP370 invalid vector {description!r}")


def raw(v) -> bytes:
    return bytes.fromhex(v["hex"])


def ids(cases):
    return [name[:90] for name, _ in cases]


def test_vector_counts():
    assert len(BIP174["invalid"]) == 19
    assert len(BIP174["valid"]) == 10
    assert len(BIP174["signer_check_failures"]) == 4
    assert len(BIP370["invalid"]) == 21
    assert len(BIP370["valid"]) == 14
    assert len(BIP370["timelock"]) == 10
    assert len(VALID) == 10 + 4 + 10 + 14 + 10  # roles: 7 PSBTs + 3 of the unknown-key example


# ----------------------------------------------------------------- official vectors


@pytest.mark.parametrize("name,v", VALID, ids=ids(VALID))
def test_valid_vector_round_trips(name, v):
    data = raw(v)
    assert base64.b64decode(v["base64"]) == data
    p = Psbt.parse(data)
    assert p.serialize() == data
    assert p.to_hex() == v["hex"]
    assert p.to_base64() == v["base64"]
    for form in (data, v["hex"], v["hex"].upper(), v["base64"], v["base64"].encode(),
                 "\n  " + v["base64"] + "\n", bytearray(data), memoryview(data)):
        assert Psbt.load(form) == p
    assert Psbt.from_base64(v["base64"]) == p
    assert Psbt.from_hex(v["hex"]) == p
    again = Psbt.parse(p.serialize())
    assert again == p and again.serialize() == data


@pytest.mark.parametrize("name,v", INVALID, ids=ids(INVALID))
def test_invalid_vector_raises(name, v):
    if name.startswith("bip174: "):
        reason = BIP174_INVALID_REASON[v["description"]]
    else:
        reason = bip370_reason(v["description"])
    for parse in (lambda: Psbt.parse(raw(v)), lambda: Psbt.load(v["base64"]),
                  lambda: Psbt.load(v["hex"])):
        with pytest.raises(InvalidPSBT) as exc:
            parse()
        assert reason in str(exc.value)
    assert issubclass(InvalidPSBT, MsigvaultError)


@pytest.mark.parametrize("name,v", VALID, ids=ids(VALID))
def test_valid_vectors_are_in_core_order(name, v):
    """The vectors were made by Bitcoin Core, so canonicalize() changes nothing."""
    p = Psbt.parse(raw(v))
    assert p.copy().canonicalize().serialize() == raw(v)


@pytest.mark.parametrize("name,v", _role_psbts(), ids=ids(_role_psbts()))
def test_canonicalize_restores_core_order_after_shuffling(name, v):
    p = Psbt.parse(raw(v))
    rng = random.Random(name)
    for m in [p.globals] + p.inputs + p.outputs:
        items = list(m.items())
        rng.shuffle(items)
        m._d = dict(reversed(items))
    assert p.canonicalize().serialize() == raw(v)


def _role(name) -> Psbt:
    return Psbt.parse(raw(ROLES[name]["expected_psbt"]))


def test_updater_role_example_in_canonical_order():
    """Add the updater's data in a scrambled order; canonicalize gives the BIP's bytes."""
    role = ROLES["updater"]
    p = _role("creator")
    fpr = HDKey.from_string(ROLES["master_key"]["extended_private_key"]).my_fingerprint
    prev = [bytes.fromhex(t) for t in role["previous_transactions"]]
    txids = {hashlib.sha256(hashlib.sha256(_legacy(F.parse_tx(t, "tx"))).digest()).digest(): t
             for t in prev}
    redeem = [bytes.fromhex(s) for s in role["redeem_scripts"]]
    witness = bytes.fromhex(role["witness_scripts"][0])
    origin = {}
    for k in role["public_keys"]:
        path = [int(x.rstrip("'")) + 0x80000000 for x in k["derivation_path"].split("/")[1:]]
        origin[bytes.fromhex(k["pubkey"])] = fpr + b"".join(i.to_bytes(4, "little") for i in path)
    keys = list(origin)
    # input 1 first, fields in reverse order
    txid1, n1 = p.prevout(1)
    tx1 = F.parse_tx(txids[txid1], "prev tx")
    amount, spk = tx1.vout[n1]
    i1 = p.inputs[1]
    i1.set(F.PSBT_IN_BIP32_DERIVATION, keys[2], origin[keys[2]])
    i1.set(F.PSBT_IN_BIP32_DERIVATION, keys[3], origin[keys[3]])
    i1.set(F.PSBT_IN_WITNESS_SCRIPT, b"", witness)
    i1.set(F.PSBT_IN_REDEEM_SCRIPT, b"", redeem[1])
    i1.set(F.PSBT_IN_WITNESS_UTXO, b"", amount.to_bytes(8, "little") + F.compact_size(len(spk)) + spk)
    i0 = p.inputs[0]
    i0.set(F.PSBT_IN_BIP32_DERIVATION, keys[1], origin[keys[1]])
    i0.set(F.PSBT_IN_REDEEM_SCRIPT, b"", redeem[0])
    i0.set(F.PSBT_IN_BIP32_DERIVATION, keys[0], origin[keys[0]])
    i0.set(F.PSBT_IN_NON_WITNESS_UTXO, b"", txids[p.prevout(0)[0]])
    p.outputs[0].set(F.PSBT_OUT_BIP32_DERIVATION, keys[4], origin[keys[4]])
    p.outputs[1].set(F.PSBT_OUT_BIP32_DERIVATION, keys[5], origin[keys[5]])
    assert p.canonicalize().serialize() == raw(role["expected_psbt"])
    # and adding SIGHASH_ALL at the end of each input map
    for m in p.inputs:
        m.set(F.PSBT_IN_SIGHASH_TYPE, b"", (1).to_bytes(4, "little"))
    assert p.canonicalize().serialize() == raw(ROLES["updater_sighash_all"]["expected_psbt"])


def _legacy(tx) -> bytes:
    """Serialization without witnesses (for the txid) of a parsed transaction."""
    parts = [tx.version.to_bytes(4, "little", signed=True), F.compact_size(len(tx.vin))]
    for txid, n, ss, seq in tx.vin:
        parts += [txid, n.to_bytes(4, "little"), F.compact_size(len(ss)), ss, seq.to_bytes(4, "little")]
    parts.append(F.compact_size(len(tx.vout)))
    for amount, spk in tx.vout:
        parts += [amount.to_bytes(8, "little", signed=True), F.compact_size(len(spk)), spk]
    parts.append(tx.locktime.to_bytes(4, "little"))
    return b"".join(parts)


def test_combiner_role_example_by_merging_maps():
    """Union of the two signers' records, in Core order, is the BIP's combined PSBT.

    Partial signatures are ordered by hash160 of the public key, as Core does.
    """
    a, b = _role("signer_1"), _role("signer_2")
    merged = a.copy()
    for mine, theirs in zip([merged.globals] + merged.inputs + merged.outputs,
                            [b.globals] + b.inputs + b.outputs):
        for k, val in theirs.items():
            mine.raw_set(k, val)
    assert merged.canonicalize().serialize() == raw(ROLES["combiner"]["expected_psbt"])


def test_unknown_keys_combiner_example():
    step = ROLES["combiner_unknown_keys"]
    a, b = (Psbt.parse(raw(v)) for v in step["input_psbts"])
    for mine, theirs in zip([a.globals] + a.inputs + a.outputs, [b.globals] + b.inputs + b.outputs):
        for k, val in theirs.items():
            mine.raw_set(k, val)
    assert a.canonicalize().serialize() == raw(step["expected_psbt"])


@pytest.mark.parametrize("v", BIP370["timelock"], ids=[str(v["description"])[:80] for v in BIP370["timelock"]])
def test_bip370_locktime_determination(v):
    p = Psbt.parse(raw(v))
    if v["expected_locktime"] is None:
        with pytest.raises(InvalidPSBT, match="lock time"):
            p.locktime
        with pytest.raises(InvalidPSBT):
            p.to_v0()
    else:
        assert p.locktime == v["expected_locktime"]
        assert p.to_v0().locktime == v["expected_locktime"]


# ----------------------------------------------------------------- typed views


def _embit_tx(txbytes: bytes):
    """embit's own parse of a legacy-serialized unsigned tx (embit reads a zero
    input count as a segwit marker, so such a tx cannot go through it)."""
    return Transaction.parse(txbytes)


@pytest.mark.parametrize("name,v", VALID, ids=ids(VALID))
def test_typed_views_agree_with_embit(name, v):
    p = Psbt.parse(raw(v))
    try:
        p.locktime
    except InvalidPSBT:
        return  # the one BIP370 vector whose lock time cannot be computed
    txbytes = p.unsigned_tx()
    assert p.input_count == len(p.inputs) and p.output_count == len(p.outputs)
    if p.input_count == 0:
        # legacy serialization with no inputs: check the bytes directly
        assert txbytes[4] == 0 and txbytes[5] == p.output_count
        assert F.serialize_tx(p.tx_version, [], [(p.amount(i), p.script(i)) for i in range(p.output_count)],
                              p.locktime) == txbytes
        return
    tx = _embit_tx(txbytes)
    assert tx.serialize() == txbytes
    assert p.tx_version & 0xFFFFFFFF == tx.version
    assert p.locktime == tx.locktime
    for i, inp in enumerate(tx.vin):
        assert p.prevout(i) == (bytes(reversed(inp.txid)), inp.vout)
        assert p.sequence(i) == inp.sequence
    for i, out in enumerate(tx.vout):
        assert p.amount(i) == out.value
        assert p.script(i) == out.script_pubkey.data
    assert p.txid() == tx.txid()
    assert p.unsigned_transaction().serialize() == txbytes


def test_views_on_a_known_vector():
    p = _role("creator")
    assert p.version == 0 and p.tx_version == 2 and p.locktime == 0
    assert p.prevout(0) == (bytes.fromhex(
        "75ddabb27b8845f5247975c8a5ba7c6f336c4570708ebe230caf6db5217ae858")[::-1], 0)
    assert p.prevout(1) == (bytes.fromhex(
        "1dea7cd05979072a3578cab271c02244ea8a090bbb46aa680a65ecd027048d83")[::-1], 1)
    assert p.amount(0) == 149_990_000 and p.amount(1) == 100_000_000
    assert p.script(0).hex() == "0014d85c2b71d0060b09c9886aeb815e50991dda124d"
    assert p.sequence(1) == 0xFFFFFFFF
    with pytest.raises(IndexError):
        p.prevout(2)


def test_unique_id_uses_zero_sequences():
    p = Psbt.parse(raw(BIP370["valid"][2]))  # has PSBT_IN_SEQUENCE 0xfffffffe
    assert p.sequence(0) == 0xFFFFFFFE
    q = p.copy()
    q.inputs[0].set(F.PSBT_IN_SEQUENCE, b"", (5).to_bytes(4, "little"))
    assert p.unique_id() == q.unique_id()
    assert p.txid() != q.txid()


# ----------------------------------------------------------------- versions


V0_VALID = [(n, v) for n, v in VALID if Psbt.parse(raw(v)).version == 0]
V2_VALID = [(n, v) for n, v in VALID if Psbt.parse(raw(v)).version == 2]


@pytest.mark.parametrize("name,v", V0_VALID, ids=ids(V0_VALID))
def test_v0_to_v2_and_back(name, v):
    p = Psbt.parse(raw(v))
    v2 = p.to_v2()
    assert v2.version == 2
    parsed = Psbt.parse(v2.serialize())  # a valid PSBTv2
    assert parsed == v2
    assert parsed.copy().canonicalize().serialize() == v2.serialize()
    assert v2.unsigned_tx() == p.unsigned_tx()
    assert v2.txid() == p.txid()
    assert [v2.prevout(i) for i in range(v2.input_count)] == [p.prevout(i) for i in range(p.input_count)]
    assert v2.globals.get(F.PSBT_GLOBAL_FALLBACK_LOCKTIME) == p.locktime.to_bytes(4, "little")
    assert F.PSBT_GLOBAL_UNSIGNED_TX not in v2.globals
    back = v2.to_v0()
    assert back.serialize() == raw(v)  # the vectors are canonical, so exact
    assert p.to_v0() == p and p.to_v0() is not p


@pytest.mark.parametrize("name,v", V2_VALID, ids=ids(V2_VALID))
def test_v2_to_v0(name, v):
    p = Psbt.parse(raw(v))
    try:
        locktime = p.locktime
    except InvalidPSBT:
        with pytest.raises(InvalidPSBT):
            p.to_v0()
        return
    v0 = p.to_v0()
    assert Psbt.parse(v0.serialize()) == v0
    assert v0.version == 0 and v0.locktime == locktime
    assert v0.txid() == p.txid()
    for t in F.V2_ONLY_GLOBAL | {F.PSBT_GLOBAL_VERSION}:
        assert not v0.globals.has_type(t)
    for m in v0.inputs:
        assert not any(m.has_type(t) for t in F.V2_ONLY_INPUT)
    for m in v0.outputs:
        assert not any(m.has_type(t) for t in F.V2_ONLY_OUTPUT)
    # other records survive
    assert v0.inputs[0].get(F.PSBT_IN_WITNESS_UTXO) == p.inputs[0].get(F.PSBT_IN_WITNESS_UTXO)
    assert v0.to_v2().to_v0().serialize() == v0.serialize()


# ----------------------------------------------------------------- PsbtMap


def test_psbtmap_helpers():
    m = PsbtMap()
    pub1, pub2 = b"\x02" + bytes(32), b"\x03" + bytes(32)
    m.set(F.PSBT_IN_WITNESS_UTXO, b"", b"utxo")
    m.set(F.PSBT_IN_PARTIAL_SIG, pub2, b"sig2")
    m.set(F.PSBT_IN_PARTIAL_SIG, pub1, b"sig1")
    m.set(0x1234, b"xy", b"big type")
    assert m.get(F.PSBT_IN_WITNESS_UTXO) == b"utxo"
    assert m.get(F.PSBT_IN_PARTIAL_SIG, pub1) == b"sig1"
    assert m.get(F.PSBT_IN_PARTIAL_SIG) is None
    assert m.items_of_type(F.PSBT_IN_PARTIAL_SIG) == [(pub2, b"sig2"), (pub1, b"sig1")]
    assert m.items_of_type(0x1234) == [(b"xy", b"big type")]
    assert list(m.keys())[-1] == b"\xfd\x34\x12xy"
    assert F.PSBT_IN_WITNESS_UTXO in m and (F.PSBT_IN_PARTIAL_SIG, pub1) in m
    assert b"\x02" + pub1 in m and F.PSBT_IN_SIGHASH_TYPE not in m
    assert m.types() == [1, 2, 0x1234]
    m.set(F.PSBT_IN_WITNESS_UTXO, b"", b"utxo2")  # replacing keeps the position
    assert list(m.keys())[0] == b"\x01" and len(m) == 4
    c = m.copy()
    assert c == m
    assert m.delete(F.PSBT_IN_PARTIAL_SIG, pub2) and not m.delete(F.PSBT_IN_PARTIAL_SIG, pub2)
    assert c != m and len(c) == 4
    assert m.delete_type(F.PSBT_IN_PARTIAL_SIG) == 1 and not m.has_type(F.PSBT_IN_PARTIAL_SIG)
    assert PsbtMap({b"\x01": b"a", b"\x02x": b"b"}) == PsbtMap([(b"\x02x", b"b"), (b"\x01", b"a")])
    with pytest.raises(ValueError):
        m.raw_set(b"", b"separator")


def test_copy_is_independent():
    p = _role("combiner")
    c = p.copy()
    c.inputs[0].delete_type(F.PSBT_IN_PARTIAL_SIG)
    c.globals.set(0xF0, b"", b"x")
    assert p.serialize() == raw(ROLES["combiner"]["expected_psbt"])
    assert c != p


def test_unknown_and_proprietary_records_kept_verbatim():
    p = _role("creator")
    prop_key = b"\x05vault" + b"\x01" + b"kd"
    p.globals.set(F.PSBT_GLOBAL_PROPRIETARY, prop_key, b"\xde\xad")
    p.inputs[0].set(0xF7, b"\x00\x01", b"")
    p.outputs[1].set(0x10000, b"", b"\x00" * 300)
    data = p.serialize()
    q = Psbt.parse(data)
    assert q.serialize() == data
    assert q.globals.items_of_type(F.PSBT_GLOBAL_PROPRIETARY) == [(prop_key, b"\xde\xad")]
    assert q.outputs[1].get(0x10000) == b"\x00" * 300
    canon = q.copy().canonicalize()
    assert list(canon.globals.keys())[-1][0] == 0xFC


# ----------------------------------------------------------------- hostile input


def _psbt_bytes(globals_, inputs=(), outputs=()) -> bytes:
    parts = [F.PSBT_MAGIC]
    for m in [globals_, *inputs, *outputs]:
        for k, v in m:
            parts += [F.compact_size(len(k)), k, F.compact_size(len(v)), v]
        parts.append(b"\x00")
    return b"".join(parts)


def _v2_globals(n_in, n_out, extra=()):
    return [(b"\x02", (2).to_bytes(4, "little")), (b"\x04", F.compact_size(n_in)),
            (b"\x05", F.compact_size(n_out)), (b"\xfb", (2).to_bytes(4, "little")), *extra]


V2_INPUT = [(b"\x0e", bytes(range(32))), (b"\x0f", bytes(4))]
V2_OUTPUT = [(b"\x03", (1000).to_bytes(8, "little")), (b"\x04", b"\x51")]


def test_minimal_v2_builds_and_parses():
    data = _psbt_bytes(_v2_globals(1, 1), [V2_INPUT], [V2_OUTPUT])
    p = Psbt.parse(data)
    assert p.version == 2 and p.locktime == 0 and p.sequence(0) == 0xFFFFFFFF
    assert p.serialize() == data


@pytest.mark.parametrize("data,reason", [
    (b"", "magic"),
    (b"psbt", "magic"),
    (b"psbt\xff", "global: map ends"),
    (b"psbt\xff\x00", "PSBT_GLOBAL_UNSIGNED_TX is required"),
    (b"psbt\xff\x01", "global: key of 1 bytes is truncated"),
    (b"psbt\xff\xfd", "global: key length is truncated"),
    (b"psbt\xff\xfd\x01\x00", "not minimally encoded"),
    (b"psbt\xff\xff" + (2**63).to_bytes(8, "little"), "global: key of"),
    (b"psbt\xff\x01\x00\xfe\xff\xff\xff\x7f", "value is truncated"),
    (b"psbt\xff\x01\x00\xfe\x10\x00\x00\x00", "not minimally encoded"),
    (b"psbt\xff\x01\xfd\x00", "key type is truncated"),
    (b"psbt\xff\x03\xfd\xf0\x00\x00", "key type is not minimally encoded"),
    (b"psbt\xff\x01\xfb\x04\x01\x00\x00\x00\x00", "PSBT version 1 is not supported"),
    (b"psbt\xff\x01\xfb\x04\x03\x00\x00\x00\x00", "PSBT version 3 is not supported"),
    (b"psbt\xff\x01\xfb\x01\x02\x00", "PSBT_GLOBAL_VERSION value must be 4 bytes"),
])
def test_malformed_bytes(data, reason):
    with pytest.raises(InvalidPSBT, match=reason):
        Psbt.parse(data)


def test_trailing_bytes_are_rejected():
    data = raw(ROLES["creator"]["expected_psbt"])
    with pytest.raises(InvalidPSBT, match="unexpected bytes after the last output map"):
        Psbt.parse(data + b"\x00")


def test_huge_counts_fail_fast():
    for n_in, n_out in [(2**32, 1), (1, 2**40), (2**64 - 1, 0)]:
        data = _psbt_bytes(_v2_globals(n_in, n_out), [V2_INPUT], [V2_OUTPUT])
        with pytest.raises(InvalidPSBT, match="announces"):
            Psbt.parse(data)
    # v0 transaction claiming many inputs
    tx = (2).to_bytes(4, "little") + b"\xfe" + (10**6).to_bytes(4, "little") + bytes(60)
    with pytest.raises(InvalidPSBT, match="input count"):
        Psbt.parse(_psbt_bytes([(b"\x00", tx)]))


def test_count_and_map_mismatch():
    data = _psbt_bytes(_v2_globals(2, 1), [V2_INPUT], [V2_OUTPUT])
    with pytest.raises(InvalidPSBT):
        Psbt.parse(data)
    p = Psbt.parse(_psbt_bytes(_v2_globals(1, 1), [V2_INPUT], [V2_OUTPUT]))
    p.inputs.append(PsbtMap())
    with pytest.raises(InvalidPSBT, match="input"):
        p.serialize()


def test_size_limit():
    data = raw(ROLES["combiner"]["expected_psbt"])
    assert DEFAULT_MAX_SIZE == 100_000_000
    Psbt.parse(data, max_size=len(data))
    with pytest.raises(InvalidPSBT, match="limit"):
        Psbt.parse(data, max_size=len(data) - 1)
    with pytest.raises(InvalidPSBT, match="limit"):
        Psbt.from_base64(base64.b64encode(data).decode(), max_size=100)
    with pytest.raises(InvalidPSBT, match="limit"):
        Psbt.from_hex(data.hex(), max_size=100)
    with pytest.raises(InvalidPSBT, match="limit"):
        Psbt.load("cHNidP8" + "A" * 5000, max_size=100)


@pytest.mark.parametrize("text", [
    "", "   ", "hello", "cHNidP8===", "70736274ff0z", "70736274ff0", "cHNidP8BAAoAAAAAAAAAAAAAAA=",
    "\u00e9\u00e9", b"\xff\xfe\x00", 12345, None, ["psbt"],
])
def test_load_rejects_garbage(text):
    with pytest.raises(InvalidPSBT):
        Psbt.load(text)


def test_parse_rejects_non_bytes():
    for bad in ("cHNidP8BAAoAAAAAAAAAAAAAAA==", None, 5):
        with pytest.raises(InvalidPSBT):
            Psbt.parse(bad)


# ----------------------------------------------------------------- field checks


def _v2_with(input_extra=(), output_extra=(), global_extra=()):
    return _psbt_bytes(_v2_globals(1, 1, global_extra), [V2_INPUT + list(input_extra)],
                       [V2_OUTPUT + list(output_extra)])


PUB = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
XONLY = PUB[1:]
NOT_ON_CURVE = b"\x02" + (5).to_bytes(32, "big")  # x = 5 is not on secp256k1


def _tree(*leaves):
    return b"".join(bytes([d, 0xC0]) + F.compact_size(len(s)) + s for d, s in leaves)


@pytest.mark.parametrize("record,ok", [
    ((b"\x01", (5).to_bytes(8, "little") + b"\x01\x51"), True),
    ((b"\x01", (5).to_bytes(8, "little") + b"\x02\x51"), False),
    ((b"\x01", (5).to_bytes(8, "little") + b"\x01\x51\x00"), False),
    ((b"\x01", b"\x05"), False),
    ((b"\x02" + PUB, b"\x30\x01\x01"), True),
    ((b"\x02" + NOT_ON_CURVE, b"\x30"), False),
    ((b"\x02" + b"\x05" + PUB[1:], b"\x30"), False),
    ((b"\x03", b"\x01\x00\x00\x00"), True),
    ((b"\x03", b"\x01\x00\x00"), False),
    ((b"\x06" + PUB, bytes(4)), True),
    ((b"\x06" + PUB, bytes(4 * 6)), True),
    ((b"\x06" + PUB, b""), False),
    ((b"\x06" + PUB, bytes(6)), False),
    ((b"\x08", b"\x02\x01\xaa\x00"), True),
    ((b"\x08", b"\x02\x01\xaa"), False),
    ((b"\x0b" + hashlib.sha256(b"pre").digest(), b"pre"), True),
    ((b"\x0b" + hashlib.sha256(b"pre").digest(), b"pra"), False),
    ((b"\x0b" + bytes(20), b"pre"), False),
    ((b"\x0c" + F.hash160(b"pre"), b"pre"), True),
    ((b"\x0a" + bytes(20), b"pre"), False),
    ((b"\x10", b"\xfe\xff\xff\xff"), True),
    ((b"\x10", b"\xfe\xff\xff"), False),
    ((b"\x11", (500_000_000).to_bytes(4, "little")), True),
    ((b"\x12", (1).to_bytes(4, "little")), True),
    ((b"\x12", (0).to_bytes(4, "little")), False),
    ((b"\x13", bytes(64)), True),
    ((b"\x13", bytes(65)), True),
    ((b"\x13", bytes(63)), False),
    ((b"\x14" + XONLY + bytes(32), bytes(64)), True),
    ((b"\x14" + XONLY, bytes(64)), False),
    ((b"\x15\xc0" + XONLY, b"\x51\xc0"), True),
    ((b"\x15\xc0" + XONLY + bytes(32), b"\x51\xc0"), True),
    ((b"\x15\xc0" + XONLY + bytes(31), b"\x51\xc0"), False),
    ((b"\x15\xc0" + XONLY, b""), False),
    ((b"\x16" + XONLY, b"\x00" + bytes(4)), True),
    ((b"\x16" + XONLY, b"\x01" + bytes(32) + bytes(12)), True),
    ((b"\x16" + XONLY, b"\x02" + bytes(32) + bytes(4)), False),
    ((b"\x16" + XONLY + b"\x00", b"\x00" + bytes(4)), False),
    ((b"\x17", XONLY), True),
    ((b"\x17", PUB), False),
    ((b"\x18", bytes(31)), False),
    ((b"\x1a" + PUB, PUB + PUB), True),
    ((b"\x1a" + PUB, PUB + b"\x02"), False),
    ((b"\x1b" + PUB + PUB, bytes(66)), True),
    ((b"\x1b" + PUB + PUB + bytes(32), bytes(66)), True),
    ((b"\x1c" + PUB + PUB, bytes(31)), False),
    ((b"\xfc\x05vault\x00", b"anything"), True),
    ((b"\xfc\x05vau", b""), False),
    ((b"\xfc\x05vault", b""), False),
    ((b"\xfc", b""), False),
    ((b"\x09", b"proof of reserves"), True),
    ((b"\x09\x00", b""), False),
    ((b"\x00", bytes(10)), False),  # parses (as Core reads it) but is not the tx spent
    ((b"\x00", bytes(9)), False),
    ((b"\x00", bytes(5) + b"\x02" + bytes(4)), False),  # unknown optional data
])
def test_input_field_checks(record, ok):
    data = _v2_with(input_extra=[record])
    if ok:
        assert Psbt.parse(data).serialize() == data
    else:
        with pytest.raises(InvalidPSBT, match="input 0: "):
            Psbt.parse(data)


@pytest.mark.parametrize("record,ok", [
    ((b"\x02" + PUB, bytes(8)), True),
    ((b"\x02" + PUB[:-1], bytes(8)), False),
    ((b"\x03", bytes(7)), False),
    ((b"\x05", XONLY), True),
    ((b"\x05\x00", XONLY), False),
    ((b"\x06", _tree((0, b"\x51"))), True),
    ((b"\x06", _tree((1, b"\x51"), (1, b"\x52"))), True),
    ((b"\x06", _tree((1, b"\x51"), (2, b"\x52"), (2, b"\x53"))), True),
    ((b"\x06", _tree((2, b"\x51"), (1, b"\x52"), (2, b"\x53"))), False),
    ((b"\x06", _tree((1, b"\x51"))), False),
    ((b"\x06", _tree((0, b"\x51"), (0, b"\x52"))), False),
    ((b"\x06", _tree((129, b"\x51"))), False),
    ((b"\x06", b""), False),
    ((b"\x06", b"\x00\xc1\x01\x51"), False),
    ((b"\x06", b"\x00\xc0\x02\x51"), False),
    ((b"\x07" + XONLY, b"\x00" + bytes(8)), True),
    ((b"\x07" + PUB, b"\x00" + bytes(8)), False),
    ((b"\x08" + PUB, PUB), True),
    ((b"\x08" + PUB, b""), False),
])
def test_output_field_checks(record, ok):
    data = _v2_with(output_extra=[record])
    if ok:
        assert Psbt.parse(data).serialize() == data
    else:
        with pytest.raises(InvalidPSBT, match="output 0: "):
            Psbt.parse(data)


def test_global_xpub_checks():
    xpub = HDKey.from_string(ROLES["master_key"]["extended_private_key"]).derive("m/0h/1h").to_public()
    key = b"\x01" + xpub.serialize()
    good = b"\x01\x02\x03\x04" + (0x80000000).to_bytes(4, "little") + (0x80000001).to_bytes(4, "little")
    assert Psbt.parse(_v2_with(global_extra=[(key, good)])).globals.get(1, xpub.serialize()) == good
    for bad in (good[:-4], good + bytes(4), good[:6]):
        with pytest.raises(InvalidPSBT, match="global: PSBT_GLOBAL_XPUB"):
            Psbt.parse(_v2_with(global_extra=[(key, bad)]))
    with pytest.raises(InvalidPSBT, match="PSBT_GLOBAL_XPUB key data must be a 78 byte"):
        Psbt.parse(_v2_with(global_extra=[(key[:-1], good)]))
    xprv_key = b"\x01" + HDKey.from_string(ROLES["master_key"]["extended_private_key"]).derive(
        "m/0h/1h").serialize()
    with pytest.raises(InvalidPSBT, match="valid public key"):
        Psbt.parse(_v2_with(global_extra=[(xprv_key, good)]))


def test_check_keys_can_be_turned_off():
    data = _v2_with(input_extra=[(b"\x06" + NOT_ON_CURVE, bytes(4))])
    with pytest.raises(InvalidPSBT, match="not a valid public key"):
        Psbt.parse(data)
    assert Psbt.parse(data, check_keys=False).serialize() == data


@pytest.mark.parametrize("record", [
    (b"\x02", bytes(3)), (b"\x03", bytes(5)), (b"\x04", b"\x01\x02"), (b"\x04", b"\xfd\x01\x00"),
    (b"\x05", b"\x01\x00"), (b"\x06", b""), (b"\x06\x00", b"\x01"),
])
def test_global_v2_field_checks(record):
    glob = [r for r in _v2_globals(1, 1) if r[0] != record[0]] + [record]
    with pytest.raises(InvalidPSBT, match="global: "):
        Psbt.parse(_psbt_bytes(glob, [V2_INPUT], [V2_OUTPUT]))


def test_witness_utxo_message_names_input_and_field():
    p = _role("updater")
    p.inputs[1].set(F.PSBT_IN_WITNESS_UTXO, b"", bytes(8) + b"\x17" + bytes(5))
    with pytest.raises(InvalidPSBT, match=r"^input 1: PSBT_IN_WITNESS_UTXO scriptPubKey is truncated$"):
        Psbt.parse(p.serialize())
    with pytest.raises(InvalidPSBT, match="input 1: PSBT_IN_WITNESS_UTXO"):
        p.validate()


def test_non_witness_utxo_must_be_a_whole_transaction():
    p = _role("updater")
    utxo = p.inputs[0].get(F.PSBT_IN_NON_WITNESS_UTXO)
    for bad in (utxo[:-1], utxo + b"\x00", utxo[:40]):
        p.inputs[0].set(F.PSBT_IN_NON_WITNESS_UTXO, b"", bad)
        with pytest.raises(InvalidPSBT, match="input 0: PSBT_IN_NON_WITNESS_UTXO"):
            p.validate()


def test_from_unsigned_tx():
    creator = _role("creator")
    p = Psbt.from_unsigned_tx(creator.unsigned_tx())
    assert p.serialize() == creator.serialize()
    q = Psbt.from_unsigned_tx(creator.unsigned_transaction())
    assert q == p
    signed = bytearray(creator.unsigned_tx())
    with pytest.raises(InvalidPSBT):
        Psbt.from_unsigned_tx(bytes(signed[:-1]))


def test_repr_is_short():
    p = _role("combiner")
    assert repr(p) == "<Psbt v0 inputs=2 outputs=2>"
    assert len(repr(p.inputs[0])) < 100
