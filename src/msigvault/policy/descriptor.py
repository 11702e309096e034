"""Parse the descriptors a vault is written as (BIP380-387 subset, BIP389 multipath).

Accepted: ``sh(multi|sortedmulti)``, ``sh(wsh(...))``, ``wsh(...)`` and
``tr(NUMS_H, multi_a|sortedmulti_a)``, each key ``[fingerprint/path]xpub`` followed by ``/<0;1>/*``
(or all keys ``/0/*``, or all ``/1/*``). Anything else is a different policy and is refused with a
message that says what was found. ``expand_multipath`` implements BIP389 for any descriptor.
"""

from __future__ import annotations

import re

from ..errors import InvalidDescriptor, InvalidKey
from ..keys.cosigner import Cosigner
from ..keys.keyexpr import parse_key_expression, parse_step
from .checksum import descriptor_checksum

_THRESHOLD = re.compile(r"^(0|[1-9][0-9]{0,3})$")


def _unwrap(text: str, name: str) -> "str | None":
    if text.startswith(name + "(") and text.endswith(")"):
        return text[len(name) + 1:-1]
    return None


def parse_vault_descriptor(desc: str):
    """Return (m, cosigners, script type, sorted) for a checksum-free vault descriptor.

    The multipath form must be ``/<0;1>/*`` on every key; single-path forms must use ``/0/*``
    on every key or ``/1/*`` on every key.
    """
    descriptor_checksum(desc)  # rejects characters outside the descriptor character set
    if " " in desc:
        raise InvalidDescriptor("descriptor contains spaces: remove them")
    expansions = expand_multipath(desc)
    if len(expansions) > 1 and (len(expansions) != 2 or set(_MULTIPATH.findall(desc)) != {"0;1"}):
        raise InvalidDescriptor(
            "the only multipath msigvault accepts is /<0;1>/* (receive branch 0, change branch 1)"
        )
    m, keys, script, is_sorted = parse_structure(expansions[0])
    branches = {k.steps for k in keys}
    if len(expansions) == 2:
        branches |= {(k.steps[0] - 1,) if k.steps else () for k in parse_structure(expansions[1])[1]}
    if branches not in ({(0,)}, {(1,)}) or (len(expansions) == 2 and branches != {(0,)}):
        raise InvalidDescriptor(
            "every key of a vault must end in /<0;1>/* (or all in /0/*, or all in /1/*); found "
            + ", ".join(sorted("/" + "/".join(map(str, s)) + "/*" if s else "(no derivation)" for s in branches))
        )
    cosigners = []
    for i, k in enumerate(keys, 1):
        if k.wildcard != "*":
            raise InvalidDescriptor(
                f"key {i} must end in /* (unhardened wildcard): "
                + ("hardened wildcards cannot be derived from an xpub" if k.wildcard else "a vault needs ranged keys")
            )
        try:
            cosigners.append(Cosigner.from_key_expression(k))
        except InvalidKey as e:
            raise InvalidKey(f"key {i} of the descriptor: {e}") from None
    return m, tuple(cosigners), script, is_sorted


def parse_structure(desc: str):
    """(m, [KeyExpression], script type, sorted) of a single-path vault descriptor (no checksum)."""
    for outer in ("sh", "wsh", "tr"):
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


def parse_multi_args(text: str, names: "tuple[str, ...]"):
    """(function name, threshold, [key expression text]) of ``multi(...)``-like text."""
    for name in names:
        args = _unwrap(text, name)
        if args is not None:
            break
    else:
        head = text.split("(", 1)[0]
        raise InvalidDescriptor(f"expected {' or '.join(names)}(...), found {head}(...)")
    parts = args.split(",")
    if len(parts) < 2:
        raise InvalidDescriptor(f"{name}() needs a threshold and at least one key")
    if not _THRESHOLD.match(parts[0]):
        raise InvalidDescriptor(f"{name}() threshold {parts[0]!r} is not a whole number")
    return name, int(parts[0]), parts[1:]


def _parse_multi(text: str, script: str):
    names = ("sortedmulti_a", "multi_a") if script == "tr" else ("sortedmulti", "multi")
    name, m, key_texts = parse_multi_args(text, names)
    keys = []
    for i, key in enumerate(key_texts, 1):
        try:
            keys.append(parse_key_expression(key))
        except InvalidKey as e:
            raise InvalidKey(f"key {i} of the descriptor: {e}") from None
    return m, keys, script, name.startswith("sorted")


_MULTIPATH = re.compile(r"<([^<>]*)>")


def expand_multipath(desc: str) -> "list[str]":
    """BIP389: one descriptor per multipath position (a descriptor without ``<...>`` gives itself)."""
    groups = list(_MULTIPATH.finditer(desc))
    if not groups:
        if "<" in desc or ">" in desc:
            raise InvalidDescriptor("unbalanced '<' or '>' in a multipath specifier")
        return [desc]
    stripped = _MULTIPATH.sub("", desc)
    if "<" in stripped or ">" in stripped:
        raise InvalidDescriptor("unbalanced '<' or '>' in a multipath specifier")
    lengths = set()
    for g in groups:
        items = g.group(1).split(";")
        if len(items) < 2 or any(not i for i in items):
            raise InvalidDescriptor(f"multipath specifier <{g.group(1)}> needs two or more indexes separated by ';'")
        values = [_parse_multipath_index(i) for i in items]
        if len(set(values)) != len(values):
            raise InvalidDescriptor(f"multipath specifier <{g.group(1)}> repeats an index")
        lengths.add(len(items))
        before = desc[: g.start()]
        if before.rfind("[") > before.rfind("]"):
            raise InvalidDescriptor("a multipath specifier cannot be inside a key origin")
        key_start = max(before.rfind(c) for c in ",(")
        if "<" in desc[key_start + 1: g.start()]:
            raise InvalidDescriptor("a key can have only one multipath specifier")
    if len(lengths) != 1:
        raise InvalidDescriptor("all multipath specifiers in a descriptor must have the same number of indexes")
    n = lengths.pop()
    out = []
    for k in range(n):
        pos, parts = 0, []
        for g in groups:
            parts.append(desc[pos: g.start()])
            parts.append(g.group(1).split(";")[k])
            pos = g.end()
        parts.append(desc[pos:])
        out.append("".join(parts))
    return out


def _parse_multipath_index(text: str) -> int:
    try:
        return parse_step(text, "multipath specifier")
    except InvalidKey as e:
        raise InvalidDescriptor(str(e)) from None
