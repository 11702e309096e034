"""Parse the descriptors a vault is written as (BIP380-387 subset, BIP389 multipath).

Accepted: ``sh(multi|sortedmulti)``, ``sh(wsh(...))``, ``wsh(...)`` and
``tr(NUMS_H, multi_a|sortedmulti_a)``, each key ``[fingerprint/path]xpub`` followed by ``/<0;1>/*``
(or all keys ``/0/*``, or all ``/1/*``). Anything else is a different policy and is refused with a
message that says what was found.
"""

from __future__ import annotations

import re

from ..errors import InvalidDescriptor, InvalidKey
from ..keys.cosigner import Cosigner
from .checksum import descriptor_checksum

_THRESHOLD = re.compile(r"^(0|[1-9][0-9]{0,3})$")
_SUFFIXES = ("/<0;1>/*", "/0/*", "/1/*")


def _unwrap(text: str, name: str) -> "str | None":
    if text.startswith(name + "(") and text.endswith(")"):
        return text[len(name) + 1:-1]
    return None


def parse_vault_descriptor(desc: str):
    """Return (m, cosigners, script type, sorted) for a checksum-free vault descriptor."""
    descriptor_checksum(desc)  # rejects characters outside the descriptor character set
    if desc != desc.strip() or " " in desc:
        raise InvalidDescriptor("descriptor contains spaces: remove them")
    for outer, script in (("sh", None), ("wsh", "wsh"), ("tr", "tr")):
        inner = _unwrap(desc, outer)
        if inner is None:
            continue
        if outer == "sh":
            nested = _unwrap(inner, "wsh")
            if nested is not None:
                return _parse_multi(nested, "sh-wsh")
            if inner.startswith(("wpkh(", "pkh(", "sh(", "tr(")):
                raise InvalidDescriptor(f"sh({inner.split('(')[0]}(...)) is not a multisig vault")
            return _parse_multi(inner, "sh")
        if outer == "wsh":
            return _parse_multi(inner, "wsh")
        return _parse_tr(inner)
    head = desc.split("(", 1)[0]
    raise InvalidDescriptor(
        f"{head}(...) is not a vault descriptor: msigvault reads sh(multi), sh(wsh(multi)), wsh(multi) "
        "and tr(<NUMS>,multi_a) (and their sorted forms)"
    )


def _parse_tr(inner: str):
    from .vault import NUMS_H

    if "," not in inner:
        raise InvalidDescriptor("tr() without a script tree is a single-key wallet, not a multisig vault")
    internal, tree = inner.split(",", 1)
    if internal.lower() != NUMS_H.hex():
        raise InvalidDescriptor(
            "this tr() descriptor has a spendable internal key: msigvault vaults use the BIP341 "
            f"unspendable key {NUMS_H.hex()} so coins move only with m signatures"
        )
    if tree.startswith("{"):
        raise InvalidDescriptor("tr() with more than one leaf is not an m-of-n vault msigvault can sign for")
    return _parse_multi(tree, "tr")


def _parse_multi(text: str, script: str):
    names = ("sortedmulti_a", "multi_a") if script == "tr" else ("sortedmulti", "multi")
    for name in names:
        args = _unwrap(text, name)
        if args is not None:
            break
    else:
        head = text.split("(", 1)[0]
        allowed = " or ".join(names)
        raise InvalidDescriptor(f"expected {allowed}(...) inside {script}, found {head}(...)")
    parts = args.split(",")
    if len(parts) < 2:
        raise InvalidDescriptor(f"{name}() needs a threshold and at least one key")
    if not _THRESHOLD.match(parts[0]):
        raise InvalidDescriptor(f"{name}() threshold {parts[0]!r} is not a whole number")
    m = int(parts[0])
    suffixes = set()
    cosigners = []
    for i, key in enumerate(parts[1:], 1):
        key_text, suffix = _split_suffix(key, i)
        suffixes.add(suffix)
        try:
            cosigners.append(Cosigner.parse(key_text))
        except InvalidKey as e:
            raise InvalidKey(f"key {i} of the descriptor: {e}") from None
    if len(suffixes) > 1:
        raise InvalidDescriptor(
            "keys use different derivation suffixes (" + ", ".join(sorted(suffixes))
            + "): every key of a vault must end in /<0;1>/*"
        )
    return m, tuple(cosigners), script, name.startswith("sorted")


def _split_suffix(key: str, i: int) -> "tuple[str, str]":
    if key.startswith("[") != ("]" in key):
        raise InvalidDescriptor(f"key {i} has an unbalanced key origin: write it as [fingerprint/path]xpub")
    start = key.find("]") + 1 if key.startswith("[") else 0
    slash = key.find("/", start)
    if slash < 0:
        raise InvalidDescriptor(
            f"key {i} has no /<0;1>/* suffix: a vault needs ranged keys so every address is fresh"
        )
    suffix = key[slash:]
    if suffix not in _SUFFIXES:
        if suffix.endswith(("*h", "*'", "*H")):
            why = "hardened wildcards cannot be derived from an xpub"
        elif "<" in suffix:
            why = "the only multipath msigvault accepts is <0;1> (receive 0, change 1)"
        else:
            why = "vault keys derive /<0;1>/* (or /0/* and /1/*) below the account xpub"
        shown = suffix if len(suffix) <= 24 else suffix[:21] + "..."
        raise InvalidDescriptor(f"key {i} ends in {shown!r}: {why}")
    return key[:slash], suffix
