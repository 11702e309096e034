"""Recovery vaults' addresses equal BDK's (bdkpython, rust-miniscript) for the same descriptor:
wsh (one or_d/or_i miniscript) and tr with multi_a recovery leaves (BDK refuses sortedmulti_a,
so the tr primary leaf is multi_a here)."""

import bdkpython as bdk
import pytest

from msigvault import Vault
from msigvault.network import Network
from msigvault.policy.recovery import Recovery, Timelock
from msigvault.testing.keyholders import TestKeyholder

NET = Network.REGTEST


def keys(prefix, k, script):
    return [TestKeyholder.from_label(f"bdk-rec-{prefix}{i}").cosigner(script) for i in range(k)]


VAULTS = {
    "wsh-one": lambda: Vault.multisig(2, keys("p", 3, "wsh"), network=NET,
                                      recovery=[Recovery(1, keys("r", 2, "wsh"), Timelock.older(52_560))]),
    "wsh-three": lambda: Vault.multisig(3, keys("p", 5, "wsh"), network=NET, recovery=[
        Recovery(2, keys("r", 3, "wsh"), Timelock.older(4_320)),
        Recovery(1, keys("s", 1, "wsh"), Timelock.after(900_000)),
        Recovery(1, keys("t", 2, "wsh"), Timelock.older_seconds(512 * 4000))]),
    "tr-decaying": lambda: Vault.multisig(2, keys("p", 3, "tr"), script="tr", sorted=False, network=NET,
                                          recovery=[Recovery(1, keys("p", 3, "tr"), Timelock.older(4_320)),
                                                    Recovery(2, keys("r", 2, "tr"), Timelock.after(1_700_000_000))]),
}


@pytest.mark.parametrize("name", sorted(VAULTS))
def test_recovery_vault_addresses_equal_bdk(name):
    vault = VAULTS[name]()
    for branch in (0, 1):
        desc = bdk.Descriptor(vault.descriptor(branch), bdk.NetworkKind.TEST)
        for i in range(10):
            assert str(desc.derive_address(i, bdk.Network.REGTEST)) == vault.derive(i, change=bool(branch)).address
