"""The demo ceremony (what ``make demo`` and ``msigvault demo`` run).

Three sites (directories) each create an encrypted key; the coordinator builds a 2-of-3 vault
from their cosigner records and every site verifies it; the vault is funded on a local regtest
chain; the coordinator creates a PSBT paying an external address; two sites sign their own copies;
the coordinator combines, finalizes and broadcasts; the confirmed balances are shown.

Every step runs the real ``msigvault`` command in-process (the same code a keyholder runs), and
the demo prints each command and each file that moves between sites.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable


class DemoFailed(Exception):
    pass


def run_demo(echo: Callable[[str], None] = print, *, script: str = "wsh", workdir=None) -> dict:
    from .cli import cli

    started = time.perf_counter()
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="msigvault-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    sites = {name: root / f"site-{name}" for name in ("alice", "bob", "carol")}
    coord = root / "coordinator"
    for d in [*sites.values(), coord]:
        d.mkdir(exist_ok=True)
    chain = coord / "regtest-chain"
    passphrases = {name: secrets.token_urlsafe(16) for name in sites}

    def run(args, *, cwd: Path, passphrase: "str | None" = None, show: bool = True) -> None:
        shown = " ".join(shlex.quote(a) for a in args)
        if show:
            echo(f"  [{cwd.name}] $ msigvault {shown}")
        old_cwd, old_env = os.getcwd(), os.environ.get("MSIGVAULT_PASSPHRASE")
        os.chdir(cwd)
        if passphrase is not None:
            os.environ["MSIGVAULT_PASSPHRASE"] = passphrase
        try:
            rc = cli.main(args=list(args), prog_name="msigvault", standalone_mode=False)
        except Exception as e:
            raise DemoFailed(f"'msigvault {shown}' failed: {e}") from e
        finally:
            os.chdir(old_cwd)
            if old_env is None:
                os.environ.pop("MSIGVAULT_PASSPHRASE", None)
            else:
                os.environ["MSIGVAULT_PASSPHRASE"] = old_env
        if rc not in (None, 0):  # the command printed its one-line error
            raise DemoFailed(f"'msigvault {shown}' failed (exit code {rc})")

    def carry(src: Path, dst_dir: Path, what: str) -> Path:
        dst = dst_dir / src.name
        shutil.copyfile(src, dst)
        echo(f"  >> {what}: {src.relative_to(root)} -> {dst.relative_to(root)}")
        return dst

    echo(f"msigvault demo: a 2-of-3 {script} vault ceremony in {root}")
    echo("  (passphrases are random and passed through $MSIGVAULT_PASSPHRASE; the recovery-word "
         "check is skipped in this rehearsal)")
    echo("\n1. Each site creates a key offline and exports only its cosigner record")
    for name, site in sites.items():
        run(["key", "new", f"{name}.key", "--label", f"{name}'s key", "--skip-backup-check"],
            cwd=site, passphrase=passphrases[name])
        run(["key", "cosigner", f"{name}.key", "--network", "regtest", "--script", script,
             "-o", f"{name}.cosigner"], cwd=site, passphrase=passphrases[name])
        carry(site / f"{name}.cosigner", coord, "cosigner record to the coordinator")

    echo("\n2. The coordinator assembles the vault; every site checks it with its own key")
    run(["vault", "create", "-m", "2", "alice.cosigner", "bob.cosigner", "carol.cosigner",
         "--script", script, "--network", "regtest", "--name", "treasury", "-o", "vault.json"], cwd=coord)
    for name, site in sites.items():
        carry(coord / "vault.json", site, f"vault file to {name}")
        run(["vault", "verify", "vault.json", "--key", f"{name}.key", "--yes"], cwd=site, passphrase=passphrases[name])

    echo("\n3. The vault is funded on a local regtest chain (Bitcoin Core's consensus code)")
    from .vaultfile import load_vault_file

    vault = load_vault_file(coord / "vault.json").vault
    run(["regtest", "init", str(chain.name)], cwd=coord)
    run(["regtest", "fund", chain.name, vault.address(0), "50000000", "30000000"], cwd=coord)
    run(["regtest", "fund", chain.name, vault.address(1), "20000000"], cwd=coord)

    echo("\n4. The coordinator creates a PSBT paying an external address")
    payee = _external_address()
    run(["psbt", "create", "vault.json", "--chain", chain.name, "--to", f"{payee}:65000000",
         "--fee-rate", "5", "-o", "spend.psbt"], cwd=coord)

    echo("\n5. Two sites inspect and sign their own copies, offline")
    signed = []
    for name in ("alice", "carol"):
        site = sites[name]
        carry(coord / "spend.psbt", site, f"unsigned PSBT to {name} (USB stick)")
        run(["psbt", "sign", "vault.json", "spend.psbt", "--key", f"{name}.key", "--yes",
             "-o", f"{name}-signed.psbt"], cwd=site, passphrase=passphrases[name])
        signed.append(carry(site / f"{name}-signed.psbt", coord, f"{name}'s signed copy back"))

    echo("\n6. The coordinator combines (carol's copy first), finalizes and broadcasts")
    run(["psbt", "combine", "vault.json", signed[1].name, signed[0].name, "-o", "combined.psbt"], cwd=coord)
    run(["psbt", "finalize", "vault.json", "combined.psbt", "-o", "final.psbt", "--tx", "final.tx"], cwd=coord)
    run(["broadcast", "vault.json", "final.psbt", "--chain", chain.name], cwd=coord)

    echo("\n7. Confirmed on chain")
    run(["regtest", "utxos", chain.name, "--vault", "vault.json"], cwd=coord)
    from .regtest import RegtestChain

    with RegtestChain(datadir=chain) as c:
        paid = c.balance(payee)
        vault_left = sum(u.amount for u in _vault_coins(c, vault))
        height = c.height
    elapsed = time.perf_counter() - started
    echo(f"\npayee received {paid} sats; the vault holds {vault_left} sats at height {height}; "
         f"done in {elapsed:.1f} s")
    if paid != 65_000_000:
        raise DemoFailed("the payment is not on chain")
    return {"workdir": str(root), "paid": paid, "vault_balance": vault_left, "height": height,
            "seconds": round(elapsed, 2), "descriptor": vault.descriptor()}


def _external_address() -> str:
    """A P2WPKH address of a key outside the vault (the payee)."""
    from embit.hashes import hash160

    from .address import address_from_script
    from .network import Network
    from .testing.keyholders import TestKeyholder

    payee = TestKeyholder.from_label("demo-payee").root.public_key
    return address_from_script(b"\x00\x14" + hash160(payee), Network.REGTEST)


def _vault_coins(chain, vault):
    from .cli.chain import vault_utxos

    return vault_utxos(chain, vault)
