"""Key rotation on the regtest chain, through the msigvault command: a 2-of-3 wsh vault holding
several coins migrates every coin to a 3-of-5 tr successor (a changed key set, threshold and
script type). Each keyholder registers the successor with `vault verify`; the signers show each
batch output as TO SUCCESSOR VAULT <name> (policy id ...); a keyholder whose laptop has no
registration of the successor sees PAY; the coordinator follows the sessions until the old vault
is empty on the chain, and `audit verify` accepts the log with the rotation recorded in it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from embit import bip39

from msigvault.keys.keystore import Keystore
from msigvault.regtest import RegtestChain

PW = "rotation passphrase"
OLD = ("alice", "bob", "carol")
NEW = ("alice", "bob", "carol", "dave", "erin")
COINS = [310_000, 120_000, 95_000, 70_000, 64_000, 51_000, 40_000, 33_000, 28_000, 21_000, 18_000, 15_000]


def run(*args: object, ok: bool = True):
    result = CliRunner().invoke(_cli(), [str(a) for a in args], env={"MSIGVAULT_PASSPHRASE": PW},
                                catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _cli():
    from msigvault.cli import cli

    return cli


def mnemonic(name: str) -> str:
    return bip39.mnemonic_from_bytes(hashlib.sha256(b"rotation-test|" + name.encode()).digest()[:16])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("rotation")
    sites = {n: root / n for n in NEW}
    coord = root / "coordinator"
    for d in (*sites.values(), coord):
        d.mkdir()
    cos = {}
    for name in NEW:
        ks = Keystore.create(sites[name] / "key", PW, mnemonic=mnemonic(name), kdf_cost=2**14)
        cos[name] = {s: str(ks.cosigner("regtest", PW, script=s)) for s in ("wsh", "tr")}
    run("vault", "create", "-m", 2, *(cos[n]["wsh"] for n in OLD), "--script", "wsh", "-n", "regtest",
        "--name", "reserve-2024", "-o", coord / "old.json")
    run("vault", "create", "-m", 3, *(cos[n]["tr"] for n in NEW), "--script", "tr", "-n", "regtest",
        "--name", "reserve-2026", "-o", coord / "successor.json")
    for name in NEW:  # every keyholder checks and registers the vaults they are in, on their own laptop
        files = ("old.json", "successor.json") if name in OLD else ("successor.json",)
        for f in files:
            shutil.copy(coord / f, sites[name] / f)
            run("vault", "verify", sites[name] / f, "--key", sites[name] / "key", "--yes")
    chain = coord / "chain"
    run("regtest", "init", chain)
    with RegtestChain(datadir=chain) as c:
        from msigvault.vaultfile import load_vault_file

        old = load_vault_file(coord / "old.json").vault
        for i, amount in enumerate(COINS):  # receive and change addresses of the old vault
            c.fund(old.address(i // 2) if i % 3 else old.change_address(i), [amount])
    return {"root": root, "sites": sites, "coord": coord, "chain": chain, "cosigners": cos}


def sign(world, name: str, psbt: Path, *successors: Path, ok: bool = True):
    site = world["sites"][name]
    local = site / psbt.name
    shutil.copy(psbt, local)
    out = site / f"{name}-{psbt.name}"
    extra = [a for s in successors for a in ("--successor", s)]
    return run("psbt", "sign", site / "old.json", local, "--key", site / "key", "--yes", "-o", out, "--force",
               *extra, ok=ok), out


def test_a_2_of_3_wsh_vault_migrates_every_coin_to_a_3_of_5_tr_successor(world):
    coord, chain = world["coord"], world["chain"]
    db = f"sqlite:///{coord / 'coordinator.sqlite'}"
    key = coord / "coordinator.key"
    successor = json.loads((coord / "successor.json").read_text())
    pid = successor["policy_id"]
    # the coordinator's copy of the successor is the keyholders' own registered copies merged
    from msigvault.vaultfile import load_vault_file

    merged = load_vault_file(coord / "successor.json")
    for name in NEW:
        mine = load_vault_file(world["sites"][name] / "successor.json")
        merged = merged.with_registration(mine.registrations[0])
    merged.save(coord / "successor.json", overwrite=True)

    plan_out = run("migrate", "plan", coord / "old.json", coord / "successor.json", "--chain", chain,
                   "--fee-rate", 3, "--max-weight", 4000, "-o", coord / "rotation", "--json")
    plan = json.loads(plan_out.output)
    assert len(plan["batches"]) >= 2, "the weight limit splits the coins into batches"
    coins = [c for b in plan["batches"] for c in b["coins"]]
    assert len(coins) == len(set(coins)) == len(COINS), "every coin, each in one batch"
    assert all(b["fee"] > 0 and b["amount_out"] == b["amount_in"] - b["fee"] for b in plan["batches"])
    assert plan["total_in"] == sum(COINS)
    assert [b["successor_index"] for b in plan["batches"]] == list(range(len(plan["batches"])))
    assert json.loads((coord / "successor.json").read_text())["next_receive_index"] == len(plan["batches"])

    # a look-alike: the successor's name, keys and script at another threshold; its address is PAY
    run("vault", "create", "-m", 2, *(world["cosigners"][n]["tr"] for n in NEW), "--script", "tr", "-n", "regtest",
        "--name", "reserve-2026", "-o", coord / "look-alike.json")
    fake = json.loads(run("vault", "address", coord / "look-alike.json", "--json").output)[0]["address"]
    run("psbt", "create", coord / "old.json", "--chain", chain, "--to", f"{fake}:max", "--fee-rate", 3,
        "-o", coord / "look-alike.psbt")
    shown, _ = sign(world, "alice", coord / "look-alike.psbt", world["sites"]["alice"] / "successor.json")
    assert "PAY" in shown.output and "TO SUCCESSOR" not in shown.output

    started = json.loads(run("migrate", "start", coord / "old.json", coord / "successor.json",
                             coord / "rotation" / "migration.json", "--db", db, "--coordinator-key", key,
                             "--proposed-by", "treasury ops", "--json").output)
    mid = started["migration"]
    assert started["status"] == "in-progress" and [b["status"] for b in started["batches"]] == ["open"] * len(
        plan["batches"])

    for b, s in zip(plan["batches"], started["batches"]):
        psbt = coord / "rotation" / b["psbt"]
        # carol's laptop is given only the coordinator's unregistered copy of the successor: PAY
        unregistered = world["root"] / "unregistered-successor.json"
        shutil.copy(world["coord"] / "successor.json", unregistered)
        text = json.loads(unregistered.read_text())
        text["registrations"] = [r for r in text["registrations"]
                                 if r["fingerprint"] != _fingerprint(world, "carol")]
        unregistered.write_text(json.dumps(text))
        refused, _ = sign(world, "carol", psbt, unregistered)
        assert "PAY" in refused.output and "TO SUCCESSOR" not in refused.output
        assert "holds no registration by" in refused.output  # the warning says why
        for name in ("alice", "bob"):
            result, signed = sign(world, name, psbt, world["sites"][name] / "successor.json")
            assert f"TO SUCCESSOR VAULT reserve-2026 (policy id {pid})" in result.output
            assert "PAY" not in result.output
            run("session", "submit", s["session"], signed, "--db", db, "--coordinator-key", key)

    status = json.loads(run("migrate", "status", coord / "old.json", mid, "--chain", chain, "--db", db,
                            "--coordinator-key", key, "--json").output)
    assert status["status"] == "completed"
    assert status["old_vault_coins"] == 0 and status["old_vault_sats"] == 0
    assert [b["status"] for b in status["batches"]] == ["confirmed"] * len(plan["batches"])

    from msigvault.vaultfile import load_vault_file

    new = load_vault_file(coord / "successor.json").vault
    with RegtestChain(datadir=chain) as c:
        for b in plan["batches"]:
            assert c.balance(new.address(b["successor_index"])) == b["amount_out"]
        old = load_vault_file(coord / "old.json").vault
        assert all(c.balance(old.address(i)) == 0 and c.balance(old.change_address(i)) == 0
                   for i in range(len(COINS)))
    assert sum(b["amount_out"] for b in plan["batches"]) == sum(COINS) - plan["total_fee"]

    log = json.loads(run("audit", "verify", "--db", db, "--json").output)
    run("audit", "export", "-o", coord / "audit.export", "--db", db, "--coordinator-key", key)
    from msigvault.coordinator.audit import Identity

    trusted = Identity.load_or_create(key).public_hex
    exported = json.loads(run("audit", "verify", coord / "audit.export", "--trust-key", trusted, "--json").output)
    assert log["ok"] and exported["ok"] and exported["entries"] >= log["entries"]
    assert pid in {v["policy_id"] for v in exported["vaults"]}
    from msigvault.coordinator.db import Database
    from msigvault.coordinator.sessions import Coordinator

    co = Coordinator(Database.open(db), None)
    events = [e["event"] for e in co.audit_entries()]
    n = len(plan["batches"])
    assert events.count("migration.started") == 1 and events.count("migration.completed") == 1
    assert events.count("migration.batch-broadcast") == n and events.count("migration.batch-confirmed") == n
    assert events.index("migration.started") < events.index("migration.batch-broadcast") \
        < events.index("migration.completed")
    again = json.loads(run("migrate", "status", coord / "old.json", mid, "--chain", chain, "--db", db,
                           "--coordinator-key", key, "--json").output)
    assert again["status"] == "completed"
    assert [e["event"] for e in co.audit_entries()].count("migration.completed") == 1, "recorded once"


def _fingerprint(world, name: str) -> str:
    return Keystore.open(world["sites"][name] / "key").fingerprint
