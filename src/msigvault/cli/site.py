"""msigvault site ...: a keyholder site's online side (pull, push), its air-gapped step (sign, refuse),
and the coordinator's shared-folder sync (folder-sync). docs/site.md is the procedure.

Nothing heavy is imported until a command runs; sign and refuse (the laptop's) never import httpx or SQLAlchemy.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import (CliError, NotApproved, approve, check_writable, emit, force_option, json_option,
                     passphrase_fd_option, qr_out_option, require_qr_extra, unlock_root, write_output)

_ID_ENV = "MSIGVAULT_IDENTITY_PASSPHRASE"
QR_FORMATS = click.Choice(["ur", "bbqr"])


def register(cli: click.Group) -> None:
    cli.add_command(site)


@click.group()
def site():
    """A keyholder site: pull requests, sign offline, push the answer (service or shared folder; docs/site.md)."""


def _identity_fd(f):
    return click.option("--passphrase-fd", type=int, default=None,
                        help=f"Read the identity passphrase from this file descriptor (else ${_ID_ENV}, else a "
                             "prompt).")(f)


def _transport_options(f):
    f = click.option("--folder", "folder", type=click.Path(file_okay=False), default=None,
                     help="The shared folder instead of the service (sites that allow no HTTP).")(f)
    f = click.option("--ca", "ca", type=click.Path(dir_okay=False), default=None,
                     help="The PEM file of the CA that signed the service's certificate (only it is trusted).")(f)
    f = click.option("--url", "url", default=None, help="The coordinator service: https://HOST:PORT.")(f)
    f = click.option("--coordinator", "coordinator_file", type=click.Path(dir_okay=False), default=None,
                     help="The coordinator's identity record, pinned (required with --folder; with --url it is "
                          "otherwise read from the service).")(f)
    f = click.option("--identity", "identity_path", required=True, type=click.Path(dir_okay=False),
                     help="This site's identity file (role keyholder-site).")(f)
    return f


def _site_key(path, fd):
    from .identity import _load_identity

    key = _load_identity(path, fd)
    if key.public.role != "keyholder-site":
        raise CliError(f"{path} is a {key.public.role} identity: a site pulls and pushes with its keyholder-site "
                       "identity")
    return key


def _coordinator_record(path):
    if path is None:
        return None
    from .identity import _read_record

    record = _read_record(path)
    if record.role != "coordinator":
        raise CliError(f"{path} is a {record.role} record, not a coordinator's")
    return record.verify()


def _transport(url, ca, folder, coordinator_file):
    """('service', url, ca, pinned record) or ('folder', directory, None, record): exactly one is given."""
    if (url is None) == (folder is None):
        raise CliError("give --url URL --ca CAFILE (the coordinator service) or --folder DIR (a shared folder)")
    if url is not None and ca is None:
        raise CliError("--url needs --ca CAFILE: the site trusts only the CA that signed the service's certificate")
    if folder is not None and (ca is not None or coordinator_file is None):
        raise CliError("--folder needs --coordinator RECORD (the coordinator's identity record, pinned) and no --ca")
    return _coordinator_record(coordinator_file)


def _client(url, ca, key, coordinator):
    from ..service.client import ServiceClient

    return ServiceClient(url, key, ca=ca, coordinator=coordinator)


# -- pull ----------------------------------------------------------------------------------------


@site.command("pull")
@_transport_options
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the requests: SESSION.request (for 'site sign') and SESSION.psbt (for 'psbt sign').")
@click.option("--state", "state_file", type=click.Path(dir_okay=False), default=None,
              help="Replay state of the coordinator's envelopes; default IDENTITY_FILE.seen.json.")
@click.option("--qr", "with_qr", is_flag=True,
              help="Also write each PSBT as an animated QR: SESSION-qr/ (PNG frames, a GIF) and SESSION.qr.txt "
                   "(the frames' text, one per line).")
@click.option("--qr-format", "qr_format", type=QR_FORMATS, default="bbqr", show_default=True,
              help="QR frames: bbqr (compressed, every frame needed) or ur (BC-UR fountain frames).")
@_identity_fd
@json_option
def site_pull(identity_path, coordinator_file, url, ca, folder, out_dir, state_file, with_qr, qr_format,
              passphrase_fd, as_json):
    """Fetch this site's signing requests, open and check them, and write them for the air-gapped laptop.

    Each request's envelope is opened with the site's identity: sealed by the coordinator (its signature),
    not expired, not older than one already pulled. A request that fails is named and skipped (exit 2).

    \b
    Example:
      msigvault site pull --identity alice-site.identity --url https://coord:8443 --ca ca.pem -o requests/
      msigvault site pull --identity alice-site.identity --folder /mnt/share --coordinator coordinator.record -o requests/
    """
    from ..identity import ReplayGuard
    from ..site.errors import SiteError

    coordinator = _transport(url, ca, folder, coordinator_file)
    if with_qr:
        require_qr_extra()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = Path(state_file) if state_file else Path(identity_path).with_name(Path(identity_path).name + ".seen.json")
    guard = ReplayGuard.load(state)
    key = _site_key(identity_path, passphrase_fd)
    if folder is not None:
        from ..site.online import pull_from_folder

        pulled = pull_from_folder(folder, key, coordinator, guard)
    else:
        from ..site.online import pull_from_service

        with _client(url, ca, key, coordinator) as client:
            pulled = pull_from_service(client, key, guard)
    rows = [_write_request(r, out, qr_format if with_qr else None) for r in pulled.requests]
    refused = [{"session": s, "code": c, "message": m} for s, c, m in pulled.refused]
    lines = [_request_line(row) for row in rows] + [f"{s}: already pulled, unchanged" for s in pulled.unchanged]
    if not lines and not refused:
        lines = ["no requests for this site"]
    from ..site.request import printable

    for r in refused:  # the session id and message may carry a hostile server's or folder's text
        click.echo(printable(f"refused request of session {r['session']}: {r['code']}: {r['message']}"), err=True)
    result = {"requests": rows, "unchanged": list(pulled.unchanged), "refused": refused}
    if not refused:
        emit(as_json, result, "\n".join(lines))
        return
    error = SiteError(f"{len(refused)} request(s) were refused and not written (see above); the others were")
    if not as_json:
        click.echo("\n".join(lines))
        raise error
    click.echo(json.dumps({**result, "error": error.to_dict()}, indent=2))  # one object, as every --json error
    click.get_current_context().exit(2)


def _write_request(request, out: Path, qr_format):
    row = {**request.to_dict(), "request_file": str(out / f"{request.session}.request"),
           "psbt_file": str(out / f"{request.session}.psbt")}
    write_output(row["request_file"], request.to_bytes(), force=True)
    write_output(row["psbt_file"], request.psbt, force=True)
    if qr_format is not None:
        from ..transport import qr as q

        frames = out / f"{request.session}-qr"
        if qr_format == "bbqr":
            from ..transport.bbqr import psbt_to_bbqr_parts

            parts = psbt_to_bbqr_parts(request.psbt)
            paths = q.write_animated_bbqr(request.psbt, frames, overwrite=True)
        else:
            import math

            from ..transport.ur import psbt_to_ur_parts
            from .qr import DEFAULT_FRAGMENT

            parts = psbt_to_ur_parts(request.psbt, DEFAULT_FRAGMENT, extra_parts=0)
            if len(parts) > 1:
                parts = psbt_to_ur_parts(request.psbt, DEFAULT_FRAGMENT, extra_parts=math.ceil(len(parts) / 2))
            paths = q.write_animated_qr(request.psbt, frames, max_fragment_len=DEFAULT_FRAGMENT, overwrite=True)
        text = out / f"{request.session}.qr.txt"
        write_output(text, ("\n".join(parts) + "\n").encode(), force=True)
        row.update({"qr_format": qr_format, "qr_dir": str(frames), "qr_frames": sum(p.suffix == ".png" for p in paths),
                    "qr_text": str(text)})
    return row


def _request_line(row) -> str:
    from ..site.request import printable

    line = (f"session {row['session']} (vault {printable(row['vault_name']) or row['vault'][:16]}) asks cosigner "
            f"{row['fingerprint']} to sign" + (f": {printable(row['memo'])}" if row["memo"] else "")
            + f"\n  wrote {row['request_file']} and {row['psbt_file']} (expires {row['expires']})")
    if "qr_dir" in row:
        line += f"\n  QR ({row['qr_format']}): {row['qr_frames']} frame(s) in {row['qr_dir']}"
    return line


# -- the air-gapped laptop --------------------------------------------------------------------------


def _read_request(path):
    from ..site.request import MAX_FILE, SiteRequest, SiteRequestError
    from .identity import _read_limited

    return SiteRequest.from_bytes(_read_limited(path, MAX_FILE, SiteRequestError))


@site.command("sign")
@click.argument("request_file", type=click.Path(dir_okay=False))
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), required=True,
              help="The vault file this keyholder registered.")
@click.option("--key", "keyfile", type=click.Path(dir_okay=False), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The response file to write.")
@click.option("--yes", is_flag=True, help="Sign without asking (the summary is still printed).")
@click.option("--max-fee-sats", type=int, default=None, help="Refuse fees above this (default 2,500,000).")
@click.option("--max-fee-rate", type=float, default=None, help="Refuse fee rates above this sat/vB (default 1,000).")
@click.option("--max-fee-fraction", type=float, default=None,
              help="Refuse fees above this fraction of the amount leaving the vault (default 0.10).")
@passphrase_fd_option
@qr_out_option
@force_option
@json_option
def site_sign(request_file, vaultfile, keyfile, output, yes, max_fee_sats, max_fee_rate, max_fee_fraction,
              passphrase_fd, qr_dir, force, as_json):
    """Check a pulled request against the registered vault, show it, and sign it (offline).

    The same checks as 'psbt sign' (foreign inputs, change, fees, sighash types, previous transactions);
    the response file (the signed PSBT, bound to the request) goes back to the online machine for
    'site push'. --qr also writes the signed PSBT as animated QR frames.

    \b
    Example:
      msigvault site sign 3fa1c0de.request --vault vault.json --key alice.key -o 3fa1c0de.response
    """
    from ..keys.keystore import Keystore
    from ..psbt.psbt import Psbt
    from ..psbt.signer import prepare
    from ..site.request import SiteResponse, printable
    from .common import load_vault, write_qr_frames
    from .psbts import fee_policy

    request = _read_request(request_file)
    vf = load_vault(vaultfile)
    ks = Keystore.open(keyfile)
    registered = vf.registered(ks.fingerprint)  # refuses a vault this keyholder never registered
    request.check_vault(vf.vault, ks.fingerprint)
    check_writable(output, force=force)
    if qr_dir is not None:
        require_qr_extra()
    prepared = prepare(Psbt.parse(request.psbt), registered, fingerprint=bytes.fromhex(ks.fingerprint),
                       policy=fee_policy(max_fee_sats, max_fee_rate, max_fee_fraction))
    if prepared.already_signed:
        raise CliError(f"the request of session {request.session} is already signed by {ks.fingerprint}: nothing to do")
    click.echo(f"session {request.session} from coordinator '{printable(request.coordinator_name)}' "
               f"({request.coordinator_id}), vault '{printable(request.vault_name)}'"
               + (f"\n  the coordinator's memo (not checked): {printable(request.memo)}" if request.memo else "")
               + f"\n  request expires {printable(request.expires)}", err=as_json)
    click.echo(prepared.summary.text(), err=as_json)
    if not yes and not approve("Sign this transaction?"):
        raise NotApproved("not signed: nothing was written")
    root, _ = unlock_root(keyfile, passphrase_fd, keystore=ks)
    signed, summary = prepared.sign(root)
    raw = signed.serialize()
    if qr_dir is not None:
        write_qr_frames(raw, qr_dir, overwrite=force)
    write_output(output, SiteResponse.signed(request, raw).to_bytes(), force=force)
    emit(as_json, {**summary.to_dict(), "session": request.session, "output": output,
                   "qr": str(qr_dir) if qr_dir is not None else None},
         f"signed {summary.signed_inputs} input(s) of session {request.session} as {summary.fingerprint}; wrote "
         f"{output}: take it to the online machine ('msigvault site push')")


@site.command("refuse")
@click.argument("request_file", type=click.Path(dir_okay=False))
@click.option("--reason", required=True, help="Why this keyholder will not sign (recorded in the audit log).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The response file to write.")
@force_option
@json_option
def site_refuse(request_file, reason, output, force, as_json):
    """Answer a pulled request with a refusal and its reason (offline; no key needed)."""
    from ..site.request import SiteResponse

    request = _read_request(request_file)
    response = SiteResponse.refused(request, reason)
    write_output(output, response.to_bytes(), force=force)
    emit(as_json, {"session": request.session, "kind": "refusal", "reason": response.reason, "output": output},
         f"refusal of session {request.session} written to {output}: take it to the online machine ('site push')")


# -- push ----------------------------------------------------------------------------------------


def _response(request, response_file, signed_file, qr_in, refuse):
    from ..site.request import MAX_FILE, SiteResponse, SiteResponseError
    from .identity import _read_limited

    given = [x is not None for x in (response_file, signed_file, qr_in, refuse)]
    if sum(given) != 1:
        raise CliError("give one of --response FILE ('site sign' or 'site refuse'), --signed PSBTFILE ('psbt sign'), "
                       "--qr-in IMAGES (the signed PSBT as QR) or --refuse REASON")
    if response_file is not None:
        return SiteResponse.from_bytes(_read_limited(response_file, MAX_FILE, SiteResponseError))
    if refuse is not None:
        return SiteResponse.refused(request, refuse)
    if signed_file is not None:
        from ..transport.files import read_psbt_file

        raw = read_psbt_file(signed_file)
    else:
        from ..transport.qr import decode_psbt_from_images

        require_qr_extra()
        src = Path(qr_in)
        images = sorted(x for x in src.iterdir() if x.suffix.lower() in (".png", ".gif", ".jpg", ".jpeg")) \
            if src.is_dir() else [src]
        if not images:
            raise CliError(f"{src} holds no PNG, GIF or JPEG images")
        raw = decode_psbt_from_images(images)
    from ..psbt.psbt import Psbt

    return SiteResponse.signed(request, Psbt.parse(raw).serialize())


@site.command("push")
@click.argument("request_file", type=click.Path(dir_okay=False))
@_transport_options
@click.option("--response", "response_file", type=click.Path(dir_okay=False), default=None,
              help="The response file from 'site sign' or 'site refuse'.")
@click.option("--signed", "signed_file", type=click.Path(dir_okay=False), default=None,
              help="Or the signed PSBT from 'psbt sign' (binary, base64 or hex).")
@click.option("--qr-in", "qr_in", type=click.Path(exists=True), default=None,
              help="Or the signed PSBT as QR images: a directory of frames, or one image or GIF.")
@click.option("--refuse", "refuse", default=None, help="Or refuse the request, with this reason.")
@_identity_fd
@json_option
def site_push(request_file, identity_path, coordinator_file, url, ca, folder, response_file, signed_file, qr_in,
              refuse, passphrase_fd, as_json):
    """Seal the laptop's answer to REQUEST_FILE (a signed PSBT, or a refusal) to the coordinator and send it.

    The answer must be for the request's session, cosigner and transaction. Over the service the
    coordinator verifies it at once; with --folder it waits in the site's outbox for the next
    'msigvault site folder-sync'.

    \b
    Example:
      msigvault site push requests/3fa1c0de.request --response 3fa1c0de.response \\
        --identity alice-site.identity --url https://coord:8443 --ca ca.pem
    """
    from ..site.online import push_to_folder, push_to_service, seal_response

    coordinator = _transport(url, ca, folder, coordinator_file)
    request = _read_request(request_file)
    response = _response(request, response_file, signed_file, qr_in, refuse)
    response.check_answers(request)
    key = _site_key(identity_path, passphrase_fd)
    if folder is not None:
        sealed = seal_response(key, coordinator, request, response, until_request_expires=True)
        path = push_to_folder(folder, key, sealed)
        emit(as_json, {"session": sealed.session, "sequence": sealed.sequence, "kind": sealed.kind,
                       "file": str(path)},
             f"{sealed.kind} for session {sealed.session} sealed to the coordinator and left in {path}: the "
             "coordinator takes it in at its next folder-sync")
        return
    with _client(url, ca, key, coordinator) as client:
        sealed = seal_response(key, client.coordinator, request, response)
        answer = push_to_service(client, sealed)
    s = answer["session"]
    emit(as_json, {**answer, "sequence": sealed.sequence},
         f"{answer['kind']} for session {sealed.session}: {answer['outcome']}"
         + (f" (signed by {', '.join(answer['signers'])})" if answer["signers"] else "")
         + f"; the session is {s['status']}, {s['signatures_needed']} more signature(s) needed")


# -- the coordinator's side of the folder ---------------------------------------------------------


@site.command("folder-sync")
@click.option("--db", "db_url", required=True, help="Database URL: sqlite:///FILE or postgresql://USER@HOST/DB.")
@click.option("--identity", "identity_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The coordinator's identity file (role coordinator): the service's, which signs the audit log.")
@click.option("--folder", required=True, type=click.Path(file_okay=False), help="The shared folder.")
@click.option("--chain", "chain_dir", type=click.Path(file_okay=False), default=None,
              help="Broadcast sessions that reach their threshold to this regtest chain directory.")
@_identity_fd
@json_option
def site_folder_sync(db_url, identity_path, folder, chain_dir, passphrase_fd, as_json):
    """Coordinator side: take in the sites' envelopes from a shared folder, write their pending requests.

    Every envelope goes through the service's checks (sender is that enrolled site, signature, expiry,
    replay and order in the database, the session's PSBT checks) and is audited; then it is moved to the
    site's processed/ directory with a result file. Sites must be enrolled ('coordinator enroll').
    """
    from ..coordinator.audit import Identity
    from ..coordinator.db import Database
    from ..coordinator.sessions import Coordinator
    from ..site.sync import sync_folder
    from .identity import _load_identity

    key = _load_identity(identity_path, passphrase_fd)
    if key.public.role != "coordinator":
        raise CliError(f"{identity_path} is a {key.public.role} identity: folder-sync runs as the coordinator")
    backend = None
    if chain_dir is not None:
        from ..backends.regtest import RegtestBackend

        backend = RegtestBackend.open(chain_dir)
    co = Coordinator(Database.open(db_url), Identity(key.signing), backend=backend)
    report = sync_folder(co, key, folder)
    lines = [f"{r['site']}: {r['file']}: {r['outcome']}" + (f", session {r['status']}" if "status" in r else
                                                             f" ({r['code']}: {r['message']})")
             for r in report.received]
    lines += [f"{r['site']}: request for session {r['session']} written" for r in report.requests]
    lines += [f"{r['site']}: session {r['session']} no longer pending: request removed" for r in report.removed]
    lines += [f"{r['site']}: skipped ({r['code']}: {r['message']})" for r in report.skipped]
    emit(as_json, report.to_dict(), "\n".join(lines) or "nothing to do")
