"""The ``msigvault`` command: thin; parses, calls the API, prints text for people or --json.

Errors a user can cause exit with code 2 and one line on stderr, never a traceback. Heavy
modules are imported inside the commands, so ``msigvault --help`` starts fast.
"""

from __future__ import annotations

import sys

import click


class _LazyGroup(click.Group):
    """The top-level group: a command's module is imported when that command runs; MsigvaultErrors
    become exit code 2 (cli/common.py's MsigvaultGroup handling, imported only when a command runs)."""

    def invoke(self, ctx):
        from .common import guarded_invoke

        return guarded_invoke(super().invoke, ctx)

    def get_command(self, ctx, cmd_name):
        entry = _COMMANDS.get(cmd_name)
        _load(entry[0] if entry is not None else _MODULES)  # an unlisted name: load everything, then look
        return dict.get(self.commands, cmd_name)

    def list_commands(self, ctx):
        return sorted(_COMMANDS)

    def format_commands(self, ctx, formatter):
        """The command list from ``_COMMANDS``, formatted as click formats a loaded group's."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, click.Command(n, help=_COMMANDS[n][1]).get_short_help_str(limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


# Every command module, in registration order; backends extends the vault and regtest groups.
_MODULES = ("keys", "vaults", "psbts", "qr", "chain", "sessions", "identity", "reserves", "valuation", "service",
            "lifecycle", "demo", "site", "backends", "watch")
# Top-level command -> (the modules that build it, its one-line help for ``msigvault --help``), so that
# ``--help`` and each command import only what they need (tests/cli/test_cli_lazy.py checks this table
# against what the modules really register: add a line here with each new top-level command).
_COMMANDS: "dict[str, tuple[tuple[str, ...], str]]" = {
    "audit": (("sessions",), "The tamper-evident audit log: verify it, export it for an auditor."),
    "broadcast": (("chain",), "Broadcast a finalized PSBT (or a raw transaction in hex) to a regtest chain (--chain: "
                  "it is mined in a block) or a backend (--backend), or have it rejected with Bitcoin Core's reason."),
    "coordinator": (("service",), "The coordinator service: signing sessions over HTTPS for sites, operators and "
                    "auditors (docs/service.md)."),
    "demo": (("demo",), "Run a whole 2-of-3 ceremony: three sites create keys, build and verify a vault, the vault "
             "is funded on a local regtest chain, two sites sign, the coordinator combines, finalizes and broadcasts."),
    "envelope": (("identity",), "Seal and open envelopes: encrypted to one identity, signed by another "
                 "(docs/envelopes.md)."),
    "health": (("reserves",), "Key-health checks: each keyholder signs a dated challenge with their vault key, offline."),
    "identity": (("identity",), "Identities of keyholder sites, coordinators and auditors (offline)."),
    "intake": (("lifecycle",), "Take in seized coins: prepare (offline), scan, plan (online), sign (offline), "
               "broadcast, record."),
    "key": (("keys",), "Create, restore and use a keyholder's encrypted key file (offline)."),
    "migrate": (("lifecycle",), "Rotate keys: move every coin of a vault to a registered successor vault "
                "(docs/rotation.md)."),
    "proof": (("reserves",), "BIP322 proofs of control of a vault address: no coins move (see docs/reserves.md)."),
    "psbt": (("psbts",), "PSBTs: the coordinator creates, keyholders sign offline, the coordinator combines and "
             "finalizes."),
    "qr": (("qr",), "QR codes: BC-UR and BBQr animations (decoding detects which), and single codes."),
    "regtest": (("chain", "backends"), "A local regtest chain validated by Bitcoin Core's libbitcoinkernel, to "
                "rehearse ceremonies."),
    "report": (("valuation",), "Reports for the finance team and auditors."),
    "session": (("sessions",), "Signing sessions: who was asked, who signed, what was broadcast (the coordinator "
                "database)."),
    "site": (("site",), "A keyholder site: pull requests, sign offline, push the answer (service or shared folder; "
             "docs/site.md)."),
    "value": (("valuation",), "Daily mark-to-market of the reserve: record a day's valuation, show the series."),
    "vault": (("vaults", "backends"), "Vault policies: create one from cosigner records, show it, derive addresses, "
              "import/export."),
    "watch": (("watch",), "Watch-only multisig descriptors beyond the vault shape: derive addresses, scan coins; "
              "never sign."),
}
_loaded: "set[str]" = set()


def _load(modules: "tuple[str, ...]") -> None:
    """Register the commands of ``modules`` on ``cli`` (backends after the groups it extends)."""
    import importlib

    if "backends" in modules:
        modules = ("vaults", "chain") + modules
    for name in modules:
        if name not in _loaded:
            _loaded.add(name)
            importlib.import_module(f"{__name__}.{name}").register(cli)


class _Commands(dict):
    """``cli.commands``: a name not loaded yet, or reading the whole table, loads every module."""

    def _all(self) -> None:
        _load(_MODULES)

    def __getitem__(self, key):
        if not super().__contains__(key):  # (backends looks up vault and regtest once they are loaded)
            self._all()
        return super().__getitem__(key)

    def get(self, key, default=None):
        if not super().__contains__(key):
            self._all()
        return super().get(key, default)

    def __contains__(self, key):
        if not super().__contains__(key):
            self._all()
        return super().__contains__(key)

    def __iter__(self):
        self._all()
        return super().__iter__()

    def __len__(self) -> int:
        self._all()
        return super().__len__()

    def keys(self):
        self._all()
        return super().keys()

    def values(self):
        self._all()
        return super().values()

    def items(self):
        self._all()
        return super().items()


cli.commands = _Commands()


def main(argv=None):
    try:
        return cli.main(args=argv, prog_name="msigvault")
    except KeyboardInterrupt:  # pragma: no cover
        click.echo("\ninterrupted: nothing was written", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
