"""msigvault qr ...: move PSBTs and vault descriptors across the air gap as (animated) QR codes."""

from __future__ import annotations

import click

from .common import CliError, emit, force_option, json_option, load_psbt, load_vault, write_psbt

#: Bytes per animated UR frame when --fragment is not given.
DEFAULT_FRAGMENT = 200


def register(cli: click.Group) -> None:
    cli.add_command(qr)


@click.group()
def qr():
    """QR codes: BC-UR and BBQr animations (decoding detects which), and single codes."""


def _single_text(data: "bytes | None", descriptor: "str | None", fmt: str) -> str:
    """The one QR text of a PSBT or descriptor: a single UR, or a one-part BBQr (version 40 at most)."""
    from ..transport import TransportError
    from ..transport.bbqr import bbqr_split
    from ..transport.ur import descriptor_to_ur, psbt_to_ur_parts

    if fmt == "bbqr":
        payload, file_type = (data, "P") if descriptor is None else (descriptor, "U")
        try:
            return bbqr_split(payload, file_type, max_split=1, max_version=40).parts[0]
        except TransportError:
            raise CliError("the data does not fit one QR code: use --animate") from None
    if descriptor is not None:
        return descriptor_to_ur(descriptor)
    return psbt_to_ur_parts(data, max_fragment_len=10**9)[0]


#: Frames above which the command warns and names better ways to move the PSBT.
MANY_FRAMES = 500
_SECONDS_PER_FRAME = 0.03  # rendering one PNG frame on the 2-core reference machine (measured)


def _announce(total: int, data: bytes, fmt: str, bbqr_total: int) -> None:
    """Say on stderr, before any work, how many frames are coming and how long they take."""
    loop = total / 4
    click.echo(f"{len(data):,}-byte PSBT: {total:,} frames, about {total * _SECONDS_PER_FRAME:.0f} s to render, "
               f"a {loop:.0f} s loop at 4 frames/s", err=True)
    if total > MANY_FRAMES:
        better = "carry the PSBT file instead (USB stick or SD card: one step, no scanning)"
        if fmt == "ur" and bbqr_total < total:
            better += f", or use --format bbqr (compressed: {bbqr_total:,} frames)"
        better += ", or larger frames (--fragment / --max-version) if the camera is good"
        click.echo(f"warning: {total:,} frames take a keyholder over {loop / 60:.0f} minute(s) to scan: {better}",
                   err=True)


@qr.command("encode")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(), required=True,
              help="A directory of frames with --animate, else one .png or .svg file.")
@click.option("--format", "fmt", type=click.Choice(["ur", "bbqr"]), default="ur", show_default=True,
              help="ur: BC-UR (ur:crypto-psbt, fountain frames); bbqr: Coldcard's BBQr (B$..., "
                   "zlib-compressed, fewer frames, every frame needed).")
@click.option("--animate", is_flag=True, help="Numbered PNG frames and an animated GIF (for PSBTs of any size).")
@click.option("--fragment", type=int, default=None,
              help=f"Bytes per animated UR frame [default: {DEFAULT_FRAGMENT}].")
@click.option("--max-version", type=click.IntRange(1, 40), default=None,
              help="Largest QR version (1-40) of an animated BBQr frame; larger means fewer, denser "
                   "frames [default: 11].")
@click.option("--terminal", is_flag=True, help="Also print a single code as text for a terminal.")
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), default=None,
              help="Encode this vault's descriptor (ur:crypto-output, or BBQr text) instead of a PSBT "
                   "(FILE is ignored: give '-').")
@force_option
@json_option
def qr_encode(file, output, fmt, animate, fragment, max_version, terminal, vaultfile, force, as_json):
    """Render a PSBT FILE (binary/base64/hex) as QR: one code, or an animation with --animate.

    \b
    Example:
      msigvault qr encode spend.psbt --animate -o spend-qr/
      msigvault qr encode spend.psbt --animate --format bbqr -o spend-bbqr/
      msigvault qr decode spend-qr/frame-*.png -o spend.psbt
    """
    from ..transport import qr as q
    from ..transport.bbqr import DEFAULT_MAX_VERSION

    if fmt == "bbqr" and fragment is not None:
        raise CliError("--fragment sets the size of UR frames; for --format bbqr use --max-version")
    if fmt == "ur" and max_version is not None:
        raise CliError("--max-version applies to --format bbqr; for UR frames use --fragment")
    descriptor = data = None
    if vaultfile:
        descriptor = load_vault(vaultfile).vault.descriptor()
        if animate:
            raise CliError("a vault descriptor fits one QR code: leave out --animate")
    else:
        data = load_psbt(file).serialize()
        if animate:
            version, frag = max_version or DEFAULT_MAX_VERSION, fragment or DEFAULT_FRAGMENT
            total = q.animated_frame_count(data, fmt=fmt, max_fragment_len=frag, max_version=version)
            _announce(total, data, fmt, q.animated_frame_count(data, fmt="bbqr", max_version=version))
            with click.progressbar(length=total, label="rendering frames", file=click.get_text_stream("stderr")) as bar:
                def progress(done: int, _total: int) -> None:
                    bar.update(1)
                if fmt == "bbqr":
                    paths = q.write_animated_bbqr(data, output, max_version=version, overwrite=force,
                                                  progress=progress)
                else:
                    paths = q.write_animated_qr(data, output, max_fragment_len=frag, overwrite=force,
                                                progress=progress)
            emit(as_json, {"format": fmt, "frames": [str(p) for p in paths]},
                 f"wrote {len(paths)} files into {output}: show the GIF, or the PNG frames in a loop")
            return
    text = _single_text(data, descriptor, fmt)
    if output.endswith(".svg"):
        q.qr_svg(text, output, overwrite=force)
    else:
        q.qr_png(text, output, overwrite=force)
    if terminal and not as_json:
        click.echo(q.qr_terminal(text))
    emit(as_json, {"output": output, "format": fmt, fmt: text}, f"wrote {output}")


@qr.command("decode")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="PSBT file to write.")
@click.option("--format", "fmt", type=click.Choice(["binary", "base64", "hex"]), default="binary", show_default=True,
              help="Encoding of the PSBT file written.")
@force_option
@json_option
def qr_decode(images, output, fmt, force, as_json):
    """Read QR images back into a PSBT file.

    The QR format is detected: UR frames (any order, some missing is fine), BBQr parts (any
    order, every part needed), or one code holding a base64 or hex PSBT.
    """
    from ..psbt.psbt import Psbt
    from ..transport.qr import decode_psbt_from_images

    p = Psbt.parse(decode_psbt_from_images(images))
    write_psbt(p, output, fmt, force=force)
    emit(as_json, {"output": output, "inputs": p.input_count, "outputs": p.output_count},
         f"read {len(images)} image(s): a PSBT with {p.input_count} input(s); wrote {output}")
