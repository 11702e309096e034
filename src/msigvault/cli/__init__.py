"""The ``msigvault`` command: thin; parses, calls the API, prints text for people or --json.

Errors a user can cause exit with code 2 and one line on stderr, never a traceback.
Heavy modules are imported inside the commands so that start-up stays fast.
"""

from __future__ import annotations

import json
import sys

import click

from ..errors import MsigvaultError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MsigvaultError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="msigvault")
def cli():
    """Multi-signature cold-storage bitcoin vaults."""


@cli.command()
@click.option("--script", type=click.Choice(["sh", "sh-wsh", "wsh", "tr"]), default="wsh", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def demo(script, as_json):
    """Run the demo: three keyholders build a 2-of-3 vault on regtest.

    \b
    Example:
      msigvault demo
      msigvault demo --script tr --json
    """
    from ..demo import run_demo

    result = run_demo((lambda s: None) if as_json else click.echo, script=script)
    if as_json:
        click.echo(json.dumps(result, indent=2))


def main(argv=None):
    return cli.main(args=argv, prog_name="msigvault")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
