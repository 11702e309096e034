"""msigvault qr ...: move PSBTs and vault descriptors across the air gap as (animated) QR codes."""

from __future__ import annotations

import click

from .common import CliError, emit, force_option, json_option, load_psbt, load_vault, write_psbt


def register(cli: click.Group) -> None:
    cli.add_command(qr)


@click.group()
def qr():
    """QR codes: ur:crypto-psbt animations (BC-UR fountain codes) and single codes."""


@qr.command("encode")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(), required=True,
              help="A directory of frames with --animate, else one .png or .svg file.")
@click.option("--animate", is_flag=True, help="Numbered PNG frames and an animated GIF (for PSBTs of any size).")
@click.option("--fragment", type=int, default=200, show_default=True, help="Bytes per animated frame.")
@click.option("--terminal", is_flag=True, help="Also print a single code as text for a terminal.")
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), default=None,
              help="Encode this vault's descriptor as ur:crypto-output instead of a PSBT (FILE is ignored: give '-').")
@force_option
@json_option
def qr_encode(file, output, animate, fragment, terminal, vaultfile, force, as_json):
    """Render a PSBT FILE (binary/base64/hex) as QR: one code, or an animation with --animate.

    \b
    Example:
      msigvault qr encode spend.psbt --animate -o spend-qr/
      msigvault qr decode spend-qr/frame-*.png -o spend.psbt
    """
    from ..transport import qr as q
    from ..transport.ur import descriptor_to_ur, psbt_to_ur_parts

    if vaultfile:
        parts = [descriptor_to_ur(load_vault(vaultfile).vault.descriptor())]
        if animate:
            raise CliError("a vault descriptor fits one QR code: leave out --animate")
    else:
        data = load_psbt(file).serialize()
        if animate:
            paths = q.write_animated_qr(data, output, max_fragment_len=fragment, overwrite=force)
            emit(as_json, {"frames": [str(p) for p in paths]},
                 f"wrote {len(paths)} files into {output}: show the GIF, or the PNG frames in a loop")
            return
        parts = psbt_to_ur_parts(data, max_fragment_len=10**9)
    if len(parts) != 1:  # pragma: no cover
        raise CliError("the data does not fit one QR code: use --animate")
    text = parts[0]
    if output.endswith(".svg"):
        q.qr_svg(text, output, overwrite=force)
    else:
        q.qr_png(text, output, overwrite=force)
    if terminal and not as_json:
        click.echo(q.qr_terminal(text))
    emit(as_json, {"output": output, "ur": text}, f"wrote {output}")


@qr.command("decode")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="PSBT file to write.")
@click.option("--format", "fmt", type=click.Choice(["binary", "base64", "hex"]), default="binary", show_default=True)
@force_option
@json_option
def qr_decode(images, output, fmt, force, as_json):
    """Read QR images (animation frames in any order, some missing is fine) back into a PSBT file."""
    from ..psbt.psbt import Psbt
    from ..transport.qr import decode_psbt_from_images

    p = Psbt.parse(decode_psbt_from_images(images))
    write_psbt(p, output, fmt, force=force)
    emit(as_json, {"output": output, "inputs": p.input_count, "outputs": p.output_count},
         f"read {len(images)} image(s): a PSBT with {p.input_count} input(s); wrote {output}")
