"""msigvault psbt ...: create, inspect, sign, combine, finalize."""

from __future__ import annotations

import json

import click

from ..amounts import format_amount
from .common import (
    CliError,
    NotApproved,
    approve,
    check_writable,
    check_writable_dir,
    emit,
    force_option,
    json_option,
    load_psbt,
    load_vault,
    passphrase_fd_option,
    psbt_format_option,
    qr_out_option,
    read_input,
    require_qr_extra,
    unlock_root,
    write_output,
    write_psbt,
)


def register(cli: click.Group) -> None:
    cli.add_command(psbt)


@click.group()
def psbt():
    """PSBTs: the coordinator creates, keyholders sign offline, the coordinator combines and finalizes."""


def _parse_destination(text: str):
    """ADDRESS:AMOUNT with AMOUNT as 0.5btc, 50000sat, 50000 (sats) or max (everything, minus the fee)."""
    from ..amounts import parse_amount

    if ":" not in text:
        raise CliError(f"--to takes ADDRESS:AMOUNT (0.5btc, 50000sat, 50000 or max), got {text!r}")
    address, amount = text.rsplit(":", 1)
    if amount.strip().lower() == "max":
        return address, None
    return address, parse_amount(amount)


def fee_policy(max_fee_sats, max_fee_rate, max_fee_fraction):
    """The signer's default limits with the --max-fee-* overrides given."""
    from dataclasses import replace

    from ..psbt.signer import SignerPolicy

    policy = SignerPolicy()
    for name, value in (("max_fee_sats", max_fee_sats), ("max_fee_rate", max_fee_rate),
                        ("max_fee_fraction", max_fee_fraction)):
        if value is not None:
            policy = replace(policy, **{name: value})
    return policy


def load_utxos(path):
    from ..errors import MsigvaultError
    from ..types import Utxo

    try:
        records = json.loads(read_input(path))
    except json.JSONDecodeError:
        raise CliError(f"{path} is not a JSON list of UTXOs") from None
    if not isinstance(records, list):
        raise CliError(f"{path} must hold a JSON list of UTXO records")
    try:
        return [Utxo.from_dict(r) for r in records]
    except MsigvaultError as e:
        raise CliError(f"{path}: {e}") from None


@psbt.command("create")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.option("--utxos", "utxo_file", type=click.Path(dir_okay=False), help="JSON list of the vault's UTXOs.")
@click.option("--chain", "chain_dir", type=click.Path(file_okay=False), help="Take the UTXOs from this regtest chain.")
@click.option("--backend", "backend_url", metavar="URL",
              help="Take the confirmed UTXOs from this backend (see 'vault scan'); each previous transaction is checked.")
@click.option("--to", "destinations", multiple=True, required=True,
              help="ADDRESS:AMOUNT, AMOUNT as 0.5btc, 50000sat, 50000 (sats) or max (everything minus the fee); repeatable.")
@click.option("--fee-rate", type=float, required=True, help="sat/vB")
@click.option("--change-index", type=int, default=None, help="Default: the vault file's next change index.")
@click.option("--psbt-version", type=click.Choice(["0", "2"]), default="0", show_default=True)
@click.option("--no-rbf", is_flag=True, help="Do not signal replace-by-fee.")
@click.option("--path", "spend_path", default=None, metavar="PATH",
              help="A vault with recovery paths: spend by 'recovery' (or 'recovery N') once its lock has passed; "
                   "sets nSequence/nLockTime for it (default: the primary path, which sets neither).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option("--max-fee-sats", type=int, default=None,
              help="Refuse to create a PSBT whose fee is above this (default: the signer's 2,500,000).")
@click.option("--max-fee-rate", type=float, default=None, help="Likewise for the fee rate (default 1,000 sat/vB).")
@click.option("--max-fee-fraction", type=float, default=None,
              help="Likewise for the fee as a fraction of what leaves the vault (default 0.10).")
@psbt_format_option
@qr_out_option
@force_option
@json_option
def psbt_create(vaultfile, utxo_file, chain_dir, backend_url, destinations, fee_rate, change_index, psbt_version, no_rbf,
                spend_path, output, max_fee_sats, max_fee_rate, max_fee_fraction, fmt, qr_dir, force, as_json):
    """Create an unsigned PSBT paying --to destinations from the vault's UTXOs (coordinator).

    \b
    Example:
      msigvault psbt create vault.json --chain chain/ --to bcrt1q...:150000 --fee-rate 2 -o spend.psbt
    """
    from ..psbt.analyzer import analyze

    vf = load_vault(vaultfile)
    if sum(x is not None for x in (utxo_file, chain_dir, backend_url)) != 1:
        raise CliError("give exactly one of --utxos FILE, --chain DIR or --backend URL")
    height = None
    if utxo_file:
        utxos = load_utxos(utxo_file)
    elif backend_url:
        from .backends import backend_utxos

        utxos, height = backend_utxos(vf.vault, backend_url)
    else:
        from .chain import open_chain, vault_utxos

        with open_chain(chain_dir) as chain:
            utxos, height = vault_utxos(chain, vf.vault), chain.height
    index = vf.next_change_index if change_index is None else change_index
    limits = fee_policy(max_fee_sats, max_fee_rate, max_fee_fraction)
    check_writable(output, force=force)
    if qr_dir is not None:
        require_qr_extra()
        check_writable_dir(qr_dir)
    outputs = [_parse_destination(d) for d in destinations]
    if any(amount is None for _, amount in outputs):
        if len(outputs) != 1:
            raise CliError("ADDRESS:max sends everything to one address: give no other --to")
        from ..psbt.creator import create_sweep

        p = create_sweep(vf.vault, utxos, outputs[0][0], fee_rate=fee_rate, rbf=not no_rbf,
                         current_height=height, version=int(psbt_version), fee_limits=limits, path=spend_path)
    else:
        p = vf.vault.create_psbt(utxos, outputs, fee_rate=fee_rate, change_index=index, rbf=not no_rbf,
                                 current_height=height, version=int(psbt_version), fee_limits=limits,
                                 path=spend_path)
    write_psbt(p, output, fmt, force=force, qr_dir=qr_dir)
    if change_index is None or change_index >= vf.next_change_index:
        vf.with_next_change_index(index + 1).save(vaultfile, overwrite=True)
    a = analyze(p, vf.vault)
    emit(as_json, {**a, "output": output},
         f"wrote {output}: {p.input_count} input(s), {p.output_count} output(s), fee {format_amount(a['fee'])} "
         f"({a['fee_rate']} sat/vB); next: send it to {vf.vault.m} keyholders to sign")


def _inspect_text(a: dict) -> str:
    lines = [f"{a['vault']}, txid {a['txid']}"]
    for x in a["inputs"]:
        signed = ", ".join(x["signed_by"]) or "nobody"
        amount = "unknown amount" if x["amount"] is None else format_amount(x["amount"])
        lines.append(f"  input {x['index']}: {amount} from {x['outpoint']}, signed by {signed}"
                     + (" (finalized)" if x["finalized"] else f", needs {x['signatures_needed']} more"))
    for o in a["outputs"]:
        lines.append(f"  output {o['index']}: {o['kind']:<13} {format_amount(o['amount']):>36}  {o['address']}"
                     + ("  SUSPICIOUS" if o["suspicious"] else ""))
    fee = "unknown" if a["fee"] is None else f"{format_amount(a['fee'])}, {a['fee_rate']} sat/vB"
    lines.append(f"  fee {fee}, about {a['estimated_vsize']} vB")
    lines.append(f"next step: {a['next_role']}")
    lines += [f"problem: {p}" for p in a["problems"]]
    return "\n".join(lines)


@psbt.command("inspect")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("psbtfile", type=click.Path(dir_okay=False))
@json_option
def psbt_inspect(vaultfile, psbtfile, as_json):
    """Who has signed, who is missing, fee, change, and the next step."""
    from ..psbt.analyzer import analyze

    vf = load_vault(vaultfile)
    a = analyze(load_psbt(psbtfile), vf.vault)
    if not a["spends_from_vault"]:
        spends = ", ".join(x["outpoint"] for x in a["inputs"][:3]) + (" ..." if len(a["inputs"]) > 3 else "")
        raise CliError(f"{psbtfile} does not spend from the vault in {vaultfile} ({vf.name}): it spends {spends}; "
                       "check that you have the right vault file and PSBT")
    emit(as_json, a, _inspect_text(a))


@psbt.command("sign")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("psbtfile", type=click.Path(dir_okay=False))
@click.option("--key", "keyfile", type=click.Path(dir_okay=False), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option("--yes", is_flag=True, help="Sign without asking (the summary is still printed).")
@click.option("--max-fee-sats", type=int, default=None, help="Refuse fees above this (default 2,500,000).")
@click.option("--max-fee-rate", type=float, default=None, help="Refuse fee rates above this sat/vB (default 1,000).")
@click.option("--max-fee-fraction", type=float, default=None,
              help="Refuse fees above this fraction of the amount leaving the vault (default 0.10).")
@click.option("--allow-witness-utxo-only", is_flag=True,
              help="Accept segwit v0 inputs without their previous transaction (exposes you to CVE-2020-14199).")
@click.option("--successor", "successor_files", multiple=True, type=click.Path(dir_okay=False),
              help="A successor vault file you registered (key rotation, docs/rotation.md): outputs to it are "
                   "shown as TO SUCCESSOR VAULT <name>; repeatable.")
@click.option("--qr-in", "qr_images", type=click.Path(exists=True),
              help="Read the PSBT from QR images instead: a directory of frames, or one image or GIF "
                   "(PSBTFILE is then '-').")
@click.option("--derived-keys", "derived_keys", type=click.Path(dir_okay=False),
              help="Your cache of the vault's derived keys (docs/keystore.md, derived-key records): read if it "
                   "exists, checked against your registration key before anything is unlocked, and rewritten "
                   "after signing when it gained keys. Only a cache: delete it if it is ever refused.")
@passphrase_fd_option
@psbt_format_option
@qr_out_option
@force_option
@json_option
def psbt_sign(vaultfile, psbtfile, keyfile, output, yes, max_fee_sats, max_fee_rate, max_fee_fraction,
              allow_witness_utxo_only, successor_files,
              qr_images, derived_keys, passphrase_fd, fmt, qr_dir, force, as_json):
    """Check a PSBT against the registered vault, show what it does, and sign it (keyholder, offline).

    The signer refuses anything the vault did not authorise: foreign inputs, change that does not
    rebuild from the vault, excessive fees, unusual sighash types, missing previous transactions.

    \b
    Example:
      msigvault psbt sign vault.json spend.psbt --key alice.key -o alice.psbt
    """
    from dataclasses import replace

    from ..keys.keystore import Keystore
    from ..psbt.signer import prepare

    vf = load_vault(vaultfile)
    ks = Keystore.open(keyfile)
    registered = vf.registered(ks.fingerprint)  # refuses a vault this keyholder never registered
    check_writable(output, force=force)
    if derived_keys is not None:
        _check_cache_path(derived_keys, output, vaultfile, keyfile)
    if qr_dir is not None:
        require_qr_extra()
        check_writable_dir(qr_dir)
    if qr_images:
        from pathlib import Path

        from ..psbt.psbt import Psbt
        from ..transport.qr import decode_psbt_from_images

        src = Path(qr_images)
        images = sorted(x for x in src.iterdir() if x.suffix.lower() in (".png", ".gif", ".jpg", ".jpeg")) \
            if src.is_dir() else [src]
        if not images:
            raise CliError(f"{src} holds no PNG, GIF or JPEG images")
        p = Psbt.parse(decode_psbt_from_images(images))
    else:
        p = load_psbt(psbtfile)
    policy = fee_policy(max_fee_sats, max_fee_rate, max_fee_fraction)
    if allow_witness_utxo_only:
        policy = replace(policy, allow_witness_utxo_only=True)
    successors: tuple = ()
    if successor_files:
        from ..lifecycle.migrate import load_successors

        successors, warnings = load_successors(successor_files, bytes.fromhex(ks.fingerprint))
        for w in warnings:
            click.echo(f"warning: {w}", err=True)
    # the keyholder's derived keys, checked with public data before the summary is computed
    loaded = _load_derived_keys(derived_keys, registered) if derived_keys is not None else 0
    # one check of the PSBT: what is shown is exactly what is signed
    request = prepare(p, registered, fingerprint=bytes.fromhex(ks.fingerprint), policy=policy, successors=successors)
    if request.already_signed:
        raise CliError(f"{psbtfile} is already signed by {ks.fingerprint} on every input: nothing to do; "
                       "send it back to the coordinator")
    # never ask for approval of something not shown: with --json the summary goes to stderr
    click.echo(request.summary.text(), err=as_json)
    if not yes and not approve("Sign this transaction?"):
        raise NotApproved("not signed: nothing was written")
    root, _ = unlock_root(keyfile, passphrase_fd, keystore=ks)
    signed, summary = request.sign(root)
    write_psbt(signed, output, fmt, force=force, qr_dir=qr_dir)
    done = f"signed {summary.signed_inputs} input(s) as {summary.fingerprint}; wrote {output}"
    result = {**summary.to_dict(), "output": output}
    if derived_keys is not None:
        saved = _save_derived_keys(derived_keys, registered, root, loaded)
        result["derived_keys"] = {"file": derived_keys, "loaded": loaded, "saved": saved}
        done += f"\nderived-key record {derived_keys}: {loaded} loaded, " + \
            (f"{saved} saved" if saved else "unchanged")
    emit(as_json, result, done)


def _check_cache_path(path, *others) -> None:
    """The derived-key record must be a file of its own (it is rewritten after signing), and one
    that can be created if it does not exist yet."""
    import os

    for other in others:
        if other not in (None, "-") and os.path.realpath(path) == os.path.realpath(other):
            raise CliError(f"--derived-keys {path} is also {other}: give the derived-key record a file of its own")
    if not os.path.lexists(path):
        check_writable(path, force=False)


def _load_derived_keys(path, registered) -> int:
    """Load the keyholder's derived-key record at ``path`` (none yet: 0); a refused one is a
    DerivedKeysError that says to delete it."""
    from pathlib import Path

    from ..errors import DerivedKeysError
    from ..fileio import read_bounded
    from ..policy.derived import MAX_BYTES

    if not Path(path).exists():
        return 0
    try:
        return registered.load_derived_keys(read_bounded(path, MAX_BYTES, DerivedKeysError, "derived-key record"))
    except DerivedKeysError as e:
        named = str(e) if str(path) in str(e) else f"{path}: {e}"
        raise DerivedKeysError(f"{named}; nothing was signed or written: delete {path} (it is only a cache) and "
                               "sign again", path=path, field=e.field, limit=e.limit) from None


def _save_derived_keys(path, registered, root, loaded: int) -> int:
    """Rewrite the record at ``path`` (atomically) if the vault now holds more keys than were
    loaded; the number of entries saved, or 0. A failure is only a warning: the PSBT is signed."""
    from ..errors import MsigvaultError
    from ..policy.derived import MAGIC

    try:
        data = registered.dump_derived_keys(root)
        count = int.from_bytes(data[len(MAGIC) + 33:len(MAGIC) + 37], "big")  # the record's entry count
        if count <= loaded:
            return 0
        write_output(path, data, force=True)
        return count
    except (MsigvaultError, OSError) as e:
        click.echo(f"warning: the derived-key record {path} was not updated ({e}); the signed PSBT was written",
                   err=True)
        return 0


@psbt.command("combine")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("psbtfiles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@psbt_format_option
@force_option
@json_option
def psbt_combine(vaultfile, psbtfiles, output, fmt, force, as_json):
    """Combine signed copies (any order); every signature is verified first."""
    from ..psbt.analyzer import analyze

    vf = load_vault(vaultfile)
    combined = vf.vault.combine([load_psbt(f) for f in psbtfiles])
    write_psbt(combined, output, fmt, force=force)
    a = analyze(combined, vf.vault)
    emit(as_json, {**a, "output": output},
         f"combined {len(psbtfiles)} PSBT(s) into {output}; signed by {', '.join(a['signed_by']) or 'nobody'}; "
         f"next step: {a['next_role']}")


@psbt.command("finalize")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("psbtfile", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option("--tx", "tx_output", type=click.Path(dir_okay=False), help="Also write the network transaction (hex).")
@psbt_format_option
@force_option
@json_option
def psbt_finalize(vaultfile, psbtfile, output, tx_output, fmt, force, as_json):
    """Finalize with exactly m signatures and check the transaction (consensus-verified when the
    regtest extra is installed)."""
    vf = load_vault(vaultfile)
    final = vf.vault.finalize(load_psbt(psbtfile))
    tx = vf.vault.extract(final)
    write_psbt(final, output, fmt, force=force)
    if tx_output:
        write_output(tx_output, tx.hex().encode() + b"\n", force=force)
    emit(as_json, {"output": output, "txid": tx.txid, "vsize": tx.vsize, "fee": tx.fee,
                   "verified_by_kernel": tx.verified_by_kernel, "verified_against": tx.verified_against.value,
                   "tx": tx.hex()},
         f"finalized {output}: txid {tx.txid}, {tx.vsize} vB, fee {format_amount(tx.fee)}"
         + (f", scripts verified by libbitcoinkernel against {tx.verified_against.describe()}"
            if tx.verified_by_kernel else f", fee computed from {tx.verified_against.describe()}"))
