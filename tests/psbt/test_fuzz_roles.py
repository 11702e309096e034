"""Record-level fuzzing of every PSBT role (a permanent harness; `make fuzz` runs it longer).

Seeds are real ceremony PSBTs of every script type, v0 and v2, unsigned, partly signed, fully
signed and finalized. One mutation is applied at the record level (a field of a valid PSBT, not
only raw bytes): a value's byte flipped, truncated, extended or replaced, an amount set out of
range, a record deleted, duplicated under another key, moved to another map, or a known field
added with random data. Then, as Bitcoin Core's fuzz target asks:

- anything that parses serializes back to exactly the same bytes;
- analyze, check/sign, combine (with the untouched copy), finalize and extract raise nothing
  but MsigvaultError (no OverflowError, IndexError, ValueError, ...);
- and a mutated PSBT that the signer accepts is one it would have accepted anyway: the
  signature it adds verifies in the combiner.
"""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msigvault import Vault
from msigvault.errors import MsigvaultError
from msigvault.network import Network
from msigvault.psbt import fields as F
from msigvault.psbt.analyzer import analyze
from msigvault.psbt.combiner import combine
from msigvault.psbt.extractor import extract
from msigvault.psbt.finalizer import finalize
from msigvault.psbt.psbt import Psbt
from msigvault.psbt.signer import SignerPolicy, sign
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.utxos import synthetic_utxo

NET = Network.REGTEST
EXTERNAL = bytes.fromhex("0014") + bytes(range(20))
HOLDERS = [TestKeyholder.from_label(f"fuzz-roles-{i}") for i in range(3)]
LAX = SignerPolicy(max_fee_fraction=1.0, allow_witness_utxo_only=True)


def _seeds():
    seeds = []
    for script in ("sh", "sh-wsh", "wsh", "tr"):
        vault = Vault.multisig(2, [h.cosigner(script) for h in HOLDERS], script=script, network=NET)
        utxos = [synthetic_utxo(vault, a, index=i, seed=f"fuzz-{script}") for i, a in enumerate((90_000, 120_000))]
        for version in (0, 2):
            unsigned = vault.create_psbt(utxos, [(EXTERNAL, 100_000)], fee_rate=2.0, change_index=1,
                                         version=version)
            one, _ = sign(unsigned, vault, HOLDERS[0].root)
            two, _ = sign(unsigned, vault, HOLDERS[2].root)
            both = combine([one, two], vault)
            final = finalize(both, vault)
            for p in (unsigned, one, both, final):
                seeds.append((vault, p))
    return seeds


SEEDS = _seeds()
_KNOWN_IN = sorted(F.INPUT_NAMES)
_KNOWN_OUT = sorted(F.OUTPUT_NAMES)
_KNOWN_GLOBAL = sorted(F.GLOBAL_NAMES)
_AMOUNTS = [-1, -(2**63), 2**63 - 1, 21_000_000 * 10**8 + 1, 0, 1, 2**32]

FUZZ = settings(
    max_examples=int(os.environ.get("MSIGVAULT_FUZZ_EXAMPLES", "0")) or max(150, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def _maps(p):
    return [("global", p.globals)] + [("input", m) for m in p.inputs] + [("output", m) for m in p.outputs]


@st.composite
def mutated(draw):
    vault, seed = draw(st.sampled_from(SEEDS))
    p = seed.copy()
    maps = _maps(p)
    kind, m = draw(st.sampled_from(maps))
    keys = list(m.keys())
    op = draw(st.sampled_from(["flip", "truncate", "extend", "replace", "amount", "delete", "rekey",
                               "move", "add"] if keys else ["add"]))
    if op in ("flip", "truncate", "extend", "replace", "amount", "delete", "rekey", "move"):
        key = draw(st.sampled_from(keys))
        value = bytes(m.raw_get(key))
        if op == "flip":
            if value:
                i = draw(st.integers(0, len(value) - 1))
                value = value[:i] + bytes([value[i] ^ (1 << draw(st.integers(0, 7)))]) + value[i + 1:]
            m.raw_set(key, value)
        elif op == "truncate":
            m.raw_set(key, value[: draw(st.integers(0, max(0, len(value) - 1)))])
        elif op == "extend":
            m.raw_set(key, value + draw(st.binary(min_size=1, max_size=40)))
        elif op == "replace":
            m.raw_set(key, draw(st.binary(max_size=120)))
        elif op == "amount":
            amount = draw(st.sampled_from(_AMOUNTS)).to_bytes(8, "little", signed=True)
            m.raw_set(key, amount + value[8:] if len(value) >= 8 else amount)
        elif op == "delete":
            m.raw_delete(key)
        elif op == "rekey":
            m.raw_delete(key)
            m.raw_set(key + draw(st.binary(min_size=1, max_size=33)), value)
        elif op == "move":
            m.raw_delete(key)
            _, other = draw(st.sampled_from(maps))
            other.raw_set(key, value)
    else:
        known = {"global": _KNOWN_GLOBAL, "input": _KNOWN_IN, "output": _KNOWN_OUT}[kind]
        t = draw(st.sampled_from(known))
        keydata = draw(st.sampled_from([b"", draw(st.binary(min_size=32, max_size=33))]))
        m.set(t, keydata, draw(st.binary(max_size=120)))
    return vault, seed, _serialize(p)


def _serialize(p) -> bytes:
    """The raw bytes of a possibly invalid PSBT object (no validation)."""
    parts = [F.PSBT_MAGIC]
    for _, m in _maps(p):
        m._serialize_into(parts)
    return b"".join(parts)


def _roles(vault, seed, p):
    yield None, lambda: analyze(p, vault)
    for h in HOLDERS:
        yield h, lambda h=h: sign(p, vault, h.root, policy=LAX)
    yield None, lambda: combine([p, seed], vault)
    yield None, lambda: combine([seed, p], vault)
    yield None, lambda: finalize(p, vault)
    yield None, lambda: extract(p)
    yield None, lambda: extract(p, verify=False, max_fee_sats=None, max_weight=None, min_fee_rate=None)


@FUZZ
@given(mutated())
def test_every_role_on_mutated_records(case):
    vault, seed, data = case
    try:
        p = Psbt.parse(data)
    except MsigvaultError:
        return
    assert p.serialize() == data, "anything that parses serializes back byte for byte"
    for holder, role in _roles(vault, seed, p):
        try:
            result = role()
        except MsigvaultError:
            continue
        if holder is not None:  # the signer accepted it: its own signature verifies on every input
            report = analyze(result[0], vault)
            assert all(holder.fingerprint.hex() in x["signed_by"] for x in report["inputs"]), report
