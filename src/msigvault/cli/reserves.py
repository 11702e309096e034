"""msigvault proof ... and msigvault health ...: BIP322 proofs of control and key-health checks."""

from __future__ import annotations

import json

import click

from .common import (
    CliError,
    NotApproved,
    approve,
    check_writable,
    emit,
    force_option,
    json_option,
    load_psbt,
    load_vault,
    passphrase_fd_option,
    psbt_format_option,
    read_input,
    unlock_root,
    write_output,
    write_psbt,
)

NETWORKS = click.Choice(["mainnet", "testnet", "signet", "regtest"])
MAX_JSON_BYTES = 4_000_000


def register(cli: click.Group) -> None:
    cli.add_command(proof)
    cli.add_command(health)


def _message(message, message_file) -> str:
    if (message is None) == (message_file is None):
        raise CliError("give the message with exactly one of --message TEXT or --message-file FILE")
    if message is not None:
        return message
    try:
        return read_input(message_file).decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{message_file} is not UTF-8 text: a BIP322 message here is text") from None


_message_options = [
    click.option("--message", help="The exact message (text)."),
    click.option("--message-file", type=click.Path(dir_okay=False), help="Read the message from a file (UTF-8)."),
]


def message_options(f):
    for option in reversed(_message_options):
        f = option(f)
    return f


def _read_json(path) -> object:
    data = read_input(path)
    if len(data) > MAX_JSON_BYTES:
        raise CliError(f"{path} is {len(data)} bytes, above the limit of {MAX_JSON_BYTES}")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:  # also a huge integer, absurdly deep nesting
        raise CliError(f"{path} is not JSON ({e})") from None


@click.group()
def proof():
    """BIP322 proofs of control of a vault address: no coins move (see docs/reserves.md)."""


def _keyholder_sign_options(f):
    """The options of a keyholder's proof signing (proof sign, proof reserves sign), in --help order."""
    for option in reversed([
        message_options,
        click.option("--key", "keyfile", type=click.Path(dir_okay=False), required=True),
        click.option("-o", "--output", type=click.Path(dir_okay=False), required=True),
        click.option("--yes", is_flag=True, help="Sign without asking (the proof is still shown)."),
        passphrase_fd_option, psbt_format_option, force_option, json_option,
    ]):
        f = option(f)
    return f


@proof.command("create")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@message_options
@click.option("--index", type=int, default=0, show_default=True, help="Vault address index to prove.")
@click.option("--change", is_flag=True, help="Prove a change address (branch 1) instead of a receive address.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@psbt_format_option
@force_option
@json_option
def proof_create(vaultfile, message, message_file, index, change, output, fmt, force, as_json):
    """Build the BIP322 to_sign PSBT for a message and a vault address (coordinator).

    \b
    Example:
      msigvault proof create vault.json --message "Auditor Ltd 2026-12-01 nonce 7f3a" -o proof.psbt
    """
    from ..reserves.bip322 import create_proof

    vf = load_vault(vaultfile)
    text = _message(message, message_file)
    check_writable(output, force=force)
    branch = 1 if change else 0
    psbt = create_proof(vf.vault, text, branch=branch, index=index)
    write_psbt(psbt, output, fmt, force=force)
    address = vf.vault.derive_branch(branch, index).address
    emit(as_json, {"output": output, "message": text, "address": address, "branch": branch, "index": index},
         f"wrote {output}: BIP322 proof of control for {address}; send it to the keyholders to sign")


@proof.command("sign")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("psbtfile", type=click.Path(dir_okay=False))
@_keyholder_sign_options
def proof_sign(vaultfile, psbtfile, message, message_file, keyfile, output, yes, passphrase_fd, fmt, force,
               as_json):
    """Sign a BIP322 proof of the message you were given (keyholder, offline).

    Refuses anything that is not exactly a proof of that message for an address of your
    registered vault: such a PSBT would be a transaction.

    \b
    Example:
      msigvault proof sign vault.json proof.psbt --message "Auditor Ltd 2026-12-01 nonce 7f3a" \\
          --key alice.key -o alice-proof.psbt
    """
    from ..keys.keystore import Keystore
    from ..psbt.signer import prepare_proof

    vf = load_vault(vaultfile)
    text = _message(message, message_file)
    ks = Keystore.open(keyfile)
    registered = vf.registered(ks.fingerprint)
    check_writable(output, force=force)
    request = prepare_proof(load_psbt(psbtfile), registered, fingerprint=bytes.fromhex(ks.fingerprint), message=text)
    _approve_and_sign(request, "proof of control", "the proof", yes=yes, keyfile=keyfile, passphrase_fd=passphrase_fd,
                      keystore=ks, output=output, fmt=fmt, force=force, as_json=as_json)


def _approve_and_sign(request, what: str, done: str, *, yes, keyfile, passphrase_fd, keystore, output, fmt, force,
                      as_json) -> None:
    """Show a checked proof request's summary, ask (unless ``yes``), unlock, sign and write it:
    never approve something not shown (with --json the summary goes to stderr)."""
    click.echo(request.summary.text(), err=as_json)
    if not yes and not approve(f"Sign this {what}?"):
        raise NotApproved("not signed: nothing was written")
    root, _ = unlock_root(keyfile, passphrase_fd, keystore=keystore)
    signed, summary = request.sign(root)
    write_psbt(signed, output, fmt, force=force)
    emit(as_json, {**summary.to_dict(), "output": output}, f"signed {done} as {summary.fingerprint}; wrote {output}")


@proof.command("finalize")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("psbtfiles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The proof file (JSON: message, address, full and simple signatures).")
@force_option
@json_option
def proof_finalize(vaultfile, psbtfiles, output, force, as_json):
    """Combine signed copies (every signature verified), finalize with m signatures and write the
    BIP322 full and simple signatures (coordinator)."""
    from ..reserves.bip322 import encode

    vf = load_vault(vaultfile)
    check_writable(output, force=force)
    final = vf.vault.finalize(vf.vault.combine([load_psbt(f) for f in psbtfiles]))
    enc = encode(final, vf.vault)
    data = {"kind": "msigvault-bip322-proof", "policy_id": vf.vault.policy_id, **enc.to_dict()}
    write_output(output, (json.dumps(data, indent=2) + "\n").encode(), force=force)
    emit(as_json, {**data, "output": output},
         f"wrote {output}: BIP322 proof for {enc.address}"
         + (", scripts verified by libbitcoinkernel" if enc.verified_by_kernel else ""))


@proof.command("verify")
@message_options
@click.option("--address", help="The address the signature is for (default: the proof file's).")
@click.option("--signature", help="A BIP322 simple or full signature (base64).")
@click.option("--proof", "proof_file", type=click.Path(dir_okay=False),
              help="A proof file from 'proof finalize' (message, address and signatures from it).")
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False),
              help="Also require the address to be this vault's (and use its network).")
@click.option("-n", "--network", type=NETWORKS, help="The address's network (without --vault).")
@json_option
def proof_verify(message, message_file, address, signature, proof_file, vaultfile, network, as_json):
    """Verify a BIP322 signature made by anyone (single-key or multisig) with libbitcoinkernel.

    Exits 2 if it is invalid (or cannot be checked here).

    \b
    Example:
      msigvault proof verify -n mainnet --address bc1q... --message "Hello World" --signature AkcwRAIg...
    """
    from ..network import Network
    from ..psbt.display import escaped
    from ..reserves import bip322

    signatures = []
    if proof_file is not None:
        data = _read_json(proof_file)
        if not isinstance(data, dict) or data.get("kind") != "msigvault-bip322-proof":
            raise CliError(f"{proof_file} is not a msigvault BIP322 proof file")
        message = message if message is not None or message_file is not None else str(data["message"])
        address = address or str(data["address"])
        signatures = [s for s in (data.get("full"), data.get("simple")) if isinstance(s, str)]
    text = _message(message, message_file)
    if signature is not None:
        signatures = [signature]
    if not signatures or address is None:
        raise CliError("give --address and --signature, or --proof FILE")
    results = []
    for sig in signatures:
        if vaultfile is not None:
            results.append(bip322.verify_for_vault(load_vault(vaultfile).vault, text, address, sig))
        else:
            if network is None:
                raise CliError("give the address's network with -n/--network (or --vault)")
            results.append(bip322.verify(text, address, sig, Network.from_name(network)))
    emit(as_json, {"valid": True, "results": [r.to_dict() for r in results]},
         "\n".join(f"VALID {r.format} BIP322 signature: {escaped(address)} signed \"{escaped(text)}\""
                   + (f" (vault index {r.vault_index})" if r.vault_index is not None else "") for r in results))


@click.group()
def health():
    """Key-health checks: each keyholder signs a dated challenge with their vault key, offline."""


@health.command("challenge")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.option("--date", "day", required=True, help="The challenge date, YYYY-MM-DD.")
@click.option("--index", type=int, default=0, show_default=True, help="Vault path index of the keys to prove.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option("--qr", "qr_dir", type=click.Path(file_okay=False), default=None,
              help="Also write each keyholder's challenge as a QR code, DIR/challenge-FINGERPRINT.png (BBQr).")
@force_option
@json_option
def health_challenge(vaultfile, day, index, output, qr_dir, force, as_json):
    """Issue one dated challenge per keyholder (coordinator): one file for everyone, and with
    --qr one QR code per keyholder to show to their offline laptop's camera.

    \b
    Example:
      msigvault health challenge vault.json --date 2026-12-01 --index 5 -o challenges.json --qr challenge-qr/
    """
    from ..reserves.health import issue

    vf = load_vault(vaultfile)
    check_writable(output, force=force)
    chs = issue(vf.vault, date=day, index=index)
    data = {"challenges": [c.to_dict() for c in chs]}
    images = []
    if qr_dir is not None:
        from pathlib import Path

        from ..reserves.qrcodes import write_qr

        Path(qr_dir).mkdir(parents=True, exist_ok=True)
        images = [str(write_qr({"challenges": [c.to_dict()]}, Path(qr_dir) / f"challenge-{c.fingerprint}.png",
                               overwrite=force)) for c in chs]
    write_output(output, (json.dumps(data, indent=2) + "\n").encode(), force=force)
    emit(as_json, {**data, "output": output, "qr": images},
         f"wrote {output}: {len(chs)} challenge(s) dated {chs[0].date}; send it to every keyholder"
         + "".join(f"\nwrote {i}" for i in images))


def _challenges(path):
    """The challenges of a challenge file, or of the QR code (image) of one."""
    from ..reserves.health import Challenge
    from ..reserves.qrcodes import is_image, read_qr

    data = read_qr([path], "key-health challenge") if is_image(path) else _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("challenges"), list):
        raise CliError(f"{path} is not a challenge file (or QR code) from 'msigvault health challenge'")
    return [Challenge.from_dict(c) for c in data["challenges"]]


def _response(path):
    """A keyholder's response file, or the photo of its QR code."""
    from ..reserves.health import Response
    from ..reserves.qrcodes import is_image, read_qr

    return Response.from_dict(read_qr([path], "key-health response") if is_image(path) else _read_json(path))


@health.command("respond")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("challengefile", type=click.Path(dir_okay=False))
@click.option("--key", "keyfile", type=click.Path(dir_okay=False), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the response (JSON) here.")
@click.option("--qr-out", "qr_out", type=click.Path(dir_okay=False),
              help="Write the response as a QR code (BBQr; .png, or .svg) to show the coordinator's camera.")
@click.option("--yes", is_flag=True, help="Sign without asking (the challenge is still shown).")
@passphrase_fd_option
@force_option
@json_option
def health_respond(vaultfile, challengefile, keyfile, output, qr_out, yes, passphrase_fd, force, as_json):
    """Answer your challenge with your vault key (keyholder, offline; BIP322 simple).

    CHALLENGEFILE is the challenge file, or a picture (PNG, JPEG, ...) of your challenge's QR
    code. Give -o FILE, --qr-out IMAGE, or both.

    \b
    Example:
      msigvault health respond vault.json challenges.json --key alice.key -o alice-health.json
      msigvault health respond vault.json photo.png --key alice.key --qr-out alice-health.png
    """
    from ..keys.keystore import Keystore
    from ..reserves.health import respond

    if output is None and qr_out is None:
        raise CliError("say where the response goes: -o FILE (JSON), --qr-out IMAGE (QR code), or both")
    vf = load_vault(vaultfile)
    ks = Keystore.open(keyfile)
    registered = vf.registered(ks.fingerprint)
    for path in (output, qr_out):
        if path is not None:
            check_writable(path, force=force)
    mine = [c for c in _challenges(challengefile) if c.fingerprint == ks.fingerprint]
    if len(mine) != 1:
        raise CliError(f"{challengefile} holds {len(mine)} challenges for {ks.fingerprint}: expected exactly one")
    c = mine[0]
    from ..psbt.display import escaped_lines
    from ..reserves.health import check_challenge

    check_challenge(c, registered.vault, bytes.fromhex(ks.fingerprint))  # nothing unchecked is shown
    click.echo(f"Key-health check: sign this message with your vault key ({c.address}); no coins move:\n"
               + "\n".join(f"  {line}" for line in escaped_lines(c.message)), err=as_json)
    if not yes and not approve("Sign this challenge?"):
        raise NotApproved("not signed: nothing was written")
    root, _ = unlock_root(keyfile, passphrase_fd, keystore=ks)
    registered.registration.verify_with_root(registered.vault, root, name=registered.name)
    r = respond(c, registered.vault, root)
    written = []
    if output is not None:
        write_output(output, (json.dumps(r.to_dict(), indent=2) + "\n").encode(), force=force)
        written.append(output)
    if qr_out is not None:
        from ..reserves.qrcodes import write_qr

        written.append(str(write_qr(r.to_dict(), qr_out, overwrite=force)))
    emit(as_json, {**r.to_dict(), "output": output, "qr": qr_out},
         f"wrote {' and '.join(written)}: send it (or show the QR code) back to the coordinator")


@health.command("report")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("challengefile", type=click.Path(dir_okay=False))
@click.argument("responsefiles", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--as-of", "as_of", help="The report date, YYYY-MM-DD (default: today).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
@click.option("--record", is_flag=True, help="Also record the report in the coordinator's audit log.")
@click.option("--db", "db_url", default=None,
              help="Record in this coordinator database (implies --record; default with --record: "
                   "VAULT.sessions.sqlite next to the vault file).")
@click.option("--coordinator-key", "key_path", type=click.Path(dir_okay=False), default=None,
              help="With --record: the coordinator's Ed25519 key (default as for 'msigvault session').")
@force_option
@json_option
def health_report(vaultfile, challengefile, responsefiles, as_of, output, record, db_url, key_path, force, as_json):
    """Who passed, who failed, who has not answered and for how many days (coordinator).

    RESPONSEFILES are the keyholders' response files or pictures of their QR codes. Exits 0
    even if someone failed; the report says so (``all_passed``). With --record, or --db, the
    report becomes an entry (``health.reported``) of the coordinator's audit log."""
    import datetime

    from ..reserves.health import report

    vf = load_vault(vaultfile)
    if output is not None:
        check_writable(output, force=force)
    record = record or db_url is not None
    responses = [_response(f) for f in responsefiles]
    rep = report(vf.vault, _challenges(challengefile), responses, as_of=as_of or datetime.date.today())
    if record:
        from .sessions import _open

        co = _open(vaultfile, db_url, key_path, write=True)
        co.register_vault(vf)  # as 'session new' does: a vault the database already holds is unchanged
        co.record_health_check(rep.to_dict())
    if output is not None:
        write_output(output, (json.dumps(rep.to_dict(), indent=2) + "\n").encode(), force=force)
    emit(as_json, {**rep.to_dict(), "recorded": record},
         rep.text() + (f"\nwrote {output}" if output else "") + ("\nrecorded in the audit log" if record else ""))


# -- proof of reserves (BIP127) ---------------------------------------------------------------


@proof.group("reserves")
def reserves():
    """BIP127 proofs of reserves: every vault coin signed m-of-n into a transaction that can never be valid.

    \b
    Coordinator:  proof reserves create VAULT --backend URL --auditor NAME -o por.psbt
    Keyholders:   proof reserves sign VAULT por.psbt --message-file msg.txt --key alice.key -o alice-por.psbt
    Coordinator:  proof reserves finalize VAULT alice-por.psbt carol-por.psbt -o por.json
    Auditor:      proof reserves verify --proof por.json --vault VAULT --backend URL
    """


_source_options = [
    click.option("--backend", "backend_url", metavar="URL",
                 help="Read the coins from this backend (see 'vault scan'; regtest:DIR for a regtest chain)."),
    click.option("--snapshot", "snapshot_file", type=click.Path(dir_okay=False),
                 help="Read the coins from a UTXO snapshot ('proof reserves snapshot', or 'vault utxos -o' with --height)."),
]


def source_options(f):
    for option in reversed(_source_options):
        f = option(f)
    return f


def _snapshot(path, height):
    from dataclasses import replace

    from ..reserves.por import load_snapshot

    snap = load_snapshot(path)
    if height is not None:
        if snap.height is not None and snap.height != height:
            raise CliError(f"{path} is the UTXO set at height {snap.height}, not {height}")
        snap = replace(snap, height=height)
    return snap


@reserves.command("snapshot")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.option("--backend", "backend_url", metavar="URL", required=True,
              help="The backend to scan (regtest:DIR for a regtest chain).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@force_option
@json_option
def reserves_snapshot(vaultfile, backend_url, output, force, as_json):
    """Export the vault's confirmed coins at the backend's tip as a UTXO snapshot (height, block, coins)."""
    from ..backends import open_backend
    from ..reserves.por import snapshot

    vf = load_vault(vaultfile)
    check_writable(output, force=force)
    with open_backend(backend_url, vf.vault.network) as backend:
        snap = snapshot(vf.vault, backend)
    write_output(output, (json.dumps(snap.to_dict(), indent=2) + "\n").encode(), force=force)
    total = sum(u.amount for u in snap.utxos)
    emit(as_json, {"output": output, "height": snap.height, "block_hash": snap.block_hash,
                   "coins": len(snap.utxos), "total": total},
         f"wrote {output}: {len(snap.utxos)} coin(s), {total} sats, at height {snap.height}")


@reserves.command("create")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@source_options
@click.option("--height", type=click.IntRange(0), help="With --snapshot: the height it is of (if the file does not say).")
@click.option("--auditor", help="Who the proof is for (goes into the message with the date, block and nonce).")
@click.option("--date", "day", help="The proof's date, YYYY-MM-DD (default: today).")
@click.option("--nonce", help="The auditor's nonce (default: 128 random bits).")
@message_options
@click.option("--message-out", type=click.Path(dir_okay=False), help="Also write the message to this file (UTF-8).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@psbt_format_option
@force_option
@json_option
def reserves_create(vaultfile, backend_url, snapshot_file, height, auditor, day, nonce, message, message_file,
                    message_out, output, fmt, force, as_json):
    """Build the proof PSBT: the commitment of the message and every confirmed vault coin (coordinator).

    The message is either given exactly (--message/--message-file, agreed with the auditor) or
    made from --auditor, --date, the block the coins are read at and --nonce.

    \b
    Example:
      msigvault proof reserves create vault.json --backend regtest:chain/ --auditor "Auditor Ltd" \\
          --nonce 7f3a9c --message-out por-message.txt -o por.psbt
    """
    import datetime

    from ..reserves.por import create_proof, make_message

    vf = load_vault(vaultfile)
    if (backend_url is None) == (snapshot_file is None):
        raise CliError("give the coins with exactly one of --backend URL or --snapshot FILE")
    check_writable(output, force=force)
    if message_out is not None:
        check_writable(message_out, force=force)
    if backend_url is not None:
        from ..backends import open_backend
        from ..reserves.por import snapshot

        with open_backend(backend_url, vf.vault.network) as backend:
            snap = snapshot(vf.vault, backend)
    else:
        snap = _snapshot(snapshot_file, height)
    if message is not None or message_file is not None:
        if auditor is not None or nonce is not None or day is not None:
            raise CliError("give either the exact message (--message/--message-file) or --auditor/--date/--nonce")
        text = _message(message, message_file)
    else:
        if auditor is None:
            raise CliError("give --auditor NAME (or the exact message with --message/--message-file)")
        if snap.height is None or snap.block_hash is None:
            raise CliError("the snapshot names no block (height and hash): give the message yourself, or use --backend")
        text = make_message(vf.vault, auditor=auditor, date=day or datetime.date.today().isoformat(),
                            height=snap.height, block_hash=snap.block_hash, nonce=nonce)
    psbt = create_proof(vf.vault, snap.utxos, text)
    write_psbt(psbt, output, fmt, force=force)
    if message_out is not None:
        write_output(message_out, text.encode("utf-8"), force=force)
    total = sum(u.amount for u in snap.utxos)
    emit(as_json, {"output": output, "message": text, "height": snap.height, "block_hash": snap.block_hash,
                   "coins": [u.outpoint for u in snap.utxos], "total": total},
         f"wrote {output}: proof of reserves of {len(snap.utxos)} coin(s), {total} sats, as of height "
         f"{snap.height}; send it and the message to {vf.vault.m} keyholders to sign")


@reserves.command("sign")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("psbtfile", type=click.Path(dir_okay=False))
@_keyholder_sign_options
def reserves_sign(vaultfile, psbtfile, message, message_file, keyfile, output, yes, passphrase_fd, fmt, force,
                  as_json):
    """Sign a proof of reserves of the message you were given (keyholder, offline).

    Refuses anything that is not exactly a BIP127 proof of that message over coins of your
    registered vault (such a PSBT could be a valid transaction). 'psbt sign' recognises a
    proof too and shows the message the PSBT carries.
    """
    from ..keys.keystore import Keystore
    from ..psbt.por import ReservesSummary
    from ..psbt.signer import prepare

    vf = load_vault(vaultfile)
    text = _message(message, message_file)
    ks = Keystore.open(keyfile)
    registered = vf.registered(ks.fingerprint)
    check_writable(output, force=force)
    request = prepare(load_psbt(psbtfile), registered, fingerprint=bytes.fromhex(ks.fingerprint), proof_message=text)
    if not isinstance(request.summary, ReservesSummary):
        from ..psbt.por import ReserveProofRefused

        raise ReserveProofRefused("this PSBT is not a proof of reserves (no PSBT_IN_POR_COMMITMENT on its first "
                                  "input): do not sign it as one")
    _approve_and_sign(request, "proof of reserves", "the proof of reserves", yes=yes, keyfile=keyfile,
                      passphrase_fd=passphrase_fd, keystore=ks, output=output, fmt=fmt, force=force, as_json=as_json)


@reserves.command("finalize")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("psbtfiles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The proof file (JSON: message, block, coins, the signed transaction and PSBT).")
@force_option
@json_option
def reserves_finalize(vaultfile, psbtfiles, output, force, as_json):
    """Combine signed copies (every signature verified), finalize with m signatures per coin and
    write the proof file for the auditor (coordinator)."""
    from ..reserves.por import combine, encode, finalize

    vf = load_vault(vaultfile)
    check_writable(output, force=force)
    final = finalize(combine([load_psbt(f) for f in psbtfiles], vf.vault), vf.vault)
    pf = encode(final, vf.vault)
    data = pf.to_dict()
    write_output(output, (json.dumps(data, indent=2) + "\n").encode(), force=force)
    emit(as_json, {**{k: v for k, v in data.items() if k not in ("tx", "psbt")}, "output": output},
         f"wrote {output}: proof of reserves of {len(pf.coins)} coin(s), {pf.total} sats; give it to the auditor")


@reserves.command("verify")
@click.option("--proof", "proof_file", type=click.Path(dir_okay=False), required=True,
              help="The proof file from 'proof reserves finalize'.")
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False),
              help="The vault (file) whose coins the proof is about.")
@click.option("--descriptor", help="Or the vault's descriptor (with its checksum).")
@click.option("-n", "--network", type=NETWORKS, help="With --descriptor: the vault's network (default: the keys').")
@source_options
@click.option("--height", type=click.IntRange(0),
              help="Check the coins are unspent at this height (default: the backend's tip or the snapshot's height).")
@message_options
@click.option("--record", is_flag=True, help="Also record the result in the coordinator's audit log.")
@click.option("--db", "db_url", default=None,
              help="Record in this coordinator database (implies --record; default with --record: next to the vault file).")
@click.option("--coordinator-key", "key_path", type=click.Path(dir_okay=False), default=None,
              help="With --record: the coordinator's Ed25519 key (default as for 'msigvault session').")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the result (JSON, valid or not) here: 'report reserves --proof' reads it.")
@force_option
@json_option
def reserves_verify(proof_file, vaultfile, descriptor, network, backend_url, snapshot_file, height, message,
                    message_file, record, db_url, key_path, output, force, as_json):
    """Verify a proof of reserves against the UTXO set (auditor): every signature and script, every
    coin the vault's and unspent at the height; print the proven amount.

    Exits 2 (code reserves.coin-spent, naming each coin) if a coin is spent or unknown there,
    and with reserves.invalid if the proof itself does not verify.

    \b
    Example:
      msigvault proof reserves verify --proof por.json --vault vault.json --backend regtest:chain/ \\
          --message-file por-message.txt
    """
    from ..reserves.por import BackendSource, CoinNotUnspent, check, load_proof

    if (vaultfile is None) == (descriptor is None):
        raise CliError("give the vault with exactly one of --vault FILE or --descriptor TEXT")
    record = record or db_url is not None
    if output is not None:
        check_writable(output, force=force)
    if record and vaultfile is None:
        raise CliError("--record needs the vault file (--vault): the audit log registers the vault it records")
    if vaultfile is not None:
        vf = load_vault(vaultfile)
        vault = vf.vault
    else:
        from ..policy.vault import Vault

        vault = Vault.from_descriptor(descriptor, network=network)
    if (backend_url is None) == (snapshot_file is None):
        raise CliError("give the UTXO set with exactly one of --backend URL or --snapshot FILE")
    pf = load_proof(proof_file)
    text = _message(message, message_file) if (message is not None or message_file is not None) else pf.message
    if backend_url is not None:
        from ..backends import open_backend

        with open_backend(backend_url, vault.network) as backend:
            report = check(pf, vault, BackendSource(backend), message=text, height=height)
    else:
        report = check(pf, vault, _snapshot(snapshot_file, height), message=text, height=height)
    if record:
        from .sessions import _open

        co = _open(vaultfile, db_url, key_path, write=True)
        co.register_vault(vf)
        co.record_reserve_proof(report.to_dict())
    if output is not None:
        write_output(output, (json.dumps(report.to_dict(), indent=2) + "\n").encode(), force=force)
    if report.failing:
        click.echo(report.text(), err=True)
        named = "; ".join(f"{c.outpoint} ({c.note})" for c in report.failing)
        raise CoinNotUnspent(f"{len(report.failing)} coin(s) of the proof are not unspent at height {report.height}: "
                             f"{named}" + ("; recorded in the audit log" if record else ""))
    emit(as_json, {**report.to_dict(), "recorded": record},
         report.text() + ("\nrecorded in the audit log" if record else ""))
