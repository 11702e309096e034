"""The demo: what ``make demo`` and ``msigvault demo`` run.

Three keyholders each create a key (fresh OS entropy; the seeds are never shown), hand over only
their cosigner records, and a 2-of-3 vault is assembled from them.
"""

from __future__ import annotations

from typing import Callable

from .keys.cosigner import Cosigner
from .keys.mnemonic import generate_mnemonic, mnemonic_to_root
from .keys.paths import default_account_path
from .network import Network
from .policy.vault import Vault


def run_demo(echo: Callable[[str], None] = print, *, script: str = "wsh",
             network: Network = Network.REGTEST) -> dict:
    echo(f"msigvault demo: a 2-of-3 {script} vault on {network.name}")
    cosigners = []
    for name in ("alice", "bob", "carol"):
        root = mnemonic_to_root(generate_mnemonic(24), network)
        cosigner = Cosigner.from_root(root, default_account_path(network, script), network)
        cosigners.append(cosigner)
        echo(f"  {name:<6} created a key offline and shares only: {cosigner}")
    vault = Vault.multisig(2, cosigners, script=script, network=network)
    echo("")
    echo(f"vault descriptor:\n  {vault.descriptor()}")
    echo(f"policy id: {vault.policy_id}")
    echo(f"first receive address: {vault.address(0)}")
    echo(f"first change address:  {vault.change_address(0)}")
    return {
        "descriptor": vault.descriptor(),
        "policy_id": vault.policy_id,
        "receive_address": vault.address(0),
        "change_address": vault.change_address(0),
    }
