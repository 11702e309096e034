"""Derived-key records: the cosigners' child public keys a :class:`Vault` derived, kept between
processes and signed, so that a later process checks scripts without deriving them again.

Rebuilding a vault script at (branch, index) costs one BIP32 public child step per cosigner
(about 22 µs each on the development machine): for a keyholder signing a 1,000-input PSBT of a
2-of-3 vault that is more than the signatures themselves. Bitcoin Core's descriptor wallets
keep the same data for the same reason (the ``DescriptorCache`` of derived keys in the wallet
file, read back with ``ExpandFromCache``). Every check that uses the keys is unchanged: the
input's or output's script is rebuilt from them byte for byte; only the child steps that
produced them are not repeated.

Whoever can write the record could otherwise plant keys (a "vault" script that is theirs), so a
record is signed (BIP340, tagged ``msigvault/derived-keys/v1``) and loaded only against the
x-only key the caller trusts: a keyholder's registration key (:func:`keyholder_signer`,
:func:`keyholder_trusted_key`; public, so the record is checked *before* the key file is
unlocked, when the signer's summary is computed), or any key a coordinator keeps for itself.
A record names the vault's policy id and its number of cosigners: one of another vault, a
truncated, altered or oversized one is refused with :class:`~msigvault.errors.DerivedKeysError`
and loads nothing.

Layout (all integers big-endian)::

    magic "msvdk" 0x01 | policy id (32) | cosigners n (1) | count (4)
    | count x (branch (1) | index (4) | n x 33-byte compressed key, in cosigner order)
    | signer x-only key (32) | BIP340 signature (64) over the tagged hash of everything before it
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

from embit.hashes import tagged_hash
from embit.util import secp256k1 as _secp

from ..errors import DerivedKeysError
from ..secp import pubkey_create

if TYPE_CHECKING:
    from ..keys.bip32 import ExtendedKey
    from ..keys.cosigner import Cosigner
    from .vault import Vault

MAGIC = b"msvdk\x01"
TAG = "msigvault/derived-keys/v1"
#: the largest record loaded (about 160,000 indexes of a 3-key vault; a 20-key vault, 25,000)
MAX_BYTES = 16 * 2**20
_HEAD = len(MAGIC) + 32 + 1 + 4
_TAIL = 32 + 64
_HARDENED = 0x80000000
#: the most cosigners a record holds (one byte; a tr vault may have up to 999)
MAX_COSIGNERS = 255
_DELETE = "delete it (it is only a cache: the keys are derived again)"


def dump(vault: "Vault", keys: "Mapping[tuple[int, int], tuple[bytes, ...]]", secret: bytes) -> bytes:
    """The signed record of ``keys`` ((branch, index) -> cosigner-order keys) for ``vault``.

    Entries are written in (branch, index) order, the lowest first, as many as fit in
    :data:`MAX_BYTES`."""
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != 32:
        raise DerivedKeysError("a derived-key record is signed with a 32-byte secret key", field="secret")
    n = len(vault.cosigners)
    if n > MAX_COSIGNERS:
        raise DerivedKeysError(f"a derived-key record holds vaults of at most {MAX_COSIGNERS} cosigners, this one has "
                               f"{n}: use none for it (its keys are derived each time)", limit=MAX_COSIGNERS)
    room = (MAX_BYTES - _HEAD - _TAIL) // (5 + 33 * n)
    parts = []
    for (branch, index) in sorted(keys)[:room]:
        row = keys[(branch, index)]
        parts.append(bytes([branch]) + index.to_bytes(4, "big") + b"".join(row))
    body = MAGIC + bytes.fromhex(vault.policy_id) + bytes([n]) + len(parts).to_bytes(4, "big") + b"".join(parts)
    try:
        pair = _secp.keypair_create(bytes(secret))
        xonly = pubkey_create(bytes(secret))[1:]
    except (ValueError, RuntimeError):
        raise DerivedKeysError("the secret key given to sign the derived-key record is not a valid key",
                               field="secret") from None
    signed = body + xonly
    return signed + _secp.schnorrsig_sign(tagged_hash(TAG, signed), pair, None, os.urandom(32))


def load(vault: "Vault", data: bytes, trusted_key: bytes) -> "DerivedKeys":
    """The keys of a record made by :func:`dump` for ``vault``, signed by ``trusted_key`` (x-only).

    DerivedKeysError (nothing loaded) if it is not such a record: too large, truncated, another
    format, another vault, another signer or a bad signature."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DerivedKeysError(f"a derived-key record is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_BYTES:
        raise DerivedKeysError(f"the derived-key record is {len(data):,} bytes, more than the {MAX_BYTES:,} "
                               "allowed: it is not one msigvault wrote; delete it (it is only a cache)")
    if len(data) < _HEAD + _TAIL or not data.startswith(MAGIC):
        raise DerivedKeysError("not a msigvault derived-key record (wrong magic or too short): delete it "
                               "(it is only a cache)")
    if not isinstance(trusted_key, (bytes, bytearray)) or len(trusted_key) != 32:
        raise DerivedKeysError("the trusted key of a derived-key record is a 32-byte x-only public key",
                               field="trusted_key")
    signed, sig = data[:-64], data[-64:]
    if signed[-32:] != bytes(trusted_key) or not _verify(bytes(trusted_key), sig, tagged_hash(TAG, signed)):
        raise DerivedKeysError(
            "the derived-key record is not signed by the key it must be (altered, or written by someone "
            "else): nothing was loaded; delete it and let msigvault derive the keys again"
        )
    pos = len(MAGIC)
    if data[pos:pos + 32] != bytes.fromhex(vault.policy_id):
        raise DerivedKeysError("the derived-key record is for another vault (its policy id differs): nothing was "
                               "loaded; use the record of this vault, or none")
    n = len(vault.cosigners)
    if data[pos + 32] != n:
        raise DerivedKeysError(f"the derived-key record has {data[pos + 32]} keys per entry, the vault {n} "
                               f"cosigners: nothing was loaded; {_DELETE}")
    count = int.from_bytes(data[pos + 33:pos + 37], "big")
    width = 5 + 33 * n
    if _HEAD + count * width + _TAIL != len(data):
        raise DerivedKeysError(f"the derived-key record says {count} entries but its length does not match: "
                               f"nothing was loaded; {_DELETE}")
    end = _HEAD + count * width
    # every entry checked with strided slices (no Python loop per entry): branches 0 or 1,
    # indexes below 2^31 (top bit clear), every key starting 02 or 03
    bad = data[_HEAD:end:width].translate(None, b"\x00\x01") or (count and max(data[_HEAD + 1:end:width]) >= 0x80)
    if not bad:
        bad = any(data[_HEAD + 5 + 33 * k:end:width].translate(None, b"\x02\x03") for k in range(n))
    places = dict(zip(struct.iter_unpack(f">BI{33 * n}x", data[_HEAD:end]), range(_HEAD, end, width)))
    if bad or len(places) != count:
        raise DerivedKeysError(f"the derived-key record has an invalid or repeated entry ({_first_bad(data, n, count)}): "
                               f"nothing was loaded; {_DELETE}")
    return DerivedKeys(data, n, places)


class DerivedKeys(Mapping["tuple[int, int]", "tuple[bytes, ...]"]):
    """The keys of one verified record: (branch, index) -> the cosigners' keys in cosigner order
    (each row sliced from the record when it is asked for)."""

    __slots__ = ("_data", "_offsets", "_places")

    def __init__(self, data: bytes, n: int, places: "dict[tuple[int, int], int]") -> None:
        self._data = data
        self._offsets = range(5, 5 + 33 * n, 33)
        self._places = places

    def __getitem__(self, key: "tuple[int, int]") -> "tuple[bytes, ...]":
        at = self._places[key]
        data = self._data
        return tuple([data[at + o:at + o + 33] for o in self._offsets])

    def __iter__(self) -> "Iterator[tuple[int, int]]":
        return iter(self._places)

    def __len__(self) -> int:
        return len(self._places)

    def __contains__(self, key: object) -> bool:
        return key in self._places

    def row(self, key: "tuple[int, int]") -> "tuple[bytes, ...] | None":
        """The keys at ``key``, or None (``get`` without the exception of a miss)."""
        return self[key] if key in self._places else None


def signer_key(secret: bytes) -> bytes:
    """The x-only public key of the 32-byte ``secret`` that signs records (DerivedKeysError if invalid)."""
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != 32:
        raise DerivedKeysError("a derived-key record is signed with a 32-byte secret key", field="secret")
    try:
        return pubkey_create(bytes(secret))[1:]
    except (ValueError, RuntimeError):
        raise DerivedKeysError("the secret key given to sign the derived-key record is not a valid key",
                               field="secret") from None


def _first_bad(data: bytes, n: int, count: int) -> str:
    """The first invalid or repeated entry of a record (for the error message only)."""
    width, seen = 5 + 33 * n, set()
    for at in range(_HEAD, _HEAD + count * width, width):
        branch, index = data[at], int.from_bytes(data[at + 1:at + 5], "big")
        if branch > 1 or index >= _HARDENED or (branch, index) in seen:
            return f"branch {branch}, index {index}"
        if any(data[at + 5 + 33 * k] not in (2, 3) for k in range(n)):
            return f"a key that is not a compressed public key at branch {branch}, index {index}"
        seen.add((branch, index))
    return "unknown"


def _verify(xonly: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        point = _secp.ec_pubkey_parse(b"\x02" + xonly)
        xpub, _ = _secp.xonly_pubkey_from_pubkey(point)
        return bool(_secp.schnorrsig_verify(sig, msg, xpub))
    except (ValueError, RuntimeError):
        return False


# -- the keyholder's own record ----------------------------------------------------------------

def keyholder_trusted_key(cosigner: "Cosigner") -> bytes:
    """The x-only key that signs ``cosigner``'s derived-key records: its registration key
    (public: a record is checked before the key file is unlocked)."""
    from .registration import registration_pubkey

    return registration_pubkey(cosigner)[1:]


def keyholder_signer(vault: "Vault", root: "ExtendedKey") -> bytes:
    """The secret that signs this keyholder's derived-key records of ``vault`` (their
    registration key, derived from the unlocked ``root``)."""
    from .registration import REGISTRATION_BRANCH, own_cosigner

    _, account = own_cosigner(vault, root)
    secret: bytes = account.child(REGISTRATION_BRANCH).child(0).key[1:]
    return secret


def cosigner_rows(vault: "Vault", entries: "Iterable[tuple[int, int, tuple[bytes, ...], tuple[int, ...]]]"
                  ) -> "dict[tuple[int, int], tuple[bytes, ...]]":
    """(branch, index) -> keys in cosigner order, from derived scripts' (branch, index, pubkeys
    in script order, signers: the cosigner of each script position)."""
    out: "dict[tuple[int, int], tuple[bytes, ...]]" = {}
    n = len(vault.cosigners)
    for branch, index, pubkeys, signers in entries:
        row: "list[bytes]" = [b""] * n
        for pos, ci in enumerate(signers):
            row[ci] = pubkeys[pos]
        if all(row):
            out[(branch, index)] = tuple(row)
    return out
