"""Shared identities: the example vault's keyholder sites and a coordinator."""

import pytest

from msigvault.identity import IdentityKey
from msigvault.testing.keyholders import TestKeyholder
from msigvault.testing.samples import example_vault


@pytest.fixture(scope="session")
def vault():
    return example_vault()


@pytest.fixture(scope="session")
def alice():
    return TestKeyholder.from_label("alice")


@pytest.fixture(scope="session")
def bob():
    return TestKeyholder.from_label("bob")


@pytest.fixture(scope="session")
def alice_site(alice):
    key = IdentityKey.generate("alice-site", "keyholder-site")
    return key, key.record("regtest", root=alice.root, cosigner=alice.cosigner())


@pytest.fixture(scope="session")
def bob_site(bob):
    key = IdentityKey.generate("bob-site", "keyholder-site")
    return key, key.record("regtest", root=bob.root, cosigner=bob.cosigner())


@pytest.fixture(scope="session")
def coordinator():
    key = IdentityKey.generate("coordinator", "coordinator")
    return key, key.record("regtest")
