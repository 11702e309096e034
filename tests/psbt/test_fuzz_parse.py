"""Fuzz the PSBT parser: anything either parses or raises InvalidPSBT.

Same invariant as Bitcoin Core's psbt fuzz target: whatever parses serializes
back to the same bytes and parses again to an equal Psbt. The typed views and
version conversions of a parsed PSBT may raise InvalidPSBT, nothing else.
"""

import base64
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msigvault.errors import InvalidPSBT
from msigvault.psbt import Psbt

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
BIP174 = json.loads((VECTORS / "bip174.json").read_text())
BIP370 = json.loads((VECTORS / "bip370.json").read_text())


def _hexes(*groups):
    return [bytes.fromhex(v["hex"]) for group in groups for v in group]


_roles = BIP174["roles"]
SEEDS = _hexes(
    BIP174["valid"], BIP174["signer_check_failures"], BIP370["valid"], BIP370["timelock"],
    [step["expected_psbt"] for step in _roles.values() if isinstance(step, dict) and "expected_psbt" in step],
)
INVALID_SEEDS = _hexes(BIP174["invalid"], BIP370["invalid"])
ALL_SEEDS = SEEDS + INVALID_SEEDS

FUZZ = settings(
    max_examples=max(300, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def exercise(data: bytes):
    """Parse data and run everything a caller may run on the result."""
    try:
        p = Psbt.parse(data)
    except InvalidPSBT:
        return None
    out = p.serialize()
    assert out == data, "serialize(parse(x)) must give x back"
    again = Psbt.parse(out)
    assert again == p
    assert again.serialize() == out
    # views and conversions: only InvalidPSBT is allowed
    for view in (
        lambda: p.tx_version,
        lambda: p.locktime,
        lambda: [p.prevout(i) for i in range(p.input_count)],
        lambda: [p.sequence(i) for i in range(p.input_count)],
        lambda: [(p.amount(i), p.script(i)) for i in range(p.output_count)],
        lambda: p.unsigned_tx(),
        lambda: p.txid(),
        lambda: p.unique_id(),
    ):
        try:
            view()
        except InvalidPSBT:
            pass
    c = p.copy().canonicalize()
    assert Psbt.parse(c.serialize()) == p
    for convert in (p.to_v2, p.to_v0):
        try:
            q = convert()
        except InvalidPSBT:
            continue
        Psbt.parse(q.serialize())  # a conversion of a valid PSBT is valid
    return p


def test_seeds_behave():
    for s in SEEDS:
        assert exercise(s) is not None
    for s in INVALID_SEEDS:
        assert exercise(s) is None


def test_every_truncation_and_byte_flip_of_the_vectors():
    """Deterministic: every prefix, and every byte xor 0xff, of every vector."""
    for seed in SEEDS:
        for n in range(len(seed)):
            assert exercise(seed[:n]) is None or n == len(seed)
        for i in range(len(seed)):
            mutated = bytearray(seed)
            mutated[i] ^= 0xFF
            exercise(bytes(mutated))


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes(data):
    exercise(data)


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_after_magic(data):
    exercise(b"psbt\xff" + data)


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(ALL_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "dup"]))
        n = len(data)
        i = draw(st.integers(0, max(n - 1, 0)))
        if op == "flip" and n:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            data[i] = draw(st.sampled_from([0x00, 0x01, 0xFC, 0xFD, 0xFE, 0xFF, 0x20, 0x21]))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=40))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 40))]
        elif op == "dup":
            j = draw(st.integers(i, n))
            data[j:j] = data[i:j]
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_vectors(data):
    exercise(data)


def _record(types):
    lengths = st.sampled_from([0, 1, 4, 8, 20, 32, 33, 64, 65, 66, 78, 98])
    blob = st.one_of(lengths.flatmap(lambda n: st.binary(min_size=n, max_size=n)),
                     st.binary(max_size=70))
    keytype = st.one_of(st.sampled_from(types), st.integers(0, 0x1_0000))
    return st.tuples(keytype, blob, blob)


def _map_bytes(records) -> bytes:
    from msigvault.psbt.fields import compact_size, make_key

    parts = []
    for t, keydata, value in records:
        key = make_key(t, keydata)
        parts += [compact_size(len(key)), key, compact_size(len(value)), value]
    parts.append(b"\x00")
    return b"".join(parts)


@st.composite
def structured(draw):
    """A well-framed PSBTv2 whose records are random (known types favoured)."""
    n_in = draw(st.integers(0, 3))
    n_out = draw(st.integers(0, 3))
    glob = [(2, b"", b"\x02\x00\x00\x00"), (4, b"", bytes([n_in])), (5, b"", bytes([n_out])),
            (0xFB, b"", b"\x02\x00\x00\x00")]
    glob += draw(st.lists(_record([0, 1, 3, 6, 7, 0xFB, 0xFC]), max_size=3))
    maps = [glob]
    for _ in range(n_in):
        base = [(0x0E, b"", bytes(32)), (0x0F, b"", bytes(4))]
        maps.append(base + draw(st.lists(_record(list(range(0x1D)) + [0xFC]), max_size=5)))
    for _ in range(n_out):
        base = [(3, b"", bytes(8)), (4, b"", b"\x51")]
        maps.append(base + draw(st.lists(_record(list(range(9)) + [0xFC]), max_size=5)))
    if draw(st.booleans()):
        draw(st.randoms()).shuffle(maps[0])
    return b"psbt\xff" + b"".join(_map_bytes(m) for m in maps)


@FUZZ
@given(structured())
def test_structured_random_records(data):
    exercise(data)


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), mutated()))
def test_load_never_leaks_other_errors(data):
    for candidate in (data, _b64(data), _hex(data)):
        try:
            Psbt.load(candidate)
        except InvalidPSBT:
            pass


def _b64(data):
    return base64.b64encode(data).decode() if isinstance(data, bytes) else data


def _hex(data):
    return data.hex() if isinstance(data, bytes) else data
