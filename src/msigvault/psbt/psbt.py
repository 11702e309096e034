"""The PSBT container: key-value maps, parsing, serialization, versions.

A PSBT (BIP174 version 0, BIP370 version 2) is a global map, one map per
input and one map per output. Each map keeps its records in the order they
were read, so parsing and serializing gives back the same bytes. Unknown and
proprietary records are kept as they are.

Parsing checks the format as BIP174 and BIP370 ask: magic, separators, map
counts, duplicate keys, key data and value shapes of the known fields, and
which fields each version requires or forbids. It also refuses what Bitcoin
Core's decodepsbt refuses: invalid public keys (also in BIP373 MuSig2 fields)
and a non_witness_utxo that does not hash to the input's prevout txid or has
no output at its index. Every amount, and the output total of every
transaction, must be within 0..21,000,000 BTC. Counts are bounded (MAX_INPUTS,
MAX_OUTPUTS, MAX_RECORDS_PER_MAP, MAX_RECORDS) and checked before the work
they would cause; parsing is linear in the input size. Every problem raises
InvalidPSBT with the map and field in the message. Signatures and scripts are
not checked here; the roles do that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from types import ModuleType
from typing import (TYPE_CHECKING, Any, Callable, Container, ItemsView, Iterable, Iterator, KeysView, List,
                    Mapping, NoReturn, Optional, Tuple, Union, ValuesView)

from ..errors import InvalidPSBT
from . import fields as F
from ..script import compact_size
from .fields import (
    PSBT_MAGIC,
    decode_compact_size,
    keytype_of,
    make_key,
    read_compact_size,
    split_key,
)

DEFAULT_MAX_SIZE = 100_000_000
"""Largest PSBT (in bytes) that parse() accepts unless told otherwise."""

MAX_INPUTS = 10_000
"""Most inputs a PSBT may have. A standard transaction (400,000 weight units)
fits at most about 2,400 inputs; 10,000 leaves room for consensus-size ones."""

MAX_OUTPUTS = 10_000
"""Most outputs a PSBT may have (a standard transaction fits about 11,000 of
the smallest outputs; a vault spend has a handful)."""

MAX_RECORDS_PER_MAP = 5_000
"""Most key-value records in one map. The largest real input, a 999-key
taproot multi_a vault input, carries 999 PSBT_IN_TAP_BIP32_DERIVATION and up
to 999 PSBT_IN_TAP_SCRIPT_SIG records plus about ten others; 5,000 leaves
room for as many MuSig2 nonces and partial signatures or extra leaves."""

MAX_RECORDS = 200_000
"""Most key-value records in the whole PSBT (about 20 for each of
MAX_INPUTS inputs). A 1,000-input 2-of-3 vault PSBT has about 10,000."""

_SEP = b"\x00"
_NOT_A_PSBT = (
    "not a PSBT: expected binary data starting with the magic bytes 'psbt' 0xff,"
    " or the same as base64 or hex"
)
_CS = F._CS_SMALL

if TYPE_CHECKING:
    from embit.transaction import Transaction

#: a check of one record's value (or key data): (bytes, where, field name, context) -> None or raise
_Check = Callable[[bytes, str, str, "_Ctx"], None]
#: per key type: (rule for the key data: None, allowed lengths or a check; the value's check or None)
_Rule = Tuple[Union[None, int, Tuple[int, ...], _Check], Optional[_Check]]
#: a record's place in Bitcoin Core's order: (rank, then type-specific parts, nested tuples of
#: bytes and ints that compare as Core's std::map keys do)
_SortTuple = Tuple[Any, ...]
_SortKey = Callable[["tuple[bytes, bytes]"], _SortTuple]


# ===================================================================== PsbtMap


class PsbtMap:
    """One PSBT map: full key bytes -> value bytes, in insertion order.

    A full key is the key type (compact size) followed by the key data, without
    the outer length prefix. Helpers take a key type and key data instead:

        m.get(PSBT_IN_WITNESS_UTXO)
        m.set(PSBT_IN_PARTIAL_SIG, pubkey, sig)
        m.items_of_type(PSBT_IN_BIP32_DERIVATION)  # [(pubkey, value), ...]

    Two maps are equal when they hold the same records, in any order.
    """

    __slots__ = ("_d",)
    _d: "dict[bytes, bytes]"

    def __init__(self, items: "PsbtMap | Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]] | None" = None) -> None:
        self._d = {}
        if items is not None:
            if isinstance(items, PsbtMap):
                self._d = dict(items._d)
                return
            if isinstance(items, Mapping):
                items = items.items()
            for key, value in items:
                self.raw_set(key, value)

    @classmethod
    def _wrap(cls, d: "dict[bytes, bytes]") -> "PsbtMap":
        m = cls.__new__(cls)
        m._d = d
        return m

    # -- by key type and key data
    def get(self, keytype: int, keydata: bytes = b"", default: "bytes | None" = None) -> "bytes | None":
        """Value of the record (keytype, keydata), or default."""
        return self._d.get(make_key(keytype, keydata), default)

    def set(self, keytype: int, keydata: bytes, value: bytes) -> None:
        """Add or replace a record. A replaced record keeps its position."""
        if not isinstance(keytype, int) or keytype < 0:
            raise ValueError("key type must be a non-negative integer")
        self._d[make_key(keytype, keydata)] = bytes(value)

    def delete(self, keytype: int, keydata: bytes = b"") -> bool:
        """Remove a record; True if it was there."""
        return self._d.pop(make_key(keytype, keydata), None) is not None

    def delete_type(self, keytype: int) -> int:
        """Remove every record of a key type; returns how many were removed."""
        keys = [k for k in self._d if _has_type(k, keytype)]
        for k in keys:
            del self._d[k]
        return len(keys)

    def items_of_type(self, keytype: int) -> List[Tuple[bytes, bytes]]:
        """[(keydata, value), ...] of one key type, in map order."""
        if keytype < 0xFD:
            return [(k[1:], v) for k, v in self._d.items() if k[0] == keytype]
        prefix = compact_size(keytype)
        n = len(prefix)
        return [(k[n:], v) for k, v in self._d.items() if k[:n] == prefix]

    def has_type(self, keytype: int) -> bool:
        """True if any record has this key type."""
        if keytype < 0xFD:
            for k in self._d:
                if k[0] == keytype:
                    return True
            return False
        return any(_has_type(k, keytype) for k in self._d)

    def types(self) -> List[int]:
        """Key types present, in map order, each once."""
        seen: "dict[int, None]" = {}
        for k in self._d:
            seen.setdefault(keytype_of(k), None)
        return list(seen)

    # -- by full key
    def raw_get(self, key: bytes, default: "bytes | None" = None) -> "bytes | None":
        return self._d.get(key if type(key) is bytes else bytes(key), default)

    def raw_set(self, key: bytes, value: bytes) -> None:
        key = bytes(key)
        if not key:
            raise ValueError("a PSBT key cannot be empty")
        self._d[key] = bytes(value)

    def raw_delete(self, key: bytes) -> bool:
        return self._d.pop(bytes(key), None) is not None

    def keys(self) -> "KeysView[bytes]":
        return self._d.keys()

    def values(self) -> "ValuesView[bytes]":
        return self._d.values()

    def items(self) -> "ItemsView[bytes, bytes]":
        return self._d.items()

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: object) -> bool:
        """Accepts a full key (bytes), a key type (int, empty key data), or
        a (keytype, keydata) tuple."""
        if isinstance(key, int):
            key = make_key(key)
        elif isinstance(key, tuple):
            key = make_key(*key)
        return isinstance(key, (bytes, bytearray, memoryview)) and bytes(key) in self._d

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PsbtMap):
            return NotImplemented
        return self._d == other._d

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as the data model spells it

    def copy(self) -> "PsbtMap":
        return PsbtMap._wrap(dict(self._d))

    def __repr__(self) -> str:
        return f"PsbtMap({len(self._d)} records, types {self.types()})"

    def _reorder(self, sort_key: "_SortKey") -> None:
        self._d = dict(sorted(self._d.items(), key=sort_key))

    def _serialize_into(self, parts: "list[bytes]") -> None:
        append = parts.append
        for k, v in self._d.items():
            n = len(k)
            append(_CS[n] if n < 0xFD else compact_size(n))
            append(k)
            n = len(v)
            append(_CS[n] if n < 0xFD else compact_size(n))
            append(v)
        append(_SEP)


def _has_type(key: bytes, keytype: int) -> bool:
    if keytype < 0xFD:
        return key[0] == keytype
    return key.startswith(compact_size(keytype))


# ===================================================================== reading


def _read_map(data: bytes, pos: int, end: int, where: str, names: "dict[int, str]",
              budget: int) -> "tuple[PsbtMap, int]":
    """Read one map starting at pos. Returns (PsbtMap, new_pos).

    budget is how many records the rest of the PSBT may still hold (MAX_RECORDS
    minus those read so far); a map may also hold at most MAX_RECORDS_PER_MAP.
    """
    d: "dict[bytes, bytes]" = {}
    limit = min(budget, MAX_RECORDS_PER_MAP)
    while True:
        if pos >= end:
            raise InvalidPSBT(f"{where}: map ends without the 0x00 separator")
        n = data[pos]
        if n < 0xFD:
            pos += 1
        else:
            n, pos = read_compact_size(data, pos, end, f"{where}: key length")
        if n == 0:
            return PsbtMap._wrap(d), pos
        if len(d) >= limit:
            _too_many_records(where, len(d))
        if n > end - pos:
            raise InvalidPSBT(f"{where}: key of {n} bytes is truncated")
        key = data[pos : pos + n]
        pos += n
        t = key[0]
        if t >= 0xFD:
            t, _ = read_compact_size(key, 0, len(key), f"{where}: key type")
        n = data[pos] if pos < end else 0xFD
        if n < 0xFD:
            pos += 1
        else:
            n, pos = read_compact_size(data, pos, end, f"{where}: {_name(names, t)} value length")
        if n > end - pos:
            raise InvalidPSBT(f"{where}: {_name(names, t)} value is truncated", field=names.get(t))
        if key in d:
            raise InvalidPSBT(
                f"{where}: duplicate key for {_name(names, t)} (key {key.hex()[:80]})", field=names.get(t)
            )
        d[key] = data[pos : pos + n]
        pos += n


def _too_many_records(where: str, count: int) -> NoReturn:
    if count >= MAX_RECORDS_PER_MAP:
        raise InvalidPSBT(
            f"{where}: map has more than {MAX_RECORDS_PER_MAP:,} records, the most one map may"
            " hold; no real vault PSBT needs that many, so it is refused as hostile",
            limit=MAX_RECORDS_PER_MAP,
        )
    raise InvalidPSBT(
        f"{where}: the PSBT has more than {MAX_RECORDS:,} records in all, the most a PSBT may"
        " hold; no real vault PSBT needs that many, so it is refused as hostile",
        limit=MAX_RECORDS,
    )


def _name(names: "dict[int, str]", t: int) -> str:
    return names.get(t) or f"key type {t:#04x}"


# ===================================================================== checks

# Per key type: (rule for the key data, check of the value or None).
# Key data rule: None = no key data; an int or tuple of ints = allowed lengths;
# a callable(keydata, where, name) for anything else.


def _v_len(*lengths: int) -> "_Check":
    def check(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
        if len(value) not in lengths:
            want = " or ".join(str(n) for n in lengths)
            raise InvalidPSBT(f"{where}: {name} value must be {want} bytes (got {len(value)})")

    return check


_v4 = _v_len(4)
_v32 = _v_len(32)


def _v_origin(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    F.parse_key_origin(value, f"{where}: {name}")


def _v_tap_bip32(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    F.parse_tap_bip32(value, f"{where}: {name}")


def _v_txout(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    F.parse_txout(value, f"{where}: {name}")


def _v_prev_tx(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    # kept for the outpoint check in Psbt.parse; inputs spending one funding transaction carry
    # the same bytes: each distinct transaction is parsed (and hashed) once
    raw = ctx.txs.get(value)
    if raw is None:
        raw = ctx.txs[value] = F.parse_tx(value, f"{where}: {name}", allow_witness=True)
    ctx.prev_tx = raw


def _v_out_amount(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    if len(value) != 8:
        raise InvalidPSBT(f"{where}: {name} value must be 8 bytes (got {len(value)})")
    F.check_amount(int.from_bytes(value, "little", signed=True), f"{where}: {name}")


def _v_witness(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    _, pos = F.read_witness_stack(value, 0, len(value), f"{where}: {name}")
    if pos != len(value):
        raise InvalidPSBT(f"{where}: {name} value has {len(value) - pos} extra bytes")


def _v_schnorr_sig(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    if len(value) not in (64, 65):
        raise InvalidPSBT(
            f"{where}: {name} value must be a 64 or 65 byte signature (got {len(value)})"
        )


def _v_leaf_script(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    if not value:
        raise InvalidPSBT(f"{where}: {name} value must hold a script and a leaf version")


def _v_tap_tree(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    F.parse_tap_tree(value, f"{where}: {name}")


def _v_count(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    decode_compact_size(value, f"{where}: {name} value")


def _v_mod(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    if len(value) != 1:
        raise InvalidPSBT(f"{where}: {name} value must be 1 byte (got {len(value)})")


def _v_version(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    if len(value) != 4:
        raise InvalidPSBT(f"{where}: {name} value must be 4 bytes (got {len(value)})")


def _v_musig_keys(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    # Core's order (DeserializeMuSig2ParticipantPubkeys): each whole 33 byte key, then the rest.
    # An empty list is refused (Core accepts it): a MuSig2 aggregate key has participants.
    if not value:
        raise InvalidPSBT(
            f"{where}: {name} value must be a list of 33 byte public keys (it is empty)"
        )
    for i in range(0, len(value) - 32, 33):
        if not _compressed_ok(value[i : i + 33], ctx):
            raise InvalidPSBT(
                f"{where}: {name} participant key {i // 33} is not a valid compressed public key"
            )
    if len(value) % 33:
        raise InvalidPSBT(
            f"{where}: {name} value must be a list of 33 byte public keys"
            f" ({len(value)} bytes is not a multiple of 33)"
        )


def _k_musig_aggregate(keydata: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    if len(keydata) != 33:
        raise InvalidPSBT(f"{where}: {name} key data must be 33 bytes (got {len(keydata)})")
    if not _compressed_ok(keydata, ctx):
        raise InvalidPSBT(f"{where}: {name} aggregate key is not a valid compressed public key")


def _k_musig_participant(keydata: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    # participant key | aggregate key | optional leaf hash (BIP373)
    if len(keydata) not in (66, 98):
        raise InvalidPSBT(
            f"{where}: {name} key data must be 66 or 98 bytes (got {len(keydata)})"
        )
    if not _compressed_ok(keydata[33:66], ctx):
        raise InvalidPSBT(f"{where}: {name} aggregate key is not a valid compressed public key")
    if not _compressed_ok(keydata[:33], ctx):
        raise InvalidPSBT(
            f"{where}: {name} participant key is not a valid compressed public key"
        )


def _compressed_ok(pub: bytes, ctx: "_Ctx") -> bool:
    """A 33 byte compressed public key; on the curve too when ctx.check_keys."""
    return pub[0] in (2, 3) and (not ctx.check_keys or _point_ok(pub))


def _v_time_lock(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    _v4(value, where, name, ctx)
    n = int.from_bytes(value, "little")
    if n < F.LOCKTIME_THRESHOLD:
        raise InvalidPSBT(f"{where}: {name} {n} is less than {F.LOCKTIME_THRESHOLD}")


def _v_height_lock(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    _v4(value, where, name, ctx)
    n = int.from_bytes(value, "little")
    if not 0 < n < F.LOCKTIME_THRESHOLD:
        raise InvalidPSBT(
            f"{where}: {name} {n} must be greater than 0 and less than {F.LOCKTIME_THRESHOLD}"
        )


def _k_pubkey(keydata: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    F.check_pubkey(keydata, f"{where}: {name}")
    if ctx.check_keys and not _point_ok(keydata):
        raise InvalidPSBT(f"{where}: {name} key is not a valid public key")


def _k_xpub(keydata: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    if len(keydata) != 78:
        raise InvalidPSBT(
            f"{where}: {name} key data must be a 78 byte extended public key (got {len(keydata)})"
        )
    pub = keydata[45:]
    if pub[0] not in (2, 3) or (ctx.check_keys and not _point_ok(pub)):
        raise InvalidPSBT(f"{where}: {name} key does not hold a valid public key")


def _v_xpub_origin(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    # called with ctx.keydata set to the xpub
    _, path = F.parse_key_origin(value, f"{where}: {name}")
    depth = ctx.keydata[4]
    if len(path) != depth:
        raise InvalidPSBT(
            f"{where}: {name} path has {len(path)} elements but the key's depth is {depth}"
        )


def _k_control_block(keydata: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    n = len(keydata)
    if n < 33 or (n - 33) % 32 or (n - 33) // 32 > F.TAPROOT_CONTROL_MAX_NODES:
        raise InvalidPSBT(
            f"{where}: {name} key data must be a taproot control block of 33 + 32m bytes"
            f" (got {n})"
        )


def _k_proprietary(keydata: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    what = f"{where}: {name} key"
    n, pos = read_compact_size(keydata, 0, len(keydata), what + " identifier length")
    if n > len(keydata) - pos:
        raise InvalidPSBT(f"{what} identifier is truncated")
    read_compact_size(keydata, pos + n, len(keydata), what + " subtype")


def _v_preimage(value: bytes, where: str, name: str, ctx: "_Ctx") -> None:
    if not F.hash_preimage_ok(ctx.keytype, ctx.keydata, value):
        raise InvalidPSBT(f"{where}: {name} preimage does not hash to the key")


_GLOBAL_RULES = {
    F.PSBT_GLOBAL_UNSIGNED_TX: (None, None),  # checked with the version rules
    F.PSBT_GLOBAL_XPUB: (_k_xpub, _v_xpub_origin),
    F.PSBT_GLOBAL_TX_VERSION: (None, _v4),
    F.PSBT_GLOBAL_FALLBACK_LOCKTIME: (None, _v4),
    F.PSBT_GLOBAL_INPUT_COUNT: (None, _v_count),
    F.PSBT_GLOBAL_OUTPUT_COUNT: (None, _v_count),
    F.PSBT_GLOBAL_TX_MODIFIABLE: (None, _v_mod),
    F.PSBT_GLOBAL_VERSION: (None, _v_version),
    F.PSBT_GLOBAL_PROPRIETARY: (_k_proprietary, None),
}

_INPUT_RULES = {
    F.PSBT_IN_NON_WITNESS_UTXO: (None, _v_prev_tx),
    F.PSBT_IN_WITNESS_UTXO: (None, _v_txout),
    F.PSBT_IN_PARTIAL_SIG: (_k_pubkey, None),
    F.PSBT_IN_SIGHASH_TYPE: (None, _v4),
    F.PSBT_IN_REDEEM_SCRIPT: (None, None),
    F.PSBT_IN_WITNESS_SCRIPT: (None, None),
    F.PSBT_IN_BIP32_DERIVATION: (_k_pubkey, _v_origin),
    F.PSBT_IN_FINAL_SCRIPTSIG: (None, None),
    F.PSBT_IN_FINAL_SCRIPTWITNESS: (None, _v_witness),
    F.PSBT_IN_POR_COMMITMENT: (None, None),
    F.PSBT_IN_RIPEMD160: (20, _v_preimage),
    F.PSBT_IN_SHA256: (32, _v_preimage),
    F.PSBT_IN_HASH160: (20, _v_preimage),
    F.PSBT_IN_HASH256: (32, _v_preimage),
    F.PSBT_IN_PREVIOUS_TXID: (None, _v32),
    F.PSBT_IN_OUTPUT_INDEX: (None, _v4),
    F.PSBT_IN_SEQUENCE: (None, _v4),
    F.PSBT_IN_REQUIRED_TIME_LOCKTIME: (None, _v_time_lock),
    F.PSBT_IN_REQUIRED_HEIGHT_LOCKTIME: (None, _v_height_lock),
    F.PSBT_IN_TAP_KEY_SIG: (None, _v_schnorr_sig),
    F.PSBT_IN_TAP_SCRIPT_SIG: (64, _v_schnorr_sig),
    F.PSBT_IN_TAP_LEAF_SCRIPT: (_k_control_block, _v_leaf_script),
    F.PSBT_IN_TAP_BIP32_DERIVATION: (32, _v_tap_bip32),
    F.PSBT_IN_TAP_INTERNAL_KEY: (None, _v32),
    F.PSBT_IN_TAP_MERKLE_ROOT: (None, _v32),
    F.PSBT_IN_OWNERSHIP_PROOF: (None, None),
    F.PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS: (_k_musig_aggregate, _v_musig_keys),
    F.PSBT_IN_MUSIG2_PUB_NONCE: (_k_musig_participant, _v_len(66)),
    F.PSBT_IN_MUSIG2_PARTIAL_SIG: (_k_musig_participant, _v32),
    F.PSBT_IN_PROPRIETARY: (_k_proprietary, None),
}

_OUTPUT_RULES = {
    F.PSBT_OUT_REDEEM_SCRIPT: (None, None),
    F.PSBT_OUT_WITNESS_SCRIPT: (None, None),
    F.PSBT_OUT_BIP32_DERIVATION: (_k_pubkey, _v_origin),
    F.PSBT_OUT_AMOUNT: (None, _v_out_amount),
    F.PSBT_OUT_SCRIPT: (None, None),
    F.PSBT_OUT_TAP_INTERNAL_KEY: (None, _v32),
    F.PSBT_OUT_TAP_TREE: (None, _v_tap_tree),
    F.PSBT_OUT_TAP_BIP32_DERIVATION: (32, _v_tap_bip32),
    F.PSBT_OUT_MUSIG2_PARTICIPANT_PUBKEYS: (_k_musig_aggregate, _v_musig_keys),
    F.PSBT_OUT_PROPRIETARY: (_k_proprietary, None),
}


class _Ctx:
    __slots__ = ("keytype", "keydata", "check_keys", "prev_tx", "txs")

    keytype: int
    keydata: bytes
    check_keys: bool
    prev_tx: "F.RawTx | None"
    txs: "dict[bytes, F.RawTx]"

    def __init__(self, check_keys: bool) -> None:
        self.check_keys = check_keys
        self.keytype = 0
        self.keydata = b""
        self.prev_tx = None  # RawTx of the non_witness_utxo of the input being checked
        self.txs = {}  # every non_witness_utxo parsed so far, by its bytes


def _check_map(m: PsbtMap, where: str, rules: "Mapping[int, _Rule]", names: "dict[int, str]",
               v2_only: "Container[int]", version: int, ctx: _Ctx) -> None:
    """Check key data and values of every known record in one map."""
    for key, value in m._d.items():
        t = key[0]
        if t < 0xFD:
            keydata = key[1:]
        else:
            t, keydata = split_key(key)
        rule = rules.get(t)
        if rule is None:
            continue  # unknown: kept as is
        name = names[t]
        try:
            _check_record(t, keydata, value, rule, where, name, v2_only, version, ctx)
        except InvalidPSBT as e:
            raise e.locate(field=name)


def _check_record(t: int, keydata: bytes, value: bytes, rule: "_Rule", where: str, name: str,
                  v2_only: "Container[int]", version: int, ctx: _Ctx) -> None:
    if version == 0 and t in v2_only:
        raise InvalidPSBT(f"{where}: {name} is not allowed in PSBTv0")
    krule, vcheck = rule
    if krule is None:
        if keydata:
            raise InvalidPSBT(f"{where}: {name} key must not have key data")
    elif isinstance(krule, int):
        if len(keydata) != krule:
            raise InvalidPSBT(
                f"{where}: {name} key data must be {krule} bytes (got {len(keydata)})"
            )
    elif isinstance(krule, tuple):
        if len(keydata) not in krule:
            want = " or ".join(str(n) for n in krule)
            raise InvalidPSBT(
                f"{where}: {name} key data must be {want} bytes (got {len(keydata)})"
            )
    else:
        krule(keydata, where, name, ctx)
    if vcheck is not None:
        ctx.keytype = t
        ctx.keydata = keydata
        vcheck(value, where, name, ctx)


def _point_ok(pub: bytes) -> bool:
    try:
        _secp().ec_pubkey_parse(pub)
    except Exception:
        return False
    return True


_SECP: "ModuleType | None" = None


def _secp() -> "ModuleType":
    """embit's secp256k1 bindings, imported on first use (keeps parsing-only imports light)."""
    global _SECP
    if _SECP is None:
        from embit.util import secp256k1

        _SECP = secp256k1
    return _SECP


def _u32(value: bytes) -> int:
    return int.from_bytes(value, "little")


_V2_TOTAL = "outputs: the PSBT_OUT_AMOUNT values of all"


def _check_counts(n_in: int, n_out: int) -> None:
    if n_in > MAX_INPUTS:
        raise InvalidPSBT(
            f"global: PSBT_GLOBAL_INPUT_COUNT {n_in} is more than the limit of {MAX_INPUTS:,} inputs",
            field="PSBT_GLOBAL_INPUT_COUNT", limit=MAX_INPUTS,
        )
    if n_out > MAX_OUTPUTS:
        raise InvalidPSBT(
            f"global: PSBT_GLOBAL_OUTPUT_COUNT {n_out} is more than the limit of"
            f" {MAX_OUTPUTS:,} outputs",
            field="PSBT_GLOBAL_OUTPUT_COUNT", limit=MAX_OUTPUTS,
        )


def _outpoint(raw: Optional[F.RawTx], m: PsbtMap, i: int) -> Tuple[bytes, int]:
    """(txid internal order, index) spent by input i: from the v0 unsigned tx or v2 fields."""
    if raw is not None:
        txid, vout, _, _ = raw.vin[i]
        return txid, vout
    return m._d[b"\x0e"], _u32(m._d[b"\x0f"])


def _check_prev_tx(prev: F.RawTx, outpoint: Tuple[bytes, int], where: str) -> None:
    """A non_witness_utxo must be the transaction the input spends from (as Core checks)."""
    txid, vout = outpoint
    if prev.txid() != txid:
        raise InvalidPSBT(
            f"{where}: PSBT_IN_NON_WITNESS_UTXO is not the transaction the input spends:"
            f" it hashes to {prev.txid()[::-1].hex()} but the input spends from"
            f" {bytes(txid)[::-1].hex()}; the PSBT was tampered with or built wrongly",
            field="PSBT_IN_NON_WITNESS_UTXO",
        )
    if vout >= len(prev.vout):
        raise InvalidPSBT(
            f"{where}: spends output {vout} of its previous transaction"
            f" (PSBT_IN_NON_WITNESS_UTXO), which has only {len(prev.vout)} outputs",
            field="PSBT_IN_NON_WITNESS_UTXO",
        )


def _i64(value: bytes) -> int:
    return int.from_bytes(value, "little", signed=True)


def _global_version(glob: PsbtMap) -> int:
    value = glob._d.get(b"\xfb")
    if value is None:
        return 0
    if len(value) != 4:
        raise InvalidPSBT(
            f"global: PSBT_GLOBAL_VERSION value must be 4 bytes (got {len(value)})", field="PSBT_GLOBAL_VERSION"
        )
    version = _u32(value)
    if version not in (0, 2):
        raise InvalidPSBT(
            f"global: PSBT version {version} is not supported (only 0 and 2 are)", field="PSBT_GLOBAL_VERSION"
        )
    return version


def _parse_unsigned_tx(value: bytes) -> F.RawTx:
    try:
        return _parse_unsigned_tx_value(value)
    except InvalidPSBT as e:
        raise e.locate(field="PSBT_GLOBAL_UNSIGNED_TX")


def _parse_unsigned_tx_value(value: bytes) -> F.RawTx:
    what = "global: PSBT_GLOBAL_UNSIGNED_TX"
    try:
        tx = F.parse_tx(
            value, what, allow_witness=False, max_inputs=MAX_INPUTS, max_outputs=MAX_OUTPUTS
        )
    except InvalidPSBT:
        if len(value) > 6 and value[4] == 0 and value[5] == 1:
            raise InvalidPSBT(
                f"{what} uses the segwit serialization; it must be serialized without witnesses"
            ) from None
        raise
    for i, (_, _, script_sig, _) in enumerate(tx.vin):
        if script_sig:
            raise InvalidPSBT(f"{what} input {i} has a non-empty scriptSig")
    return tx


# ===================================================================== ordering

# Bitcoin Core's serialization order (src/psbt.h). Types not listed are
# unknown to Core and go last, sorted by key bytes, after proprietary records.
_GLOBAL_RANK = {0x00: 0, 0x01: 1, 0x02: 2, 0x03: 3, 0x04: 4, 0x05: 5, 0x06: 6, 0xFB: 7}
_INPUT_RANK = {
    t: i
    for i, t in enumerate(
        [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0A, 0x0B, 0x0C, 0x0D,
         0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x1A, 0x1B, 0x1C,
         0x07, 0x08, 0x0E, 0x0F, 0x10, 0x11, 0x12]
    )
}
_OUTPUT_RANK = {t: t for t in range(0x09)}
_PROPRIETARY_RANK = 1000
_UNKNOWN_RANK = 2000


def _sort_key_factory(ranks: "dict[int, int]", sub: "dict[int, Callable[[bytes, bytes], _SortTuple]]") -> "_SortKey":
    # one-byte key types ordered by key data alone (most records): looked up directly
    simple = {t: r for t, r in ranks.items() if t not in sub and t < 0xFC}

    def sort_key(item: "tuple[bytes, bytes]") -> _SortTuple:
        key, value = item
        r = simple.get(key[0])
        if r is not None:
            return (r, key[1:])
        t, keydata = split_key(key)
        if t == 0xFC:
            return (_PROPRIETARY_RANK, key)
        r = ranks.get(t)
        if r is None:
            return (_UNKNOWN_RANK, key)
        f = sub.get(t)
        if f is None:
            return (r, keydata)
        try:
            return (r,) + f(keydata, value)
        except Exception:  # malformed record: fall back to the key bytes
            return (r, (), keydata)

    return sort_key


def _sub_xpub(keydata: bytes, value: bytes) -> _SortTuple:
    fpr, path = F.parse_key_origin(value, "xpub")
    # KeyOriginInfo order (fingerprint, path length, path), then pubkey, chain code
    return ((fpr, len(path), tuple(path)), keydata[45:], keydata[13:45])


class _KeyId:
    """A partial signature's place among the others (hash160 of its key, as Core's
    std::map<CKeyID, ...>), hashed only when compared: a map with one partial signature never is."""

    __slots__ = ("key", "_id")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._id: "bytes | None" = None

    def id(self) -> bytes:
        if self._id is None:
            self._id = F.hash160(self.key)
        return self._id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _KeyId) and self.id() == other.id()

    def __lt__(self, other: "_KeyId") -> bool:
        return self.id() < other.id()

    __hash__ = None  # type: ignore[assignment]  # compared only, never hashed


def _sub_partial_sig(keydata: bytes, value: bytes) -> _SortTuple:
    return ((_KeyId(keydata),), keydata)


def _sub_leaf_script(keydata: bytes, value: bytes) -> _SortTuple:
    # std::map<(script, leaf_ver), std::set<control block, shortest first>>
    return ((value[:-1], value[-1]), len(keydata), keydata)


def _sub_musig_nonce(keydata: bytes, value: bytes) -> _SortTuple:
    # keyed by (aggregate key, leaf hash or zero), then participant key
    leaf = keydata[66:98] or bytes(32)
    return ((keydata[33:66], leaf), keydata[:33])


_GLOBAL_SORT = _sort_key_factory(_GLOBAL_RANK, {0x01: _sub_xpub})
_INPUT_SORT = _sort_key_factory(
    _INPUT_RANK,
    {0x02: _sub_partial_sig, 0x15: _sub_leaf_script, 0x1B: _sub_musig_nonce,
     0x1C: _sub_musig_nonce},
)
_OUTPUT_SORT = _sort_key_factory(_OUTPUT_RANK, {})


# ===================================================================== Psbt


class Psbt:
    """A partially signed bitcoin transaction, version 0 or 2.

    globals, inputs and outputs are PsbtMaps that may be changed freely;
    call validate() afterwards to check the result. The typed views
    (tx_version, locktime, prevout(i), amount(i), ...) read the same data
    for both versions.
    """

    __slots__ = ("globals", "inputs", "outputs", "_txcache", "_prev_txs")

    def __init__(
        self,
        globals: Optional[PsbtMap] = None,
        inputs: Optional[Iterable[PsbtMap]] = None,
        outputs: Optional[Iterable[PsbtMap]] = None,
    ) -> None:
        self.globals = globals if globals is not None else PsbtMap()
        self.inputs = list(inputs) if inputs is not None else []
        self.outputs = list(outputs) if outputs is not None else []
        self._txcache: "tuple[bytes, F.RawTx] | None" = None  # (unsigned tx bytes, RawTx) for v0
        # previous transactions parse() read, by their exact bytes: the roles look a
        # non_witness_utxo up here by value (so a changed field is simply parsed again)
        self._prev_txs: "dict[bytes, F.RawTx]" = {}

    # ------------------------------------------------------------ creation

    @classmethod
    def from_unsigned_tx(cls, tx: "bytes | bytearray | memoryview | Transaction") -> "Psbt":
        """New PSBTv0 with empty maps around an unsigned transaction
        (bytes without witnesses, or an embit Transaction)."""
        if not isinstance(tx, (bytes, bytearray, memoryview)):
            tx = serialize_embit_tx(tx)
        raw = _parse_unsigned_tx(bytes(tx))
        g = PsbtMap()
        g.set(F.PSBT_GLOBAL_UNSIGNED_TX, b"", bytes(tx))
        p = cls(g, [PsbtMap() for _ in raw.vin], [PsbtMap() for _ in raw.vout])
        p._txcache = (g._d[b"\x00"], raw)
        return p

    @classmethod
    def parse(cls, data: "bytes | bytearray | memoryview", max_size: int = DEFAULT_MAX_SIZE, check_keys: bool = True) -> "Psbt":
        """Parse binary PSBT data. Raises InvalidPSBT on any malformed input.

        max_size limits the input length in bytes. check_keys also checks that
        public keys (partial signatures, BIP32 derivations, global xpubs) are
        points on the curve, as Bitcoin Core does.
        """
        if not isinstance(data, bytes):
            if not isinstance(data, (bytearray, memoryview)):
                raise InvalidPSBT(f"a PSBT must be bytes, not {type(data).__name__}")
            data = bytes(data)
        end = len(data)
        if end > max_size:
            raise InvalidPSBT(f"PSBT is {end} bytes, more than the limit of {max_size} bytes", limit=max_size)
        if data[:5] != PSBT_MAGIC:
            raise InvalidPSBT("not a PSBT: it does not start with the magic bytes 'psbt' 0xff")
        ctx = _Ctx(check_keys)
        glob, pos = _read_map(data, 5, end, "global", F.GLOBAL_NAMES, MAX_RECORDS)
        budget = MAX_RECORDS - len(glob)
        version = _global_version(glob)
        _check_map(glob, "global", _GLOBAL_RULES, F.GLOBAL_NAMES, F.V2_ONLY_GLOBAL, version, ctx)
        raw = None
        if version == 0:
            txbytes = glob._d.get(b"\x00")
            if txbytes is None:
                raise InvalidPSBT("global: PSBT_GLOBAL_UNSIGNED_TX is required in PSBTv0",
                                  field="PSBT_GLOBAL_UNSIGNED_TX")
            raw = _parse_unsigned_tx(txbytes)
            n_in, n_out = len(raw.vin), len(raw.vout)
        else:
            if b"\x00" in glob._d:
                raise InvalidPSBT("global: PSBT_GLOBAL_UNSIGNED_TX is not allowed in PSBTv2",
                                  field="PSBT_GLOBAL_UNSIGNED_TX")
            for t in F.V2_REQUIRED_GLOBAL:
                if _CS[t] not in glob._d:
                    raise InvalidPSBT(f"global: {F.GLOBAL_NAMES[t]} is required in PSBTv2", field=F.GLOBAL_NAMES[t])
            n_in = decode_compact_size(glob._d[b"\x04"], "global: PSBT_GLOBAL_INPUT_COUNT")
            n_out = decode_compact_size(glob._d[b"\x05"], "global: PSBT_GLOBAL_OUTPUT_COUNT")
        if n_in + n_out > end - pos:
            raise InvalidPSBT(
                f"PSBT announces {n_in} inputs and {n_out} outputs but only"
                f" {end - pos} bytes are left for their maps"
            )
        _check_counts(n_in, n_out)
        inputs = []
        for i in range(n_in):
            where = f"input {i}"
            try:
                if pos >= end:
                    raise InvalidPSBT(f"{where}: map is missing ({n_in} input maps expected)")
                m, pos = _read_map(data, pos, end, where, F.INPUT_NAMES, budget)
                budget -= len(m)
                ctx.prev_tx = None
                _check_map(m, where, _INPUT_RULES, F.INPUT_NAMES, F.V2_ONLY_INPUT, version, ctx)
                if version == 2:
                    _require(m, where, F.V2_REQUIRED_INPUT, F.INPUT_NAMES)
                if ctx.prev_tx is not None:
                    _check_prev_tx(ctx.prev_tx, _outpoint(raw, m, i), where)
            except InvalidPSBT as e:
                raise e.locate(input_index=i)
            inputs.append(m)
        outputs = []
        for i in range(n_out):
            where = f"output {i}"
            try:
                if pos >= end:
                    raise InvalidPSBT(f"{where}: map is missing ({n_out} output maps expected)")
                m, pos = _read_map(data, pos, end, where, F.OUTPUT_NAMES, budget)
                budget -= len(m)
                _check_map(m, where, _OUTPUT_RULES, F.OUTPUT_NAMES, F.V2_ONLY_OUTPUT, version, ctx)
                if version == 2:
                    _require(m, where, F.V2_REQUIRED_OUTPUT, F.OUTPUT_NAMES)
            except InvalidPSBT as e:
                raise e.locate(output_index=i)
            outputs.append(m)
        if version == 2:
            F.check_output_total((_i64(m._d[b"\x03"]) for m in outputs), _V2_TOTAL)
        if pos != end:
            raise InvalidPSBT(f"{end - pos} unexpected bytes after the last output map")
        p = cls(glob, inputs, outputs)
        if raw is not None:
            p._txcache = (glob._d[b"\x00"], raw)
        p._prev_txs = ctx.txs
        return p

    @classmethod
    def from_base64(cls, s: "str | bytes", max_size: int = DEFAULT_MAX_SIZE, check_keys: bool = True) -> "Psbt":
        """Parse a base64 PSBT (whitespace is ignored)."""
        if isinstance(s, (bytes, bytearray, memoryview)):
            try:
                s = bytes(s).decode("ascii")
            except UnicodeDecodeError:
                raise InvalidPSBT("base64 PSBT contains non-ASCII characters") from None
        if not isinstance(s, str):
            raise InvalidPSBT(f"a base64 PSBT must be text, not {type(s).__name__}")
        if len(s) > max_size * 4 // 3 + 1024:
            raise InvalidPSBT(f"PSBT text is longer than the limit of {max_size} bytes", limit=max_size)
        s = "".join(s.split())
        try:
            data = base64.b64decode(s, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidPSBT("PSBT is not valid base64") from None
        return cls.parse(data, max_size=max_size, check_keys=check_keys)

    @classmethod
    def from_hex(cls, s: "str | bytes", max_size: int = DEFAULT_MAX_SIZE, check_keys: bool = True) -> "Psbt":
        """Parse a hex PSBT (whitespace is ignored)."""
        if isinstance(s, (bytes, bytearray, memoryview)):
            try:
                s = bytes(s).decode("ascii")
            except UnicodeDecodeError:
                raise InvalidPSBT("hex PSBT contains non-ASCII characters") from None
        if not isinstance(s, str):
            raise InvalidPSBT(f"a hex PSBT must be text, not {type(s).__name__}")
        if len(s) > max_size * 2 + 1024:
            raise InvalidPSBT(f"PSBT text is longer than the limit of {max_size} bytes", limit=max_size)
        s = "".join(s.split())
        try:
            data = bytes.fromhex(s)
        except ValueError:
            raise InvalidPSBT("PSBT is not valid hex") from None
        return cls.parse(data, max_size=max_size, check_keys=check_keys)

    @classmethod
    def load(cls, data: "bytes | bytearray | memoryview | str", max_size: int = DEFAULT_MAX_SIZE, check_keys: bool = True) -> "Psbt":
        """Parse a PSBT given as binary, base64 or hex (bytes or str)."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if isinstance(data, bytes):
            if data[:5] == PSBT_MAGIC:
                return cls.parse(data, max_size=max_size, check_keys=check_keys)
            if len(data) > max_size * 2 + 1024:
                raise InvalidPSBT(f"PSBT is longer than the limit of {max_size} bytes", limit=max_size)
            try:
                data = data.decode("ascii")
            except UnicodeDecodeError:
                raise InvalidPSBT(_NOT_A_PSBT) from None
        if not isinstance(data, str):
            raise InvalidPSBT(f"a PSBT must be bytes or str, not {type(data).__name__}")
        head = data[:64].lstrip()
        if head[:10].lower() == "70736274ff":
            return cls.from_hex(data, max_size=max_size, check_keys=check_keys)
        if head[:7] == "cHNidP8":
            return cls.from_base64(data, max_size=max_size, check_keys=check_keys)
        raise InvalidPSBT(_NOT_A_PSBT)

    # ------------------------------------------------------------ output

    def serialize(self) -> bytes:
        """Binary PSBT, records in map order."""
        n_in, n_out = self._counts()
        if len(self.inputs) != n_in or len(self.outputs) != n_out:
            raise InvalidPSBT(
                f"PSBT has {len(self.inputs)} input and {len(self.outputs)} output maps"
                f" but its transaction has {n_in} inputs and {n_out} outputs"
            )
        parts = [PSBT_MAGIC]
        self.globals._serialize_into(parts)
        for m in self.inputs:
            m._serialize_into(parts)
        for m in self.outputs:
            m._serialize_into(parts)
        return b"".join(parts)

    def to_base64(self) -> str:
        return base64.b64encode(self.serialize()).decode()

    def to_hex(self) -> str:
        return self.serialize().hex()

    def validate(self, check_keys: bool = True) -> "Psbt":
        """Check the PSBT as parse() would; raises InvalidPSBT. Returns self."""
        Psbt.parse(self.serialize(), max_size=1 << 62, check_keys=check_keys)
        return self

    # ------------------------------------------------------------ basics

    @property
    def version(self) -> int:
        """PSBT version: 0 or 2 (from PSBT_GLOBAL_VERSION, 0 if absent)."""
        return _global_version(self.globals)

    def copy(self) -> "Psbt":
        """Independent copy (maps are copied; the byte strings are shared)."""
        p = Psbt(self.globals.copy(), [m.copy() for m in self.inputs],
                 [m.copy() for m in self.outputs])
        p._txcache = self._txcache
        p._prev_txs = self._prev_txs  # keyed by content: sharing it is safe
        return p

    def parsed_prev_tx(self, value: bytes) -> "F.RawTx | None":
        """The RawTx :meth:`parse` made of these exact non_witness_utxo bytes, if it read them."""
        return self._prev_txs.get(value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Psbt):
            return NotImplemented
        return (
            self.globals == other.globals
            and self.inputs == other.inputs
            and self.outputs == other.outputs
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as the data model spells it

    def __repr__(self) -> str:
        return f"<Psbt v{self.version} inputs={len(self.inputs)} outputs={len(self.outputs)}>"

    def canonicalize(self) -> "Psbt":
        """Reorder every map to Bitcoin Core's serialization order, in place.

        Known fields come in Core's order (mostly key type order; partial
        signatures by hash160 of the key, global xpubs by key origin, final
        scripts after the taproot fields, v2 input fields after the final
        scripts), then proprietary records, then unknown ones by key bytes.
        Returns self.
        """
        self.globals._reorder(_GLOBAL_SORT)
        for m in self.inputs:
            m._reorder(_INPUT_SORT)
        for m in self.outputs:
            m._reorder(_OUTPUT_SORT)
        return self

    # ------------------------------------------------------------ typed views

    def _v0_tx(self) -> F.RawTx:
        txbytes = self.globals._d.get(b"\x00")
        if txbytes is None:
            raise InvalidPSBT("global: PSBT_GLOBAL_UNSIGNED_TX is required in PSBTv0")
        cache = self._txcache
        if cache is not None and cache[0] is txbytes:
            return cache[1]
        raw = _parse_unsigned_tx(txbytes)
        self._txcache = (txbytes, raw)
        return raw

    def _counts(self) -> "tuple[int, int]":
        if self.version == 0:
            tx = self._v0_tx()
            return len(tx.vin), len(tx.vout)
        return self.input_count, self.output_count

    def _gfield(self, t: int) -> bytes:
        v = self._gfield_or_none(t)
        if v is None:
            raise InvalidPSBT(f"global: {F.GLOBAL_NAMES[t]} is required in PSBTv2", field=F.GLOBAL_NAMES[t])
        return v

    def _gfield_or_none(self, t: int) -> "bytes | None":
        return self.globals._d.get(_CS[t])

    def _field(self, maps: "list[PsbtMap]", i: int, t: int, names: "dict[int, str]", where: str,
               size: "int | None" = None) -> bytes:
        v = self._field_or_none(maps, i, t, names, where, size)
        if v is None:
            raise _field_error(f"{where} {i}: {names[t]} is required in PSBTv2", names[t], where, i)
        return v

    def _field_or_none(self, maps: "list[PsbtMap]", i: int, t: int, names: "dict[int, str]", where: str,
                       size: "int | None" = None) -> "bytes | None":
        v = maps[i]._d.get(_CS[t])
        if v is not None and size is not None and len(v) != size:
            raise _field_error(f"{where} {i}: {names[t]} value must be {size} bytes", names[t], where, i)
        return v

    @property
    def tx_version(self) -> int:
        """Version of the unsigned transaction (not the PSBT version).

        A signed 32-bit number, as BIP370 defines it (embit reads the same
        four bytes as unsigned).
        """
        if self.version == 0:
            return self._v0_tx().version
        v = self._gfield(F.PSBT_GLOBAL_TX_VERSION)
        if len(v) != 4:
            raise InvalidPSBT("global: PSBT_GLOBAL_TX_VERSION value must be 4 bytes")
        return int.from_bytes(v, "little", signed=True)

    @property
    def input_count(self) -> int:
        if self.version == 0:
            return len(self._v0_tx().vin)
        return decode_compact_size(
            self._gfield(F.PSBT_GLOBAL_INPUT_COUNT), "global: PSBT_GLOBAL_INPUT_COUNT"
        )

    @property
    def output_count(self) -> int:
        if self.version == 0:
            return len(self._v0_tx().vout)
        return decode_compact_size(
            self._gfield(F.PSBT_GLOBAL_OUTPUT_COUNT), "global: PSBT_GLOBAL_OUTPUT_COUNT"
        )

    @property
    def locktime(self) -> int:
        """nLockTime of the transaction; for v2 as BIP370 determines it."""
        if self.version == 0:
            return self._v0_tx().locktime
        heights, times = [], []
        height_ok = time_ok = True
        for i, m in enumerate(self.inputs):
            h = m._d.get(b"\x12")
            t = m._d.get(b"\x11")
            if h is None and t is None:
                continue
            if h is None:
                height_ok = False
            else:
                heights.append(_u32(self._field(self.inputs, i, 0x12, F.INPUT_NAMES, "input", 4)))
            if t is None:
                time_ok = False
            else:
                times.append(_u32(self._field(self.inputs, i, 0x11, F.INPUT_NAMES, "input", 4)))
        if not heights and not times:
            v = self._gfield_or_none(F.PSBT_GLOBAL_FALLBACK_LOCKTIME)
            if v is None:
                return 0
            if len(v) != 4:
                raise InvalidPSBT("global: PSBT_GLOBAL_FALLBACK_LOCKTIME value must be 4 bytes")
            return _u32(v)
        if height_ok and heights:
            return max(heights)
        if time_ok and times:
            return max(times)
        raise InvalidPSBT(
            "the inputs require both a height and a time based lock time;"
            " no lock time satisfies all of them"
        )

    def prevout(self, i: int) -> Tuple[bytes, int]:
        """(txid in internal byte order, output index) spent by input i."""
        if self.version == 0:
            txid, vout, _, _ = self._v0_tx().vin[i]
            return txid, vout
        self.inputs[i]  # IndexError for a bad index
        txid = self._field(self.inputs, i, F.PSBT_IN_PREVIOUS_TXID, F.INPUT_NAMES, "input", 32)
        n = self._field(self.inputs, i, F.PSBT_IN_OUTPUT_INDEX, F.INPUT_NAMES, "input", 4)
        return txid, _u32(n)

    def sequence(self, i: int) -> int:
        """nSequence of input i (0xffffffff when a v2 input does not set it)."""
        if self.version == 0:
            return self._v0_tx().vin[i][3]
        self.inputs[i]
        v = self._field_or_none(self.inputs, i, F.PSBT_IN_SEQUENCE, F.INPUT_NAMES, "input", 4)
        return F.SEQUENCE_FINAL if v is None else _u32(v)

    def amount(self, i: int) -> int:
        """Amount of output i in satoshis, always within 0..MAX_MONEY (else InvalidPSBT)."""
        if self.version == 0:
            return self._v0_tx().vout[i][0]
        self.outputs[i]
        v = self._field(self.outputs, i, F.PSBT_OUT_AMOUNT, F.OUTPUT_NAMES, "output", 8)
        try:
            return F.check_amount(_i64(v), f"output {i}: PSBT_OUT_AMOUNT")
        except InvalidPSBT as e:
            raise e.locate(output_index=i, field="PSBT_OUT_AMOUNT")

    def script(self, i: int) -> bytes:
        """scriptPubKey of output i."""
        if self.version == 0:
            return self._v0_tx().vout[i][1]
        self.outputs[i]
        return self._field(self.outputs, i, F.PSBT_OUT_SCRIPT, F.OUTPUT_NAMES, "output")

    def _tx_parts(self, zero_sequence: bool = False
                  ) -> "tuple[int, list[tuple[bytes, int, int]], list[tuple[int, bytes]], int]":
        vin = []
        for i in range(self.input_count):
            txid, n = self.prevout(i)
            vin.append((txid, n, 0 if zero_sequence else self.sequence(i)))
        vout = [(self.amount(i), self.script(i)) for i in range(self.output_count)]
        return self.tx_version, vin, vout, self.locktime

    def unsigned_tx(self) -> bytes:
        """The unsigned transaction, serialized without witnesses.

        v0: the stored PSBT_GLOBAL_UNSIGNED_TX; v2: built from the fields.
        """
        if self.version == 0:
            self._v0_tx()
            return self.globals._d[b"\x00"]
        return serialize_embit_tx(self.unsigned_transaction())

    def unsigned_transaction(self) -> "Transaction":
        """The unsigned transaction as an embit Transaction."""
        from embit.script import Script
        from embit.transaction import Transaction, TransactionInput, TransactionOutput

        version, vin, vout, locktime = self._tx_parts()
        for i, (amount, _) in enumerate(vout):
            if amount < 0:
                raise InvalidPSBT(f"output {i}: amount {amount} is negative", output_index=i)
        return Transaction(
            version=version & 0xFFFFFFFF,  # embit writes the version unsigned
            vin=[TransactionInput(txid[::-1], n, sequence=seq) for txid, n, seq in vin],
            vout=[TransactionOutput(amount, Script(script)) for amount, script in vout],
            locktime=locktime,
        )

    def txid(self) -> bytes:
        """Txid of the unsigned transaction, in display (RPC) byte order."""
        return _hash256(self.unsigned_tx())[::-1]

    def unique_id(self) -> bytes:
        """BIP370 unique id: txid (display order) with every sequence set to 0."""
        version, vin, vout, locktime = self._tx_parts(zero_sequence=True)
        return _hash256(F.serialize_tx(version, vin, vout, locktime))[::-1]

    # ------------------------------------------------------------ versions

    def to_v2(self) -> "Psbt":
        """New PSBTv2 with the same content (BIP370), in canonical order."""
        if self.version == 2:
            return self.copy()
        tx = self._v0_tx()
        g = PsbtMap()
        for key, value in self.globals._d.items():
            if key not in (b"\x00", b"\xfb"):
                g._d[key] = value
        g.set(F.PSBT_GLOBAL_TX_VERSION, b"", tx.version.to_bytes(4, "little", signed=True))
        g.set(F.PSBT_GLOBAL_FALLBACK_LOCKTIME, b"", tx.locktime.to_bytes(4, "little"))
        g.set(F.PSBT_GLOBAL_INPUT_COUNT, b"", compact_size(len(tx.vin)))
        g.set(F.PSBT_GLOBAL_OUTPUT_COUNT, b"", compact_size(len(tx.vout)))
        g.set(F.PSBT_GLOBAL_VERSION, b"", (2).to_bytes(4, "little"))
        inputs = []
        for m, (txid, n, _, seq) in zip(self.inputs, tx.vin):
            m = m.copy()
            m.set(F.PSBT_IN_PREVIOUS_TXID, b"", txid)
            m.set(F.PSBT_IN_OUTPUT_INDEX, b"", n.to_bytes(4, "little"))
            m.set(F.PSBT_IN_SEQUENCE, b"", seq.to_bytes(4, "little"))
            inputs.append(m)
        outputs = []
        for m, (amount, script) in zip(self.outputs, tx.vout):
            m = m.copy()
            m.set(F.PSBT_OUT_AMOUNT, b"", amount.to_bytes(8, "little", signed=True))
            m.set(F.PSBT_OUT_SCRIPT, b"", script)
            outputs.append(m)
        return Psbt(g, inputs, outputs).canonicalize()

    def to_v0(self) -> "Psbt":
        """New PSBTv0 with the same content (BIP370), in canonical order.

        The v2-only fields (tx version, lock times, counts, modifiable flags,
        previous outpoints, sequences, output amounts and scripts) go into
        PSBT_GLOBAL_UNSIGNED_TX. Raises InvalidPSBT if no lock time fits.
        """
        if self.version == 0:
            return self.copy()
        version, vin, vout, locktime = self._tx_parts()
        txbytes = F.serialize_tx(version, vin, vout, locktime)
        g = PsbtMap()
        g.set(F.PSBT_GLOBAL_UNSIGNED_TX, b"", txbytes)
        for key, value in self.globals._d.items():
            t = keytype_of(key)
            if t not in F.V2_ONLY_GLOBAL and t != F.PSBT_GLOBAL_VERSION:
                g._d[key] = value
        inputs = [_without(m, F.V2_ONLY_INPUT) for m in self.inputs]
        outputs = [_without(m, F.V2_ONLY_OUTPUT) for m in self.outputs]
        return Psbt(g, inputs, outputs).canonicalize()


def _field_error(message: str, field: str, where: str, i: int) -> InvalidPSBT:
    if where == "input":
        return InvalidPSBT(message, field=field, input_index=i)
    return InvalidPSBT(message, field=field, output_index=i)


def _require(m: PsbtMap, where: str, required: "Iterable[int]", names: "dict[int, str]") -> None:
    for t in required:
        if _CS[t] not in m._d:
            raise InvalidPSBT(f"{where}: {names[t]} is required in PSBTv2", field=names[t])


def _without(m: PsbtMap, types: "Container[int]") -> PsbtMap:
    return PsbtMap._wrap({k: v for k, v in m._d.items() if keytype_of(k) not in types})


def _hash256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def serialize_embit_tx(tx: "Transaction") -> bytes:
    """Serialize an unsigned embit Transaction without witnesses."""
    for i, inp in enumerate(tx.vin):
        if inp.script_sig.data or inp.witness.items:
            raise InvalidPSBT(f"unsigned transaction input {i} has a scriptSig or witness")
    return tx.serialize()

