"""The valuation series (msigvault.reserves.valuation) in the coordinator database: on SQLite and
PostgreSQL, and the schema revision 0003 that holds it (upgrade creates, downgrade drops)."""

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from msigvault.coordinator import db as D
from msigvault.reserves import prices as P
from msigvault.reserves import valuation as V


def _day(i, sats, close):
    d = dt.date(2026, 11, 1) + dt.timedelta(days=i)
    src = P.FilePriceSource([] if close is None else [P.make_price("BTC/USD", d, close, "desk")])
    h = V.Holdings(300 + i, f"{i:064x}", 1_790_000_000 + i * 86400, "test",
                   (V.VaultHoldings("a", "a" * 64, sats, 3), V.VaultHoldings("b", "b" * 64, 2 * sats, 1)))
    return V.valuation_of(d, h, src, ["BTC/USD", "BTC/KZT"])


def test_the_series_round_trips_on_both_databases(db_url):
    store = V.DatabaseSeries(D.Database.open(db_url))
    days = [_day(0, 10**8, "95000.123456789012"), _day(1, 21 * 10**14 // 3, None)]
    for d in days:
        store.record(d)
    assert store.days() == days
    assert days[0].price("BTC/USD").close == Decimal("95000.123456789012")
    with pytest.raises(V.SeriesError):
        store.record(days[1])
    store.record(_day(1, 5, "1"), replace=True)
    assert [d.holdings.total_sats for d in store.days()] == [3 * 10**8, 15]


def test_revision_0003_creates_and_drops_the_valuation_tables(tmp_path):
    db = D.Database.open(f"sqlite:///{tmp_path / 'c.sqlite'}", migrate=False)
    D.upgrade(db, "0002")
    names = set(sa.inspect(db.engine).get_table_names())
    assert "valuation_holdings" not in names
    D.upgrade(db, "0003")
    names = set(sa.inspect(db.engine).get_table_names())
    assert {"valuation_holdings", "valuation_prices"} <= names
    cols = {c["name"] for c in sa.inspect(db.engine).get_columns("valuation_holdings")}
    assert cols == {c.name for c in D.valuation_holdings.columns}  # the migration and db.py agree
    cols = {c["name"] for c in sa.inspect(db.engine).get_columns("valuation_prices")}
    assert cols == {c.name for c in D.valuation_prices.columns}
    D.downgrade(db, "0002")
    assert not {"valuation_holdings", "valuation_prices"} & set(sa.inspect(db.engine).get_table_names())
