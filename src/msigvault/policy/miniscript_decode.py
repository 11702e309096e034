"""Decoding a script back to miniscript (Bitcoin Core's ``miniscript::FromScript``).

The script is split into opcodes (``CHECKSIGVERIFY`` and the other ``...VERIFY`` opcodes become
the plain opcode plus ``VERIFY``; non-minimal pushes and a ``VERIFY`` that should have been
merged are refused), reversed, and read by a work stack of decoding states, as Core's
``DecodeScript`` does, so time is linear and nothing recurses. The result is returned only when
it is valid at top level and gives back exactly the same script.
"""

from __future__ import annotations

from typing import Iterable, Optional

from embit.hashes import hash160
from embit.util import secp256k1

from .miniscript import Context, Fragment, Miniscript

__all__ = ["decode_script", "MAX_DECODE_SCRIPT"]

F = Fragment
#: Largest script decoded (Core's tapscript size bound is far above any standard script).
MAX_DECODE_SCRIPT = 400_000

OP_0, OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4, OP_1NEGATE, OP_1, OP_16 = 0x00, 0x4C, 0x4D, 0x4E, 0x4F, 0x51, 0x60
OP_IF, OP_NOTIF, OP_ELSE, OP_ENDIF, OP_VERIFY = 0x63, 0x64, 0x67, 0x68, 0x69
OP_TOALTSTACK, OP_FROMALTSTACK, OP_IFDUP, OP_DUP, OP_SWAP, OP_SIZE = 0x6B, 0x6C, 0x73, 0x76, 0x7C, 0x82
OP_EQUAL, OP_EQUALVERIFY, OP_0NOTEQUAL, OP_ADD, OP_BOOLAND, OP_BOOLOR = 0x87, 0x88, 0x92, 0x93, 0x9A, 0x9B
OP_NUMEQUAL, OP_NUMEQUALVERIFY, OP_RIPEMD160, OP_SHA256, OP_HASH160, OP_HASH256 = 0x9C, 0x9D, 0xA6, 0xA8, 0xA9, 0xAA
OP_CHECKSIG, OP_CHECKSIGVERIFY, OP_CHECKMULTISIG, OP_CHECKMULTISIGVERIFY = 0xAC, 0xAD, 0xAE, 0xAF
OP_CLTV, OP_CSV, OP_CHECKSIGADD = 0xB1, 0xB2, 0xBA
_SPLIT = {OP_CHECKSIGVERIFY: OP_CHECKSIG, OP_CHECKMULTISIGVERIFY: OP_CHECKMULTISIG, OP_EQUALVERIFY: OP_EQUAL,
          OP_NUMEQUALVERIFY: OP_NUMEQUAL}
_HASH_OPS = {OP_SHA256: (F.SHA256, 32), OP_HASH256: (F.HASH256, 32), OP_RIPEMD160: (F.RIPEMD160, 20),
             OP_HASH160: (F.HASH160, 20)}

Op = "tuple[int, bytes]"


def _minimal(op: int, data: bytes) -> bool:
    n = len(data)
    if n == 0:
        return op == OP_0
    if n == 1 and 1 <= data[0] <= 16:
        return False  # should have been OP_1..OP_16
    if n == 1 and data[0] == 0x81:
        return False  # should have been OP_1NEGATE
    if n <= 75:
        return op == n
    if n <= 255:
        return op == OP_PUSHDATA1
    if n <= 65535:
        return op == OP_PUSHDATA2
    return True


def _decompose(script: bytes) -> "Optional[list[tuple[int, bytes]]]":
    """Opcodes with their push data, VERIFY opcodes split, reversed; None if malformed."""
    out: "list[tuple[int, bytes]]" = []
    i, n = 0, len(script)
    while i < n:
        op = script[i]
        i += 1
        if op <= OP_PUSHDATA4:
            if op < OP_PUSHDATA1:
                size = op
            else:
                width = {OP_PUSHDATA1: 1, OP_PUSHDATA2: 2, OP_PUSHDATA4: 4}[op]
                if i + width > n:
                    return None
                size = int.from_bytes(script[i:i + width], "little")
                i += width
            if i + size > n:
                return None
            data = script[i:i + size]
            i += size
            if not _minimal(op, data):
                return None
            out.append((op, data))
            continue
        if OP_1 <= op <= OP_16:
            out.append((op, bytes([op - OP_1 + 1])))
            continue
        if op in _SPLIT:
            out.append((_SPLIT[op], b""))
            out.append((OP_VERIFY, b""))
            continue
        if op in (OP_CHECKSIG, OP_CHECKMULTISIG, OP_EQUAL, OP_NUMEQUAL) and i < n and script[i] == OP_VERIFY:
            return None  # <X> VERIFY where the VERIFY form of X exists
        out.append((op, b""))
    out.reverse()
    return out


def _number(op: "tuple[int, bytes]") -> Optional[int]:
    """ParseScriptNumber: a minimally encoded script number of at most 4 bytes."""
    code, data = op
    if code == OP_0:
        return 0
    if not data or len(data) > 4 or code > OP_16:
        return None
    if data[-1] & 0x7F == 0 and (len(data) == 1 or not data[-2] & 0x80):
        return None  # not minimal
    value = int.from_bytes(data, "little")
    if data[-1] & 0x80:
        value = -(value & ~(0x80 << (8 * (len(data) - 1))))
    return value


def decode_script(script: bytes, ctx: "Context | str" = Context.P2WSH, *,
                  keys: "Iterable[bytes]" = ()) -> Optional[Miniscript]:
    """The miniscript whose script is ``script``, or None. Keys come out as 33-byte public
    keys (x-only ones with an 02 prefix); ``pk_h`` hashes are resolved from ``keys``."""
    context = ctx if isinstance(ctx, Context) else Context(ctx)
    if len(script) > MAX_DECODE_SCRIPT:
        return None
    ops = _decompose(script)
    if ops is None:
        return None
    tap = context is Context.TAPSCRIPT
    by_hash = {}
    for k in keys:
        k = bytes(k)
        by_hash[hash160(k[1:] if tap and len(k) == 33 else k)] = k if len(k) == 33 else b"\x02" + k
    try:
        node = _Decoder(ops, context, by_hash).run()
    except _Fail:
        return None
    if node is None or not node.is_valid_top_level or node.to_script() != script:
        return None
    return node


class _Fail(Exception):
    pass


class _Decoder:
    def __init__(self, ops: "list[tuple[int, bytes]]", ctx: Context, by_hash: "dict[bytes, bytes]"):
        self.ops, self.ctx, self.by_hash = ops, ctx, by_hash
        self.tap = ctx is Context.TAPSCRIPT
        self.pos = 0
        self.built: "list[Miniscript]" = []

    # -- helpers --------------------------------------------------------------------------------

    def at(self, i: int) -> int:
        j = self.pos + i
        return self.ops[j][0] if j < len(self.ops) else -1

    def left(self) -> int:
        return len(self.ops) - self.pos

    def node(self, frag: Fragment, k: int = 0, keys: "tuple[bytes, ...]" = (), data: bytes = b"",
             subs: "tuple[Miniscript, ...]" = ()) -> Miniscript:
        return Miniscript(frag, self.ctx, k, keys, data, subs)

    def key(self, data: bytes) -> bytes:
        if self.tap:
            if len(data) != 32:
                raise _Fail
            data = b"\x02" + data
        elif len(data) != 33:
            raise _Fail
        try:
            secp256k1.ec_pubkey_parse(data)
        except Exception:
            raise _Fail from None
        return data

    def wrap(self, frag: Fragment) -> None:
        if not self.built:
            raise _Fail
        self.built[-1] = self.node(frag, subs=(self.built[-1],))

    def build_back(self, frag: Fragment) -> None:
        """Core's BuildBack(reverse=true): the later-built node is the script's earlier part."""
        if len(self.built) < 2:
            raise _Fail
        first = self.built.pop()
        self.built[-1] = self.node(frag, subs=(first, self.built[-1]))

    # -- the state machine ----------------------------------------------------------------------

    def run(self) -> Optional[Miniscript]:
        todo: "list[tuple[str, int, int]]" = [("BKV", -1, -1)]
        while todo:
            state, n, k = todo.pop()
            getattr(self, "_" + state)(todo, n, k)
        if self.pos != len(self.ops) or len(self.built) != 1:
            return None
        return self.built[0]

    def _BKV(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        todo.append(("MAYBE_AND_V", -1, -1))
        todo.append(("SINGLE", -1, -1))

    def _MAYBE_AND_V(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        if self.left() > 0 and self.at(0) not in (OP_IF, OP_ELSE, OP_NOTIF, OP_TOALTSTACK, OP_SWAP):
            todo.append(("AND_V", -1, -1))
            todo.append(("BKV", -1, -1))

    def _AND_V(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        self.build_back(F.AND_V)

    def _SINGLE(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:  # noqa: C901 - one table
        if self.left() <= 0:
            raise _Fail
        op, data = self.ops[self.pos]
        if op == OP_1 and data == b"\x01":
            self.pos += 1
            self.built.append(self.node(F.JUST_1))
            return
        if op == OP_0:
            self.pos += 1
            self.built.append(self.node(F.JUST_0))
            return
        if 0 < op < OP_PUSHDATA1 and len(data) == (32 if self.tap else 33):
            self.pos += 1
            self.built.append(self.node(F.PK_K, keys=(self.key(data),)))
            return
        if (self.left() >= 5 and op == OP_VERIFY and self.at(1) == OP_EQUAL and self.at(3) == OP_HASH160
                and self.at(4) == OP_DUP and len(self.ops[self.pos + 2][1]) == 20):
            key = self.by_hash.get(self.ops[self.pos + 2][1])
            if key is None:
                raise _Fail
            self.pos += 5
            self.built.append(self.node(F.PK_H, keys=(key,)))
            return
        if self.left() >= 2 and op in (OP_CSV, OP_CLTV):
            value = _number(self.ops[self.pos + 1])
            if value is None or not 1 <= value < 0x80000000:
                raise _Fail
            self.pos += 2
            self.built.append(self.node(F.OLDER if op == OP_CSV else F.AFTER, k=value))
            return
        if (self.left() >= 7 and op == OP_EQUAL and self.at(2) in _HASH_OPS and self.at(3) == OP_VERIFY
                and self.at(4) == OP_EQUAL and _number(self.ops[self.pos + 5]) == 32 and self.at(6) == OP_SIZE):
            frag, size = _HASH_OPS[self.at(2)]
            digest = self.ops[self.pos + 1][1]
            if len(digest) != size or not 0 < self.at(1) < OP_PUSHDATA1:
                raise _Fail
            self.pos += 7
            self.built.append(self.node(frag, data=digest))
            return
        if op == OP_CHECKMULTISIG and not self.tap and self.left() >= 3:
            count = _number(self.ops[self.pos + 1])
            if count is None or not 1 <= count <= 20 or self.left() < count + 3:
                raise _Fail
            keys = tuple(self.key(self.ops[self.pos + 1 + count - i][1]) for i in range(count))
            threshold = _number(self.ops[self.pos + 2 + count])
            if threshold is None or not 1 <= threshold <= count:
                raise _Fail
            self.pos += count + 3
            self.built.append(self.node(F.MULTI, k=threshold, keys=keys))
            return
        if op == OP_NUMEQUAL and self.tap and self.left() >= 4 and self.at(2) in (OP_CHECKSIGADD, OP_CHECKSIG):
            threshold = _number(self.ops[self.pos + 1])
            if threshold is None:
                raise _Fail
            j, found = self.pos + 2, []
            while j + 1 < len(self.ops) and self.ops[j][0] == OP_CHECKSIGADD:
                found.append(self.key(self.ops[j + 1][1]))
                j += 2
            if j + 1 >= len(self.ops) or self.ops[j][0] != OP_CHECKSIG:
                raise _Fail
            found.append(self.key(self.ops[j + 1][1]))
            j += 2
            if not 1 <= threshold <= len(found) or len(found) > 999:
                raise _Fail
            self.pos = j
            self.built.append(self.node(F.MULTI_A, k=threshold, keys=tuple(reversed(found))))
            return
        if op == OP_ENDIF:
            self.pos += 1
            todo.append(("ENDIF", -1, -1))
            todo.append(("BKV", -1, -1))
            return
        for code, wrapper in ((OP_CHECKSIG, F.WRAP_C), (OP_0NOTEQUAL, F.WRAP_N), (OP_VERIFY, F.WRAP_V)):
            if op == code:
                self.pos += 1
                todo.append(("WRAP", list(F).index(wrapper), -1))
                todo.append(("SINGLE", -1, -1))
                return
        if op == OP_EQUAL and self.left() >= 3 and self.at(2) == OP_ADD:
            threshold = _number(self.ops[self.pos + 1])
            if threshold is None or threshold < 1:
                raise _Fail
            self.pos += 3
            todo.append(("THRESH_W", 1, threshold))
            todo.append(("W", -1, -1))
            return
        for code, frag in ((OP_BOOLAND, F.AND_B), (OP_BOOLOR, F.OR_B)):
            if op == code:
                self.pos += 1
                todo.append(("BUILD", list(F).index(frag), -1))
                todo.append(("SINGLE", -1, -1))
                todo.append(("W", -1, -1))
                return
        raise _Fail

    def _WRAP(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        self.wrap(list(F)[n])

    def _BUILD(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        self.build_back(list(F)[n])

    def _W(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        if self.left() <= 0:
            raise _Fail
        if self.at(0) == OP_FROMALTSTACK:
            self.pos += 1
            todo.append(("EXPECT", OP_TOALTSTACK, list(F).index(F.WRAP_A)))
        else:
            todo.append(("EXPECT", OP_SWAP, list(F).index(F.WRAP_S)))
        todo.append(("BKV", -1, -1))

    def _EXPECT(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        if self.left() <= 0 or self.at(0) != n:
            raise _Fail
        self.pos += 1
        self.wrap(list(F)[k])

    def _THRESH_W(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        if self.left() <= 0:
            raise _Fail
        if self.at(0) == OP_ADD:
            self.pos += 1
            todo.append(("THRESH_W", n + 1, k))
            todo.append(("W", -1, -1))
        else:
            todo.append(("THRESH_E", n + 1, k))
            todo.append(("SINGLE", -1, -1))

    def _THRESH_E(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        if k < 1 or k > n or len(self.built) < n:
            raise _Fail
        subs = tuple(reversed(self.built[len(self.built) - n:]))
        del self.built[len(self.built) - n:]
        self.built.append(self.node(F.THRESH, k=k, subs=subs))

    def _ENDIF(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        if self.left() <= 0:
            raise _Fail
        op = self.at(0)
        if op == OP_ELSE:
            self.pos += 1
            todo.append(("ENDIF_ELSE", -1, -1))
            todo.append(("BKV", -1, -1))
        elif op == OP_IF:
            if self.left() >= 2 and self.at(1) == OP_DUP:
                self.pos += 2
                self.wrap(F.WRAP_D)
            elif self.left() >= 3 and self.at(1) == OP_0NOTEQUAL and self.at(2) == OP_SIZE:
                self.pos += 3
                self.wrap(F.WRAP_J)
            else:
                raise _Fail
        elif op == OP_NOTIF:
            self.pos += 1
            if self.left() > 0 and self.at(0) == OP_IFDUP:
                self.pos += 1
                todo.append(("BUILD", list(F).index(F.OR_D), -1))
            else:
                todo.append(("BUILD", list(F).index(F.OR_C), -1))
            todo.append(("SINGLE", -1, -1))
        else:
            raise _Fail

    def _ENDIF_ELSE(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        if self.left() <= 0:
            raise _Fail
        if self.at(0) == OP_IF:
            self.pos += 1
            self.build_back(F.OR_I)
        elif self.at(0) == OP_NOTIF:
            self.pos += 1
            todo.append(("ANDOR", -1, -1))
            todo.append(("SINGLE", -1, -1))
        else:
            raise _Fail

    def _ANDOR(self, todo: "list[tuple[str, int, int]]", n: int, k: int) -> None:
        if len(self.built) < 3:
            raise _Fail
        x = self.built.pop()
        z = self.built.pop()
        y = self.built[-1]
        self.built[-1] = self.node(F.ANDOR, subs=(x, y, z))
