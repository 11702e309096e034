"""One output-descriptor parser (BIP380-387, BIP389) with a typed AST, and :class:`Descriptor`.

The parser follows Bitcoin Core's ``ParseScript``: a script expression is parsed in a context
(top level, inside ``sh()``, inside ``wsh()``, a ``tr()`` leaf) that decides which functions and
keys are allowed there, and errors carry Core's message content plus the position in the text
(``InvalidDescriptor.position``, "at position N"). Time is linear in the text: brackets are
matched in one pass, each function scans only its own arguments, and the size limits of
policy/descriptor.py (length, key count, multipath arity) are checked before expensive work.

:class:`Descriptor` is a watch-only descriptor of any supported shape: it derives scripts and
addresses and renders itself back; :meth:`Descriptor.to_vault` turns a descriptor with the
ceremony shape into a :class:`~msigvault.policy.vault.Vault`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Optional, Union

from embit import base58
from embit.hashes import hash160, tagged_hash
from embit.util import secp256k1 as _secp

from ..errors import ChecksumError, InvalidDescriptor, InvalidKey, MsigvaultError, PolicyError
from ..keys.bip32 import ExtendedKey, PublicDeriver
from ..keys.keyexpr import MAX_PATH_STEPS, KeyExpression
from ..keys.paths import HARDENED
from ..script import (
    compact_size,
    multi_a_script,
    multisig_script,
    p2sh_script_pubkey,
    p2tr_script_pubkey,
    p2wsh_script_pubkey,
    push_data,
    tapleaf_hash,
)
from .checksum import CHECKSUM_CHARSET, INPUT_CHARSET, MAX_DESCRIPTOR_LENGTH, check_length, descriptor_checksum
from .miniscript import (
    FRAGMENT_NAMES, Context, Fragment, InsaneMiniscript, Miniscript, Satisfier, parse_miniscript, type_problem,
)

if TYPE_CHECKING:  # for to_vault's signature
    from ..network import Network
    from .vault import Deviation, Vault

__all__ = [
    "Descriptor", "DescriptorKey", "KeyOrigin", "Pk", "Pkh", "Wpkh", "Combo", "Multi", "Raw", "Sh", "Wsh",
    "Tr", "TapBranch", "KeyScript", "Miniscript", "ThresholdError", "parse_descriptor", "MAX_DESCRIPTOR_KEYS",
    "MAX_MULTIPATH_ARITY", "MAX_TAPROOT_DEPTH", "MAX_P2SH_SCRIPT", "MAX_WSH_SCRIPT",
]

#: Most keys any descriptor may hold (tr: multi_a with 999 keys); counted by commas first.
MAX_DESCRIPTOR_KEYS = 999
#: Most indexes one BIP389 multipath specifier may list.
MAX_MULTIPATH_ARITY = 256
#: Deepest taproot script tree (BIP341 control blocks hold at most 128 hashes).
MAX_TAPROOT_DEPTH = 128
#: A P2SH redeem script is one stack element (MAX_SCRIPT_ELEMENT_SIZE).
MAX_P2SH_SCRIPT = 520
#: Largest standard P2WSH witness script (MAX_STANDARD_P2WSH_SCRIPT_SIZE).
MAX_WSH_SCRIPT = 3600
MAX_MULTISIG_KEYS = 20  # MAX_PUBKEYS_PER_MULTISIG
MAX_MULTI_A_KEYS = 999  # MAX_PUBKEYS_PER_MULTI_A
MAX_BARE_MULTISIG_KEYS = 3

TOP, P2SH, P2WSH, P2TR, P2WPKH = "top", "sh", "wsh", "tr", "wpkh"
_CONTEXT_NAME = {P2SH: "sh", P2WSH: "wsh"}
_NAME = re.compile(r"[a-z_]+")
_HEX = re.compile(r"[0-9a-fA-F]*")
_DIGITS = re.compile(r"[0-9]+")
_SHOWN = re.compile(r"[0-9;h']*")


class ThresholdError(InvalidDescriptor, PolicyError):
    """A multi() threshold outside 1..n: a bad descriptor and a bad policy at once."""

    code = "descriptor.threshold"


def _error(message: str, position: Optional[int], cls=InvalidDescriptor, reason: Optional[str] = None) -> MsigvaultError:
    """``cls`` with "at position N" in the message and the ``position`` attribute set."""
    text = message if position is None else f"{message} (at position {position})"
    err = cls(text)
    err.position = position
    if reason is not None:
        err.reason = reason
    return err


_INSANE = {
    "invalid": "is invalid",
    "malleable": "is not sane: malleable witnesses exist",
    "no-signature": "is not sane: witnesses without signature exist",
    "timelock-mix": "is not sane: contains mixes of timelocks expressed in blocks and seconds",
    "duplicate-key": "is not sane: contains duplicate public keys",
    "resource-limits": "is not sane: needs witnesses that may exceed resource limits",
    "unsatisfiable": "is not satisfiable",
}


def _key_identity_for(ctx: Context):
    """Keys are the same when their first public keys are (Core compares PubkeyProviders so);
    x-only in tapscript. Keys that cannot be derived compare by their text."""
    def identity(k: "DescriptorKey"):
        try:
            pub = k.pubkey(0, 0)
        except MsigvaultError:
            return (k.kind, k.key, k.paths, k.wildcard)
        return pub[1:] if ctx is Context.TAPSCRIPT else pub
    return identity


def _shown(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ============================================================================ AST


@dataclass(frozen=True)
class KeyOrigin:
    """``[fingerprint/path]``: the master key fingerprint and the path from it to the key."""

    fingerprint: bytes
    path: "tuple[int, ...]"

    def __str__(self) -> str:
        return "[" + self.fingerprint.hex() + "".join("/" + _step(i) for i in self.path) + "]"


@dataclass(frozen=True)
class DescriptorKey:
    """One key expression. ``kind`` is ``xpub`` (extended public key), ``pubkey`` (hex, 33 or 65
    bytes) or ``xonly`` (32-byte hex, only inside ``tr()``).

    ``paths`` holds the derivation steps after an extended key, one tuple per BIP389 multipath
    branch (one tuple without multipath); ``multipath_at`` is the step holding ``<a;b;...>``.
    ``wildcard`` is None, ``*`` or ``*h``. ``position`` is where the key starts in the text.
    """

    origin: Optional[KeyOrigin]
    kind: str
    key: str
    paths: "tuple[tuple[int, ...], ...]" = ((),)
    multipath_at: Optional[int] = None
    wildcard: Optional[str] = None
    position: int = field(default=0, compare=False)
    xkey: Optional[ExtendedKey] = field(default=None, compare=False, repr=False)

    @property
    def is_range(self) -> bool:
        return self.wildcard is not None

    @property
    def branches(self) -> int:
        return len(self.paths)

    @property
    def size(self) -> int:
        """Bytes of the key in a script (33, 65 or 32)."""
        return {"pubkey": len(self.key) // 2, "xonly": 32}.get(self.kind, 33)

    def __str__(self) -> str:
        out = (str(self.origin) if self.origin else "") + self.key
        if self.kind != "xpub":
            return out
        for i, step in enumerate(self.paths[0]):
            if i == self.multipath_at:
                out += "/<" + ";".join(_step(p[i]) for p in self.paths) + ">"
            else:
                out += "/" + _step(step)
        return out + ("/" + self.wildcard if self.wildcard else "")

    def branch(self, branch: int) -> "DescriptorKey":
        """This key on one multipath branch (itself without multipath)."""
        if self.branches == 1:
            return self
        return DescriptorKey(self.origin, self.kind, self.key, (self.paths[branch],), None, self.wildcard,
                             self.position, self.xkey)

    def pubkey(self, index: int = 0, branch: int = 0) -> bytes:
        """The public key at ``index`` (ranged keys) on multipath ``branch``: 33 or 65 bytes."""
        if self.kind == "pubkey":
            return bytes.fromhex(self.key)
        if self.kind == "xonly":
            return b"\x02" + bytes.fromhex(self.key)
        if self.wildcard == "*h":
            raise _error(f"key {_shown(self.key, 12)} ends in a hardened wildcard: its keys can only be "
                         "derived with the private key", self.position)
        cache = self.__dict__.setdefault("_derivers", {})
        deriver = cache.get(branch)
        if deriver is None:
            steps = self.paths[branch]
            if any(s >= HARDENED for s in steps):
                raise _error(f"key {_shown(self.key, 12)} has a hardened derivation step after it: its keys "
                             "can only be derived with the private key", self.position)
            deriver = PublicDeriver(self.xkey)
            for s in steps:
                deriver = deriver.child(s)
            cache[branch] = deriver
        if self.wildcard is None:
            return deriver._sec
        return deriver.child_pubkey(index)

    def key_expression(self, branch: int = 0) -> KeyExpression:
        """The same key as a :class:`~msigvault.keys.keyexpr.KeyExpression` (one branch)."""
        fp = self.origin.fingerprint if self.origin else None
        origin = self.origin.path if self.origin else ()
        kind = "pubkey" if self.kind == "xonly" else self.kind
        return KeyExpression(fp, origin, self.key, kind, self.paths[branch], self.wildcard)


@dataclass(frozen=True)
class Pk:
    key: DescriptorKey


@dataclass(frozen=True)
class Pkh:
    key: DescriptorKey


@dataclass(frozen=True)
class Wpkh:
    key: DescriptorKey


@dataclass(frozen=True)
class Combo:
    key: DescriptorKey


@dataclass(frozen=True)
class KeyScript:
    """A bare key where a script is expected (only with ``bare_keys=True``: the account-level
    ``wsh(KEY)`` form of BC-UR crypto-account); it has no script."""

    key: DescriptorKey


@dataclass(frozen=True)
class Multi:
    """``multi``/``sortedmulti`` (``tapscript=False``) or ``multi_a``/``sortedmulti_a``."""

    threshold: int
    keys: "tuple[DescriptorKey, ...]"
    sorted: bool
    tapscript: bool

    @property
    def name(self) -> str:
        return ("sorted" if self.sorted else "") + ("multi_a" if self.tapscript else "multi")


@dataclass(frozen=True)
class Raw:
    script: bytes


@dataclass(frozen=True)
class Sh:
    inner: "Node"


@dataclass(frozen=True)
class Wsh:
    inner: "Node"


@dataclass(frozen=True)
class TapBranch:
    left: "TapTree"
    right: "TapTree"


@dataclass(frozen=True)
class Tr:
    internal: DescriptorKey
    tree: "Optional[TapTree]" = None

    def leaves(self) -> "list[tuple[int, Node]]":
        """(depth, leaf script node) in tree order."""
        out, stack = [], [(0, self.tree)] if self.tree is not None else []
        while stack:
            depth, t = stack.pop()
            if isinstance(t, TapBranch):
                stack.append((depth + 1, t.right))
                stack.append((depth + 1, t.left))
            else:
                out.append((depth, t))
        return out


Node = Union[Pk, Pkh, Wpkh, Combo, KeyScript, Multi, Raw, Sh, Wsh, Tr, Miniscript]
TapTree = Union[TapBranch, Pk, Multi, Miniscript]


# ============================================================================ parser


class _Parser:
    """Recursive descent over ``text`` with precomputed bracket matches (linear time)."""

    def __init__(self, text: str, *, bare_keys: bool, only_multipath: Optional[str]):
        self.text = text
        self.bare_keys = bare_keys
        self.only_multipath = only_multipath
        self.match = self._match_brackets()

    def _match_brackets(self) -> "dict[int, int]":
        pairs, stack = {}, []
        closing = {")": "(", "}": "{"}  # '[...]' belongs to key origins: ParsePubkey checks it
        for i, ch in enumerate(self.text):
            if ch in "({":
                stack.append(i)
            elif ch in closing:
                if not stack or self.text[stack[-1]] != closing[ch]:
                    raise _error(f"unbalanced '{ch}' in the descriptor", i)
                pairs[stack.pop()] = i
        if stack:
            raise _error(f"'{self.text[stack[-1]]}' is never closed", stack[-1])
        return pairs

    def split(self, start: int, end: int) -> "list[tuple[int, int]]":
        """Spans of the comma-separated arguments in [start, end), skipping nested brackets."""
        out, i, begin, text, match = [], start, start, self.text, self.match
        while i < end:
            ch = text[i]
            if ch in "({":
                i = match[i] + 1
                continue
            if ch == ",":
                out.append((begin, i))
                begin = i + 1
            i += 1
        out.append((begin, end))
        return out

    def func(self, start: int, end: int) -> "tuple[str | None, int, int]":
        """(name, inner start, inner end) of ``name(...)`` spanning [start, end), or (None, ...)."""
        m = _NAME.match(self.text, start, end)
        if m is None or m.end() >= end or self.text[m.end()] != "(" or self.match.get(m.end()) != end - 1:
            return None, start, end
        return m.group(0), m.end() + 1, end - 1

    # -- scripts ---------------------------------------------------------------------------------

    def script(self, start: int, end: int, ctx: str) -> Node:
        name, s, e = self.func(start, end)
        if self._is_miniscript(name, start, end):
            if ctx not in (P2WSH, P2TR):
                raise _error("Miniscript expressions can only be used in wsh or tr.", start)
            return self._miniscript(start, end, ctx)
        if name is None:
            return self._not_a_function(start, end, ctx)
        handler = _FUNCTIONS.get(name)
        if handler is None:
            if name in ("addr", "rawtr", "musig", "unused"):
                raise _error(f"{name}() is not supported by msigvault", start)
            raise _error(f"'{_shown(self.text[start:end])}' is not a valid descriptor function", start)
        return handler(self, name, s, e, ctx, start)

    def _is_miniscript(self, name: "str | None", start: int, end: int) -> bool:
        """A miniscript expression (not one of the descriptor functions): a fragment name, a
        wrapper prefix such as ``v:``, or ``0``/``1``."""
        if name is not None:
            return name not in _FUNCTIONS and name in FRAGMENT_NAMES
        m = _NAME.match(self.text, start, end)
        return (m is not None and m.end() < end and self.text[m.end()] == ":") or self.text[start:end] in ("0", "1")

    def _miniscript(self, start: int, end: int, ctx: str) -> Miniscript:
        """``wsh(MINISCRIPT)`` or a tapscript leaf: parsed, then refused unless sane (Core's rule)."""
        ms_ctx = Context.P2WSH if ctx == P2WSH else Context.TAPSCRIPT
        node = parse_miniscript(self.text, ms_ctx, parse_key=lambda a, b: self.key(a, b, ctx, "miniscript: "),
                                start=start, end=end, match=self.match)
        problem = node.insanity(_key_identity_for(ms_ctx))
        if problem is not None:
            reason, bad = problem
            raise _error(f"{_shown(bad.to_string(str), 64)} {_INSANE[reason]}"
                         + (f": {type_problem(bad, str)}" if reason == "invalid" else ""),
                         bad.position, InsaneMiniscript, reason)
        return node

    def _not_a_function(self, start: int, end: int, ctx: str) -> Node:
        if self.bare_keys and ctx in (P2SH, P2WSH):
            return KeyScript(self.key(start, end, ctx, ""))
        if ctx == P2SH:
            raise _error("A function is needed within P2SH", start)
        if ctx == P2WSH:
            raise _error("A function is needed within P2WSH", start)
        raise _error(f"'{_shown(self.text[start:end])}' is not a valid descriptor function", start)

    def _one_key(self, name, s, e, ctx, start):
        if name == "pkh" and ctx == P2TR:
            return self._miniscript(start, e + 1, ctx)  # pkh() in a tapscript leaf is miniscript
        allowed = {"pk": (TOP, P2SH, P2WSH, P2TR), "pkh": (TOP, P2SH, P2WSH), "combo": (TOP,),
                   "wpkh": (TOP, P2SH)}[name]
        if ctx not in allowed:
            raise _error({
                "pkh": "Can only have pkh() at top level, in sh(), or in wsh()",
                "combo": "Can only have combo() at top level",
                "wpkh": "Can only have wpkh() at top level or inside sh()",
            }[name], start)
        inner_name = self.func(s, e)[0]
        if inner_name is not None:
            raise _error(f"{name}() takes a key, not a script: found {inner_name}(...) inside it", s)
        key = self.key(s, e, P2WPKH if name == "wpkh" else ctx, f"{name}(): ")
        return {"pk": Pk, "pkh": Pkh, "combo": Combo, "wpkh": Wpkh}[name](key)

    def _multi(self, name, s, e, ctx, start):
        tapscript = name.endswith("_a")
        if tapscript and ctx != P2TR:
            raise _error("Can only have multi_a/sortedmulti_a inside tr()", start)
        if not tapscript and ctx not in (TOP, P2SH, P2WSH):
            raise _error("Can only have multi/sortedmulti at top level, in sh(), or in wsh()"
                         + ("; inside tr() use multi_a/sortedmulti_a" if ctx == P2TR else ""), start)
        args = self.split(s, e)
        threshold_text = self.text[args[0][0]:args[0][1]]
        if not _DIGITS.fullmatch(threshold_text) or len(threshold_text) > 10 or int(threshold_text) >= 2**32:
            raise _error(f"Multi threshold '{_shown(threshold_text)}' is not valid: write a whole number",
                         args[0][0])
        threshold, n = int(threshold_text), len(args) - 1
        self._check_count(name, n, ctx, tapscript, start)
        keys = tuple(self.key(a, b, ctx, "Multi: ") for a, b in args[1:])
        if threshold < 1:
            raise _error(f"Multisig threshold cannot be {threshold}, must be at least 1 (the threshold m "
                         f"must be a whole number from 1 to n={n})", args[0][0], ThresholdError)
        if threshold > n:
            raise _error(f"Multisig threshold cannot be larger than the number of keys; threshold is {threshold} "
                         f"but only {n} keys specified", args[0][0], ThresholdError)
        if ctx == TOP and not tapscript and n > MAX_BARE_MULTISIG_KEYS:
            raise _error(f"Cannot have {n} pubkeys in bare multisig; only at most 3 pubkeys: wrap it in wsh()",
                         start)
        size = sum(k.size + 1 for k in keys) + 3
        if ctx == P2SH and size > MAX_P2SH_SCRIPT:
            raise _error(f"P2SH script is too large, {size} bytes is larger than {MAX_P2SH_SCRIPT} bytes", start)
        _check_branches(keys, f"{name}(): Multipath derivation paths have mismatched lengths", start)
        return Multi(threshold, keys, name.startswith("sorted"), tapscript)

    def _check_count(self, name, n, ctx, tapscript, start):
        limit = MAX_MULTI_A_KEYS if tapscript else MAX_MULTISIG_KEYS
        script = {P2SH: "sh", P2WSH: "wsh", P2TR: "tr"}.get(ctx, "bare")
        if ctx == P2SH and n > 15:  # 16 keys of 33 bytes already make a 547-byte script
            raise _error(f"P2SH script is too large, {34 * n + 3} bytes is larger than {MAX_P2SH_SCRIPT} bytes "
                         f"(or more with uncompressed keys): a sh vault descriptor can have at most 15 keys, not {n}; "
                         "use wsh (up to 20) or tr (up to 999)", start)
        if n < 1 or n > limit:
            kind = "multi_a" if tapscript else "multisig"
            raise _error(f"Cannot have {n} keys in {kind}; must have between 1 and {limit} keys, inclusive"
                         + (f": a {script} vault descriptor can have at most {limit} keys, not {n}"
                            if n > limit else "")
                         + ("; use tr (up to 999)" if n > limit and not tapscript else ""), start)

    def _wrapper(self, name, s, e, ctx, start):
        if name == "sh" and ctx != TOP:
            raise _error("Can only have sh() at top level", start)
        if name == "wsh" and ctx not in (TOP, P2SH):
            raise _error("Can only have wsh() at top level or inside sh()", start)
        inner = self.script(s, e, P2SH if name == "sh" else P2WSH)
        if name == "sh":
            return Sh(inner)  # multi() checked the 520-byte limit against its keys
        size = _script_size(inner)
        if size is not None and size > MAX_WSH_SCRIPT:  # pragma: no cover - 20 keys fit easily
            raise _error(f"P2WSH script is too large, {size} bytes is larger than {MAX_WSH_SCRIPT} bytes", start)
        return Wsh(inner)

    def _raw(self, name, s, e, ctx, start):
        if ctx != TOP:
            raise _error("Can only have raw() at top level", start)
        body = self.text[s:e]
        if not _HEX.fullmatch(body) or len(body) % 2:
            raise _error("Raw script is not hex", s)
        return Raw(bytes.fromhex(body))

    def _tr(self, name, s, e, ctx, start):
        if ctx != TOP:
            raise _error("Can only have tr at top level", start)
        args = self.split(s, e)
        internal = self.key(args[0][0], args[0][1], P2TR, "tr(): ")
        if len(args) == 1:
            return Tr(internal)
        tree = self._tree(args[0][1] + 1, e)
        keys = [internal] + [k for _, leaf in Tr(internal, tree).leaves() for k in _keys_of(leaf)]
        _check_branches(keys, "tr(): Multipath subscripts have mismatched lengths", start)
        return Tr(internal, tree)

    def _tree(self, start: int, end: int) -> TapTree:
        """Core's brace walk over ``{A,{B,C}}``: a stack of pending left branches, no recursion."""
        text, pos = self.text, start
        stack: "list[list]" = []  # [left subtree or None]
        while True:
            while pos < end and text[pos] == "{":
                stack.append([None])
                if len(stack) > MAX_TAPROOT_DEPTH:
                    raise _error(f"tr() supports at most {MAX_TAPROOT_DEPTH} nesting levels", pos)
                pos += 1
            leaf_end = pos
            while leaf_end < end and text[leaf_end] not in ",}":
                leaf_end = self.match[leaf_end] + 1 if text[leaf_end] in "({" else leaf_end + 1
            node: TapTree = self.script(pos, leaf_end, P2TR)
            pos = leaf_end
            while stack and stack[-1][0] is not None:
                if pos >= end or text[pos] != "}":
                    raise _error("tr(): expected '}' after script expression", pos)
                node = TapBranch(stack.pop()[0], node)
                pos += 1
            if not stack:
                break
            if pos >= end or text[pos] != ",":
                raise _error("tr(): expected ',' after script expression", pos)
            stack[-1][0] = node
            pos += 1
        if pos != end:
            raise _error("tr(): expected ')' after script expression", pos)
        return node

    # -- keys ------------------------------------------------------------------------------------

    def key(self, start: int, end: int, ctx: str, prefix: str) -> DescriptorKey:
        try:
            return self._key(start, end, ctx, prefix)
        except InvalidKey as e:
            if getattr(e, "position", None) is not None:
                raise
            raise _error(f"{prefix}{e}", start, InvalidKey) from None

    def _key(self, start: int, end: int, ctx: str, prefix: str) -> DescriptorKey:
        text = self.text
        if start == end:
            raise _error(f"{prefix}No key provided", start, InvalidKey)
        close = text.find("]", start, end)
        origin, key_start = None, start
        if close >= 0:
            if text.find("]", close + 1, end) >= 0:
                raise _error(f"{prefix}Multiple ']' characters found for a single pubkey", start, InvalidKey)
            if text[start] != "[":
                raise _error(f"{prefix}Key origin start '[ character expected but not found, got "
                             f"'{text[start]}' instead", start, InvalidKey)
            origin = self._origin(start + 1, close, prefix)
            key_start = close + 1
        elif text[start] == "[":
            raise _error(f"{prefix}key origin has no closing ']'", start, InvalidKey)
        slash = text.find("/", key_start, end)
        key_end = end if slash < 0 else slash
        key = text[key_start:key_end]
        if not key:
            raise _error(f"{prefix}No key provided", key_start, InvalidKey)
        if slash < 0 and _HEX.fullmatch(key):
            kind, key = self._hex_key(key, ctx, prefix, key_start)
            return DescriptorKey(origin, kind, key, position=start)
        if _is_private(key):
            raise _error(f"{prefix}the descriptor contains a private key: msigvault reads only public keys; "
                         "export the descriptor with xpubs (never share private keys)", key_start, InvalidKey)
        try:
            xkey = ExtendedKey.parse(key)
        except InvalidKey as e:
            raise _error(f"{prefix}key '{_shown(key, 12)}' is not valid: {e}", key_start, InvalidKey) from None
        paths, multipath_at, wildcard = self._key_path(slash, end, prefix) if slash >= 0 else (((),), None, None)
        depth = len(origin.path) if origin else 0
        if depth + len(paths[0]) + (wildcard is not None) > MAX_PATH_STEPS:
            raise _error(f"{prefix}the key expression has more than {MAX_PATH_STEPS} derivation steps; BIP32 "
                         "keys are at most 255 levels deep", start, InvalidKey)
        return DescriptorKey(origin, "xpub", key, paths, multipath_at, wildcard, start, xkey)

    def _origin(self, start: int, end: int, prefix: str) -> KeyOrigin:
        parts = self.text[start:end].split("/")
        fp = parts[0]
        if len(fp) != 8:
            raise _error(f"{prefix}Fingerprint is not 4 bytes ({len(fp)} characters instead of 8 characters)",
                         start)
        if not _HEX.fullmatch(fp):
            raise _error(f"{prefix}Fingerprint '{fp}' is not hex", start, InvalidKey)
        if len(parts) > MAX_PATH_STEPS:
            raise _error(f"{prefix}the key origin has more than {MAX_PATH_STEPS} steps", start, InvalidKey)
        pos, path = start + 9, []
        for p in parts[1:]:
            if p.startswith("<"):
                raise _error(f"{prefix}Key path value '{_shown(p)}' specifies multipath in a section where "
                             "multipath is not allowed: a multipath specifier cannot be inside a key origin", pos)
            path.append(_parse_step(p, prefix, pos))
            pos += len(p) + 1
        return KeyOrigin(bytes.fromhex(fp), tuple(path))

    def _hex_key(self, key: str, ctx: str, prefix: str, pos: int) -> "tuple[str, str]":
        key = key.lower()
        if len(key) == 66 and key[:2] in ("02", "03") and _on_curve(key):
            return "pubkey", key
        if len(key) == 130 and key[:2] in ("06", "07"):
            raise _error(f"{prefix}Hybrid public keys are not allowed", pos, InvalidKey)
        if len(key) == 130 and key[:2] == "04" and _on_curve(key):
            if ctx not in (TOP, P2SH):
                raise _error(f"{prefix}Uncompressed keys are not allowed", pos, InvalidKey)
            return "pubkey", key
        if len(key) == 64 and ctx == P2TR and _on_curve("02" + key):
            return "xonly", key
        raise _error(f"{prefix}Pubkey '{_shown(key, 70)}' is invalid", pos, InvalidKey)

    def _key_path(self, slash: int, end: int, prefix: str):
        """(paths, multipath step, wildcard) of ``/a/b/<c;d>/*`` starting at ``slash``."""
        text, steps, multipath, at = self.text, [], None, None
        pos, wildcard = slash + 1, None
        count = 0
        while True:
            nxt = text.find("/", pos, end)
            part_end = end if nxt < 0 else nxt
            part = text[pos:part_end]
            count += 1
            if count > MAX_PATH_STEPS:
                raise _error(f"{prefix}the key expression has more than {MAX_PATH_STEPS} derivation steps; "
                             "BIP32 keys are at most 255 levels deep", pos, InvalidKey)
            if nxt < 0 and part in ("*", "*'", "*h"):
                wildcard = "*" if part == "*" else "*h"
            elif part.startswith("<") and part.endswith(">"):
                if multipath is not None:
                    raise _error(f"{prefix}Multiple multipath key path specifiers found: a key can have only "
                                 "one multipath specifier", pos)
                multipath, at = self._multipath(part[1:-1], prefix, pos), len(steps)
                steps.append(0)
            else:
                steps.append(_parse_step(part, prefix, pos))
            if nxt < 0:
                break
            pos = nxt + 1
        if multipath is None:
            return (tuple(steps),), None, wildcard
        paths = tuple(tuple(steps[:at]) + (v,) + tuple(steps[at + 1:]) for v in multipath)
        return paths, at, wildcard

    def _multipath(self, inner: str, prefix: str, pos: int) -> "list[int]":
        if self.only_multipath is not None and inner != self.only_multipath:
            shown = f"<{inner}>" if len(inner) <= 24 and _SHOWN.fullmatch(inner) else "<...>"
            raise _error(f"{prefix}the only multipath msigvault accepts is /<{self.only_multipath}>/* "
                         f"(receive branch 0, change branch 1), found {shown}", pos)
        if inner.count(";") >= MAX_MULTIPATH_ARITY:
            raise _error(f"{prefix}multipath specifier <{_shown(inner, 40)}> lists more than "
                         f"{MAX_MULTIPATH_ARITY} indexes", pos)
        items = inner.split(";")
        if len(items) < 2:
            raise _error(f"{prefix}Multipath key path specifiers must have at least two items", pos)
        values, seen, at = [], set(), pos + 1
        for item in items:
            v = _parse_step(item, prefix, at)
            if v in seen:
                raise _error(f"{prefix}Duplicated key path value {v} in multipath specifier: the multipath "
                             "specifier repeats an index", at)
            seen.add(v)
            values.append(v)
            at += len(item) + 1
        return values


_FUNCTIONS = {
    "pk": _Parser._one_key, "pkh": _Parser._one_key, "wpkh": _Parser._one_key, "combo": _Parser._one_key,
    "multi": _Parser._multi, "sortedmulti": _Parser._multi, "multi_a": _Parser._multi,
    "sortedmulti_a": _Parser._multi, "sh": _Parser._wrapper, "wsh": _Parser._wrapper, "raw": _Parser._raw,
    "tr": _Parser._tr,
}


def _parse_step(text: str, prefix: str, pos: int) -> int:
    """One BIP32 step, decimal below 2^31 with ``h`` or ``'`` for hardened (Core's messages)."""
    hardened = text[-1:] in ("h", "'")
    digits = text[:-1] if hardened else text
    if not _DIGITS.fullmatch(digits) or len(digits) > 10:
        raise _error(f"{prefix}Key path value '{_shown(text)}' is not a valid uint32", pos, InvalidKey)
    n = int(digits)
    if n >= HARDENED:
        raise _error(f"{prefix}Key path value {n} is out of range", pos, InvalidKey)
    return n + HARDENED if hardened else n


def _on_curve(hex_key: str) -> bool:
    try:
        _secp.ec_pubkey_parse(bytes.fromhex(hex_key))
        return True
    except (ValueError, Exception):
        return False


def _is_private(key: str) -> bool:
    if key[1:4] == "prv":
        return True
    if len(key) in (51, 52) and key[:1] in "5KLc9":
        try:
            raw = base58.decode_check(key)
        except Exception:
            return False
        return raw[:1] in (b"\x80", b"\xef") and len(raw) in (33, 34)
    return False


def _check_branches(keys, message: str, position: int) -> None:
    arities = {k.branches for k in keys} - {1}
    if len(arities) > 1:
        raise _error(message + ": all multipath specifiers in a descriptor must have the same number of indexes",
                     position)


def _step(i: int) -> str:
    return f"{i - HARDENED}h" if i >= HARDENED else str(i)


def parse_descriptor(text: str, *, require_checksum: bool = False, bare_keys: bool = False,
                     only_multipath: Optional[str] = None) -> "Descriptor":
    """Parse descriptor text (``#checksum`` verified when present) into a :class:`Descriptor`.

    ``bare_keys`` accepts a key where ``sh()``/``wsh()`` expect a script (BC-UR crypto-account);
    ``only_multipath`` (e.g. ``"0;1"``) refuses any other BIP389 specifier before expanding it.
    """
    if not isinstance(text, str):
        raise InvalidDescriptor("a descriptor is a string")
    desc, checksum = _split_checksum(text, require_checksum)
    node = _Parser(desc, bare_keys=bare_keys, only_multipath=only_multipath).script(0, len(desc), TOP)
    _check_branches(_all_keys(node), "Multipath derivation paths have mismatched lengths", 0)
    return Descriptor(node, checksum)


def _split_checksum(text: str, require: bool) -> "tuple[str, Optional[str]]":
    if len(text) > MAX_DESCRIPTOR_LENGTH + 9:
        check_length(text)
    hashes = text.count("#")
    if hashes > 1:
        raise _error("Multiple '#' symbols: only one checksum may follow the descriptor", text.find("#", text.find("#") + 1),
                     ChecksumError)
    if hashes == 0:
        _check_text(text)
        if require:
            raise _error("Missing checksum: the descriptor has no checksum (#xxxxxxxx); copy the full "
                         "descriptor, or pass require_checksum=False if you typed it yourself and checked it",
                         len(text), ChecksumError)
        return text, None
    desc, given = text.split("#")
    if len(given) != 8:
        raise _error(f"Expected 8 character checksum, not {len(given)} characters", len(desc) + 1, ChecksumError)
    _check_text(desc)
    expected = descriptor_checksum(desc)
    if given != expected:
        bad = next((i for i, c in enumerate(given) if c not in CHECKSUM_CHARSET), None)
        raise _error(f"Provided checksum '{_shown(given, 8)}' does not match computed checksum '{expected}': "
                     "descriptor checksum mismatch, the descriptor was altered or mistyped",
                     len(desc) + 1 + (bad or 0), ChecksumError)
    return desc, given


_CHARSET = frozenset(INPUT_CHARSET)


def _check_text(desc: str) -> None:
    check_length(desc)
    commas = desc.count(",")
    if commas > MAX_DESCRIPTOR_KEYS + 1:
        raise _error(f"the descriptor has {commas} commas, so more than {MAX_DESCRIPTOR_KEYS} keys; a vault has "
                     f"at most {MAX_DESCRIPTOR_KEYS} (tr), 20 (wsh, sh-wsh) or 15 (sh): it is not a vault "
                     "descriptor", None)
    if not _CHARSET.issuperset(desc) or " " in desc:
        i = next(i for i, c in enumerate(desc) if c not in _CHARSET or c == " ")
        if desc[i] == " ":
            raise _error("the descriptor contains spaces: remove them", i)
        raise _error(f"Invalid characters in payload: the descriptor contains the character {desc[i]!r}, which "
                     "descriptors do not allow", i)


# ============================================================================ scripts


def _keys_of(node) -> "list[DescriptorKey]":
    if isinstance(node, (Pk, Pkh, Wpkh, Combo, KeyScript)):
        return [node.key]
    if isinstance(node, Multi):
        return list(node.keys)
    if isinstance(node, (Sh, Wsh)):
        return _keys_of(node.inner)
    if isinstance(node, Tr):
        return [node.internal] + [k for _, leaf in node.leaves() for k in _keys_of(leaf)]
    if isinstance(node, Miniscript):
        return node.all_keys()
    return []


_all_keys = _keys_of


def _script_size(node) -> Optional[int]:
    if isinstance(node, Multi) and not node.tapscript:
        return sum(k.size + 1 for k in node.keys) + 3
    return None


def _script_of(node, index: int = 0, branch: int = 0) -> bytes:
    """The script of a leaf node (pk, pkh, wpkh, multi, multi_a, raw) at ``index``."""
    if isinstance(node, Raw):
        return node.script
    if isinstance(node, Miniscript):
        return node.to_script(lambda k: k.pubkey(index, branch))
    if isinstance(node, Multi):
        pubs = [k.pubkey(index, branch) for k in node.keys]
        if node.tapscript:
            xs = [p[1:] for p in pubs]
            return multi_a_script(node.threshold, sorted(xs) if node.sorted else xs)
        return multisig_script(node.threshold, sorted(pubs) if node.sorted else pubs)
    pub = node.key.pubkey(index, branch)
    if isinstance(node, Pk):
        return push_data(pub) + b"\xac"
    if isinstance(node, Pkh):
        return b"\x76\xa9\x14" + hash160(pub) + b"\x88\xac"
    if isinstance(node, Wpkh):
        return b"\x00\x14" + hash160(pub)
    raise InvalidDescriptor(f"{type(node).__name__.lower()}() has no single script")


def _leaf_script(node, index: int, branch: int) -> bytes:
    if isinstance(node, Pk):
        return push_data(node.key.pubkey(index, branch)[1:]) + b"\xac"
    return _script_of(node, index, branch)


def _tree_hash(tree, index: int, branch: int) -> bytes:
    if isinstance(tree, TapBranch):
        a, b = _tree_hash(tree.left, index, branch), _tree_hash(tree.right, index, branch)
        return tagged_hash("TapBranch", min(a, b) + max(a, b))
    return tapleaf_hash(_leaf_script(tree, index, branch))


def _taproot_output(internal: bytes, tree, index: int, branch: int) -> "tuple[bytes, int]":
    """(x-only output key, parity) of BIP341's tweak of ``internal`` by the tree's merkle root."""
    root = b"" if tree is None else _tree_hash(tree, index, branch)
    point = _secp.ec_pubkey_parse(b"\x02" + internal)
    tweaked = _secp.ec_pubkey_serialize(_secp.ec_pubkey_add(point, tagged_hash("TapTweak", internal + root)))
    return tweaked[1:], tweaked[0] - 2


def _script_pubkeys(node, index: int, branch: int) -> "tuple[bytes, ...]":
    if isinstance(node, Sh):
        return (p2sh_script_pubkey(_inner_script(node.inner, index, branch)),)
    if isinstance(node, Wsh):
        return (p2wsh_script_pubkey(_inner_script(node.inner, index, branch)),)
    if isinstance(node, Tr):
        internal = node.internal.pubkey(index, branch)[1:]
        return (p2tr_script_pubkey(_taproot_output(internal, node.tree, index, branch)[0]),)
    if isinstance(node, Combo):
        pub = node.key.pubkey(index, branch)
        out = [push_data(pub) + b"\xac", b"\x76\xa9\x14" + hash160(pub) + b"\x88\xac"]
        if len(pub) == 33:
            wpkh = b"\x00\x14" + hash160(pub)
            out += [wpkh, p2sh_script_pubkey(wpkh)]
        return tuple(out)
    if isinstance(node, KeyScript):
        raise InvalidDescriptor("an account-level key descriptor (wsh(KEY)) has no scripts to derive")
    return (_script_of(node, index, branch),)


def _inner_script(node, index: int, branch: int) -> bytes:
    if isinstance(node, Wsh):
        return p2wsh_script_pubkey(_inner_script(node.inner, index, branch))
    if isinstance(node, KeyScript):
        raise InvalidDescriptor("an account-level key descriptor (wsh(KEY)) has no scripts to derive")
    return _script_of(node, index, branch)


def _as_miniscript(node, index: int, branch: int) -> Miniscript:
    """A wsh()/tapscript node as miniscript (multi/sortedmulti with derived keys, pk as c:pk_k)."""
    if isinstance(node, Miniscript):
        return node
    ctx = Context.P2WSH  # tr() leaves arrive as miniscript or multi_a
    if isinstance(node, Multi):
        pubs = [k.pubkey(index, branch) for k in node.keys]
        if node.sorted:
            pubs = sorted(pubs, key=lambda p: p[1:]) if node.tapscript else sorted(pubs)
        ctx = Context.TAPSCRIPT if node.tapscript else Context.P2WSH
        return Miniscript(Fragment.MULTI_A if node.tapscript else Fragment.MULTI, ctx, node.threshold, tuple(pubs))
    if isinstance(node, Pk):
        return Miniscript(Fragment.WRAP_C, ctx, subs=(Miniscript(Fragment.PK_K, ctx, keys=(node.key,)),))
    if isinstance(node, Pkh):
        return Miniscript(Fragment.WRAP_C, ctx, subs=(Miniscript(Fragment.PK_H, ctx, keys=(node.key,)),))
    raise InvalidDescriptor(f"{type(node).__name__.lower()}() inside wsh() cannot be satisfied by msigvault")


def _spend_paths(node, index: int, branch: int) -> "list[tuple[object, bytes, list[bytes]]]":
    """(script node, script, witness items after the script) for each way to spend ``node``."""
    if isinstance(node, Wsh) and not isinstance(node.inner, (Wsh, KeyScript)):
        return [(node.inner, _inner_script(node.inner, index, branch), [])]
    if isinstance(node, Tr) and node.tree is not None:
        internal = node.internal.pubkey(index, branch)[1:]
        parity = _taproot_output(internal, node.tree, index, branch)[1]
        out = []
        for leaf, path in _leaf_paths(node.tree, index, branch):
            if isinstance(leaf, Pk):
                leaf = Miniscript(Fragment.WRAP_C, Context.TAPSCRIPT,
                                  subs=(Miniscript(Fragment.PK_K, Context.TAPSCRIPT, keys=(leaf.key,)),))
            control = bytes([0xC0 | parity]) + internal + b"".join(path)
            out.append((leaf, _leaf_script(leaf, index, branch), [control]))
        return out
    raise InvalidDescriptor("only wsh() and tr() descriptors with a script tree can be satisfied here")


def _leaf_paths(tree, index: int, branch: int) -> "list[tuple[object, list[bytes]]]":
    """Every leaf with its merkle path (sibling hashes, deepest first)."""
    if not isinstance(tree, TapBranch):
        return [(tree, [])]
    left, right = _tree_hash(tree.left, index, branch), _tree_hash(tree.right, index, branch)
    return ([(leaf, path + [right]) for leaf, path in _leaf_paths(tree.left, index, branch)]
            + [(leaf, path + [left]) for leaf, path in _leaf_paths(tree.right, index, branch)])


def _witness_size(items: "list[bytes]") -> int:
    return len(compact_size(len(items))) + sum(len(compact_size(len(i))) + len(i) for i in items)


# ============================================================================ rendering


def _render(node) -> str:
    if isinstance(node, (Pk, Pkh, Wpkh, Combo)):
        return f"{type(node).__name__.lower()}({node.key})"
    if isinstance(node, KeyScript):
        return str(node.key)
    if isinstance(node, Multi):
        return f"{node.name}({node.threshold},{','.join(map(str, node.keys))})"
    if isinstance(node, Raw):
        return f"raw({node.script.hex()})"
    if isinstance(node, Miniscript):
        return node.to_string(str)
    if isinstance(node, Sh):
        return f"sh({_render(node.inner)})"
    if isinstance(node, Wsh):
        return f"wsh({_render(node.inner)})"
    if isinstance(node, Tr):
        return f"tr({node.internal})" if node.tree is None else f"tr({node.internal},{_render_tree(node.tree)})"
    raise TypeError(node)  # pragma: no cover


def _render_tree(tree) -> str:
    if isinstance(tree, TapBranch):
        return "{" + _render_tree(tree.left) + "," + _render_tree(tree.right) + "}"
    return _render(tree)


def _map_keys(node, fn):
    """``node`` with every key replaced by ``fn(key)``."""
    if isinstance(node, (Pk, Pkh, Wpkh, Combo, KeyScript)):
        return type(node)(fn(node.key))
    if isinstance(node, Multi):
        return Multi(node.threshold, tuple(fn(k) for k in node.keys), node.sorted, node.tapscript)
    if isinstance(node, (Sh, Wsh)):
        return type(node)(_map_keys(node.inner, fn))
    if isinstance(node, TapBranch):
        return TapBranch(_map_keys(node.left, fn), _map_keys(node.right, fn))
    if isinstance(node, Tr):
        return Tr(fn(node.internal), None if node.tree is None else _map_keys(node.tree, fn))
    if isinstance(node, Miniscript):
        return node.map_keys(fn)
    return node


# ============================================================================ Descriptor


@dataclass(frozen=True)
class Descriptor:
    """A parsed output descriptor (watch-only): scripts and addresses at any index and branch.

    Build one with :meth:`parse`. ``node`` is the AST; ``checksum`` the one the text carried.
    Only a :class:`~msigvault.policy.vault.Vault` (see :meth:`to_vault`) can be signed for.
    """

    node: Node
    checksum: Optional[str] = field(default=None, compare=False)

    @classmethod
    def parse(cls, text: str, *, require_checksum: bool = False) -> "Descriptor":
        """Parse descriptor text; its ``#checksum`` is verified when present (required if asked)."""
        return parse_descriptor(text.strip() if isinstance(text, str) else text, require_checksum=require_checksum)

    # -- views -----------------------------------------------------------------------------------

    @property
    def keys(self) -> "tuple[DescriptorKey, ...]":
        """Every key expression, in text order."""
        return tuple(_keys_of(self.node))

    @property
    def is_range(self) -> bool:
        """True when some key ends in a wildcard (``/*``): scripts differ per index."""
        return any(k.is_range for k in self.keys)

    @property
    def branches(self) -> int:
        """Number of BIP389 multipath branches (1 without multipath)."""
        return max((k.branches for k in self.keys), default=1)

    def branch(self, branch: int) -> "Descriptor":
        """The single-path descriptor of one multipath branch."""
        self._check_branch(branch)
        return Descriptor(_map_keys(self.node, lambda k: k.branch(branch)))

    def descriptor(self, *, checksum: bool = True) -> str:
        """The descriptor text (hardened steps as ``h``, lower-case hex), with its checksum."""
        text = _render(self.node)
        return f"{text}#{descriptor_checksum(text)}" if checksum else text

    def __str__(self) -> str:
        return self.descriptor()

    # -- derivation ------------------------------------------------------------------------------

    def script_pubkeys(self, index: int = 0, branch: int = 0) -> "tuple[bytes, ...]":
        """Every scriptPubKey at ``index`` on ``branch`` (``combo()`` gives up to four)."""
        self._check_index(index)
        self._check_branch(branch)
        try:
            return _script_pubkeys(self.node, index, branch)
        except InvalidKey as e:
            raise InvalidDescriptor(f"cannot derive index {index}: {e}") from None

    def script_pubkey(self, index: int = 0, branch: int = 0) -> bytes:
        spks = self.script_pubkeys(index, branch)
        if len(spks) != 1:
            raise InvalidDescriptor("combo() has several scripts: use script_pubkeys()")
        return spks[0]

    def address(self, index: int = 0, branch: int = 0, *, network) -> str:
        from ..address import address_from_script
        from ..network import Network

        return address_from_script(self.script_pubkey(index, branch), Network.from_name(network))

    # -- spending ---------------------------------------------------------------------------------

    def satisfy(self, satisfier: Satisfier, index: int = 0, branch: int = 0) -> "Optional[list[bytes]]":
        """The cheapest non-malleable witness (whole: stack, script, control block) spending the
        ``wsh()`` or ``tr()`` output at ``index`` on ``branch`` from what ``satisfier`` has
        (signatures by public key, preimages, nLockTime, nSequence), or None when none exists.
        In ``tr()`` every leaf is tried and the smallest witness wins (no key-path spend)."""
        self._check_index(index)
        self._check_branch(branch)
        options = [(_as_miniscript(leaf, index, branch), script, tail)
                   for leaf, script, tail in _spend_paths(self.node, index, branch)]
        best: "Optional[list[bytes]]" = None
        for ms, script, tail in options:
            leaf = tapleaf_hash(script) if tail else None
            stack = ms.satisfy(satisfier, lambda k: k.pubkey(index, branch) if isinstance(k, DescriptorKey) else k,
                               leaf_hash=leaf)
            if stack is None:
                continue
            witness = stack + [script] + tail
            if best is None or _witness_size(witness) < _witness_size(best):
                best = witness
        return best

    def max_witness_weight(self, index: int = 0, branch: int = 0) -> Optional[int]:
        """Most witness bytes (weight units) a non-malleable spend of this ``wsh()``/``tr()``
        output can take (for fee estimation): the largest over ``tr()`` leaves; None when no
        spend exists."""
        sizes = []
        for leaf, script, tail in _spend_paths(self.node, index, branch):
            ms = _as_miniscript(leaf, index, branch)
            sat, items = ms.max_witness_size, ms.stack_size
            if sat is None or items is None:
                continue
            n = items + 1 + len(tail)
            sizes.append(len(compact_size(n)) + sat + len(compact_size(len(script))) + len(script)
                         + sum(len(compact_size(len(t))) + len(t) for t in tail))
        return max(sizes) if sizes else None

    def _check_index(self, index) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < HARDENED:
            raise InvalidDescriptor(f"index must be an integer from 0 to 2^31-1, got {index!r}")

    def _check_branch(self, branch) -> None:
        if isinstance(branch, bool) or not isinstance(branch, int) or not 0 <= branch < self.branches:
            raise InvalidDescriptor(f"this descriptor has {self.branches} multipath branch(es): branch must be "
                                    f"0..{self.branches - 1}, not {branch!r}")

    # -- the ceremony shape ----------------------------------------------------------------------

    def vault_shape(self) -> "tuple[int, tuple[DescriptorKey, ...], str, bool]":
        """(m, keys, script type, sorted) when this is an m-of-n vault's shape, else InvalidDescriptor
        saying what is missing (keys are not checked here: see :meth:`to_vault`)."""
        return _vault_shape(self.node)

    def to_vault(self, *, network: "Network | str | None" = None,
                 accept: "Iterable[Deviation | str] | Deviation | str" = ()) -> "Vault":
        """The :class:`~msigvault.policy.vault.Vault` this descriptor describes (every key an
        xpub with ``/<0;1>/*``, or all ``/0/*``, or all ``/1/*``); InvalidDescriptor if not."""
        from .vault import Vault, _deviation_set, _resolve_network

        m, cosigners, script, is_sorted = vault_parts(self)
        net = _resolve_network(network, cosigners)
        return Vault(m, cosigners, script, is_sorted, net, accept=_deviation_set(accept))


_VAULT_FORMS = ("msigvault reads sh(multi), sh(wsh(multi)), wsh(multi) and tr(<NUMS>,multi_a) "
                "(and their sorted forms)")


def _vault_shape(node):
    from .vault import NUMS_H

    if isinstance(node, Sh) and isinstance(node.inner, Wsh) and isinstance(node.inner.inner, Multi):
        inner, script = node.inner.inner, "sh-wsh"
    elif isinstance(node, Sh) and isinstance(node.inner, Multi):
        inner, script = node.inner, "sh"
    elif isinstance(node, Sh):
        name = type(node.inner).__name__.lower()
        raise InvalidDescriptor(f"sh({name}(...)) is not a multisig vault: {_VAULT_FORMS}")
    elif isinstance(node, Wsh) and isinstance(node.inner, Multi):
        inner, script = node.inner, "wsh"
    elif isinstance(node, Wsh):
        name = type(node.inner).__name__.lower()
        raise InvalidDescriptor(f"wsh({name}(...)) is not a multisig vault: {_VAULT_FORMS}")
    elif isinstance(node, Tr):
        if node.tree is None:
            raise InvalidDescriptor("tr() without a script tree is a single-key wallet, not a multisig vault")
        if str(node.internal) != NUMS_H.hex():
            raise InvalidDescriptor(
                "this tr() descriptor has a spendable internal key: msigvault vaults use the BIP341 "
                f"unspendable key {NUMS_H.hex()} so coins move only with m signatures")
        if isinstance(node.tree, TapBranch):
            raise InvalidDescriptor("tr() with more than one leaf is not an m-of-n vault msigvault can sign for")
        if not isinstance(node.tree, Multi):
            raise InvalidDescriptor("the tr() leaf is not multi_a/sortedmulti_a: not an m-of-n vault")
        inner, script = node.tree, "tr"
    else:
        head = "multi" if isinstance(node, Multi) else type(node).__name__.lower()
        raise InvalidDescriptor(f"{head}(...) is not a vault descriptor: {_VAULT_FORMS}")
    return inner.threshold, inner.keys, script, inner.sorted


def vault_parts(desc: Descriptor):
    """(m, cosigners, script type, sorted) of a descriptor with the ceremony shape."""
    from ..keys.cosigner import Cosigner

    m, keys, script, is_sorted = desc.vault_shape()
    paths = {k.paths for k in keys}
    if paths not in ({((0,), (1,))}, {((0,),)}, {((1,),)}):
        found = sorted({_suffix(k) for k in keys})
        raise InvalidDescriptor(
            "every key of a vault must end in /<0;1>/* (or all in /0/*, or all in /1/*); found " + ", ".join(found))
    cosigners = []
    for i, k in enumerate(keys, 1):
        if k.wildcard != "*":
            raise InvalidDescriptor(
                f"key {i} must end in /* (unhardened wildcard): "
                + ("hardened wildcards cannot be derived from an xpub" if k.wildcard else "a vault needs ranged keys"))
        try:
            cosigners.append(Cosigner.from_key_expression(k.key_expression()))
        except InvalidKey as e:
            raise InvalidKey(f"key {i} of the descriptor: {e}") from None
    return m, tuple(cosigners), script, is_sorted


def _suffix(k: DescriptorKey) -> str:
    if k.kind != "xpub" or not k.paths[0] and k.wildcard is None:
        return "(no derivation)"
    return str(DescriptorKey(None, "xpub", "", k.paths, k.multipath_at, k.wildcard)) or "(no derivation)"
