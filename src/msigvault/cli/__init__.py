"""The ``msigvault`` command: thin; parses, calls the API, prints text for people or --json.

Errors a user can cause exit with code 2 and one line on stderr, never a traceback. Heavy
modules are imported inside the commands, so ``msigvault --help`` starts fast.
"""

from __future__ import annotations

import sys

import click

from .common import MsigvaultGroup


@click.group(cls=MsigvaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="msigvault")
def cli():
    """Multi-signature cold-storage bitcoin vaults.

    \b
    A ceremony, in short:
      msigvault key new alice.key                      # each keyholder, offline
      msigvault key cosigner alice.key -n regtest -o alice.cosigner
      msigvault vault create -m 2 alice.cosigner bob.cosigner carol.cosigner -n regtest -o vault.json
      msigvault psbt create vault.json --utxos utxos.json --to ADDRESS:SATS --fee-rate 2 -o spend.psbt
      msigvault psbt sign vault.json spend.psbt --key alice.key -o alice.psbt   # offline
      msigvault psbt combine vault.json alice.psbt carol.psbt -o full.psbt
      msigvault psbt finalize vault.json full.psbt -o final.psbt
      msigvault broadcast vault.json final.psbt --chain chain/
    """


def _register() -> None:
    from . import (backends, chain, demo, identity, keys, lifecycle, psbts, qr, reserves, service,  # noqa: F401
                   sessions, valuation, vaults)  # (each adds its commands to cli)

    for module in (keys, vaults, psbts, qr, chain, sessions, identity, reserves, valuation, service, lifecycle,
                   demo, backends):  # backends extends vault and regtest
        module.register(cli)


_register()


def main(argv=None):
    try:
        return cli.main(args=argv, prog_name="msigvault")
    except KeyboardInterrupt:  # pragma: no cover
        click.echo("\ninterrupted: nothing was written", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
