"""msigvault regtest ... and broadcast: a persisted regtest chain to rehearse ceremonies on."""

from __future__ import annotations

import json

import click

from .common import CliError, emit, force_option, json_option, load_vault, read_input, write_output

GAP_LIMIT = 20


def register(cli: click.Group) -> None:
    cli.add_command(regtest)
    cli.add_command(broadcast)


def open_chain(directory, *, create: bool = False):
    from pathlib import Path

    from ..regtest import RegtestChain

    p = Path(directory)
    if not create and not (p / "msigvault-regtest.json").exists():
        raise CliError(f"{p} is not a regtest chain directory: create one with 'msigvault regtest init {p}'")
    return RegtestChain(datadir=p)


def vault_utxos(chain, vault) -> list:
    """The vault's unspent coins on ``chain``, scanning both branches with a gap limit of 20."""
    from dataclasses import replace

    live = chain.script_pubkeys()
    found, index, last_hit = {}, 0, -1
    while index <= last_hit + GAP_LIMIT:
        for branch in (0, 1):
            spk = vault.derive_branch(branch, index).script_pubkey
            if spk in live:
                found[spk] = (branch, index)
                last_hit = index
        index += 1
    return [replace(u, branch=found[u.script_pubkey][0], index=found[u.script_pubkey][1])
            for u in chain.utxos_for_scripts(found)]


@click.group()
def regtest():
    """A local regtest chain validated by Bitcoin Core's libbitcoinkernel, to rehearse ceremonies."""


@regtest.command("init")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--blocks", type=int, default=101, show_default=True, help="Blocks to mine at once.")
@json_option
def regtest_init(directory, blocks, as_json):
    """Create a persisted chain in DIRECTORY and mine some blocks."""
    from pathlib import Path

    p = Path(directory)
    if p.exists() and any(p.iterdir()):
        raise CliError(f"{p} exists and is not empty: choose a new directory")
    with open_chain(p, create=True) as chain:
        chain.mine(blocks)
        emit(as_json, {"directory": str(p), "height": chain.height, "tip": chain.tip},
             f"regtest chain in {p}: height {chain.height}")


@regtest.command("mine")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--blocks", type=int, default=1, show_default=True)
@click.option("--to", "address", default=None, help="Pay the block rewards to this address.")
@json_option
def regtest_mine(directory, blocks, address, as_json):
    """Mine blocks."""
    with open_chain(directory) as chain:
        hashes = chain.mine(blocks, to=address)
        emit(as_json, {"height": chain.height, "blocks": hashes}, f"mined {len(hashes)} block(s): height {chain.height}")


@regtest.command("fund")
@click.argument("directory", type=click.Path(file_okay=False))
@click.argument("address")
@click.argument("amounts", nargs=-1, type=int, required=True)
@json_option
def regtest_fund(directory, address, amounts, as_json):
    """Send AMOUNTS (sats, one output each) to ADDRESS in a new block."""
    with open_chain(directory) as chain:
        utxos = chain.fund(address, list(amounts))
        emit(as_json, [u.to_dict() for u in utxos],
             "\n".join(f"funded {u.txid}:{u.vout} with {u.amount} sats" for u in utxos) + f"\nheight {chain.height}")


@regtest.command("utxos")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--vault", "vaultfile", type=click.Path(dir_okay=False), help="All of this vault's coins.")
@click.option("--address", default=None, help="Coins paying this address.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write a UTXO file for 'psbt create --utxos'.")
@force_option
@json_option
def regtest_utxos(directory, vaultfile, address, output, force, as_json):
    """List unspent coins of a vault (with their vault indexes) or of an address."""
    if (vaultfile is None) == (address is None):
        raise CliError("give exactly one of --vault FILE or --address ADDRESS")
    with open_chain(directory) as chain:
        utxos = vault_utxos(chain, load_vault(vaultfile).vault) if vaultfile else chain.utxos(address)
    records = [u.to_dict() for u in utxos]
    if output:
        write_output(output, json.dumps(records, indent=2).encode() + b"\n", force=force)
    total = sum(u.amount for u in utxos)
    emit(as_json, records, "\n".join(f"{u.txid}:{u.vout} {u.amount} sats"
                                     + (f" (branch {u.branch} index {u.index})" if u.branch is not None else "")
                                     for u in utxos) + f"\n{len(utxos)} coin(s), {total} sats")


@regtest.command("info")
@click.argument("directory", type=click.Path(file_okay=False))
@json_option
def regtest_info(directory, as_json):
    """Height, tip and time of the chain."""
    with open_chain(directory) as chain:
        emit(as_json, {"height": chain.height, "tip": chain.tip, "median_time_past": chain.median_time_past},
             f"height {chain.height}, tip {chain.tip}")


@click.command()
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--chain", "chain_dir", type=click.Path(file_okay=False),
              help="Regtest chain directory: the transaction is mined in a block at once.")
@click.option("--backend", "backend_url", metavar="URL",
              help="Broadcast through this backend: core+http://..., esplora+https://..., electrum+ssl://..., "
                   "regtest:DIR, bitcoinlib:PROVIDER.")
@json_option
def broadcast(vaultfile, file, chain_dir, backend_url, as_json):
    """Broadcast a finalized PSBT (or a raw transaction in hex) to a regtest chain (--chain: it is
    mined in a block) or a backend (--backend), or have it rejected with Bitcoin Core's reason."""
    from ..psbt.psbt import Psbt

    vf = load_vault(vaultfile)
    data = read_input(file)
    stripped = data.strip()
    psbt = None
    if data.startswith(b"psbt\xff") or stripped.startswith((b"cHNidP", b"70736274ff")):
        psbt = Psbt.load(data)
    else:
        from ..psbt import fields as F
        from ..psbt.common import legacy_txid

        try:
            raw = bytes.fromhex(stripped.decode())
        except (ValueError, UnicodeDecodeError):
            raise CliError(f"{file} is neither a PSBT nor a transaction in hex") from None
        txid = legacy_txid(F.parse_tx(raw, "transaction"))[::-1].hex()
    if (chain_dir is None) == (backend_url is None):
        raise CliError("give exactly one of --chain DIR or --backend URL")
    if backend_url is not None:
        from .backends import broadcast_with_backend

        return broadcast_with_backend(vf, psbt, None if psbt is not None else raw, backend_url, as_json)
    with open_chain(chain_dir) as chain:
        extra, note = {}, ""
        if psbt is not None:
            from ..psbt.extractor import extract

            # the chain's own UTXOs, not the PSBT's claims, are what the scripts are verified against
            tx = extract(psbt, spent_outputs=chain_spent_outputs(chain, psbt), vault=vf.vault)
            raw, txid = tx.raw, tx.txid
            extra = {"verified_by_kernel": tx.verified_by_kernel, "verified_against": tx.verified_against.value}
            note = f"; verified against {tx.verified_against.describe()}"
        block = chain.submit([raw])
        emit(as_json, {"txid": txid, "block": block, "height": chain.height, **extra},
             f"broadcast {txid}: mined in block {block} at height {chain.height}{note}")


def chain_spent_outputs(chain, psbt) -> list:
    """The chain's unspent output for each input of ``psbt``; CliError if one is not unspent."""
    out = []
    for i in range(psbt.input_count):
        txid, vout = psbt.prevout(i)
        utxo = chain.utxo(bytes(txid)[::-1].hex(), vout)
        if utxo is None:
            raise CliError(
                f"input {i} spends {bytes(txid)[::-1].hex()}:{vout}, which is not an unspent output of the "
                "chain: it was spent already or never confirmed; nothing was broadcast"
            )
        out.append(utxo)
    return out
