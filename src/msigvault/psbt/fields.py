"""PSBT key types and small value decoders.

Key type numbers carry the names used in BIP174, BIP370, BIP371 and BIP373.
The decoders here read one value and raise InvalidPSBT with the field name
when it does not have the right shape. They check shape only (lengths,
ranges, encodings), never whether a signature or a key is correct for the
transaction.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Optional, Sequence, Tuple

#: an input of a parsed transaction: (txid internal order, vout, script_sig, sequence)
TxIn = Tuple[bytes, int, bytes, int]
#: an output of a parsed transaction: (amount, script_pubkey)
TxOutTuple = Tuple[int, bytes]

from embit.hashes import ripemd160 as _ripemd160

from ..errors import InvalidPSBT
from ..script import compact_size as compact_size  # re-exported: part of this module's API

# What "from msigvault.psbt.fields import *" (and msigvault.psbt) exports: the key types.
__all__ = [
    "PSBT_GLOBAL_UNSIGNED_TX",
    "PSBT_GLOBAL_XPUB",
    "PSBT_GLOBAL_TX_VERSION",
    "PSBT_GLOBAL_FALLBACK_LOCKTIME",
    "PSBT_GLOBAL_INPUT_COUNT",
    "PSBT_GLOBAL_OUTPUT_COUNT",
    "PSBT_GLOBAL_TX_MODIFIABLE",
    "PSBT_GLOBAL_OWNERSHIP_COMMITMENT",
    "PSBT_GLOBAL_VERSION",
    "PSBT_GLOBAL_PROPRIETARY",
    "PSBT_IN_NON_WITNESS_UTXO",
    "PSBT_IN_WITNESS_UTXO",
    "PSBT_IN_PARTIAL_SIG",
    "PSBT_IN_SIGHASH_TYPE",
    "PSBT_IN_REDEEM_SCRIPT",
    "PSBT_IN_WITNESS_SCRIPT",
    "PSBT_IN_BIP32_DERIVATION",
    "PSBT_IN_FINAL_SCRIPTSIG",
    "PSBT_IN_FINAL_SCRIPTWITNESS",
    "PSBT_IN_POR_COMMITMENT",
    "PSBT_IN_RIPEMD160",
    "PSBT_IN_SHA256",
    "PSBT_IN_HASH160",
    "PSBT_IN_HASH256",
    "PSBT_IN_PREVIOUS_TXID",
    "PSBT_IN_OUTPUT_INDEX",
    "PSBT_IN_SEQUENCE",
    "PSBT_IN_REQUIRED_TIME_LOCKTIME",
    "PSBT_IN_REQUIRED_HEIGHT_LOCKTIME",
    "PSBT_IN_TAP_KEY_SIG",
    "PSBT_IN_TAP_SCRIPT_SIG",
    "PSBT_IN_TAP_LEAF_SCRIPT",
    "PSBT_IN_TAP_BIP32_DERIVATION",
    "PSBT_IN_TAP_INTERNAL_KEY",
    "PSBT_IN_TAP_MERKLE_ROOT",
    "PSBT_IN_OWNERSHIP_PROOF",
    "PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS",
    "PSBT_IN_MUSIG2_PUB_NONCE",
    "PSBT_IN_MUSIG2_PARTIAL_SIG",
    "PSBT_IN_PROPRIETARY",
    "PSBT_OUT_REDEEM_SCRIPT",
    "PSBT_OUT_WITNESS_SCRIPT",
    "PSBT_OUT_BIP32_DERIVATION",
    "PSBT_OUT_AMOUNT",
    "PSBT_OUT_SCRIPT",
    "PSBT_OUT_TAP_INTERNAL_KEY",
    "PSBT_OUT_TAP_TREE",
    "PSBT_OUT_TAP_BIP32_DERIVATION",
    "PSBT_OUT_MUSIG2_PARTICIPANT_PUBKEYS",
    "PSBT_OUT_PROPRIETARY",
]

# Magic bytes: "psbt" followed by 0xff.
PSBT_MAGIC = b"psbt\xff"

# Global types (BIP174, BIP370)
PSBT_GLOBAL_UNSIGNED_TX = 0x00
PSBT_GLOBAL_XPUB = 0x01
PSBT_GLOBAL_TX_VERSION = 0x02
PSBT_GLOBAL_FALLBACK_LOCKTIME = 0x03
PSBT_GLOBAL_INPUT_COUNT = 0x04
PSBT_GLOBAL_OUTPUT_COUNT = 0x05
PSBT_GLOBAL_TX_MODIFIABLE = 0x06
PSBT_GLOBAL_OWNERSHIP_COMMITMENT = 0x07
PSBT_GLOBAL_VERSION = 0xFB
PSBT_GLOBAL_PROPRIETARY = 0xFC

# Per-input types (BIP174, BIP370, BIP371, BIP373)
PSBT_IN_NON_WITNESS_UTXO = 0x00
PSBT_IN_WITNESS_UTXO = 0x01
PSBT_IN_PARTIAL_SIG = 0x02
PSBT_IN_SIGHASH_TYPE = 0x03
PSBT_IN_REDEEM_SCRIPT = 0x04
PSBT_IN_WITNESS_SCRIPT = 0x05
PSBT_IN_BIP32_DERIVATION = 0x06
PSBT_IN_FINAL_SCRIPTSIG = 0x07
PSBT_IN_FINAL_SCRIPTWITNESS = 0x08
PSBT_IN_POR_COMMITMENT = 0x09
PSBT_IN_RIPEMD160 = 0x0A
PSBT_IN_SHA256 = 0x0B
PSBT_IN_HASH160 = 0x0C
PSBT_IN_HASH256 = 0x0D
PSBT_IN_PREVIOUS_TXID = 0x0E
PSBT_IN_OUTPUT_INDEX = 0x0F
PSBT_IN_SEQUENCE = 0x10
PSBT_IN_REQUIRED_TIME_LOCKTIME = 0x11
PSBT_IN_REQUIRED_HEIGHT_LOCKTIME = 0x12
PSBT_IN_TAP_KEY_SIG = 0x13
PSBT_IN_TAP_SCRIPT_SIG = 0x14
PSBT_IN_TAP_LEAF_SCRIPT = 0x15
PSBT_IN_TAP_BIP32_DERIVATION = 0x16
PSBT_IN_TAP_INTERNAL_KEY = 0x17
PSBT_IN_TAP_MERKLE_ROOT = 0x18
PSBT_IN_OWNERSHIP_PROOF = 0x19
PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS = 0x1A
PSBT_IN_MUSIG2_PUB_NONCE = 0x1B
PSBT_IN_MUSIG2_PARTIAL_SIG = 0x1C
PSBT_IN_PROPRIETARY = 0xFC

# Per-output types (BIP174, BIP370, BIP371, BIP373)
PSBT_OUT_REDEEM_SCRIPT = 0x00
PSBT_OUT_WITNESS_SCRIPT = 0x01
PSBT_OUT_BIP32_DERIVATION = 0x02
PSBT_OUT_AMOUNT = 0x03
PSBT_OUT_SCRIPT = 0x04
PSBT_OUT_TAP_INTERNAL_KEY = 0x05
PSBT_OUT_TAP_TREE = 0x06
PSBT_OUT_TAP_BIP32_DERIVATION = 0x07
PSBT_OUT_MUSIG2_PARTICIPANT_PUBKEYS = 0x08
PSBT_OUT_PROPRIETARY = 0xFC

GLOBAL_NAMES = {
    v: k for k, v in globals().items() if k.startswith("PSBT_GLOBAL_")
}
INPUT_NAMES = {v: k for k, v in globals().items() if k.startswith("PSBT_IN_")}
OUTPUT_NAMES = {v: k for k, v in globals().items() if k.startswith("PSBT_OUT_")}

# Fields that exist only in PSBTv2 (forbidden in v0).
V2_ONLY_GLOBAL = frozenset(
    {
        PSBT_GLOBAL_TX_VERSION,
        PSBT_GLOBAL_FALLBACK_LOCKTIME,
        PSBT_GLOBAL_INPUT_COUNT,
        PSBT_GLOBAL_OUTPUT_COUNT,
        PSBT_GLOBAL_TX_MODIFIABLE,
    }
)
V2_ONLY_INPUT = frozenset(
    {
        PSBT_IN_PREVIOUS_TXID,
        PSBT_IN_OUTPUT_INDEX,
        PSBT_IN_SEQUENCE,
        PSBT_IN_REQUIRED_TIME_LOCKTIME,
        PSBT_IN_REQUIRED_HEIGHT_LOCKTIME,
    }
)
V2_ONLY_OUTPUT = frozenset({PSBT_OUT_AMOUNT, PSBT_OUT_SCRIPT})

# Fields that PSBTv2 requires.
V2_REQUIRED_GLOBAL = (
    PSBT_GLOBAL_TX_VERSION,
    PSBT_GLOBAL_INPUT_COUNT,
    PSBT_GLOBAL_OUTPUT_COUNT,
)
V2_REQUIRED_INPUT = (PSBT_IN_PREVIOUS_TXID, PSBT_IN_OUTPUT_INDEX)
V2_REQUIRED_OUTPUT = (PSBT_OUT_AMOUNT, PSBT_OUT_SCRIPT)

LOCKTIME_THRESHOLD = 500_000_000
SEQUENCE_FINAL = 0xFFFFFFFF
TAPROOT_CONTROL_MAX_NODES = 128

MAX_MONEY = 21_000_000 * 100_000_000
"""Largest amount in satoshis (Bitcoin Core's MAX_MONEY); every amount and every
transaction's output total must be within 0..MAX_MONEY (Core's MoneyRange)."""


def money_range(amount: int) -> bool:
    """True if 0 <= amount <= MAX_MONEY (Bitcoin Core's MoneyRange)."""
    return 0 <= amount <= MAX_MONEY


def check_amount(amount: int, what: str) -> int:
    """Return amount, or raise InvalidPSBT naming `what` if it is out of range."""
    if not 0 <= amount <= MAX_MONEY:
        raise InvalidPSBT(
            f"{what} {amount} is out of range: an amount must be between 0 and"
            f" {MAX_MONEY:,} sats (21,000,000 BTC); the PSBT is corrupt or hostile"
        )
    return amount


def check_output_total(amounts: "Iterable[int]", what: str) -> int:
    """Sum of output amounts (each already in range); raises if the total is not."""
    total = 0
    for amount in amounts:
        total += amount
    if total > MAX_MONEY:
        raise InvalidPSBT(
            f"{what} outputs total {total} sats, more than {MAX_MONEY:,} sats"
            " (21,000,000 BTC); no valid transaction pays that much"
        )
    return total

# ---------------------------------------------------------------- compact size

_CS_SMALL = [bytes([i]) for i in range(0xFD)]
_CS_MIN = (0xFD, 0x10000, 0x100000000)


def read_compact_size(data: bytes, pos: int, end: int, what: str) -> "tuple[int, int]":
    """Read a minimally encoded compact size at data[pos:end].

    Returns (value, new_pos). Raises InvalidPSBT naming `what` if the bytes
    run out or the encoding is not the shortest one.
    """
    if pos >= end:
        raise InvalidPSBT(f"{what} is truncated")
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    size = 2 if first == 0xFD else 4 if first == 0xFE else 8
    if pos + 1 + size > end:
        raise InvalidPSBT(f"{what} is truncated")
    n = int.from_bytes(data[pos + 1 : pos + 1 + size], "little")
    if n < _CS_MIN[first - 0xFD]:
        raise InvalidPSBT(f"{what} is not minimally encoded")
    return n, pos + 1 + size


def decode_compact_size(value: bytes, what: str) -> int:
    """Decode a value that must be exactly one compact size integer."""
    n, pos = read_compact_size(value, 0, len(value), what)
    if pos != len(value):
        raise InvalidPSBT(f"{what} has {len(value) - pos} extra bytes")
    return n


def keytype_of(key: bytes) -> int:
    """Key type of a full key (compact size type followed by key data)."""
    first = key[0]
    if first < 0xFD:
        return first
    n, _ = read_compact_size(key, 0, len(key), "key type")
    return n


def split_key(key: bytes) -> "tuple[int, bytes]":
    """Split a full key into (keytype, keydata)."""
    first = key[0]
    if first < 0xFD:
        return first, key[1:]
    n, pos = read_compact_size(key, 0, len(key), "key type")
    return n, key[pos:]


def make_key(keytype: int, keydata: bytes = b"") -> bytes:
    """Full key bytes for a key type and key data."""
    if keytype < 0xFD:
        return _CS_SMALL[keytype] + (keydata if type(keydata) is bytes else bytes(keydata))
    return compact_size(keytype) + bytes(keydata)


# ---------------------------------------------------------------- transactions


class RawTx:
    """A transaction read by :func:`parse_tx` (plain tuples, no scripts parsed).

    vin: list of (txid internal byte order, vout, script_sig, sequence);
    vout: list of (amount, script_pubkey), every amount within 0..MAX_MONEY;
    witnesses: list of stacks or None. txid() hashes the bytes read, without
    the witness data, once.
    """

    __slots__ = ("version", "vin", "vout", "witnesses", "locktime", "_legacy", "_txid")

    version: int
    vin: "list[TxIn]"
    vout: "list[TxOutTuple]"
    witnesses: "list[list[bytes]] | None"
    locktime: int
    _legacy: bytes
    _txid: "bytes | None"

    def __init__(self, version: int, vin: "list[TxIn]", vout: "list[TxOutTuple]",
                 witnesses: "list[list[bytes]] | None", locktime: int, legacy: bytes = b"") -> None:
        self.version = version
        self.vin = vin
        self.vout = vout
        self.witnesses = witnesses
        self.locktime = locktime
        self._legacy = legacy  # the serialization without witnesses
        self._txid = None

    def txid(self) -> bytes:
        """txid in internal byte order: double SHA256 of the serialization without witnesses."""
        txid = self._txid
        if txid is None:
            txid = self._txid = hashlib.sha256(hashlib.sha256(self._legacy).digest()).digest()
        return txid


def _read_vector(data: bytes, pos: int, end: int, what: str) -> "tuple[bytes, int]":
    n, pos = read_compact_size(data, pos, end, what + " length")
    if n > end - pos:
        raise InvalidPSBT(f"{what} is truncated")
    return data[pos : pos + n], pos + n


def read_witness_stack(data: bytes, pos: int, end: int, what: str) -> "tuple[list[bytes], int]":
    """Read a witness stack (count followed by byte vectors)."""
    count, pos = read_compact_size(data, pos, end, what + " item count")
    if count > end - pos:
        raise InvalidPSBT(f"{what} item count {count} exceeds the data")
    items = []
    for _ in range(count):
        item, pos = _read_vector(data, pos, end, what + " item")
        items.append(item)
    return items, pos


def parse_tx(
    data: bytes,
    what: str,
    allow_witness: bool = True,
    max_inputs: Optional[int] = None,
    max_outputs: Optional[int] = None,
) -> RawTx:
    """Parse a whole network serialized transaction, strictly.

    With allow_witness=False the legacy (no witness) format is read, as for
    PSBT_GLOBAL_UNSIGNED_TX, so a zero input count is not a segwit marker.
    Every output amount and the output total must be within 0..MAX_MONEY
    (Bitcoin Core's CheckTransaction rule). max_inputs and max_outputs, if
    given, bound the counts before any input or output is read.
    """
    end = len(data)
    pos = 0
    if end < 10:
        raise InvalidPSBT(f"{what} is truncated")
    version = int.from_bytes(data[0:4], "little", signed=True)
    pos = 4
    n_in, pos = read_compact_size(data, pos, end, what + " input count")
    segwit = False
    if allow_witness and n_in == 0:
        # as Bitcoin Core reads it: a zero input count is followed by a flag byte
        if pos >= end:
            raise InvalidPSBT(f"{what} is truncated")
        flags = data[pos]
        pos += 1
        if flags == 0:  # no inputs and no outputs
            return _finish_tx(data, pos, end, what, version, [], [], None, pos)
        if flags != 1:
            raise InvalidPSBT(f"{what} has unknown optional data (flags {flags:#04x})")
        segwit = True
        n_in, pos = read_compact_size(data, pos, end, what + " input count")
    if n_in * 41 > end - pos:
        raise InvalidPSBT(f"{what} input count {n_in} exceeds the data")
    if max_inputs is not None and n_in > max_inputs:
        raise InvalidPSBT(f"{what} has {n_in} inputs, more than the limit of {max_inputs:,}")
    vin: "list[TxIn]" = []
    for _ in range(n_in):
        if pos + 36 > end:
            raise InvalidPSBT(f"{what} input is truncated")
        txid = data[pos : pos + 32]
        index = int.from_bytes(data[pos + 32 : pos + 36], "little")
        script_sig, pos = _read_vector(data, pos + 36, end, what + " scriptSig")
        if pos + 4 > end:
            raise InvalidPSBT(f"{what} input sequence is truncated")
        seq = int.from_bytes(data[pos : pos + 4], "little")
        pos += 4
        vin.append((txid, index, script_sig, seq))
    n_out, pos = read_compact_size(data, pos, end, what + " output count")
    if n_out * 9 > end - pos:
        raise InvalidPSBT(f"{what} output count {n_out} exceeds the data")
    if max_outputs is not None and n_out > max_outputs:
        raise InvalidPSBT(f"{what} has {n_out} outputs, more than the limit of {max_outputs:,}")
    vout: "list[TxOutTuple]" = []
    for i in range(n_out):
        if pos + 8 > end:
            raise InvalidPSBT(f"{what} output amount is truncated")
        amount = int.from_bytes(data[pos : pos + 8], "little", signed=True)
        if not 0 <= amount <= MAX_MONEY:
            check_amount(amount, f"{what} output {i} amount")
        spk, pos = _read_vector(data, pos + 8, end, what + " output script")
        vout.append((amount, spk))
    check_output_total((a for a, _ in vout), what)
    outputs_end = pos
    witnesses: "list[list[bytes]] | None" = None
    if segwit:
        witnesses = []
        for _ in range(n_in):
            stack, pos = read_witness_stack(data, pos, end, what + " witness")
            witnesses.append(stack)
        if not any(witnesses):
            raise InvalidPSBT(
                f"{what} uses the segwit serialization but has no witness data"
            )
    return _finish_tx(data, pos, end, what, version, vin, vout, witnesses, outputs_end)


def _finish_tx(data: bytes, pos: int, end: int, what: str, version: int, vin: "list[TxIn]",
               vout: "list[TxOutTuple]", witnesses: "list[list[bytes]] | None", outputs_end: int) -> RawTx:
    if pos + 4 > end:
        raise InvalidPSBT(f"{what} locktime is truncated")
    locktime = int.from_bytes(data[pos : pos + 4], "little")
    pos += 4
    if pos != end:
        raise InvalidPSBT(f"{what} has {end - pos} extra bytes")
    if witnesses is None:
        legacy = data
    else:  # drop the marker, flag and witness stacks
        legacy = data[:4] + data[6:outputs_end] + data[end - 4 :]
    return RawTx(version, vin, vout, witnesses, locktime, legacy)


def serialize_tx(version: int, vin: "Sequence[tuple[bytes, int, int]]", vout: "Sequence[tuple[int, bytes]]",
                 locktime: int) -> bytes:
    """Legacy (no witness) serialization of an unsigned transaction.

    vin: (txid internal order, vout, sequence); vout: (amount, script).
    """
    parts = [version.to_bytes(4, "little", signed=True), compact_size(len(vin))]
    for txid, n, seq in vin:
        parts.append(txid)
        parts.append(n.to_bytes(4, "little"))
        parts.append(b"\x00")
        parts.append(seq.to_bytes(4, "little"))
    parts.append(compact_size(len(vout)))
    for i, (amount, script) in enumerate(vout):
        check_amount(amount, f"transaction output {i} amount")
        parts.append(amount.to_bytes(8, "little"))
        parts.append(compact_size(len(script)))
        parts.append(script)
    parts.append(locktime.to_bytes(4, "little"))
    return b"".join(parts)


# ---------------------------------------------------------------- value decoders


def parse_txout(value: bytes, what: str) -> "tuple[int, bytes]":
    """Decode a serialized transaction output -> (amount, script_pubkey).

    The amount must be within 0..MAX_MONEY.
    """
    if len(value) < 9:
        raise InvalidPSBT(f"{what} value is truncated")
    amount = int.from_bytes(value[:8], "little", signed=True)
    n = value[8]
    if n < 0xFD and len(value) == 9 + n and 0 <= amount <= MAX_MONEY:  # the usual case, read directly
        return amount, value[9:]
    amount = check_amount(amount, f"{what} amount")
    script, pos = _read_vector(value, 8, len(value), what + " scriptPubKey")
    if pos != len(value):
        raise InvalidPSBT(f"{what} value has {len(value) - pos} extra bytes")
    return amount, script


def parse_key_origin(value: bytes, what: str) -> "tuple[bytes, list[int]]":
    """Decode <4 byte fingerprint> <uint32 path element>* -> (fingerprint, path)."""
    if len(value) < 4 or len(value) % 4:
        raise InvalidPSBT(
            f"{what} value must be a 4 byte fingerprint and 4 bytes per path element"
            f" (got {len(value)} bytes)"
        )
    path = [
        int.from_bytes(value[i : i + 4], "little") for i in range(4, len(value), 4)
    ]
    return bytes(value[:4]), path


def parse_tap_bip32(value: bytes, what: str) -> "tuple[list[bytes], bytes, list[int]]":
    """Decode a taproot BIP32 derivation value -> (leaf_hashes, fingerprint, path)."""
    n, pos = read_compact_size(value, 0, len(value), what + " leaf hash count")
    if n * 32 > len(value) - pos:
        raise InvalidPSBT(f"{what} leaf hash count {n} exceeds the value")
    hashes = [value[pos + 32 * i : pos + 32 * (i + 1)] for i in range(n)]
    fingerprint, path = parse_key_origin(value[pos + 32 * n :], what)
    return hashes, fingerprint, path


def parse_tap_tree(value: bytes, what: str) -> "list[tuple[int, int, bytes]]":
    """Decode PSBT_OUT_TAP_TREE -> list of (depth, leaf_version, script).

    Checks that the leaves, in depth first order, build a complete tree.
    """
    if not value:
        raise InvalidPSBT(f"{what} must not be empty")
    leaves = []
    pos, end = 0, len(value)
    stack: "list[int]" = []  # depths of subtrees not yet joined with a sibling
    while pos < end:
        if pos + 2 > end:
            raise InvalidPSBT(f"{what} leaf is truncated")
        depth, leaf_ver = value[pos], value[pos + 1]
        if depth > TAPROOT_CONTROL_MAX_NODES:
            raise InvalidPSBT(f"{what} leaf depth {depth} exceeds 128")
        if leaf_ver & 1:
            raise InvalidPSBT(f"{what} leaf version {leaf_ver:#x} is invalid")
        script, pos = _read_vector(value, pos + 2, end, what + " leaf script")
        if stack == [0]:
            raise InvalidPSBT(f"{what} has leaves after a complete tree")
        leaves.append((depth, leaf_ver, script))
        d = depth
        while stack and stack[-1] == d:
            stack.pop()
            if d == 0:
                raise InvalidPSBT(f"{what} is malformed")
            d -= 1
        stack.append(d)
    if stack != [0]:
        raise InvalidPSBT(f"{what} does not describe a complete tree")
    return leaves


def check_pubkey(key: bytes, what: str) -> None:
    """Shape check of a serialized ECDSA public key (33 or 65 bytes)."""
    n = len(key)
    if n == 33:
        if key[0] not in (2, 3):
            raise InvalidPSBT(f"{what} key is not a compressed public key")
    elif n == 65:
        if key[0] not in (4, 6, 7):
            raise InvalidPSBT(f"{what} key is not an uncompressed public key")
    else:
        raise InvalidPSBT(f"{what} key data must be a 33 byte public key (got {n} bytes)")


def hash160(data: bytes) -> bytes:
    return _ripemd160(hashlib.sha256(data).digest())


def hash_preimage_ok(keytype: int, digest: bytes, preimage: bytes) -> bool:
    """True if preimage hashes to digest for the PSBT_IN_* hash key type."""
    if keytype == PSBT_IN_RIPEMD160:
        return _ripemd160(preimage) == digest
    if keytype == PSBT_IN_SHA256:
        return hashlib.sha256(preimage).digest() == digest
    if keytype == PSBT_IN_HASH160:
        return hash160(preimage) == digest
    if keytype == PSBT_IN_HASH256:
        return hashlib.sha256(hashlib.sha256(preimage).digest()).digest() == digest
    raise ValueError("not a hash preimage key type")
