"""Addresses <-> scriptPubKeys for one network (base58 P2PKH/P2SH, bech32 v0, bech32m v1+)."""

from __future__ import annotations

from embit import base58, bech32

from .errors import InvalidAddress, NetworkMismatch
from .network import ALL_NETWORKS, Network

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
# _TABLE[top] = XOR of the generators selected by the 5 bits shifted out: one lookup per symbol
_TABLE = [0] * 32
for _top in range(32):
    for _i in range(5):
        if (_top >> _i) & 1:
            _TABLE[_top] ^= _GEN[_i]
_BECH32_CONST, _BECH32M_CONST = 1, 0x2BC830A3


def _segwit_encode(hrp: str, version: int, program: bytes) -> str:
    """BIP173/BIP350 encoding (the table-driven form of the reference polymod)."""
    data = [version]
    acc = bits = 0
    for b in program:
        acc = ((acc << 8) | b) & 0xFFF
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    chk = 1
    for v in [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data + [0] * 6:
        chk = ((chk & 0x1FFFFFF) << 5) ^ v ^ _TABLE[chk >> 25]
    chk ^= _BECH32_CONST if version == 0 else _BECH32M_CONST
    return hrp + "1" + "".join(_CHARSET[d] for d in data) + "".join(_CHARSET[(chk >> 5 * (5 - i)) & 31] for i in range(6))


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
        return _segwit_encode(network.bech32_hrp, version, program)
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
        if version is None or program is None:
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
