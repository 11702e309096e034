"""Bitcoin script building blocks for multisig vaults: numbers, pushes, multisig and tapscript."""

from __future__ import annotations

import hashlib
from typing import Sequence

from embit.hashes import hash160, tagged_hash

OP_0 = 0x00
OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_1 = 0x51
OP_EQUAL = 0x87
OP_HASH160 = 0xA9
OP_CHECKSIG = 0xAC
OP_CHECKMULTISIG = 0xAE
OP_CHECKSIGADD = 0xBA
OP_NUMEQUAL = 0x9C

TAPROOT_LEAF_TAPSCRIPT = 0xC0


_CS_SMALL = [bytes([i]) for i in range(0xFD)]


def compact_size(n: int) -> bytes:
    """Bitcoin's CompactSize encoding of a non-negative integer below 2^64."""
    if n < 0xFD:
        return _CS_SMALL[n]
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    if n <= 0xFFFFFFFFFFFFFFFF:
        return b"\xff" + n.to_bytes(8, "little")
    raise ValueError("compact size out of range")


def push_data(data: bytes) -> bytes:
    """Minimal push of ``data`` (as BIP62 minimal-push rules require)."""
    n = len(data)
    if n == 0:
        return bytes([OP_0])
    if n == 1 and 1 <= data[0] <= 16:
        return bytes([OP_1 + data[0] - 1])
    if n == 1 and data[0] == 0x81:
        return b"\x4f"
    if n < OP_PUSHDATA1:
        return bytes([n]) + data
    if n <= 0xFF:
        return bytes([OP_PUSHDATA1, n]) + data
    if n <= 0xFFFF:
        return bytes([OP_PUSHDATA2]) + n.to_bytes(2, "little") + data
    return b"\x4e" + n.to_bytes(4, "little") + data


def script_num(n: int) -> bytes:
    """Minimal encoding of a non-negative script number (OP_0, OP_1..OP_16 or a push)."""
    if n == 0:
        return bytes([OP_0])
    if 1 <= n <= 16:
        return bytes([OP_1 + n - 1])
    out = bytearray()
    v = n
    while v:
        out.append(v & 0xFF)
        v >>= 8
    if out[-1] & 0x80:
        out.append(0)
    return bytes([len(out)]) + bytes(out)


_PUSH_LEN = [bytes([n]) for n in range(76)]  # direct pushes of 0..75 bytes
_SMALL_NUMS = [script_num(n) for n in range(17)]  # OP_0, OP_1 .. OP_16


def multisig_script(m: int, pubkeys: "Sequence[bytes]") -> bytes:
    """``OP_m <pk1> ... <pkn> OP_n OP_CHECKMULTISIG`` (pubkeys in the order given)."""
    parts = [_SMALL_NUMS[m] if 0 <= m < 17 else script_num(m)]
    for pk in pubkeys:
        parts += (_PUSH_LEN[len(pk)], pk)
    parts.append(_SMALL_NUMS[len(pubkeys)] if len(pubkeys) < 17 else script_num(len(pubkeys)))
    parts.append(b"\xae")  # OP_CHECKMULTISIG
    return b"".join(parts)


def multi_a_script(m: int, xonly_keys: "list[bytes]") -> bytes:
    """BIP387 ``multi_a``: ``<pk1> CHECKSIG <pk2> CHECKSIGADD ... <m> NUMEQUAL``."""
    parts = [b"\x20" + xonly_keys[0] + bytes([OP_CHECKSIG])]
    parts.extend(b"\x20" + k + bytes([OP_CHECKSIGADD]) for k in xonly_keys[1:])
    parts.append(script_num(m))
    parts.append(bytes([OP_NUMEQUAL]))
    return b"".join(parts)


def p2wsh_script_pubkey(witness_script: bytes) -> bytes:
    return b"\x00\x20" + hashlib.sha256(witness_script).digest()


def p2sh_script_pubkey(redeem_script: bytes) -> bytes:
    return b"\xa9\x14" + hash160(redeem_script) + b"\x87"


def p2tr_script_pubkey(output_key: bytes) -> bytes:
    return b"\x51\x20" + output_key


def tapleaf_hash(script: bytes, leaf_version: int = TAPROOT_LEAF_TAPSCRIPT) -> bytes:
    return tagged_hash("TapLeaf", bytes([leaf_version]) + compact_size(len(script)) + script)
