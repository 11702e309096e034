"""msigvault demo: the whole ceremony on a local regtest chain, through the same CLI commands."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    cli.add_command(demo)


@click.command()
@click.option("--script", type=click.Choice(["sh", "sh-wsh", "wsh", "tr"]), default="wsh", show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the sites' directories go (default: a new temporary directory, kept).")
def demo(script, workdir):
    """Run a whole 2-of-3 ceremony: three sites create keys, build and verify a vault, the vault is
    funded on a local regtest chain, two sites sign, the coordinator combines, finalizes and broadcasts.

    \b
    Example:
      msigvault demo
      msigvault demo --script tr --workdir /tmp/ceremony
    """
    from ..demo import run_demo

    run_demo(click.echo, script=script, workdir=workdir)
