"""msigvault value / msigvault report: daily mark-to-market of the reserve and the reports people read (issue 17).

Everything heavy (backends, SQLAlchemy, matplotlib) is imported inside the commands.
"""

from __future__ import annotations

import re

import click

from .common import CliError, check_writable, check_writable_dir, emit, json_option


def register(cli: click.Group) -> None:
    """Add ``msigvault value`` and ``msigvault report``."""
    cli.add_command(value)
    cli.add_command(report)


series_options = [
    click.option("--db", "db_url", default=None, metavar="URL",
                 help="Keep the series in this coordinator database (sqlite:///FILE, postgresql://...)."),
    click.option("--series", "series_path", type=click.Path(dir_okay=False), default=None,
                 help="Else keep it in this JSON file (written atomically)."),
    click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                 help="Valuation config (JSON): pairs, thresholds, total reserves (docs/reserves.md); "
                      "without one: BTC/USD, BTC/EUR, BTC/KZT to record, the recorded pairs to show."),
]


def _with(options):
    def deco(f):
        for o in reversed(options):
            f = o(f)
        return f
    return deco


def _series(db_url, series_path):
    from ..reserves.valuation import open_series

    if db_url is not None and series_path is not None:
        raise CliError("give --db URL or --series FILE, not both")
    if db_url is None and series_path is None:
        raise CliError("say where the series is kept: --db URL (the coordinator database) or --series FILE")
    return open_series(db_url=db_url, path=series_path)


def _config(config_path, pairs=()):
    from dataclasses import replace

    from ..reserves.valuation import ValuationConfig, load_config

    cfg = load_config(config_path) if config_path else ValuationConfig()
    if pairs:
        from ..reserves.prices import check_pair

        chosen = tuple(dict.fromkeys(check_pair(p) for p in pairs))
        cfg = replace(cfg, pairs=chosen, thresholds={k: v for k, v in cfg.thresholds.items() if k in chosen},
                      total_reserves={k: v for k, v in cfg.total_reserves.items() if k in chosen})
    return cfg


@click.group()
def value():
    """Daily mark-to-market of the reserve: record a day's valuation, show the series."""


@value.command("record")
@click.argument("vaultfiles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--date", "day", required=True, help="The day valued, YYYY-MM-DD.")
@click.option("--backend", "backend_url", default=None, metavar="URL", help="Read holdings from this chain backend.")
@click.option("--chain", "chain_dir", type=click.Path(file_okay=False), default=None,
              help="Read holdings from a local regtest chain directory.")
@click.option("--utxos", "snapshots", multiple=True, type=click.Path(dir_okay=False),
              help="Read holdings from UTXO snapshots ('vault utxos -o'), one per vault, in the vaults' order.")
@click.option("--height", type=click.IntRange(0), default=None, help="With --utxos: the block the snapshots are of.")
@click.option("--block-hash", default=None, help="With --utxos: that block's hash.")
@click.option("--min-conf", type=click.IntRange(1), default=1, show_default=True,
              help="With --backend/--chain: coins need this many confirmations to count.")
@click.option("--prices", "prices_path", default=None, metavar="FILE|sample",
              help="Daily closes (CSV or JSON); 'sample' is the shipped ILLUSTRATIVE sample.")
@click.option("--price-url", default=None, metavar="TEMPLATE",
              help="Else an HTTP price API, e.g. https://HOST/close?pair={base}-{quote}&date={date}.")
@click.option("--price-field", default=None, metavar="PATH",
              help="With --price-url: where the close is in the JSON answer (a.b.0.c).")
@click.option("--price-name", default="price API", show_default=True, help="With --price-url: the source's name.")
@click.option("--pair", "pairs", multiple=True, help="A pair to value (BTC/USD, ...); default: the config's pairs.")
@_with(series_options)
@click.option("--coordinator-key", "key_path", type=click.Path(dir_okay=False), default=None,
              help="With --db: the coordinator's Ed25519 key that signs the audit entry (default as for "
                   "'msigvault session', next to the first vault file).")
@click.option("--replace", is_flag=True, help="Record the day again if it is already recorded.")
@json_option
def value_record(vaultfiles, day, backend_url, chain_dir, snapshots, height, block_hash, min_conf, prices_path,
                 price_url, price_field, price_name, pairs, db_url, series_path, config_path, key_path, replace,
                 as_json):
    """Record one day's valuation: the vaults' holdings as of a block, and each pair's close.

    \b
    Holdings come from exactly one of --backend, --chain or --utxos; prices from --prices or
    --price-url. A missing close is recorded as missing (and reported), never guessed.
    With --db the day is also a signed entry (valuation.recorded) of the coordinator's audit
    log, written in the same transaction as the series.
    """
    from ..reserves.valuation import valuation_of

    cfg = _config(config_path, pairs)
    source = _price_source(prices_path, price_url, price_field, price_name)
    vaults = _load_vaults(vaultfiles)
    if db_url is not None and series_path is None:
        from ..reserves.valuation import DatabaseSeries
        from .sessions import _open

        co = _open(vaultfiles[0], db_url, key_path, write=True)
        for vf in vaults:
            co.register_vault(vf)  # as 'session new' does: a vault the database already holds is unchanged
        store = DatabaseSeries(co.db)
    else:
        co, store = None, _series(db_url, series_path)
    holdings = _holdings(vaults, backend_url, chain_dir, snapshots, height, block_hash, min_conf)
    dv = valuation_of(day, holdings, source, cfg.pairs)
    if co is not None:
        store.record(dv, replace=replace, coordinator=co)
    else:
        store.record(dv, replace=replace)
    missing = [p for p, price in dv.prices if price is None]
    lines = [f"recorded {dv.day} in {store.where}: {holdings.total_sats / 1e8:.8f} BTC in {len(holdings.vaults)} "
             f"vault(s) at height {holdings.height}"]
    for pair, price in dv.prices:
        lines.append(f"  {pair}: " + (f"close {price.close} ({price.source}, {price.timestamp})" if price
                                      else "NO CLOSE for this day (recorded as missing)"))
    if co is not None:
        lines.append("recorded in the audit log (valuation.recorded)")
    emit(as_json, {**dv.to_dict(), "series": store.where, "missing_prices": missing, "audited": co is not None},
         "\n".join(lines))


def _load_vaults(vaultfiles):
    from .common import load_vault

    vfs = [load_vault(f) for f in vaultfiles]
    if len({vf.vault.network for vf in vfs}) != 1:
        raise CliError("the vaults are on different networks: value one network at a time")
    return vfs


def _price_source(prices_path, price_url, price_field, price_name):
    from ..reserves import prices as P

    if (prices_path is None) == (price_url is None):
        raise CliError("give exactly one price source: --prices FILE (or 'sample') or --price-url TEMPLATE")
    if price_url is not None:
        if not price_field:
            raise CliError("--price-url needs --price-field: where the close is in the answer")
        return P.HttpPriceSource(price_url, price_field, name=price_name)
    return P.sample() if prices_path == "sample" else P.FilePriceSource.load(prices_path)


def _holdings(vfs, backend_url, chain_dir, snapshots, height, block_hash, min_conf):
    from ..reserves.valuation import holdings_from_backend, holdings_from_snapshot

    given = [x for x in (backend_url, chain_dir, snapshots or None) if x]
    if len(given) != 1:
        raise CliError("give exactly one holdings source: --backend URL, --chain DIR or --utxos FILE (per vault)")
    vaults = [(vf.name, vf.vault) for vf in vfs]
    if snapshots:
        return holdings_from_snapshot(vaults, list(snapshots), height=height, block_hash=block_hash)
    if height is not None or block_hash is not None:
        raise CliError("--height and --block-hash go with --utxos; a backend is read at its tip")
    if chain_dir:
        from ..backends.regtest import RegtestBackend

        backend = RegtestBackend.open(chain_dir)
    else:
        from ..backends import open_backend

        backend = open_backend(backend_url, vfs[0].vault.network)
    with backend:
        return holdings_from_backend(vaults, backend, min_conf=min_conf)


@value.command("show")
@_with(series_options)
@json_option
def value_show(db_url, series_path, config_path, as_json):
    """The recorded series: value per pair, P&L, drawdown, missing data and flags."""
    from ..reserves.report import build
    from ..reserves.valuation import analyse

    store = _series(db_url, series_path)
    doc = build(analyse(store.days(), _config(config_path) if config_path else None), series=store.where)
    emit(as_json, doc, _text(doc))


def _text(doc) -> str:
    if not doc["days"]:
        return f"no day recorded yet in {doc['series']}"
    lines = [f"{len(doc['days'])} day(s) in {doc['series']}"]
    for d in doc["days"]:
        vals = "  ".join(f"{pair} {d['pairs'][pair]['value'] or 'NO CLOSE'}"
                         + (f" (dd {d['pairs'][pair]['drawdown_pct']} %)" if d["pairs"][pair]["value"] else "")
                         for pair in doc["pairs"])
        lines.append(f"{d['date']}  height {d['height']}  {d['total_btc']} BTC  {vals}")
    for pair, s in doc["summary"].items():
        lines.append(f"{pair}: cumulative P&L {s['cumulative_pnl']}, max drawdown {s['max_drawdown_pct']} %, "
                     f"volatility {s['volatility_annualised_pct'] or 'n/a'} % a year "
                     f"({s['daily_log_returns']} daily log return(s))")
    if doc["illustrative_prices"]:
        lines.append("WARNING: some closes are ILLUSTRATIVE sample prices, not market data")
    lines += [f"MISSING: no record for {d}" for d in doc["missing"]["days"]]
    lines += [f"MISSING: no {m['pair']} close on {m['date']}" for m in doc["missing"]["prices"]]
    lines += [f"FLAG {f['date']} {f['pair']} {f['kind']}: {f['detail']}" for f in doc["flags"]]
    return "\n".join(lines)


@click.group()
def report():
    """Reports for the finance team and auditors."""


@report.command("reserves")
@_with(series_options)
@click.option("--health", "health_files", multiple=True, type=click.Path(dir_okay=False),
              help="A key-health report ('msigvault health report -o FILE'); repeatable.")
@click.option("--proof", "proof_files", multiple=True, type=click.Path(dir_okay=False),
              help="A proof-of-reserves result (JSON: valid, proven_sats, height, ...); repeatable.")
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="Write STEM.json, STEM.csv and STEM.html here.")
@click.option("--stem", default="reserves", show_default=True, help="The files' name without extension.")
@click.option("--force", is_flag=True, help="Overwrite report files that exist.")
@json_option
def report_reserves(db_url, series_path, config_path, health_files, proof_files, output_dir, stem, force, as_json):
    """Write the reserve report: JSON and CSV for machines, a self-contained HTML page for people.

    \b
    The page shows holdings and value over time, drawdown, the per-vault split (charts embedded
    as PNG), P&L, volatility, missing data, contingency flags, and the key-health and
    proof-of-reserves results given.
    """
    from pathlib import Path

    from ..reserves.report import build, read_document, write_all
    from ..reserves.valuation import analyse

    from ..reserves.report import ReportInputError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", stem) or ".." in stem:
        raise ReportInputError(f"--stem {stem[:40]!r} must be a plain file name (letters, digits, . _ -): the "
                               "files go into the output directory, nowhere else", field="stem")
    store = _series(db_url, series_path)
    check_writable_dir(output_dir)
    for ext in ("json", "csv", "html"):
        if Path(output_dir).is_dir():
            check_writable(Path(output_dir) / f"{stem}.{ext}", force=force)
    doc = build(analyse(store.days(), _config(config_path) if config_path else None), series=store.where,
                health=[read_document(f) for f in health_files], proofs=[read_document(f) for f in proof_files])
    written = [str(p) for p in write_all(doc, output_dir, stem=stem, overwrite=force)]
    emit(as_json, {"written": written, "days": len(doc["days"]), "flags": doc["flags"], "missing": doc["missing"]},
         "\n".join([f"wrote {w}" for w in written]
                   + [f"{len(doc['days'])} day(s), {len(doc['flags'])} flag(s), "
                      f"{len(doc['missing']['days'])} missing day(s), {len(doc['missing']['prices'])} missing close(s)"]))
