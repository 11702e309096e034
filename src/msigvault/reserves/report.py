"""The reserve report: JSON and CSV for machines, a self-contained HTML page for people.

:func:`build` turns an :class:`~msigvault.reserves.valuation.Analysis` (plus key-health reports
and proof-of-reserves results, given as the JSON documents those commands write) into one JSON
document; :func:`to_csv` and :func:`to_html` render that same document, so every number on the
page is the JSON's (each number cell names its place in the JSON in a ``data-json`` attribute).
Charts are PNG images drawn with matplotlib's Agg renderer (the ``reports`` extra) and embedded
as data URIs: the page needs no other file and no network. Values are rounded half-even to
0.01 and percentages to 4 decimals; charts alone use floats, to draw.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from ..fileio import read_bounded
from .prices import ValuationError
from .valuation import Analysis, money, pct

KIND = "msigvault-reserve-report"
MAX_INPUT_BYTES = 4 * 1024 * 1024  # a health report or proof-of-reserves result
CSV_COLUMNS = ("date", "vault", "policy_id", "height", "block_hash", "sats", "pair", "close", "price_source",
               "price_timestamp", "value", "share_of_vaults_pct", "since", "change", "pnl", "flows",
               "cumulative_pnl", "return_pct", "drawdown_pct", "share_of_total_reserves_pct", "flags")
TOTAL = "TOTAL"
HEALTH_KIND = "msigvault-key-health-report"


class ReportInputError(ValuationError):
    """A document given to the report (health report, proof-of-reserves result) has the wrong shape (``path``)."""

    code = "report.input"


def _btc(sats: int) -> str:
    return f"{sats // 100_000_000}.{sats % 100_000_000:08d}"


# -- inputs from other commands -----------------------------------------------------------------


def read_document(path: "str | Path") -> Any:
    """A JSON document of at most 4 MB (a health report or a proof-of-reserves result)."""
    p = Path(path)
    raw = read_bounded(p, MAX_INPUT_BYTES, ReportInputError, "report input")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ReportInputError(f"{p} is not JSON", path=p) from None


def health_entry(doc: object) -> "dict[str, Any]":
    """A key-health report as ``msigvault health report -o`` (or ``--json``) writes it, checked for shape."""
    if not isinstance(doc, dict) or doc.get("kind") != HEALTH_KIND:
        raise ReportInputError(f"not a key-health report (its 'kind' is not {HEALTH_KIND!r}): give the file "
                               "'msigvault health report -o' writes")
    rows = doc.get("keyholders")
    if not isinstance(rows, list) or not isinstance(doc.get("all_passed"), bool):
        raise ReportInputError("a key-health report needs 'all_passed' and a list of 'keyholders'")
    keyholders = []
    for r in rows:
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in ("fingerprint", "status")):
            raise ReportInputError("each keyholder of a key-health report has a 'fingerprint' and a 'status'")
        waiting = r.get("days_waiting")
        keyholders.append({"fingerprint": r["fingerprint"][:16], "status": r["status"][:16],
                           "reason": str(r.get("reason") or "")[:300],
                           "days_waiting": waiting if isinstance(waiting, int) and not isinstance(waiting, bool)
                           else None})
    return {"policy_id": str(doc.get("policy_id", ""))[:64], "challenge_date": str(doc.get("challenge_date", ""))[:10],
            "as_of": str(doc.get("as_of", ""))[:10], "all_passed": doc["all_passed"] and
            all(k["status"] == "passed" for k in keyholders), "keyholders": keyholders}


def por_entry(doc: object) -> "dict[str, Any]":
    """A proof-of-reserves result: a JSON object with at least ``valid`` (true/false) and the
    amount proven in whole sats, ``proven_sats`` or ``proven_amount`` (as ``msigvault proof
    reserves verify`` writes it); ``height``, ``block_hash``, ``policy_id``, ``vault``,
    ``message``, ``utxo_count`` (or ``coin_count``), ``utxo_set``, ``reason`` and the outpoints of
    ``failing`` coins are shown when present (docs/reserves.md)."""
    if not isinstance(doc, dict):
        raise ReportInputError("a proof-of-reserves result is a JSON object")
    valid = doc.get("valid")
    proven = doc.get("proven_sats", doc.get("proven_amount"))
    if not isinstance(valid, bool) or isinstance(proven, bool) or not isinstance(proven, int) or proven < 0:
        raise ReportInputError("a proof-of-reserves result needs 'valid' (true or false) and 'proven_sats' "
                               "(or 'proven_amount': a whole number of sats)")
    out: "dict[str, Any]" = {"valid": valid, "proven_sats": proven, "proven_btc": _btc(proven)}
    for key, alias in (("height", "height"), ("utxo_count", "coin_count")):
        v = doc.get(key, doc.get(alias))
        out[key] = v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None
    for key, limit in (("block_hash", 64), ("policy_id", 64), ("vault", 200), ("message", 500), ("reason", 500),
                       ("utxo_set", 300)):
        v = doc.get(key)
        out[key] = v[:limit] if isinstance(v, str) else None
    failing = doc.get("failing")
    out["failing"] = [str(f.get("outpoint", ""))[:80] + (f": {str(f.get('note'))[:200]}" if f.get("note") else "")
                      for f in failing[:100] if isinstance(f, dict)] if isinstance(failing, list) else []
    return out


# -- the document -------------------------------------------------------------------------------


def build(analysis: Analysis, *, series: str = "", health: Sequence[object] = (),
          proofs: Sequence[object] = (), generated_at: Optional[str] = None) -> "dict[str, Any]":
    """The report as one JSON-ready document (see docs/reserves.md for its fields)."""
    cfg = analysis.config
    days = [_day(d) for d in analysis.days]
    por = [por_entry(p) for p in proofs]
    for entry in por:
        _match_holdings(entry, analysis)
    return {
        "kind": KIND, "version": 1,
        "generated_at": generated_at or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "series": series, "pairs": list(cfg.pairs),
        "config": {"thresholds": {p: {k: (None if getattr(t, k) is None else str(getattr(t, k)))
                                      for k in ("value_below", "daily_fall_pct", "drawdown_pct")}
                                  for p, t in cfg.thresholds.items()},
                   "total_reserves": {p: str(v) for p, v in cfg.total_reserves.items()}},
        "days": days,
        "summary": {s.pair: {"first_date": _iso(s.first_day), "last_date": _iso(s.last_day),
                             "value": money(s.last_value), "cumulative_pnl": money(s.cumulative_pnl),
                             "max_drawdown_pct": pct(s.max_drawdown_pct), "daily_log_returns": s.daily_log_returns,
                             "volatility_daily_pct": pct(s.volatility_daily_pct),
                             "volatility_annualised_pct": pct(s.volatility_annual_pct)}
                    for s in analysis.summaries},
        "missing": {"days": [d.isoformat() for d in analysis.missing_days],
                    "prices": [{"date": d.isoformat(), "pair": p} for d, p in analysis.missing_prices]},
        "flags": [f.to_dict() for f in analysis.flags],
        "illustrative_prices": any("ILLUSTRATIVE" in (p["source"] or "").upper()
                                   for d in days for p in d["pairs"].values()),
        "health_checks": [health_entry(h) for h in health],
        "proofs_of_reserves": por,
    }


def _iso(d: Optional[_dt.date]) -> Optional[str]:
    return None if d is None else d.isoformat()


def _day(d: Any) -> "dict[str, Any]":
    v = d.valuation
    h = v.holdings
    vaults = []
    for i, vh in enumerate(h.vaults):
        vaults.append({"name": vh.name, "policy_id": vh.policy_id, "sats": vh.sats, "btc": _btc(vh.sats),
                       "coins": vh.coins, "share_pct": pct(d.vault_share_pct[i]),
                       "values": {p.pair: money(p.vault_values[i]) for p in d.pairs}})
    pairs = {}
    for p in d.pairs:
        price = p.price
        pairs[p.pair] = {"close": None if price is None else str(price.close),
                         "source": None if price is None else price.source,
                         "timestamp": None if price is None else price.timestamp,
                         "value": money(p.value), "since": _iso(p.since), "change": money(p.change),
                         "pnl": money(p.pnl), "flows": money(p.flows), "cumulative_pnl": money(p.cumulative_pnl),
                         "return_pct": pct(p.return_pct), "drawdown_pct": pct(p.drawdown_pct),
                         "share_of_total_reserves_pct": pct(p.share_of_total_pct),
                         "flags": [f.kind for f in p.flags]}
    return {"date": v.day.isoformat(), "height": h.height, "block_hash": h.block_hash, "block_time": h.block_time,
            "holdings_source": h.source, "total_sats": h.total_sats, "total_btc": _btc(h.total_sats),
            "vaults": vaults, "pairs": pairs}


def _match_holdings(entry: "dict[str, Any]", analysis: Analysis) -> None:
    """Compare a proof's amount with the holdings recorded at its height (its vault's, or the total)."""
    entry["recorded_sats"] = entry["matches_holdings"] = None
    if entry["height"] is None:
        return
    for d in analysis.days:
        h = d.valuation.holdings
        if h.height != entry["height"]:
            continue
        sats = h.total_sats
        if entry["policy_id"]:
            mine = [v.sats for v in h.vaults if v.policy_id == entry["policy_id"]]
            if not mine:
                continue
            sats = mine[0]
        entry["recorded_sats"] = sats
        entry["matches_holdings"] = entry["valid"] and sats == entry["proven_sats"]
        return


# -- CSV ----------------------------------------------------------------------------------------


def to_csv(report: Mapping[str, Any]) -> str:
    """One row per day, vault and pair, plus a ``TOTAL`` row per day and pair (P&L, drawdown, flags)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for day in report["days"]:
        for pair in report["pairs"]:
            p = day["pairs"][pair]
            t = _text_cell
            common = [pair, p["close"], t(p["source"]), t(p["timestamp"])]
            for v in day["vaults"]:
                w.writerow(_blank([t(day["date"]), t(v["name"]), t(v["policy_id"]), day["height"],
                                   t(day["block_hash"]), v["sats"], *common, v["values"][pair], v["share_pct"]]
                                  + [None] * 8))
            w.writerow(_blank([t(day["date"]), TOTAL, "", day["height"], t(day["block_hash"]), day["total_sats"],
                               *common, p["value"], "100.0000" if day["total_sats"] else None, t(p["since"]),
                               p["change"], p["pnl"], p["flows"], p["cumulative_pnl"], p["return_pct"],
                               p["drawdown_pct"], p["share_of_total_reserves_pct"], t(";".join(p["flags"]))]))
    return buf.getvalue()


def _blank(row: "list[Any]") -> "list[str]":
    return ["" if x is None else str(x) for x in row]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _text_cell(text: "str | None") -> "str | None":
    """Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, their full-width forms,
    tab, CR, LF first, also after leading spaces) gets a leading apostrophe. Every text column goes
    through here (names, policy ids, block hashes, sources, timestamps, dates, flags: whoever can
    write the series file or the database writes them), so none becomes a formula on a finance
    laptop; the number columns are the report's own decimals."""
    if text is None:
        return None
    text = str(text)
    return "'" + text if text.lstrip(" ")[:1] in _FORMULA_START else text


# -- HTML ---------------------------------------------------------------------------------------


def _figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - the reports extra is missing
        raise ValuationError("the HTML report draws its charts with matplotlib: pip install 'msigvault[reports]'") \
            from None
    return Figure(figsize=(8, 3.2), dpi=100, layout="constrained")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _dates(report: Mapping[str, Any]) -> "list[_dt.date]":
    return [_dt.date.fromisoformat(d["date"]) for d in report["days"]]


def _plain(label: object) -> str:
    """A vault name as matplotlib draws it literally: ``$`` would start mathtext (a name like
    ``$\\frac{a}{$`` made the whole report fail, a deeply nested one costly to lay out)."""
    return str(label).replace("$", "\\$")[:200]


def charts(report: Mapping[str, Any]) -> "list[tuple[str, str]]":
    """(title, PNG data URI) of each chart: holdings, value per pair, drawdown, per-vault split."""
    days, dates = report["days"], _dates(report)
    out = []
    fig = _figure()
    ax = fig.add_subplot()
    names = list(dict.fromkeys(v["name"] for d in days for v in d["vaults"]))
    labels = [_plain(n) for n in names]
    stacks = [[next((v["sats"] / 1e8 for v in d["vaults"] if v["name"] == n), 0.0) for d in days] for n in names]
    if days:
        ax.stackplot(dates, *stacks, labels=labels, step="post" if len(days) == 1 else None)
        ax.legend(loc="upper left", fontsize="small")
    ax.set_ylabel("BTC")
    ax.set_title("Holdings per vault (BTC)")
    fig.autofmt_xdate()
    out.append(("Holdings over time", _png(fig)))
    pairs = report["pairs"]
    fig = _figure()
    fig.set_figheight(2.4 * max(1, len(pairs)))
    for i, pair in enumerate(pairs):
        ax = fig.add_subplot(len(pairs), 1, i + 1)
        pts = [(dt, float(d["pairs"][pair]["value"])) for dt, d in zip(dates, days) if d["pairs"][pair]["value"]]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", markersize=3)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)  # KZT in millions, not "1e8"
        ax.set_ylabel(pair.split("/")[1])
        ax.set_title(f"Value in {pair}", fontsize="medium")
    fig.autofmt_xdate()
    out.append(("Value over time", _png(fig)))
    fig = _figure()
    ax = fig.add_subplot()
    drawn = 0
    for pair in pairs:
        pts = [(dt, -float(d["pairs"][pair]["drawdown_pct"])) for dt, d in zip(dates, days)
               if d["pairs"][pair]["drawdown_pct"] is not None]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], label=pair)
            drawn += 1
    if drawn:
        ax.legend(loc="lower left", fontsize="small")
    ax.set_ylabel("% below peak")
    ax.set_title("Drawdown from peak")
    fig.autofmt_xdate()
    out.append(("Drawdown", _png(fig)))
    fig = _figure()
    ax = fig.add_subplot()
    last = days[-1] if days else None
    if last is not None and last["total_sats"]:
        ax.barh([_plain(v["name"]) for v in last["vaults"]], [v["sats"] / 1e8 for v in last["vaults"]])
    ax.set_xlabel("BTC")
    ax.set_title(f"Per-vault split on {last['date'] if last else '-'}")
    out.append(("Per-vault split", _png(fig)))
    return out


def _cell(value: Any, path: str, *, num: bool = True) -> str:
    text = "" if value is None else str(value)
    cls = ' class="num"' if num else ""
    where = f' data-json="{html.escape(path)}"' if path else ""  # only where the text is the JSON's value
    return f'<td{cls}{where}>{html.escape(text) or "&mdash;"}</td>'


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:3px 7px;font-size:90%}th{background:#eee}td.num{text-align:right;
font-variant-numeric:tabular-nums}.warn{background:#fff3cd;border:1px solid #d39e00;padding:.7em}
.bad{color:#a00;font-weight:bold}.ok{color:#070}img{max-width:100%;display:block;margin:1em 0}"""


def to_html(report: Mapping[str, Any]) -> str:
    """A self-contained page: summary, flags, missing data, daily table, vaults, health, proofs, charts."""
    pairs = report["pairs"]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Reserve report</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>Reserve report</h1>",
             f"<p>Generated {_esc(report['generated_at'])} from {_esc(report['series'])}. Values are rounded "
             "half-even to 0.01, percentages to 4 decimals; every number below is the JSON report's.</p>"]
    if report["illustrative_prices"]:
        parts.append('<p class="warn" id="illustrative">Some prices are ILLUSTRATIVE sample closes, not market '
                     "data: these values are for rehearsal only.</p>")
    parts.append("<h2>Summary</h2><table><tr><th>pair</th><th>from</th><th>to</th><th>value</th>"
                 "<th>cumulative P&amp;L</th><th>max drawdown %</th><th>daily log returns</th>"
                 "<th>volatility, daily %</th><th>volatility, annualised %</th></tr>")
    for pair in pairs:
        s = report["summary"][pair]
        base = f"summary.{pair}"
        parts.append(f"<tr><th>{_esc(pair)}</th>" + "".join(
            _cell(s[k], f"{base}.{k}", num=k not in ("first_date", "last_date"))
            for k in ("first_date", "last_date", "value", "cumulative_pnl", "max_drawdown_pct", "daily_log_returns",
                      "volatility_daily_pct", "volatility_annualised_pct")) + "</tr>")
    parts.append("</table>")
    parts.append("<h2>Contingency flags</h2>")
    if report["flags"]:
        parts.append("<table><tr><th>date</th><th>pair</th><th>flag</th><th>detail</th></tr>" + "".join(
            f'<tr class="bad">{_cell(f["date"], f"flags.{i}.date", num=False)}'
            f'{_cell(f["pair"], f"flags.{i}.pair", num=False)}{_cell(f["kind"], f"flags.{i}.kind", num=False)}'
            f'{_cell(f["detail"], f"flags.{i}.detail", num=False)}</tr>' for i, f in enumerate(report["flags"]))
            + "</table>")
    else:
        parts.append('<p class="ok">No threshold was crossed.</p>')
    missing = report["missing"]
    parts.append("<h2>Missing data</h2>")
    if missing["days"] or missing["prices"]:
        parts.append('<p class="bad">Nothing below was interpolated: these days or closes are absent.</p><ul>'
                     + "".join(f'<li>no record for <span data-json="missing.days.{i}">{_esc(d)}</span></li>'
                               for i, d in enumerate(missing["days"]))
                     + "".join(f'<li>no <span data-json="missing.prices.{i}.pair">{_esc(m["pair"])}</span> close on '
                               f'<span data-json="missing.prices.{i}.date">{_esc(m["date"])}</span></li>'
                               for i, m in enumerate(missing["prices"])) + "</ul>")
    else:
        parts.append('<p class="ok">Every day between the first and the last has a record with every close.</p>')
    parts.append(_daily_table(report))
    parts.append(_vault_table(report))
    parts.append(_health_section(report))
    parts.append(_por_section(report))
    parts.append("<h2>Charts</h2>")
    for title, uri in charts(report):
        parts.append(f"<h3>{_esc(title)}</h3><img alt=\"{_esc(title)}\" src=\"{uri}\">")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _daily_table(report: Mapping[str, Any]) -> str:
    pairs = report["pairs"]
    cols = ("close", "value", "pnl", "flows", "cumulative_pnl", "return_pct", "drawdown_pct",
            "share_of_total_reserves_pct")
    head = "".join(f"<th>{_esc(pair)} {c.replace('_', ' ')}</th>" for pair in pairs for c in cols)
    rows = []
    for i, d in enumerate(report["days"]):
        cells = [_cell(d["date"], f"days.{i}.date", num=False), _cell(d["height"], f"days.{i}.height"),
                 _cell(d["total_btc"], f"days.{i}.total_btc")]
        cells += [_cell(d["pairs"][pair][c], f"days.{i}.pairs.{pair}.{c}") for pair in pairs for c in cols]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<h2>Daily valuation (all vaults)</h2><table><tr><th>date</th><th>height</th><th>BTC</th>" + head
            + "</tr>" + "".join(rows) + "</table>")


def _vault_table(report: Mapping[str, Any]) -> str:
    if not report["days"]:
        return "<h2>Vaults</h2><p>No day recorded yet.</p>"
    i = len(report["days"]) - 1
    d = report["days"][i]
    head = "".join(f"<th>value {_esc(p)}</th>" for p in report["pairs"])
    rows = []
    for j, v in enumerate(d["vaults"]):
        base = f"days.{i}.vaults.{j}"
        rows.append(f"<tr>{_cell(v['name'], base + '.name', num=False)}{_cell(v['policy_id'], base + '.policy_id', num=False)}"
                    f"{_cell(v['btc'], base + '.btc')}{_cell(v['coins'], base + '.coins')}"
                    f"{_cell(v['share_pct'], base + '.share_pct')}"
                    + "".join(_cell(v["values"][p], f"{base}.values.{p}") for p in report["pairs"]) + "</tr>")
    return (f"<h2>Vaults on {_esc(d['date'])} (block {_esc(d['height'])} {_esc(d['block_hash'])})</h2>"
            f"<p>Holdings from {_esc(d['holdings_source'])}.</p><table><tr><th>vault</th><th>policy id</th>"
            f"<th>BTC</th><th>coins</th><th>share %</th>{head}</tr>" + "".join(rows) + "</table>")


def _health_section(report: Mapping[str, Any]) -> str:
    checks = report["health_checks"]
    if not checks:
        return "<h2>Key-health checks</h2><p>None given.</p>"
    out = ["<h2>Key-health checks</h2>"]
    for i, h in enumerate(checks):
        verdict = '<span class="ok">all passed</span>' if h["all_passed"] else '<span class="bad">NOT all passed</span>'
        out.append(f"<p>Vault {_esc(h['policy_id'])}, challenged {_esc(h['challenge_date'])}, as of "
                   f"{_esc(h['as_of'])}: {verdict}</p><table><tr><th>keyholder</th><th>status</th>"
                   "<th>days waiting</th><th>reason</th></tr>")
        for j, k in enumerate(h["keyholders"]):
            base = f"health_checks.{i}.keyholders.{j}"
            out.append(f"<tr>{_cell(k['fingerprint'], base + '.fingerprint', num=False)}"
                       f"{_cell(k['status'].upper(), '', num=False)}"
                       f"{_cell(k['days_waiting'], base + '.days_waiting')}{_cell(k['reason'], base + '.reason', num=False)}</tr>")
        out.append("</table>")
    return "".join(out)


def _por_section(report: Mapping[str, Any]) -> str:
    proofs = report["proofs_of_reserves"]
    if not proofs:
        return "<h2>Proofs of reserves</h2><p>None given.</p>"
    out = ["<h2>Proofs of reserves</h2><table><tr><th>valid</th><th>proven BTC</th><th>proven sats</th>"
           "<th>height</th><th>recorded sats</th><th>matches holdings</th><th>vault</th><th>message</th>"
           "<th>failing coins</th></tr>"]
    for i, p in enumerate(proofs):
        base = f"proofs_of_reserves.{i}"
        valid = "VALID" if p["valid"] else "INVALID"
        match = {True: "yes", False: "NO", None: "not compared"}[p["matches_holdings"]]
        out.append(f"<tr>{_cell(valid, '', num=False)}{_cell(p['proven_btc'], base + '.proven_btc')}"
                   f"{_cell(p['proven_sats'], base + '.proven_sats')}{_cell(p['height'], base + '.height')}"
                   f"{_cell(p['recorded_sats'], base + '.recorded_sats')}{_cell(match, '', num=False)}"
                   f"{_cell(p['vault'] or p['policy_id'], '', num=False)}"
                   f"{_cell(p['message'], base + '.message', num=False)}"
                   f"{_cell('; '.join(p['failing']), '', num=False)}</tr>")
    out.append("</table>")
    return "".join(out)


def write_all(report: Mapping[str, Any], directory: "str | Path", *, stem: str = "reserves",
              overwrite: bool = False, formats: Iterable[str] = ("json", "csv", "html")) -> "list[Path]":
    """Write ``STEM.json``, ``STEM.csv`` and ``STEM.html`` into ``directory`` (each atomically)."""
    from ..fileio import write_atomic

    if not isinstance(stem, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", stem) or ".." in stem:
        raise ReportInputError(f"the report's file name stem {str(stem)[:40]!r} must be a plain name (letters, "
                               "digits, . _ -): the files go into the output directory, nowhere else", field="stem")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    renders = {"json": lambda: json.dumps(report, indent=2) + "\n", "csv": lambda: to_csv(report),
               "html": lambda: to_html(report)}
    bodies = {f: renders[f]().encode() for f in formats}  # render everything before writing anything
    return [write_atomic(d / f"{stem}.{f}", body, overwrite=overwrite) for f, body in bodies.items()]
