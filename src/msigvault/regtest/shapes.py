"""Transactions, scripts and blocks in the JSON shapes Bitcoin Core and Esplora answer with.

Core: ``decoderawtransaction``/``getrawtransaction`` (verbose) objects, amounts in BTC.
Esplora: the "Transaction format" and "Block format" of its API document, amounts in sats.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

from ..address import address_from_script
from ..errors import InvalidAddress
from ..network import Network
from ..policy.checksum import add_checksum
from ..standardness import output_kind
from .blocks import ParsedTx

# opcode names as Core's ScriptToAsmStr prints them
_OPCODES = {
    0x00: "0", 0x4F: "-1", 0x61: "OP_NOP", 0x63: "OP_IF", 0x64: "OP_NOTIF", 0x67: "OP_ELSE",
    0x68: "OP_ENDIF", 0x69: "OP_VERIFY", 0x6A: "OP_RETURN", 0x6B: "OP_TOALTSTACK",
    0x6C: "OP_FROMALTSTACK", 0x73: "OP_IFDUP", 0x74: "OP_DEPTH", 0x75: "OP_DROP", 0x76: "OP_DUP",
    0x7C: "OP_SWAP", 0x82: "OP_SIZE", 0x87: "OP_EQUAL", 0x88: "OP_EQUALVERIFY", 0x8B: "OP_1ADD",
    0x93: "OP_ADD", 0x9A: "OP_BOOLAND", 0x9C: "OP_NUMEQUAL", 0x9D: "OP_NUMEQUALVERIFY",
    0xA0: "OP_GREATERTHAN", 0xA2: "OP_GREATERTHANOREQUAL", 0xA6: "OP_RIPEMD160",
    0xA8: "OP_SHA256", 0xA9: "OP_HASH160", 0xAA: "OP_HASH256", 0xAC: "OP_CHECKSIG",
    0xAD: "OP_CHECKSIGVERIFY", 0xAE: "OP_CHECKMULTISIG", 0xAF: "OP_CHECKMULTISIGVERIFY",
    0xB1: "OP_CHECKLOCKTIMEVERIFY", 0xB2: "OP_CHECKSEQUENCEVERIFY", 0xBA: "OP_CHECKSIGADD",
}

CORE_TYPES = {
    "p2pkh": "pubkeyhash", "p2sh": "scripthash", "p2wpkh": "witness_v0_keyhash",
    "p2wsh": "witness_v0_scripthash", "p2tr": "witness_v1_taproot",
    "witness_unknown": "witness_unknown", "op_return": "nulldata", "nonstandard": "nonstandard",
}
ESPLORA_TYPES = {
    "p2pkh": "p2pkh", "p2sh": "p2sh", "p2wpkh": "v0_p2wpkh", "p2wsh": "v0_p2wsh",
    "p2tr": "v1_p2tr", "witness_unknown": "unknown", "op_return": "op_return",
    "nonstandard": "nonstandard",
}
COIN = 100_000_000


def btc(sats: int) -> float:
    """Sats as a BTC JSON number (the nearest double prints back with at most 8 decimals)."""
    return sats / COIN


def asm(script: bytes) -> str:
    """A disassembly close to Core's ``asm`` (pushes as hex, small numbers as digits)."""
    out, i = [], 0
    while i < len(script):
        op = script[i]
        i += 1
        if 0x01 <= op <= 0x4E:
            if op < 0x4C:
                n = op
            else:
                width = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
                if i + width > len(script):
                    return " ".join(out + ["[error]"])
                n = int.from_bytes(script[i:i + width], "little")
                i += width
            if i + n > len(script):
                return " ".join(out + ["[error]"])
            data = script[i:i + n]
            i += n
            out.append(str(int.from_bytes(data, "little", signed=True)) if n <= 4 and
                       not _looks_like_hash(n) else data.hex())
        elif 0x51 <= op <= 0x60:
            out.append(str(op - 0x50))
        else:
            out.append(_OPCODES.get(op, f"OP_UNKNOWN[{op}]" if op >= 0xBB else f"OP_{op:#x}"))
    return " ".join(out)


def _looks_like_hash(n: int) -> bool:
    return n > 4


def script_address(script: bytes, network: Network) -> Optional[str]:
    try:
        return address_from_script(script, network)
    except InvalidAddress:
        return None


def script_desc(script: bytes, network: Network) -> str:
    """Core's inferred descriptor for an output: ``addr(...)`` or ``raw(...)``, with checksum."""
    address = script_address(script, network)
    return add_checksum(f"addr({address})" if address else f"raw({script.hex()})")


def scripthash(script: bytes) -> str:
    """Esplora's script hash: SHA-256 of the scriptPubKey, in hex (not reversed)."""
    return hashlib.sha256(script).hexdigest()


def core_script_pubkey(script: bytes, network: Network) -> dict:
    out = {"asm": asm(script), "desc": script_desc(script, network), "hex": script.hex()}
    address = script_address(script, network)
    if address:
        out["address"] = address
    out["type"] = CORE_TYPES[output_kind(script)]
    return out


@dataclass(frozen=True)
class Place:
    """Where a confirmed transaction is: block height, hash and time."""

    height: int
    block_hash: str
    block_time: int


def sizes(ptx: ParsedTx) -> tuple[int, int, int]:
    """(size, vsize, weight) of a transaction."""
    from embit import compact

    tx = ptx.tx
    stripped = 8 + len(compact.to_bytes(len(tx.vin))) + len(compact.to_bytes(len(tx.vout)))
    stripped += sum(len(i.serialize()) for i in tx.vin) + sum(len(o.serialize()) for o in tx.vout)
    size = len(ptx.raw)
    weight = stripped * 3 + size
    return size, (weight + 3) // 4, weight


def core_tx(ptx: ParsedTx, network: Network, place: Optional[Place] = None,
            tip_height: Optional[int] = None, fee: Optional[int] = None) -> dict:
    """``getrawtransaction txid 1`` / ``decoderawtransaction`` shape."""
    tx = ptx.tx
    size, vsize, weight = sizes(ptx)
    vin = []
    for inp in tx.vin:
        if ptx.is_coinbase:
            entry = {"coinbase": inp.script_sig.data.hex()}
        else:
            entry = {"txid": inp.txid.hex(), "vout": inp.vout,
                     "scriptSig": {"asm": asm(inp.script_sig.data), "hex": inp.script_sig.data.hex()}}
        if inp.witness and inp.witness.items:
            entry["txinwitness"] = [bytes(w).hex() for w in inp.witness.items]
        entry["sequence"] = inp.sequence
        vin.append(entry)
    vout = [{"value": btc(out.value), "n": n,
             "scriptPubKey": core_script_pubkey(out.script_pubkey.data, network)}
            for n, out in enumerate(tx.vout)]
    obj = {"txid": ptx.txid, "hash": ptx.wtxid_hash[::-1].hex(), "version": tx.version,
           "size": size, "vsize": vsize, "weight": weight, "locktime": tx.locktime,
           "vin": vin, "vout": vout}
    if fee is not None:
        obj["fee"] = btc(fee)
    obj["hex"] = ptx.raw.hex()
    if place is not None and tip_height is not None:
        obj.update({"blockhash": place.block_hash,
                    "confirmations": tip_height - place.height + 1,
                    "time": place.block_time, "blocktime": place.block_time})
    return obj


def esplora_status(place: Optional[Place]) -> dict:
    if place is None:
        return {"confirmed": False}
    return {"confirmed": True, "block_height": place.height, "block_hash": place.block_hash,
            "block_time": place.block_time}


def esplora_output(amount: int, script: bytes, network: Network) -> dict:
    obj = {"scriptpubkey": script.hex(), "scriptpubkey_asm": asm(script),
           "scriptpubkey_type": ESPLORA_TYPES[output_kind(script)]}
    address = script_address(script, network)
    if address:
        obj["scriptpubkey_address"] = address
    obj["value"] = amount
    return obj


def esplora_tx(ptx: ParsedTx, network: Network, prevouts: list, place: Optional[Place],
               fee: Optional[int]) -> dict:
    """Esplora's transaction format; ``prevouts`` is [(amount, script)] per input (None: coinbase)."""
    tx = ptx.tx
    size, _, weight = sizes(ptx)
    vin = []
    for inp, prev in zip(tx.vin, prevouts):
        entry = {"txid": inp.txid.hex(), "vout": inp.vout,
                 "prevout": None if prev is None else esplora_output(prev[0], prev[1], network),
                 "scriptsig": inp.script_sig.data.hex(), "scriptsig_asm": asm(inp.script_sig.data)}
        if inp.witness and inp.witness.items:
            entry["witness"] = [bytes(w).hex() for w in inp.witness.items]
        entry["is_coinbase"] = ptx.is_coinbase
        entry["sequence"] = inp.sequence
        vin.append(entry)
    return {"txid": ptx.txid, "version": tx.version, "locktime": tx.locktime, "vin": vin,
            "vout": [esplora_output(o.value, o.script_pubkey.data, network) for o in tx.vout],
            "size": size, "weight": weight, "fee": fee if fee is not None else 0,
            "status": esplora_status(place)}
