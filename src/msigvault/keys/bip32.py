"""BIP32 extended keys: strict parsing (every check BIP32 test vector 5 asks for), CKD, SLIP-132.

embit's HDKey is used for signing; this module is the strict front door for keys that come from
outside (cosigner records, descriptors, files) and the fast public derivation used for addresses.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Iterable
from embit import base58
from embit.util import secp256k1 as _secp

from ..errors import InvalidKey
from ..network import Network, networks_for_xkey_version
from ..secp import child_point, point_serialize
from .paths import HARDENED

if TYPE_CHECKING:
    from embit.bip32 import HDKey

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


from embit.hashes import hash160  # noqa: E402  (falls back to pure Python where OpenSSL lacks RIPEMD160)


class ExtendedKey:
    """A parsed, validated BIP32 extended key (public or private). Immutable.

    ``key`` is the 33-byte key data: a compressed public key, or 0x00 + 32-byte secret.
    Deliberately not a dataclass: ``repr``, pretty-printers and test reporters that walk
    dataclass fields must never reach private material.
    """

    __slots__ = ("version", "depth", "parent_fingerprint", "child_number", "chain_code", "key")
    version: bytes
    depth: int
    parent_fingerprint: bytes
    child_number: int
    chain_code: bytes
    key: bytes

    def __init__(self, version: bytes, depth: int, parent_fingerprint: bytes, child_number: int,
                 chain_code: bytes, key: bytes) -> None:
        for name, value in (("version", version), ("depth", depth), ("parent_fingerprint", parent_fingerprint),
                            ("child_number", child_number), ("chain_code", chain_code), ("key", key)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ExtendedKey is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExtendedKey):
            return NotImplemented
        return self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(self.serialize())

    @property
    def is_private(self) -> bool:
        return self.key[0] == 0

    @property
    def networks(self) -> "list[Network]":
        return networks_for_xkey_version(self.version)[0]

    @property
    def prefix(self) -> str:
        """The version's human prefix: xpub, tpub, Zpub, Vprv, ..."""
        return networks_for_xkey_version(self.version)[2]

    @property
    def is_mainnet(self) -> bool:
        return self.networks[0].is_mainnet

    @property
    def public_key(self) -> bytes:
        """Compressed SEC public key (33 bytes)."""
        if self.is_private:
            return _secp.ec_pubkey_serialize(_secp.ec_pubkey_create(self.key[1:]))
        return self.key

    @property
    def fingerprint(self) -> bytes:
        """This key's own fingerprint: first 4 bytes of HASH160 of its public key."""
        return hash160(self.public_key)[:4]

    def __repr__(self) -> str:
        kind = "private" if self.is_private else "public"
        return (f"ExtendedKey({kind}, {self.prefix}, depth={self.depth}, "
                f"fingerprint={self.fingerprint.hex()})")

    __str__ = __repr__

    # -- serialization -------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> "ExtendedKey":
        """Parse and fully validate a base58check extended key; raise InvalidKey if anything is off."""
        if not isinstance(text, str) or not text.isascii() or not text.isalnum():
            raise InvalidKey("an extended key must be a base58 string (xpub..., tpub..., Zpub...)")
        try:
            raw = base58.decode_check(text)
        except Exception:
            raise InvalidKey(
                f"extended key {_hint(text)} has a bad base58 checksum: it was mistyped or "
                "truncated; copy it again from its source"
            ) from None
        return cls.from_bytes(raw, hint=_hint(text))

    @classmethod
    def from_bytes(cls, raw: bytes, hint: str = "") -> "ExtendedKey":
        what = f"extended key {hint}".strip()
        if len(raw) != 78:
            raise InvalidKey(f"{what} has {len(raw)} bytes of data, a BIP32 key has 78")
        version, depth = raw[0:4], raw[4]
        parent_fp, child = raw[5:9], int.from_bytes(raw[9:13], "big")
        chain_code, key = raw[13:45], raw[45:78]
        nets, is_prv, prefix = networks_for_xkey_version(version)
        if not nets:
            raise InvalidKey(f"{what} has unknown version bytes {version.hex()}: not an xpub/tpub or SLIP-132 key")
        if depth == 0 and parent_fp != b"\x00\x00\x00\x00":
            raise InvalidKey(f"{what} has depth 0 but a non-zero parent fingerprint: it is corrupt")
        if depth == 0 and child != 0:
            raise InvalidKey(f"{what} has depth 0 but a non-zero child number: it is corrupt")
        if is_prv:
            if key[0] != 0:
                raise InvalidKey(f"{what} has a private-key version ({prefix}) but public key data")
            k = int.from_bytes(key[1:], "big")
            if not 0 < k < SECP256K1_N:
                raise InvalidKey(f"{what} holds a private key outside the valid range 1..n-1")
        else:
            if key[0] not in (2, 3):
                if key[0] == 0:
                    raise InvalidKey(f"{what} has a public-key version ({prefix}) but private key data")
                raise InvalidKey(f"{what} has an invalid public key prefix {key[0]:#04x}")
            try:
                _secp.ec_pubkey_parse(key)
            except ValueError:
                raise InvalidKey(f"{what} holds a public key that is not on the secp256k1 curve") from None
        return cls(version, depth, parent_fp, child, chain_code, key)

    def serialize(self, version: "bytes | None" = None) -> bytes:
        v = version or self.version
        return (v + bytes([self.depth]) + self.parent_fingerprint
                + self.child_number.to_bytes(4, "big") + self.chain_code + self.key)

    def to_base58(self, version: "bytes | None" = None) -> str:
        return base58.encode_check(self.serialize(version))

    # -- derivation ----------------------------------------------------------------------------

    def neuter(self, network: "Network | None" = None) -> "ExtendedKey":
        """The public extended key, with the plain xpub/tpub version of its network."""
        net = network or self.networks[0]
        return ExtendedKey(net.xpub_version, self.depth, self.parent_fingerprint,
                           self.child_number, self.chain_code, self.public_key)

    def child(self, index: int) -> "ExtendedKey":
        if not 0 <= index <= 0xFFFFFFFF:
            raise InvalidKey(f"child index {index} is out of range")
        if self.depth >= 255:
            raise InvalidKey("cannot derive below depth 255")
        pub = self.public_key
        if index >= HARDENED:
            if not self.is_private:
                raise InvalidKey("cannot derive a hardened child from a public key: use the private key")
            data = self.key + index.to_bytes(4, "big")
        else:
            data = pub + index.to_bytes(4, "big")
        digest = hmac.digest(self.chain_code, data, "sha512")
        il, cc = digest[:32], digest[32:]
        if int.from_bytes(il, "big") >= SECP256K1_N:
            raise InvalidKey(f"BIP32 derivation at index {index} is invalid (probability below 2^-127): skip it")
        try:
            if self.is_private:
                key = b"\x00" + _secp.ec_privkey_add(self.key[1:], il)
            else:
                key = _secp.ec_pubkey_serialize(_secp.ec_pubkey_add(_secp.ec_pubkey_parse(pub), il))
        except ValueError:
            raise InvalidKey(f"BIP32 derivation at index {index} is invalid (probability below 2^-127): skip it") from None
        return ExtendedKey(self.version, self.depth + 1, hash160(pub)[:4], index, cc, key)

    def derive(self, path: "Iterable[int]") -> "ExtendedKey":
        k = self
        for i in path:
            k = k.child(i)
        return k

    def to_embit(self) -> "HDKey":
        """The same key as an embit HDKey (for signing)."""
        from embit.bip32 import HDKey

        return HDKey.parse(self.serialize())


class PublicDeriver:
    """Fast unhardened public derivation from one fixed extended public key.

    Parses the parent point once; each child costs one HMAC-SHA512 and one point tweak.
    """

    __slots__ = ("_point", "_sec", "_chain_code")

    _point: bytes
    _sec: bytes
    _chain_code: bytes

    def __init__(self, xkey: ExtendedKey) -> None:
        self._sec = xkey.public_key
        self._point = _secp.ec_pubkey_parse(self._sec)
        self._chain_code = xkey.chain_code

    def child_pubkey(self, index: int) -> bytes:
        """Compressed public key of unhardened child ``index``."""
        if not 0 <= index < HARDENED:
            raise InvalidKey(f"address index {index} must be unhardened (0 to 2^31-1)")
        digest = hmac.digest(self._chain_code, self._sec + index.to_bytes(4, "big"), "sha512")
        try:
            return point_serialize(child_point(self._point, digest[:32]))
        except ValueError:
            raise InvalidKey(f"BIP32 derivation at index {index} is invalid (probability below 2^-127)") from None

    def child(self, index: int) -> "PublicDeriver":
        d = PublicDeriver.__new__(PublicDeriver)
        digest = hmac.digest(self._chain_code, self._sec + index.to_bytes(4, "big"), "sha512")
        d._point = child_point(self._point, digest[:32])
        d._sec = point_serialize(d._point)
        d._chain_code = digest[32:]
        return d


def _hint(text: str) -> str:
    """A short, non-secret hint to name a key in messages (never the whole key)."""
    if not isinstance(text, str):
        return ""
    if text[1:4] == "prv":
        return f"{text[:4]}..."
    return f"{text[:8]}...{text[-4:]}" if len(text) > 16 else text


def root_from_seed(seed: bytes, network: Network) -> ExtendedKey:
    """BIP32 master key from a seed (16 to 64 bytes)."""
    if not 16 <= len(seed) <= 64:
        raise InvalidKey("a BIP32 seed must be 16 to 64 bytes")
    digest = hmac.digest(b"Bitcoin seed", seed, "sha512")
    k = int.from_bytes(digest[:32], "big")
    if not 0 < k < SECP256K1_N:
        raise InvalidKey("this seed gives an invalid master key (probability below 2^-127): use another seed")
    return ExtendedKey(network.xprv_version, 0, b"\x00" * 4, 0, digest[32:], b"\x00" + digest[:32])
