"""Network parameters: address encodings, extended-key versions and BIP44/48 coin types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .errors import NetworkMismatch


@dataclass(frozen=True)
class Network:
    """One bitcoin network's constants. Use the class attributes: ``Network.REGTEST`` etc."""

    name: str
    bech32_hrp: str
    p2pkh_version: int
    p2sh_version: int
    wif_version: int
    xpub_version: bytes
    xprv_version: bytes
    coin_type: int  # BIP44 / BIP48 coin type: 0 for mainnet, 1 for every test network
    # SLIP-132 public and private versions, by prefix name, e.g. {"Zpub": b"\x02\xaa\x7e\xd3"}
    slip132_pub: "dict[str, bytes]" = field(repr=False, compare=False, hash=False)
    slip132_prv: "dict[str, bytes]" = field(repr=False, compare=False, hash=False)

    # set below, once the class exists
    MAINNET: ClassVar["Network"]
    TESTNET: ClassVar["Network"]
    SIGNET: ClassVar["Network"]
    REGTEST: ClassVar["Network"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_mainnet(self) -> bool:
        return self.coin_type == 0

    @property
    def bip32_name(self) -> str:
        """The name embit uses for this network's constants."""
        return {"mainnet": "main", "testnet": "test"}.get(self.name, self.name)

    @classmethod
    def from_name(cls, name: "str | Network") -> "Network":
        """Parse ``mainnet``/``main``/``bitcoin``, ``testnet``/``test``, ``signet``, ``regtest``."""
        if isinstance(name, Network):
            return name
        key = str(name).strip().lower()
        aliases = {
            "mainnet": "mainnet", "main": "mainnet", "bitcoin": "mainnet",
            "testnet": "testnet", "test": "testnet", "testnet3": "testnet", "testnet4": "testnet",
            "signet": "signet", "regtest": "regtest",
        }
        if key not in aliases:
            raise NetworkMismatch(
                f"unknown network {name!r}: use one of mainnet, testnet, signet, regtest"
            )
        return _BY_NAME[aliases[key]]

    def check_same(self, other: "Network", what: str) -> None:
        """Raise NetworkMismatch if ``other`` is a different network."""
        if other.name != self.name:
            raise NetworkMismatch(f"{what} is for {other.name}, but this is {self.name}")


_MAIN_PUB = {
    "xpub": bytes.fromhex("0488b21e"), "ypub": bytes.fromhex("049d7cb2"),
    "zpub": bytes.fromhex("04b24746"), "Ypub": bytes.fromhex("0295b43f"),
    "Zpub": bytes.fromhex("02aa7ed3"),
}
_MAIN_PRV = {
    "xprv": bytes.fromhex("0488ade4"), "yprv": bytes.fromhex("049d7878"),
    "zprv": bytes.fromhex("04b2430c"), "Yprv": bytes.fromhex("0295b005"),
    "Zprv": bytes.fromhex("02aa7a99"),
}
_TEST_PUB = {
    "tpub": bytes.fromhex("043587cf"), "upub": bytes.fromhex("044a5262"),
    "vpub": bytes.fromhex("045f1cf6"), "Upub": bytes.fromhex("024289ef"),
    "Vpub": bytes.fromhex("02575483"),
}
_TEST_PRV = {
    "tprv": bytes.fromhex("04358394"), "uprv": bytes.fromhex("044a4e28"),
    "vprv": bytes.fromhex("045f18bc"), "Uprv": bytes.fromhex("024285b5"),
    "Vprv": bytes.fromhex("02575048"),
}


def _net(name: str, hrp: str, main: bool) -> Network:
    return Network(
        name=name,
        bech32_hrp=hrp,
        p2pkh_version=0x00 if main else 0x6F,
        p2sh_version=0x05 if main else 0xC4,
        wif_version=0x80 if main else 0xEF,
        xpub_version=_MAIN_PUB["xpub"] if main else _TEST_PUB["tpub"],
        xprv_version=_MAIN_PRV["xprv"] if main else _TEST_PRV["tprv"],
        coin_type=0 if main else 1,
        slip132_pub=dict(_MAIN_PUB if main else _TEST_PUB),
        slip132_prv=dict(_MAIN_PRV if main else _TEST_PRV),
    )


Network.MAINNET = _net("mainnet", "bc", True)
Network.TESTNET = _net("testnet", "tb", False)
Network.SIGNET = _net("signet", "tb", False)
Network.REGTEST = _net("regtest", "bcrt", False)
_BY_NAME = {n.name: n for n in (Network.MAINNET, Network.TESTNET, Network.SIGNET, Network.REGTEST)}
ALL_NETWORKS = tuple(_BY_NAME.values())


def networks_for_xkey_version(version: bytes) -> "tuple[list[Network], bool, str]":
    """Which networks an extended-key version belongs to.

    Returns (networks, is_private, prefix name). Testnet, signet and regtest share versions,
    so a ``tpub`` matches all three. Unknown versions return ([], False, "").
    """
    for pub, prv, nets in (
        (_MAIN_PUB, _MAIN_PRV, [Network.MAINNET]),
        (_TEST_PUB, _TEST_PRV, [Network.TESTNET, Network.SIGNET, Network.REGTEST]),
    ):
        for name, v in pub.items():
            if v == version:
                return nets, False, name
        for name, v in prv.items():
            if v == version:
                return nets, True, name
    return [], False, ""
