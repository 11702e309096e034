"""Ready-made sample objects for examples and documentation (regtest only, not for real funds)."""

from __future__ import annotations

from ..network import Network
from ..policy.vault import Vault
from ..psbt.psbt import Psbt
from .keyholders import TestKeyholder
from .utxos import synthetic_utxo


def example_vault(script: str = "wsh") -> Vault:
    """The 2-of-3 regtest vault of alice, bob and carol that the guides use."""
    keys = [TestKeyholder.from_label(n).cosigner(script) for n in ("alice", "bob", "carol")]
    return Vault.multisig(2, keys, script=script, network=Network.REGTEST)


def example_psbt(inputs: int = 3, script: str = "wsh") -> "tuple[Vault, Psbt]":
    """(vault, unsigned PSBT) spending ``inputs`` synthetic coins of 100,000 sats to the vault's
    own receive address 7 with change: the air-gap guide's example PSBT."""
    vault = example_vault(script)
    utxos = [synthetic_utxo(vault, 100_000, index=i, seed=str(i)) for i in range(inputs)]
    pay = min(150_000, 100_000 * inputs - 20_000)
    return vault, vault.create_psbt(utxos, [(vault.address(7), pay)], fee_rate=2.0, change_index=0)
