"""The coordinator warns when coins of its registered vaults come near a recovery lock (issue 18,
item 4): ``Coordinator.upkeep`` and ``msigvault session upkeep --check`` over every registered vault
with recovery paths, on the regtest chain. A plain vault is not listed (its coins need no refresh)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from msigvault import Vault
from msigvault.cli import cli
from msigvault.network import Network
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.policy.registration import Registration
from msigvault.regtest import RegtestChain
from msigvault.testing.keyholders import TestKeyholder
from msigvault.vaultfile import VaultFile

NET = Network.REGTEST
P = [TestKeyholder.from_label(f"cu-p{i}", NET) for i in range(3)]
R = [TestKeyholder.from_label(f"cu-r{i}", NET) for i in range(2)]
LOCK, MARGIN = 20, 5


def recovery_vault_file() -> VaultFile:
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in P], script="wsh", network=NET,
                           recovery=[Recovery(1, [h.cosigner("wsh") for h in R], Timelock.older(LOCK))])
    return VaultFile(vault, "reserve", registrations=tuple(Registration.create(vault, h.root, name="reserve")
                                                           for h in P + R))


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_the_coordinator_flags_coins_near_a_recovery_lock(kit, tmp_path):
    rec = recovery_vault_file()
    plain = kit.make_vault_file("wsh")
    chain_dir = tmp_path / "chain"
    run("regtest", "init", chain_dir)
    with RegtestChain(datadir=chain_dir) as chain:
        chain.mine(101)
        [coin] = chain.fund(rec.vault.address(0), [300_000])
        funded_at = chain.height
        chain.fund(plain.vault.address(0), [100_000])
    db = ["--db", f"sqlite:///{tmp_path / 'c.sqlite'}", "--coordinator-key", tmp_path / "c.key"]
    co = _coordinator(tmp_path)
    co.register_vault(rec)
    co.register_vault(plain)
    out = json.loads(run("session", "upkeep", "--chain", chain_dir, "--margin-blocks", MARGIN, "--check", "--json",
                         *db).output)
    assert [r["vault"] for r in out] == ["reserve"]  # the plain vault has nothing to refresh
    [c] = out[0]["coins"]
    assert (c["txid"], c["vout"], c["amount"], c["height"]) == (coin.txid, coin.vout, 300_000, funded_at)
    assert c["paths"][0]["height"] == funded_at + LOCK and c["warn"] is False and out[0]["warnings"] == 0
    with RegtestChain(datadir=chain_dir) as chain:  # mine until the lock opens within the margin
        chain.mine_until(funded_at + LOCK - MARGIN - 1)
    flagged = run("session", "upkeep", "--chain", chain_dir, "--margin-blocks", MARGIN, "--check", *db, code=1)
    assert "vault reserve:" in flagged.output and "WARNING " + f"{coin.txid}:{coin.vout}" in flagged.output
    assert "refresh them" in flagged.output


def test_upkeep_needs_a_backend(kit, tmp_path):
    co = _coordinator(tmp_path)
    co.register_vault(recovery_vault_file())
    from msigvault.coordinator.errors import CoordinatorError

    with pytest.raises(CoordinatorError, match="--backend"):
        co.upkeep()
    r = run("session", "upkeep", "--db", f"sqlite:///{tmp_path / 'c.sqlite'}", "--coordinator-key",
            tmp_path / "c.key", code=2)
    assert "--backend URL or --chain DIR" in r.output


def _coordinator(tmp_path):
    from msigvault.coordinator.audit import Identity
    from msigvault.coordinator.db import Database
    from msigvault.coordinator.sessions import Coordinator

    return Coordinator(Database.open(f"sqlite:///{tmp_path / 'c.sqlite'}"), Identity.load_or_create(tmp_path / "c.key"))
