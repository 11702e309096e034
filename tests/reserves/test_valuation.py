"""Daily mark-to-market: prices (file, sample, HTTP on loopback), holdings from snapshots, the series
in a file and in the coordinator database, and the numbers, each checked by an independent
computation here (fractions and floats, not the module's Decimal code)."""

import datetime as dt
import http.server
import json
import math
import statistics
import threading
from decimal import Decimal
from fractions import Fraction

import pytest

from msigvault import Network, Vault
from msigvault.coordinator.db import Database
from msigvault.reserves import prices as P
from msigvault.reserves import valuation as V
from msigvault.testing.keyholders import TestKeyholder

D0 = dt.date(2026, 11, 1)
PID_A, PID_B = "a" * 64, "b" * 64


def day(i: int) -> dt.date:
    return D0 + dt.timedelta(days=i)


def cents(x: Fraction) -> str:
    """Round half-even to 0.01 with Python's own rounding of a Fraction (independent of Decimal)."""
    n = round(x * 100)
    sign = "-" if n < 0 else ""
    return f"{sign}{abs(n) // 100}.{abs(n) % 100:02d}"


def pct4(x: Fraction) -> str:
    n = round(x * 10_000)
    sign = "-" if n < 0 else ""
    return f"{sign}{abs(n) // 10_000}.{abs(n) % 10_000:04d}"


def make_days(closes, sats_a, sats_b, *, pair="BTC/USD", skip=()):
    """A series: day i has vaults A and B holding sats_a[i], sats_b[i]; closes[i] None = no close."""
    src = P.FilePriceSource([P.make_price(pair, day(i), c, "test closes") for i, c in enumerate(closes)
                             if c is not None])
    out = []
    for i in range(len(closes)):
        if i in skip:
            continue
        h = V.Holdings(100 + i, f"{i:064x}", None, "test",
                       (V.VaultHoldings("A", PID_A, sats_a[i], 1), V.VaultHoldings("B", PID_B, sats_b[i], 1)))
        out.append(V.valuation_of(day(i), h, src, [pair]))
    return out


# -- prices -------------------------------------------------------------------------------------


def test_the_shipped_sample_is_labelled_illustrative_and_complete():
    text = P.sample_path().read_text()
    assert "ILLUSTRATIVE" in text.splitlines()[0] and "NOT market data" in text.splitlines()[0]
    s = P.sample()
    pairs = {p.pair for p in s.prices}
    assert pairs == {"BTC/USD", "BTC/EUR", "BTC/KZT"}
    for pair in pairs:
        days = sorted(p.day for p in s.prices if p.pair == pair)
        assert days == [D0 + dt.timedelta(days=i) for i in range(30)]
    assert all("ILLUSTRATIVE" in p.source for p in s.prices)
    # the derivation the file states: EUR = USD x 0.86, KZT = USD x 505, half-even to 0.01
    for p in s.prices:
        if p.pair != "BTC/USD":
            usd = Fraction(s.price("BTC/USD", p.day).close)
            rate = Fraction(86, 100) if p.pair == "BTC/EUR" else Fraction(505)
            assert cents(usd * rate) == str(p.close)


def test_csv_and_json_price_files(tmp_path):
    csv_file = tmp_path / "p.csv"
    csv_file.write_text("# comment\npair,date,close,source\nbtc/usd,2026-11-01,90000.5,desk\n"
                        "BTC/EUR,2026-11-01,77000,desk\n")
    s = P.FilePriceSource.load(csv_file)
    p = s.price("BTC/USD", D0)
    assert p.close == Decimal("90000.5") and isinstance(p.close, Decimal)
    assert p.timestamp == "2026-11-01T23:59:59Z" and p.source == "desk"
    assert s.price("BTC/USD", day(1)) is None
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"prices": [{"pair": "BTC/KZT", "date": "2026-11-02", "close": "45000000.123",
                                          "source": "x", "timestamp": "2026-11-02T12:00:00Z"}]}))
    assert P.FilePriceSource.load(js).price("BTC/KZT", day(1)).close == Decimal("45000000.123")
    js.write_text('[{"pair": "BTC/USD", "date": "2026-11-02", "close": 0.1, "source": "x"}]')
    assert P.FilePriceSource.load(js).price("BTC/USD", day(1)).close == Decimal("0.1")  # not 0.1000000000000000055


@pytest.mark.parametrize("row, field", [
    ("BTC/USD,2026-11-01,-5,desk", "close"),
    ("BTC/USD,2026-11-01,1e5,desk", "close"),
    ("BTC/USD,2026-11-01,1.0000000000001,desk", "close"),
    ("BTC/USD,2026-11-01,nan,desk", "close"),
    ("BTC/USD,2026-13-01,5,desk", "date"),
    ("ETH/USD,2026-11-01,5,desk", "pair"),
    ("BTC/USD,2026-11-01,5,", "source"),
])
def test_malformed_price_rows_name_the_line_and_field(tmp_path, row, field):
    f = tmp_path / "p.csv"
    f.write_text("pair,date,close,source\nBTC/USD,2026-11-02,5,desk\n" + row + "\n")
    with pytest.raises(P.PriceFileError) as e:
        P.FilePriceSource.load(f)
    assert e.value.line == 3 and e.value.field == field and e.value.code == "valuation.price-file"


def test_two_closes_for_one_day_and_hostile_sizes_are_refused(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("pair,date,close,source\nBTC/USD,2026-11-01,5,a\nBTC/USD,2026-11-01,6,b\n")
    with pytest.raises(P.PriceFileError, match="two different closes"):
        P.FilePriceSource.load(f)
    big = tmp_path / "big.csv"
    with open(big, "wb") as fh:
        fh.truncate(P.MAX_PRICE_FILE_BYTES + 1)
    with pytest.raises(P.PriceFileError) as e:
        P.FilePriceSource.load(big)
    assert e.value.limit == P.MAX_PRICE_FILE_BYTES
    f.write_text("pair,date,source\n")
    with pytest.raises(P.PriceFileError, match="lacks close"):
        P.FilePriceSource.load(f)


# -- the HTTP adapter, against a real server on loopback ----------------------------------------


class _Api(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802
        _Api.seen.append(self.path)
        if self.path.startswith("/big"):
            body, status = b"[" + b"1," * (P.MAX_HTTP_BYTES // 2) + b"1]", 200
        elif self.path.startswith("/fail"):
            body, status = b"{}", 500
        elif "2026-11-09" in self.path:
            body, status = b'{"error": "no data"}', 404
        else:
            q = self.path.split("?", 1)[1]
            pair, date = q.split("&")[0].split("=")[1], q.split("&")[1].split("=")[1]
            body = json.dumps({"data": [{"pair": pair, "date": date,
                                         "close": {"usd": 91234.56, "eur": "78461.72"}}]}).encode()
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Api.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_price_source_reads_the_field_and_records_source_and_time(api):
    src = P.HttpPriceSource(api + "/close?pair={base}-{quote}&date={date}&key=SECRET",
                            "data.0.close.{quote_lower}", name="index")
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    p = src.price("BTC/USD", day(3))
    assert p.close == Decimal("91234.56") and isinstance(p.close, Decimal)
    assert _Api.seen[-1] == "/close?pair=BTC-USD&date=2026-11-04&key=SECRET"
    assert p.source.startswith("index " + api + "/close") and "SECRET" not in p.source
    observed = dt.datetime.fromisoformat(p.timestamp.replace("Z", "+00:00"))
    assert before <= observed <= dt.datetime.now(dt.timezone.utc)
    assert src.price("BTC/EUR", day(3)).close == Decimal("78461.72")
    assert src.price("BTC/USD", day(8)) is None  # HTTP 404: no close that day, reported as missing


def test_http_price_source_failures_are_price_source_errors(api):
    with pytest.raises(P.PriceSourceError, match="HTTP 500"):
        P.HttpPriceSource(api + "/fail?d={date}", "x").price("BTC/USD", D0)
    with pytest.raises(P.PriceSourceError, match="more than"):
        P.HttpPriceSource(api + "/big?d={date}", "0").price("BTC/USD", D0)
    with pytest.raises(P.PriceSourceError, match="no field"):
        P.HttpPriceSource(api + "/close?pair={pair}&date={date}", "data.0.nope").price("BTC/USD", D0)
    with pytest.raises(P.PriceSourceError, match="unknown or malformed field"):
        P.HttpPriceSource(api + "/close?{nonsense}", "x").price("BTC/USD", D0)
    server_gone = "http://127.0.0.1:9/close?d={date}"  # the discard port: nothing listens on loopback
    with pytest.raises(P.PriceSourceError, match="cannot reach"):
        P.HttpPriceSource(server_gone, "x", timeout=2).price("BTC/USD", D0)


# -- the numbers --------------------------------------------------------------------------------

CLOSES = ["100000", "98000", "99000.5", "90000", "91000"]
SATS_A = [100_000_000, 100_000_000, 150_000_000, 150_000_000, 140_000_000]
SATS_B = [50_000_000, 50_000_000, 50_000_000, 60_000_000, 60_000_000]


def test_values_pnl_drawdown_and_volatility_match_an_independent_computation():
    cfg = V.ValuationConfig(("BTC/USD",), total_reserves={"BTC/USD": Decimal("10000000")})
    a = V.analyse(make_days(CLOSES, SATS_A, SATS_B), cfg)
    c = [Fraction(x) for x in CLOSES]
    total = [a_ + b_ for a_, b_ in zip(SATS_A, SATS_B)]
    value = [Fraction(total[i]) * c[i] / 10**8 for i in range(5)]
    peak, cum = Fraction(0), Fraction(0)
    for i, d in enumerate(a.days):
        p = d.pair("BTC/USD")
        assert V.money(p.value) == cents(value[i])
        assert [V.money(x) for x in p.vault_values] == [cents(Fraction(SATS_A[i]) * c[i] / 10**8),
                                                        cents(Fraction(SATS_B[i]) * c[i] / 10**8)]
        assert [V.pct(s) for s in d.vault_share_pct] == [pct4(Fraction(SATS_A[i] * 100, total[i])),
                                                         pct4(Fraction(SATS_B[i] * 100, total[i]))]
        peak = max(peak, value[i])
        assert V.pct(p.drawdown_pct) == pct4((peak - value[i]) * 100 / peak)
        assert V.pct(p.share_of_total_pct) == pct4(value[i] * 100 / 10_000_000)
        if i == 0:
            assert p.pnl is None and p.return_pct is None and V.money(p.cumulative_pnl) == "0.00"
            continue
        pnl = Fraction(total[i - 1]) * (c[i] - c[i - 1]) / 10**8
        flows = Fraction(total[i] - total[i - 1]) * c[i] / 10**8
        cum += pnl
        assert V.money(p.pnl) == cents(pnl) and V.money(p.flows) == cents(flows)
        assert V.money(p.change) == cents(value[i] - value[i - 1]) == cents(pnl + flows)
        assert V.money(p.cumulative_pnl) == cents(cum)
        assert V.pct(p.return_pct) == pct4((c[i] / c[i - 1] - 1) * 100)
        assert p.since == day(i - 1)
    s = a.summaries[0]
    returns = [math.log(float(CLOSES[i]) / float(CLOSES[i - 1])) for i in range(1, 5)]
    assert s.daily_log_returns == 4
    assert float(s.volatility_daily_pct) == pytest.approx(statistics.stdev(returns) * 100, rel=1e-12)
    assert float(s.volatility_annual_pct) == pytest.approx(statistics.stdev(returns) * math.sqrt(365) * 100,
                                                           rel=1e-12)
    values = [float(v) for v in value]
    worst = max((max(values[:i + 1]) - values[i]) / max(values[:i + 1]) for i in range(5))
    assert float(s.max_drawdown_pct) == pytest.approx(worst * 100, rel=1e-12)
    assert V.money(s.last_value) == cents(value[-1]) and V.money(s.cumulative_pnl) == cents(cum)
    assert a.missing_days == () and a.missing_prices == () and a.flags == []


def test_missing_days_and_prices_are_reported_never_interpolated():
    closes = ["100000", None, "99000", "97000", "96000", "95000"]
    sats = [10**8] * 6
    a = V.analyse(make_days(closes, sats, sats, skip={4}))
    assert a.missing_days == (day(4),)
    assert a.missing_prices == ((day(1), "BTC/USD"),)
    by_day = {d.valuation.day: d.pair("BTC/USD") for d in a.days}
    assert by_day[day(1)].value is None and by_day[day(1)].pnl is None  # no close: no value at all
    # day 2 is compared with day 0, the last day with a close, and says so
    assert by_day[day(2)].since == day(0)
    assert V.money(by_day[day(2)].pnl) == cents(Fraction(2 * 10**8) * (99000 - 100000) / 10**8)
    assert by_day[day(5)].since == day(3)
    # only consecutive days give daily log returns: day 2->3 alone (0->2 and 3->5 span gaps)
    assert a.summaries[0].daily_log_returns == 1
    assert a.summaries[0].volatility_annual_pct is None  # one return has no sample deviation


def test_contingency_thresholds_are_flagged_per_day():
    cfg = V.ValuationConfig(("BTC/USD",), thresholds={"BTC/USD": V.Thresholds(
        value_below=Decimal("140000"), daily_fall_pct=Decimal("5"), drawdown_pct=Decimal("8"))})
    a = V.analyse(make_days(CLOSES, SATS_A, SATS_B), cfg)
    flags = {(f.day, f.kind) for f in a.flags}
    c = [Fraction(x) for x in CLOSES]
    total = [a_ + b_ for a_, b_ in zip(SATS_A, SATS_B)]
    value = [Fraction(total[i]) * c[i] / 10**8 for i in range(5)]
    want = set()
    peak = Fraction(0)
    for i in range(5):
        peak = max(peak, value[i])
        if value[i] < 140000:
            want.add((day(i), "value-below"))
        if i and (c[i - 1] - c[i]) * 100 / c[i - 1] > 5:
            want.add((day(i), "daily-fall"))
        if (peak - value[i]) * 100 / peak > 8:
            want.add((day(i), "drawdown"))
    assert flags == want and (day(3), "daily-fall") in flags and (day(1), "daily-fall") not in flags
    # a fall of exactly the threshold is not "over" it
    exact = V.analyse(make_days(["100", "95"], [10**8] * 2, [0] * 2), V.ValuationConfig(
        ("BTC/USD",), thresholds={"BTC/USD": V.Thresholds(daily_fall_pct=Decimal("5"))}))
    assert exact.flags == []


def test_the_config_file(tmp_path):
    f = tmp_path / "v.json"
    f.write_text(json.dumps({"pairs": ["BTC/USD", "BTC/KZT"], "total_reserves": {"BTC/USD": "2500000000"},
                             "thresholds": {"BTC/USD": {"value_below": "1000000", "daily_fall_pct": "10"}}}))
    cfg = V.load_config(f)
    assert cfg.pairs == ("BTC/USD", "BTC/KZT") and cfg.total_reserves["BTC/USD"] == Decimal(2_500_000_000)
    assert cfg.thresholds["BTC/USD"] == V.Thresholds(Decimal(1_000_000), Decimal(10), None)
    for bad, field in (({"pairs": ["BTC/USD"], "thresholds": {"BTC/EUR": {}}}, "thresholds.BTC/EUR"),
                       ({"thresholds": {"BTC/USD": {"drawdown_pct": "150"}}}, "thresholds.BTC/USD.drawdown_pct"),
                       ({"colour": "red"}, "colour")):
        f.write_text(json.dumps(bad))
        with pytest.raises(V.ConfigError) as e:
            V.load_config(f)
        assert e.value.field == field


# -- the series ---------------------------------------------------------------------------------


@pytest.fixture(params=["file", "database"])
def store(request, tmp_path):
    if request.param == "file":
        return V.FileSeries(tmp_path / "series.json")
    return V.DatabaseSeries(Database.open(f"sqlite:///{tmp_path / 'c.sqlite'}"))


def test_the_series_keeps_every_day_exactly(store):
    days = make_days(["100000", None, "99000.123456789012"], SATS_A, SATS_B)
    for d in reversed(days):
        store.record(d)
    assert store.days() == days  # oldest first, the missing close kept as missing, decimals exact
    with pytest.raises(V.SeriesError, match="already recorded"):
        store.record(days[0])
    changed = V.DayValuation(days[0].day, days[2].holdings, days[0].prices, "later")
    store.record(changed, replace=True)
    assert store.days()[0] == changed and len(store.days()) == 3


def test_a_damaged_series_file_is_refused(tmp_path):
    f = tmp_path / "s.json"
    store = V.FileSeries(f)
    store.record(make_days(["100"], [1], [1])[0])
    good = f.read_text()
    f.write_text(good.replace('"sats": 1,', '"sats": -1,', 1))
    with pytest.raises(V.SeriesError, match="damaged"):
        store.days()
    f.write_text(good[:-20])
    with pytest.raises(V.SeriesError, match="not JSON"):
        store.days()
    assert not list(tmp_path.glob(".s.json.*"))  # atomic writes leave no temp files


# -- holdings from snapshots --------------------------------------------------------------------

HOLDERS = [TestKeyholder.from_label(f"valuation-{i}") for i in range(3)]


def _vault(script="wsh", m=2):
    return Vault.multisig(m, [h.cosigner(script) for h in HOLDERS], script=script, network=Network.REGTEST)


def _record(vault, n, amount, branch=0, index=None, height=None):
    r = {"txid": f"{n:064x}", "vout": 0, "amount": amount,
         "script_pubkey": vault.derive_branch(branch, n if index is None else index).script_pubkey.hex(),
         "branch": branch, "index": n if index is None else index}
    if height is not None:
        r["height"] = height
    return r


def test_holdings_from_snapshots(tmp_path):
    va, vb = _vault(), _vault(m=3)
    fa, fb = tmp_path / "a.json", tmp_path / "b.json"
    fa.write_text(json.dumps([_record(va, 1, 70_000), _record(va, 2, 30_000, branch=1, height=150),
                              _record(va, 3, 5_000, height=201)]))
    fb.write_text(json.dumps({"height": 200, "block_hash": "ab" * 32, "utxos": [_record(vb, 4, 1_000_000)]}))
    h = V.holdings_from_snapshot([("A", va), ("B", vb)], [fa, fb])
    assert h.height == 200 and h.block_hash == "ab" * 32
    assert [(v.name, v.sats, v.coins) for v in h.vaults] == [("A", 100_000, 2), ("B", 1_000_000, 1)]
    assert h.total_sats == 1_100_000 and "a.json" in h.source


def test_snapshots_refuse_foreign_coins_unknown_blocks_and_double_counting(tmp_path):
    va = _vault()
    other = Vault.multisig(2, [TestKeyholder.from_label(f"other-{i}").cosigner("wsh") for i in range(3)],
                           script="wsh", network=Network.REGTEST)
    f = tmp_path / "a.json"
    foreign = _record(other, 1, 1000)  # another vault's script, claiming to be ours at branch 0 index 1
    f.write_text(json.dumps([_record(va, 2, 1000), foreign]))
    with pytest.raises(V.SnapshotError, match="not the vault's coin"):
        V.holdings_from_snapshot([("A", va)], [f], height=5)
    f.write_text(json.dumps([_record(va, 2, 1000)]))
    with pytest.raises(V.SnapshotError, match="say which block"):
        V.holdings_from_snapshot([("A", va)], [f])
    f.write_text(json.dumps([_record(va, 2, 1000), _record(va, 2, 1000)]))
    with pytest.raises(V.SnapshotError, match="counted once"):
        V.holdings_from_snapshot([("A", va)], [f], height=5)
    no_place = {k: v for k, v in _record(va, 2, 1000).items() if k not in ("branch", "index")}
    f.write_text(json.dumps([no_place]))
    with pytest.raises(V.SnapshotError, match="branch, index"):
        V.holdings_from_snapshot([("A", va)], [f], height=5)
    with pytest.raises(V.ValuationError, match="twice"):
        V.holdings_from_snapshot([("A", va), ("B", va)], [f, f], height=5)


# -- hostile input ------------------------------------------------------------------------------

from hypothesis import given, strategies as st  # noqa: E402


@given(st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode),
                 st.lists(st.sampled_from(["pair,date,close,source\n", "BTC/USD,", "2026-11-01,", "5,", "x\n",
                                           '[{"pair":', '"BTC/USD"', "}", "]", "{", '"prices":', ",", "1e9999"]),
                          max_size=30).map(lambda xs: "".join(xs).encode())))
def test_any_bytes_as_a_price_file_or_snapshot_give_a_valuation_error_or_prices(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "p"
    path.write_bytes(data)
    try:
        s = P.FilePriceSource.load(path)
    except P.PriceFileError:
        pass
    else:
        assert all(p.close > 0 and isinstance(p.close, Decimal) for p in s.prices)
    with pytest.raises(V.ValuationError):
        V.holdings_from_snapshot([("A", _vault())], [path])  # no block named: refused either way
