"""msigvault watch derive|scan: watch-only multisig descriptors that are not vaults (docs/descriptors.md).

Nothing here can sign: a watched descriptor is not a registered vault.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, emit, json_option, read_input

NETWORK_CHOICE = click.Choice(["mainnet", "testnet", "signet", "regtest"])


def register(cli: click.Group) -> None:
    cli.add_command(watch)


@click.group()
def watch():
    """Watch-only multisig descriptors beyond the vault shape: derive addresses, scan coins; never sign."""


def _watched(descriptor: str, network: str):
    from ..policy.watch import Watched

    p = Path(descriptor)
    text = descriptor
    if "(" not in descriptor and p.is_file():
        raw = read_input(p)
        try:
            text = raw.decode().strip()
        except UnicodeDecodeError:
            raise CliError(f"{p} is not a text file holding one descriptor") from None
    return Watched.parse(text, network=network)


descriptor_argument = click.argument("descriptor")
network_option = click.option("-n", "--network", type=NETWORK_CHOICE, required=True,
                              help="The network the addresses are for (raw keys carry none).")


@watch.command("derive")
@descriptor_argument
@network_option
@click.option("--index", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True, help="First index.")
@click.option("--count", type=click.IntRange(1, 100_000), default=1, show_default=True)
@click.option("--branch", type=click.IntRange(0, 255), default=0, show_default=True,
              help="Multipath branch (<0;1>: 0 receive, 1 change).")
@json_option
def watch_derive(descriptor, network, index, count, branch, as_json):
    """Derive the addresses of DESCRIPTOR (text, or a file holding it): any multisig descriptor
    Bitcoin Core reads (sh/wsh/sh-wsh multi or sortedmulti with fixed or ranged keys, raw hex
    keys, bare multi, tr multi_a or a script tree, wsh miniscript).

    \b
    Example:
      msigvault watch derive 'sh(multi(1,03a3...,02f9...))' -n mainnet
    """
    w = _watched(descriptor, network)
    if branch >= w.branches:
        raise CliError(f"--branch {branch}: this descriptor has {w.branches} branch(es)")
    rows = [{"branch": branch, "index": i, "address": a, "script_pubkey": w.script_pubkey(i, branch).hex()}
            for i, a in w.addresses(index, count, branch)]
    emit(as_json, {"descriptor": w.text(), "kind": w.kind, "ranged": w.is_range, "branches": w.branches,
                   "addresses": rows},
         "\n".join(r["address"] or f"(bare script, no address) {r['script_pubkey']}" for r in rows))


@watch.command("scan")
@descriptor_argument
@network_option
@click.option("--backend", "backend_url", metavar="URL", help="A chain backend (see vault scan).")
@click.option("--chain", "chain_dir", type=click.Path(file_okay=False), help="A regtest chain directory.")
@click.option("--gap-limit", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="Stop after this many unused addresses in a row on each branch (ranged descriptors).")
@json_option
def watch_scan(descriptor, network, backend_url, chain_dir, gap_limit, as_json):
    """Find the coins of DESCRIPTOR through a backend or a regtest chain (watch-only)."""
    from ..backends.watch import scan_watched

    w = _watched(descriptor, network)
    if (backend_url is None) == (chain_dir is None):
        raise CliError("give exactly one of --backend URL or --chain DIR")
    if chain_dir is not None:
        from ..backends.regtest import RegtestBackend
        from .chain import open_chain

        with open_chain(chain_dir) as chain:
            result = scan_watched(w, RegtestBackend(chain), gap_limit=gap_limit)
    else:
        from ..backends import open_backend

        with open_backend(backend_url, w.network) as backend:
            result = scan_watched(w, backend, gap_limit=gap_limit)
    lines = [f"{c.coin.outpoint} {c.coin.amount:,} sats at {c.address or c.coin.script_pubkey.hex()} (branch {c.branch} index {c.index}, "
             + (f"height {c.coin.height})" if c.coin.height is not None else "unconfirmed)") for c in result.coins]
    lines.append(f"{len(result.coins)} coin(s), {result.total:,} sats, at height {result.tip.height} "
                 f"({w.kind}; watch-only: msigvault cannot sign for it)")
    emit(as_json, {"descriptor": w.text(), "kind": w.kind, **result.to_dict()}, "\n".join(lines))
