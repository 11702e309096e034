"""Vault-shaped descriptors on top of the one parser (policy/descriptors.py), and BIP389 text expansion.

A vault is ``sh(multi|sortedmulti)``, ``sh(wsh(...))``, ``wsh(...)`` or
``tr(NUMS_H, multi_a|sortedmulti_a)``, each key ``[fingerprint/path]xpub`` followed by ``/<0;1>/*``
(or all keys ``/0/*``, or all ``/1/*``). Anything else is a different policy and is refused with a
message that says what was found. ``expand_multipath`` implements BIP389 for any descriptor text;
``parse_multi_args`` is a small helper kept for the BIP383 vector tests.
"""

from __future__ import annotations

import re

from ..errors import InvalidDescriptor, InvalidKey
from ..keys.keyexpr import parse_step
from .checksum import MAX_DESCRIPTOR_LENGTH, check_length

__all__ = [
    "parse_vault_descriptor", "parse_structure", "parse_multi_args", "expand_multipath",
    "MAX_DESCRIPTOR_LENGTH", "MAX_DESCRIPTOR_KEYS", "MAX_MULTIPATH_ARITY", "MAX_EXPANDED_LENGTH",
]

_THRESHOLD = re.compile(r"^(0|[1-9][0-9]{0,3})$")

#: Most keys any vault descriptor can hold (tr: multi_a with 999 keys).
MAX_DESCRIPTOR_KEYS = 999
#: Most indexes one BIP389 multipath specifier may list.
MAX_MULTIPATH_ARITY = 256
#: Most characters all BIP389 expansions of one descriptor may add up to.
MAX_EXPANDED_LENGTH = 4 * MAX_DESCRIPTOR_LENGTH


def parse_vault_descriptor(desc: str):
    """Return (m, cosigners, script type, sorted) for a checksum-free vault descriptor.

    The multipath form must be ``/<0;1>/*`` on every key; single-path forms must use ``/0/*``
    on every key or ``/1/*`` on every key. Parsed by the one parser (policy/descriptors.py).
    """
    from .descriptors import parse_descriptor, vault_parts

    if "#" in desc:
        raise InvalidDescriptor("pass the descriptor without its #checksum (split_checksum() removes it)")
    return vault_parts(parse_descriptor(desc, only_multipath="0;1"))


def parse_structure(desc: str):
    """(m, [KeyExpression], script type, sorted) of a single-path vault descriptor (no checksum)."""
    from .descriptors import parse_descriptor

    check_length(desc)
    m, keys, script, is_sorted = parse_descriptor(desc).vault_shape()
    return m, [k.key_expression() for k in keys], script, is_sorted


def parse_multi_args(text: str, names: "tuple[str, ...]"):
    """(function name, threshold, [key expression text]) of ``multi(...)``-like text."""
    for name in names:
        args = text[len(name) + 1:-1] if text.startswith(name + "(") and text.endswith(")") else None
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
