"""The valuation and the report against hostile inputs: whoever writes the series file, the
database, a snapshot or a price file, or runs the price API. Every test here fails on the code
before its fix: CSV cells that a spreadsheet runs as formulas, a vault name that breaks the
charts, JSON that raises a bare ValueError, a file read whole, a price API that drips or bombs."""

import csv
import datetime as dt
import gzip
import http.server
import io
import json
import os
import threading
import time
import tracemalloc

import pytest

from msigvault.reserves import por as POR
from msigvault.reserves import prices as P
from msigvault.reserves import report as R
from msigvault.reserves import valuation as V

D0 = dt.date(2026, 11, 1)
HUGE = "1" * 5000  # an integer Python refuses to convert (more than 4,300 digits): a bare ValueError


def _doc(names=("vault",), *, block_hash="00" * 32, policy_ids=None, source="index", timestamp=None):
    src = P.FilePriceSource([P.make_price("BTC/USD", D0, "90000", source, timestamp)])
    ids = policy_ids or [f"{i:064x}" for i in range(len(names))]
    h = V.Holdings(1, block_hash, None, "test", tuple(V.VaultHoldings(n, p, 10**8, 1) for n, p in zip(names, ids)))
    return R.build(V.analyse([V.valuation_of(D0, h, src, ["BTC/USD"])]))


def test_every_text_column_of_the_csv_is_defused():
    """The series file and the database are written by whoever can write them: the block hash and
    policy id of a day are text as much as a vault name is."""
    doc = _doc(["  =1+1", "\uff1dSUM(A1)"], block_hash='=HYPERLINK("http://x";"open")',
               policy_ids=["-2+3", "+cmd|' /C calc'!A0"])
    rows = list(csv.DictReader(io.StringIO(R.to_csv(doc))))
    assert [r["vault"] for r in rows] == ["'  =1+1", "'\uff1dSUM(A1)", R.TOTAL]
    assert [r["policy_id"] for r in rows] == ["'-2+3", "'+cmd|' /C calc'!A0", ""]
    assert {r["block_hash"] for r in rows} == {"'=HYPERLINK(\"http://x\";\"open\")"}
    assert rows[2]["value"] == "180000.00" and rows[0]["sats"] == "100000000"  # numbers stay numbers


def test_a_series_file_with_a_formula_for_a_block_hash_is_defused_too(tmp_path):
    store = V.FileSeries(tmp_path / "series.json")
    store.record(V.valuation_of(D0, V.Holdings(7, "ab" * 32, None, "test", (V.VaultHoldings("v", "cd" * 32, 5, 1),)),
                                P.FilePriceSource([P.make_price("BTC/USD", D0, "90000", "index")]), ["BTC/USD"]))
    data = json.loads(store.path.read_text())
    data["days"][0]["block_hash"] = "@SUM(1+9)*cmd|' /C calc'!A0"
    store.path.write_text(json.dumps(data))
    rows = list(csv.DictReader(io.StringIO(R.to_csv(R.build(V.analyse(store.days()))))))
    assert all(r["block_hash"].startswith("'@") for r in rows)


def test_a_vault_name_with_dollar_signs_is_drawn_as_text():
    """matplotlib reads $...$ as mathtext: such a name made the whole report fail with a ValueError."""
    page = R.to_html(_doc(["$\\frac{a}{$", "cost $5 $ and $\\sqrt{x}$"]))
    assert page.count("data:image/png;base64,") == 4 and "$\\frac{a}{$" in page


@pytest.mark.parametrize("what", ["price file", "series", "snapshot", "config", "report input", "proof file",
                                  "migration plan"])
def test_json_with_an_integer_too_long_to_convert_is_a_msigvault_error(tmp_path, what):
    from msigvault.errors import MsigvaultError

    f = tmp_path / "x.json"
    body = {"price file": f'[{{"pair": "BTC/USD", "date": "2026-11-01", "close": {HUGE}, "source": "s"}}]',
            "series": f'{{"kind": "{V.SERIES_KIND}", "version": 1, "days": [{HUGE}]}}',
            "snapshot": f'{{"height": {HUGE}, "utxos": []}}', "config": f'{{"pairs": [{HUGE}]}}',
            "report input": f"[{HUGE}]", "proof file": f'{{"total": {HUGE}}}',
            "migration plan": f'{{"format": {HUGE}}}'}[what]
    f.write_text(body)
    read = {"price file": P.FilePriceSource.load, "series": lambda p: V.FileSeries(p).days(),
            "snapshot": V.load_snapshot, "config": V.load_config, "report input": R.read_document,
            "proof file": POR.load_proof, "migration plan": _load_plan}[what]
    with pytest.raises(MsigvaultError):
        read(f)


def _load_plan(path):
    from msigvault.lifecycle.migrate import load_plan

    return load_plan(path, None, None)


def test_a_snapshot_block_hash_must_be_hex(tmp_path):
    f = tmp_path / "snap.json"
    f.write_text(json.dumps({"height": 5, "block_hash": "=" + "A" * 63, "utxos": []}))
    with pytest.raises(V.SnapshotError, match="64 hex digits"):
        V.load_snapshot(f)


def test_a_price_file_is_never_read_past_its_limit(tmp_path):
    """A FIFO (or a device, or a file that grows) has no size to check first: it is read only up to
    the limit, and refused, instead of being read whole and parsed cut off."""
    fifo = tmp_path / "prices.csv"
    os.mkfifo(fifo)
    row = b"BTC/USD,2026-11-01,90000," + b"s" * 190 + b"\n"

    def writer():
        try:  # the reader stops at the limit: the pipe breaks on a write or on the final flush
            with open(fifo, "wb") as f:
                f.write(b"pair,date,close,source\n")
                for _ in range(P.MAX_PRICE_FILE_BYTES // len(row) + 50):
                    f.write(row)
        except BrokenPipeError:
            pass
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    with pytest.raises(P.PriceFileError) as e:
        P.FilePriceSource.load(fifo)
    assert e.value.limit == P.MAX_PRICE_FILE_BYTES
    t.join(10)


# -- a hostile price API on loopback ------------------------------------------------------------

BOMB = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB of spaces in about 64 KiB


class _Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        body = b'{"close": "90000"}' + b" " * 40
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path.startswith("/drip"):  # one byte every 0.1 s: each wait is short, the answer endless
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for b in body:
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                time.sleep(0.1)
            return
        if self.path.startswith("/bomb"):
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(BOMB)))
            self.end_headers()
            self.wfile.write(BOMB)
            return
        if self.path.startswith("/gzip"):
            small = gzip.compress(b'{"close": "91000.5"}')
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(small)))
            self.end_headers()
            self.wfile.write(small)
            return
        self.send_header("Content-Encoding", "br")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client hanging up on a drip or a bomb is the point of those tests


@pytest.fixture(scope="module")
def hostile():
    server = _Server(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_dripping_price_api_is_cut_off_at_the_deadline(hostile):
    src = P.HttpPriceSource(hostile + "/drip?d={date}", "close", timeout=2, deadline=1)
    start = time.monotonic()
    with pytest.raises(P.PriceSourceError, match="took more than 1 s") as e:
        src.price("BTC/USD", D0)
    assert time.monotonic() - start < 4 and e.value.limit == 1


def test_a_compression_bomb_stops_at_the_limit_without_inflating(hostile):
    src = P.HttpPriceSource(hostile + "/bomb?d={date}", "close")
    tracemalloc.start()
    try:
        with pytest.raises(P.PriceSourceError, match="more than"):
            src.price("BTC/USD", D0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, peak  # decoded in bounded steps, not a 64 MiB chunk at once


def test_a_compressed_answer_is_read_and_an_unknown_encoding_refused(hostile):
    assert P.HttpPriceSource(hostile + "/gzip?d={date}", "close").price("BTC/USD", D0).close == P.parse_close("91000.5")
    with pytest.raises(P.PriceSourceError, match="Content-Encoding"):
        P.HttpPriceSource(hostile + "/br?d={date}", "close").price("BTC/USD", D0)


def test_timeouts_are_checked_and_bad_ports_are_price_source_errors():
    for bad in (0, -1, float("nan"), 601, True):
        with pytest.raises(P.PriceSourceError):
            P.HttpPriceSource("http://127.0.0.1/x", "close", deadline=bad)
    with pytest.raises(P.PriceSourceError):
        P.HttpPriceSource("http://127.0.0.1:99999/x?d={date}", "close").price("BTC/USD", D0)


@pytest.mark.parametrize("stem", ["../outside", "ABSOLUTE", "a/b", "..", ".hidden", ""])
def test_the_report_stem_cannot_leave_the_output_directory(tmp_path, stem):
    stem = str(tmp_path / "abs") if stem == "ABSOLUTE" else stem
    out = tmp_path / "out"
    with pytest.raises(R.ReportInputError):
        R.write_all(_doc(), out, stem=stem, formats=("json",))
    assert not (tmp_path / "outside.json").exists() and not list(tmp_path.rglob("*.json"))


def test_a_csv_field_above_the_csv_modules_limit_is_a_price_file_error(tmp_path):
    f = tmp_path / "prices.csv"
    f.write_text("pair,date,close,source\nBTC/USD,2026-11-01,90000,index\nBTC/USD,2026-11-02,1," + "s" * 200_000 + "\n")
    with pytest.raises(P.PriceFileError, match="not CSV near line 3") as e:
        P.FilePriceSource.load(f)
    assert e.value.line == 3
    f.write_text("pair,date,close," + "h" * 200_000 + "\n")
    with pytest.raises(P.PriceFileError, match="header is not CSV"):
        P.FilePriceSource.load(f)
