"""BIP380 key expressions, as plain parsing.

A key expression is ``[fingerprint/origin/path]KEY/derivation/steps`` with an optional final
``*`` (or ``*h``) wildcard, where KEY is a hex public key, a WIF private key, or an extended
key. Vault descriptors and cosigner records use a strict subset (policy/descriptor.py, cosigner.py); this module accepts the whole
grammar so that official vectors and other wallets' descriptors can be checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..errors import InvalidKey
from .paths import HARDENED

_STEP = re.compile(r"^(0|[1-9][0-9]*)(h|')?$")
_HEX = re.compile(r"^[0-9a-f]*$")

#: Most derivation steps (origin and after the key, with the wildcard) one key expression may
#: have: a BIP32 depth is one byte.
MAX_PATH_STEPS = 256
#: Longest key expression accepted: 256 steps of at most 12 characters, an origin fingerprint
#: and a 111-character extended key fit with room to spare.
MAX_KEY_EXPRESSION_LENGTH = 4096


@dataclass(frozen=True)
class KeyExpression:
    fingerprint: Optional[bytes]
    origin_path: "tuple[int, ...]"
    key: str  # the key text: hex pubkey, WIF, or base58 extended key
    kind: str  # "pubkey", "wif", "xpub" or "xprv"
    steps: "tuple[int, ...]"  # derivation below an extended key
    wildcard: Optional[str]  # None, "*" (unhardened) or "*h" (hardened)


def parse_step(text: str, where: str) -> int:
    """One BIP380 derivation step: decimal below 2^31, hardened with ``h`` or ``'`` (not ``H``)."""
    m = _STEP.match(text) if len(text) <= 11 else None  # 2^31 has 10 digits (+ marker)
    if not m:
        raise InvalidKey(f"bad derivation step {text[:16]!r} in {where}: write a number, then h or ' if hardened")
    n = int(m.group(1))
    if n >= HARDENED:
        raise InvalidKey(f"derivation step {text!r} in {where} is out of range (must be below 2^31)")
    return n + HARDENED if m.group(2) else n


def parse_key_expression(text: str) -> KeyExpression:
    """Parse one BIP380 key expression; raise InvalidKey saying what is wrong.

    Linear in the text; refuses more than :data:`MAX_KEY_EXPRESSION_LENGTH` characters or
    :data:`MAX_PATH_STEPS` derivation steps before splitting it.
    """
    if len(text) > MAX_KEY_EXPRESSION_LENGTH:
        raise InvalidKey(
            f"a key expression of {len(text)} characters is longer than any real key "
            f"(at most {MAX_KEY_EXPRESSION_LENGTH}): check the text"
        )
    if text.count("/") > MAX_PATH_STEPS:
        raise InvalidKey(
            f"the key expression has more than {MAX_PATH_STEPS} derivation steps; BIP32 keys "
            "are at most 255 levels deep"
        )
    fingerprint: "bytes | None" = None
    origin: "tuple[int, ...]" = ()
    rest = text
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise InvalidKey("key origin has no closing ']'")
        inner, rest = rest[1:close], rest[close + 1:]
        parts = inner.split("/")
        fp = parts[0]
        if len(fp) != 8 or not _HEX.match(fp.lower()):
            raise InvalidKey(f"key origin fingerprint {fp[:12]!r} must be 8 hex digits")
        fingerprint = bytes.fromhex(fp)
        origin = tuple(parse_step(p, "key origin") for p in parts[1:])
    if "[" in rest or "]" in rest:
        raise InvalidKey("a key expression has at most one key origin, and it comes first")
    if not rest:
        raise InvalidKey("key origin is not followed by a key")
    key, *path = rest.split("/")
    if _HEX.match(key) and len(key) in (66, 130):
        if key[:2] not in (("02", "03") if len(key) == 66 else ("04",)):
            raise InvalidKey(f"{key[:8]}... is not a valid public key encoding")
        kind = "pubkey"
    elif key[:1] in ("5", "K", "L", "c", "9") and len(key) in (51, 52):
        kind = "wif"
    elif key[1:4] in ("pub", "prv"):
        kind = "xprv" if key[1:4] == "prv" else "xpub"
    else:
        raise InvalidKey(f"{key[:12]}... is not a public key, WIF key or extended key")
    if path and kind in ("pubkey", "wif"):
        raise InvalidKey("only extended keys can have derivation steps after them")
    wildcard = None
    if path and path[-1] in ("*", "*h", "*'"):
        wildcard = "*" if path[-1] == "*" else "*h"
        path = path[:-1]
    steps = tuple(parse_step(p, "key derivation") for p in path)
    return KeyExpression(fingerprint, origin, key, kind, steps, wildcard)
