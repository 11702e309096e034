"""Exact weights of vault inputs and of transactions, for fee estimation.

Estimates assume the largest signature a standard signer can make: ECDSA with low S is at most
72 bytes with its sighash byte (71 with low R, as libsecp256k1 signers grind for); Schnorr with
SIGHASH_DEFAULT is 64 bytes. The estimate is therefore never below the final size and at most one
byte per ECDSA signature above it (0.25 vbyte inside a witness, 1 vbyte in a P2SH scriptSig).
"""

from __future__ import annotations

from ..script import compact_size, script_num

MAX_ECDSA_SIG = 72  # DER (max 71 with low S) + 1 sighash byte
SCHNORR_SIG = 64  # SIGHASH_DEFAULT: no sighash byte
OUTPOINT_AND_SEQUENCE = 36 + 4


def _push_len(n: int) -> int:
    """Bytes needed to push ``n`` bytes of data in a script."""
    if n < 0x4C:
        return 1 + n
    if n <= 0xFF:
        return 2 + n
    return 3 + n


def multisig_script_len(m: int, n: int) -> int:
    return len(script_num(m)) + 34 * n + len(script_num(n)) + 1


def multi_a_script_len(m: int, n: int) -> int:
    return 34 * n + len(script_num(m)) + 1


def input_weight(script: str, m: int, n: int) -> "tuple[int, int]":
    """(non-witness bytes, witness bytes) of one fully signed m-of-n vault input.

    Witness bytes include the input's item count; the transaction's segwit marker and flag are
    counted by :func:`tx_weight`.
    """
    if script in ("wsh", "sh-wsh"):
        ws = multisig_script_len(m, n)
        items = [0] + [MAX_ECDSA_SIG] * m + [ws]  # the empty dummy for CHECKMULTISIG's off-by-one
        witness = len(compact_size(len(items))) + sum(len(compact_size(x)) + x for x in items)
        script_sig = 0 if script == "wsh" else 1 + 34  # push of the 34-byte P2WSH redeem script
        return OUTPOINT_AND_SEQUENCE + len(compact_size(script_sig)) + script_sig, witness
    if script == "sh":
        rs = multisig_script_len(m, n)
        script_sig = 1 + m * _push_len(MAX_ECDSA_SIG) + _push_len(rs)
        return OUTPOINT_AND_SEQUENCE + len(compact_size(script_sig)) + script_sig, 0
    if script == "tr":
        leaf = multi_a_script_len(m, n)
        items = [SCHNORR_SIG] * m + [0] * (n - m) + [leaf, 33]
        witness = len(compact_size(len(items))) + sum(len(compact_size(x)) + x for x in items)
        return OUTPOINT_AND_SEQUENCE + 1, witness
    raise ValueError(f"unknown script type {script!r}")


def output_weight(script_pubkey_len: int) -> int:
    return 4 * (8 + len(compact_size(script_pubkey_len)) + script_pubkey_len)


def tx_weight(inputs: "list[tuple[int, int]]", output_script_lens: "list[int]") -> int:
    """Weight of a transaction from its inputs' (non-witness, witness) sizes and output script lengths."""
    base = 4 + 4 + len(compact_size(len(inputs))) + len(compact_size(len(output_script_lens)))
    weight = 4 * base
    has_witness = any(w for _, w in inputs)
    for nonwit, wit in inputs:
        weight += 4 * nonwit
        if has_witness:
            weight += wit if wit else 1  # an input without witness still has a 0-item count
    if has_witness:
        weight += 2  # marker and flag
    weight += sum(output_weight(n) for n in output_script_lens)
    return weight


def vsize(weight: int) -> int:
    return (weight + 3) // 4
