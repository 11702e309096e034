"""Adversarial regression tests for the PSBT parser: out-of-range amounts, hostile sizes, and the
checks Bitcoin Core's decodepsbt makes (non_witness_utxo against the outpoint, MuSig2 keys).

Each test here failed on the parser before these checks (it accepted the PSBT, returned the
amount, or crashed with OverflowError in the roles).
"""

import hashlib

import pytest

from msigvault.errors import InvalidPSBT, MsigvaultError
from msigvault.psbt import Psbt, hazmat
from msigvault.psbt import fields as F
from msigvault.psbt import psbt as P

MAX = 21_000_000 * 100_000_000  # Core's MAX_MONEY
PUB = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
PUB2 = bytes.fromhex("02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5")
NOT_ON_CURVE = b"\x02" + (5).to_bytes(32, "big")  # x = 5 is not on secp256k1
SPK = bytes.fromhex("0014") + bytes(20)


# ----------------------------------------------------------------- builders


def rec(key: bytes, value: bytes) -> bytes:
    return F.compact_size(len(key)) + key + F.compact_size(len(value)) + value


def psbt_bytes(glob, inputs, outputs) -> bytes:
    maps = [glob] + list(inputs) + list(outputs)
    return F.PSBT_MAGIC + b"".join(b"".join(rec(k, v) for k, v in m) + b"\x00" for m in maps)


def amount_bytes(sats: int) -> bytes:
    return sats.to_bytes(8, "little", signed=True)


def raw_tx(vin, vout, witness=None) -> bytes:
    """A transaction with any amounts (even invalid ones); vin [(txid, n)], vout [(sats, spk)]."""
    parts = [(2).to_bytes(4, "little")]
    if witness is not None:
        parts.append(b"\x00\x01")
    parts.append(F.compact_size(len(vin)))
    for txid, n in vin:
        parts += [txid, n.to_bytes(4, "little"), b"\x00", b"\xff\xff\xff\xff"]
    parts.append(F.compact_size(len(vout)))
    for sats, spk in vout:
        parts += [amount_bytes(sats), F.compact_size(len(spk)), spk]
    if witness is not None:
        for stack in witness:
            parts.append(F.compact_size(len(stack)) + b"".join(F.compact_size(len(x)) + x for x in stack))
    parts.append(bytes(4))
    return b"".join(parts)


def legacy_txid(tx: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(tx).digest()).digest()


def v2_globals(n_in: int, n_out: int):
    return [(b"\x02", (2).to_bytes(4, "little")), (b"\x04", F.compact_size(n_in)),
            (b"\x05", F.compact_size(n_out)), (b"\xfb", (2).to_bytes(4, "little"))]


def v2_input(txid: bytes = bytes(32), n: int = 0, extra=()):
    return [(b"\x0e", txid), (b"\x0f", n.to_bytes(4, "little"))] + list(extra)


def v2_output(sats: int = 1000, extra=()):
    return [(b"\x03", amount_bytes(sats)), (b"\x04", SPK)] + list(extra)


def v2(inputs=None, outputs=None) -> bytes:
    inputs = [v2_input()] if inputs is None else inputs
    outputs = [v2_output()] if outputs is None else outputs
    return psbt_bytes(v2_globals(len(inputs), len(outputs)), inputs, outputs)


def v0(vout, inputs=None, prev_in=((bytes(32), 0),)) -> bytes:
    tx = raw_tx(list(prev_in), vout)
    inputs = [[] for _ in prev_in] if inputs is None else inputs
    return psbt_bytes([(b"\x00", tx)], inputs, [[] for _ in vout])


# ----------------------------------------------------------------- 1. amounts


@pytest.mark.parametrize("sats", [-1, -(2**63), MAX + 1, 2**63 - 1])
def test_v2_output_amount_out_of_range(sats):
    with pytest.raises(InvalidPSBT, match=f"output 0: PSBT_OUT_AMOUNT {sats} is out of range"):
        Psbt.parse(v2(outputs=[v2_output(sats)]))


@pytest.mark.parametrize("sats", [0, 1, MAX])
def test_amounts_at_the_edges_are_fine(sats):
    assert Psbt.parse(v2(outputs=[v2_output(sats)])).amount(0) == sats
    assert Psbt.parse(v0([(sats, SPK)])).amount(0) == sats


def test_v2_output_total_out_of_range():
    half = MAX // 2 + 1
    with pytest.raises(InvalidPSBT, match=f"PSBT_OUT_AMOUNT values of all outputs total {2 * half} sats"):
        Psbt.parse(v2(outputs=[v2_output(half), v2_output(half)]))
    assert len(Psbt.parse(v2(outputs=[v2_output(half), v2_output(MAX - half)])).outputs) == 2


def test_v0_unsigned_tx_output_out_of_range():
    with pytest.raises(InvalidPSBT, match="global: PSBT_GLOBAL_UNSIGNED_TX output 1 amount -5 is out of range") as exc:
        Psbt.parse(v0([(1000, SPK), (-5, SPK)]))
    assert exc.value.code == "psbt.invalid" and exc.value.field == "PSBT_GLOBAL_UNSIGNED_TX"
    half = MAX // 2 + 1
    with pytest.raises(InvalidPSBT, match="global: PSBT_GLOBAL_UNSIGNED_TX outputs total") as exc:
        Psbt.parse(v0([(half, SPK), (half, SPK)]))
    assert exc.value.code == "psbt.invalid" and exc.value.field == "PSBT_GLOBAL_UNSIGNED_TX"


@pytest.mark.parametrize("sats", [-1, MAX + 1])
def test_witness_utxo_amount_out_of_range(sats):
    data = v2(inputs=[v2_input(extra=[(b"\x01", amount_bytes(sats) + b"\x01\x51")])])
    with pytest.raises(InvalidPSBT, match=f"input 0: PSBT_IN_WITNESS_UTXO amount {sats} is out of range"):
        Psbt.parse(data)


def test_non_witness_utxo_amounts_out_of_range():
    prev = raw_tx([(bytes(32), 0)], [(1000, SPK), (-7, SPK)])
    data = v2(inputs=[v2_input(legacy_txid(prev), 0, extra=[(b"\x00", prev)])])
    with pytest.raises(
        InvalidPSBT, match="input 0: PSBT_IN_NON_WITNESS_UTXO output 1 amount -7 is out of range"
    ) as exc:
        Psbt.parse(data)
    assert exc.value.code == "psbt.invalid"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_NON_WITNESS_UTXO"
    half = MAX // 2 + 1
    prev = raw_tx([(bytes(32), 0)], [(half, SPK), (half, SPK)])
    data = v2(inputs=[v2_input(legacy_txid(prev), 0, extra=[(b"\x00", prev)])])
    with pytest.raises(InvalidPSBT, match="input 0: PSBT_IN_NON_WITNESS_UTXO outputs total") as exc:
        Psbt.parse(data)
    assert exc.value.code == "psbt.invalid"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_NON_WITNESS_UTXO"


def test_accessors_never_return_an_out_of_range_amount():
    with pytest.raises(InvalidPSBT, match="UTXO amount -1 is out of range") as exc:
        F.parse_txout(amount_bytes(-1) + b"\x01\x51", "UTXO")
    assert exc.value.code == "psbt.invalid"
    with pytest.raises(InvalidPSBT, match="prev output 0 amount -1 is out of range") as exc:
        F.parse_tx(raw_tx([(bytes(32), 0)], [(-1, SPK)]), "prev")
    assert exc.value.code == "psbt.invalid"
    p = Psbt.parse(v2())
    p.outputs[0].set(F.PSBT_OUT_AMOUNT, b"", amount_bytes(-1))  # edited by code, not parsed
    with pytest.raises(InvalidPSBT, match="output 0: PSBT_OUT_AMOUNT -1 is out of range") as exc:
        p.amount(0)
    assert exc.value.to_dict()["output"] == 0 and exc.value.field == "PSBT_OUT_AMOUNT"
    for convert in (p.to_v0, p.unique_id, p.unsigned_tx, p.validate):
        with pytest.raises(InvalidPSBT, match="out of range") as exc:
            convert()
        assert exc.value.code == "psbt.invalid"


@pytest.mark.parametrize("sats", [-1, 2**63, 2**64])
def test_building_a_transaction_with_a_bad_amount_raises_invalid_psbt(sats):
    # negative amounts used to be written as huge two's complement values, 2**63 and up
    # crashed with OverflowError
    with pytest.raises(InvalidPSBT, match=f"transaction output 0 amount {sats} is out of range"):
        F.serialize_tx(2, [(bytes(32), 0, 0)], [(sats, SPK)], 0)
    with pytest.raises(InvalidPSBT, match="out of range") as exc:
        hazmat.create([("00" * 32, 0, 0xFFFFFFFF)], [(SPK, sats)])
    assert exc.value.code == "psbt.invalid"


def test_roles_refuse_a_tampered_amount_instead_of_crashing():
    from msigvault import Vault
    from msigvault.network import Network
    from msigvault.psbt.signer import sign
    from msigvault.testing.keyholders import TestKeyholder
    from msigvault.testing.utxos import synthetic_utxo

    holders = [TestKeyholder.from_label(x) for x in ("alice", "bob", "carol")]
    vault = Vault.multisig(2, [h.cosigner("tr") for h in holders], script="tr", network=Network.REGTEST)
    utxo = synthetic_utxo(vault, 100_000, index=0, seed="hardening")
    psbt = vault.create_psbt([utxo], [(SPK, 50_000)], fee_rate=1.0, change_index=0)
    wit = bytes(psbt.inputs[0].get(F.PSBT_IN_WITNESS_UTXO))
    psbt.inputs[0].set(F.PSBT_IN_WITNESS_UTXO, b"", amount_bytes(-100_000) + wit[8:])
    with pytest.raises(MsigvaultError, match="PSBT_IN_WITNESS_UTXO amount -100000 is out of range") as exc:
        sign(psbt, vault, holders[0].root)  # was: OverflowError in the BIP341 sighash
    assert exc.value.code == "psbt.invalid"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_WITNESS_UTXO"
    with pytest.raises(InvalidPSBT, match="input 0: PSBT_IN_WITNESS_UTXO amount -100000") as exc:
        Psbt.parse(psbt.serialize())
    assert exc.value.code == "psbt.invalid"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_WITNESS_UTXO"


# ----------------------------------------------------------------- 2. hostile sizes


def test_input_and_output_counts_are_bounded():
    assert P.MAX_INPUTS == P.MAX_OUTPUTS == 10_000
    pad = bytes(P.MAX_INPUTS + 2)  # enough bytes that only the limit can refuse it
    data = psbt_bytes(v2_globals(P.MAX_INPUTS + 1, 1), [], []) + pad
    with pytest.raises(InvalidPSBT, match="PSBT_GLOBAL_INPUT_COUNT 10001 is more than the limit of 10,000") as exc:
        Psbt.parse(data)
    assert exc.value.code == "psbt.invalid"
    assert exc.value.field == "PSBT_GLOBAL_INPUT_COUNT"
    assert exc.value.limit == 10000
    data = psbt_bytes(v2_globals(1, P.MAX_OUTPUTS + 1), [], []) + pad
    with pytest.raises(InvalidPSBT, match="PSBT_GLOBAL_OUTPUT_COUNT 10001 is more than the limit") as exc:
        Psbt.parse(data)
    assert exc.value.code == "psbt.invalid"
    assert exc.value.field == "PSBT_GLOBAL_OUTPUT_COUNT"
    assert exc.value.limit == 10000
    tx = raw_tx([(bytes(32), i) for i in range(P.MAX_INPUTS + 1)], [(1, SPK)])
    with pytest.raises(InvalidPSBT, match="UNSIGNED_TX has 10001 inputs, more than the limit of 10,000") as exc:
        Psbt.parse(psbt_bytes([(b"\x00", tx)], [], []))
    assert exc.value.code == "psbt.invalid" and exc.value.field == "PSBT_GLOBAL_UNSIGNED_TX"
    tx = raw_tx([(bytes(32), 0)], [(1, SPK)] * (P.MAX_OUTPUTS + 1))
    with pytest.raises(InvalidPSBT, match="UNSIGNED_TX has 10001 outputs, more than the limit") as exc:
        Psbt.parse(psbt_bytes([(b"\x00", tx)], [], []))
    assert exc.value.code == "psbt.invalid" and exc.value.field == "PSBT_GLOBAL_UNSIGNED_TX"


def test_big_but_real_psbts_are_fine():
    p = Psbt.parse(v2(inputs=[v2_input(i.to_bytes(32, "little")) for i in range(P.MAX_INPUTS)]))
    assert p.input_count == P.MAX_INPUTS
    prev = raw_tx([(bytes(32), 0)], [(1000, SPK)] * 10)
    txid = legacy_txid(prev)
    p = Psbt.parse(v2(inputs=[v2_input(txid, i % 10, extra=[(b"\x00", prev)]) for i in range(1000)]))
    assert p.input_count == 1000


def test_a_999_key_taproot_input_fits_in_one_map():
    leaf = bytes(32)
    records = [(b"\x16" + i.to_bytes(32, "big"), b"\x01" + leaf + bytes(4) + bytes(20)) for i in range(999)]
    records += [(b"\x14" + i.to_bytes(32, "big") + leaf, bytes(64)) for i in range(999)]
    records += [(b"\x15\xc0" + PUB[1:], b"\x51\xc0"), (b"\x17", PUB[1:])]
    p = Psbt.parse(v2(inputs=[v2_input(extra=records)]))
    assert len(p.inputs[0]) == 2 + 999 * 2 + 2 < P.MAX_RECORDS_PER_MAP


def test_records_per_map_are_bounded():
    unknown = [(b"\xf0" + i.to_bytes(3, "big"), b"") for i in range(P.MAX_RECORDS_PER_MAP - 2)]
    assert len(Psbt.parse(v2(inputs=[v2_input(extra=unknown)])).inputs[0]) == P.MAX_RECORDS_PER_MAP
    data = v2(inputs=[v2_input(extra=unknown + [(b"\xf1", b"")])])
    with pytest.raises(InvalidPSBT, match="input 0: map has more than 5,000 records") as exc:
        Psbt.parse(data)
    assert exc.value.code == "psbt.invalid" and exc.value.input_index == 0 and exc.value.limit == 5000
    glob = v2_globals(1, 1) + [(b"\xf0" + i.to_bytes(3, "big"), b"") for i in range(P.MAX_RECORDS_PER_MAP)]
    with pytest.raises(InvalidPSBT, match="global: map has more than 5,000 records") as exc:
        Psbt.parse(psbt_bytes(glob, [v2_input()], [v2_output()]))
    assert exc.value.code == "psbt.invalid" and exc.value.limit == 5000


def test_total_records_are_bounded():
    # 1.6 million tiny records (the hostile PSBT that made combine take seconds), spread over maps
    # that each stay under the per-map limit: refused once the total passes MAX_RECORDS
    per_map = P.MAX_RECORDS_PER_MAP - 2
    n_in = 1_600_000 // per_map
    unknown = [(b"\xf0" + i.to_bytes(3, "big"), b"") for i in range(per_map)]
    data = v2(inputs=[v2_input(extra=unknown)] * n_in)
    with pytest.raises(InvalidPSBT, match="the PSBT has more than 200,000 records in all") as e:
        Psbt.parse(data)
    first_over = (P.MAX_RECORDS - len(v2_globals(1, 1))) // P.MAX_RECORDS_PER_MAP  # maps are full
    assert str(e.value).startswith(f"input {first_over}: ")


# ----------------------------------------------------------------- 3. Bitcoin Core parity


def test_non_witness_utxo_must_be_the_spent_transaction_v0_and_v2():
    prev = raw_tx([(bytes(32), 0)], [(1000, SPK), (2000, SPK)])
    txid = legacy_txid(prev)
    other = (int.from_bytes(txid, "little") ^ 1).to_bytes(32, "little")
    assert Psbt.parse(v0([(500, SPK)], [[(b"\x00", prev)]], prev_in=[(txid, 1)])).input_count == 1
    assert Psbt.parse(v2(inputs=[v2_input(txid, 1, extra=[(b"\x00", prev)])])).input_count == 1
    for data in (v0([(500, SPK)], [[(b"\x00", prev)]], prev_in=[(other, 1)]),
                 v2(inputs=[v2_input(other, 1, extra=[(b"\x00", prev)])])):
        with pytest.raises(InvalidPSBT, match=f"input 0: PSBT_IN_NON_WITNESS_UTXO is not the transaction the "
                                              f"input spends: it hashes to {txid[::-1].hex()}"):
            Psbt.parse(data)
    for data in (v0([(500, SPK)], [[(b"\x00", prev)]], prev_in=[(txid, 2)]),
                 v2(inputs=[v2_input(txid, 2, extra=[(b"\x00", prev)])])):
        with pytest.raises(InvalidPSBT, match="input 0: spends output 2 of its previous transaction .* only 2") as exc:
            Psbt.parse(data)
        assert exc.value.code == "psbt.invalid"
        assert exc.value.input_index == 0
        assert exc.value.field == "PSBT_IN_NON_WITNESS_UTXO"


def test_segwit_non_witness_utxo_is_hashed_without_its_witness():
    prev = raw_tx([(bytes(32), 0)], [(1000, SPK)], witness=[[b"\x01" * 72, PUB]])
    txid = legacy_txid(raw_tx([(bytes(32), 0)], [(1000, SPK)]))
    assert F.parse_tx(prev, "prev").txid() == txid
    assert Psbt.parse(v2(inputs=[v2_input(txid, 0, extra=[(b"\x00", prev)])])).input_count == 1
    with pytest.raises(InvalidPSBT, match="is not the transaction the input spends") as exc:
        Psbt.parse(v2(inputs=[v2_input(legacy_txid(prev), 0, extra=[(b"\x00", prev)])]))
    assert exc.value.code == "psbt.invalid"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_NON_WITNESS_UTXO"


def test_an_empty_previous_transaction_still_parses():
    # Core reads a zero input count followed by flag 0 as "no inputs, no outputs"
    tx = F.parse_tx(bytes(10), "prev")
    assert (tx.vin, tx.vout) == ([], [])
    with pytest.raises(InvalidPSBT, match="is not the transaction the input spends") as exc:
        Psbt.parse(v2(inputs=[v2_input(extra=[(b"\x00", bytes(10))])]))
    assert exc.value.code == "psbt.invalid"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_NON_WITNESS_UTXO"


BAD_KEYS = [NOT_ON_CURVE, b"\x04" + PUB[1:], b"\x05" + PUB[1:]]
BAD_IDS = ["off-curve", "prefix-04", "prefix-05"]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=BAD_IDS)
@pytest.mark.parametrize("where,keytype", [("input", b"\x1a"), ("output", b"\x08")], ids=["in", "out"])
def test_musig2_participant_pubkeys_must_be_valid(where, keytype, bad):
    def parse(key, value):
        if where == "input":
            return Psbt.parse(v2(inputs=[v2_input(extra=[(keytype + key, value)])]))
        return Psbt.parse(v2(outputs=[v2_output(extra=[(keytype + key, value)])]))

    assert parse(PUB, PUB2 + PUB) is not None
    with pytest.raises(InvalidPSBT, match=f"{where} 0: PSBT_.*_MUSIG2_PARTICIPANT_PUBKEYS aggregate key is not"):
        parse(bad, PUB2 + PUB)
    with pytest.raises(InvalidPSBT, match=f"{where} 0: .* participant key 1 is not a valid compressed public key"):
        parse(PUB, PUB2 + bad)


@pytest.mark.parametrize("bad", BAD_KEYS, ids=BAD_IDS)
@pytest.mark.parametrize("keytype,value", [(b"\x1b", bytes(66)), (b"\x1c", bytes(32))],
                         ids=["pub_nonce", "partial_sig"])
@pytest.mark.parametrize("leaf", [b"", bytes(32)], ids=["key-path", "leaf"])
def test_musig2_nonce_and_partial_sig_keys_must_be_valid(keytype, value, leaf, bad):
    def parse(participant, aggregate):
        key = keytype + participant + aggregate + leaf
        return Psbt.parse(v2(inputs=[v2_input(extra=[(key, value)])]))

    assert parse(PUB2, PUB) is not None
    with pytest.raises(InvalidPSBT, match="input 0: PSBT_IN_MUSIG2_.* aggregate key is not a valid") as exc:
        parse(PUB2, bad)
    assert exc.value.code == "psbt.invalid" and exc.value.input_index == 0 and exc.value.field is not None
    with pytest.raises(InvalidPSBT, match="input 0: PSBT_IN_MUSIG2_.* participant key is not a valid") as exc:
        parse(bad, PUB)
    assert exc.value.code == "psbt.invalid" and exc.value.input_index == 0 and exc.value.field is not None


def test_check_keys_off_skips_only_the_curve_check():
    data = v2(inputs=[v2_input(extra=[(b"\x1a" + NOT_ON_CURVE, PUB)])])
    assert Psbt.parse(data, check_keys=False).input_count == 1
    with pytest.raises(InvalidPSBT, match="aggregate key is not a valid compressed public key") as exc:
        Psbt.parse(v2(inputs=[v2_input(extra=[(b"\x1a" + b"\x05" + PUB[1:], PUB)])]), check_keys=False)
    assert exc.value.code == "psbt.invalid"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS"


def test_an_empty_musig2_participant_list_is_refused():
    # deliberately stricter than Core, whose decoder accepts an empty participant list: BIP373
    # aggregates at least one key, and an empty list can only mislead a signer
    with pytest.raises(InvalidPSBT, match="PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS value must be a list") as exc:
        Psbt.parse(v2(inputs=[v2_input(extra=[(b"\x1a" + PUB, b"")])]))
    assert exc.value.code == "psbt.invalid"
    assert exc.value.input_index == 0
    assert exc.value.field == "PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS"
