"""Assemble regtest blocks byte by byte: coinbase, merkle roots, witness commitment, header, PoW.

Nothing here talks to libbitcoinkernel; :mod:`msigvault.regtest.chain` hands the bytes built
here to the kernel, which alone decides whether a block is valid.

Byte order: ``*_hash`` values are internal (little-endian) order as they appear in serialized
data; ``*_hex`` / ``txid`` strings are the usual reversed display order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from io import BytesIO

from embit import compact
from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

COIN = 100_000_000
COINBASE_MATURITY = 100  # a coinbase output can be spent by a block 100 blocks later
REGTEST_HALVING_INTERVAL = 150
REGTEST_BITS = 0x207FFFFF  # regtest's minimum difficulty; regtest never retargets
BLOCK_VERSION = 0x20000000  # BIP9 version bits with no deployment signalled
WITNESS_RESERVED_VALUE = bytes(32)  # BIP141: the coinbase's single witness item
WITNESS_COMMITMENT_HEADER = bytes.fromhex("aa21a9ed")
NULL_TXID = bytes(32)
COINBASE_VOUT = 0xFFFFFFFF


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def block_subsidy(height: int) -> int:
    """New coins a regtest block at ``height`` may create (50 BTC, halving every 150 blocks)."""
    halvings = height // REGTEST_HALVING_INTERVAL
    if halvings >= 64:
        return 0
    return (50 * COIN) >> halvings


def script_num(n: int) -> bytes:
    """Minimal CScriptNum encoding (little-endian, sign bit in the last byte)."""
    if n == 0:
        return b""
    negative, n = n < 0, abs(n)
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if negative else 0x00)
    elif negative:
        out[-1] |= 0x80
    return bytes(out)


def push_int(n: int) -> bytes:
    """What Core's ``CScript() << n`` produces: OP_0, OP_1..OP_16 or a minimal number push.

    BIP34 compares the start of the coinbase scriptSig with exactly these bytes.
    """
    if n == 0:
        return b"\x00"
    if 1 <= n <= 16:
        return bytes([0x50 + n])
    data = script_num(n)
    return bytes([len(data)]) + data


def push_data(data: bytes) -> bytes:
    """A direct push of up to 75 bytes."""
    if len(data) > 75:
        raise ValueError("push_data handles pushes of at most 75 bytes")
    return bytes([len(data)]) + data


@dataclass(frozen=True)
class ParsedTx:
    """A transaction with its serialization and both ids computed once."""

    tx: Transaction
    raw: bytes
    txid: str  # display hex
    wtxid_hash: bytes  # internal order

    @property
    def txid_hash(self) -> bytes:
        return bytes.fromhex(self.txid)[::-1]

    @property
    def is_coinbase(self) -> bool:
        vin = self.tx.vin
        return len(vin) == 1 and vin[0].txid == NULL_TXID and vin[0].vout == COINBASE_VOUT


def parse_tx(raw: bytes) -> ParsedTx:
    """Parse a serialized transaction; raise ValueError unless it is canonical and complete."""
    stream = BytesIO(raw)
    tx = Transaction.read_from(stream)
    if stream.read(1):
        raise ValueError("trailing bytes after the transaction")
    if tx.serialize() != raw:
        raise ValueError("non-canonical serialization")
    return ParsedTx(tx=tx, raw=raw, txid=tx.txid().hex(), wtxid_hash=sha256d(raw))


def wrap_tx(tx: Transaction) -> ParsedTx:
    raw = tx.serialize()
    return ParsedTx(tx=tx, raw=raw, txid=tx.txid().hex(), wtxid_hash=sha256d(raw))


def merkle_root(hashes: list[bytes]) -> bytes:
    """Bitcoin's merkle root: pairwise sha256d, duplicating the last hash of an odd level."""
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def witness_commitment_script(txs: list[ParsedTx]) -> bytes:
    """BIP141 commitment output script for a block whose non-coinbase transactions are ``txs``.

    The coinbase's wtxid counts as 32 zero bytes; the commitment hashes the witness merkle root
    together with the coinbase's witness reserved value.
    """
    witness_root = merkle_root([bytes(32)] + [t.wtxid_hash for t in txs])
    commitment = sha256d(witness_root + WITNESS_RESERVED_VALUE)
    return b"\x6a" + push_data(WITNESS_COMMITMENT_HEADER + commitment)


def coinbase_tx(height: int, outputs: list[tuple[int, bytes]], commitment: bytes,
                extra_nonce: int) -> ParsedTx:
    """The coinbase: BIP34 height push, an extra nonce, ``outputs``, then the commitment."""
    script_sig = push_int(height) + push_data(extra_nonce.to_bytes(4, "little"))
    vin = [TransactionInput(NULL_TXID, COINBASE_VOUT, Script(script_sig),
                            witness=Witness([WITNESS_RESERVED_VALUE]))]
    vout = [TransactionOutput(value, Script(spk)) for value, spk in outputs]
    vout.append(TransactionOutput(0, Script(commitment)))
    return wrap_tx(Transaction(version=2, vin=vin, vout=vout, locktime=0))


def bits_to_target(bits: int) -> int:
    exponent, mantissa = bits >> 24, bits & 0x007FFFFF
    return mantissa << (8 * (exponent - 3))


def header_bytes(prev_hash: bytes, merkle: bytes, time: int, nonce: int,
                 bits: int = REGTEST_BITS, version: int = BLOCK_VERSION) -> bytes:
    return (version.to_bytes(4, "little") + prev_hash + merkle + time.to_bytes(4, "little")
            + bits.to_bytes(4, "little") + nonce.to_bytes(4, "little"))


def grind_header(prev_hash: bytes, merkle: bytes, time: int,
                 bits: int = REGTEST_BITS) -> tuple[bytes, bytes]:
    """Find a nonce whose header hash meets ``bits``; return (header, block hash internal)."""
    target = bits_to_target(bits)
    for nonce in range(2**32):
        header = header_bytes(prev_hash, merkle, time, nonce, bits)
        block_hash = sha256d(header)
        if int.from_bytes(block_hash, "little") <= target:
            return header, block_hash
    raise RuntimeError("no nonce meets the target; change the time or the extra nonce")


@dataclass(frozen=True)
class BuiltBlock:
    """A fully assembled block: its serialization, hash and transactions (coinbase first)."""

    raw: bytes
    hash: bytes  # internal order
    height: int
    time: int
    txs: list[ParsedTx]

    @property
    def hash_hex(self) -> str:
        return self.hash[::-1].hex()


def build_block(prev_hash: bytes, height: int, time: int, txs: list[ParsedTx],
                coinbase_outputs: list[tuple[int, bytes]], extra_nonce: int = 0) -> BuiltBlock:
    """Assemble and mine the block at ``height`` on top of ``prev_hash`` containing ``txs``."""
    coinbase = coinbase_tx(height, coinbase_outputs, witness_commitment_script(txs),
                           extra_nonce)
    all_txs = [coinbase] + list(txs)
    merkle = merkle_root([t.txid_hash for t in all_txs])
    header, block_hash = grind_header(prev_hash, merkle, time)
    body = compact.to_bytes(len(all_txs)) + b"".join(t.raw for t in all_txs)
    return BuiltBlock(raw=header + body, hash=block_hash, height=height, time=time,
                      txs=all_txs)


def parse_block(raw: bytes) -> tuple[bytes, list[ParsedTx]]:
    """Split a serialized block into its 80-byte header and parsed transactions."""
    stream = BytesIO(raw)
    header = stream.read(80)
    count = compact.read_from(stream)
    txs = []
    for _ in range(count):
        tx = Transaction.read_from(stream)
        txs.append(wrap_tx(tx))
    return header, txs


def header_time(header: bytes) -> int:
    return int.from_bytes(header[68:72], "little")
