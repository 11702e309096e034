"""Addresses must equal those of an independent implementation: BDK (bdkpython, rust-miniscript).

BDK refuses sortedmulti_a, so a tr vault is checked per index: the derived keys sorted (BIP387)
into a multi_a leaf under the same NUMS internal key.
"""

import random

import bdkpython as bdk
import pytest

from msigvault import Vault
from msigvault.network import Network
from msigvault.policy import NUMS_H
from msigvault.testing.keyholders import TestKeyholder

NET = Network.REGTEST
INDEXES = range(20)


def random_vault(m, n, script, seed):
    rnd = random.Random(seed)
    labels = rnd.sample(range(100_000), n)
    cosigners = [TestKeyholder.from_label(f"bdk-{x}").cosigner(script) for x in labels]
    return Vault.multisig(m, cosigners, script=script, network=NET)


@pytest.mark.parametrize("m,n", [(2, 3), (3, 5)])
@pytest.mark.parametrize("script", ["sh", "sh-wsh", "wsh"])
def test_addresses_equal_bdk(m, n, script):
    vault = random_vault(m, n, script, seed=f"{m}{n}{script}")
    for branch in (0, 1):
        desc = bdk.Descriptor(vault.descriptor(branch), bdk.NetworkKind.TEST)
        for i in INDEXES:
            ours = vault.derive(i, change=bool(branch)).address
            assert str(desc.derive_address(i, bdk.Network.REGTEST)) == ours


@pytest.mark.parametrize("m,n", [(2, 3), (3, 5)])
def test_taproot_addresses_equal_bdk(m, n):
    vault = random_vault(m, n, "tr", seed=f"{m}{n}tr")
    for branch in (0, 1):
        for i in INDEXES:
            derived = vault.derive(i, change=bool(branch))
            xonly = sorted(pk[1:].hex() for pk in derived.pubkeys)
            desc = bdk.Descriptor(f"tr({NUMS_H.hex()},multi_a({m},{','.join(xonly)}))", bdk.NetworkKind.TEST)
            assert str(desc.derive_address(0, bdk.Network.REGTEST)) == derived.address


def test_bdk_accepts_our_multipath_descriptor():
    vault = random_vault(2, 3, "wsh", seed="multipath")
    desc = bdk.Descriptor(vault.descriptor(), bdk.NetworkKind.TEST)
    assert desc.is_multipath()
    receive, change = desc.to_single_descriptors()
    assert str(receive.derive_address(4, bdk.Network.REGTEST)) == vault.address(4)
    assert str(change.derive_address(4, bdk.Network.REGTEST)) == vault.change_address(4)
