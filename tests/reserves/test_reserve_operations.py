"""Reserve operations end to end, the way a reserve manager runs them (issue 17, "Done when").

Read it as documentation. A small script plays the world: it keeps a regtest chain and pays coins
into two vaults over five simulated days (2026-11-04 to 2026-11-08). Everything a person does goes
through the ``msigvault`` command, in subprocesses, as they would type it:

1. three keyholders (alice, bob, carol) make keys; the coordinator makes two 2-of-3 vaults,
   ``treasury`` (wsh) and ``reserve`` (tr);
2. every day the finance team records the valuation (holdings from the chain, or on one day from
   exported UTXO snapshots; closes from the shipped ILLUSTRATIVE price sample) in the coordinator
   database;
3. a key-health check: alice answers with a file, carol's air-gapped laptop reads her challenge
   from a QR code and answers with a QR code, bob never answers;
4. a proof of reserves of the treasury for an auditor, which verifies to the exact amount, and
   fails, naming the coin, once one coin is spent;
5. the report for those days, whose numbers are recomputed here independently (the price sample
   read with the csv module, holdings from what the script paid, Fractions), with the health and
   proof results in it; and the audit log holds every valuation, the health check and both
   verifications, and verifies.
"""

import base64
import csv
import datetime as dt
import html.parser
import io
import json
from fractions import Fraction
from pathlib import Path

import zxingcpp
from PIL import Image

from msigvault.address import address_from_script
from msigvault.coordinator.db import Database
from msigvault.coordinator.sessions import Coordinator
from msigvault.network import Network
from msigvault.regtest import RegtestChain
from msigvault.reserves import prices
from msigvault.testing.cli import run_cli
from msigvault.transport.bbqr import bbqr_join
from msigvault.vaultfile import load_vault_file

KEYHOLDERS = {"alice": "alice's passphrase", "bob": "bob's passphrase", "carol": "carol's passphrase"}
PAIRS = ("BTC/USD", "BTC/EUR", "BTC/KZT")
DAYS = [dt.date(2026, 11, 4) + dt.timedelta(days=i) for i in range(5)]
# what the script pays each day: (vault, address index, [amounts in sats]); 2026-11-06 pays nothing
PAYMENTS = {
    DAYS[0]: [("treasury", 0, [120_000_000, 30_000_000]), ("reserve", 0, [50_000_000])],
    DAYS[1]: [("treasury", 1, [25_000_000])],
    DAYS[2]: [],
    DAYS[3]: [("reserve", 1, [40_000_000])],
    DAYS[4]: [("treasury", 2, [5_432_100])],
}
EXTERNAL = address_from_script(bytes.fromhex("0014") + bytes(range(20)), Network.REGTEST)


def msigvault(*args, cwd, who=None, ok=True):
    """Run ``msigvault ARGS`` as ``who`` (their passphrase in the environment); must succeed if ``ok``."""
    proc = run_cli(*args, cwd=cwd, passphrase=KEYHOLDERS.get(who))
    if ok and proc.returncode != 0:
        raise AssertionError(f"msigvault {' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stderr}{proc.stdout}")
    return proc


def as_json(*args, cwd, who=None):
    return json.loads(msigvault(*args, "--json", cwd=cwd, who=who).stdout)


def epoch(day: dt.date, hour: int = 0) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.timezone.utc).timestamp())


def cents(x: Fraction) -> str:
    """Half-even to 0.01 with Python's own rounding of a Fraction (not msigvault's Decimal code)."""
    n = round(x * 100)
    return f"{'-' if n < 0 else ''}{abs(n) // 100}.{abs(n) % 100:02d}"


def pct4(x: Fraction) -> str:
    n = round(x * 10_000)
    return f"{'-' if n < 0 else ''}{abs(n) // 10_000}.{abs(n) % 10_000:04d}"


def sample_closes() -> "dict[tuple[str, str], Fraction]":
    """The shipped price sample, read with the csv module."""
    lines = [ln for ln in prices.sample_path().read_text().splitlines() if not ln.startswith("#")]
    return {(r["pair"], r["date"]): Fraction(r["close"]) for r in csv.DictReader(lines)}


def qr_texts(png: Path) -> "list[str]":
    """Every QR code zxing-cpp reads in an image."""
    with Image.open(png) as img:
        return [r.text for r in zxingcpp.read_barcodes(img.convert("L")) if r.valid]


class Page(html.parser.HTMLParser):
    """The report page: cells naming their place in the JSON, images, headings, well nested."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.cells, self.images, self.headings, self._open = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        if tag not in self.VOID:
            self.stack.append(tag)
            self._open.append([tag, a.get("data-json"), ""])

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()
        name, path, text = self._open.pop()
        if path is not None:
            self.cells.append((path, text))
        if name == "h2":
            self.headings.append(text)

    def handle_data(self, data):
        for entry in self._open:
            entry[2] += data


def walk(doc, path):
    node = doc
    for step in path.split("."):
        node = node[int(step)] if isinstance(node, list) else node[step]
    return node


def test_a_reserve_is_funded_checked_proven_and_reported_over_five_days(tmp_path):
    site = tmp_path
    db = f"sqlite:///{site / 'coordinator.sqlite'}"
    coordinator = ("--db", db, "--coordinator-key", "coordinator.key")

    # -- set-up: keys and vaults ------------------------------------------------------------------
    fingerprints = {}
    for name in KEYHOLDERS:
        fingerprints[name] = as_json("key", "new", f"{name}.key", "--skip-backup-check", cwd=site,
                                     who=name)["fingerprint"]
        for script in ("wsh", "tr"):
            msigvault("key", "cosigner", f"{name}.key", "-n", "regtest", "--script", script,
                      "-o", f"{name}-{script}.cosigner", cwd=site, who=name)
    for vault, script in (("treasury", "wsh"), ("reserve", "tr")):
        msigvault("vault", "create", "-m", "2", *(f"{n}-{script}.cosigner" for n in KEYHOLDERS), "--script", script,
                  "-n", "regtest", "--name", vault, "-o", f"{vault}.json", cwd=site)
    for name in ("alice", "carol"):  # the treasury's signers register it on their laptops
        msigvault("vault", "verify", "treasury.json", "--key", f"{name}.key", "--yes", cwd=site, who=name)
    vaults = {v: load_vault_file(site / f"{v}.json").vault for v in ("treasury", "reserve")}
    (site / "valuation.json").write_text(json.dumps({
        "pairs": list(PAIRS),
        "thresholds": {"BTC/USD": {"daily_fall_pct": "3", "value_below": "200000"}},
    }))

    # -- five days: the world pays coins in, the finance team values the reserve each evening ------
    held = {"treasury": 0, "reserve": 0}
    chain_state = []  # what the chain was when each day was valued: (height, tip, sats per vault)
    with RegtestChain(datadir=site / "chain") as chain:  # the chain starts before the first day
        chain.set_time(epoch(DAYS[0]) - 2 * 86400)
        chain.mine(101)
    for day in DAYS:
        with RegtestChain(datadir=site / "chain") as chain:
            chain.set_time(epoch(day, 12))
            for vault, index, amounts in PAYMENTS[day]:
                chain.fund(vaults[vault].address(index), amounts)
                held[vault] += sum(amounts)
            if not PAYMENTS[day]:
                chain.mine(1)  # a quiet day still has blocks
            chain_state.append((chain.height, chain.tip, dict(held)))
        holdings_from = ("--chain", "chain")
        if day == DAYS[2]:  # the coordinator is offline that day: snapshots come from a machine with a node
            for v in ("treasury", "reserve"):
                msigvault("proof", "reserves", "snapshot", f"{v}.json", "--backend", "regtest:chain",
                          "-o", f"{v}-{day}.json", cwd=site)
            holdings_from = ("--utxos", f"treasury-{day}.json", "--utxos", f"reserve-{day}.json")
        recorded = as_json("value", "record", "treasury.json", "reserve.json", "--date", day.isoformat(),
                           *holdings_from, "--prices", "sample", "--config", "valuation.json", *coordinator,
                           cwd=site)
        assert recorded["audited"] is True and recorded["height"] == chain_state[-1][0]
        assert [v["sats"] for v in recorded["vaults"]] == [held["treasury"], held["reserve"]]

    # -- the key-health check: challenged on 2026-11-05, reported on 2026-11-08 --------------------
    issued = as_json("health", "challenge", "treasury.json", "--date", "2026-11-05", "--index", "5",
                     "-o", "challenges.json", "--qr", "challenge-qr", cwd=site)
    assert len(issued["challenges"]) == 3 and len(issued["qr"]) == 3
    # alice carries the file to her laptop and back
    msigvault("health", "respond", "treasury.json", "challenges.json", "--key", "alice.key", "--yes",
              "-o", "alice-health.json", cwd=site, who="alice")
    # carol's laptop reads her QR code (a photo of the coordinator's screen) and shows her answer as one
    carol_qr = site / "challenge-qr" / f"challenge-{fingerprints['carol']}.png"
    (text,) = qr_texts(carol_qr)
    assert json.loads(bbqr_join([text]).data)["challenges"][0]["fingerprint"] == fingerprints["carol"]
    shown = msigvault("health", "respond", "treasury.json", str(carol_qr), "--key", "carol.key", "--yes",
                      "--qr-out", "carol-health.png", cwd=site, who="carol")
    assert "no coins move" in shown.stdout and f"keyholder: {fingerprints['carol']}" in shown.stdout
    (answer,) = qr_texts(site / "carol-health.png")  # what the coordinator's camera reads
    carol_answer = json.loads(bbqr_join([answer]).data)
    assert (carol_answer["kind"], carol_answer["fingerprint"]) == ("msigvault-key-health-response",
                                                                   fingerprints["carol"])
    # bob does not answer; the coordinator reports on 2026-11-08 and records it in the audit log
    health = as_json("health", "report", "treasury.json", "challenges.json", "alice-health.json", "carol-health.png",
                     "--as-of", "2026-11-08", "-o", "health-report.json", *coordinator, cwd=site)
    status = {row["fingerprint"]: (row["status"], row["days_waiting"]) for row in health["keyholders"]}
    assert status == {fingerprints["alice"]: ("passed", 0), fingerprints["carol"]: ("passed", 0),
                      fingerprints["bob"]: ("missing", 3)}
    assert health["all_passed"] is False and health["recorded"] is True

    # -- a proof of reserves of the treasury for an auditor, on 2026-11-08 -------------------------
    made = as_json("proof", "reserves", "create", "treasury.json", "--backend", "regtest:chain", "--auditor",
                   "Auditor Ltd", "--date", "2026-11-08", "--nonce", "7f3a9c", "--message-out", "por-message.txt",
                   "-o", "por.psbt", cwd=site)
    assert made["total"] == held["treasury"] and len(made["coins"]) == 4
    for name in ("alice", "carol"):
        signed = msigvault("proof", "reserves", "sign", "treasury.json", "por.psbt", "--message-file",
                           "por-message.txt", "--key", f"{name}.key", "--yes", "-o", f"{name}-por.psbt",
                           cwd=site, who=name)
        assert "PROOF OF RESERVES: no coins move" in signed.stdout
    msigvault("proof", "reserves", "finalize", "treasury.json", "alice-por.psbt", "carol-por.psbt",
              "-o", "por.json", cwd=site)
    proven = as_json("proof", "reserves", "verify", "--proof", "por.json", "--vault", "treasury.json",
                     "--backend", "regtest:chain", "--message-file", "por-message.txt", "-o", "por-verified.json",
                     *coordinator, cwd=site)
    assert (proven["valid"], proven["proven_amount"], proven["coin_count"]) == (True, held["treasury"], 4)
    assert proven["height"] == chain_state[-1][0] and proven["recorded"] is True

    # one coin (the smallest) is spent in an ordinary 2-of-3 ceremony; the same proof now fails, naming it
    coins = as_json("regtest", "utxos", "chain", "--vault", "treasury.json", cwd=site)
    coins = coins["utxos"] if isinstance(coins, dict) else coins
    smallest = min(coins, key=lambda u: u["amount"])
    (site / "one-coin.json").write_text(json.dumps([smallest]))
    msigvault("psbt", "create", "treasury.json", "--utxos", "one-coin.json", "--to", f"{EXTERNAL}:max",
              "--fee-rate", "2", "-o", "spend.psbt", cwd=site)
    for name in ("alice", "carol"):
        msigvault("psbt", "sign", "treasury.json", "spend.psbt", "--key", f"{name}.key", "--yes",
                  "-o", f"{name}-spend.psbt", cwd=site, who=name)
    msigvault("psbt", "combine", "treasury.json", "alice-spend.psbt", "carol-spend.psbt", "-o", "spend-all.psbt",
              cwd=site)
    msigvault("psbt", "finalize", "treasury.json", "spend-all.psbt", "-o", "spend-final.psbt", cwd=site)
    msigvault("broadcast", "treasury.json", "spend-final.psbt", "--chain", "chain", cwd=site)
    refused = msigvault("proof", "reserves", "verify", "--proof", "por.json", "--vault", "treasury.json",
                        "--backend", "regtest:chain", "--message-file", "por-message.txt", "-o", "por-after-spend.json",
                        *coordinator, "--json", cwd=site, ok=False)
    assert refused.returncode == 2
    error = json.loads(refused.stdout)["error"]
    spent_outpoint = f"{smallest['txid']}:{smallest['vout']}"
    assert error["code"] == "reserves.coin-spent" and spent_outpoint in error["message"]
    after = json.loads((site / "por-after-spend.json").read_text())
    assert after["valid"] is False and [c["outpoint"] for c in after["failing"]] == [spent_outpoint]

    # -- the report for those five days ------------------------------------------------------------
    msigvault("report", "reserves", *coordinator[:2], "--config", "valuation.json", "--health", "health-report.json",
              "--proof", "por-verified.json", "--proof", "por-after-spend.json", "-o", "report", cwd=site)
    report = json.loads((site / "report" / "reserves.json").read_text())
    closes = sample_closes()
    assert [d["date"] for d in report["days"]] == [d.isoformat() for d in DAYS]
    previous_total, peak, cumulative = None, {}, {pair: Fraction(0) for pair in PAIRS}
    for d, (height, tip, sats) in zip(report["days"], chain_state):
        total = sats["treasury"] + sats["reserve"]
        assert (d["height"], d["block_hash"], d["total_sats"]) == (height, tip, total)
        assert [(v["name"], v["sats"]) for v in d["vaults"]] == [("treasury", sats["treasury"]),
                                                                 ("reserve", sats["reserve"])]
        for pair in PAIRS:
            close = closes[(pair, d["date"])]
            p = d["pairs"][pair]
            assert Fraction(p["close"]) == close
            assert p["value"] == cents(total * close / 10**8)
            for v in d["vaults"]:
                assert v["values"][pair] == cents(v["sats"] * close / 10**8)
            if previous_total is not None:  # market P&L: what was held yesterday, times the move
                yesterday = closes[(pair, (dt.date.fromisoformat(d["date"]) - dt.timedelta(days=1)).isoformat())]
                pnl = previous_total * (close - yesterday) / 10**8
                cumulative[pair] += pnl
                assert p["pnl"] == cents(pnl) and p["cumulative_pnl"] == cents(cumulative[pair])
                assert p["flows"] == cents((total - previous_total) * close / 10**8)
            value = total * close / 10**8  # drawdown: below the highest value so far, in %
            peak[pair] = max(peak.get(pair, value), value)
            assert p["drawdown_pct"] == pct4((peak[pair] - value) / peak[pair] * 100)
        previous_total = total
    usd = [closes[("BTC/USD", d.isoformat())] for d in DAYS]
    falls = [d.isoformat() for i, d in enumerate(DAYS[1:], 1) if (usd[i] / usd[i - 1] - 1) * 100 < -3]
    assert falls == ["2026-11-07"]  # the sample's 3.8 % fall, and only it
    below = [d.isoformat() for d, usd_close, (_, _, sats) in zip(DAYS, usd, chain_state)
             if (sats["treasury"] + sats["reserve"]) * usd_close / 10**8 < 200_000]
    assert below == ["2026-11-04"]  # 2 BTC on the first day, before the treasury grows
    assert sorted((f["date"], f["pair"], f["kind"]) for f in report["flags"]) == sorted(
        [(d, "BTC/USD", "daily-fall") for d in falls] + [(d, "BTC/USD", "value-below") for d in below])
    assert report["illustrative_prices"] is True and report["missing"] == {"days": [], "prices": []}
    # the health check and both proofs are in the report, compared with the recorded holdings
    (h,) = report["health_checks"]
    assert h["all_passed"] is False
    assert {k["fingerprint"]: (k["status"], k["days_waiting"]) for k in h["keyholders"]} == status
    ok, bad = report["proofs_of_reserves"]
    assert (ok["valid"], ok["proven_sats"], ok["recorded_sats"], ok["matches_holdings"]) == \
        (True, held["treasury"], held["treasury"], True)
    assert bad["valid"] is False and bad["failing"][0].startswith(spent_outpoint)

    # the page opens, its images are real PNGs, and every number on it is the JSON's
    page = Page()
    page.feed((site / "report" / "reserves.html").read_text())
    assert page.stack == [] and {"Key-health checks", "Proofs of reserves"} <= set(page.headings)
    assert len(page.images) == 4
    for uri in page.images:
        png = base64.b64decode(uri.removeprefix("data:image/png;base64,"))
        with Image.open(io.BytesIO(png)) as img:
            low, high = img.convert("L").getextrema()
            assert img.format == "PNG" and low < high  # not blank
    assert len(page.cells) > 100
    for path, text in page.cells:
        expected = walk(report, path)
        assert text == ("\u2014" if expected is None else str(expected)), path
    silent = [k["fingerprint"] for k in h["keyholders"]].index(fingerprints["bob"])
    assert (f"health_checks.0.keyholders.{silent}.days_waiting", "3") in page.cells  # bob, 3 days
    assert ("proofs_of_reserves.0.proven_sats", str(held["treasury"])) in page.cells

    # -- the audit log holds every step, signed and hash-chained ----------------------------------
    assert as_json("audit", "verify", "--db", db, cwd=site)["ok"] is True
    entries = Coordinator(Database.open(db), None).audit_entries()
    events = [e["event"] for e in entries]
    assert events.count("valuation.recorded") == 5 and events.count("health.reported") == 1
    assert events.count("reserves.verified") == 2
    valued = [e["data"] for e in entries if e["event"] == "valuation.recorded"]
    assert [(v["date"], sum(x["sats"] for x in v["vaults"])) for v in valued] == \
        [(d.isoformat(), s["treasury"] + s["reserve"]) for d, (_, _, s) in zip(DAYS, chain_state)]
