"""Timelocked recovery paths of a :class:`~msigvault.policy.vault.Vault` (see docs/recovery.md).

A vault with recovery paths spends with its primary m-of-n at any time, or with a recovery path's
k-of-its-keys once that path's timelock has passed:

- ``wsh``: one miniscript, ``or_d(multi(m,PRIMARY),RECOVERY)`` where RECOVERY is
  ``and_v(v:multi(k,KEYS),older(N))`` (or ``after(N)``), several joined by ``or_i``
  (the shape Liana uses). Miniscript allows each key once per script, so in ``wsh`` every
  recovery key must differ from the primary keys and from the other paths' keys.
- ``tr``: the NUMS internal key, the primary ``multi_a``/``sortedmulti_a`` leaf at depth 1 (the
  cheapest control block for the everyday spend) and one ``and_v(v:multi_a(k,KEYS),older(N))``
  leaf per recovery path. Leaves are separate scripts, so recovery paths may reuse primary keys
  (a decaying threshold: 2-of-3 now, 1-of-3 after N).

Keys of recovery paths are positions in ``Vault.cosigners``: the primary path's keys come first
(``Vault.n`` of them), then the keys only recovery paths use, in order of first appearance.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from ..errors import InvalidDescriptor, PolicyError
from ..keys.cosigner import Cosigner
from ..scripttypes import ScriptType
from .miniscript import Context, Fragment, Miniscript

if TYPE_CHECKING:
    from .vault import Vault

MAX_RECOVERY_PATHS = 8
LOCKTIME_THRESHOLD = 500_000_000  # nLockTime / after(): below is a block height, from here a unix time
SEQUENCE_TYPE_FLAG = 1 << 22  # BIP68: relative lock in units of 512 seconds
SEQUENCE_MASK = 0xFFFF
MAX_RELATIVE = 0xFFFF  # BIP68: 16 bits of blocks or of 512-second units
BLOCKS_PER_DAY = 144


class LockKind(str, enum.Enum):
    """``older``: relative to the coin's confirmation (BIP68/112, nSequence); ``after``:
    absolute (BIP65, nLockTime)."""

    OLDER = "older"
    AFTER = "after"


@dataclass(frozen=True)
class Timelock:
    """A recovery path's lock: the miniscript ``older(value)`` or ``after(value)``.

    ``older``: blocks (1..65,535), or 512-second units with BIP68's type flag (build it with
    :meth:`older_seconds`). ``after``: a block height (1..499,999,999) or a unix time
    (500,000,000..2^31-1). Nothing else is a lock consensus gives this meaning to.
    """

    kind: LockKind
    value: int

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", LockKind(self.kind))
        except ValueError:
            raise PolicyError(f"a timelock is 'older' (relative) or 'after' (absolute), not {self.kind!r}",
                              field="lock") from None
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int):
            raise PolicyError(f"a timelock value is a whole number, not {v!r}", field="lock")
        if self.kind is LockKind.OLDER:
            units = v & SEQUENCE_MASK
            if v & ~(SEQUENCE_TYPE_FLAG | SEQUENCE_MASK) or units == 0 or v <= 0:
                raise PolicyError(
                    f"older({v}) is not a relative timelock BIP68 can express: use 1 to {MAX_RELATIVE:,} blocks, "
                    f"or a multiple of 512 seconds up to {MAX_RELATIVE * 512:,} seconds (about 388 days)",
                    field="lock")
        elif not 1 <= v < 2 ** 31:
            raise PolicyError(
                f"after({v}) is out of range: a block height from 1 to {LOCKTIME_THRESHOLD - 1:,}, or a unix "
                f"time from {LOCKTIME_THRESHOLD:,} to {2 ** 31 - 1:,}", field="lock")

    @classmethod
    def older(cls, blocks: int) -> "Timelock":
        """Spendable ``blocks`` blocks after the coin confirmed (1..65,535; 52,560 is about a year)."""
        if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= MAX_RELATIVE:
            raise PolicyError(f"a relative lock in blocks is 1 to {MAX_RELATIVE:,} blocks, not {blocks!r}",
                              field="lock")
        return cls(LockKind.OLDER, blocks)

    @classmethod
    def older_seconds(cls, seconds: int) -> "Timelock":
        """Spendable ``seconds`` after the coin confirmed (a multiple of 512, up to 33,553,920)."""
        if (isinstance(seconds, bool) or not isinstance(seconds, int) or seconds % 512
                or not 512 <= seconds <= MAX_RELATIVE * 512):
            raise PolicyError(f"a relative time lock is a multiple of 512 seconds from 512 to "
                              f"{MAX_RELATIVE * 512:,}, not {seconds!r}", field="lock")
        return cls(LockKind.OLDER, SEQUENCE_TYPE_FLAG | seconds // 512)

    @classmethod
    def after(cls, value: int) -> "Timelock":
        """Spendable from block height ``value`` (below 500,000,000) or unix time ``value``."""
        return cls(LockKind.AFTER, value)

    @property
    def is_relative(self) -> bool:
        return self.kind is LockKind.OLDER

    @property
    def is_time(self) -> bool:
        """True for a time lock (seconds), False for a lock in blocks."""
        if self.is_relative:
            return bool(self.value & SEQUENCE_TYPE_FLAG)
        return self.value >= LOCKTIME_THRESHOLD

    @property
    def fragment(self) -> str:
        return f"{self.kind.value}({self.value})"

    def describe(self) -> str:
        """The lock in words: ``52,560 blocks after the coin confirmed (about 365 days)``."""
        if self.is_relative:
            units = self.value & SEQUENCE_MASK
            if self.is_time:
                return f"{units * 512:,} seconds after the coin confirmed ({_about(units * 512 / 86400)})"
            return f"{units:,} blocks after the coin confirmed ({_about(units / BLOCKS_PER_DAY)})"
        if self.is_time:
            return f"from unix time {self.value:,}"
        return f"from block height {self.value:,}"

    def sequence(self) -> int:
        """The nSequence a spend of this path needs (relative locks); see :meth:`lock_time`."""
        if not self.is_relative:
            raise PolicyError("an absolute lock is set in nLockTime, not nSequence")
        return self.value

    def to_dict(self) -> "dict[str, Any]":
        return {"kind": self.kind.value, "value": self.value, "text": self.describe()}


def _about(days: float) -> str:
    if days >= 2:
        return f"about {days:.0f} days"
    hours = max(1, round(days * 24))
    return f"about {hours} hour{'s' if hours != 1 else ''}"


@dataclass(frozen=True)
class RecoveryPath:
    """``threshold`` signatures of the vault cosigners at positions ``keys``, once ``lock`` passed."""

    threshold: int
    keys: "tuple[int, ...]"
    lock: Timelock

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.keys))
        if not isinstance(self.lock, Timelock):
            raise PolicyError(f"a recovery path's lock is a Timelock, not {type(self.lock).__name__}", field="lock")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= max(1, len(self.keys)):
            raise PolicyError(f"a recovery path's threshold is a whole number from 1 to its number of keys "
                              f"({len(self.keys)}), not {t!r}", field="recovery")
        if len(set(self.keys)) != len(self.keys) or not self.keys:
            raise PolicyError("a recovery path lists each of its keys once, and at least one", field="recovery")

    def describe(self, vault: "Vault") -> str:
        fps = ", ".join(vault.cosigners[i].fingerprint.hex() for i in self.keys)
        return f"{self.threshold}-of-{len(self.keys)} ({fps}) {self.lock.describe()}"


@dataclass(frozen=True)
class Recovery:
    """What a caller asks for: ``threshold`` of ``cosigners`` (records or ``[fp/path]xpub``
    strings; primary cosigners may appear again) once ``lock`` has passed."""

    threshold: int
    cosigners: "tuple[Cosigner | str, ...]"
    lock: Timelock

    def __post_init__(self) -> None:
        if isinstance(self.cosigners, (str, Cosigner)) or not isinstance(self.cosigners, Iterable):
            raise PolicyError("a recovery path's cosigners are a list", field="recovery")
        object.__setattr__(self, "cosigners", tuple(self.cosigners))
        if not isinstance(self.lock, Timelock):
            raise PolicyError(f"a recovery path's lock is a Timelock, not {type(self.lock).__name__}", field="lock")


def place(primary: "Sequence[Cosigner]", wanted: "Iterable[Recovery]") -> "tuple[tuple[Cosigner, ...], tuple[RecoveryPath, ...]]":
    """(every cosigner: primary first, then recovery-only ones; RecoveryPaths by position)."""
    everyone = list(primary)
    by_key = {c.public_key: i for i, c in enumerate(everyone)}
    paths = []
    for r in wanted:
        if not isinstance(r, Recovery):
            raise PolicyError(f"recovery paths are Recovery(threshold, cosigners, lock) values, not "
                              f"{type(r).__name__}", field="recovery")
        keys = []
        for c in r.cosigners:
            rec = c if isinstance(c, Cosigner) else Cosigner.parse(c)
            pos = by_key.get(rec.public_key)
            if pos is None:
                pos = by_key[rec.public_key] = len(everyone)
                everyone.append(rec)
            keys.append(pos)
        paths.append(RecoveryPath(r.threshold, tuple(keys), r.lock))
    return tuple(everyone), tuple(paths)


# ---------------------------------------------------------------------------------- validation


def check_recovery(vault: "Vault") -> None:
    """The rules a vault with recovery paths follows (PolicyError naming the broken one)."""
    paths, n_all, n = vault.recovery, len(vault.cosigners), vault.n
    if vault.script not in (ScriptType.WSH, ScriptType.TR):
        raise PolicyError(f"recovery paths need a miniscript vault: script wsh or tr, not {vault.script}",
                          field="script")
    if len(paths) > MAX_RECOVERY_PATHS:
        raise PolicyError(f"a vault has at most {MAX_RECOVERY_PATHS} recovery paths, not {len(paths)}",
                          field="recovery")
    used = set(range(n))
    for p in paths:
        if not isinstance(p, RecoveryPath):
            raise PolicyError("recovery paths must be RecoveryPath values", field="recovery")
        if any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n_all for k in p.keys):
            raise PolicyError("a recovery path names a cosigner position the vault does not have", field="recovery")
        if p.threshold > len(p.keys):
            raise PolicyError("a recovery path needs no more signatures than it has keys", field="recovery")
        used.update(p.keys)
    if used != set(range(n_all)):
        raise PolicyError("every cosigner after the primary ones must be a key of some recovery path",
                          field="cosigners")
    seen = set()
    for p in paths:
        shape = (p.threshold, frozenset(p.keys), p.lock)
        if shape in seen:
            raise PolicyError(f"two recovery paths are the same ({p.describe(vault)}): remove one", field="recovery")
        seen.add(shape)
        if p.threshold >= vault.m and set(p.keys) <= set(range(n)):
            raise PolicyError(f"the recovery path {p.describe(vault)} needs at least what the primary path needs "
                              "from the same keys: it could never help; lower its threshold or give it other keys",
                              field="recovery")
    if vault.script is ScriptType.WSH:
        if vault.sorted:
            raise PolicyError("miniscript has no sortedmulti: a wsh vault with recovery paths lists its keys in "
                              "the order given (sorted=False)", field="sorted")
        owners: "dict[int, str]" = {i: "the primary path" for i in range(n)}
        for j, p in enumerate(paths, 1):
            for k in p.keys:
                if k in owners:
                    raise PolicyError(
                        f"in wsh every key appears once in the script, but cosigner {vault.cosigners[k].fingerprint.hex()} "
                        f"is in {owners[k]} and in recovery path {j}: give recovery path {j} other keys (or "
                        "another account of that seed), or use tr, where each path is its own leaf",
                        field="recovery")
                owners[k] = f"recovery path {j}"
            if len(p.keys) > 20:
                raise PolicyError(f"recovery path {j} has {len(p.keys)} keys; multi() in wsh takes at most 20",
                                  field="recovery")
    for ms in templates(vault):
        problem = ms.insanity(lambda k: k)
        if problem is not None:
            raise PolicyError(f"the vault's miniscript is refused ({problem[0]}): simplify the recovery paths, "
                              "or move the vault to tr", field="recovery")


# ---------------------------------------------------------------------------------- templates


def _lock_node(lock: Timelock, ctx: Context) -> Miniscript:
    return Miniscript(Fragment.OLDER if lock.is_relative else Fragment.AFTER, ctx, lock.value)


def recovery_node(p: RecoveryPath, ctx: Context) -> Miniscript:
    """``and_v(v:multi(k,KEYS),older(N))`` (``multi_a`` in tapscript) with positions as keys."""
    multi = Miniscript(Fragment.MULTI_A if ctx is Context.TAPSCRIPT else Fragment.MULTI, ctx, p.threshold, p.keys)
    return Miniscript(Fragment.AND_V, ctx, subs=(Miniscript(Fragment.WRAP_V, ctx, subs=(multi,)), _lock_node(p.lock, ctx)))


def templates(vault: "Vault") -> "tuple[Miniscript, ...]":
    """The vault's miniscripts with cosigner positions as keys: the wsh script, or the tr
    recovery leaves (the primary tr leaf is a plain multi_a)."""
    cache: "tuple[Miniscript, ...] | None" = vault.__dict__.get("_templates")
    if cache is not None:
        return cache
    if vault.script is ScriptType.WSH:
        ctx = Context.P2WSH
        rest = [recovery_node(p, ctx) for p in vault.recovery]
        tail = rest[-1]
        for node in reversed(rest[:-1]):
            tail = Miniscript(Fragment.OR_I, ctx, subs=(node, tail))
        primary = Miniscript(Fragment.MULTI, ctx, vault.m, tuple(range(vault.n)))
        out: "tuple[Miniscript, ...]" = (Miniscript(Fragment.OR_D, ctx, subs=(primary, tail)),)
    else:
        out = tuple(recovery_node(p, Context.TAPSCRIPT) for p in vault.recovery)
    vault.__dict__["_templates"] = out
    return out


def descriptor_body(vault: "Vault", suffix: str) -> str:
    """The descriptor without checksum; keys are ``[fp/path]xpub`` + ``suffix``."""
    def key(pos: Any) -> str:
        return f"{vault.cosigners[pos]}{suffix}"

    if vault.script is ScriptType.WSH:
        return f"wsh({templates(vault)[0].to_string(key)})"
    from .vault import NUMS_H

    keys = ",".join(key(i) for i in range(vault.n))
    leaves = [f"{'sortedmulti_a' if vault.sorted else 'multi_a'}({vault.m},{keys})"]
    leaves += [ms.to_string(key) for ms in templates(vault)]
    return f"tr({NUMS_H.hex()},{tree_text(leaves)})"


def tree_text(leaves: "list[str]") -> str:
    """``{L0,{L1,{L2,L3}}}``: the first leaf at depth 1, the rest nested to the right."""
    text = leaves[-1]
    for leaf in reversed(leaves[:-1]):
        text = "{" + leaf + "," + text + "}"
    return text


def policy_text(vault: "Vault") -> str:
    """What the recovery part adds to the vault's policy id (cosigners by origin and xpub)."""
    def key(i: int) -> str:
        c = vault.cosigners[i]
        return c.origin() + c.xpub

    parts = [f"{p.threshold}|{p.lock.kind.value}|{p.lock.value}|" + ",".join(key(i) for i in p.keys)
             for p in vault.recovery]
    return "|recovery|" + ";".join(parts)


# ---------------------------------------------------------------------------------- reading


def from_descriptor_node(node: Any, network: Any, accept: Any) -> "Vault":
    """The recovery vault a parsed descriptor describes, or InvalidDescriptor saying why not.

    The shape is read from the tree, the vault is built, and its own descriptor must render to
    exactly the text parsed: anything msigvault would not have written is refused."""
    from .descriptors import Descriptor, Multi, TapBranch, Tr, Wsh
    from .vault import NUMS_H, Vault, _deviation_set, _resolve_network

    keys: "list[Any]" = []

    def position(k: Any) -> int:
        for i, old in enumerate(keys):
            if old == k:
                return i
        keys.append(k)
        return len(keys) - 1

    def read_recovery(ms: Any, frag: Fragment) -> "Optional[tuple[int, tuple[int, ...], Timelock]]":
        if not (isinstance(ms, Miniscript) and ms.fragment is Fragment.AND_V
                and ms.subs[0].fragment is Fragment.WRAP_V and ms.subs[0].subs[0].fragment is frag
                and ms.subs[1].fragment in (Fragment.OLDER, Fragment.AFTER)):
            return None
        multi, lock = ms.subs[0].subs[0], ms.subs[1]
        kind = LockKind.OLDER if lock.fragment is Fragment.OLDER else LockKind.AFTER
        try:
            t = Timelock(kind, lock.k)
        except PolicyError as e:
            raise InvalidDescriptor(f"a recovery lock is out of range: {e}") from None
        return multi.k, tuple(position(k) for k in multi.keys), t

    found: "list[tuple[int, tuple[int, ...], Timelock]]" = []
    shape_error = InvalidDescriptor(
        "this descriptor is not a vault shape msigvault builds: a primary multi() or multi_a() path and "
        "recovery paths and_v(v:multi(k,...),older(N)|after(N)) (see docs/recovery.md)")
    if isinstance(node, Wsh) and isinstance(node.inner, Miniscript):
        ms = node.inner
        if ms.fragment is not Fragment.OR_D or ms.subs[0].fragment is not Fragment.MULTI:
            raise shape_error
        m, primary, is_sorted, script = ms.subs[0].k, [position(k) for k in ms.subs[0].keys], False, "wsh"
        tail = ms.subs[1]
        while tail.fragment is Fragment.OR_I:
            got = read_recovery(tail.subs[0], Fragment.MULTI)
            if got is None:
                raise shape_error
            found.append(got)
            tail = tail.subs[1]
        got = read_recovery(tail, Fragment.MULTI)
        if got is None:
            raise shape_error
        found.append(got)
    elif isinstance(node, Tr) and isinstance(node.tree, TapBranch):
        if str(node.internal) != NUMS_H.hex():
            raise InvalidDescriptor(
                "this tr() descriptor has a spendable internal key: msigvault vaults use the BIP341 "
                f"unspendable key {NUMS_H.hex()} so coins move only through the script paths")
        leaves = [leaf for _, leaf in node.leaves()]
        first = leaves[0]
        if not isinstance(first, Multi) or not first.tapscript:
            raise shape_error
        m, primary, is_sorted, script = first.threshold, [position(k) for k in first.keys], first.sorted, "tr"
        for leaf in leaves[1:]:
            got = read_recovery(leaf, Fragment.MULTI_A)
            if got is None:
                raise shape_error
            found.append(got)
    else:
        raise shape_error
    if len(set(primary)) != len(primary) or primary != list(range(len(primary))):
        raise InvalidDescriptor("the primary path lists a key twice")
    cosigners = tuple(_cosigner(k, i) for i, k in enumerate(keys, 1))
    net = _resolve_network(network, cosigners)
    vault = Vault(m, cosigners, ScriptType(script), is_sorted, net, accept=_deviation_set(accept),
                  recovery=tuple(RecoveryPath(t, ks, lock) for t, ks, lock in found), primary_n=len(primary))
    branch = _branch_of(keys)
    if vault.descriptor(branch, checksum=False) != Descriptor(node).descriptor(checksum=False):
        raise shape_error
    return vault


def _branch_of(keys: "Sequence[Any]") -> "Optional[int]":
    paths = {k.paths for k in keys}
    if paths == {((0,), (1,))}:
        return None
    if paths == {((0,),)}:
        return 0
    if paths == {((1,),)}:
        return 1
    raise InvalidDescriptor("every key of a vault must end in /<0;1>/* (or all in /0/*, or all in /1/*)")


def _cosigner(k: Any, i: int) -> Cosigner:
    from ..errors import InvalidKey

    _branch_of([k])
    if k.wildcard != "*":
        raise InvalidDescriptor(f"key {i} must end in /* (unhardened wildcard): a vault needs ranged keys")
    try:
        return Cosigner.from_key_expression(k.key_expression())
    except InvalidKey as e:
        raise InvalidKey(f"key {i} of the descriptor: {e}") from None

