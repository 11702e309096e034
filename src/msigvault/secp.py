"""libsecp256k1 for the hot loops (BIP32 children, the PSBT roles): the library embit bundles, called directly.

embit's wrappers take one global lock and re-check every argument on each call; the roles make
thousands of calls per PSBT, so the hot ones go straight to the same library with the same
context (only read after it is created, which libsecp256k1 documents as safe). Results are the
same as embit's functions give (tests compare them); without embit's ctypes binding (its pure
Python fallback) these use embit's functions.
"""

from __future__ import annotations

import ctypes
from typing import Any

from embit.util import secp256k1 as _embit

__all__ = ["child_point", "ecdsa_sign_low_r", "ecdsa_verify", "point_parse", "point_serialize", "pubkey_create",
           "schnorr_sign", "schnorr_verify"]

_lib: Any = None
_ctx: Any = None
try:  # pragma: no branch
    import importlib

    _ct: Any = importlib.import_module("embit.util.ctypes_secp256k1")
    _lib = _ct._secp
    _ctx = _ct._secp.ctx
except Exception:  # pragma: no cover - embit without its bundled library
    _lib = None

_COMPRESSED = 0b0100000010


def _der_raw(sig: bytes) -> bytes:
    out = bytes(74)
    size = ctypes.c_size_t(74)
    _lib.secp256k1_ecdsa_signature_serialize_der(_ctx, out, ctypes.byref(size), sig)
    return out[: size.value]


def ecdsa_sign_low_r(secret: bytes, msg: bytes) -> bytes:
    """DER signature with low R (grinds the RFC 6979 extra data like Bitcoin Core) and low S."""
    if _lib is None:  # pragma: no cover
        return _embit_sign_low_r(secret, msg)
    if len(msg) != 32 or len(secret) != 32:
        raise ValueError("ECDSA signing takes a 32-byte message and a 32-byte secret")
    sign, serialize = _lib.secp256k1_ecdsa_sign, _lib.secp256k1_ecdsa_signature_serialize_der
    sig, der = bytes(64), bytes(74)  # written by libsecp256k1 (fresh objects, never shared)
    size = ctypes.c_size_t(74)
    ref = ctypes.byref(size)
    extra, counter = None, 0
    while True:
        if not sign(_ctx, sig, msg, secret, None, extra):
            raise ValueError("libsecp256k1 could not sign (invalid secret key)")
        size.value = 74
        serialize(_ctx, der, ref, sig)
        counter += 1
        if size.value <= 70 or counter == 256:  # 71-byte DER: R has its top bit set, try again
            return der[: size.value]
        extra = counter.to_bytes(32, "little")


def _embit_sign_low_r(secret: bytes, msg: bytes) -> bytes:  # pragma: no cover
    sig = _embit.ecdsa_sign(msg, secret)
    der: bytes = _embit.ecdsa_signature_serialize_der(sig)
    counter = 1
    while len(der) > 70 and counter < 256:
        sig = _embit.ecdsa_sign(msg, secret, None, counter.to_bytes(32, "little"))
        der = _embit.ecdsa_signature_serialize_der(sig)
        counter += 1
    return der


def ecdsa_verify(pubkey: bytes, der: bytes, msg: bytes) -> bool:
    """Strict-DER, low-S ECDSA verification of ``der`` over ``msg`` by the 33/65-byte ``pubkey``."""
    if _lib is None:  # pragma: no cover
        return _embit_verify(pubkey, der, msg)
    if len(msg) != 32 or len(pubkey) not in (33, 65):
        return False
    sig = bytes(64)
    if not _lib.secp256k1_ecdsa_signature_parse_der(_ctx, sig, der, len(der)):
        return False
    if _der_raw(sig) != der:
        return False  # not strict DER (BIP66)
    normal = bytes(64)
    if _lib.secp256k1_ecdsa_signature_normalize(_ctx, normal, sig):
        return False  # high S
    point = bytes(64)
    if not _lib.secp256k1_ec_pubkey_parse(_ctx, point, pubkey, len(pubkey)):
        return False
    return bool(_lib.secp256k1_ecdsa_verify(_ctx, sig, msg, point))


def _embit_verify(pubkey: bytes, der: bytes, msg: bytes) -> bool:  # pragma: no cover
    try:
        sig = _embit.ecdsa_signature_parse_der(der)
        if _embit.ecdsa_signature_serialize_der(sig) != der or _embit.ecdsa_signature_normalize(sig) != sig:
            return False
        return bool(_embit.ecdsa_verify(sig, msg, _embit.ec_pubkey_parse(pubkey)))
    except (ValueError, RuntimeError):
        return False


def pubkey_create(secret: bytes) -> bytes:
    """Compressed public key of a 32-byte secret (ValueError if it is not a valid key)."""
    return point_serialize(_point_create(secret))


def _point_create(scalar: bytes) -> bytes:
    if _lib is None:  # pragma: no cover
        point: bytes = _embit.ec_pubkey_create(scalar)
        return point
    if len(scalar) != 32:
        raise ValueError("a secret key is 32 bytes")
    point = bytes(64)
    if not _lib.secp256k1_ec_pubkey_create(_ctx, point, scalar):
        raise ValueError("invalid secret key")
    return point


def point_parse(sec: bytes) -> bytes:
    """libsecp256k1's 64-byte point of a serialized public key (ValueError if it is not one)."""
    point: bytes = _embit.ec_pubkey_parse(sec)
    return point


def point_serialize(point: bytes) -> bytes:
    """The compressed (33-byte) serialization of a 64-byte point."""
    if _lib is None:  # pragma: no cover
        sec: bytes = _embit.ec_pubkey_serialize(point)
        return sec
    out = bytes(33)
    size = ctypes.c_size_t(33)
    _lib.secp256k1_ec_pubkey_serialize(_ctx, out, ctypes.byref(size), point, _COMPRESSED)
    return out


def child_point(point: bytes, tweak: bytes) -> bytes:
    """``point + tweak*G`` (a BIP32 public child step): ValueError if invalid (probability 2^-127).

    Computed as ``tweak*G`` with the signing tables plus one point addition: about a third
    cheaper than libsecp256k1's ``ec_pubkey_tweak_add``, which multiplies with the variable-base
    algorithm. A zero tweak (never met in practice) takes the tweak_add path, which accepts it.
    """
    if _lib is None or not any(tweak):  # pragma: no cover
        added: bytes = _embit.ec_pubkey_add(point, tweak)
        return added
    tg = _point_create(tweak)  # ValueError if tweak >= n
    out = bytes(64)
    pair = (ctypes.c_char_p * 2)(point, tg)
    if not _lib.secp256k1_ec_pubkey_combine(_ctx, out, pair, 2):
        raise ValueError("the child key is the point at infinity")
    return out



def schnorr_sign(secret: bytes, msg: bytes, aux: bytes) -> bytes:
    """BIP340 signature of the 32-byte ``msg`` by ``secret`` with auxiliary randomness ``aux``."""
    if _lib is None:  # pragma: no cover
        sig: bytes = _embit.schnorrsig_sign(msg, _embit.keypair_create(secret), None, aux)
        return sig
    if len(msg) != 32 or len(secret) != 32 or len(aux) != 32:
        raise ValueError("BIP340 signing takes a 32-byte message, secret and auxiliary randomness")
    pair, out = bytes(96), bytes(64)
    if not _lib.secp256k1_keypair_create(_ctx, pair, secret):
        raise ValueError("invalid secret key")
    if not _lib.secp256k1_schnorrsig_sign(_ctx, out, msg, pair, None, aux):
        raise ValueError("libsecp256k1 could not sign")
    return out


def schnorr_verify(xonly: bytes, sig: bytes, msg: bytes) -> bool:
    """BIP340 verification of the 64-byte ``sig`` over the 32-byte ``msg`` by the x-only key."""
    if len(xonly) != 32 or len(sig) != 64 or len(msg) != 32:
        return False
    if _lib is None:  # pragma: no cover
        try:
            xpub, _ = _embit.xonly_pubkey_from_pubkey(_embit.ec_pubkey_parse(b"\x02" + xonly))
            return bool(_embit.schnorrsig_verify(sig, msg, xpub))
        except (ValueError, RuntimeError):
            return False
    point = bytes(64)
    if not _lib.secp256k1_xonly_pubkey_parse(_ctx, point, xonly):
        return False
    return bool(_lib.secp256k1_schnorrsig_verify(_ctx, sig, msg, point))
