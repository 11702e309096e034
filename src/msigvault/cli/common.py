"""What every command shares: error handling, --json, reading and writing files."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import FileSystemError, MsigvaultError

_JSON_KEY = "msigvault.json"


class MsigvaultGroup(click.Group):
    """Turns every MsigvaultError into exit code 2 and one line on stderr, or, for a command called
    with ``--json``, ``{"error": {"code": ..., "message": ..., ...}}`` on stdout (docs/errors.md)."""

    def invoke(self, ctx):
        return guarded_invoke(super().invoke, ctx)


def guarded_invoke(invoke, ctx):
    """``invoke(ctx)`` with MsigvaultGroup's error handling (the lazy top-level group uses it too)."""
    argv = [*getattr(ctx, "_protected_args", ()), *ctx.args]
    try:
        return invoke(ctx)
    except MsigvaultError as e:
        _fail(ctx, e, argv)
    except OSError as e:
        text = f"{e.strerror or e}: {getattr(e, 'filename', '') or ''}".rstrip(": ")
        _fail(ctx, FileSystemError(text, path=getattr(e, "filename", None) or None), argv)
    except click.ClickException as e:  # usage errors click finds itself
        if not _wants_json(ctx, argv):
            raise
        _fail(ctx, CliError(e.format_message()), argv)


def _wants_json(ctx, argv) -> bool:
    """Whether the failing command was called with --json: as parsed if it got that far, else as typed."""
    if _JSON_KEY in ctx.meta:
        return bool(ctx.meta[_JSON_KEY])
    words = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in words


def _fail(ctx, error: MsigvaultError, argv) -> None:
    if _wants_json(ctx, argv):
        click.echo(json.dumps({"error": error.to_dict()}))
    else:
        click.echo(f"error: {error}", err=True)
    ctx.exit(2)


def _remember_json(ctx, param, value):
    ctx.meta[_JSON_KEY] = value  # meta is shared by the whole context tree: the group sees it
    return value


class CliError(MsigvaultError):
    """A command-line usage problem that click cannot see (conflicting options, bad values)."""

    code = "cli.usage"


class NotApproved(CliError):
    """The person at the terminal did not approve (answered no, or no answer): nothing was done."""

    code = "cli.not-approved"


json_option = click.option(
    "--json", "as_json", is_flag=True, is_eager=True, callback=_remember_json,
    help="Print JSON for machines instead of text.",
)
passphrase_fd_option = click.option(
    "--passphrase-fd", type=int, default=None,
    help="Read the keystore passphrase from this open file descriptor (else $MSIGVAULT_PASSPHRASE, else a prompt).",
)
force_option = click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")


def emit(as_json: bool, data, text: "str | None" = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False))
    elif text is not None:
        click.echo(text)


def write_output(path: "str | os.PathLike", data: bytes, *, force: bool = False, secret: bool = False) -> Path:
    from ..fileio import write_atomic

    return write_atomic(path, data, overwrite=force, secret=secret)


def read_input(path: "str | os.PathLike") -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{p} is a directory, not a file") from None


def load_vault(path):
    from ..vaultfile import load_vault_file

    return load_vault_file(path)


def load_psbt(path):
    """A PSBT from a file in binary, base64, hex, or UR frames (one per line)."""
    from ..psbt.psbt import Psbt
    from ..transport.files import read_psbt_file

    return Psbt.parse(read_psbt_file(path))


def write_psbt(psbt, path, fmt: str, *, force: bool = False, qr_dir=None) -> None:
    """Write a PSBT file (never silently replacing one) and, with ``qr_dir``, animated QR frames.

    All or nothing: the QR frames are written first; if the PSBT file then cannot be written,
    frames this call created are removed again.
    """
    from ..transport.files import write_psbt_file

    check_writable(path, force=force)
    created = []
    if qr_dir is not None:
        require_qr_extra()
        check_writable_dir(qr_dir)
        new_dir = not Path(qr_dir).exists()
        created = write_qr_frames(psbt.serialize(), qr_dir, overwrite=force)
    try:
        write_psbt_file(psbt, path, encoding=fmt, overwrite=force)
    except BaseException:
        if qr_dir is not None and not force:
            for f in created:
                Path(f).unlink(missing_ok=True)
            if new_dir:
                try:
                    Path(qr_dir).rmdir()
                except OSError:
                    pass
        raise


def approve(question: str) -> bool:
    """Ask the person at the terminal (on stderr); no answer (end of input) is a no."""
    try:
        return click.confirm(question, err=True)
    except click.Abort:
        click.echo("", err=True)
        return False


def check_writable(path, *, force: bool) -> None:
    """Before any prompt or work: the output file can be created (or replaced with --force)."""
    p = Path(path)
    if p.exists() and not force:
        raise CliError(f"{p} already exists: choose another name, or pass --force to replace it")
    if p.is_dir():
        raise CliError(f"{p} is a directory: give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"cannot write {p}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise CliError(f"cannot write {p}: the directory {parent} is not writable")


def check_writable_dir(path) -> None:
    """Before any prompt or work: ``path`` is a writable directory or can be created as one."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise CliError(f"{p} exists and is not a directory")
        if not os.access(p, os.W_OK):
            raise CliError(f"cannot write into {p}: the directory is not writable")
        return
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise CliError(f"cannot create the directory {p}: {parent} does not exist or is not writable")


def require_qr_extra() -> None:
    """QR output needs the ``qr`` extra (segno, pillow): say so before any work is done."""
    try:
        import PIL  # noqa: F401
        import segno  # noqa: F401
    except ImportError:
        raise CliError(
            "QR output needs the qr extra: pip install 'msigvault[qr]' (or write the PSBT file only)"
        ) from None


@dataclass(frozen=True)
class QrTarget:
    """Where ``--qr`` frames go and in which format (``ur`` or ``bbqr``); usable as a path."""

    directory: str
    qr_format: str = "ur"

    def __fspath__(self) -> str:
        return self.directory

    def __str__(self) -> str:
        return self.directory


def write_qr_frames(data: bytes, target, *, overwrite: bool = False) -> "list[Path]":
    """Animated QR frames of a PSBT into ``target`` (a path, or a :class:`QrTarget` naming the format)."""
    from ..transport import qr

    if getattr(target, "qr_format", "ur") == "bbqr":
        return qr.write_animated_bbqr(data, target, overwrite=overwrite)
    return qr.write_animated_qr(data, target, overwrite=overwrite)


_QR_FORMAT_KEY = "msigvault.qr_format"


def _remember_qr_format(ctx, param, value):
    ctx.meta[_QR_FORMAT_KEY] = value
    return value


def _qr_target(ctx, param, value):
    if value is None:
        if ctx.get_parameter_source("qr_format") == click.core.ParameterSource.COMMANDLINE:
            raise CliError("--qr-format says how to write the --qr frames: give --qr DIR too")
        return None
    return QrTarget(value, ctx.meta.get(_QR_FORMAT_KEY, "ur"))


_qr_dir_option = click.option(
    "--qr", "qr_dir", type=click.Path(file_okay=False), default=None, callback=_qr_target,
    help="Also write the PSBT as animated QR frames (PNG, and a GIF) into this directory.",
)
_qr_format_option = click.option(
    "--qr-format", "qr_format", type=click.Choice(["ur", "bbqr"]), default="ur", show_default=True,
    is_eager=True, expose_value=False, callback=_remember_qr_format,
    help="Frames for --qr: ur (BC-UR fountain frames) or bbqr (Coldcard's BBQr, compressed: fewer frames).",
)


def qr_out_option(f):
    """``--qr DIR`` and ``--qr-format ur|bbqr``: the command receives ``qr_dir`` (a QrTarget or None)."""
    return _qr_dir_option(_qr_format_option(f))


psbt_format_option = click.option(
    "--format", "fmt", type=click.Choice(["binary", "base64", "hex"]), default="binary", show_default=True,
    help="Encoding of the PSBT file written.",
)


def passphrase(fd, *, confirm: bool = False, prompt: str = "Keystore passphrase: ") -> str:
    from ..keys.keystore import read_passphrase

    return read_passphrase(prompt=prompt, confirm=confirm, fd=fd)


def unlock_root(key_path, fd, *, keystore=None, tries: int = 3):
    """Open a keystore and return (its master private key as an ExtendedKey, the Keystore).

    A passphrase typed at the prompt may be retried (``tries`` in all); one from a file
    descriptor or the environment is tried once.
    """
    from ..keys.keystore import Keystore, WrongPassphrase

    ks = keystore or Keystore.open(key_path)
    interactive = fd is None and not os.environ.get("MSIGVAULT_PASSPHRASE")
    for attempt in range(1, (tries if interactive else 1) + 1):
        try:
            return ks.root_key(passphrase(fd, prompt=f"Passphrase for {key_path} ({ks.fingerprint}): ")), ks
        except WrongPassphrase as e:
            if not interactive or attempt == tries:
                raise
            click.echo(f"error: {e} ({tries - attempt} more tries)", err=True)
    raise AssertionError("unreachable")
