"""msigvault vault balance|utxos|history|scan --backend URL, and msigvault regtest serve.

Everything online is imported inside the commands: ``msigvault --help`` and the keyholder's
commands never load msigvault.backends.
"""

from __future__ import annotations

import json

import click

from .common import CliError, emit, force_option, json_option, load_vault, write_output

BACKEND_HELP = ("Chain backend: core+http://USER:PASS@HOST:PORT (?wallet=NAME, ?cookie=FILE), "
                "esplora+https://HOST/PATH, electrum+ssl://HOST:PORT (?fingerprint=SHA256, ?ca=FILE), "
                "electrum+tcp://HOST:PORT, regtest:DIR or bitcoinlib:PROVIDER.")


def register(cli: click.Group) -> None:
    vault = cli.commands["vault"]
    for command in (vault_balance, vault_utxos, vault_history, vault_scan):
        vault.add_command(command)
    cli.commands["regtest"].add_command(regtest_serve)


backend_option = click.option("--backend", "backend_url", required=True, metavar="URL", help=BACKEND_HELP)
gap_option = click.option("--gap-limit", type=click.IntRange(1, 10_000), default=20, show_default=True,
                          help="Stop after this many unused addresses in a row on each branch.")


cross_option = click.option("--cross-check", "cross_url", metavar="URL", default=None,
                            help="Scan a second backend too; any disagreement about the coins is an error.")


def _scan(vaultfile, backend_url: str, gap_limit: int, *, prev_txs: bool = True, cross_url=None):
    from ..backends import cross_check, open_backend, scan_vault

    vf = load_vault(vaultfile)
    with open_backend(backend_url, vf.vault.network) as backend:
        result = scan_vault(vf.vault, backend, gap_limit=gap_limit, fetch_prev_txs=prev_txs)
        where = backend.where
    if cross_url is not None:
        with open_backend(cross_url, vf.vault.network) as other:
            cross_check(result, scan_vault(vf.vault, other, gap_limit=gap_limit, fetch_prev_txs=prev_txs))
    return vf, result, where


def _sats(n: int) -> str:
    from ..amounts import format_amount

    return format_amount(n)


@click.command("balance")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@backend_option
@cross_option
@gap_option
@json_option
def vault_balance(vaultfile, backend_url, cross_url, gap_limit, as_json):
    """The vault's confirmed and unconfirmed balance, as the backend reports it."""
    vf, r, where = _scan(vaultfile, backend_url, gap_limit, prev_txs=False, cross_url=cross_url)
    b = r.balance
    emit(as_json, {"vault": vf.name, "backend": where, "height": r.tip.height,
                   "confirmed": b.confirmed, "unconfirmed": b.unconfirmed, "total": b.total,
                   "coins": len(r.utxos)},
         f"{vf.name}: {_sats(b.confirmed)} confirmed, {_sats(b.unconfirmed)} unconfirmed "
         f"({len(r.utxos)} coin(s)) at height {r.tip.height}, from {where}")


@click.command("utxos")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@backend_option
@cross_option
@gap_option
@click.option("--min-conf", type=click.IntRange(0), default=1, show_default=True,
              help="Coins written with -o need this many confirmations.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write a UTXO file for 'psbt create --utxos' (previous transactions included, each checked).")
@force_option
@json_option
def vault_utxos(vaultfile, backend_url, cross_url, gap_limit, min_conf, output, force, as_json):
    """The vault's unspent coins with their indexes and confirmations."""
    vf, r, where = _scan(vaultfile, backend_url, gap_limit, cross_url=cross_url)
    records = [{**u.utxo.to_dict(), "height": u.height, "confirmations": u.confirmations} for u in r.utxos]
    if output:
        chosen = [u.utxo.to_dict() for u in r.utxos if u.confirmations >= min_conf]
        write_output(output, json.dumps(chosen, indent=2).encode() + b"\n", force=force)
    lines = [f"{u.utxo.outpoint} {_sats(u.utxo.amount)} (branch {u.utxo.branch} index {u.utxo.index}, "
             f"{u.confirmations} confirmation(s))" for u in r.utxos]
    emit(as_json, records, "\n".join(lines + [f"{len(r.utxos)} coin(s), {_sats(r.balance.total)}, from {where}"]))


@click.command("history")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@backend_option
@gap_option
@json_option
def vault_history(vaultfile, backend_url, gap_limit, as_json):
    """Transactions that paid to or spent from the vault, oldest first."""
    vf, r, where = _scan(vaultfile, backend_url, gap_limit, prev_txs=False)
    if not r.history_known:
        from ..backends import BackendUnsupported

        raise BackendUnsupported(f"{where} has no history (Bitcoin Core without a wallet sees only unspent "
                                 "coins): add ?wallet=NAME to the URL, or use Esplora", what="vault history")
    rows = r.to_dict()["history"]
    lines = [f"{t['txid']} " + (f"height {t['height']}, {t['confirmations']} confirmation(s)"
                                if t["height"] is not None else "unconfirmed")
             + " (" + ", ".join(f"{'change' if p['branch'] else 'receive'} {p['index']}" for p in t["touches"]) + ")"
             for t in rows]
    emit(as_json, rows, "\n".join(lines + [f"{len(rows)} transaction(s), from {where}"]))


@click.command("scan")
@click.argument("vaultfile", type=click.Path(dir_okay=False))
@backend_option
@cross_option
@gap_option
@json_option
def vault_scan(vaultfile, backend_url, cross_url, gap_limit, as_json):
    """Find the vault's used addresses; record the next receive index and the change high-water mark.

    \b
    The vault file's next change index moves past the highest used change address, so new
    change never reuses one; its next receive index is the first after the last used one.
    Nothing is written unless the whole scan succeeded.
    """
    vf, r, where = _scan(vaultfile, backend_url, gap_limit, cross_url=cross_url)
    next_change = max(vf.next_change_index, r.change_high_water + 1)
    updated = vf.with_next_change_index(next_change).with_next_receive_index(r.next_receive_index)
    if updated != vf:
        updated.save(vaultfile, overwrite=True)
    data = {**r.to_dict(), "vault": vf.name, "backend": where, "next_change_index": next_change,
            "next_receive_address": vf.vault.address(r.next_receive_index)}
    receive = sum(1 for b, _ in r.used if b == 0)
    emit(as_json, data,
         f"{vf.name}: {receive} used receive and {len(r.used) - receive} used change address(es); "
         f"{len(r.utxos)} coin(s), {_sats(r.balance.total)}\n"
         f"next receive address: index {r.next_receive_index} {data['next_receive_address']}\n"
         f"next change index: {next_change}" + (" (recorded in the vault file)" if next_change != vf.next_change_index
                                                else "") + f"\nfrom {where} in {r.round_trips} round trip(s)")


def backend_utxos(vault, backend_url: str, *, min_conf: int = 1):
    """(confirmed vault coins with checked previous transactions, tip height) from a backend."""
    from ..backends import open_backend, scan_vault

    with open_backend(backend_url, vault.network) as backend:
        r = scan_vault(vault, backend)
    return [u.utxo for u in r.utxos if u.confirmations >= min_conf], r.tip.height


def broadcast_with_backend(vf, psbt, raw, backend_url: str, as_json: bool) -> None:
    """``msigvault broadcast --backend``: the spent outputs come from the backend's checked
    previous transactions, not from the PSBT; then the node's answer is printed."""
    from ..backends import open_backend
    from ..psbt import fields as F
    from ..types import Utxo

    with open_backend(backend_url, vf.vault.network) as backend:
        extra, note = {}, ""
        if psbt is not None:
            from ..psbt.extractor import extract

            spent = []
            for i in range(psbt.input_count):
                txid_bytes, vout = psbt.prevout(i)
                txid = bytes(txid_bytes)[::-1].hex()
                prev = backend.get_tx(txid)
                outputs = F.parse_tx(prev, "previous transaction").vout
                if vout >= len(outputs):
                    raise CliError(f"input {i} spends {txid}:{vout}, which does not exist; nothing was broadcast")
                amount, script = outputs[vout]
                spent.append(Utxo(txid, vout, amount, bytes(script), prev_tx=prev))
            tx = extract(psbt, spent_outputs=spent, vault=vf.vault)
            raw = tx.raw
            extra = {"verified_by_kernel": tx.verified_by_kernel, "verified_against": tx.verified_against.value}
            note = f"; verified against {tx.verified_against.describe()}"
        txid = backend.broadcast(raw)
        where = backend.where
        mined = getattr(backend, "last_block", None)
    emit(as_json, {"txid": txid, "backend": where, **({"block": mined} if mined else {}), **extra},
         f"broadcast {txid} through {where}" + (f": mined in block {mined}" if mined else
                                                 ": in the node's mempool until a block confirms it") + note)


@click.command("serve")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--rpc-port", type=click.IntRange(0, 65535), default=18443, show_default=True,
              help="Core JSON-RPC port on 127.0.0.1 (0: let the system choose).")
@click.option("--esplora-port", type=click.IntRange(0, 65535), default=3002, show_default=True,
              help="Esplora REST port on 127.0.0.1 (0: let the system choose).")
@click.option("--rpc-user", default=None, help="RPC user (default: cookie authentication, DIRECTORY/.cookie).")
@click.option("--rpc-password", default=None, help="RPC password, with --rpc-user.")
@click.option("--fee-estimate", type=float, default=None,
              help="Answer fee estimates with this sat/vB (default: the median of recent blocks).")
@click.option("--verbose", is_flag=True, help="Log every request to stderr.")
@json_option
def regtest_serve(directory, rpc_port, esplora_port, rpc_user, rpc_password, fee_estimate, verbose, as_json):
    """Serve the chain in DIRECTORY over Core JSON-RPC and Esplora REST on 127.0.0.1 until stopped.

    \b
    It has a mempool (sendrawtransaction, testmempoolaccept) and mines on demand
    (generatetoaddress). Stop it with Ctrl-C or SIGTERM.
    Example:
      msigvault regtest init chain/
      msigvault regtest serve chain/ --rpc-port 18443 --esplora-port 3002
      msigvault vault balance vault.json --backend 'core+http://127.0.0.1:18443?cookie=chain/.cookie'
    """
    from ..regtest.node import RegtestNode, serve_forever

    node = RegtestNode(directory, rpc_port=rpc_port, esplora_port=esplora_port, rpc_user=rpc_user,
                       rpc_password=rpc_password, fee_estimate=fee_estimate, verbose=verbose)

    def announce(n) -> None:
        auth = f"?cookie={n.cookie_file}" if rpc_user is None else ""
        creds = "" if rpc_user is None else f"{rpc_user}:***@"
        info = {"directory": str(directory), "height": n.chain.height, "rpc_port": n.rpc_port,
                "esplora_port": n.esplora_port,
                "core_backend": f"core+http://{creds}127.0.0.1:{n.rpc_port}{auth}",
                "esplora_backend": f"esplora+http://127.0.0.1:{n.esplora_port}",
                "cookie_file": str(n.cookie_file) if rpc_user is None else None}
        emit(as_json, info,
             f"regtest node for {directory} at height {info['height']}\n"
             f"  Core JSON-RPC: http://127.0.0.1:{n.rpc_port}"
             + (f" (cookie {n.cookie_file})" if rpc_user is None else f" (user {rpc_user})") + "\n"
             f"  Esplora REST:  http://127.0.0.1:{n.esplora_port}\n"
             f"  --backend {info['core_backend']}\n  --backend {info['esplora_backend']}\n"
             "Ctrl-C stops it")
        import sys

        sys.stdout.flush()

    serve_forever(node, announce)
