"""Fixtures for intake: a persisted regtest chain, a registered 2-of-3 vault, seized sources, an operator.

The seized sources are deterministic (hashes of labels), so the secret-leak tests know every
secret and every key derived from them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from embit import base58, bip39

from msigvault.coordinator.audit import Identity
from msigvault.identity import IdentityKey
from msigvault.keys.bip32 import root_from_seed
from msigvault.keys.mnemonic import mnemonic_to_seed
from msigvault.network import Network
from msigvault.policy.registration import Registration
from msigvault.policy.vault import Vault
from msigvault.regtest import RegtestChain
from msigvault.testing.keyholders import TestKeyholder
from msigvault.vaultfile import VaultFile

NET = Network.REGTEST
ID_PASS = "operator identity passphrase"
BIP39_PASS = "seized passphrase 7"
MNEMONIC = bip39.mnemonic_from_bytes(hashlib.sha256(b"intake-test-mnemonic").digest()[:16])


def secret_key(label: str) -> bytes:
    return hashlib.sha256(b"intake-test|" + label.encode()).digest()


def wif(key: bytes, compressed: bool = True) -> str:
    return base58.encode_check(bytes([NET.wif_version]) + key + (b"\x01" if compressed else b""))


@dataclass
class Env:
    dir: Path
    chain_dir: Path
    vault_path: Path
    vault: Vault
    identity_path: Path
    coordinator_key: Path
    outputs: list  # every (command, stdout+stderr) of the online commands

    def run(self, *args: object, ok: bool = True, online: bool = True, env: "dict | None" = None) -> "object":
        from msigvault.cli import cli

        runner = CliRunner()
        result = runner.invoke(cli, [str(a) for a in args],
                               env={"MSIGVAULT_IDENTITY_PASSPHRASE": ID_PASS, **(env or {})},
                               catch_exceptions=False)
        text = result.output
        if online:
            self.outputs.append((args[:2], text))
        if ok:
            assert result.exit_code == 0, text
        return result

    @property
    def backend(self) -> str:
        return f"regtest:{self.chain_dir}"


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    d = tmp_path_factory.mktemp("intake")
    chain_dir = d / "chain"
    with RegtestChain(datadir=chain_dir) as chain:
        chain.mine(110)
    holders = [TestKeyholder.from_label(f"reserve-{i}") for i in range(3)]
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network=NET)
    vf = VaultFile(vault, "reserve", registrations=tuple(Registration.create(vault, h.root, name="reserve")
                                                          for h in holders))
    vault_path = d / "reserve.json"
    vf.save(vault_path)
    operator = IdentityKey.generate("intake-operator", "coordinator")
    identity_path = d / "operator.identity"
    operator.save(identity_path, ID_PASS, kdf_cost=2**14)
    coordinator_key = d / "coordinator.key"
    Identity.generate().save(coordinator_key)
    return Env(d, chain_dir, vault_path, vault, identity_path, coordinator_key, [])


def fund(env: Env, address: str, amounts: "list[int]") -> None:
    with RegtestChain(datadir=env.chain_dir) as chain:
        chain.fund(address, amounts)


def mnemonic_root():
    return root_from_seed(mnemonic_to_seed(MNEMONIC, BIP39_PASS), NET)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def registered_vault(label: str = "api", registered: bool = True) -> VaultFile:
    holders = [TestKeyholder.from_label(f"{label}-{i}") for i in range(3)]
    vault = Vault.multisig(2, [h.cosigner("wsh") for h in holders], script="wsh", network=NET)
    regs = tuple(Registration.create(vault, h.root, name=label) for h in holders) if registered else ()
    return VaultFile(vault, label, registrations=regs)


@dataclass
class Built:
    chain: RegtestChain
    vault_file: VaultFile
    source_text: str
    watch: object
    found: object
    plan: object

    def source(self):
        from msigvault.lifecycle.secrets import Secret
        from msigvault.lifecycle.sources import parse_source

        return parse_source(Secret(self.source_text.encode()), NET)


def build_plan(chain: RegtestChain, source_text: str, fund_groups: "dict[str, list[int]]", *,
               vault_file: "VaultFile | None" = None, fee_rate: float = 2.0, plan: bool = True) -> Built:
    """Through the Python API, in-process: fund the named watch groups, scan, plan."""
    from msigvault.address import address_from_script
    from msigvault.backends.regtest import RegtestBackend
    from msigvault.lifecycle.discover import parse_watch, watch_document, watch_groups
    from msigvault.lifecycle.scan import parse_found, scan_watch
    from msigvault.lifecycle.sweep import make_plan, parse_plan

    vf = vault_file or registered_vault()
    with Built(chain, vf, source_text, None, None, None).source() as src:
        watch = parse_watch(watch_document(src, watch_groups(src), created="t0"))
    for gid, amounts in fund_groups.items():
        g = watch.group(gid)
        spk = g.script_pubkey if g.script_pubkey is not None else g.script_at(0, 0)
        chain.fund(address_from_script(spk, NET), amounts)
    backend = RegtestBackend(chain)
    found = parse_found(scan_watch(watch, backend, scanned_at="t1").to_bytes())
    made = parse_plan(make_plan(watch, found, vf, fee_rate=fee_rate, created="t2").to_bytes()) if plan else None
    return Built(chain, vf, source_text, watch, found, made)
