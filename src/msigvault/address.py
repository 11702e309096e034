"""Addresses <-> scriptPubKeys for one network (base58 P2PKH/P2SH, bech32 v0, bech32m v1+)."""

from __future__ import annotations

from embit import base58, bech32

from .errors import InvalidAddress, NetworkMismatch
from .network import ALL_NETWORKS, Network


def address_from_script(script_pubkey: bytes, network: Network) -> str:
    """The address of a standard scriptPubKey; raise InvalidAddress for scripts with no address."""
    s = script_pubkey
    if len(s) == 23 and s[0] == 0xA9 and s[1] == 0x14 and s[22] == 0x87:
        return base58.encode_check(bytes([network.p2sh_version]) + s[2:22])
    if len(s) == 25 and s[:3] == b"\x76\xa9\x14" and s[23:] == b"\x88\xac":
        return base58.encode_check(bytes([network.p2pkh_version]) + s[3:23])
    if 4 <= len(s) <= 42 and (s[0] == 0 or 0x51 <= s[0] <= 0x60) and s[1] == len(s) - 2:
        version = 0 if s[0] == 0 else s[0] - 0x50
        program = s[2:]
        if version == 0 and len(program) not in (20, 32):
            raise InvalidAddress("a segwit v0 program must be 20 or 32 bytes")
        encoding = bech32.Encoding.BECH32 if version == 0 else bech32.Encoding.BECH32M
        return bech32.bech32_encode(encoding, network.bech32_hrp,
                                    [version] + bech32.convertbits(program, 8, 5))
    raise InvalidAddress(f"script {s.hex()[:40]} is not a standard output with an address")


def script_from_address(address: str, network: Network) -> bytes:
    """The scriptPubKey an address pays to; the address must belong to ``network``."""
    if not isinstance(address, str) or not address.strip():
        raise InvalidAddress("an address must be a non-empty string")
    a = address.strip()
    hrp = a.rsplit("1", 1)[0].lower() if "1" in a else ""
    if hrp in {n.bech32_hrp for n in ALL_NETWORKS}:
        if hrp != network.bech32_hrp:
            others = [n.name for n in ALL_NETWORKS if n.bech32_hrp == hrp]
            raise NetworkMismatch(f"address {a} is for {'/'.join(others)}, not {network.name}")
        version, program = bech32.decode(network.bech32_hrp, a)
        if version is None:
            raise InvalidAddress(f"address {a} is not a valid bech32/bech32m segwit address: check it for typos")
        return bytes([0 if version == 0 else 0x50 + version, len(program)]) + bytes(program)
    try:
        raw = base58.decode_check(a)
    except Exception:
        raise InvalidAddress(f"address {a} is neither valid bech32 nor valid base58check: check it for typos") from None
    if len(raw) != 21:
        raise InvalidAddress(f"address {a} has the wrong length for a base58 address")
    if raw[0] == network.p2sh_version:
        return b"\xa9\x14" + raw[1:] + b"\x87"
    if raw[0] == network.p2pkh_version:
        return b"\x76\xa9\x14" + raw[1:] + b"\x88\xac"
    for other in ALL_NETWORKS:
        if raw[0] in (other.p2sh_version, other.p2pkh_version):
            raise NetworkMismatch(f"address {a} is for {other.name}, not {network.name}")
    raise InvalidAddress(f"address {a} has an unknown version byte {raw[0]:#04x}")
