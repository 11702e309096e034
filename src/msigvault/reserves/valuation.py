"""Daily mark-to-market of the reserve: holdings per vault as of a block, valued in trading pairs.

The series keeps one record per day: the block (height, hash, time) the holdings are read at,
each vault's confirmed sats, and the close of every configured pair (or its absence). It lives in
the coordinator database when one is given (tables ``valuation_holdings`` and
``valuation_prices``) or in a JSON file written atomically. :func:`analyse` computes, per pair,
the value per vault and in total, daily market P&L and flows, cumulative P&L, drawdown from the
peak, the volatility of daily log returns, the share of the total reserves and the contingency
flags. Missing prices and missing days are reported; nothing is interpolated. Money is Decimal.
See docs/reserves.md for the formulas.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Protocol, Sequence

from ..policy.vault import Vault
from ..fileio import read_bounded
from ..types import MAX_MONEY, Utxo
from .prices import (
    Price,
    PriceFileError,
    PriceSource,
    ValuationError,
    check_pair,
    parse_close,
    parse_day,
)

SATS_PER_BTC = Decimal(100_000_000)
MONEY = Decimal("0.01")  # values and P&L in the report: quote units, 2 decimals
PERCENT = Decimal("0.0001")  # percentages in the report: 4 decimals
DAYS_PER_YEAR = 365  # bitcoin trades every day: volatility is annualised by sqrt(365)
PRECISION = 60  # decimal digits for the exact arithmetic (sats x close needs about 30)
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
MAX_SNAPSHOT_UTXOS = 1_000_000
MAX_SERIES_BYTES = 256 * 1024 * 1024
MAX_CONFIG_BYTES = 1024 * 1024
SERIES_KIND = "msigvault-valuation-series"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

__all__ = ["ValuationError", "SnapshotError", "SeriesError", "ConfigError", "VaultHoldings", "Holdings",
           "DayValuation", "Thresholds", "ValuationConfig", "FileSeries", "DatabaseSeries", "Analysis",
           "holdings_from_backend", "holdings_from_snapshot", "load_snapshot", "valuation_of", "analyse",
           "load_config", "open_series"]


class SnapshotError(ValuationError):
    """A UTXO snapshot is malformed, too large, or holds a coin that is not the vault's (``path``)."""

    code = "valuation.snapshot"


class SeriesError(ValuationError):
    """The valuation series cannot be read or written as asked (damaged file, a day recorded twice)."""

    code = "valuation.series"


class ConfigError(ValuationError):
    """The valuation config (pairs, thresholds, total reserves) is malformed (``field``)."""

    code = "valuation.config"


# -- holdings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VaultHoldings:
    """One vault's coins at the block: ``sats`` confirmed, in ``coins`` outputs."""

    name: str
    policy_id: str
    sats: int
    coins: int

    def to_dict(self) -> "dict[str, Any]":
        return {"name": self.name, "policy_id": self.policy_id, "sats": self.sats, "coins": self.coins}


@dataclass(frozen=True)
class Holdings:
    """Every vault's holdings as of block ``height`` (``block_hash``, ``block_time`` unix seconds);
    ``source`` says where they were read (a backend or a snapshot file)."""

    height: int
    block_hash: str
    block_time: Optional[int]
    source: str
    vaults: "tuple[VaultHoldings, ...]"

    @property
    def total_sats(self) -> int:
        return sum(v.sats for v in self.vaults)


def _check_vaults(vaults: Sequence["tuple[str, Vault]"]) -> None:
    if not vaults:
        raise ValuationError("give at least one vault to value")
    ids = [v.policy_id for _, v in vaults]
    if len(set(ids)) != len(ids):
        raise ValuationError("the same vault is given twice: each vault is counted once")


def holdings_from_backend(vaults: Sequence["tuple[str, Vault]"], backend: Any, *, min_conf: int = 1,
                          check_claims: bool = True) -> Holdings:
    """Scan each vault on ``backend`` (:func:`msigvault.backends.scan_vault`): coins with at least
    ``min_conf`` confirmations at the tip count. Every vault must be read at the same tip. With
    ``check_claims`` each coin's transaction is fetched and must pay the amount the server claims."""
    from ..backends.scan import scan_vault

    _check_vaults(vaults)
    if isinstance(min_conf, bool) or not isinstance(min_conf, int) or min_conf < 1:
        raise ValuationError(f"min_conf is a whole number of at least 1, not {min_conf!r}")
    rows, tips = [], set()
    for name, vault in vaults:
        r = scan_vault(vault, backend, fetch_prev_txs=check_claims)
        tips.add((r.tip.height, r.tip.hash, r.tip.time))
        coins = [u for u in r.utxos if u.confirmations >= min_conf]
        rows.append(VaultHoldings(name, vault.policy_id, sum(u.utxo.amount for u in coins), len(coins)))
    if len(tips) != 1:
        raise ValuationError("the chain tip moved while the vaults were scanned: run the valuation again")
    height, block_hash, block_time = tips.pop()
    return Holdings(height, block_hash, block_time, f"backend {getattr(backend, 'where', '')}".strip(), tuple(rows))


def load_snapshot(path: "str | Path") -> "tuple[list[Utxo], Optional[int], Optional[str], dict[str, int]]":
    """Read a UTXO snapshot: the list ``psbt create --utxos`` reads (as ``vault utxos -o`` or
    ``--json`` writes it), or ``{"height": H, "block_hash": ..., "utxos": [...]}``.

    Returns (UTXOs, height, block hash, {outpoint: confirmation height} where records give one)."""
    p = Path(path)
    raw = read_bounded(p, MAX_SNAPSHOT_BYTES, SnapshotError, "UTXO snapshot")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise SnapshotError(f"{p} is not JSON: give the file 'msigvault vault utxos -o' writes", path=p) from None
    height = block_hash = None
    if isinstance(data, dict):
        height, block_hash, data = data.get("height"), data.get("block_hash"), data.get("utxos")
        if isinstance(height, bool) or not isinstance(height, int) or height < 0:
            raise SnapshotError(f"{p}: 'height' must be a block height", path=p, field="height")
        if block_hash is not None and not (isinstance(block_hash, str) and _HEX64.fullmatch(block_hash)):
            raise SnapshotError(f"{p}: 'block_hash' must be 64 hex digits", path=p, field="block_hash")
    if not isinstance(data, list):
        raise SnapshotError(f"{p} must hold a list of UTXO records (or {{'height', 'utxos'}})", path=p)
    if len(data) > MAX_SNAPSHOT_UTXOS:
        raise SnapshotError(f"{p} holds more than {MAX_SNAPSHOT_UTXOS} UTXOs", path=p, limit=MAX_SNAPSHOT_UTXOS)
    utxos, heights = [], {}
    for i, record in enumerate(data):
        try:
            u = Utxo.from_dict(record)
        except ValuationError:
            raise
        except Exception as e:  # noqa: BLE001 - any malformed record (MsigvaultError from the parser)
            raise SnapshotError(f"{p}: UTXO record {i + 1}: {e}", path=p) from None
        h = record.get("height") if isinstance(record, dict) else None
        if h is not None:
            if isinstance(h, bool) or not isinstance(h, int) or h < 0:
                raise SnapshotError(f"{p}: UTXO record {i + 1} has a malformed height", path=p, field="height")
            heights[u.outpoint] = h
        utxos.append(u)
    return utxos, height, block_hash, heights


def holdings_from_snapshot(vaults: Sequence["tuple[str, Vault]"], snapshots: Sequence["str | Path"], *,
                           height: Optional[int] = None, block_hash: Optional[str] = None,
                           block_time: Optional[int] = None) -> Holdings:
    """Holdings from one snapshot file per vault (same order), as of block ``height`` (given here
    or in the files). Every coin must rebuild as the vault's script at its branch and index; coins
    a record says confirmed above ``height`` are not counted; an outpoint counted twice is an error."""
    _check_vaults(vaults)
    if len(snapshots) != len(vaults):
        raise SnapshotError(f"give one UTXO snapshot per vault ({len(vaults)} vault(s), {len(snapshots)} file(s))")
    rows, seen = [], set()
    heights_given, hashes_given = set(), set()
    for (name, vault), path in zip(vaults, snapshots):
        utxos, h, bh, confirmed_at = load_snapshot(path)
        if h is not None:
            heights_given.add(h)
        if bh is not None:
            hashes_given.add(bh.lower())
        counted = []
        for u in utxos:
            _check_owned(vault, u, path)
            if u.outpoint in seen:
                raise SnapshotError(f"{u.outpoint} is in two snapshots: a coin is counted once", path=path)
            seen.add(u.outpoint)
            counted.append(u)
        rows.append((name, vault, counted, confirmed_at))
    if height is not None:
        heights_given.add(height)
    if block_hash is not None:
        hashes_given.add(block_hash.lower())
    if len(heights_given) != 1:
        raise SnapshotError("say which block the snapshot is of: give its height (--height), or snapshots "
                            "that name one height" if not heights_given else
                            f"the snapshots are of different blocks ({sorted(heights_given)})")
    if len(hashes_given) > 1:
        raise SnapshotError("the snapshots name different block hashes")
    at = heights_given.pop()
    out = []
    for name, vault, counted, confirmed_at in rows:
        live = [u for u in counted if confirmed_at.get(u.outpoint, at) <= at]
        out.append(VaultHoldings(name, vault.policy_id, sum(u.amount for u in live), len(live)))
    sources = ", ".join(str(Path(s).name) for s in snapshots)
    return Holdings(at, hashes_given.pop() if hashes_given else "", block_time, f"snapshot {sources}", tuple(out))


def _check_owned(vault: Vault, u: Utxo, path: "str | Path") -> None:
    if u.branch is None or u.index is None:
        raise SnapshotError(f"{u.outpoint} does not say where in the vault it is (branch, index): use the "
                            "file 'msigvault vault utxos -o' writes", path=path)
    if vault.derive_branch(u.branch, u.index).script_pubkey != u.script_pubkey:
        raise SnapshotError(f"{u.outpoint} is not the vault's coin: its script is not the vault's at branch "
                            f"{u.branch} index {u.index}; do not count it", path=path)


# -- one day's valuation ------------------------------------------------------------------------


@dataclass(frozen=True)
class DayValuation:
    """What is recorded for one day: the holdings and the close of each pair (None: missing)."""

    day: _dt.date
    holdings: Holdings
    prices: "tuple[tuple[str, Optional[Price]], ...]"
    recorded_at: str = ""

    def price(self, pair: str) -> Optional[Price]:
        return dict(self.prices).get(pair)

    @property
    def pairs(self) -> "tuple[str, ...]":
        return tuple(p for p, _ in self.prices)

    def to_dict(self) -> "dict[str, Any]":
        h = self.holdings
        return {"date": self.day.isoformat(), "height": h.height, "block_hash": h.block_hash,
                "block_time": h.block_time, "holdings_source": h.source, "recorded_at": self.recorded_at,
                "vaults": [v.to_dict() for v in h.vaults],
                "prices": {pair: (p.to_dict() if p is not None else None) for pair, p in self.prices}}

    @classmethod
    def from_dict(cls, obj: object) -> "DayValuation":
        if not isinstance(obj, dict):
            raise SeriesError("a day of the valuation series is a JSON object")
        try:
            day = parse_day(obj["date"])
            vaults = tuple(VaultHoldings(str(v["name"]), str(v["policy_id"]), _sats(v["sats"]), _count(v["coins"]))
                           for v in obj["vaults"])
            prices = []
            for pair, p in dict(obj["prices"]).items():
                price = Price.from_dict(p) if p is not None else None
                if price is not None and (price.pair != check_pair(pair) or price.day != day):
                    raise ValueError(f"the close under {pair} is of {price.pair} on {price.day}")
                prices.append((check_pair(pair), price))
            h = Holdings(_count(obj["height"]), str(obj["block_hash"]),
                         None if obj.get("block_time") is None else _count(obj["block_time"]),
                         str(obj["holdings_source"]), vaults)
        except (KeyError, TypeError, ValueError, PriceFileError) as e:
            raise SeriesError(f"a day of the valuation series is damaged ({e})") from None
        return cls(day, h, tuple(prices), str(obj.get("recorded_at", "")))


def _sats(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_MONEY:
        raise ValueError(f"{v!r} is not an amount of sats")
    return v


def _count(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{v!r} is not a whole number")
    return v


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def valuation_of(day: "_dt.date | str", holdings: Holdings, source: PriceSource, pairs: Sequence[str]) -> DayValuation:
    """The day's record: ``holdings`` and the close of each of ``pairs`` from ``source`` (a missing
    close is kept as None and reported, not replaced)."""
    d = parse_day(day)
    names = list(dict.fromkeys(check_pair(p) for p in pairs))
    if not names:
        raise ConfigError("give at least one trading pair (BTC/USD, ...)", field="pairs")
    return DayValuation(d, holdings, tuple((p, source.price(p, d)) for p in names), _now())


# -- where the series is kept -------------------------------------------------------------------


class SeriesStore(Protocol):
    where: str

    def days(self) -> "list[DayValuation]":
        """Every recorded day, oldest first."""
        ...  # pragma: no cover

    def record(self, valuation: DayValuation, *, replace: bool = False) -> None:
        """Add a day (refused if that day is recorded, unless ``replace``)."""
        ...  # pragma: no cover


class FileSeries:
    """The series as a JSON file (``{"kind": "msigvault-valuation-series", "version": 1, "days": [...]}``),
    rewritten atomically on every record."""

    def __init__(self, path: "str | Path"):
        self.path = Path(path)
        self.where = str(self.path)

    def days(self) -> "list[DayValuation]":
        if not self.path.exists():
            return []
        raw = read_bounded(self.path, MAX_SERIES_BYTES, SeriesError, "valuation series file")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise SeriesError(f"{self.path} is not a valuation series (not JSON): restore it from a backup",
                              path=self.path) from None
        if not isinstance(data, dict) or data.get("kind") != SERIES_KIND or data.get("version") != 1 \
                or not isinstance(data.get("days"), list):
            raise SeriesError(f"{self.path} is not a msigvault valuation series (version 1)", path=self.path)
        try:
            days = [DayValuation.from_dict(d) for d in data["days"]]
        except SeriesError as e:
            raise e.locate(path=self.path)
        if len({d.day for d in days}) != len(days):
            raise SeriesError(f"{self.path} records a day twice: restore it from a backup", path=self.path)
        return sorted(days, key=lambda d: d.day)

    def record(self, valuation: DayValuation, *, replace: bool = False) -> None:
        from ..fileio import write_atomic

        days = {d.day: d for d in self.days()}
        if valuation.day in days and not replace:
            raise SeriesError(f"{valuation.day} is already recorded in {self.path}: pass --replace to record "
                              "it again", path=self.path)
        days[valuation.day] = valuation
        body = {"kind": SERIES_KIND, "version": 1, "days": [days[d].to_dict() for d in sorted(days)]}
        write_atomic(self.path, (json.dumps(body, indent=1) + "\n").encode())


class DatabaseSeries:
    """The series in the coordinator database (revision 0003): one ``valuation_holdings`` row per
    day and vault, one ``valuation_prices`` row per day and pair (close NULL when missing)."""

    def __init__(self, db: Any):
        self.db = db
        from ..coordinator.db import redact

        self.where = f"coordinator database {redact(str(db.engine.url))}"

    def days(self) -> "list[DayValuation]":
        import sqlalchemy as sa

        from ..coordinator.db import valuation_holdings as H
        from ..coordinator.db import valuation_prices as P

        with self.db.read() as conn:
            hrows = conn.execute(sa.select(H).order_by(H.c.day, H.c.position)).mappings().all()
            prows = conn.execute(sa.select(P).order_by(P.c.day, P.c.position)).mappings().all()
        prices: "dict[str, list[tuple[str, Optional[Price]]]]" = {}
        try:
            for r in prows:
                p = None if r["close"] is None else Price(r["pair"], parse_day(r["day"]), parse_close(r["close"]),
                                                          r["source"], r["observed_at"])
                prices.setdefault(r["day"], []).append((r["pair"], p))
        except PriceFileError as e:
            raise SeriesError(f"a price in the database is damaged ({e})") from None
        by_day: "dict[str, list[Any]]" = {}
        for r in hrows:
            by_day.setdefault(r["day"], []).append(r)
        out = []
        for day, rows in sorted(by_day.items()):
            first = rows[0]
            h = Holdings(first["height"], first["block_hash"], first["block_time"], first["holdings_source"],
                         tuple(VaultHoldings(r["vault_name"], r["policy_id"], r["sats"], r["coins"]) for r in rows))
            out.append(DayValuation(parse_day(day), h, tuple(prices.get(day, [])), first["recorded_at"]))
        return out

    def record(self, valuation: DayValuation, *, replace: bool = False, coordinator: Any = None) -> None:
        """Store the day; with ``coordinator`` (a :class:`~msigvault.coordinator.sessions.Coordinator`
        on this database, with its key) also append a ``valuation.recorded`` audit entry in the
        same transaction: the rows and the entry are written together or not at all."""
        if coordinator is None:
            with self.db.write() as conn:
                self._write(conn, valuation, replace)
            return
        if coordinator.db.engine.url != self.db.engine.url:
            raise SeriesError("the coordinator given keeps another database than this series")
        coordinator.record_valuation({**valuation.to_dict(), "replaced": replace},
                                     write=lambda conn: self._write(conn, valuation, replace))

    def _write(self, conn: Any, valuation: DayValuation, replace: bool) -> None:
        import sqlalchemy as sa

        from ..coordinator.db import valuation_holdings as H
        from ..coordinator.db import valuation_prices as P

        day = valuation.day.isoformat()
        h = valuation.holdings
        exists = conn.execute(sa.select(H.c.day).where(H.c.day == day).limit(1)).first()
        if exists is not None:
            if not replace:
                raise SeriesError(f"{day} is already recorded in the coordinator database: pass --replace "
                                  "to record it again")
            conn.execute(sa.delete(H).where(H.c.day == day))
            conn.execute(sa.delete(P).where(P.c.day == day))
        conn.execute(sa.insert(H), [
            {"day": day, "policy_id": v.policy_id, "position": i, "vault_name": v.name, "sats": v.sats,
             "coins": v.coins, "height": h.height, "block_hash": h.block_hash, "block_time": h.block_time,
             "holdings_source": h.source, "recorded_at": valuation.recorded_at}
            for i, v in enumerate(h.vaults)])
        conn.execute(sa.insert(P), [
            {"day": day, "pair": pair, "position": i, "close": None if p is None else str(p.close),
             "source": None if p is None else p.source, "observed_at": None if p is None else p.timestamp}
            for i, (pair, p) in enumerate(valuation.prices)])


def open_series(*, db_url: Optional[str] = None, path: "str | Path | None" = None) -> "FileSeries | DatabaseSeries":
    """The series in the coordinator database ``db_url`` if given, else in the JSON file ``path``."""
    if db_url is not None:
        from ..coordinator.db import Database

        return DatabaseSeries(Database.open(db_url))
    if path is None:
        raise SeriesError("say where the series is kept: a coordinator database (--db) or a file (--series)")
    return FileSeries(path)


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """A contingency plan's limits for one pair: the total value below ``value_below``, a daily
    fall of more than ``daily_fall_pct`` %, a drawdown from the peak of more than ``drawdown_pct`` %."""

    value_below: Optional[Decimal] = None
    daily_fall_pct: Optional[Decimal] = None
    drawdown_pct: Optional[Decimal] = None


@dataclass(frozen=True)
class ValuationConfig:
    """Pairs to value, thresholds per pair, and the institution's total reserves per pair (for
    the share the bitcoin reserve is of them)."""

    pairs: "tuple[str, ...]" = ("BTC/USD", "BTC/EUR", "BTC/KZT")
    thresholds: "Mapping[str, Thresholds]" = field(default_factory=dict)
    total_reserves: "Mapping[str, Decimal]" = field(default_factory=dict)


def _decimal_field(value: object, name: str, *, percent: bool = False) -> Decimal:
    try:
        d = parse_close(value if not isinstance(value, (int, float)) or isinstance(value, bool) else str(value))
    except PriceFileError:
        raise ConfigError(f"{name} must be a positive decimal number (as a string, e.g. \"10.5\")",
                          field=name) from None
    if percent and d > 100:
        raise ConfigError(f"{name} is a percentage from 0 to 100, not {d}", field=name)
    return d


def parse_config(data: object) -> ValuationConfig:
    """A :class:`ValuationConfig` from its JSON shape (docs/reserves.md)."""
    if not isinstance(data, dict):
        raise ConfigError("the valuation config is a JSON object")
    unknown = set(data) - {"pairs", "thresholds", "total_reserves"}
    if unknown:
        raise ConfigError(f"the valuation config has unknown keys {sorted(unknown)}", field=sorted(unknown)[0])
    try:
        pairs = tuple(dict.fromkeys(check_pair(p) for p in data.get("pairs", ValuationConfig.pairs)))
    except (PriceFileError, TypeError):
        raise ConfigError("'pairs' is a list such as [\"BTC/USD\", \"BTC/EUR\"]", field="pairs") from None
    if not pairs:
        raise ConfigError("'pairs' names at least one pair", field="pairs")
    thresholds = {}
    for pair, t in dict(data.get("thresholds", {})).items():
        name = f"thresholds.{pair}"
        if not isinstance(t, dict) or set(t) - {"value_below", "daily_fall_pct", "drawdown_pct"}:
            raise ConfigError(f"{name} is an object with value_below, daily_fall_pct and/or drawdown_pct",
                              field=name)
        thresholds[_config_pair(pair, pairs, name)] = Thresholds(
            *(None if t.get(k) is None else _decimal_field(t[k], f"{name}.{k}", percent=k != "value_below")
              for k in ("value_below", "daily_fall_pct", "drawdown_pct")))
    totals = {_config_pair(pair, pairs, f"total_reserves.{pair}"): _decimal_field(v, f"total_reserves.{pair}")
              for pair, v in dict(data.get("total_reserves", {})).items()}
    return ValuationConfig(pairs, thresholds, totals)


def _config_pair(pair: object, pairs: Sequence[str], name: str) -> str:
    try:
        p = check_pair(pair)
    except PriceFileError:
        raise ConfigError(f"{name}: {str(pair)[:20]!r} is not a pair", field=name) from None
    if p not in pairs:
        raise ConfigError(f"{name}: {p} is not one of the configured pairs {list(pairs)}", field=name)
    return p


def load_config(path: "str | Path") -> ValuationConfig:
    p = Path(path)
    raw = read_bounded(p, MAX_CONFIG_BYTES, ConfigError, "valuation config")
    try:
        data = json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise ConfigError(f"{p} is not JSON", path=p) from None
    try:
        return parse_config(data)
    except ConfigError as e:
        raise e.locate(path=p)


# -- the computations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """A contingency threshold crossed: ``kind`` is value-below, daily-fall or drawdown."""

    day: _dt.date
    pair: str
    kind: str
    detail: str

    def to_dict(self) -> "dict[str, str]":
        return {"date": self.day.isoformat(), "pair": self.pair, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class PairDay:
    """One pair on one day (exact Decimals; :func:`money`/:func:`pct` round them for reports).

    ``pnl`` is the market P&L since ``since`` (the previous day with a close): the previous
    holdings times the change of the close; ``flows`` the value of coins added or removed (at
    today's close); ``change`` = ``pnl`` + ``flows``. ``return_pct`` is the close's change since
    ``since``. All are None on the first valued day or when today's close is missing."""

    pair: str
    price: Optional[Price]
    vault_values: "tuple[Optional[Decimal], ...]"
    value: Optional[Decimal]
    since: Optional[_dt.date]
    change: Optional[Decimal]
    pnl: Optional[Decimal]
    flows: Optional[Decimal]
    cumulative_pnl: Optional[Decimal]
    return_pct: Optional[Decimal]
    peak: Optional[Decimal]
    drawdown_pct: Optional[Decimal]
    share_of_total_pct: Optional[Decimal]
    flags: "tuple[Flag, ...]"


@dataclass(frozen=True)
class DayAnalysis:
    valuation: DayValuation
    vault_share_pct: "tuple[Optional[Decimal], ...]"  # each vault's share of the day's sats
    pairs: "tuple[PairDay, ...]"

    def pair(self, name: str) -> PairDay:
        return next(p for p in self.pairs if p.pair == name)


@dataclass(frozen=True)
class PairSummary:
    pair: str
    first_day: Optional[_dt.date]
    last_day: Optional[_dt.date]
    last_value: Optional[Decimal]
    cumulative_pnl: Optional[Decimal]
    max_drawdown_pct: Optional[Decimal]
    daily_log_returns: int
    volatility_daily_pct: Optional[Decimal]
    volatility_annual_pct: Optional[Decimal]


@dataclass(frozen=True)
class Analysis:
    config: ValuationConfig
    days: "tuple[DayAnalysis, ...]"
    summaries: "tuple[PairSummary, ...]"
    missing_days: "tuple[_dt.date, ...]"
    missing_prices: "tuple[tuple[_dt.date, str], ...]"

    @property
    def flags(self) -> "list[Flag]":
        return [f for d in self.days for p in d.pairs for f in p.flags]


def money(x: Optional[Decimal]) -> Optional[str]:
    """A value rounded half-even to 0.01, as text (None stays None)."""
    return None if x is None else str(x.quantize(MONEY, rounding=ROUND_HALF_EVEN))


def pct(x: Optional[Decimal]) -> Optional[str]:
    """A percentage rounded half-even to 4 decimals, as text."""
    return None if x is None else str(x.quantize(PERCENT, rounding=ROUND_HALF_EVEN))


def analyse(days: Iterable[DayValuation], config: Optional[ValuationConfig] = None) -> Analysis:
    """Values, P&L, drawdown, volatility, shares and flags for the recorded ``days``."""
    ordered = sorted(days, key=lambda d: d.day)
    if len({d.day for d in ordered}) != len(ordered):
        raise SeriesError("the series records a day twice")
    if config is None:
        config = ValuationConfig(tuple(dict.fromkeys(p for d in ordered for p in d.pairs)) or ValuationConfig.pairs)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        per_pair = {pair: _pair_series(ordered, pair, config) for pair in config.pairs}
        out = []
        for i, d in enumerate(ordered):
            total = d.holdings.total_sats
            shares = tuple((Decimal(v.sats) * 100 / total) if total else None for v in d.holdings.vaults)
            out.append(DayAnalysis(d, shares, tuple(per_pair[p][0][i] for p in config.pairs)))
        summaries = tuple(per_pair[p][1] for p in config.pairs)
    recorded = {d.day for d in ordered}
    missing_days: "list[_dt.date]" = []
    if ordered:
        day = ordered[0].day
        while day < ordered[-1].day:
            if day not in recorded:
                missing_days.append(day)
            day += _dt.timedelta(days=1)
    missing_prices = tuple((d.day, p) for d in ordered for p in config.pairs if d.price(p) is None)
    return Analysis(config, tuple(out), summaries, tuple(missing_days), missing_prices)


def _value(sats: int, close: Decimal) -> Decimal:
    return Decimal(sats) * close / SATS_PER_BTC


def _pair_series(days: "list[DayValuation]", pair: str,
                 config: ValuationConfig) -> "tuple[list[PairDay], PairSummary]":
    limits = config.thresholds.get(pair, Thresholds())
    total_reserves = config.total_reserves.get(pair)
    rows: "list[PairDay]" = []
    prev: "Optional[tuple[DayValuation, Price]]" = None
    peak: Optional[Decimal] = None
    cumulative: Optional[Decimal] = None
    max_dd: Optional[Decimal] = None
    log_returns: "list[Decimal]" = []
    first = last = None
    last_value = None
    for d in days:
        p = d.price(pair)
        if p is None:
            rows.append(PairDay(pair, None, tuple(None for _ in d.holdings.vaults), None, None, None, None, None,
                                cumulative, None, peak, None, None, ()))
            continue
        values = tuple(_value(v.sats, p.close) for v in d.holdings.vaults)
        value = sum(values, Decimal(0))
        since = change = pnl = flows = ret = None
        if prev is not None:
            pd, pp = prev
            since = pd.day
            prev_sats = pd.holdings.total_sats
            pnl = _value(prev_sats, p.close - pp.close)
            flows = _value(d.holdings.total_sats - prev_sats, p.close)
            change = value - _value(prev_sats, pp.close)
            ret = (p.close / pp.close - 1) * 100
            cumulative = (cumulative or Decimal(0)) + pnl
            if since == d.day - _dt.timedelta(days=1):
                log_returns.append((p.close / pp.close).ln())
        else:
            cumulative = Decimal(0)
        peak = value if peak is None or value > peak else peak
        dd = (peak - value) * 100 / peak if peak else Decimal(0)
        max_dd = dd if max_dd is None or dd > max_dd else max_dd
        share = value * 100 / total_reserves if total_reserves else None
        flags = _flags(d.day, pair, limits, value, ret, dd, since)
        rows.append(PairDay(pair, p, values, value, since, change, pnl, flows, cumulative, ret, peak, dd, share,
                            flags))
        prev = (d, p)
        first = first or d.day
        last, last_value = d.day, value
    vol_daily = _sample_std(log_returns)
    vol_annual = vol_daily * Decimal(DAYS_PER_YEAR).sqrt() if vol_daily is not None else None
    summary = PairSummary(pair, first, last, last_value, cumulative, max_dd, len(log_returns),
                          vol_daily * 100 if vol_daily is not None else None,
                          vol_annual * 100 if vol_annual is not None else None)
    return rows, summary


def _sample_std(xs: "list[Decimal]") -> Optional[Decimal]:
    """Sample standard deviation (n - 1 in the denominator); None for fewer than two values."""
    if len(xs) < 2:
        return None
    mean = sum(xs, Decimal(0)) / len(xs)
    return (sum(((x - mean) ** 2 for x in xs), Decimal(0)) / (len(xs) - 1)).sqrt()


def _flags(day: _dt.date, pair: str, t: Thresholds, value: Decimal, ret: Optional[Decimal], dd: Decimal,
           since: Optional[_dt.date]) -> "tuple[Flag, ...]":
    out = []
    if t.value_below is not None and value < t.value_below:
        out.append(Flag(day, pair, "value-below", f"value {money(value)} is below {t.value_below}"))
    if t.daily_fall_pct is not None and ret is not None and -ret > t.daily_fall_pct:
        out.append(Flag(day, pair, "daily-fall", f"fell {pct(-ret)} % since {since}, more than {t.daily_fall_pct} %"))
    if t.drawdown_pct is not None and dd > t.drawdown_pct:
        out.append(Flag(day, pair, "drawdown", f"drawdown {pct(dd)} % from the peak, more than {t.drawdown_pct} %"))
    return tuple(out)
