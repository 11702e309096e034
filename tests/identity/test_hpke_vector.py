"""The envelope suite is RFC 9180's DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305:
the library call msigvault makes opens the RFC's own base-mode vector (tests/vectors, A.2.1)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from msigvault.identity import envelope as envmod

VECTOR = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "rfc9180_x25519_chacha20poly1305.json").read_text())


def _public(secret_hex: str) -> str:
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(secret_hex)).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def test_the_vector_is_the_suite_msigvault_uses():
    assert (VECTOR["mode"], VECTOR["kem_id"], VECTOR["kdf_id"], VECTOR["aead_id"]) == (0, 0x20, 0x01, 0x03)
    assert _public(VECTOR["skRm"]) == VECTOR["pkRm"] and _public(VECTOR["skEm"]) == VECTOR["pkEm"] == VECTOR["enc"]


def test_the_suite_opens_the_rfc_base_mode_vector():
    # the public single-shot API has no associated data, and the RFC's vector uses "Count-0":
    # cryptography's own with-aad entry point runs the same suite object msigvault builds
    first = VECTOR["encryptions"][0]
    assert first["sequence_number"] == 0
    suite = envmod._suite()
    sk = X25519PrivateKey.from_private_bytes(bytes.fromhex(VECTOR["skRm"]))
    pt = rust_openssl.hpke._decrypt_with_aad(suite, bytes.fromhex(VECTOR["enc"] + first["ct"]), sk,
                                             info=bytes.fromhex(VECTOR["info"]), aad=bytes.fromhex(first["aad"]))
    assert pt.hex() == first["pt"]
    flipped = bytearray.fromhex(VECTOR["enc"] + first["ct"])
    flipped[-1] ^= 1
    try:
        rust_openssl.hpke._decrypt_with_aad(suite, bytes(flipped), sk, info=bytes.fromhex(VECTOR["info"]),
                                            aad=bytes.fromhex(first["aad"]))
    except Exception as e:  # InvalidTag
        assert type(e).__name__ == "InvalidTag"
    else:
        raise AssertionError("a changed tag was accepted")
