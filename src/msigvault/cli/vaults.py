"""msigvault vault ...: create, inspect, verify and exchange vault policies."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, NotApproved, approve, emit, force_option, json_option, load_vault, passphrase_fd_option, read_input, unlock_root, write_output
from .keys import NETWORKS, SCRIPTS


def register(cli: click.Group) -> None:
    cli.add_command(vault)


@click.group()
def vault():
    """Vault policies: create one from cosigner records, show it, derive addresses, import/export."""


def _cosigner_text(arg: str) -> str:
    p = Path(arg)
    if p.is_file():
        return read_input(p).decode().strip()
    return arg


def vault_summary(vf) -> dict:
    v = vf.vault
    return {
        "name": vf.name, "threshold": v.m, "cosigners": [str(c) for c in v.cosigners], "n": v.n,
        "script": v.script, "network": v.network.name, "descriptor": v.descriptor(),
        "policy_id": v.policy_id, "first_receive_address": v.address(0),
        "first_change_address": v.change_address(0), "next_change_index": vf.next_change_index,
        "accepted_deviations": list(v.deviations),
        "registered_by": [{"fingerprint": r.fingerprint.hex(), "index_limit": r.index_limit,
                           **({"paths": sorted(r.allowed_paths(v))} if v.recovery else {})}
                          for r in vf.registrations],
        **({"recovery": [p.describe(v) for p in v.recovery]} if v.recovery else {}),
    }


def _summary_text(d: dict) -> str:
    lines = [f"{d['name']}: {d['threshold']}-of-{d['n']} {d['script']} vault on {d['network']}",
             f"policy id: {d['policy_id']}", "cosigners:"]
    lines += [f"  {i + 1}. {c}" for i, c in enumerate(d["cosigners"])]
    lines += [f"descriptor: {d['descriptor']}", f"first receive address: {d['first_receive_address']}",
              f"first change address:  {d['first_change_address']}"]
    lines += [f"recovery path {i}: {p}" for i, p in enumerate(d.get("recovery", []), 1)]
    lines += [f"accepted deviation: {x}" for x in d["accepted_deviations"]]
    lines += [f"registered by {r['fingerprint']} (indexes below {r['index_limit']}"
              + ("; paths " + ", ".join("primary" if i == 0 else f"recovery {i}" for i in r["paths"])
                 if "paths" in r else "") + "; signature valid)"
              for r in d["registered_by"]]
    return "\n".join(lines)


_DEVIATIONS = ("coin-type-mismatch", "unseparated-test-keys", "shared-seed")
accept_option = click.option(
    "--accept", "accept", multiple=True, type=click.Choice(_DEVIATIONS),
    help="Accept one departure from the vault rules (repeatable; see docs/psbt.md): coin-type-mismatch, "
         "unseparated-test-keys (test-network keys without a test coin type), shared-seed (one seed in two slots).",
)


@vault.command("create")
@click.option("-m", "--threshold", type=int, required=True, help="Signatures needed (m of n).")
@click.argument("cosigners", nargs=-1, required=True)
@click.option("--script", type=SCRIPTS, default="wsh", show_default=True)
@click.option("-n", "--network", type=NETWORKS, required=True)
@click.option("--unsorted", is_flag=True, help="Use multi() in the given key order instead of sortedmulti().")
@click.option("--name", default="vault", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Vault file to write.")
@click.option("--recovery", "recovery", multiple=True, metavar="K:LOCK:COSIGNER,...",
              help="A timelocked recovery path (wsh, tr; repeatable; docs/recovery.md): K signatures of the "
                   "cosigners listed once LOCK has passed; LOCK is older=BLOCKS, older-seconds=SECONDS (a multiple "
                   "of 512) or after=HEIGHT_OR_UNIX_TIME, e.g. 1:older=52560:dave.cosigner,erin.cosigner.")
@accept_option
@force_option
@json_option
def vault_create(threshold, cosigners, script, network, unsorted, name, output, recovery, accept, force, as_json):
    """Create a vault file from COSIGNERS (records [fp/path]xpub, or files holding one).

    \b
    Example:
      msigvault vault create -m 2 alice.cosigner bob.cosigner carol.cosigner -n regtest -o vault.json
    """
    from ..policy.vault import Vault
    from ..vaultfile import VaultFile

    paths = [_recovery_spec(s) for s in recovery]
    v = Vault.multisig(threshold, [_cosigner_text(c) for c in cosigners], script=script,
                       sorted=False if unsorted else (None if paths else True), network=network, accept=accept,
                       recovery=paths)
    vf = VaultFile(v, name)
    vf.save(output, overwrite=force)
    d = vault_summary(vf)
    emit(as_json, {**d, "output": output}, _summary_text(d) + f"\nwrote {output}")


def _recovery_spec(spec: str):
    """``K:LOCK:COSIGNER,...`` as a Recovery (CliError saying what is wrong)."""
    from ..policy.recovery import Recovery, Timelock

    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[0].isdigit() or "=" not in parts[1] or not parts[2]:
        raise CliError(f"--recovery {spec!r}: write K:LOCK:COSIGNER,... (e.g. 1:older=52560:dave.cosigner,erin.cosigner)")
    kind, _, value = parts[1].partition("=")
    makers = {"older": Timelock.older, "older-seconds": Timelock.older_seconds, "after": Timelock.after}
    if kind not in makers or not value.isdigit():
        raise CliError(f"--recovery {spec!r}: the lock is older=BLOCKS, older-seconds=SECONDS or after=HEIGHT_OR_TIME")
    return Recovery(int(parts[0]), [_cosigner_text(c) for c in parts[2].split(",")], makers[kind](int(value)))


@vault.command("show")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@json_option
def vault_show(vaultfile, as_json):
    """Show a vault: threshold, cosigners, policy id (compare it with the other sites), descriptor."""
    d = vault_summary(load_vault(vaultfile))
    emit(as_json, d, _summary_text(d))


@vault.command("verify")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.option("--key", "keyfile", type=click.Path(dir_okay=False), required=True)
@click.option("--index-limit", type=int, default=None,
              help="Highest vault index + 1 your signer will accept in inputs and change (default 1000, "
                   "or what you registered before).")
@click.option("--path", "paths", multiple=True, metavar="PATH",
              help="A vault with recovery paths: a spending path you agree to sign for (repeatable; 'primary', "
                   "'recovery' or 'recovery N'); the primary is always included. Default: every path holding "
                   "your key, or what you registered before (docs/recovery.md).")
@click.option("--yes", is_flag=True, help="Register without asking (the vault is still shown).")
@passphrase_fd_option
@json_option
def vault_verify(vaultfile, keyfile, index_limit, paths, yes, passphrase_fd, as_json):
    """Check, with your own key, that you are a cosigner of the vault, and register it.

    Read the policy id aloud with the other keyholders (or compare it out of band): the same id
    means the same keys, threshold and script type. Registering signs the vault with your key
    (into VAULTFILE): your signer then refuses any vault file that differs from what you
    registered, and any index at or above the index limit.
    """
    from ..policy.registration import DEFAULT_INDEX_LIMIT, Registration, own_cosigner

    vf = load_vault(vaultfile)
    root, ks = unlock_root(keyfile, passphrase_fd)
    me, _ = own_cosigner(vf.vault, root)
    previous = next((r for r in vf.registrations if r.fingerprint == me.fingerprint), None)
    limit = index_limit if index_limit is not None else (previous.index_limit if previous else DEFAULT_INDEX_LIMIT)
    chosen = _registration_paths(vf.vault, me, paths, previous)
    d = vault_summary(vf)
    text = (_summary_text(d) + f"\nyour key {me.fingerprint.hex()} is cosigner {vf.vault.cosigners.index(me) + 1} "
            f"of {vf.vault.n}; registering for indexes below {limit}")
    if chosen is not None:
        text += "; you sign for: " + ", ".join("primary" if i == 0 else f"recovery {i}" for i in chosen)
    click.echo(text, err=as_json)
    if not yes:
        if not approve("Does this policy id match what every other keyholder sees? Register it"):
            raise NotApproved("not registered: nothing was written")
    reg = Registration.create(vf.vault, root, name=vf.name, index_limit=limit, paths=chosen)
    vf.with_registration(reg).save(vaultfile, overwrite=True)
    out = {"vault": vf.name, "you_are": str(me), "policy_id": vf.vault.policy_id,
           "threshold": vf.vault.m, "n": vf.vault.n, "first_receive_address": vf.vault.address(0),
           "registered": True, "index_limit": limit,
           **({"paths": list(reg.paths)} if reg.paths is not None else {})}
    emit(as_json, out, f"OK: registered {vaultfile} with your key {me.fingerprint.hex()}\n"
                       f"policy id: {vf.vault.policy_id}\nfirst receive address: {vf.vault.address(0)}")


@vault.command("address")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.option("--index", type=int, default=0, show_default=True, help="First index.")
@click.option("--count", type=int, default=1, show_default=True)
@click.option("--change", is_flag=True, help="Change branch (1) instead of receive (0).")
@json_option
def vault_address(vaultfile, index, count, change, as_json):
    """Derive addresses (printed one per line; --json for index and address).

    Verify a receive address on the keyholders' own copies before sharing it.
    """
    vf = load_vault(vaultfile)
    if count < 1 or count > 100_000:
        raise CliError("--count must be from 1 to 100000")
    rows = [{"index": i, "address": vf.vault.address(i, change=change)} for i in range(index, index + count)]
    # plain addresses, one per line, so that $(msigvault vault address v.json) is the address
    emit(as_json, rows, "\n".join(r["address"] for r in rows))


@vault.command("export")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", default="descriptor", show_default=True,
              help="descriptor (multipath), descriptors (receive and change lines), or a wallet format: "
                   "bip388, bsms, coldcard, specter, specter-diy, caravan, sparrow, electrum (see docs/formats.md).")
@click.option("-o", "--output", type=click.Path(dir_okay=False))
@force_option
def vault_export(vaultfile, fmt, output, force):
    """Write the vault in a format another wallet reads (to stdout, or a file with -o)."""
    vf = load_vault(vaultfile)
    if fmt == "descriptor":
        text = vf.vault.descriptor() + "\n"
    elif fmt == "descriptors":
        text = "\n".join(vf.vault.descriptors()) + "\n"
    else:
        formats = _formats()
        if fmt == "specter-diy":
            text = formats.export_vault(vf.vault, "specter", name=vf.name, form="diy")
        elif fmt not in formats.FORMATS:
            raise CliError(f"unknown format {fmt!r}: choose descriptor, descriptors, specter-diy, "
                           + ", ".join(formats.FORMATS))
        else:
            text = formats.export_vault(vf.vault, fmt, name=vf.name)
    if output:
        write_output(output, text.encode(), force=force)
    else:
        click.echo(text, nl=False)


@vault.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-n", "--network", type=NETWORKS, default=None, help="Needed when keys are tpubs (test networks).")
@click.option("--name", default=None)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
@force_option
@json_option
def vault_import(file, network, name, output, force, as_json):
    """Import a vault from a descriptor or another wallet's export (Coldcard, Specter, Caravan,
    Sparrow, Electrum, BSMS, BIP388, Bitcoin Core); the format is detected and every check is applied.

    Inconsistencies other wallets write (a key origin that does not fit its xpub, no origin, a
    coin type that is not the network's) are imported and printed as warnings (in --json: a
    "warnings" list of {code, message, key}); only that keyholder will be refused at signing.

    \b
    Example:
      msigvault vault import coldcard-export.txt -n testnet -o vault.json
    """
    from ..vaultfile import VaultFile

    result = _formats().import_vault(read_input(file), network=network)
    v, found_format, imported_name = result.vault, result.format, name or result.name or Path(file).stem
    for warning in result.warnings:
        click.echo(f"warning [{warning.code.value}]: {warning.message}", err=True)
    vf = VaultFile(v, imported_name)
    vf.save(output, overwrite=force)
    d = vault_summary(vf)
    emit(as_json, {**d, "format": found_format, "output": output,
                   "warnings": [w.to_dict() for w in result.warnings]},
         f"imported {found_format} file {file}\n" + _summary_text(d) + f"\nwrote {output}")


def _registration_paths(vault, me, names, previous):
    """The path numbers ``vault verify --path`` names; else the previous registration's, else None
    (every path holding the key, Registration.create's default)."""
    from ..policy.registration import registrable_paths
    from ..psbt.paths import select_path

    if not names:
        if previous is not None and previous.paths is not None and vault.recovery:
            return previous.paths
        return registrable_paths(vault, me, None)
    return registrable_paths(vault, me, [select_path(vault, n).index for n in names])


@vault.command("upkeep")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.option("--chain", "chain_dir", type=click.Path(file_okay=False), help="Read the coins from this regtest chain.")
@click.option("--backend", "backend_url", metavar="URL", help="Read the coins from a chain backend (see vault scan).")
@click.option("--utxos", "utxo_file", type=click.Path(dir_okay=False),
              help="A JSON list of coins with their confirmation 'height' (vault utxos --json writes one); "
                   "needs --tip-height.")
@click.option("--tip-height", type=click.IntRange(0, 499_999_999), default=None, help="The tip, with --utxos.")
@click.option("--tip-time", type=click.IntRange(0, 2**32 - 1), default=None,
              help="The tip's median time past, with --utxos (time locks only; default 0).")
@click.option("--margin-blocks", type=click.IntRange(0, 525_600), default=4032, show_default=True,
              help="Warn about coins whose recovery paths open within this many blocks (4032: four weeks).")
@click.option("--check", is_flag=True, help="Exit with status 1 when any coin is within the margin (for monitoring).")
@json_option
def vault_upkeep(vaultfile, chain_dir, backend_url, utxo_file, tip_height, tip_time, margin_blocks, check, as_json):
    """When each coin's recovery paths open, and which coins to refresh (docs/recovery.md).

    A recovery path's keys can move a coin once its lock has passed: refresh coins near it with a
    primary-path spend back to the vault (relative locks restart), or migrate (absolute locks).
    """
    from ..coordinator.upkeep import upkeep

    vf = load_vault(vaultfile)
    if sum(x is not None for x in (chain_dir, backend_url, utxo_file)) != 1:
        raise CliError("give exactly one of --chain DIR, --backend URL or --utxos FILE")
    if (tip_height is not None or tip_time is not None) and utxo_file is None:
        raise CliError("--tip-height and --tip-time go with --utxos (a chain or backend says its own tip)")
    coins, height, mtp = _upkeep_coins(vf.vault, chain_dir, backend_url, utxo_file, tip_height, tip_time)
    report = upkeep(vf.vault, coins, tip_height=height, tip_time=mtp, margin_blocks=margin_blocks)
    emit(as_json, {"vault": vf.name, **report.to_dict()}, report.text())
    if check and report.warnings:
        raise SystemExit(1)


def _upkeep_coins(vault, chain_dir, backend_url, utxo_file, tip_height, tip_time):
    """(coins with heights, tip height, tip median time) from the one source given."""
    if utxo_file is not None:
        return _upkeep_snapshot(utxo_file, tip_height, tip_time)
    from ..backends import open_backend, scan_vault

    if chain_dir is not None:
        from ..backends.regtest import RegtestBackend
        from .chain import open_chain

        with open_chain(chain_dir) as chain:
            result = scan_vault(vault, RegtestBackend(chain), fetch_prev_txs=False)
            return list(result.utxos), chain.height, chain.median_time_past
    with open_backend(backend_url, vault.network) as backend:
        result = scan_vault(vault, backend, fetch_prev_txs=False)
    return list(result.utxos), result.tip.height, result.tip.time  # a backend gives the tip's time, not its MTP


def _upkeep_snapshot(path, tip_height, tip_time):
    import json

    from ..coordinator.upkeep import Coin
    from ..errors import MsigvaultError
    from ..types import Utxo

    if tip_height is None:
        raise CliError("--utxos needs --tip-height: the snapshot's coins are judged against that tip")
    try:
        records = json.loads(read_input(path))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CliError(f"{path} is not a JSON list of coins") from None
    if not isinstance(records, list):
        raise CliError(f"{path} must hold a JSON list of coins")
    coins = []
    for n, r in enumerate(records, 1):
        try:
            u = Utxo.from_dict(r)
        except MsigvaultError as e:
            raise CliError(f"{path}: coin {n}: {e}") from None
        height = r.get("height")
        if height is not None and (isinstance(height, bool) or not isinstance(height, int) or height < 0):
            raise CliError(f"{path}: coin {n}: 'height' is a block height or null (unconfirmed)")
        if "height" not in r:
            raise CliError(f"{path}: coin {n} has no 'height': write the snapshot with 'vault utxos --json', "
                           "which records each coin's confirmation height")
        coins.append(Coin(u.txid, u.vout, u.amount, height))
    return coins, tip_height, tip_time or 0


def _formats():
    try:
        from .. import formats
    except ImportError:  # pragma: no cover
        raise CliError("wallet formats are not available in this installation") from None
    return formats
