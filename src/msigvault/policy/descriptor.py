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
from .checksum import MAX_DESCRIPTOR_LENGTH, check_length, descriptor_checksum

__all__ = [
    "parse_vault_descriptor", "parse_structure", "parse_multi_args", "expand_multipath",
    "MAX_DESCRIPTOR_LENGTH", "MAX_DESCRIPTOR_KEYS", "MAX_MULTIPATH_ARITY", "MAX_EXPANDED_LENGTH",
]

_THRESHOLD = re.compile(r"^(0|[1-9][0-9]{0,3})$")

#: Most keys any vault descriptor can hold (tr: multi_a with 999 keys).
MAX_DESCRIPTOR_KEYS = 999
#: Keys allowed by each script's multi()/multi_a() (consensus and BIP383/BIP387 limits).
_KEYS_PER_SCRIPT = {"sh": 15, "sh-wsh": 20, "wsh": 20, "tr": MAX_DESCRIPTOR_KEYS}
#: Most indexes one BIP389 multipath specifier may list.
MAX_MULTIPATH_ARITY = 256
#: Most characters all BIP389 expansions of one descriptor may add up to.
MAX_EXPANDED_LENGTH = 4 * MAX_DESCRIPTOR_LENGTH


def _unwrap(text: str, name: str) -> "str | None":
    if text.startswith(name + "(") and text.endswith(")"):
        return text[len(name) + 1:-1]
    return None


def parse_vault_descriptor(desc: str):
    """Return (m, cosigners, script type, sorted) for a checksum-free vault descriptor.

    The multipath form must be ``/<0;1>/*`` on every key; single-path forms must use ``/0/*``
    on every key or ``/1/*`` on every key.
    """
    check_length(desc)
    _check_key_count(desc)
    descriptor_checksum(desc)  # rejects characters outside the descriptor character set
    if " " in desc:
        raise InvalidDescriptor("descriptor contains spaces: remove them")
    specs = set(_MULTIPATH.findall(desc))
    if specs and specs != {"0;1"}:  # refused before any expansion is built
        raise InvalidDescriptor(
            "the only multipath msigvault accepts is /<0;1>/* (receive branch 0, change branch 1)"
        )
    expansions = expand_multipath(desc)
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


def _check_key_count(desc: str) -> None:
    """Refuse more keys than any vault has, counted by commas before any key is parsed."""
    commas = desc.count(",")  # one before each key of multi(); tr() adds one for its internal key
    if commas > MAX_DESCRIPTOR_KEYS + 1:
        raise InvalidDescriptor(
            f"the descriptor has {commas} commas, so more than {MAX_DESCRIPTOR_KEYS} keys; a vault has "
            f"at most {MAX_DESCRIPTOR_KEYS} (tr), 20 (wsh, sh-wsh) or 15 (sh): it is not a vault descriptor"
        )


def parse_structure(desc: str):
    """(m, [KeyExpression], script type, sorted) of a single-path vault descriptor (no checksum)."""
    check_length(desc)
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
    limit = _KEYS_PER_SCRIPT[script]
    if len(key_texts) > limit:
        raise InvalidDescriptor(
            f"a {script} vault descriptor can have at most {limit} keys, not {len(key_texts)}"
            + ("; use tr (up to 999)" if script != "tr" else "")
        )
    keys = []
    for i, key in enumerate(key_texts, 1):
        try:
            keys.append(parse_key_expression(key))
        except InvalidKey as e:
            raise InvalidKey(f"key {i} of the descriptor: {e}") from None
    return m, keys, script, name.startswith("sorted")


_MULTIPATH = re.compile(r"<([^<>]*)>")


def expand_multipath(desc: str) -> "list[str]":
    """BIP389: one descriptor per multipath position (a descriptor without ``<...>`` gives itself).

    Linear in the length of ``desc`` and of the result; refuses more than
    :data:`MAX_MULTIPATH_ARITY` indexes in a specifier and results longer than
    :data:`MAX_EXPANDED_LENGTH` characters.
    """
    check_length(desc)
    groups = list(_MULTIPATH.finditer(desc))
    if not groups:
        if "<" in desc or ">" in desc:
            raise InvalidDescriptor("unbalanced '<' or '>' in a multipath specifier")
        return [desc]
    stripped = _MULTIPATH.sub("", desc)
    if "<" in stripped or ">" in stripped:
        raise InvalidDescriptor("unbalanced '<' or '>' in a multipath specifier")
    items = _checked_groups(desc, groups)
    n = len(items[0])
    if any(len(i) != n for i in items):
        raise InvalidDescriptor("all multipath specifiers in a descriptor must have the same number of indexes")
    fixed = len(desc) - sum(g.end() - g.start() for g in groups)
    if n * fixed > MAX_EXPANDED_LENGTH:
        raise InvalidDescriptor(
            f"the {n} expansions of this multipath descriptor would be longer than "
            f"{MAX_EXPANDED_LENGTH} characters: use fewer indexes in its <...> specifiers"
        )
    pieces, pos = [], 0
    for g in groups:
        pieces.append(desc[pos: g.start()])
        pos = g.end()
    pieces.append(desc[pos:])
    out = []
    for k in range(n):
        parts = [pieces[0]]
        for j, group_items in enumerate(items):
            parts.append(group_items[k])
            parts.append(pieces[j + 1])
        out.append("".join(parts))
    return out


def _multipath_items(text: str) -> "list[str]":
    """The indexes of one ``<a;b;...>`` specifier, validated (at most MAX_MULTIPATH_ARITY)."""
    shown = text if len(text) <= 40 else text[:40] + "..."
    if text.count(";") >= MAX_MULTIPATH_ARITY:
        raise InvalidDescriptor(
            f"multipath specifier <{shown}> lists more than {MAX_MULTIPATH_ARITY} indexes"
        )
    items = text.split(";")
    if len(items) < 2 or any(not i for i in items):
        raise InvalidDescriptor(f"multipath specifier <{shown}> needs two or more indexes separated by ';'")
    values = [_parse_multipath_index(i) for i in items]
    if len(set(values)) != len(values):
        raise InvalidDescriptor(f"multipath specifier <{shown}> repeats an index")
    return items


def _checked_groups(desc: str, groups) -> "list[list[str]]":
    """Each specifier's indexes, checked left to right in one pass over ``desc``: valid
    indexes, not inside a key origin, at most one per key."""
    out = []
    last_open = last_close = last_sep = -1
    prev_start, scanned = -1, 0
    for g in groups:
        out.append(_multipath_items(g.group(1)))
        start = g.start()
        last_open = max(last_open, desc.rfind("[", scanned, start))
        last_close = max(last_close, desc.rfind("]", scanned, start))
        last_sep = max(last_sep, desc.rfind(",", scanned, start), desc.rfind("(", scanned, start))
        if last_open > last_close:
            raise InvalidDescriptor("a multipath specifier cannot be inside a key origin")
        if prev_start > last_sep:
            raise InvalidDescriptor("a key can have only one multipath specifier")
        prev_start, scanned = start, g.end()
    return out


def _parse_multipath_index(text: str) -> int:
    try:
        return parse_step(text, "multipath specifier")
    except InvalidKey as e:
        raise InvalidDescriptor(str(e)) from None
