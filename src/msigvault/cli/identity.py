"""msigvault identity ... and msigvault envelope ...: site identities and sealed envelopes (offline).

Everything heavy is imported inside the commands, so ``msigvault --help`` stays fast.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from .common import CliError, emit, force_option, json_option, unlock_root, write_output

NETWORKS = click.Choice(["mainnet", "testnet", "signet", "regtest"])
ROLES = click.Choice(["keyholder-site", "coordinator", "auditor"])
TYPES = click.Choice(["psbt", "partial-signature", "registration", "refusal"])
_DURATION = re.compile(r"^(\d+)([smhd])$")
_ID_ENV = "MSIGVAULT_IDENTITY_PASSPHRASE"

identity_fd_option = click.option(
    "--passphrase-fd", type=int, default=None,
    help=f"Read the identity passphrase from this open file descriptor (else ${_ID_ENV}, else a prompt).",
)


def register(cli: click.Group) -> None:
    cli.add_command(identity)
    cli.add_command(envelope)


def _identity_passphrase(fd, *, confirm: bool = False, prompt: str = "Identity passphrase: ") -> str:
    from ..keys.keystore import read_passphrase

    return read_passphrase(prompt=prompt, confirm=confirm, env_var=_ID_ENV, fd=fd)


def _load_identity(path, fd):
    from ..identity import IdentityKey

    return IdentityKey.load(path, _identity_passphrase(fd, prompt=f"Passphrase for identity {path}: "))


def _read_limited(path, limit: int, error=None) -> bytes:
    """A file's bytes, refusing (before reading it all) one larger than ``limit`` with ``error``."""
    from ..identity import EnvelopeTooLarge

    error = error or EnvelopeTooLarge
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise CliError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{p} is a directory, not a file") from None
    if len(data) > limit:
        raise error(f"{p} is larger than {limit:,} bytes: refused unread", path=p, limit=limit)
    return data


def _read_record(path):
    from ..identity import IdentityRecord, IdentityRecordError
    from ..identity.identity import MAX_RECORD_SIZE

    return IdentityRecord.from_bytes(_read_limited(path, MAX_RECORD_SIZE, IdentityRecordError))


def _trusted(record, vault, cosigner=None, network=None):
    """``record`` verified: a site's against the vault (or the cosigner record given), others self-signed."""
    if cosigner is not None:
        return record.verify(cosigner, network=network)
    if vault is not None:
        record.verify_for_vault(vault)
        return record.verify(network=network) if record.role != "keyholder-site" else _same_network(record, network)
    if record.role == "keyholder-site":
        raise CliError(f"{record.name!r} is a keyholder site: give --vault VAULTFILE (or --cosigner FILE) so its "
                       "record can be checked against that cosigner's xpub")
    return record.verify(network=network)


def _same_network(record, network):
    if network is not None:
        from ..identity import IdentityRecordError
        from ..network import Network

        if Network.from_name(network).name != record.network:
            raise IdentityRecordError(f"identity record {record.name!r} is for {record.network}, not {network}")
    return record


def _vault(path):
    if path is None:
        return None
    from .common import load_vault

    return load_vault(path).vault


def _duration(text: str):
    from datetime import timedelta

    m = _DURATION.match(text.strip())
    if not m:
        raise CliError(f"--expires takes a duration such as 90m, 24h or 7d, not {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})


def _record_text(record) -> str:
    lines = [f"identity {record.name}  [{record.role}]  id {record.id.hex()}  network {record.network}",
             f"  signing key    {record.signing_key.hex()}", f"  encryption key {record.encryption_key.hex()}",
             f"  created {record.created}"]
    if record.cosigner:
        lines.append(f"  speaks for cosigner {record.cosigner}")
    return "\n".join(lines)


def _record_json(record) -> dict:
    return {"id": record.id.hex(), **record.body(), "fingerprint": record.fingerprint}


# -- identity ------------------------------------------------------------------------------------


@click.group()
def identity():
    """Identities of keyholder sites, coordinators and auditors (offline)."""


@identity.command("new")
@click.argument("identity_file", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="A name others see (1-64 printable characters).")
@click.option("--role", type=ROLES, required=True)
@click.option("--kdf-cost", type=int, default=None, hidden=True)
@identity_fd_option
@json_option
def identity_new(identity_file, name, role, kdf_cost, passphrase_fd, as_json):
    """Make a new identity (Ed25519 + X25519 from the OS CSPRNG), encrypted with a passphrase (mode 0600).

    \b
    Example:
      msigvault identity new alice-site.identity --name alice-site --role keyholder-site
    """
    from ..identity import IdentityKey

    if Path(identity_file).exists():
        raise CliError(f"{identity_file} already exists: msigvault never overwrites an identity; choose another name")
    key = IdentityKey.generate(name, role)
    key.save(identity_file, _identity_passphrase(passphrase_fd, confirm=True, prompt="New identity passphrase: "),
             kdf_cost=kdf_cost)
    emit(as_json, {**key.public.to_dict(), "file": identity_file},
         f"identity {key.public.name} [{key.public.role}] id {key.id.hex()} written to {identity_file}")


@identity.command("show")
@click.argument("identity_file", type=click.Path(dir_okay=False))
@json_option
def identity_show(identity_file, as_json):
    """Show an identity file's public part (no passphrase needed; not authenticated until it is unlocked)."""
    from ..identity import IdentityKey

    pub = IdentityKey.read_public(identity_file)
    emit(as_json, pub.to_dict(),
         f"identity {pub.name}  [{pub.role}]  id {pub.id.hex()}\n  signing key    {pub.signing_key.hex()}\n"
         f"  encryption key {pub.encryption_key.hex()}\n  created {pub.created}")


@identity.command("export-record")
@click.argument("identity_file", type=click.Path(dir_okay=False))
@click.option("-n", "--network", type=NETWORKS, required=True)
@click.option("--key", "keyfile", type=click.Path(dir_okay=False), default=None,
              help="The keyholder's key file: signs a keyholder-site record with its vault key.")
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), default=None,
              help="The vault file: the site speaks for this key's cosigner in it.")
@click.option("--cosigner", "cosigner_file", type=click.Path(dir_okay=False), default=None,
              help="Or the cosigner record file ([fingerprint/path]xpub) instead of --vault.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@identity_fd_option
@click.option("--key-passphrase-fd", type=int, default=None,
              help="Read the key file's passphrase from this descriptor (else $MSIGVAULT_PASSPHRASE, else a prompt).")
@force_option
@json_option
def identity_export_record(identity_file, network, keyfile, vaultfile, cosigner_file, output, passphrase_fd,
                           key_passphrase_fd, force, as_json):
    """Write the identity's signed record (public) for others to verify.

    \b
    A keyholder site's record is signed by the cosigner's vault key (needs --key and --vault or
    --cosigner); coordinator and auditor records are self-signed.
    Example:
      msigvault identity export-record alice-site.identity -n regtest --key alice.key --vault vault.json -o alice-site.record
    """
    from ..network import Network

    key = _load_identity(identity_file, passphrase_fd)
    root = cosigner = None
    if key.public.role == "keyholder-site":
        if keyfile is None or (vaultfile is None) == (cosigner_file is None):
            raise CliError("a keyholder-site record is signed by the cosigner's vault key: give --key KEYFILE and "
                           "one of --vault VAULTFILE or --cosigner FILE")
        root, _ = unlock_root(keyfile, key_passphrase_fd)
        cosigner = _own_cosigner(root, vaultfile, cosigner_file, Network.from_name(network))
    elif keyfile or vaultfile or cosigner_file:
        raise CliError(f"a {key.public.role} record speaks for no cosigner: give no --key, --vault or --cosigner")
    record = key.record(network, root=root, cosigner=cosigner)
    write_output(output, record.to_bytes(), force=force)
    emit(as_json, {**_record_json(record), "output": output}, _record_text(record) + f"\nwritten to {output}")


def _read_cosigner_text(path) -> str:
    return _read_limited(path, 4096, CliError).decode("utf-8", "replace").strip()


def _own_cosigner(root, vaultfile, cosigner_file, network):
    from ..keys.cosigner import Cosigner

    if cosigner_file is not None:
        return Cosigner.parse(_read_cosigner_text(cosigner_file), network=network)
    vault = _vault(vaultfile)
    mine = [c for c in vault.cosigners if c.fingerprint == root.fingerprint]
    if not mine:
        raise CliError(f"this key (fingerprint {root.fingerprint.hex()}) is not a cosigner of {vaultfile}")
    return mine[0]


@identity.command("verify-record")
@click.argument("record_file", type=click.Path(dir_okay=False))
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), default=None,
              help="Check a site's record against this vault's cosigner xpub.")
@click.option("--cosigner", "cosigner_file", type=click.Path(dir_okay=False), default=None,
              help="Or against this cosigner record file.")
@click.option("-n", "--network", type=NETWORKS, default=None, help="Also require this network.")
@json_option
def identity_verify_record(record_file, vaultfile, cosigner_file, network, as_json):
    """Verify an identity record: its self-signature and, for a site, the cosigner's vault-key signature."""
    from ..keys.cosigner import Cosigner

    record = _read_record(record_file)
    cosigner = None
    if cosigner_file is not None:
        cosigner = Cosigner.parse(_read_cosigner_text(cosigner_file))
    _trusted(record, _vault(vaultfile), cosigner, network)
    emit(as_json, {"ok": True, **_record_json(record)}, _record_text(record) + "\nOK: the record verifies")


def _bbqr_parts(data: bytes) -> "list[str]":
    from ..transport.bbqr import bbqr_split

    return list(bbqr_split(data, "B").parts)


def _envelope_bytes(raw: bytes) -> bytes:
    """The envelope in a file: its bytes, or rebuilt from BBQr parts (a text file, one part per line)."""
    from ..identity.envelope import MAGIC

    if raw.startswith(MAGIC) or not raw.lstrip().startswith(b"B$"):
        return raw
    from ..transport.bbqr import bbqr_join

    lines = [line.strip() for line in raw.decode("ascii", "replace").splitlines() if line.strip()]
    result = bbqr_join(lines)
    if result.file_type != "B":
        raise CliError(f"the BBQr parts carry file type {result.file_type}, not an envelope (type B)")
    return result.data


# -- envelope ------------------------------------------------------------------------------------


@click.group()
def envelope():
    """Seal and open envelopes: encrypted to one identity, signed by another (docs/envelopes.md)."""


@envelope.command("seal")
@click.argument("payload_file", type=click.Path(dir_okay=False))
@click.option("--from", "from_identity", type=click.Path(dir_okay=False), required=True,
              help="Your identity file (signs the envelope).")
@click.option("--to", "to_record", type=click.Path(dir_okay=False), required=True,
              help="The recipient's identity record.")
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), default=None,
              help="The vault file, to check a keyholder site's record.")
@click.option("--session", "session_id", required=True, help="The signing session id.")
@click.option("--seq", "sequence", type=int, required=True, help="Sequence number: above the last you sent.")
@click.option("--type", "content_type", type=TYPES, required=True)
@click.option("--expires", default="24h", show_default=True, help="How long it stays valid: 90m, 24h, 7d.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@click.option("--bbqr", "bbqr_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the envelope as BBQr parts (type B), one per line, for animated QR.")
@identity_fd_option
@force_option
@json_option
def envelope_seal(payload_file, from_identity, to_record, vaultfile, session_id, sequence, content_type, expires,
                  output, bbqr_file, passphrase_fd, force, as_json):
    """Seal PAYLOAD_FILE (a PSBT, partial PSBT, registration or refusal) for one recipient.

    \b
    Example:
      msigvault envelope seal alice.psbt --from alice-site.identity --to coordinator.record \\
        --session 3f2a9c --seq 1 --type partial-signature -o alice.msve
    """
    from ..identity import seal

    until = _duration(expires)
    recipient = _trusted(_read_record(to_record), _vault(vaultfile))
    from ..identity.envelope import MAX_PAYLOAD

    payload = _read_limited(payload_file, MAX_PAYLOAD)
    sender = _load_identity(from_identity, passphrase_fd)
    data = seal(payload, sender=sender, recipient=recipient, session_id=session_id, sequence=sequence,
                content_type=content_type, expires=until)
    parts = _bbqr_parts(data) if bbqr_file else None
    write_output(output, data, force=force)
    if parts is not None:
        write_output(bbqr_file, ("\n".join(parts) + "\n").encode(), force=force)
    emit(as_json, {"output": output, "bytes": len(data), "bbqr": bbqr_file, "bbqr_parts": len(parts or ()),
                   "recipient": recipient.name,
                   "recipient_id": recipient.id.hex(), "session": session_id, "sequence": sequence,
                   "content_type": content_type},
         f"sealed {len(payload):,} bytes for {recipient.name} ({len(data):,}-byte envelope) in {output}")


@envelope.command("open")
@click.argument("envelope_file", type=click.Path(dir_okay=False))
@click.option("--as", "as_identity", type=click.Path(dir_okay=False), required=True,
              help="Your identity file (the recipient).")
@click.option("--from", "from_records", type=click.Path(dir_okay=False), multiple=True, required=True,
              help="An identity record allowed to send here (repeatable).")
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), default=None,
              help="The vault file, to check keyholder sites' records.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False), default=None,
              help="Replay state (accepted sequences); default IDENTITY_FILE.seen.json next to --as.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Write the payload here.")
@identity_fd_option
@force_option
@json_option
def envelope_open(envelope_file, as_identity, from_records, vaultfile, state_file, output, passphrase_fd, force,
                  as_json):
    """Check and open an envelope (binary, or a text file of its BBQr parts, one per line, any order):
    recipient, decryption, sender, signature, expiry, replay and order.

    \b
    Example:
      msigvault envelope open alice.msve --as coordinator.identity --from alice-site.record \\
        --vault vault.json -o alice.psbt
    """
    from ..identity import ReplayGuard, open_envelope

    vault = _vault(vaultfile)
    senders = [_trusted(_read_record(r), vault) for r in from_records]
    from ..identity.envelope import MAX_ENVELOPE

    data = _envelope_bytes(_read_limited(envelope_file, 2 * MAX_ENVELOPE + 4096))  # hex-encoded BBQr parts
    state = Path(state_file) if state_file else Path(as_identity).with_name(Path(as_identity).name + ".seen.json")
    guard = ReplayGuard.load(state)
    guard.path = None  # saved below, after the payload is written
    from .common import check_writable

    check_writable(output, force=force)
    me = _load_identity(as_identity, passphrase_fd)
    opened = open_envelope(data, recipient=me, senders=senders, guard=guard)
    write_output(output, opened.payload, force=force)
    guard.save(state)
    emit(as_json, {**opened.to_dict(), "output": output, "state": str(state)},
         f"opened envelope {opened.sequence} of session {opened.session_id} from {opened.sender.name}: "
         f"{opened.content_type.label}, {len(opened.payload):,} bytes written to {output}")
