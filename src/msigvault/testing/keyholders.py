"""Deterministic keyholders for tests and demos: a seed -> master key -> cosigner record."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..keys.bip32 import ExtendedKey, root_from_seed
from ..keys.cosigner import Cosigner
from ..keys.paths import default_account_path
from ..network import Network


@dataclass(frozen=True)
class TestKeyholder:
    """A keyholder whose master key is derived from a label. For tests and demos only."""

    __test__ = False  # not a pytest test class

    label: str
    network: Network
    root: ExtendedKey = field(repr=False)

    def __repr__(self) -> str:
        return f"TestKeyholder({self.label!r}, fingerprint={self.fingerprint.hex()})"

    @classmethod
    def from_label(cls, label: str, network: Network = Network.REGTEST) -> "TestKeyholder":
        seed = hashlib.sha256(b"msigvault-test-keyholder|" + label.encode()).digest()
        return cls(label, network, root_from_seed(seed, network))

    @property
    def fingerprint(self) -> bytes:
        return self.root.fingerprint

    def cosigner(self, script: str = "wsh", account: int = 0) -> Cosigner:
        return Cosigner.from_root(self.root, default_account_path(self.network, script, account), self.network)
