"""Fixtures for the vault-configuration format tests (samples live in tests/vectors/formats/)."""

from pathlib import Path

import pytest

from msigvault import Network, Vault
from msigvault.testing.keyholders import TestKeyholder

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "formats"


@pytest.fixture(scope="session")
def vectors() -> Path:
    assert VECTORS.is_dir(), f"missing sample directory {VECTORS}"
    return VECTORS


def _make_vault(script="wsh", m=2, n=3, *, sorted=True, network=Network.REGTEST, label="fmt"):
    holders = [TestKeyholder.from_label(f"{label}-{i}", network) for i in range(n)]
    return Vault.multisig(m, [h.cosigner(script) for h in holders], script=script, sorted=sorted, network=network)


@pytest.fixture(scope="session")
def make_vault():
    return _make_vault


@pytest.fixture(scope="session")
def keyholder():
    return TestKeyholder.from_label
