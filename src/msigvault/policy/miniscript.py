"""Miniscript for P2WSH and tapscript: parsing, Core's type system, script generation,
resource limits, witness-size bounds and satisfaction.

This follows Bitcoin Core's ``src/script/miniscript.h``/``.cpp`` (and the specification at
bitcoin.sipa.be/miniscript) fragment by fragment: the same type rules (B/V/K/W, z/o/n/d/u,
e/f/s/m, the g/h/i/j/k timelock properties), the same ops, stack and witness-size
arithmetic, the same scripts, and the same satisfaction algorithm (cheapest non-malleable
witness). A :class:`Miniscript` is a frozen tree; every node computes its type and bounds from
its children when it is built, so nothing is recursive and cost is linear in the text.

Keys are opaque: the parser takes a callback that turns a span of the text into a key object
(the descriptor parser gives it :class:`~msigvault.policy.descriptors.DescriptorKey`), and
script generation takes ``key_bytes(key) -> 33-byte compressed public key`` (tapscript uses
the x-only part). Decoding a script back to miniscript is in :mod:`.miniscript_decode`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar

_R = TypeVar("_R")

from embit.hashes import hash160 as _hash160
from embit.hashes import ripemd160 as _ripemd160

from ..errors import InvalidDescriptor
from ..script import compact_size, push_data, script_num

__all__ = [
    "Context", "Fragment", "Miniscript", "MiniscriptError", "InsaneMiniscript", "Satisfier", "parse_miniscript",
    "type_string", "MAX_OPS_PER_SCRIPT", "MAX_STANDARD_P2WSH_STACK_ITEMS", "MAX_STACK_SIZE",
    "MAX_STANDARD_P2WSH_SCRIPT_SIZE", "MAX_TAPSCRIPT_SIZE",
]

# ============================================================================ errors


class MiniscriptError(InvalidDescriptor):
    """A miniscript expression cannot be parsed or is not well typed (``position`` says where)."""

    code = "descriptor.miniscript"


class InsaneMiniscript(MiniscriptError):
    """A miniscript is well typed but not sane as Core defines it; ``reason`` is one of
    ``malleable``, ``no-signature``, ``timelock-mix``, ``duplicate-key``, ``resource-limits``,
    ``unsatisfiable`` or ``invalid``."""

    code = "descriptor.miniscript-insane"
    reason: "str | None" = None


def _error(message: str, position: Optional[int], cls: "type[MiniscriptError]" = MiniscriptError,
           reason: Optional[str] = None) -> MiniscriptError:
    text = message if position is None else f"{message} (at position {position})"
    err = cls(text)
    err.position = position
    if reason is not None and isinstance(err, InsaneMiniscript):
        err.reason = reason
    return err


# ============================================================================ limits

MAX_OPS_PER_SCRIPT = 201
MAX_STANDARD_P2WSH_STACK_ITEMS = 100
MAX_STACK_SIZE = 1000
MAX_STANDARD_P2WSH_SCRIPT_SIZE = 3600
MAX_PUBKEYS_PER_MULTISIG = 20
MAX_PUBKEYS_PER_MULTI_A = 999
_LOCKTIME_THRESHOLD = 500_000_000
_SEQUENCE_TYPE_FLAG = 1 << 22
_SEQUENCE_DISABLE_FLAG = 1 << 31
_SEQUENCE_MASK = 0x0000FFFF


def _cs_len(n: int) -> int:
    return len(compact_size(n))


def _tapscript_max_size() -> int:
    """Core's MaxScriptSize(TAPSCRIPT): a standard transaction must still fit a full witness."""
    tx_body_leeway_weight = (8 + 1 + (36 + 4 + 1) + 1 + (8 + 1 + 1 + 33)) * 4 + 2
    control_max = 33 + 32 * 128
    max_sat = _cs_len(MAX_STACK_SIZE) + (_cs_len(65) + 65) * MAX_STACK_SIZE + _cs_len(control_max) + control_max
    size = 400_000 - tx_body_leeway_weight - max_sat
    return size - _cs_len(size)


MAX_TAPSCRIPT_SIZE = _tapscript_max_size()


class Context(Enum):
    """Where a miniscript runs: a P2WSH witness script or a tapscript leaf."""

    P2WSH = "wsh"
    TAPSCRIPT = "tr"


class Fragment(Enum):
    JUST_0 = "0"
    JUST_1 = "1"
    PK_K = "pk_k"
    PK_H = "pk_h"
    OLDER = "older"
    AFTER = "after"
    SHA256 = "sha256"
    HASH256 = "hash256"
    RIPEMD160 = "ripemd160"
    HASH160 = "hash160"
    WRAP_A = "a"
    WRAP_S = "s"
    WRAP_C = "c"
    WRAP_D = "d"
    WRAP_V = "v"
    WRAP_J = "j"
    WRAP_N = "n"
    AND_V = "and_v"
    AND_B = "and_b"
    OR_B = "or_b"
    OR_C = "or_c"
    OR_D = "or_d"
    OR_I = "or_i"
    ANDOR = "andor"
    THRESH = "thresh"
    MULTI = "multi"
    MULTI_A = "multi_a"


F = Fragment
_WRAPPERS = {F.WRAP_A, F.WRAP_S, F.WRAP_C, F.WRAP_D, F.WRAP_V, F.WRAP_J, F.WRAP_N}
_HASHES = {F.SHA256: 32, F.HASH256: 32, F.RIPEMD160: 20, F.HASH160: 20}
_TWO = {F.AND_V, F.AND_B, F.OR_B, F.OR_C, F.OR_D, F.OR_I}

# ============================================================================ types

_LETTERS = "BVKWzondufesmxghijk"
_BIT = {c: 1 << i for i, c in enumerate(_LETTERS)}


def T(letters: str) -> int:
    """The type bitmask with ``letters`` (e.g. ``T("Bdu")``)."""
    out = 0
    for c in letters:
        out |= _BIT[c]
    return out


def _has(t: int, letters: str) -> bool:
    m = T(letters)
    return t & m == m


def _if(cond: bool, t: int) -> int:
    return t if cond else 0


def type_string(t: int) -> str:
    """Letters of a type bitmask in Core's order (``"Bondu..."``)."""
    return "".join(c for c in _LETTERS if t & _BIT[c])


def _mix(x: int, y: int) -> bool:
    """x and y combine a height lock with a time lock (of the same kind: relative or absolute)."""
    return ((_has(x, "g") and _has(y, "h")) or (_has(x, "h") and _has(y, "g"))
            or (_has(x, "i") and _has(y, "j")) or (_has(x, "j") and _has(y, "i")))


def _sanitize(e: int) -> int:
    if bin(e & T("KVBW")).count("1") != 1:
        return 0
    return e


def _compute_type(frag: Fragment, subs: "Sequence[int]", k: int, n_subs: int, ctx: Context) -> int:
    x = subs[0] if len(subs) > 0 else 0
    y = subs[1] if len(subs) > 1 else 0
    z = subs[2] if len(subs) > 2 else 0
    tl = T("ghijk")
    if frag is F.PK_K:
        return T("Konudemsxk")
    if frag is F.PK_H:
        return T("Knudemsxk")
    if frag is F.OLDER:
        return _if(bool(k & _SEQUENCE_TYPE_FLAG), T("g")) | _if(not k & _SEQUENCE_TYPE_FLAG, T("h")) | T("Bzfmxk")
    if frag is F.AFTER:
        return _if(k >= _LOCKTIME_THRESHOLD, T("i")) | _if(k < _LOCKTIME_THRESHOLD, T("j")) | T("Bzfmxk")
    if frag in _HASHES:
        return T("Bonudmk")
    if frag is F.JUST_1:
        return T("Bzufmxk")
    if frag is F.JUST_0:
        return T("Bzudemsxk")
    if frag is F.WRAP_A:
        return _if(_has(x, "B"), T("W")) | (x & tl) | (x & T("udfems")) | T("x")
    if frag is F.WRAP_S:
        return _if(_has(x, "Bo"), T("W")) | (x & tl) | (x & T("udfemsx"))
    if frag is F.WRAP_C:
        return _if(_has(x, "K"), T("B")) | (x & tl) | (x & T("ondfem")) | T("us")
    if frag is F.WRAP_D:
        return (_if(_has(x, "Vz"), T("B")) | _if(_has(x, "z"), T("o")) | _if(_has(x, "f"), T("e")) | (x & tl)
                | (x & T("ms")) | _if(ctx is Context.TAPSCRIPT, T("u")) | T("ndx"))
    if frag is F.WRAP_V:
        return _if(_has(x, "B"), T("V")) | (x & tl) | (x & T("zonms")) | T("fx")
    if frag is F.WRAP_J:
        return _if(_has(x, "Bn"), T("B")) | _if(_has(x, "f"), T("e")) | (x & tl) | (x & T("oums")) | T("ndx")
    if frag is F.WRAP_N:
        return (x & tl) | (x & T("Bzondfems")) | T("ux")
    if frag is F.AND_V:
        return (_if(_has(x, "V"), y & T("KVB")) | (x & T("n")) | _if(_has(x, "z"), y & T("n"))
                | _if(_has(x | y, "z"), (x | y) & T("o")) | (x & y & T("dmz")) | ((x | y) & T("s"))
                | _if(_has(y, "f") or _has(x, "s"), T("f")) | (y & T("ux")) | ((x | y) & T("ghij"))
                | _if(_has(x & y, "k") and not _mix(x, y), T("k")))
    if frag is F.AND_B:
        return (_if(_has(y, "W"), x & T("B")) | _if(_has(x | y, "z"), (x | y) & T("o")) | (x & T("n"))
                | _if(_has(x, "z"), y & T("n")) | _if(_has(x & y, "s"), x & y & T("e")) | (x & y & T("dzm"))
                | _if(_has(x & y, "f") or _has(x, "sf") or _has(y, "sf"), T("f")) | ((x | y) & T("s"))
                | T("ux") | ((x | y) & T("ghij")) | _if(_has(x & y, "k") and not _mix(x, y), T("k")))
    if frag is F.OR_B:
        return (_if(_has(x, "Bd") and _has(y, "Wd"), T("B")) | _if(_has(x | y, "z"), (x | y) & T("o"))
                | _if(_has(x | y, "s") and _has(x & y, "e"), x & y & T("m")) | (x & y & T("zse")) | T("dux")
                | ((x | y) & T("ghij")) | (x & y & T("k")))
    if frag is F.OR_D:
        return (_if(_has(x, "Bdu"), y & T("B")) | _if(_has(y, "z"), x & T("o"))
                | _if(_has(x, "e") and _has(x | y, "s"), x & y & T("m")) | (x & y & T("zs")) | (y & T("ufde"))
                | T("x") | ((x | y) & T("ghij")) | (x & y & T("k")))
    if frag is F.OR_C:
        return (_if(_has(x, "Bdu"), y & T("V")) | _if(_has(y, "z"), x & T("o"))
                | _if(_has(x, "e") and _has(x | y, "s"), x & y & T("m")) | (x & y & T("zs")) | T("fx")
                | ((x | y) & T("ghij")) | (x & y & T("k")))
    if frag is F.OR_I:
        return ((x & y & T("VBKufs")) | _if(_has(x & y, "z"), T("o")) | _if(_has(x | y, "f"), (x | y) & T("e"))
                | _if(_has(x | y, "s"), x & y & T("m")) | ((x | y) & T("d")) | T("x") | ((x | y) & T("ghij"))
                | (x & y & T("k")))
    if frag is F.ANDOR:
        return (_if(_has(x, "Bdu"), y & z & T("BKV")) | (x & y & z & T("z"))
                | _if(_has(x | (y & z), "z"), (x | (y & z)) & T("o")) | (y & z & T("u"))
                | _if(_has(x, "s") or _has(y, "f"), z & T("f")) | (z & T("d"))
                | _if(_has(x, "s") or _has(y, "f"), z & T("e"))
                | _if(_has(x, "e") and _has(x | y | z, "s"), x & y & z & T("m")) | (z & (x | y) & T("s"))
                | T("x") | ((x | y | z) & T("ghij")) | _if(_has(x & y & z, "k") and not _mix(x, y), T("k")))
    if frag is F.MULTI:
        return T("Bnudemsk")
    if frag is F.MULTI_A:
        return T("Budemsk")
    if frag is F.THRESH:
        all_e = all_m = True
        args = num_s = 0
        acc = T("k")
        for i, t in enumerate(subs):
            if not _has(t, "Wdu" if i else "Bdu"):
                return 0
            all_e = all_e and _has(t, "e")
            all_m = all_m and _has(t, "m")
            num_s += _has(t, "s")
            args += 0 if _has(t, "z") else 1 if _has(t, "o") else 2
            acc = ((acc | t) & T("ghij")) | _if(_has(acc & t, "k") and (k <= 1 or not _mix(acc, t)), T("k"))
        return (T("Bdu") | _if(args == 0, T("z")) | _if(args == 1, T("o"))
                | _if(all_e and num_s == n_subs, T("e")) | _if(all_e and all_m and num_s >= n_subs - k, T("m"))
                | _if(num_s >= n_subs - k + 1, T("s")) | acc)
    raise AssertionError(frag)  # pragma: no cover


# ============================================================================ bounds


@dataclass(frozen=True)
class _MaxInt:
    """Core's MaxInt: the maximum of a set of integers, or nothing (``value`` None)."""

    value: Optional[int] = None

    def __add__(self, o: "_MaxInt") -> "_MaxInt":
        if self.value is None or o.value is None:
            return _NONE
        return _MaxInt(self.value + o.value)

    def __or__(self, o: "_MaxInt") -> "_MaxInt":
        if self.value is None:
            return o
        if o.value is None:
            return self
        return _MaxInt(max(self.value, o.value))


_NONE = _MaxInt()


def _mi(v: int) -> _MaxInt:
    return _MaxInt(v)


@dataclass(frozen=True)
class _Sat:
    """Core's SatInfo: a set of execution traces (None = empty) as (netdiff, exec)."""

    netdiff: Optional[int] = None
    exec: int = 0

    @property
    def valid(self) -> bool:
        return self.netdiff is not None

    def __or__(self, o: "_Sat") -> "_Sat":
        if self.netdiff is None:
            return o
        if o.netdiff is None:
            return self
        return _Sat(max(self.netdiff, o.netdiff), max(self.exec, o.exec))

    def __add__(self, o: "_Sat") -> "_Sat":
        if self.netdiff is None or o.netdiff is None:
            return _EMPTYSET
        return _Sat(self.netdiff + o.netdiff, max(o.exec, o.netdiff + self.exec))


_EMPTYSET = _Sat()
_S_EMPTY = _Sat(0, 0)
_PUSH = _Sat(-1, 0)
_HASH = _Sat(0, 0)
_NOP = _Sat(0, 0)
_IF = _Sat(1, 1)
_BINOP = _Sat(1, 1)
_DUP = _Sat(-1, 0)
_EQUALVERIFY = _Sat(2, 2)
_EQUAL = _Sat(1, 1)
_SIZE = _Sat(-1, 0)
_CHECKSIG = _Sat(1, 1)
_0NOTEQUAL = _Sat(0, 0)
_VERIFY = _Sat(1, 1)


def _ifdup(nonzero: bool) -> _Sat:
    return _Sat(-1 if nonzero else 0, 0)


# ============================================================================ the tree


@dataclass(frozen=True, eq=False, repr=False)
class Miniscript:
    """One miniscript node. Build trees with :func:`parse_miniscript` (or the constructors of
    the descriptor parser); type, script size and bounds are computed when a node is made.
    Equality, hashing and repr walk the tree without recursion, so deep trees are safe."""

    fragment: Fragment
    ctx: Context
    k: int = 0
    keys: "tuple[Any, ...]" = ()
    data: bytes = b""
    subs: "tuple[Miniscript, ...]" = ()
    position: int = field(default=0, compare=False)
    type: int = field(init=False, compare=False, repr=False)
    script_len: int = field(init=False, compare=False, repr=False)
    _ops: "tuple[int, _MaxInt, _MaxInt]" = field(init=False, compare=False, repr=False)
    _ss: "tuple[_Sat, _Sat]" = field(init=False, compare=False, repr=False)
    _ws: "tuple[_MaxInt, _MaxInt]" = field(init=False, compare=False, repr=False)
    _hash: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        st = object.__setattr__
        st(self, "_hash", hash((self.fragment, self.ctx, self.k, self.keys, self.data,
                                tuple(s._hash for s in self.subs))))
        st(self, "type", _sanitize(_compute_type(self.fragment, [s.type for s in self.subs], self.k,
                                                 len(self.subs), self.ctx)))
        st(self, "script_len", self._calc_script_len())
        st(self, "_ops", self._calc_ops())
        st(self, "_ss", self._calc_stack())
        st(self, "_ws", self._calc_witness())

    # -- computed at construction ---------------------------------------------------------------

    def _calc_script_len(self) -> int:
        f, subs, k = self.fragment, self.subs, self.k
        sub = sum(s.script_len for s in subs)
        tap = self.ctx is Context.TAPSCRIPT
        if f in (F.JUST_0, F.JUST_1):
            return 1
        if f is F.PK_K:
            return 33 if tap else 34
        if f is F.PK_H:
            return 3 + 21
        if f in (F.OLDER, F.AFTER):
            return 1 + len(script_num(k))
        if f in (F.SHA256, F.HASH256):
            return 4 + 2 + 33
        if f in (F.RIPEMD160, F.HASH160):
            return 4 + 2 + 21
        if f is F.MULTI:
            return 1 + len(script_num(len(self.keys))) + len(script_num(k)) + 34 * len(self.keys)
        if f is F.MULTI_A:
            return (1 + 32 + 1) * len(self.keys) + len(script_num(k)) + 1
        if f is F.AND_V:
            return sub
        if f is F.WRAP_V:
            return sub + _has(subs[0].type, "x")
        if f in (F.WRAP_S, F.WRAP_C, F.WRAP_N, F.AND_B, F.OR_B):
            return sub + 1
        if f in (F.WRAP_A, F.OR_C):
            return sub + 2
        if f in (F.WRAP_D, F.OR_D, F.OR_I, F.ANDOR):
            return sub + 3
        if f is F.WRAP_J:
            return sub + 4
        return sub + len(subs) + len(script_num(k))  # THRESH

    def _calc_ops(self) -> "tuple[int, _MaxInt, _MaxInt]":
        f, s = self.fragment, self.subs
        z = _mi(0)
        if f is F.JUST_1:
            return 0, z, _NONE
        if f is F.JUST_0:
            return 0, _NONE, z
        if f is F.PK_K:
            return 0, z, z
        if f is F.PK_H:
            return 3, z, z
        if f in (F.OLDER, F.AFTER):
            return 1, z, _NONE
        if f in _HASHES:
            return 4, z, _NONE
        if f is F.MULTI:
            n = _mi(len(self.keys))
            return 1, n, n
        if f is F.MULTI_A:
            return len(self.keys) + 1, z, z
        if f is F.THRESH:
            count, sats = 0, [z]
            for sub in s:
                c, sat, dsat = sub._ops
                count += c + 1
                nxt = [sats[0] + dsat]
                nxt += [(sats[j] + dsat) | (sats[j - 1] + sat) for j in range(1, len(sats))]
                nxt.append(sats[-1] + sat)
                sats = nxt
            return count, sats[self.k], sats[0]
        (xc, xs, xd) = s[0]._ops
        if f in (F.WRAP_S, F.WRAP_C, F.WRAP_N):
            return 1 + xc, xs, xd
        if f is F.WRAP_A:
            return 2 + xc, xs, xd
        if f is F.WRAP_D:
            return 3 + xc, xs, z
        if f is F.WRAP_J:
            return 4 + xc, xs, z
        if f is F.WRAP_V:
            return xc + _has(s[0].type, "x"), xs, _NONE
        (yc, ys, yd) = s[1]._ops
        if f is F.AND_V:
            return xc + yc, xs + ys, _NONE
        if f is F.AND_B:
            return 1 + xc + yc, xs + ys, xd + yd
        if f is F.OR_B:
            return 1 + xc + yc, (xs + yd) | (ys + xd), xd + yd
        if f is F.OR_D:
            return 3 + xc + yc, xs | (ys + xd), xd + yd
        if f is F.OR_C:
            return 2 + xc + yc, xs | (ys + xd), _NONE
        if f is F.OR_I:
            return 3 + xc + yc, xs | ys, xd | yd
        (zc, zs, zd) = s[2]._ops  # ANDOR
        return 3 + xc + yc + zc, (ys + xs) | (xd + zs), xd + zd

    def _calc_stack(self) -> "tuple[_Sat, _Sat]":
        f, s, k = self.fragment, self.subs, self.k
        if f is F.JUST_0:
            return _EMPTYSET, _PUSH
        if f is F.JUST_1:
            return _PUSH, _EMPTYSET
        if f in (F.OLDER, F.AFTER):
            return _PUSH + _NOP, _EMPTYSET
        if f is F.PK_K:
            return _PUSH, _PUSH
        if f is F.PK_H:
            both = _DUP + _HASH + _PUSH + _EQUALVERIFY
            return both, both
        if f in _HASHES:
            return _SIZE + _PUSH + _EQUALVERIFY + _HASH + _PUSH + _EQUAL, _EMPTYSET
        if f is F.MULTI:
            m = _Sat(k, k + len(self.keys) + 2)
            return m, m
        if f is F.MULTI_A:
            m = _Sat(len(self.keys) - 1, len(self.keys))
            return m, m
        if f is F.THRESH:
            sats = [_S_EMPTY]
            for i, sub in enumerate(s):
                add = _BINOP if i else _S_EMPTY
                xs, xd = sub._ss
                nxt = [sats[0] + xd + add]
                nxt += [((sats[j] + xd) | (sats[j - 1] + xs)) + add for j in range(1, len(sats))]
                nxt.append(sats[-1] + xs + add)
                sats = nxt
            return sats[k] + _PUSH + _EQUAL, sats[0] + _PUSH + _EQUAL
        xs, xd = s[0]._ss
        if f in (F.WRAP_A, F.WRAP_N, F.WRAP_S):
            return xs, xd
        if f is F.WRAP_C:
            return xs + _CHECKSIG, xd + _CHECKSIG
        if f is F.WRAP_D:
            return _DUP + _IF + xs, _DUP + _IF
        if f is F.WRAP_V:
            return xs + _VERIFY, _EMPTYSET
        if f is F.WRAP_J:
            return _SIZE + _0NOTEQUAL + _IF + xs, _SIZE + _0NOTEQUAL + _IF
        ys, yd = s[1]._ss
        if f is F.AND_V:
            return xs + ys, _EMPTYSET
        if f is F.AND_B:
            return xs + ys + _BINOP, xd + yd + _BINOP
        if f is F.OR_B:
            return ((xs + yd) | (xd + ys)) + _BINOP, xd + yd + _BINOP
        if f is F.OR_C:
            return (xs + _IF) | (xd + _IF + ys), _EMPTYSET
        if f is F.OR_D:
            return ((xs + _ifdup(True) + _IF) | (xd + _ifdup(False) + _IF + ys),
                    xd + _ifdup(False) + _IF + yd)
        if f is F.OR_I:
            return _IF + (xs | ys), _IF + (xd | yd)
        zs, zd = s[2]._ss  # ANDOR
        return (xs + _IF + ys) | (xd + _IF + zs), xd + _IF + zd

    def _calc_witness(self) -> "tuple[_MaxInt, _MaxInt]":
        f, s, k = self.fragment, self.subs, self.k
        tap = self.ctx is Context.TAPSCRIPT
        sig, pub = (1 + 65, 1 + 32) if tap else (1 + 72, 1 + 33)
        if f is F.JUST_0:
            return _NONE, _mi(0)
        if f in (F.JUST_1, F.OLDER, F.AFTER):
            return _mi(0), _NONE
        if f is F.PK_K:
            return _mi(sig), _mi(1)
        if f is F.PK_H:
            return _mi(sig + pub), _mi(1 + pub)
        if f in _HASHES:
            return _mi(1 + 32), _NONE
        if f is F.MULTI:
            return _mi(k * sig + 1), _mi(k + 1)
        if f is F.MULTI_A:
            return _mi(k * sig + len(self.keys) - k), _mi(len(self.keys))
        if f is F.THRESH:
            sats = [_mi(0)]
            for sub in s:
                xs, xd = sub._ws
                nxt = [sats[0] + xd]
                nxt += [(sats[j] + xd) | (sats[j - 1] + xs) for j in range(1, len(sats))]
                nxt.append(sats[-1] + xs)
                sats = nxt
            return sats[k], sats[0]
        xs, xd = s[0]._ws
        if f in (F.WRAP_A, F.WRAP_N, F.WRAP_S, F.WRAP_C):
            return xs, xd
        if f is F.WRAP_D:
            return _mi(2) + xs, _mi(1)
        if f is F.WRAP_V:
            return xs, _NONE
        if f is F.WRAP_J:
            return xs, _mi(1)
        ys, yd = s[1]._ws
        if f is F.AND_V:
            return xs + ys, _NONE
        if f is F.AND_B:
            return xs + ys, xd + yd
        if f is F.OR_B:
            return (xd + ys) | (xs + yd), xd + yd
        if f is F.OR_C:
            return xs | (xd + ys), _NONE
        if f is F.OR_D:
            return xs | (xd + ys), xd + yd
        if f is F.OR_I:
            return (xs + _mi(2)) | (ys + _mi(1)), (xd + _mi(2)) | (yd + _mi(1))
        zs, zd = s[2]._ws  # ANDOR
        return (xs + ys) | (xd + zs), xd + zd

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Miniscript):
            return NotImplemented
        stack = [(self, other)]
        while stack:
            a, b = stack.pop()
            if a is b:
                continue
            if (a._hash != b._hash or a.fragment is not b.fragment or a.ctx is not b.ctx or a.k != b.k
                    or a.keys != b.keys or a.data != b.data or len(a.subs) != len(b.subs)):
                return False
            stack.extend(zip(a.subs, b.subs))
        return True

    def __repr__(self) -> str:
        return f"Miniscript({self.ctx.value}, {_shown(self.to_string(), 200)!r})"

    # -- properties (Core's names in the docstrings) --------------------------------------------

    @property
    def type_letters(self) -> str:
        """The type as letters, e.g. ``"Bonduesmk"`` (empty when the node is not well typed)."""
        return type_string(self.type)

    def has(self, letters: str) -> bool:
        """True when the type has every property in ``letters``."""
        return _has(self.type, letters)

    @property
    def ops(self) -> Optional[int]:
        """GetOps: most non-push opcodes a non-malleable satisfaction executes (None: unsatisfiable)."""
        count, sat, _ = self._ops
        return None if sat.value is None else count + sat.value

    @property
    def static_ops(self) -> int:
        return self._ops[0]

    def _bkw(self) -> int:
        return int(self.type & T("BKW") != 0)

    @property
    def stack_size(self) -> Optional[int]:
        """GetStackSize: most witness stack elements a satisfaction needs (without the script)."""
        sat = self._ss[0]
        return None if sat.netdiff is None else sat.netdiff + self._bkw()

    @property
    def exec_stack_size(self) -> Optional[int]:
        """GetExecStackSize: the largest stack during execution."""
        sat = self._ss[0]
        return None if sat.netdiff is None else sat.exec + self._bkw()

    @property
    def max_witness_size(self) -> Optional[int]:
        """GetWitnessSize: most bytes of satisfaction stack elements (with their length bytes,
        without the element count, the script and the control block)."""
        return self._ws[0].value

    @property
    def max_dissatisfaction_size(self) -> Optional[int]:
        return self._ws[1].value

    @property
    def is_valid(self) -> bool:
        """IsValid: well typed and within the context's script size."""
        limit = MAX_TAPSCRIPT_SIZE if self.ctx is Context.TAPSCRIPT else MAX_STANDARD_P2WSH_SCRIPT_SIZE
        return self.type != 0 and self.script_len <= limit

    @property
    def is_valid_top_level(self) -> bool:
        return self.is_valid and self.has("B")

    @property
    def is_non_malleable(self) -> bool:
        return self.has("m")

    @property
    def needs_signature(self) -> bool:
        return self.has("s")

    @property
    def no_timelock_mix(self) -> bool:
        """CheckTimeLocksMix: no spending path mixes height and time locks."""
        return self.has("k")

    def check_ops_limit(self) -> bool:
        if self.ctx is Context.TAPSCRIPT:
            return True
        ops = self.ops
        return ops is None or ops <= MAX_OPS_PER_SCRIPT

    def check_stack_size(self) -> bool:
        if self.ctx is Context.TAPSCRIPT:
            ex = self.exec_stack_size
            return ex is None or ex <= MAX_STACK_SIZE
        ss = self.stack_size
        return ss is None or ss <= MAX_STANDARD_P2WSH_STACK_ITEMS

    @property
    def is_satisfiable_at_all(self) -> bool:
        """Not IsNotSatisfiable: some satisfaction exists."""
        return self.stack_size is not None

    def valid_satisfactions(self) -> bool:
        return self.is_valid and self.check_ops_limit() and self.check_stack_size()

    def check_duplicate_key(self, key_id: "Callable[[Any], Any] | None" = None) -> bool:
        """CheckDuplicateKey: no key appears twice in this node and below."""
        ids = [(key_id or _default_id(self.ctx))(k) for k in self.all_keys()]
        return len(set(ids)) == len(ids)

    def is_sane_subexpression(self, key_id: "Callable[[Any], Any] | None" = None) -> bool:
        return (self.valid_satisfactions() and self.is_non_malleable and self.no_timelock_mix
                and self.check_duplicate_key(key_id))

    def is_sane(self, key_id: "Callable[[Any], Any] | None" = None) -> bool:
        """IsSane: valid at top level, non-malleable, no timelock mix, no duplicate key, within
        resource limits, and every spending path needs a signature."""
        return self.is_valid_top_level and self.is_sane_subexpression(key_id) and self.needs_signature

    # -- traversal ------------------------------------------------------------------------------

    def nodes(self) -> "list[Miniscript]":
        """Every node, pre-order (parents before children, left to right)."""
        out: "list[Miniscript]" = []
        stack = [self]
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(reversed(n.subs))
        return out

    def all_keys(self) -> "list[Any]":
        """Every key in text order."""
        return [k for n in self.nodes() for k in n.keys]

    def map_keys(self, fn: "Callable[[Any], Any]") -> "Miniscript":
        """The same tree with every key replaced by ``fn(key)``."""
        def up(n: Miniscript, subs: "list[Miniscript]") -> Miniscript:
            return Miniscript(n.fragment, n.ctx, n.k, tuple(fn(k) for k in n.keys), n.data, tuple(subs), n.position)
        return _eval_up(self, up)

    def find_insane_sub(self, key_id: "Callable[[Any], Any] | None" = None) -> "Optional[Miniscript]":
        """FindInsaneSub: an insane node with no insane children, deepest first (None if sane)."""
        key_id = key_id or _default_id(self.ctx)
        dup = _duplicate_flags(self, key_id)

        def up(n: Miniscript, subs: "list[Optional[Miniscript]]") -> "Optional[Miniscript]":
            for s in subs:
                if s is not None:
                    return s
            sane = n.valid_satisfactions() and n.is_non_malleable and n.no_timelock_mix and not dup[id(n)]
            return None if sane else n
        return _eval_up(self, up)

    def insanity(self, key_id: "Callable[[Any], Any] | None" = None) -> "Optional[tuple[str, Miniscript]]":
        """(reason, node) for a miniscript a descriptor must refuse, as Core's descriptor parser
        words it, or None when it is sane and satisfiable."""
        if self.is_sane(key_id) and self.is_satisfiable_at_all:
            return None
        node = self.find_insane_sub(key_id) or self
        if not node.is_valid:
            return "invalid", node
        if not self.is_sane(key_id):
            if not node.is_non_malleable:
                return "malleable", node
            if node is self and not node.needs_signature:
                return "no-signature", node
            if not node.no_timelock_mix:
                return "timelock-mix", node
            if not node.check_duplicate_key(key_id):
                return "duplicate-key", node
            if not node.valid_satisfactions():
                return "resource-limits", node
            return "no-signature", node  # pragma: no cover - is_sane failed for a listed reason
        return "unsatisfiable", node

    # -- script ---------------------------------------------------------------------------------

    def to_script(self, key_bytes: "Callable[[Any], bytes] | None" = None) -> bytes:
        """The script, byte for byte as Core's ToScript; ``key_bytes(key)`` gives a 33-byte public key."""
        kb = key_bytes or _default_key_bytes
        tap = self.ctx is Context.TAPSCRIPT

        def pk(key: Any) -> bytes:
            b = kb(key)
            return b[1:] if tap and len(b) == 33 else b

        def down(verify: bool, n: Miniscript, i: int) -> bool:
            if n.fragment is F.WRAP_V:
                return True
            if n.fragment is F.WRAP_S or (n.fragment is F.AND_V and i == 1):
                return verify
            return False

        def up(verify: bool, n: Miniscript, subs: "list[bytes]") -> bytes:
            return _script_of(n, verify, subs, pk)
        return _eval_down_up(self, False, down, up)

    def __str__(self) -> str:
        return self.to_string()

    def to_string(self, key_str: "Callable[[Any], str] | None" = None) -> str:
        """The expression text with Core's sugar (pk, pkh, t:, l:, u:, and_n)."""
        ks = key_str or _default_key_str

        def down(_: bool, n: Miniscript, i: int) -> bool:
            f = n.fragment
            return (f in _WRAPPERS or (f is F.AND_V and n.subs[1].fragment is F.JUST_1)
                    or (f is F.OR_I and (n.subs[0].fragment is F.JUST_0 or n.subs[1].fragment is F.JUST_0)))

        def up(wrapped: bool, n: Miniscript, subs: "list[str]") -> str:
            return _string_of(n, wrapped, subs, ks)
        return _eval_down_up(self, False, down, up)

    # -- satisfaction ---------------------------------------------------------------------------

    def satisfy(self, satisfier: "Satisfier", key_bytes: "Callable[[Any], bytes] | None" = None,
                *, nonmalleable: bool = True, leaf_hash: Optional[bytes] = None) -> "Optional[list[bytes]]":
        """The cheapest witness stack (bottom first, without the script) that satisfies this
        miniscript from what ``satisfier`` has, or None when there is none. With
        ``nonmalleable`` (the default) only a non-malleable witness that contains a signature
        is returned, as Core's Satisfy does. ``leaf_hash`` picks tapscript signatures made for
        that leaf (signatures keyed by ``(x-only key, leaf hash)``)."""
        kb = key_bytes or _default_key_bytes
        tap = self.ctx is Context.TAPSCRIPT

        def pk(key: Any) -> bytes:
            b = kb(key)
            return b[1:] if tap and len(b) == 33 else b

        result = _eval_up(self, lambda n, subs: _produce(n, subs, satisfier, pk, leaf_hash))
        sat = result[1]
        if not sat.available:
            return None
        if nonmalleable and (sat.malleable or not sat.has_sig):
            return None
        return _flatten(sat.stack)

    def max_witness_weight(self) -> Optional[int]:
        """Most witness bytes (weight units) spending a P2WSH output or this tapscript leaf at
        depth 0 can take: element count, satisfaction, script push (and the 33-byte control
        block in tapscript). Deeper leaves add 32 bytes per level."""
        sat, items = self.max_witness_size, self.stack_size
        if sat is None or items is None:
            return None
        extra = 1 if self.ctx is Context.TAPSCRIPT else 0
        total = _cs_len(items + 1 + extra) + sat + _cs_len(self.script_len) + self.script_len
        return total + (1 + 33 if extra else 0)


def _default_key_bytes(key: Any) -> bytes:
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    raise TypeError("pass key_bytes to turn these keys into bytes")


def _default_key_str(key: Any) -> str:
    return bytes(key).hex() if isinstance(key, (bytes, bytearray)) else str(key)


def _default_id(ctx: Context) -> "Callable[[Any], Any]":
    if ctx is Context.TAPSCRIPT:
        return lambda k: bytes(k)[-32:] if isinstance(k, (bytes, bytearray)) else k
    return lambda k: k


def _duplicate_flags(root: Miniscript, key_id: "Callable[[Any], Any]") -> "dict[int, bool]":
    """id(node) -> whether a key repeats within it (small-into-large merges: n log n)."""
    flags: "dict[int, bool]" = {}

    def up(n: Miniscript, subs: "list[Optional[set[Any]]]") -> "Optional[set[Any]]":
        if any(s is None for s in subs):
            flags[id(n)] = True
            return None
        ids = [key_id(k) for k in n.keys]
        acc: "set[Any]" = set(ids)
        if len(acc) != len(ids):
            flags[id(n)] = True
            return None
        for s in subs:
            assert s is not None
            if len(acc) < len(s):
                acc, s = s, acc
            if not acc.isdisjoint(s):
                flags[id(n)] = True
                return None
            acc |= s
        flags[id(n)] = False
        return acc
    _eval_up(root, up)
    return flags


# ============================================================================ tree evaluation


def _eval_up(root: Miniscript, up: "Callable[[Miniscript, list[Any]], _R]") -> _R:
    """Post-order evaluation without recursion: up(node, results of its children)."""
    stack: "list[list[Any]]" = [[root, 0]]
    results: "list[_R]" = []
    while stack:
        top = stack[-1]
        node: Miniscript = top[0]
        if top[1] < len(node.subs):
            top[1] += 1
            stack.append([node.subs[top[1] - 1], 0])
            continue
        n = len(node.subs)
        subs = results[len(results) - n:] if n else []
        if n:
            del results[len(results) - n:]
        results.append(up(node, subs))
        stack.pop()
    return results[0]


def _eval_down_up(root: Miniscript, state0: Any, down: "Callable[[Any, Miniscript, int], Any]",
                  up: "Callable[[Any, Miniscript, list[Any]], _R]") -> _R:
    stack: "list[list[Any]]" = [[root, 0, state0]]
    results: "list[_R]" = []
    while stack:
        top = stack[-1]
        node: Miniscript = top[0]
        if top[1] < len(node.subs):
            i = top[1]
            top[1] += 1
            stack.append([node.subs[i], 0, down(top[2], node, i)])
            continue
        n = len(node.subs)
        subs = results[len(results) - n:] if n else []
        if n:
            del results[len(results) - n:]
        results.append(up(top[2], node, subs))
        stack.pop()
    return results[0]


_OP = {"0": 0x00, "1": 0x51, "CSV": 0xB2, "CLTV": 0xB1, "SIZE": 0x82, "EQUAL": 0x87, "EQUALVERIFY": 0x88,
       "TOALT": 0x6B, "FROMALT": 0x6C, "SWAP": 0x7C, "CHECKSIG": 0xAC, "CHECKSIGVERIFY": 0xAD, "DUP": 0x76,
       "IF": 0x63, "NOTIF": 0x64, "ELSE": 0x67, "ENDIF": 0x68, "VERIFY": 0x69, "0NOTEQUAL": 0x92,
       "BOOLAND": 0x9A, "BOOLOR": 0x9B, "IFDUP": 0x73, "CHECKMULTISIG": 0xAE, "CHECKMULTISIGVERIFY": 0xAF,
       "CHECKSIGADD": 0xBA, "NUMEQUAL": 0x9C, "NUMEQUALVERIFY": 0x9D, "ADD": 0x93, "HASH160": 0xA9}
_HASH_OP = {F.SHA256: 0xA8, F.RIPEMD160: 0xA6, F.HASH256: 0xAA, F.HASH160: 0xA9}


def _o(*names: str) -> bytes:
    return bytes(_OP[n] for n in names)


def _script_of(n: Miniscript, verify: bool, subs: "list[bytes]", pk: "Callable[[Any], bytes]") -> bytes:
    f = n.fragment
    if f is F.PK_K:
        return push_data(pk(n.keys[0]))
    if f is F.PK_H:
        return _o("DUP", "HASH160") + push_data(_hash160(pk(n.keys[0]))) + _o("EQUALVERIFY")
    if f is F.OLDER:
        return script_num(n.k) + _o("CSV")
    if f is F.AFTER:
        return script_num(n.k) + _o("CLTV")
    if f in _HASH_OP:
        return (_o("SIZE") + script_num(32) + _o("EQUALVERIFY") + bytes([_HASH_OP[f]]) + push_data(n.data)
                + _o("EQUALVERIFY" if verify else "EQUAL"))
    if f is F.JUST_1:
        return _o("1")
    if f is F.JUST_0:
        return _o("0")
    if f is F.MULTI:
        return (script_num(n.k) + b"".join(push_data(pk(k)) for k in n.keys) + script_num(len(n.keys))
                + _o("CHECKMULTISIGVERIFY" if verify else "CHECKMULTISIG"))
    if f is F.MULTI_A:
        out = push_data(pk(n.keys[0])) + _o("CHECKSIG")
        out += b"".join(push_data(pk(k)) + _o("CHECKSIGADD") for k in n.keys[1:])
        return out + script_num(n.k) + _o("NUMEQUALVERIFY" if verify else "NUMEQUAL")
    if f is F.THRESH:
        return subs[0] + b"".join(s + _o("ADD") for s in subs[1:]) + script_num(n.k) + _o(
            "EQUALVERIFY" if verify else "EQUAL")
    x = subs[0]
    if f is F.WRAP_A:
        return _o("TOALT") + x + _o("FROMALT")
    if f is F.WRAP_S:
        return _o("SWAP") + x
    if f is F.WRAP_C:
        return x + _o("CHECKSIGVERIFY" if verify else "CHECKSIG")
    if f is F.WRAP_D:
        return _o("DUP", "IF") + x + _o("ENDIF")
    if f is F.WRAP_V:
        return x + _o("VERIFY") if n.subs[0].has("x") else x
    if f is F.WRAP_J:
        return _o("SIZE", "0NOTEQUAL", "IF") + x + _o("ENDIF")
    if f is F.WRAP_N:
        return x + _o("0NOTEQUAL")
    y = subs[1]
    if f is F.AND_V:
        return x + y
    if f is F.AND_B:
        return x + y + _o("BOOLAND")
    if f is F.OR_B:
        return x + y + _o("BOOLOR")
    if f is F.OR_D:
        return x + _o("IFDUP", "NOTIF") + y + _o("ENDIF")
    if f is F.OR_C:
        return x + _o("NOTIF") + y + _o("ENDIF")
    if f is F.OR_I:
        return _o("IF") + x + _o("ELSE") + y + _o("ENDIF")
    return x + _o("NOTIF") + subs[2] + _o("ELSE") + y + _o("ENDIF")  # ANDOR


def _string_of(n: Miniscript, wrapped: bool, subs: "list[str]", ks: "Callable[[Any], str]") -> str:
    f = n.fragment
    pre = ":" if wrapped else ""
    if f is F.WRAP_C and n.subs[0].fragment in (F.PK_K, F.PK_H):
        return pre + ("pk(" if n.subs[0].fragment is F.PK_K else "pkh(") + ks(n.subs[0].keys[0]) + ")"
    if f in _WRAPPERS:
        return str(f.value) + subs[0]
    if f is F.AND_V and n.subs[1].fragment is F.JUST_1:
        return "t" + subs[0]
    if f is F.OR_I and n.subs[0].fragment is F.JUST_0:
        return "l" + subs[1]
    if f is F.OR_I and n.subs[1].fragment is F.JUST_0:
        return "u" + subs[0]
    if f in (F.PK_K, F.PK_H):
        return pre + str(f.value) + "(" + ks(n.keys[0]) + ")"
    if f in (F.OLDER, F.AFTER):
        return pre + f"{f.value}({n.k})"
    if f in _HASHES:
        return pre + f"{f.value}({n.data.hex()})"
    if f in (F.JUST_0, F.JUST_1):
        return pre + str(f.value)
    if f is F.ANDOR and n.subs[2].fragment is F.JUST_0:
        return pre + f"and_n({subs[0]},{subs[1]})"
    if f in (F.MULTI, F.MULTI_A):
        return pre + f"{f.value}({n.k}," + ",".join(ks(k) for k in n.keys) + ")"
    if f is F.THRESH:
        return pre + f"thresh({n.k}," + ",".join(subs) + ")"
    return pre + f"{f.value}(" + ",".join(subs) + ")"


# ============================================================================ satisfaction


@dataclass(frozen=True)
class Satisfier:
    """What a spender has: ``signatures`` by public key (33-byte compressed, or 32-byte x-only
    in tapscript, or ``(x-only key, leaf hash)`` for one leaf; each signature with its sighash
    byte, none for taproot's SIGHASH_DEFAULT), hash ``preimages`` (32 bytes each),
    and the spending transaction's ``lock_time``, the input's ``sequence`` and ``version``
    (for older(), BIP68 needs version 2)."""

    signatures: "Mapping[Any, bytes]" = field(default_factory=dict)
    preimages: "Iterable[bytes]" = ()
    lock_time: int = 0
    sequence: int = 0xFFFFFFFF
    version: int = 2
    _by_hash: "dict[tuple[Fragment, bytes], bytes]" = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        table: "dict[tuple[Fragment, bytes], bytes]" = {}
        for p in self.preimages:
            p = bytes(p)
            if len(p) != 32:
                continue  # miniscript hash fragments require 32-byte preimages (OP_SIZE 32)
            sha = hashlib.sha256(p).digest()
            table[(F.SHA256, sha)] = p
            table[(F.HASH256, hashlib.sha256(sha).digest())] = p
            table[(F.RIPEMD160, _ripemd160(p))] = p
            table[(F.HASH160, _hash160(p))] = p
        object.__setattr__(self, "preimages", tuple(bytes(p) for p in self.preimages))
        object.__setattr__(self, "_by_hash", table)

    def signature(self, pubkey: bytes, leaf_hash: Optional[bytes] = None) -> Optional[bytes]:
        """The signature for ``pubkey`` (for tapscript leaf ``leaf_hash`` when given one)."""
        sig = self.signatures.get((pubkey, leaf_hash)) if leaf_hash is not None else None
        if sig is None:
            sig = self.signatures.get(pubkey)
        if sig is None and len(pubkey) == 32:
            sig = self.signatures.get(b"\x02" + pubkey) or self.signatures.get(b"\x03" + pubkey)
        return sig

    def preimage(self, fragment: Fragment, digest: bytes) -> Optional[bytes]:
        return self._by_hash.get((fragment, digest))

    def check_after(self, k: int) -> bool:
        """OP_CHECKLOCKTIMEVERIFY's rule for ``k`` against lock_time and sequence."""
        lt = self.lock_time
        if (lt < _LOCKTIME_THRESHOLD) != (k < _LOCKTIME_THRESHOLD):
            return False
        return k <= lt and self.sequence != 0xFFFFFFFF

    def check_older(self, k: int) -> bool:
        """OP_CHECKSEQUENCEVERIFY's rule (BIP112) for ``k`` against sequence and version."""
        seq = self.sequence
        if self.version < 2 or seq & _SEQUENCE_DISABLE_FLAG:
            return False
        mask = _SEQUENCE_TYPE_FLAG | _SEQUENCE_MASK
        a, b = seq & mask, k & mask
        if (a < _SEQUENCE_TYPE_FLAG) != (b < _SEQUENCE_TYPE_FLAG):
            return False
        return b <= a


#: A witness under construction: None (empty), one item, or a (left, right) concatenation, so
#: that joining two candidates costs O(1) (flattened once, at the end).
_Rope = Any


def _flatten(rope: _Rope) -> "list[bytes]":
    out: "list[bytes]" = []
    todo = [rope]
    while todo:
        r = todo.pop()
        if r is None:
            continue
        if isinstance(r, bytes):
            out.append(r)
        else:
            todo.append(r[1])
            todo.append(r[0])
    return out


class _Stack:
    """Core's InputStack: a candidate witness (bottom first) and what is known about it.
    Immutable by convention (a plain class with slots: the satisfaction DP makes many)."""

    __slots__ = ("available", "has_sig", "malleable", "non_canon", "size", "stack")

    def __init__(self, available: bool = True, has_sig: bool = False, malleable: bool = False,
                 non_canon: bool = False, size: int = 0, stack: _Rope = None) -> None:
        self.available, self.has_sig, self.malleable = available, has_sig, malleable
        self.non_canon, self.size, self.stack = non_canon, size, stack

    def __add__(self, b: "_Stack") -> "_Stack":
        if not self.available or not b.available:
            return _INVALID
        joined = b.stack if self.stack is None else self.stack if b.stack is None else (self.stack, b.stack)
        return _Stack(True, self.has_sig or b.has_sig, self.malleable or b.malleable,
                      self.non_canon or b.non_canon, self.size + b.size, joined)

    def __or__(self, b: "_Stack") -> "_Stack":
        a = self
        if not a.available:
            return b
        if not b.available:
            return a
        if not a.has_sig and b.has_sig:
            return a
        if not b.has_sig and a.has_sig:
            return b
        if not a.has_sig and not b.has_sig:
            a, b = a.with_(malleable=True), b.with_(malleable=True)
        else:
            if b.malleable and not a.malleable:
                return a
            if a.malleable and not b.malleable:
                return b
        return a if a.size <= b.size else b

    def with_(self, *, malleable: Optional[bool] = None, non_canon: Optional[bool] = None,
              has_sig: Optional[bool] = None) -> "_Stack":
        return _Stack(self.available, self.has_sig if has_sig is None else has_sig,
                      self.malleable if malleable is None else malleable,
                      self.non_canon if non_canon is None else non_canon, self.size, self.stack)


def _elem(b: bytes) -> _Stack:
    return _Stack(size=len(b) + 1, stack=b)


_INVALID = _Stack(available=False)
_EMPTY_STACK = _Stack()
_ZERO = _elem(b"")
_ZERO32 = _elem(bytes(32)).with_(malleable=True)
_ONE = _elem(b"\x01")


def _avail(item: Optional[bytes], sig: bool = False) -> _Stack:
    if item is None:
        return _INVALID
    s = _elem(item)
    return s.with_(has_sig=True) if sig else s


def _produce(n: Miniscript, subres: "list[tuple[_Stack, _Stack]]", ctx: Satisfier,
             pk: "Callable[[Any], bytes]", leaf: Optional[bytes]) -> "tuple[_Stack, _Stack]":
    """Core's ProduceInput helper: (dissatisfaction, satisfaction) of one node."""
    f = n.fragment
    if f is F.PK_K:
        return _ZERO, _avail(ctx.signature(pk(n.keys[0]), leaf), sig=True)
    if f is F.PK_H:
        key = pk(n.keys[0])
        return _ZERO + _elem(key), _avail(ctx.signature(key, leaf), sig=True) + _elem(key)
    if f is F.MULTI_A:
        sats = [_EMPTY_STACK]
        for i in range(len(n.keys)):
            sat = _avail(ctx.signature(pk(n.keys[len(n.keys) - 1 - i]), leaf), sig=True)
            nxt = [sats[0] + _ZERO]
            nxt += [(sats[j] + _ZERO) | (sats[j - 1] + sat) for j in range(1, len(sats))]
            nxt.append(sats[-1] + sat)
            sats = nxt
        return sats[0], sats[n.k]
    if f is F.MULTI:
        sats = [_ZERO]
        for key in n.keys:
            sat = _avail(ctx.signature(pk(key), leaf), sig=True)
            nxt = [sats[0]]
            nxt += [sats[j] | (sats[j - 1] + sat) for j in range(1, len(sats))]
            nxt.append(sats[-1] + sat)
            sats = nxt
        nsat = _ZERO
        for _ in range(n.k):
            nsat = nsat + _ZERO
        return nsat, sats[n.k]
    if f is F.THRESH:
        sats = [_EMPTY_STACK]
        for i in range(len(subres)):
            rn, rs = subres[len(subres) - i - 1]
            nxt = [sats[0] + rn]
            nxt += [(sats[j] + rn) | (sats[j - 1] + rs) for j in range(1, len(sats))]
            nxt.append(sats[-1] + rs)
            sats = nxt
        nsat = _INVALID
        for i, s in enumerate(sats):
            if i != 0 and i != n.k:
                s = s.with_(malleable=True, non_canon=True)
            if i != n.k:
                nsat = nsat | s
        return nsat, sats[n.k]
    if f is F.OLDER:
        return _INVALID, _EMPTY_STACK if ctx.check_older(n.k) else _INVALID
    if f is F.AFTER:
        return _INVALID, _EMPTY_STACK if ctx.check_after(n.k) else _INVALID
    if f in _HASHES:
        return _ZERO32, _avail(ctx.preimage(f, n.data))
    if f is F.JUST_0:
        return _EMPTY_STACK, _INVALID
    if f is F.JUST_1:
        return _INVALID, _EMPTY_STACK
    xn, xs = subres[0]
    if f in (F.WRAP_A, F.WRAP_S, F.WRAP_C, F.WRAP_N):
        return xn, xs
    if f is F.WRAP_D:
        return _ZERO, xs + _ONE
    if f is F.WRAP_J:
        return _ZERO.with_(malleable=xn.available and not xn.has_sig), xs
    if f is F.WRAP_V:
        return _INVALID, xs
    yn, ys = subres[1]
    if f is F.AND_V:
        return (yn + xs).with_(non_canon=True), ys + xs
    if f is F.AND_B:
        return ((yn + xn) | (ys + xn).with_(malleable=True, non_canon=True)
                | (yn + xs).with_(malleable=True, non_canon=True)), ys + xs
    if f is F.OR_B:
        return yn + xn, (yn + xs) | (ys + xn) | (ys + xs).with_(malleable=True, non_canon=True)
    if f is F.OR_C:
        return _INVALID, xs | (ys + xn)
    if f is F.OR_D:
        return yn + xn, xs | (ys + xn)
    if f is F.OR_I:
        return (xn + _ONE) | (yn + _ZERO), (xs + _ONE) | (ys + _ZERO)
    zn, zs = subres[2]  # ANDOR
    return (yn + xs).with_(non_canon=True) | (zn + xn), (ys + xs) | (zs + xn)


# ============================================================================ parser

_NAME = re.compile(r"[a-z_0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_HEXRE = re.compile(r"[0-9a-fA-F]*")
_WRAPPER_LETTERS = "asctdvjnlu"
_HASH_NAMES = {"sha256": F.SHA256, "hash256": F.HASH256, "ripemd160": F.RIPEMD160, "hash160": F.HASH160}
_BINARY = {"and_v": F.AND_V, "and_b": F.AND_B, "or_b": F.OR_B, "or_c": F.OR_C, "or_d": F.OR_D, "or_i": F.OR_I}
_ARITY = {"and_v": 2, "and_b": 2, "or_b": 2, "or_c": 2, "or_d": 2, "or_i": 2, "and_n": 2, "andor": 3}
#: Every fragment name the parser knows (besides the wrappers).
FRAGMENT_NAMES = frozenset(["pk_k", "pk_h", "pk", "pkh", "older", "after", "multi", "multi_a", "thresh",
                            *_HASH_NAMES, *_ARITY])
#: Deepest nesting accepted (Core bounds work by script size; this bounds it by depth too).
MAX_DEPTH = 10_000


def _shown(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


KeyParser = Callable[[int, int], Any]


class _Parser:
    """Iterative parser over text[start:end] (a work stack, no recursion, linear time)."""

    def __init__(self, text: str, start: int, end: int, ctx: Context, parse_key: KeyParser,
                 match: "Mapping[int, int] | None" = None):
        self.text, self.start, self.end, self.ctx, self.parse_key = text, start, end, ctx, parse_key
        self.match = match if match is not None else self._brackets()

    def _brackets(self) -> "dict[int, int]":
        pairs: "dict[int, int]" = {}
        stack: "list[int]" = []
        for i in range(self.start, self.end):
            ch = self.text[i]
            if ch == "(":
                stack.append(i)
            elif ch == ")":
                if not stack:
                    raise _error("unbalanced ')' in the miniscript", i)
                pairs[stack.pop()] = i
        if stack:
            raise _error("'(' is never closed in the miniscript", stack[-1])
        return pairs

    def split(self, s: int, e: int) -> "list[tuple[int, int]]":
        out, i, begin = [], s, s
        while i < e:
            ch = self.text[i]
            if ch == "(":
                i = self.match[i] + 1
                continue
            if ch == ",":
                out.append((begin, i))
                begin = i + 1
            i += 1
        out.append((begin, e))
        return out

    def parse(self) -> Miniscript:
        tasks: "list[tuple[Any, ...]]" = [("expr", self.start, self.end, 0)]
        results: "list[Miniscript]" = []
        while tasks:
            task = tasks.pop()
            if task[0] == "expr":
                self._expr(task[1], task[2], task[3], tasks, results)
            elif task[0] == "wrap":
                results.append(self._wrap(task[1], results.pop(), task[2]))
            else:
                _, frag, n, k, pos = task
                subs = tuple(results[len(results) - n:])
                del results[len(results) - n:]
                if frag == "and_n":
                    subs = subs + (self.leaf(F.JUST_0, pos),)
                    frag = F.ANDOR
                results.append(Miniscript(frag, self.ctx, k, subs=subs, position=pos))
        assert len(results) == 1
        return results[0]

    def leaf(self, frag: Fragment, pos: int, k: int = 0, data: bytes = b"", keys: "tuple[Any, ...]" = ()) -> Miniscript:
        return Miniscript(frag, self.ctx, k, keys, data, position=pos)

    def _wrap(self, letter: str, x: Miniscript, pos: int) -> Miniscript:
        if letter == "l":
            return Miniscript(F.OR_I, self.ctx, subs=(self.leaf(F.JUST_0, pos), x), position=pos)
        if letter == "u":
            return Miniscript(F.OR_I, self.ctx, subs=(x, self.leaf(F.JUST_0, pos)), position=pos)
        if letter == "t":
            return Miniscript(F.AND_V, self.ctx, subs=(x, self.leaf(F.JUST_1, pos)), position=pos)
        return Miniscript(Fragment(letter), self.ctx, subs=(x,), position=pos)

    def _expr(self, s: int, e: int, depth: int, tasks: "list[tuple[Any, ...]]", results: "list[Miniscript]") -> None:
        text = self.text
        if depth > MAX_DEPTH:
            raise _error(f"the miniscript nests deeper than {MAX_DEPTH} levels", s)
        if s >= e:
            raise _error("a miniscript expression is missing", s)
        i = s + 1
        while i < e and "a" <= text[i] <= "z":
            i += 1
        if i < e and text[i] == ":" and all("a" <= c <= "z" for c in text[s:i]):
            for j in range(s, i):
                if text[j] not in _WRAPPER_LETTERS:
                    raise _error(f"'{text[j]}' is not a miniscript wrapper: wrappers are the letters "
                                 "a, s, c, t, d, v, j, n, l and u before a ':'", j)
            for j in range(s, i):
                tasks.append(("wrap", text[j], j))
            s = i + 1
            if s >= e:
                raise _error("a miniscript expression is missing after the wrappers", s)
        if e - s == 1 and text[s] in "01":
            results.append(self.leaf(F.JUST_0 if text[s] == "0" else F.JUST_1, s))
            return
        m = _NAME.match(text, s, e)
        if m is None or m.end() >= e or text[m.end()] != "(" or self.match.get(m.end()) != e - 1:
            raise _error(f"'{_shown(text[s:e])}' is not a miniscript expression", s)
        name, a, b = m.group(0), m.end() + 1, e - 1
        if name in ("pk_k", "pk_h", "pk", "pkh"):
            key = self.parse_key(a, b)
            if name in ("pk", "pkh"):
                tasks.append(("wrap", "c", s))
            results.append(self.leaf(F.PK_K if name in ("pk_k", "pk") else F.PK_H, s, keys=(key,)))
        elif name in ("older", "after"):
            results.append(self.leaf(F.OLDER if name == "older" else F.AFTER, s, k=self._locktime(name, a, b)))
        elif name in _HASH_NAMES:
            results.append(self.leaf(_HASH_NAMES[name], s, data=self._hash(name, a, b)))
        elif name in ("multi", "multi_a"):
            results.append(self._multi(name, s, a, b))
        elif name == "thresh":
            args = self.split(a, b)
            k = self._number("thresh", args[0][0], args[0][1])
            n = len(args) - 1
            if n < 1:
                raise _error("thresh() needs a threshold and at least one sub-expression", s)
            if not 1 <= k <= n:
                raise _error(f"thresh() threshold {k} must be from 1 to the number of sub-expressions ({n})",
                             args[0][0])
            tasks.append(("build", F.THRESH, n, k, s))
            for sa, sb in reversed(args[1:]):
                tasks.append(("expr", sa, sb, depth + 1))
        elif name in _ARITY:
            args = self.split(a, b)
            if len(args) != _ARITY[name]:
                raise _error(f"{name}() takes {_ARITY[name]} arguments, not {len(args)}", s)
            frag: Any = "and_n" if name == "and_n" else F.ANDOR if name == "andor" else _BINARY[name]
            tasks.append(("build", frag, len(args), 0, s))
            for sa, sb in reversed(args):
                tasks.append(("expr", sa, sb, depth + 1))
        else:
            raise _error(f"'{_shown(name)}' is not a miniscript fragment", s)

    def _number(self, what: str, a: int, b: int) -> int:
        body = self.text[a:b]
        if not _DIGITS.fullmatch(body) or len(body) > 10:
            raise _error(f"{what}(): '{_shown(body)}' is not a whole number (digits only, no sign)", a)
        return int(body)

    def _locktime(self, name: str, a: int, b: int) -> int:
        k = self._number(name, a, b)
        if not 1 <= k < 0x80000000:
            raise _error(f"{name}({k}) is out of range: the value must be from 1 to 2147483647", a)
        return k

    def _hash(self, name: str, a: int, b: int) -> bytes:
        body = self.text[a:b]
        size = 32 if name in ("sha256", "hash256") else 20
        if len(body) != 2 * size or not _HEXRE.fullmatch(body):
            raise _error(f"{name}() takes a {size}-byte hash as {2 * size} hex characters", a)
        return bytes.fromhex(body)

    def _multi(self, name: str, s: int, a: int, b: int) -> Miniscript:
        tap = self.ctx is Context.TAPSCRIPT
        if name == "multi" and tap:
            raise _error("multi() is not allowed in tapscript: use multi_a()", s)
        if name == "multi_a" and not tap:
            raise _error("multi_a() is only allowed in tapscript (inside tr()): use multi() in wsh()", s)
        args = self.split(a, b)
        k = self._number(name, args[0][0], args[0][1])
        n = len(args) - 1
        limit = MAX_PUBKEYS_PER_MULTI_A if tap else MAX_PUBKEYS_PER_MULTISIG
        if n < 1 or n > limit:
            raise _error(f"Cannot have {n} keys in {name}; must have between 1 and {limit} keys, inclusive", s)
        if not 1 <= k <= n:
            raise _error(f"{name}() threshold {k} must be from 1 to the number of keys ({n})", args[0][0])
        keys = tuple(self.parse_key(ka, kb) for ka, kb in args[1:])
        return self.leaf(F.MULTI_A if tap else F.MULTI, s, k=k, keys=keys)


def _hex_key_parser(text: str, ctx: Context) -> KeyParser:
    """Hex public keys as in Core's miniscript tests: 33-byte compressed (x-only 32 in tapscript)."""
    from embit.util import secp256k1

    def parse(a: int, b: int) -> bytes:
        body = text[a:b]
        if _HEXRE.fullmatch(body) and (len(body) == 66 or (len(body) == 64 and ctx is Context.TAPSCRIPT)):
            raw = bytes.fromhex(body if len(body) == 66 else "02" + body)
            try:
                secp256k1.ec_pubkey_parse(raw)
                return raw
            except Exception:
                pass
        raise _error(f"'{_shown(body, 70)}' is not a valid public key", a)
    return parse


def parse_miniscript(text: str, ctx: "Context | str" = Context.P2WSH, *,
                     parse_key: "KeyParser | None" = None, start: int = 0, end: Optional[int] = None,
                     match: "Mapping[int, int] | None" = None) -> Miniscript:
    """Parse a miniscript expression (``text[start:end]``) for ``ctx`` ("wsh" or "tr").

    Keys are hex public keys unless ``parse_key(start, end)`` is given. Syntax errors raise
    :class:`MiniscriptError` with the position; a well-formed expression that is not well typed
    is returned (``is_valid`` False) so callers can say why.
    """
    context = ctx if isinstance(ctx, Context) else Context(ctx)
    stop = len(text) if end is None else end
    if stop - start > 256 * 1024:
        raise _error(f"the miniscript has {stop - start} characters, more than {256 * 1024}", None)
    return _Parser(text, start, stop, context, parse_key or _hex_key_parser(text, context), match).parse()


_REQUIRED: "dict[Fragment, tuple[tuple[str, str], ...]]" = {
    F.AND_V: (("V", ""), ("BKV", "")), F.AND_B: (("B", ""), ("W", "")), F.OR_B: (("B", "d"), ("W", "d")),
    F.OR_C: (("B", "du"), ("V", "")), F.OR_D: (("B", "du"), ("B", "")), F.OR_I: (("BKV", ""), ("BKV", "")),
    F.ANDOR: (("B", "du"), ("BKV", ""), ("BKV", "")), F.WRAP_A: (("B", ""),), F.WRAP_S: (("B", "o"),),
    F.WRAP_C: (("K", ""),), F.WRAP_D: (("V", "z"),), F.WRAP_V: (("B", ""),), F.WRAP_J: (("B", "n"),),
    F.WRAP_N: (("B", ""),),
}


def type_problem(node: Miniscript, key_str: "Callable[[Any], str] | None" = None) -> str:
    """Why ``node`` is not well typed (a sentence), for error messages."""
    bad = next((n for n in reversed(node.nodes()) if n.type == 0), None)
    if bad is None:
        if node.type != 0 and not node.is_valid:
            return f"its script is {node.script_len} bytes, more than a {node.ctx.value} script may have"
        return "it is well typed"
    name = _frag_name(bad)
    if bad.fragment is F.THRESH:
        for i, sub in enumerate(bad.subs):
            need = "Wdu" if i else "Bdu"
            if not sub.has(need):
                return (f"thresh() needs argument {i + 2} to be of type {need}, but "
                        f"'{_shown(sub.to_string(key_str), 48)}' is {sub.type_letters or 'not well typed'}")
    for i, (sub, (basic, props)) in enumerate(zip(bad.subs, _REQUIRED.get(bad.fragment, ()))):
        if not any(sub.has(b) for b in basic) or not sub.has(props):
            need = "/".join(basic) + (f" with {', '.join(props)}" if props else "")
            return (f"{name} needs its {('first', 'second', 'third')[i]} argument to be of type {need}, but "
                    f"'{_shown(sub.to_string(key_str), 48)}' is {sub.type_letters or 'not well typed'}")
    if bad.fragment is F.OR_I:
        return "or_i() needs both arguments of the same basic type (B, K or V)"
    return f"'{_shown(bad.to_string(key_str), 48)}' is not well typed"  # pragma: no cover


def _frag_name(n: Miniscript) -> str:
    return f"{n.fragment.value}:" if n.fragment in _WRAPPERS else f"{n.fragment.value}()"
