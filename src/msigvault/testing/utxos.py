"""Synthetic vault UTXOs for tests that need no chain: a previous transaction paying the vault.

The previous transaction spends a made-up outpoint, so it is well-formed but never valid on a
chain; use msigvault.regtest.RegtestChain.fund for coins a chain will accept.
"""

from __future__ import annotations

import hashlib

from ..policy.vault import Vault
from ..psbt.common import legacy_txid
from ..psbt import fields as F
from ..types import Utxo


def synthetic_utxo(vault: Vault, amount: int, *, branch: int = 0, index: int = 0, vout: int = 0,
                   seed: str = "") -> Utxo:
    """A Utxo of ``amount`` sats at the vault's (branch, index), with its previous transaction."""
    script = vault.derive_branch(branch, index).script_pubkey
    fake_prevout = hashlib.sha256(f"msigvault-synthetic|{seed}|{branch}|{index}|{amount}".encode()).digest()
    outputs = [(1_000, b"\x51")] * vout + [(amount, script)]
    prev_tx = F.serialize_tx(2, [(fake_prevout, 0, 0xFFFFFFFF)], outputs, 0)
    txid = legacy_txid(F.parse_tx(prev_tx, "synthetic tx"))[::-1].hex()
    return Utxo(txid, vout, amount, script, branch, index, prev_tx)
