"""msigvault key ...: the keyholder's encrypted key file."""

from __future__ import annotations

import secrets
import sys

import click

from .common import CliError, emit, force_option, json_option, passphrase, passphrase_fd_option, unlock_root, write_output

NETWORKS = click.Choice(["mainnet", "testnet", "signet", "regtest"])
SCRIPTS = click.Choice(["sh", "sh-wsh", "wsh", "tr"])


def register(cli: click.Group) -> None:
    cli.add_command(key)


@click.group()
def key():
    """Create, restore and use a keyholder's encrypted key file (offline)."""


@key.command("new")
@click.argument("keyfile", type=click.Path(dir_okay=False))
@click.option("--words", type=click.Choice(["12", "24"]), default="24", show_default=True)
@click.option("--label", default="", help="A name shown with the key (not secret).")
@click.option("--skip-backup-check", is_flag=True,
              help="Do not show the words now (for rehearsals and automation); show them later with 'key backup'.")
@passphrase_fd_option
@json_option
def key_new(keyfile, words, label, skip_backup_check, passphrase_fd, as_json):
    """Create a new key from the operating system's random source and encrypt it to KEYFILE.

    Shows the 24 recovery words once for a paper backup and asks for two of them back.

    \b
    Example:
      msigvault key new alice.key --label "alice, site A"
    """
    from ..keys.keystore import Keystore
    from ..keys.mnemonic import generate_mnemonic

    words_n = int(words)
    pw = passphrase(passphrase_fd, confirm=True, prompt="New keystore passphrase: ")
    mnemonic = generate_mnemonic(words_n)
    if not skip_backup_check:
        _paper_backup(mnemonic)
    ks = Keystore.create(keyfile, pw, mnemonic=mnemonic, label=label)
    emit(as_json, {"keyfile": str(keyfile), "fingerprint": ks.fingerprint, "label": ks.label},
         f"created {keyfile}: master fingerprint {ks.fingerprint}")


def _paper_backup(mnemonic: str) -> None:
    if not sys.stdin.isatty():
        raise CliError(
            "showing the recovery words needs an interactive terminal; run 'key new' at a terminal, or "
            "pass --skip-backup-check and run 'msigvault key backup' there later"
        )
    words = mnemonic.split()
    click.echo("Write these words on paper, in order. Anyone who sees them controls this key.\n", err=True)
    for i in range(0, len(words), 4):
        click.echo("  " + "  ".join(f"{i + j + 1:>2}. {w:<9}" for j, w in enumerate(words[i:i + 4])), err=True)
    click.confirm("\nHave you written all of them down?", abort=True, err=True)
    click.clear()
    for position in sorted(secrets.SystemRandom().sample(range(len(words)), 2)):
        for attempt in range(3):
            answer = click.prompt(f"Word number {position + 1}", err=True).strip().lower()
            if answer == words[position]:
                break
            click.echo("That is not the word. Check your paper.", err=True)
        else:
            raise CliError("the backup check failed three times: nothing was saved; start again")


@key.command("restore")
@click.argument("keyfile", type=click.Path(dir_okay=False))
@click.option("--label", default="")
@click.option("--mnemonic-fd", type=int, default=None, help="Read the words from this file descriptor instead of a prompt.")
@passphrase_fd_option
@json_option
def key_restore(keyfile, label, mnemonic_fd, passphrase_fd, as_json):
    """Restore a key from its recovery words into a new KEYFILE (never pass words as arguments)."""
    from ..keys.keystore import Keystore

    if mnemonic_fd is not None:
        with open(mnemonic_fd, closefd=False) as f:
            words = f.readline()
    else:
        words = click.prompt("Recovery words", hide_input=True, err=True)
    pw = passphrase(passphrase_fd, confirm=True, prompt="New keystore passphrase: ")
    ks = Keystore.create(keyfile, pw, mnemonic=words, label=label)
    emit(as_json, {"keyfile": str(keyfile), "fingerprint": ks.fingerprint},
         f"restored {keyfile}: master fingerprint {ks.fingerprint}")


@key.command("info")
@click.argument("keyfile", type=click.Path(dir_okay=False))
@json_option
def key_info(keyfile, as_json):
    """Show a key file's public details (no passphrase needed)."""
    from ..keys.keystore import Keystore

    ks = Keystore.open(keyfile)
    data = {"keyfile": str(keyfile), "fingerprint": ks.fingerprint, "label": ks.label,
            "created": ks.created.isoformat(), "bip39_passphrase": ks.uses_bip39_passphrase}
    emit(as_json, data, "\n".join(f"{k}: {v}" for k, v in data.items()))


@key.command("backup")
@click.argument("keyfile", type=click.Path(dir_okay=False))
@passphrase_fd_option
def key_backup(keyfile, passphrase_fd):
    """Show the recovery words again, for a paper backup (interactive terminal only)."""
    from ..keys.keystore import Keystore

    if not sys.stdin.isatty() or not sys.stderr.isatty():
        raise CliError("the recovery words are shown only on an interactive terminal")
    ks = Keystore.open(keyfile)
    words = ks.mnemonic(passphrase(passphrase_fd)).split()
    for i in range(0, len(words), 4):
        click.echo("  " + "  ".join(f"{i + j + 1:>2}. {w:<9}" for j, w in enumerate(words[i:i + 4])), err=True)


@key.command("cosigner")
@click.argument("keyfile", type=click.Path(dir_okay=False))
@click.option("-n", "--network", type=NETWORKS, required=True)
@click.option("--script", type=SCRIPTS, default="wsh", show_default=True)
@click.option("--account", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the record to this file.")
@passphrase_fd_option
@force_option
@json_option
def key_cosigner(keyfile, network, script, account, output, passphrase_fd, force, as_json):
    """Print this keyholder's cosigner record: [fingerprint/path]xpub (BIP48; BIP45 for sh, BIP87 for tr).

    \b
    Example:
      msigvault key cosigner alice.key --network regtest --script wsh -o alice.cosigner
    """
    from ..keys.cosigner import Cosigner
    from ..keys.paths import default_account_path, format_path
    from ..network import Network

    net = Network.from_name(network)
    root, _ = unlock_root(keyfile, passphrase_fd)
    c = Cosigner.from_root(root, default_account_path(net, script, account), net)
    if output:
        write_output(output, (str(c) + "\n").encode(), force=force)
    emit(as_json, {"record": str(c), "fingerprint": c.fingerprint.hex(), "path": format_path(c.path),
                   "xpub": c.xpub, "output": output}, str(c))
