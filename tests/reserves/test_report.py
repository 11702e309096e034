"""The reserve report: a regtest scenario funds vaults over simulated days and records one valuation
per day from the shipped sample; the JSON's numbers are checked against the sample file read
here with the csv module; the HTML parses, every image decodes and is not blank, every number on
the page is the JSON's; the CSV round-trips; the CLI writes all three files."""

import base64
import csv
import datetime as dt
import html.parser
import io
import json
from fractions import Fraction

import pytest
from PIL import Image

from msigvault import Network, Vault
from msigvault.backends.regtest import RegtestBackend
from msigvault.coordinator.db import Database
from msigvault.policy.registration import Registration
from msigvault.regtest import RegtestChain
from msigvault.reserves import health
from msigvault.reserves import prices as P
from msigvault.reserves import report as R
from msigvault.reserves import valuation as V
from msigvault.testing.cli import run_cli
from msigvault.testing.keyholders import TestKeyholder
from msigvault.vaultfile import VaultFile

HOLDERS = [TestKeyholder.from_label(f"report-{i}") for i in range(3)]
PAIRS = ("BTC/USD", "BTC/EUR", "BTC/KZT")
D0 = dt.date(2026, 11, 1)
NOON = 12 * 3600
# sats paid to (vault A, vault B) on each simulated day; day 3 moves nothing
FUNDING = [(150_000_000, 0), (0, 40_000_000), (25_000_000, 10_000_000), (0, 0), (5_000_000, 0), (0, 70_000_000)]


def cents(x: Fraction) -> str:
    n = round(x * 100)
    return f"{'-' if n < 0 else ''}{abs(n) // 100}.{abs(n) % 100:02d}"


def sample_closes() -> dict:
    """The shipped sample read with the csv module, independently of msigvault's parser."""
    lines = [ln for ln in P.sample_path().read_text().splitlines() if not ln.startswith("#")]
    return {(r["pair"], r["date"]): Fraction(r["close"]) for r in csv.DictReader(lines)}


def vaults():
    a = Vault.multisig(2, [h.cosigner("wsh") for h in HOLDERS], script="wsh", network=Network.REGTEST)
    b = Vault.multisig(2, [h.cosigner("tr") for h in HOLDERS], script="tr", network=Network.REGTEST)
    return [("treasury-a", a), ("treasury-b", b)]


def epoch(d: dt.date) -> int:
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp())


class Page(html.parser.HTMLParser):
    """Collects data-json cells and images, and checks that every element is closed in order."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.cells, self.images, self._open = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        if tag not in self.VOID:
            self.stack.append(tag)
            self._open.append([a.get("data-json"), ""])

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()
        path, text = self._open.pop()
        if path is not None:
            self.cells.append((path, text))

    def handle_data(self, data):
        for entry in self._open:
            entry[1] += data


def walk(doc, path):
    node = doc
    for step in path.split("."):
        node = node[int(step)] if isinstance(node, list) else node[step]
    return node


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Six simulated days on a regtest chain, one valuation recorded per day in a coordinator database."""
    tmp = tmp_path_factory.mktemp("report")
    vs = vaults()
    source = P.sample()
    store = V.DatabaseSeries(Database.open(f"sqlite:///{tmp / 'c.sqlite'}"))
    expected = []
    with RegtestChain() as chain:
        chain.set_time(epoch(D0) - 3 * 86400)
        chain.mine(101)
        backend = RegtestBackend(chain)
        held = [0, 0]
        for i, pay in enumerate(FUNDING):
            d = D0 + dt.timedelta(days=i)
            chain.set_time(epoch(d) + NOON)
            for k, amount in enumerate(pay):
                if amount:
                    chain.fund(vs[k][1].address(i), [amount])
                    held[k] += amount
            if not any(pay):
                chain.mine(1)
            holdings = V.holdings_from_backend(vs, backend)
            store.record(V.valuation_of(d, holdings, source, PAIRS))
            expected.append((d, tuple(held), chain.height, chain.tip))
    days = store.days()
    analysis = V.analyse(days, V.ValuationConfig(PAIRS, thresholds={
        "BTC/USD": V.Thresholds(daily_fall_pct=V.Decimal("3"), value_below=V.Decimal("180000"))}))
    va = vs[0][1]
    chs = health.issue(va, date="2026-11-01")
    rep = health.report(va, chs, [health.respond(chs[k], va, HOLDERS[k].root) for k in (0, 2)],
                        as_of="2026-11-06").to_dict()
    last = expected[-1]
    proof = {"valid": True, "proven_sats": last[1][0], "height": last[2], "policy_id": va.policy_id,
             "message": "Auditor Ltd 2026-11-06 nonce 7f3a"}
    doc = R.build(analysis, series=store.where, health=[rep], proofs=[proof])
    return doc, expected


def test_the_chain_days_and_holdings_are_the_ones_funded(scenario):
    doc, expected = scenario
    assert [d["date"] for d in doc["days"]] == [e[0].isoformat() for e in expected]
    for d, (day, held, height, tip) in zip(doc["days"], expected):
        assert (d["height"], d["block_hash"]) == (height, tip)
        assert dt.datetime.fromtimestamp(d["block_time"], dt.timezone.utc).date() == day  # the simulated day
        assert [v["sats"] for v in d["vaults"]] == list(held) and d["total_sats"] == sum(held)
        assert d["holdings_source"].startswith("backend regtest chain")


def test_the_values_are_holdings_times_the_sample_closes(scenario):
    doc, expected = scenario
    closes = sample_closes()
    assert doc["illustrative_prices"] is True
    for i, (d, (day, held, _, _)) in enumerate(zip(doc["days"], expected)):
        for pair in PAIRS:
            c = closes[(pair, day.isoformat())]
            p = d["pairs"][pair]
            assert Fraction(p["close"]) == c and "ILLUSTRATIVE" in p["source"]
            assert p["value"] == cents(Fraction(sum(held)) * c / 10**8)
            assert [v["values"][pair] for v in d["vaults"]] == [cents(Fraction(s) * c / 10**8) for s in held]
            if i:
                prev_c = closes[(pair, expected[i - 1][0].isoformat())]
                prev_held = sum(expected[i - 1][1])
                assert p["pnl"] == cents(Fraction(prev_held) * (c - prev_c) / 10**8)
                assert p["flows"] == cents(Fraction(sum(held) - prev_held) * c / 10**8)
    # the contingency flags follow the sample: BTC/USD fell 1.2 % on day 1 (not over 3 %)
    kinds = {(f["date"], f["kind"]) for f in doc["flags"]}
    usd = [closes[("BTC/USD", e[0].isoformat())] for e in expected]
    want = {(expected[i][0].isoformat(), "daily-fall") for i in range(1, 6) if (usd[i - 1] - usd[i]) * 100 / usd[i - 1] > 3}
    want |= {(expected[i][0].isoformat(), "value-below") for i in range(6)
             if Fraction(sum(expected[i][1])) * usd[i] / 10**8 < 180000}
    assert kinds == want and want  # day 0 holds 1.5 BTC at 95000: below 180000
    assert doc["missing"] == {"days": [], "prices": []}


def test_health_and_proof_of_reserves_are_in_the_report(scenario):
    doc, expected = scenario
    (h,) = doc["health_checks"]
    assert h["all_passed"] is False
    assert [k["status"] for k in h["keyholders"]] == ["passed", "missing", "passed"]
    (p,) = doc["proofs_of_reserves"]
    assert p["recorded_sats"] == expected[-1][1][0] and p["matches_holdings"] is True
    short = R.build(V.analyse([]), proofs=[{"valid": True, "proven_sats": 1, "height": expected[-1][2]}])
    assert short["proofs_of_reserves"][0]["matches_holdings"] is None  # no day recorded at that height


def test_the_proof_of_reserves_verifiers_own_result_is_accepted(scenario):
    """The shape 'msigvault proof reserves verify --json' writes (proven_amount, coin_count, failing)."""
    doc, expected = scenario
    _, held, height, tip = expected[-1]
    total = sum(held)
    result = {"kind": "msigvault-reserves-verification", "valid": False, "message": "Auditor Ltd", "policy_id": "",
              "height": height, "block_hash": tip, "utxo_set": "regtest chain", "proven_amount": total - 5,
              "coin_count": 4, "proven_coins": 3, "verified_by_kernel": True,
              "failing": [{"outpoint": "ab" * 32 + ":1", "amount": 5, "ok": False, "note": "spent by cd in block 9"}]}
    (entry,) = R.build(_analysis_of(doc), proofs=[result])["proofs_of_reserves"]
    assert (entry["proven_sats"], entry["utxo_count"], entry["valid"]) == (total - 5, 4, False)
    assert entry["recorded_sats"] == total and entry["matches_holdings"] is False
    assert entry["failing"] == ["ab" * 32 + ":1: spent by cd in block 9"]
    page = R.to_html(R.build(_analysis_of(doc), proofs=[result]))
    assert "INVALID" in page and "spent by cd in block 9" in page


def _analysis_of(doc):
    """The scenario's days again as an Analysis (rebuilt from the report's JSON, holdings only)."""
    days = []
    for d in doc["days"]:
        h = V.Holdings(d["height"], d["block_hash"], d["block_time"], d["holdings_source"],
                       tuple(V.VaultHoldings(v["name"], v["policy_id"], v["sats"], v["coins"]) for v in d["vaults"]))
        days.append(V.DayValuation(dt.date.fromisoformat(d["date"]), h, ()))
    return V.analyse(days, V.ValuationConfig(("BTC/USD",)))


def test_the_html_page_parses_and_its_numbers_are_the_json(scenario):
    doc, _ = scenario
    page = R.to_html(doc)
    parser = Page()
    parser.feed(page)
    parser.close()
    assert parser.stack == []
    assert "http://" not in page and "https://" not in page  # self-contained: nothing to fetch
    numbers = [(p, t) for p, t in parser.cells if p.startswith("days.")]
    assert len(numbers) >= len(doc["days"]) * (3 + 8 * len(PAIRS))
    for path, text in parser.cells:
        want = walk(doc, path)
        assert text == ("\u2014" if want is None else str(want)), path
    assert "ILLUSTRATIVE" in page and "NOT all passed" in page
    assert len(parser.images) == 4
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        img.load()
        assert img.width > 100 and img.height > 100
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20)) > 2  # something is drawn


def test_the_csv_round_trips_to_the_json(scenario):
    doc, _ = scenario
    rows = list(csv.DictReader(io.StringIO(R.to_csv(doc))))
    assert len(rows) == len(doc["days"]) * len(PAIRS) * 3  # two vaults and a TOTAL per day and pair
    it = iter(rows)
    for d in doc["days"]:
        for pair in PAIRS:
            p = d["pairs"][pair]
            for v in d["vaults"]:
                r = next(it)
                assert (r["date"], r["vault"], r["policy_id"], int(r["sats"]), r["pair"], r["close"], r["value"],
                        r["share_of_vaults_pct"]) == (d["date"], v["name"], v["policy_id"], v["sats"], pair,
                                                      p["close"], v["values"][pair], v["share_pct"])
            t = next(it)
            assert t["vault"] == R.TOTAL and int(t["sats"]) == d["total_sats"] and t["value"] == p["value"]
            for k in ("pnl", "flows", "cumulative_pnl", "return_pct", "drawdown_pct", "since"):
                assert t[k] == (p[k] or "")
            assert t["flags"].split(";") == (p["flags"] or [""])


def test_documents_of_the_wrong_shape_are_refused():
    with pytest.raises(R.ReportInputError, match="key-health report"):
        R.build(V.analyse([]), health=[{"kind": "other"}])
    for bad in ({"valid": "yes", "proven_sats": 1}, {"valid": True, "proven_sats": -1}, {"valid": True}, []):
        with pytest.raises(R.ReportInputError, match="proof-of-reserves"):
            R.build(V.analyse([]), proofs=[bad])


def test_the_cli_records_shows_and_writes_the_report(tmp_path):
    (name, va), _ = vaults()
    VaultFile(va, name, registrations=tuple(Registration.create(va, h.root, name=name) for h in HOLDERS)) \
        .save(tmp_path / "a.json")
    held = 0
    for i, amount in enumerate((100_000_000, 20_000_000)):
        held += amount
        snap = [{"txid": f"{n + 1:064x}", "vout": 0, "amount": a, "branch": 0, "index": n,
                 "script_pubkey": va.derive_branch(0, n).script_pubkey.hex()}
                for n, a in enumerate((100_000_000, 20_000_000)[:i + 1])]
        (tmp_path / f"snap{i}.json").write_text(json.dumps(snap))
        r = run_cli("value", "record", "a.json", "--date", f"2026-11-0{i + 1}", "--utxos", f"snap{i}.json",
                    "--height", 200 + i, "--prices", "sample", "--series", "series.json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "BTC/KZT: close" in r.stdout
    again = run_cli("value", "record", "a.json", "--date", "2026-11-01", "--utxos", "snap0.json", "--height", 200,
                    "--prices", "sample", "--series", "series.json", "--json", cwd=tmp_path)
    assert again.returncode == 2 and json.loads(again.stdout)["error"]["code"] == "valuation.series"
    shown = run_cli("value", "show", "--series", "series.json", "--json", cwd=tmp_path)
    doc = json.loads(shown.stdout)
    closes = sample_closes()
    assert doc["days"][1]["total_sats"] == held
    assert doc["days"][1]["pairs"]["BTC/EUR"]["value"] == cents(Fraction(held) * closes[("BTC/EUR", "2026-11-02")]
                                                               / 10**8)
    (tmp_path / "h.json").write_text(json.dumps({"kind": "msigvault-key-health-report", "policy_id": va.policy_id,
                                                 "challenge_date": "2026-11-01", "as_of": "2026-11-02",
                                                 "all_passed": True, "keyholders": [
                                                     {"fingerprint": "0a0b0c0d", "status": "passed", "reason": "",
                                                      "days_waiting": 0}]}))
    out = run_cli("report", "reserves", "--series", "series.json", "--health", "h.json", "-o", "out", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    written = json.loads((tmp_path / "out" / "reserves.json").read_text())
    assert written["days"] == doc["days"] and written["health_checks"][0]["all_passed"] is True
    assert (tmp_path / "out" / "reserves.csv").read_text() == R.to_csv(written)
    assert (tmp_path / "out" / "reserves.html").read_text().startswith("<!DOCTYPE html>")
    refused = run_cli("report", "reserves", "--series", "series.json", "-o", "out", cwd=tmp_path)
    assert refused.returncode == 2 and "already exists" in refused.stderr


def test_hostile_names_are_escaped_in_the_page_and_defused_in_the_csv():
    names = ['<script>alert(1)</script>', '=HYPERLINK("http://x","pay")']
    src = P.FilePriceSource([P.make_price("BTC/USD", D0, "90000", "@SUM(A1:A9)")])
    h = V.Holdings(1, "00" * 32, None, "test", tuple(V.VaultHoldings(n, f"{i:064x}", 10**8, 1)
                                                     for i, n in enumerate(names)))
    doc = R.build(V.analyse([V.valuation_of(D0, h, src, ["BTC/USD"])]))
    page = R.to_html(doc)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    parser = Page()
    parser.feed(page)
    assert any(text == names[0] for _, text in parser.cells)  # shown as text, exactly
    rows = list(csv.DictReader(io.StringIO(R.to_csv(doc))))
    assert [r["vault"] for r in rows] == ["<script>alert(1)</script>", "'" + names[1], R.TOTAL]
    assert {r["price_source"] for r in rows} == {"'@SUM(A1:A9)"}
    assert rows[2]["value"] == "180000.00"  # numbers, negative ones too, are left as they are


def test_the_cli_values_a_regtest_chain_with_prices_from_an_http_api(tmp_path):
    """value record --chain DIR --price-url: holdings from the chain, closes from a loopback API."""
    import http.server
    import threading

    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            quote = self.path.split("quote=")[1].split("&")[0]
            body = json.dumps({"result": {"close": {"USD": "91000.25", "EUR": "78000.5"}[quote]}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    (name, va), (name_b, vb) = vaults()
    for n, v in ((name, va), (name_b, vb)):
        VaultFile(v, n, registrations=tuple(Registration.create(v, h.root, name=n) for h in HOLDERS)) \
            .save(tmp_path / f"{n}.json")
    with RegtestChain(datadir=tmp_path / "chain") as chain:
        chain.set_time(epoch(D0) + NOON)
        chain.fund(va.address(0), [30_000_000, 12_345_678])
        chain.fund(vb.address(3), [7_000_000])
        height = chain.height
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/close?quote={{quote}}&day={{date}}"
        r = run_cli("value", "record", f"{name}.json", f"{name_b}.json", "--date", D0.isoformat(), "--chain", "chain",
                    "--price-url", url, "--price-field", "result.close", "--price-name", "test index",
                    "--pair", "BTC/USD", "--pair", "BTC/EUR", "--db", f"sqlite:///{tmp_path / 'c.sqlite'}",
                    "--json", cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 0, r.stdout + r.stderr
    shown = json.loads(run_cli("value", "show", "--db", f"sqlite:///{tmp_path / 'c.sqlite'}", "--json",
                               cwd=tmp_path).stdout)
    (d,) = shown["days"]
    assert d["height"] == height and [v["sats"] for v in d["vaults"]] == [42_345_678, 7_000_000]
    usd = d["pairs"]["BTC/USD"]
    assert usd["close"] == "91000.25" and usd["source"].startswith("test index http://127.0.0.1:")
    assert usd["value"] == cents(Fraction(49_345_678) * Fraction("91000.25") / 10**8)
    assert d["pairs"]["BTC/EUR"]["value"] == cents(Fraction(49_345_678) * Fraction("78000.5") / 10**8)
    assert set(shown["pairs"]) == {"BTC/USD", "BTC/EUR"} and shown["missing"]["prices"] == []
