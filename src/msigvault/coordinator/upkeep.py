"""Upkeep of a vault with recovery paths: when each coin's recovery paths open (docs/recovery.md).

A recovery path is a time bomb by design: once its lock has passed, the recovery keys can move
the coin without the primary keyholders. A relative lock (``older``) restarts when the coin
moves, so the coordinator must refresh coins (a primary-path spend back to the vault) before
their locks pass; an absolute lock (``after``) opens for every coin at once, and only a
migration to a new vault pushes it back. :func:`upkeep` lists every coin with the height (or
time) its recovery paths open and flags those within a margin of the tip.

Pure and offline: it takes the coins (a backend's scan, a regtest chain, a UTXO snapshot with
confirmation heights) and the tip; nothing here opens a socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ..errors import PolicyError
from ..policy.recovery import SEQUENCE_MASK, Timelock
from ..policy.vault import Vault

#: default warning margin: four weeks of blocks (144 a day)
DEFAULT_MARGIN_BLOCKS = 4 * 7 * 144
#: seconds per block assumed to turn a block margin into a time margin (time locks)
SECONDS_PER_BLOCK = 600
MAX_MARGIN_BLOCKS = 10 * 52_560
MAX_COINS = 1_000_000


@dataclass(frozen=True)
class Coin:
    """A vault coin as upkeep needs it: ``height`` None while unconfirmed. ``median_time`` is the
    median time past of the block before the coin's block (BIP68's start for relative time locks),
    when known."""

    txid: str
    vout: int
    amount: int
    height: Optional[int] = None
    median_time: Optional[int] = None

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


@dataclass(frozen=True)
class PathOpening:
    """When one recovery path opens for one coin.

    ``height``: the first block that can include the recovery spend (locks in blocks); ``time``:
    the median time past the chain must pass (time locks). ``left`` counts blocks (or seconds)
    until then from the next block, 0 once open; None while the coin is unconfirmed (a relative
    lock starts at confirmation). ``estimated``: a relative time lock whose start was estimated
    from the coin's confirmations."""

    path: str
    lock: Timelock
    height: Optional[int]
    time: Optional[int]
    left: Optional[int]
    is_open: bool
    warn: bool
    estimated: bool = False

    def describe(self) -> str:
        if self.left is None:
            return f"{self.path} ({self.lock.describe()}): starts when the coin confirms"
        when = f"block {self.height:,}" if self.height is not None else f"unix time {self.time:,}"
        unit = "block(s)" if self.height is not None else "second(s)"
        state = "OPEN NOW" if self.is_open else f"in {self.left:,} {unit}"
        return f"{self.path} opens at {when}, {state}{' (estimated)' if self.estimated else ''}"

    def to_dict(self) -> "dict[str, Any]":
        return {"path": self.path, "lock": self.lock.to_dict(), "height": self.height, "time": self.time,
                "left": self.left, "open": self.is_open, "warn": self.warn, "estimated": self.estimated}


@dataclass(frozen=True)
class CoinUpkeep:
    """One coin and its recovery paths' openings (earliest first)."""

    coin: Coin
    openings: "tuple[PathOpening, ...]"

    @property
    def warn(self) -> bool:
        return any(o.warn for o in self.openings)

    def to_dict(self) -> "dict[str, Any]":
        c = self.coin
        return {"txid": c.txid, "vout": c.vout, "amount": c.amount, "height": c.height, "warn": self.warn,
                "paths": [o.to_dict() for o in self.openings]}


@dataclass(frozen=True)
class UpkeepReport:
    """:func:`upkeep`'s answer: every coin, and those within the margin (``warnings``)."""

    tip_height: int
    tip_time: int
    margin_blocks: int
    coins: "tuple[CoinUpkeep, ...]"

    @property
    def warnings(self) -> "tuple[CoinUpkeep, ...]":
        return tuple(c for c in self.coins if c.warn)

    def to_dict(self) -> "dict[str, Any]":
        return {"tip_height": self.tip_height, "tip_time": self.tip_time, "margin_blocks": self.margin_blocks,
                "coins": [c.to_dict() for c in self.coins], "warnings": len(self.warnings)}

    def text(self) -> str:
        lines = [f"tip: block {self.tip_height:,} (median time {self.tip_time:,}); warning margin "
                 f"{self.margin_blocks:,} blocks"]
        for c in self.coins:
            mark = "WARNING " if c.warn else ""
            lines.append(f"{mark}{c.coin.outpoint} {c.coin.amount:,} sats, "
                         + (f"confirmed at {c.coin.height:,}" if c.coin.height is not None else "unconfirmed"))
            lines.extend(f"  {o.describe()}" for o in c.openings)
        if self.warnings:
            lines.append(f"{len(self.warnings)} coin(s) within {self.margin_blocks:,} blocks of a recovery path "
                         "opening: refresh them with a primary-path spend back to the vault (relative locks), or "
                         "migrate to a new vault (absolute locks), before the recovery keys can move them")
        else:
            lines.append("no coin is within the margin of a recovery path opening")
        return "\n".join(lines)


def as_coin(obj: Any) -> Coin:
    """A :class:`Coin` from a Coin, a backend's ``ChainUtxo`` or a scan's ``VaultUtxo``."""
    if isinstance(obj, Coin):
        return obj
    utxo = getattr(obj, "utxo", None)  # backends.scan.VaultUtxo
    src = utxo if utxo is not None else obj
    try:
        return Coin(str(src.txid), int(src.vout), int(src.amount), getattr(obj, "height", None))
    except AttributeError:
        raise PolicyError(f"a coin for upkeep has txid, vout, amount and height, not {type(obj).__name__}",
                          field="coins") from None


def _check_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"{name} must be a whole number from {low:,} to {high:,}, not {value!r}", field=name)
    return value


def upkeep(vault: Vault, coins: Iterable[Any], *, tip_height: int, tip_time: int,
           margin_blocks: int = DEFAULT_MARGIN_BLOCKS) -> UpkeepReport:
    """Each coin of ``vault`` with the height/time its recovery paths open, earliest first, and a
    warning for those opening within ``margin_blocks`` of the tip (time locks: the margin at
    ``SECONDS_PER_BLOCK`` seconds a block). ``tip_time`` is the tip's median time past (what
    time locks are judged by). PolicyError for a vault without recovery paths."""
    if not isinstance(vault, Vault):
        raise PolicyError(f"upkeep needs a Vault, not {type(vault).__name__}", field="vault")
    if not vault.recovery:
        raise PolicyError("this vault has no recovery paths: its coins need no refreshing", field="vault")
    _check_int(tip_height, "tip_height", 0, 499_999_999)
    _check_int(tip_time, "tip_time", 0, 2**32 - 1)
    _check_int(margin_blocks, "margin_blocks", 0, MAX_MARGIN_BLOCKS)
    rows = []
    for n, obj in enumerate(coins):
        if n >= MAX_COINS:
            raise PolicyError(f"upkeep takes at most {MAX_COINS:,} coins at a time", field="coins")
        coin = as_coin(obj)
        if coin.height is not None:
            _check_int(coin.height, "height", 0, tip_height)
        openings = sorted((_opening(vault, i, coin, tip_height, tip_time, margin_blocks)
                           for i in range(len(vault.recovery))), key=_order)
        rows.append(CoinUpkeep(coin, tuple(openings)))
    rows.sort(key=lambda r: (_order(r.openings[0]), r.coin.outpoint))
    return UpkeepReport(tip_height, tip_time, margin_blocks, tuple(rows))


def _order(o: PathOpening) -> "tuple[int, int]":
    """Earliest first: by what is left (a time in seconds counted as blocks), unconfirmed last."""
    if o.left is None:
        return (1, 0)
    return (0, o.left if o.height is not None else o.left // SECONDS_PER_BLOCK)


def _opening(vault: Vault, i: int, coin: Coin, tip_height: int, tip_time: int, margin: int) -> PathOpening:
    lock = vault.recovery[i].lock
    name = f"recovery {i + 1}"
    next_height = tip_height + 1
    if lock.is_relative and coin.height is None:
        return PathOpening(name, lock, None, None, None, False, False)
    if not lock.is_time:
        opens = lock.value + 1 if not lock.is_relative else (coin.height or 0) + lock.value
        left = max(0, opens - next_height)
        return PathOpening(name, lock, opens, None, left, left == 0, left <= margin)
    estimated = False
    if lock.is_relative:
        assert coin.height is not None
        start = coin.median_time
        if start is None:  # estimated from the coin's confirmations
            start, estimated = tip_time - (tip_height - coin.height + 1) * SECONDS_PER_BLOCK, True
        opens = start + (lock.value & SEQUENCE_MASK) * 512
    else:
        opens = lock.value + 1  # nLockTime must be below the median time past
    left = max(0, opens - tip_time)
    return PathOpening(name, lock, None, opens, left, left == 0, left <= margin * SECONDS_PER_BLOCK, estimated)
