"""msigvault intake ...: taking in seized coins with a chain-of-custody record (issue 19);
msigvault migrate ...: rotating keys by moving every coin to a successor vault (docs/rotation.md).

Offline (the seized secrets): ``intake prepare`` and ``intake sign``. Online (no secrets):
``intake scan``, ``intake plan``, ``intake broadcast``, ``intake record``. Anywhere:
``intake verify`` and ``intake html``. See docs/intake.md. Heavy modules are imported inside
the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import NotApproved, approve, check_writable, emit, force_option, json_option, load_vault

NETWORKS = click.Choice(["mainnet", "testnet", "signet", "regtest"])
KINDS = click.Choice(["wif", "mnemonic", "xprv", "descriptor", "electrum"])
BACKEND_HELP = ("Chain backend: core+http://..., esplora+https://..., electrum+ssl://..., regtest:DIR or "
                "bitcoinlib:PROVIDER (see 'msigvault vault scan --help').")
_BIP39_ENV = "MSIGVAULT_BIP39_PASSPHRASE"


def register(cli: click.Group) -> None:
    """Add ``msigvault intake`` and ``msigvault migrate`` and their commands to ``cli``."""
    cli.add_command(intake)
    cli.add_command(migrate)


@click.group()
def intake():
    """Take in seized coins: prepare (offline), scan, plan (online), sign (offline), broadcast, record.

    \b
    offline:  msigvault intake prepare seized.txt -n regtest -o case.watch
    online:   msigvault intake scan case.watch --backend URL -o case.found
    online:   msigvault intake plan case.watch case.found --vault vault.json --fee-rate 2 -o case.plan
    offline:  msigvault intake sign case.plan seized.txt --vault vault.json --policy-id ID -o case.signed
              --wipe-source
    online:   msigvault intake broadcast case.signed --backend URL
    online:   msigvault intake record --case REF --handler NAME ... -o case.record --html case.html
    anywhere: msigvault intake verify case.record
    """


def _source_options(f):
    f = click.option("--kind", type=KINDS, default=None,
                     help="The source's format (default: detected).")(f)
    f = click.option("--bip39-passphrase", "ask_bip39", is_flag=True,
                     help=f"The mnemonic has a BIP39 passphrase: read it from --bip39-passphrase-fd, ${_BIP39_ENV} "
                          "or a prompt.")(f)
    f = click.option("--bip39-passphrase-fd", type=int, default=None,
                     help="Read the BIP39 passphrase from this open file descriptor.")(f)
    return f


def _read_source(path, network, kind, ask_bip39, fd):
    from ..lifecycle.secrets import read_secret_file
    from ..lifecycle.sources import MAX_WALLET_BYTES, parse_source

    passphrase = ""
    if ask_bip39 or fd is not None:
        from ..keys.keystore import read_passphrase

        passphrase = read_passphrase(prompt="BIP39 passphrase of the seized mnemonic: ", env_var=_BIP39_ENV, fd=fd)
    secret = read_secret_file(path, limit=MAX_WALLET_BYTES)
    try:
        return parse_source(secret, network, passphrase=passphrase, kind=kind)
    finally:
        secret.wipe()
        del passphrase


def _now() -> str:
    from ..coordinator.audit import now_text

    return now_text()


def _write(path, data: bytes, force: bool) -> None:
    from ..fileio import write_atomic

    write_atomic(path, data, overwrite=force, secret=True)


def _read(path, limit: int, what: str) -> bytes:
    from ..lifecycle.errors import IntakeFileError

    from ..fileio import read_bounded

    return read_bounded(path, limit, IntakeFileError, what)


def _wipe(path, wipe: bool) -> str:
    if not wipe:
        return ""
    from ..lifecycle.secrets import wipe_file

    wipe_file(path)
    return f"; {path} was overwritten and removed"


@intake.command("prepare")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-n", "--network", type=NETWORKS, required=True, help="The network the seized keys are for.")
@click.option("--accounts", type=click.IntRange(1, 100), default=3, show_default=True,
              help="BIP44/49/84/86 accounts prepared per purpose (mnemonic or master xprv).")
@_source_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The watch file to write.")
@click.option("--wipe-source", is_flag=True, help="Overwrite SOURCE with zeros and remove it afterwards.")
@force_option
@json_option
def intake_prepare(source, network, accounts, kind, ask_bip39, bip39_passphrase_fd, output, wipe_source, force,
                   as_json):
    """OFFLINE: read the seized SOURCE and write a watch file (addresses, scripts, account xpubs; no secret).

    SOURCE holds WIF keys (one per line), a BIP39 mnemonic, one xprv/tprv, descriptors with WIF keys
    (pkh, wpkh, sh(wpkh), tr, sh(multi)), or is an unencrypted Electrum wallet file (standard or
    imported). Lines starting with # are comments."""
    from ..lifecycle.discover import watch_document, watch_groups

    check_writable(output, force=force)
    src = _read_source(source, network, kind, ask_bip39, bip39_passphrase_fd)
    try:
        groups = watch_groups(src, accounts=accounts)
        data = watch_document(src, groups, created=_now())
        summary = src.summary
    finally:
        src.wipe()
    _write(output, data, force)
    note = _wipe(source, wipe_source)
    emit(as_json, {"watch": str(output), "source": summary, "groups": len(groups), "wiped": wipe_source},
         f"wrote {output}: {len(groups)} watch group(s) for {summary}{note}\n"
         "carry the watch file (it holds no secret) to the online machine: msigvault intake scan")


@intake.command("scan")
@click.argument("watch", type=click.Path(dir_okay=False))
@click.option("--backend", "backend_url", required=True, metavar="URL", help=BACKEND_HELP)
@click.option("--gap-limit", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="Stop after this many unused addresses in a row on each account branch.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The found file to write.")
@force_option
@json_option
def intake_scan(watch, backend_url, gap_limit, output, force, as_json):
    """ONLINE: find the coins of a watch file through a backend (each claim checked against its transaction)."""
    from ..backends.url import open_backend
    from ..lifecycle.discover import MAX_WATCH_BYTES, parse_watch
    from ..lifecycle.scan import scan_watch

    check_writable(output, force=force)
    w = parse_watch(_read(watch, MAX_WATCH_BYTES, "watch file"))
    with open_backend(backend_url, w.network) as backend:
        found = scan_watch(w, backend, gap_limit=gap_limit, scanned_at=_now())
        where = backend.where
    _write(output, found.to_bytes(), force)
    lines = [f"{c.outpoint} {c.amount} sats at {c.address} ({c.group}"
             + (f" {c.branch}/{c.index}" if c.branch is not None else "") + ")" for c in found.coins]
    emit(as_json, {"found": str(output), "coins": len(found.coins), "total": found.total,
                   "used": len(found.used), "warnings": list(found.warnings), "backend": where},
         "\n".join(lines + [f"{len(found.coins)} coin(s), {found.total} sats, from {where}; wrote {output}"]
                   + [f"warning: {x}" for x in found.warnings]))


@intake.command("plan")
@click.argument("watch", type=click.Path(dir_okay=False))
@click.argument("found", type=click.Path(dir_okay=False))
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), required=True,
              help="The target vault file (registered).")
@click.option("--fee-rate", type=click.FloatRange(1, 10_000), required=True, help="sat/vB.")
@click.option("--start-index", type=click.IntRange(0, 2**31 - 1), default=None,
              help="First vault receive index to pay (default: the vault file's next receive index).")
@click.option("--min-conf", type=click.IntRange(0), default=1, show_default=True,
              help="Coins with fewer confirmations are left out.")
@click.option("--include-dust", is_flag=True,
              help="Sweep coins worth less than the fee of spending them too (default: left out and listed).")
@click.option("--max-weight", type=click.IntRange(4000, 400_000), default=400_000, show_default=True,
              help="Weight limit of each sweep transaction (more coins: more transactions).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The plan file to write.")
@force_option
@json_option
def intake_plan(watch, found, vaultfile, fee_rate, start_index, min_conf, include_dust, max_weight, output, force,
                as_json):
    """ONLINE: build the unsigned sweep of the found coins into the vault's next receive addresses."""
    from ..lifecycle.discover import MAX_WATCH_BYTES, parse_watch
    from ..lifecycle.scan import MAX_FOUND_BYTES, parse_found
    from ..lifecycle.sweep import make_plan

    check_writable(output, force=force)
    vf = load_vault(vaultfile)
    plan = make_plan(parse_watch(_read(watch, MAX_WATCH_BYTES, "watch file")),
                     parse_found(_read(found, MAX_FOUND_BYTES, "found file")), vf, fee_rate=fee_rate,
                     created=_now(), start_index=start_index, min_conf=min_conf, include_dust=include_dust,
                     max_weight=max_weight)
    _write(output, plan.to_bytes(), force)
    lines = [f"transaction {n}: {len(t.inputs)} coin(s) -> {t.outputs[0][2]} sats to {vf.name} receive "
             f"{t.outputs[0][0]}, fee {t.fee} sats" for n, t in enumerate(plan.transactions)]
    lines += [f"left out {x['txid']}:{x['vout']} ({x['amount']} sats): {x['reason']}" for x in plan.left_out]
    emit(as_json, {"plan": str(output), "transactions": len(plan.transactions),
                   "left_out": list(plan.left_out), "fee": sum(t.fee for t in plan.transactions)},
         "\n".join(lines + [f"wrote {output}: carry it to the offline machine: msigvault intake sign"]))


@intake.command("sign")
@click.argument("plan", type=click.Path(dir_okay=False))
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), required=True,
              help="The target vault file, registered by its keyholders.")
@click.option("--policy-id", required=True,
              help="The receiving vault's policy id as given to you out of band, on paper (checked: the vault "
                   "file alone cannot prove it is not a substitute).")
@_source_options
@click.option("--max-fee-rate", type=click.FloatRange(1, 10_000), default=500, show_default=True, help="sat/vB.")
@click.option("--max-fee", "max_fee_sats", type=click.IntRange(0), default=2_500_000, show_default=True,
              help="Most fee (sats) per transaction.")
@click.option("--max-fee-fraction", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Most fee as a fraction of what a transaction sweeps.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The signed file to write.")
@click.option("--wipe-source", is_flag=True, help="Overwrite SOURCE with zeros and remove it after signing.")
@click.option("--yes", is_flag=True, help="Sign without asking (the summary is still printed).")
@force_option
@json_option
def intake_sign(plan, source, vaultfile, policy_id, kind, ask_bip39, bip39_passphrase_fd, max_fee_rate,
                max_fee_sats, max_fee_fraction, output, wipe_source, yes, force, as_json):
    """OFFLINE: check the plan against the source and the registered vault, then sign the sweep."""
    from ..lifecycle.sweep import MAX_PLAN_BYTES, FeeLimits, parse_plan, sign_plan

    check_writable(output, force=force)
    vf = load_vault(vaultfile)
    p = parse_plan(_read(plan, MAX_PLAN_BYTES, "plan file"))
    limits = FeeLimits(max_fee_rate=max_fee_rate, max_fee_sats=max_fee_sats, max_fee_fraction=max_fee_fraction)
    src = _read_source(source, vf.vault.network, kind, ask_bip39, bip39_passphrase_fd)
    try:
        signed = sign_plan(p, src, vf, signed_at=_now(), limits=limits, policy_id=policy_id)
    finally:
        src.wipe()
    lines = [f"transaction {t.txid}: {t.amount_in} sats in, fee {t.fee} sats ({t.fee / t.vsize:.1f} sat/vB), "
             + ", ".join(f"{a} sats to vault {vf.name!r} receive {i} ({addr})" for i, addr, a in t.outputs)
             for t in signed.transactions]
    click.echo("\n".join(lines + [f"vault policy id {vf.vault.policy_id}: compare it with the one you were given"]),
               err=True)
    if not yes and not approve("Write these signed sweep transactions?"):
        raise NotApproved("not approved: nothing was written")
    _write(output, signed.to_bytes(), force)
    note = _wipe(source, wipe_source)
    emit(as_json, {"signed": str(output), "txids": [t.txid for t in signed.transactions],
                   "verified_by_kernel": signed.verified_by_kernel, "wiped": wipe_source},
         f"wrote {output}: {len(signed.transactions)} signed transaction(s){note}\n"
         "carry it to the online machine: msigvault intake broadcast")


@intake.command("broadcast")
@click.argument("signed", type=click.Path(dir_okay=False))
@click.option("--backend", "backend_url", required=True, metavar="URL", help=BACKEND_HELP)
@json_option
def intake_broadcast(signed, backend_url, as_json):
    """ONLINE: test each signed sweep for mempool acceptance, then broadcast it."""
    from ..backends.url import open_backend
    from ..lifecycle.sweep import MAX_PLAN_BYTES, broadcast, parse_signed

    s = parse_signed(_read(signed, MAX_PLAN_BYTES, "signed sweep file"))
    with open_backend(backend_url, s.network) as backend:
        txids = broadcast(s, backend)
        where = backend.where
    emit(as_json, {"txids": txids, "backend": where},
         "\n".join(f"broadcast {t}" for t in txids) + f"\nthrough {where}; when confirmed: msigvault intake record")


@intake.command("record")
@click.option("--case", "case_ref", required=True, help="The case reference.")
@click.option("--handler", required=True, help="Who handled the seized source.")
@click.option("--description", required=True, help="What the source is (device, label, how it was obtained).")
@click.option("--seized-at", default="", help="When it was seized (free text, e.g. 2026-11-30 14:00 UTC).")
@click.option("--watch", type=click.Path(dir_okay=False), required=True)
@click.option("--found", type=click.Path(dir_okay=False), required=True)
@click.option("--plan", type=click.Path(dir_okay=False), required=True)
@click.option("--signed", type=click.Path(dir_okay=False), required=True)
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), required=True)
@click.option("--backend", "backend_url", required=True, metavar="URL", help="Where to read confirmation heights.")
@click.option("--identity", "identity_file", type=click.Path(dir_okay=False), required=True,
              help="The operator's identity file (msigvault identity new); its passphrase from "
                   "--identity-passphrase-fd, $MSIGVAULT_IDENTITY_PASSPHRASE or a prompt.")
@click.option("--identity-passphrase-fd", type=int, default=None)
@click.option("--allow-unconfirmed", is_flag=True, help="Record sweeps not confirmed yet (height left empty).")
@click.option("--db", "db_url", default=None, help="Coordinator database (default: next to the vault file).")
@click.option("--coordinator-key", "key_path", type=click.Path(dir_okay=False), default=None,
              help="The coordinator's key (default: next to the vault file).")
@click.option("--no-audit", is_flag=True, help="Do not append the record to the coordinator's audit log.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The record (JSON) to write.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), default=None, help="Also write an HTML page.")
@force_option
@json_option
def intake_record(case_ref, handler, description, seized_at, watch, found, plan, signed, vaultfile, backend_url,
                  identity_file, identity_passphrase_fd, allow_unconfirmed, db_url, key_path, no_audit, output,
                  html_out, force, as_json):
    """ONLINE: make the signed chain-of-custody record, append it to the audit log, export JSON (+ HTML)."""
    from ..backends.url import open_backend
    from ..lifecycle.custody import CaseInfo, audit_summary, build_record, to_html, verify_record
    from ..lifecycle.discover import MAX_WATCH_BYTES, parse_watch
    from ..lifecycle.errors import CustodyError
    from ..lifecycle.scan import MAX_FOUND_BYTES, parse_found
    from ..lifecycle.sweep import MAX_PLAN_BYTES, confirmation_heights, parse_plan, parse_signed
    from ..psbt.display import escaped
    from .identity import _load_identity

    check_writable(output, force=force)
    if html_out:
        check_writable(html_out, force=force)
    case = CaseInfo(case_ref, handler, description, seized_at)
    vf = load_vault(vaultfile)
    w = parse_watch(_read(watch, MAX_WATCH_BYTES, "watch file"))
    f = parse_found(_read(found, MAX_FOUND_BYTES, "found file"))
    p = parse_plan(_read(plan, MAX_PLAN_BYTES, "plan file"))
    s = parse_signed(_read(signed, MAX_PLAN_BYTES, "signed sweep file"))
    with open_backend(backend_url, vf.vault.network) as backend:
        heights = confirmation_heights(s, backend)
    waiting = [t for t, h in heights.items() if h is None]
    if waiting and not allow_unconfirmed:
        raise CustodyError(f"sweep {waiting[0]} is not confirmed yet: wait for it (or give --allow-unconfirmed)")
    operator = _load_identity(identity_file, identity_passphrase_fd)
    data = build_record(case, w, f, p, s, vf, heights, operator, recorded_at=_now())
    verified = verify_record(data)
    seq = None
    if not no_audit:
        from .sessions import _open

        co = _open(vaultfile, db_url, key_path, write=True)
        co.register_vault(vf)
        co.record_custody(audit_summary(verified))
        seq = co.verify_log().count - 1
    _write(output, data, force)
    if html_out:
        _write(html_out, to_html(data), force)
    emit(as_json, {**verified.to_dict(), "record": str(output), "html": html_out, "audit_seq": seq},
         f"wrote {output}" + (f" and {html_out}" if html_out else "")
         + f": case {escaped(case_ref)}, {verified.record['swept_total']} sats swept into {escaped(vf.name)}; "
         "record SHA-256 "
         f"{verified.sha256}" + (f"; audit log entry {seq}" if seq is not None else ""))


@intake.command("verify")
@click.argument("record", type=click.Path(dir_okay=False))
@click.option("--trust-key", default=None, help="The operator's signing key or identity id (hex), known out of band.")
@click.option("--audit-export", type=click.Path(dir_okay=False), default=None,
              help="An audit export (msigvault audit export): it must verify and hold this record's entry.")
@json_option
def intake_verify(record, trust_key, audit_export, as_json):
    """Check a custody record offline: signature, totals, and that each sweep pays the listed vault addresses."""
    from ..lifecycle.custody import MAX_RECORD_BYTES, record_in_audit_lines, verify_record

    v = verify_record(_read(record, MAX_RECORD_BYTES, "custody record"), trusted_key=trust_key)
    seq = None
    if audit_export:
        from ..coordinator.audit import verify_export

        verify_export(audit_export)
        seq = record_in_audit_lines(v, Path(audit_export).read_bytes().splitlines()[1:])
    from ..psbt.display import escaped as e  # a record's text is its signer's to choose: shown escaped

    r = v.record
    emit(as_json, {**v.to_dict(), "audit_seq": seq},
         f"custody record OK: case {e(r['case'])}, signed by {e(r['operator']['name'])} "
         f"({e(r['operator']['signing_key'])})\n"
         f"  found {r['found_total']} sats in {len(r['found'])} coin(s); swept {r['swept_total']} sats in "
         f"{len(r['sweeps'])} transaction(s), fees {r['fees_total']}\n"
         f"  into vault {e(r['vault']['name'])} policy id {e(r['vault']['policy_id'])}"
         + (f"\n  unconfirmed: {', '.join(v.unconfirmed)}" if v.unconfirmed else "")
         + (f"\n  recorded in the audit export at entry {seq}" if seq is not None else "")
         + "\ncompare the operator key and the policy id with what you were given out of band")


@intake.command("html")
@click.argument("record", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@force_option
def intake_html(record, output, force):
    """Render a (verified) custody record as a self-contained HTML page."""
    from ..lifecycle.custody import MAX_RECORD_BYTES, to_html

    check_writable(output, force=force)
    _write(output, to_html(_read(record, MAX_RECORD_BYTES, "custody record")), force)
    click.echo(f"wrote {output}")


# -- migrate: key rotation by moving every coin to a successor vault ------------------------------


@click.group()
def migrate():
    """Rotate keys: move every coin of a vault to a registered successor vault (docs/rotation.md).

    \b
    every keyholder: msigvault vault verify successor.json --key K.key
    coordinator:     msigvault migrate plan vault.json successor.json --chain DIR --fee-rate 2 -o rotation/
    coordinator:     msigvault migrate start vault.json successor.json rotation/migration.json
    keyholders:      msigvault psbt sign vault.json rotation/batch-001.psbt --successor successor.json ...
    coordinator:     msigvault session submit ...; msigvault migrate status vault.json MIGRATION --chain DIR
    """


def _migrate_utxos(vf, utxo_file, chain_dir, backend_url):
    from .common import CliError

    if sum(x is not None for x in (utxo_file, chain_dir, backend_url)) != 1:
        raise CliError("give exactly one of --utxos FILE, --chain DIR or --backend URL")
    if utxo_file:
        from .psbts import load_utxos

        return load_utxos(utxo_file), None
    if backend_url:
        from .backends import backend_utxos

        return backend_utxos(vf.vault, backend_url)
    from .chain import open_chain, vault_utxos

    with open_chain(chain_dir) as chain:
        return vault_utxos(chain, vf.vault), chain.height


@migrate.command("plan")
@click.argument("old_vault", type=click.Path(dir_okay=False))
@click.argument("successor_vault", type=click.Path(dir_okay=False))
@click.option("--utxos", "utxo_file", type=click.Path(dir_okay=False), help="JSON list of the old vault's UTXOs.")
@click.option("--chain", "chain_dir", type=click.Path(file_okay=False), help="Take the UTXOs from this regtest chain.")
@click.option("--backend", "backend_url", metavar="URL", help="Take the confirmed UTXOs from this backend.")
@click.option("--fee-rate", type=click.FloatRange(1, 10_000), required=True, help="sat/vB.")
@click.option("--fee-budget", type=click.IntRange(0), default=None,
              help="Refuse a plan whose fees together exceed this many sats.")
@click.option("--max-weight", type=click.IntRange(4000, 400_000), default=400_000, show_default=True,
              help="Weight limit of each batch transaction (WU).")
@click.option("--start-index", type=click.IntRange(0, 2**31 - 1), default=None,
              help="First successor receive index (default: the successor file's next receive index).")
@click.option("--max-fee-sats", type=int, default=None, help="The signers' fee limit per batch (default 2,500,000).")
@click.option("--max-fee-rate", type=float, default=None, help="Likewise for the fee rate (default 1,000 sat/vB).")
@click.option("--max-fee-fraction", type=float, default=None,
              help="Likewise for the fee as a fraction of what a batch moves (default 0.10).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for migration.json and the batch PSBTs.")
@force_option
@json_option
def migrate_plan(old_vault, successor_vault, utxo_file, chain_dir, backend_url, fee_rate, fee_budget, max_weight,
                 start_index, max_fee_sats, max_fee_rate, max_fee_fraction, out_dir, force, as_json):
    """Plan moving every coin of OLD_VAULT to SUCCESSOR_VAULT: batch PSBTs (ordinary spends of the
    old vault) each paying the successor's next receive address (coordinator)."""
    from ..lifecycle.migrate import plan_migration, write_plan
    from .psbts import fee_policy

    old, successor = load_vault(old_vault), load_vault(successor_vault)
    utxos, height = _migrate_utxos(old, utxo_file, chain_dir, backend_url)
    plan = plan_migration(old, successor, utxos, fee_rate=fee_rate, fee_budget=fee_budget, max_weight=max_weight,
                          start_index=start_index, current_height=height,
                          fee_limits=fee_policy(max_fee_sats, max_fee_rate, max_fee_fraction))
    path = write_plan(plan, out_dir, overwrite=force)
    last = plan.batches[-1].successor_index + 1
    if last > successor.next_receive_index:
        successor.with_next_receive_index(last).save(successor_vault, overwrite=True)
    d = plan.to_dict()
    unregistered = sorted({c.fingerprint.hex() for c in successor.vault.cosigners}
                          - set(d["successor"]["registered_by"]))
    from ..psbt.display import escaped

    lines = [f"wrote {path}: {len(plan.batches)} batch(es) moving {len(utxos)} coin(s), {plan.total_in:,} sat, from "
             f"{escaped(old.name)} to successor {escaped(successor.name)} (policy id {successor.vault.policy_id}); fees "
             f"{plan.total_fee:,} sat"]
    lines += [f"  batch {b['batch']}: {len(b['coins'])} coin(s) -> {b['amount_out']:,} sat to {b['address']} "
              f"(successor receive index {b['successor_index']}), fee {b['fee']:,} sat; {out_dir}/{b['psbt']}"
              for b in d["batches"]]
    if unregistered:
        lines.append(f"  note: this copy of the successor holds no registration by {', '.join(unregistered)}: "
                     "each keyholder must register it (vault verify) on their own laptop, or their signer shows PAY")
    lines.append("next: msigvault migrate start OLD SUCCESSOR PLAN, then each keyholder signs with --successor")
    emit(as_json, {**d, "plan": str(path)}, "\n".join(lines))


def _sessions_options(f):
    f = click.option("--coordinator-key", "key_path", type=click.Path(dir_okay=False), default=None,
                     help="The coordinator's key (default: next to the old vault file).")(f)
    f = click.option("--db", "db_url", default=None, help="Coordinator database (default: next to the old vault file).")(f)
    return f


@migrate.command("start")
@click.argument("old_vault", type=click.Path(dir_okay=False))
@click.argument("successor_vault", type=click.Path(dir_okay=False))
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("--proposed-by", default="", help="Who proposes the migration (recorded).")
@click.option("--id", "migration_id", default=None, help="The migration's id (default: mig-<random>).")
@_sessions_options
@json_option
def migrate_start(old_vault, successor_vault, plan, proposed_by, migration_id, db_url, key_path, as_json):
    """Open one signing session per batch of PLAN, linked to one migration record (audited)."""
    from ..lifecycle.migrate import load_plan, start_migration
    from .sessions import _open

    old, successor = load_vault(old_vault), load_vault(successor_vault)
    loaded = load_plan(plan, old, successor)
    co = _open(old_vault, db_url, key_path, write=True)
    status = start_migration(co, loaded, old, successor, proposed_by=proposed_by, migration_id=migration_id)
    emit(as_json, status.to_dict(), status.text() + f"\nnext: send each batch to {old.vault.m} keyholders; they sign "
         f"with --successor {Path(successor_vault).name}; then msigvault migrate status {old_vault} {status.id}")


@migrate.command("status")
@click.argument("old_vault", type=click.Path(dir_okay=False))
@click.argument("migration_id")
@click.option("--chain", "chain_dir", type=click.Path(file_okay=False), default=None,
              help="Regtest chain directory: broadcast finished batches, count confirmations, check the old vault.")
@click.option("--backend", "backend_url", default=None, help="Chain backend URL (likewise).")
@_sessions_options
@json_option
def migrate_status(old_vault, migration_id, chain_dir, backend_url, db_url, key_path, as_json):
    """Follow a migration: finalize and broadcast signed batches, record confirmations, and check
    on the chain that the old vault is empty (then the migration is recorded as completed)."""
    from ..lifecycle.migrate import migration_status
    from .common import CliError
    from .sessions import _backend, _open

    old = load_vault(old_vault)
    backend = _backend(backend_url, chain_dir, old.vault.network)
    if backend is None:
        raise CliError("give --chain DIR or --backend URL: the status is read from the chain")
    co = _open(old_vault, db_url, key_path, write=True, backend=backend)
    status = migration_status(co, migration_id, backend=backend)
    emit(as_json, status.to_dict(), status.text() + (
        "\nmigration COMPLETED: the old vault is empty; see docs/rotation.md for the old keys" if status.completed
        else ""))
