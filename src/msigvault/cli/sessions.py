"""msigvault session ... and msigvault audit ...: signing sessions in the coordinator database.

Nothing of SQLAlchemy is imported until a command runs (``msigvault --help`` stays fast).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from .common import CliError, emit, force_option, json_option, load_vault, read_input

_DURATION = re.compile(r"^(\d+)([smhd])$")


def register(cli: click.Group) -> None:
    cli.add_command(session)
    cli.add_command(audit)


def _db_options(f):
    f = click.option("--coordinator-key", "key_path", type=click.Path(dir_okay=False), default=None,
                     help="The coordinator's Ed25519 key (PEM); default $MSIGVAULT_COORDINATOR_KEY, else "
                          "VAULT.coordinator.key next to the vault file (created on first use, mode 0600).")(f)
    f = click.option("--db", "db_url", default=None,
                     help="Database URL: sqlite:///FILE or postgresql://USER@HOST/DB (default: "
                          "VAULT.sessions.sqlite next to the vault file).")(f)
    f = click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), default=None,
                     help="The vault file (for the default database and key locations).")(f)
    return f


def _backend_options(f):
    f = click.option("--chain", "chain_dir", type=click.Path(file_okay=False), default=None,
                     help="Broadcast to this regtest chain directory.")(f)
    f = click.option("--backend", "backend_url", default=None,
                     help="Chain backend URL (core+http://..., esplora+https://..., regtest:DIR).")(f)
    return f


def _open(vaultfile, db_url, key_path, *, write: bool, backend=None):
    from ..coordinator.audit import Identity
    from ..coordinator.db import Database, default_url
    from ..coordinator.sessions import Coordinator

    if db_url is None:
        if vaultfile is None:
            raise CliError("give --db URL or --vault VAULTFILE (the database is then next to the vault file)")
        db_url = default_url(vaultfile)
    identity = Identity.load_or_create(_key_path(key_path, vaultfile)) if write else None
    return Coordinator(Database.open(db_url), identity, backend=backend)


def _key_path(key_path, vaultfile):
    key_path = key_path or os.environ.get("MSIGVAULT_COORDINATOR_KEY")
    if key_path is None:
        if vaultfile is None:
            raise CliError("give --coordinator-key FILE (or --vault VAULTFILE: the key is then next to it)")
        p = Path(vaultfile)
        key_path = p.with_name(p.stem + ".coordinator.key")
    return key_path


def _backend(backend_url, chain_dir, network):
    if backend_url and chain_dir:
        raise CliError("give --backend URL or --chain DIR, not both")
    if chain_dir:
        from ..backends.regtest import RegtestBackend

        backend = RegtestBackend.open(chain_dir)
    elif backend_url:
        from ..backends.url import open_backend

        backend = open_backend(backend_url, network)
    else:
        return None
    click.get_current_context().call_on_close(backend.close)  # the chain directory's lock, connections
    return backend


def _duration(text):
    if text is None:
        return None
    from datetime import timedelta

    m = _DURATION.match(text.strip())
    if not m:
        raise CliError(f"--expires takes a duration such as 90m, 24h or 7d, not {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})


def _pairs(values, what):
    out = {}
    for v in values:
        fp, sep, value = v.partition("=")
        if not sep or len(fp) != 8:
            raise CliError(f"{what} takes FINGERPRINT=HEX (8 hex digits, '=', the value), not {v!r}")
        out[fp.lower()] = value.strip().lower()
    return out


def _session_text(s, submissions=None) -> str:
    lines = [f"session {s.id}  [{s.status.value}]  vault {s.vault_name} ({s.vault_id[:16]}...)",
             f"  txid {s.txid}" + (f"  final {s.final_txid}" if s.final_txid and s.final_txid != s.txid else ""),
             f"  proposed by {s.proposed_by or '-'} at {s.created_at}" + (f", expires {s.expires_at}" if s.expires_at else ""),
             f"  memo: {s.memo}" if s.memo else "  memo: -"]
    for o in s.summary["outputs"]:
        lines.append(f"  {'PAY' if o['kind'] == 'payment' else o['kind']:<13} {o['amount']:>15,} sat  {o['address']}")
    lines.append(f"  fee {s.summary['fee']:,} sat ({s.summary['fee_rate']} sat/vB)")
    lines.append(f"  signatures: {len(s.signed)} of {s.threshold}" +
                 (f" ({s.signatures_needed} more needed)" if s.signatures_needed else ""))
    for c in s.cosigners:
        lines.append(f"    {c.fingerprint}  {c.state.value}" + (f": {c.reason}" if c.reason else ""))
    if s.confirmations:
        lines.append(f"  confirmations: {s.confirmations} (block height {s.confirmed_height})")
    from ..coordinator.audit import now_text

    if s.status.value in ("open", "finalized") and s.expires_at and s.expires_at <= now_text():
        lines.append(f"  OVERDUE: expired at {s.expires_at}; it takes no more signatures "
                     "('msigvault session expire' records it)")
    for label, value in (("replaces", s.replaces), ("replaced by", s.replaced_by), ("closed", s.closed_reason),
                         ("last error", s.last_error)):
        if value:
            lines.append(f"  {label}: {value}")
    for sub in submissions or []:
        lines.append(f"  submission {sub['psbt_sha256'][:16]}... {sub['outcome']}"
                     + (f" ({', '.join(sub['signers'])})" if sub["signers"] else "")
                     + (f": {sub['reason']}" if sub["reason"] else ""))
    return _shown(lines)


def _shown(lines) -> str:
    """Lines for the operator's terminal: reasons, memos and names come from keyholder sites and operators
    over the network, so every non-printable character (escape sequences, CR/LF, bidi overrides) is shown
    escaped and cannot draw over the session's state."""
    from ..site.request import printable

    return "\n".join(printable(line) for line in lines)


@click.group()
def session():
    """Signing sessions: who was asked, who signed, what was broadcast (the coordinator database)."""


@session.command("new")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("psbtfile", type=click.Path(dir_okay=False))
@click.option("--memo", default="", help="What the spend is for.")
@click.option("--proposed-by", default="", help="Who proposes it.")
@click.option("--expires", default=None, help="Expire after this long (90m, 24h, 7d).")
@click.option("--replaces", default=None, help="This spend replaces (RBF fee bump) that session.")
@click.option("--id", "session_id", default=None,
              help="The session's id (4 to 32 of a-z, 0-9, '-', e.g. a ticket number); default a random one.")
@click.option("--identity", "identities", multiple=True,
              help="FINGERPRINT=PUBKEY: a keyholder's Ed25519 identity key (64 hex); their submissions must "
                   "then carry their identity signature. Repeatable.")
@click.option("--db", "db_url", default=None, help="Database URL (default: next to the vault file).")
@click.option("--coordinator-key", "key_path", type=click.Path(dir_okay=False), default=None,
              help="The coordinator's Ed25519 key (default: next to the vault file).")
@json_option
def session_new(vaultfile, psbtfile, memo, proposed_by, expires, replaces, session_id, identities, db_url, key_path,
                as_json):
    """Open a session for an unsigned PSBT of VAULTFILE (registering the vault with the coordinator)."""
    from ..psbt.psbt import Psbt

    vf = load_vault(vaultfile)
    psbt = Psbt.load(read_input(psbtfile))
    co = _open(vaultfile, db_url, key_path, write=True)
    pid = co.register_vault(vf, _pairs(identities, "--identity") if identities else None)
    s = co.new_session(pid, psbt, memo=memo, proposed_by=proposed_by, expires_in=_duration(expires),
                       replaces=replaces, session_id=session_id)
    emit(as_json, s.to_dict(), _session_text(s) + f"\n\nsend the PSBT to the keyholders, then: "
                                                  f"msigvault session submit {s.id} SIGNED.psbt")


@session.command("list")
@click.option("--status", type=click.Choice(["open", "finalized", "broadcast", "confirmed", "cancelled", "expired",
                                             "replaced"]), default=None)
@_db_options
@json_option
def session_list(status, vaultfile, db_url, key_path, as_json):
    """Every session, oldest first, with how many signatures each has."""
    co = _open(vaultfile, db_url, key_path, write=False)
    sessions = co.list(status=status)
    emit(as_json, [s.to_dict() for s in sessions],
         _shown(f"{s.id}  {s.status.value:<9}  {len(s.signed)}/{s.threshold} signed  {s.vault_name}  "
                f"{s.memo}" for s in sessions) or "no sessions")


@session.command("show")
@click.argument("session_id")
@_db_options
@json_option
def session_show(session_id, vaultfile, db_url, key_path, as_json):
    """Who has signed, refused or is unreachable; outputs, fee, submissions and the state."""
    co = _open(vaultfile, db_url, key_path, write=False)
    s = co.get(session_id)
    subs = co.submissions(s.id)
    emit(as_json, {**s.to_dict(), "submissions": subs}, _session_text(s, subs))


@session.command("submit")
@click.argument("session_id")
@click.argument("psbtfile", type=click.Path(dir_okay=False))
@click.option("--identity-signature", "signatures", multiple=True,
              help="FINGERPRINT=SIG: the keyholder's Ed25519 signature (128 hex) over the submission "
                   "statement (required when their identity key is registered). Repeatable.")
@_backend_options
@_db_options
@json_option
def session_submit(session_id, psbtfile, signatures, backend_url, chain_dir, vaultfile, db_url, key_path, as_json):
    """Verify a signed copy and store it; with --backend/--chain, finalize and broadcast once m are in."""
    co = _open(vaultfile, db_url, key_path, write=True)
    s = co.get(session_id)
    co.backend = _backend(backend_url, chain_dir, co.vault_file(s.vault_id).vault.network)
    result = co.submit(s.id, read_input(psbtfile), identity_signatures=_pairs(signatures, "--identity-signature"))
    s = result.session
    emit(as_json, result.to_dict(),
         f"{result.outcome}: signatures by {', '.join(result.signers)}\n" + _session_text(s))


@session.command("cancel")
@click.argument("session_id")
@click.option("--reason", default="", help="Why (recorded in the audit log).")
@click.option("--by", default="", help="Who cancels.")
@_db_options
@json_option
def session_cancel(session_id, reason, by, vaultfile, db_url, key_path, as_json):
    """Cancel an open or finalized session (its coins are free for a new one)."""
    co = _open(vaultfile, db_url, key_path, write=True)
    s = co.cancel(session_id, reason, by=by)
    emit(as_json, s.to_dict(), f"session {s.id} cancelled")


@session.command("finalize")
@click.argument("session_id")
@click.option("--tx", "tx_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the final transaction in hex.")
@_backend_options
@_db_options
@force_option
@json_option
def session_finalize(session_id, tx_out, backend_url, chain_dir, vaultfile, db_url, key_path, force, as_json):
    """Combine the stored signatures, finalize and extract (verified against the backend's UTXOs)."""
    co = _open(vaultfile, db_url, key_path, write=True)
    s = co.get(session_id)
    co.backend = _backend(backend_url, chain_dir, co.vault_file(s.vault_id).vault.network)
    s = co.finalize(s.id)
    if tx_out:
        from .common import write_output

        write_output(tx_out, s.final_tx.hex().encode() + b"\n", force=force)
    emit(as_json, s.to_dict(), f"session {s.id} finalized: txid {s.final_txid}")


@session.command("broadcast")
@click.argument("session_id")
@_backend_options
@_db_options
@json_option
def session_broadcast(session_id, backend_url, chain_dir, vaultfile, db_url, key_path, as_json):
    """Broadcast the finalized transaction and record its confirmations."""
    co = _open(vaultfile, db_url, key_path, write=True)
    s = co.get(session_id)
    co.backend = _backend(backend_url, chain_dir, co.vault_file(s.vault_id).vault.network)
    if co.backend is None:
        raise CliError("give --backend URL or --chain DIR to broadcast to")
    s = co.advance(s.id)
    emit(as_json, s.to_dict(), f"session {s.id} {s.status.value}: txid {s.final_txid}"
         + (f", {s.confirmations} confirmation(s)" if s.confirmations else ""))


@session.command("expire")
@_db_options
@json_option
def session_expire(vaultfile, db_url, key_path, as_json):
    """Mark every open or finalized session whose expiry has passed as expired (audited; their
    coins are free again). Submissions to such a session are refused even without this."""
    co = _open(vaultfile, db_url, key_path, write=True)
    done = co.expire_due()
    emit(as_json, {"expired": done}, "\n".join(f"session {sid} expired" for sid in done) or "nothing has expired")


@session.command("recover")
@_backend_options
@_db_options
@json_option
def session_recover(backend_url, chain_dir, vaultfile, db_url, key_path, as_json):
    """After a crash or an outage: run the pending steps (finalize, broadcast, confirmations) of
    every open, finalized or broadcast session. Safe to run any time: nothing is done twice."""
    co = _open(vaultfile, db_url, key_path, write=True)
    if backend_url or chain_dir:
        networks = {v["network"] for v in co.vaults()}
        if len(networks) > 1:
            raise CliError("this database holds vaults of several networks: recover them with one backend each "
                           "through the Python API (Coordinator.recover)")
        co.backend = _backend(backend_url, chain_dir, next(iter(networks), "regtest"))
    sessions = co.recover()
    emit(as_json, [s.to_dict() for s in sessions],
         "\n".join(f"{s.id}  {s.status.value:<9}  {len(s.signed)}/{s.threshold} signed"
                   + (f"  last error: {s.last_error}" if s.last_error else "") for s in sessions)
         or "no session has pending steps")


@session.command("upkeep")
@_backend_options
@click.option("--margin-blocks", type=int, default=None,
              help="Warn about coins whose recovery paths open within this many blocks (default: four weeks, 4032).")
@click.option("--check", is_flag=True, help="Exit with status 1 when a coin is flagged (for a scheduled job).")
@_db_options
@json_option
def session_upkeep(backend_url, chain_dir, margin_blocks, check, vaultfile, db_url, key_path, as_json):
    """Warn about coins of the registered vaults that come near a recovery path's lock.

    Every registered vault with recovery paths is scanned on the backend; a coin flagged here
    must be refreshed (a primary-path spend back to the vault) before its recovery keys can move
    it (docs/recovery.md). Run it from a scheduled job with --check.
    """
    from ..psbt.display import escaped

    if not (backend_url or chain_dir):
        raise CliError("give --backend URL or --chain DIR: the upkeep check reads the vaults' coins")
    co = _open(vaultfile, db_url, key_path, write=False)
    networks = {v["network"] for v in co.vaults()}
    if len(networks) > 1:
        raise CliError("this database holds vaults of several networks: check them with one backend each "
                       "(msigvault vault upkeep VAULT --backend URL)")
    co.backend = _backend(backend_url, chain_dir, next(iter(networks), "regtest"))
    reports = co.upkeep(margin_blocks=margin_blocks)
    emit(as_json, [{"vault": name, **r.to_dict()} for name, r in reports],
         "\n\n".join(f"vault {escaped(name)}:\n{r.text()}" for name, r in reports)
         or "no registered vault has recovery paths")
    if check and any(r.warnings for _, r in reports):
        raise SystemExit(1)


@session.command("coordinator-key")
@click.option("--coordinator-key", "key_path", type=click.Path(dir_okay=False), default=None,
              help="The coordinator's Ed25519 key (default $MSIGVAULT_COORDINATOR_KEY, else next to --vault).")
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), default=None,
              help="The vault file (for the default key location).")
@json_option
def session_coordinator_key(key_path, vaultfile, as_json):
    """Print this coordinator's public key (created on first use): what auditors pin with
    --trust-key and what another coordinator authorises with 'session authorize-key'."""
    from ..coordinator.audit import Identity

    identity = Identity.load_or_create(_key_path(key_path, vaultfile))
    emit(as_json, {"coordinator_key": identity.public_hex}, identity.public_hex)


@session.command("authorize-key")
@click.argument("public_key")
@click.option("--note", default="", help="Whose key it is (recorded in the audit log).")
@_db_options
@json_option
def session_authorize_key(public_key, note, vaultfile, db_url, key_path, as_json):
    """Let another coordinator (its public key, 64 hex) work on this database: a
    coordinator.key-authorized entry signed by this coordinator's key."""
    co = _open(vaultfile, db_url, key_path, write=True)
    co.authorize_key(public_key, note=note)
    emit(as_json, {"authorized": public_key.strip().lower(), "note": note},
         f"coordinator key {public_key.strip().lower()} may now sign this database's audit log")


@session.command("refuse")
@click.argument("session_id")
@click.argument("fingerprint")
@click.option("--reason", required=True, help="The keyholder's reason (recorded in the session and the audit log).")
@click.option("--identity-signature", "signature", default=None,
              help="The keyholder's Ed25519 signature (128 hex) over the refusal statement (required when "
                   "their identity key is registered with the vault).")
@_db_options
@json_option
def session_refuse(session_id, fingerprint, reason, signature, vaultfile, db_url, key_path, as_json):
    """Record that the keyholder FINGERPRINT refuses to sign, with their reason."""
    co = _open(vaultfile, db_url, key_path, write=True)
    s = co.refuse(session_id, _fingerprint(fingerprint), reason, identity_signature=signature)
    emit(as_json, s.to_dict(), f"session {s.id}: {fingerprint.lower()} refused: {reason}\n" + _session_text(s))


@session.command("unreachable")
@click.argument("session_id")
@click.argument("fingerprint")
@click.option("--note", default="", help="What was tried (recorded in the audit log).")
@_db_options
@json_option
def session_unreachable(session_id, fingerprint, note, vaultfile, db_url, key_path, as_json):
    """Record that the keyholder FINGERPRINT cannot be reached."""
    co = _open(vaultfile, db_url, key_path, write=True)
    s = co.mark_unreachable(session_id, _fingerprint(fingerprint), note)
    emit(as_json, s.to_dict(), f"session {s.id}: {fingerprint.lower()} marked unreachable\n" + _session_text(s))


@session.command("request")
@click.argument("session_id")
@click.argument("fingerprint")
@click.option("--note", default="", help="How they were asked (recorded in the audit log).")
@_db_options
@json_option
def session_request(session_id, fingerprint, note, vaultfile, db_url, key_path, as_json):
    """Record that the keyholder FINGERPRINT was asked (again) to sign (after a refusal or silence)."""
    co = _open(vaultfile, db_url, key_path, write=True)
    s = co.request(session_id, _fingerprint(fingerprint), note)
    emit(as_json, s.to_dict(), f"session {s.id}: {fingerprint.lower()} asked to sign\n" + _session_text(s))


@session.command("config")
@click.argument("key", required=False)
@click.argument("value", required=False)
@_db_options
@json_option
def session_config(key, value, vaultfile, db_url, key_path, as_json):
    """Show the coordinator's configuration, or set KEY to VALUE (JSON, else text; audited)."""
    import json as _json

    if key is None:
        co = _open(vaultfile, db_url, key_path, write=False)
        config = co.config()
        emit(as_json, config, "\n".join(f"{k} = {_json.dumps(v)}" for k, v in config.items()) or "no configuration")
        return
    if value is None:
        raise CliError(f"give a value for {key} (JSON such as 3 or true, or text)")
    try:
        parsed = _json.loads(value)
    except ValueError:
        parsed = value
    co = _open(vaultfile, db_url, key_path, write=True)
    co.set_config(key, parsed)
    emit(as_json, {"key": key, "value": parsed}, f"{key} = {_json.dumps(parsed)} (recorded in the audit log)")


def _fingerprint(text: str) -> str:
    fp = text.strip().lower()
    if len(fp) != 8 or any(c not in "0123456789abcdef" for c in fp):
        raise CliError(f"a cosigner fingerprint is 8 hex digits, not {text!r}")
    return fp


@click.group()
def audit():
    """The tamper-evident audit log: verify it, export it for an auditor."""


@audit.command("verify")
@click.argument("export", type=click.Path(dir_okay=False), required=False)
@click.option("--trust-key", "trusted", multiple=True,
              help="A coordinator public key (64 hex) obtained out of band: the log must start with it.")
@click.option("--checkpoint", "checkpoint_files", multiple=True, type=click.Path(dir_okay=False),
              help="A checkpoint you kept ('msigvault audit checkpoint'): the log must still hold its head at "
                   "its position (catches truncation and rollback). Repeatable.")
@_db_options
@json_option
def audit_verify(export, trusted, checkpoint_files, vaultfile, db_url, key_path, as_json):
    """Verify an export file (offline) or the database's log; names the first bad entry."""
    from ..coordinator.audit import Checkpoint, verify_export

    keys = [t.strip().lower() for t in trusted] or None
    checkpoints = [Checkpoint.load(f) for f in checkpoint_files]
    if export is not None:
        if db_url or vaultfile:
            raise CliError("give an export file or --db/--vault, not both")
        result = verify_export(export, trusted_keys=keys, checkpoints=checkpoints)
    else:
        result = _open(vaultfile, db_url, key_path, write=False).verify_log(trusted_keys=keys, checkpoints=checkpoints)
    vaults = "\n".join(f"  vault {v['name']} policy id {v['policy_id']}" for v in result.vaults)
    emit(as_json, result.to_dict(),
         f"audit log OK: {result.count} entries, head {result.head}\n"
         + "\n".join(f"  coordinator key {k}" for k in result.coordinator_keys) + ("\n" + vaults if vaults else "")
         + "".join(f"\n  checkpoint of {c.time}: entry {c.entries - 1} is still {c.head[:16]}..." for c in checkpoints)
         + "\ncompare the coordinator key and the policy ids with what you were given out of band")


@audit.command("checkpoint")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The checkpoint file to write.")
@_db_options
@force_option
@json_option
def audit_checkpoint(output, vaultfile, db_url, key_path, force, as_json):
    """Verify the log and write a checkpoint of its head (entry count, last hash, time), signed by
    the coordinator key: keep it (or publish it) away from the coordinator; 'audit verify
    --checkpoint FILE' later proves the log was not truncated or rolled back behind it."""
    from .common import write_output

    cp = _open(vaultfile, db_url, key_path, write=True).checkpoint()
    write_output(output, cp.to_json(), force=force)
    emit(as_json, {**cp.to_dict(), "file": str(output)},
         f"wrote {output}: checkpoint of entry {cp.entries - 1} ({cp.entries} entries), head {cp.head}, at {cp.time}")


@audit.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The bundle to write.")
@_db_options
@force_option
@json_option
def audit_export(output, vaultfile, db_url, key_path, force, as_json):
    """Write the whole log, the public keys and the vault descriptors as one file an auditor can
    verify offline with 'msigvault audit verify FILE'."""
    co = _open(vaultfile, db_url, key_path, write=True)
    result = co.export_log(output, overwrite=force)
    emit(as_json, {**result.to_dict(), "file": str(output)},
         f"wrote {output}: {result.count} entries, head {result.head}")

