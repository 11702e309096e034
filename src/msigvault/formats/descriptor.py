"""Output descriptors (BIP380-387, BIP389 multipath) as vault configuration files.

Accepted on import:

* one multipath descriptor ``wsh(sortedmulti(2,[fp/48h/0h/0h/2h]xpub.../<0;1>/*,...))#checksum``;
* the pair of single-path descriptors, receive ``.../0/*`` and change ``.../1/*`` (two lines,
  in any order), as Bitcoin Core, Caravan and most coordinators write them; each must describe the
  same keys, threshold and script;
* one receive (or change) descriptor alone: the other branch is implied, and a warning says so;
* Bitcoin Core's ``listdescriptors`` output (``{"wallet_name": ..., "descriptors": [{"desc": ...,
  "internal": ...}, ...]}``) and ``importdescriptors`` requests (``[{"desc": ..., ...}]``).

Every checksum present is verified; a descriptor without one is accepted with a warning. Keys must
be extended public keys with their key origin; ``listdescriptors true`` output (private keys) is
refused.

A vault with timelocked recovery paths (docs/recovery.md) is read here too, in every form above,
through :meth:`Vault.from_descriptor` (exactly the shapes msigvault writes). Only this format
accepts them: the wallet formats that also carry descriptors (Sparrow, Specter, Coldcard) hold
a plain multisig, and keep refusing miniscript.

Export forms (``form=``): ``multipath`` (default), ``pair``, ``listdescriptors`` and
``importdescriptors`` (the JSON to paste into Bitcoin Core's ``importdescriptors``).
"""

from __future__ import annotations

import json
from typing import Optional

from ..policy.vault import Vault
from ._common import (
    FormatError,
    FormatWarning,
    WarningCode,
    as_text,
    describe_difference,
    load_json,
    parse_descriptor,
    same_vault,
)

FORMAT = "descriptor"
FORMS = ("multipath", "pair", "listdescriptors", "importdescriptors")


def export(vault: Vault, *, name: str = "msigvault", form: str = "multipath", timestamp=0,
           range_end: int = 999) -> str:
    """The vault's descriptors in one of ``FORMS``."""
    if form == "multipath":
        return vault.descriptor() + "\n"
    receive, change = vault.descriptors()
    if form == "pair":
        return f"{receive}\n{change}\n"
    if not isinstance(range_end, int) or isinstance(range_end, bool) or not 0 <= range_end < 2**31:
        raise FormatError(f"{FORMAT}: range_end must be an index from 0 to 2^31-1")
    if form == "importdescriptors":
        if not (timestamp == "now" or (isinstance(timestamp, int) and not isinstance(timestamp, bool) and timestamp >= 0)):
            raise FormatError(f"{FORMAT}: timestamp must be \"now\" or a UNIX time (0 rescans from the genesis block)")
        entries = [
            {"desc": d, "active": True, "internal": internal, "range": [0, range_end], "timestamp": timestamp}
            for d, internal in ((receive, False), (change, True))
        ]
        return json.dumps(entries, indent=2) + "\n"
    if form == "listdescriptors":
        if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
            raise FormatError(f"{FORMAT}: listdescriptors timestamps are UNIX times")
        entries = [
            {"desc": d, "timestamp": timestamp, "active": True, "internal": internal,
             "range": [0, range_end], "next": 0, "next_index": 0}
            for d, internal in ((receive, False), (change, True))
        ]
        return json.dumps({"wallet_name": name, "descriptors": entries}, indent=2) + "\n"
    raise FormatError(f"{FORMAT}: unknown form {form!r}; use one of {', '.join(FORMS)}")


def parse(text, *, network=None, fmt: str = FORMAT):
    """(vault, name, warnings) of a descriptor file."""
    text = as_text(text, fmt)
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        return _parse_core_json(load_json(stripped, fmt), network, fmt)
    entries = []
    for line in split_lines(text):
        entries.append((line, None))
    if not entries:
        raise FormatError(f"{fmt}: the file holds no descriptor")
    vault, warnings = combine(entries, network, fmt, recovery=fmt == FORMAT)
    return vault, None, warnings


def split_lines(text: str) -> "list[str]":
    """Descriptor lines: blank lines and ``#`` comment lines dropped, ``Label: `` prefixes removed."""
    out = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        out.append(strip_label(line))
    return out


def strip_label(line: str) -> str:
    """``Receive: wsh(...)`` -> ``wsh(...)`` (labels some wallets put in front of descriptors)."""
    head, sep, rest = line.partition(":")
    if sep and head and "(" not in head and all(ch.isalnum() or ch in " _-" for ch in head):
        return rest.strip()
    return line


def combine(entries, network, fmt: str, *, allow=("multipath", "branch"), recovery: bool = False):
    """One vault from several descriptors of it: every one must describe the same vault.

    ``entries`` are (descriptor text, internal flag or None). Returns (vault, warnings).
    ``recovery``: also read vaults with recovery paths (the descriptor format only).
    """
    warnings = []
    vault: Optional[Vault] = None
    branches = set()
    no_checksum = 0
    for i, (desc, internal) in enumerate(entries, 1):
        where = f"{fmt} (descriptor {i})" if len(entries) > 1 else fmt
        found = _recovery_vault(desc, network, where) if recovery else None
        if found is not None:
            v, has_checksum, covered = found
            no_checksum += not has_checksum
            if internal is not None and covered != {0, 1} and internal != (covered == {1}):
                raise FormatError(f"{where}: marked {'internal (change)' if internal else 'external (receive)'} but "
                                  f"its keys end in /{min(covered)}/*")
            if vault is None:
                vault = v
            elif vault != v:
                raise FormatError(f"{fmt}: descriptor {i} describes a different vault than descriptor 1 (another "
                                  "policy, keys or recovery paths); the receive and change descriptors of one vault "
                                  "are the same policy")
            branches |= covered
            continue
        parsed = parse_descriptor(desc, where, allow=allow)
        if parsed.checksum is None:
            no_checksum += 1
        if parsed.shape == "multipath":
            covered = {0, 1}
        elif parsed.shape == "bare":
            covered = {0, 1}
            warnings.append(FormatWarning(
                WarningCode.IMPLIED_BRANCH,
                f"{fmt}: the descriptor's keys carry no derivation after the xpub; receive /0/* and change "
                "/1/* are assumed, as Specter and Sparrow do"
            ))
        else:
            covered = {parsed.branch}
        if internal is not None and parsed.shape == "branch" and internal != (parsed.branch == 1):
            raise FormatError(
                f"{where}: marked {'internal (change)' if internal else 'external (receive)'} but its keys end in "
                f"/{parsed.branch}/*"
            )
        v, origin_notes = parsed.build(network, where)
        if vault is None:
            vault = v
            warnings += origin_notes
        elif not same_vault(vault, v) or vault.recovery:
            raise FormatError(
                f"{fmt}: descriptor {i} describes a different vault than descriptor 1 ({describe_difference(vault, v)}); "
                "the receive and change descriptors of one vault share keys, threshold and script"
            )
        branches |= covered
    if no_checksum:
        warnings.append(FormatWarning(
            WarningCode.NO_CHECKSUM,
            f"{fmt}: {'a descriptor has' if no_checksum == 1 else f'{no_checksum} descriptors have'} no checksum, "
            "so nothing guards against a typo: compare the vault's first address with another device"
        ))
    if branches == {0}:
        warnings.append(FormatWarning(
            WarningCode.IMPLIED_BRANCH,
            f"{fmt}: only the receive descriptor (/0/*) is given; change addresses use /1/* of the same keys"))
    elif branches == {1}:
        warnings.append(FormatWarning(
            WarningCode.IMPLIED_BRANCH,
            f"{fmt}: only the change descriptor (/1/*) is given; receive addresses use /0/* of the same keys"))
    return vault, warnings


def _parse_core_json(obj, network, fmt: str):
    """Bitcoin Core ``listdescriptors`` output or an ``importdescriptors`` request."""
    name = None
    if isinstance(obj, dict) and "descriptors" in obj:
        items = obj["descriptors"]
        name = obj.get("wallet_name") if isinstance(obj.get("wallet_name"), str) else None
        if not isinstance(items, list):
            raise FormatError(f"{fmt}: \"descriptors\" must be a list (Bitcoin Core listdescriptors output)")
    elif isinstance(obj, dict) and "desc" in obj:
        items = [obj]
    elif isinstance(obj, list):
        items = obj
    else:
        raise FormatError(
            f"{fmt}: this JSON is neither Bitcoin Core listdescriptors output nor an importdescriptors request"
        )
    if not items:
        raise FormatError(f"{fmt}: the JSON lists no descriptors")
    if len(items) > 64:
        raise FormatError(f"{fmt}: the JSON lists {len(items)} descriptors; a vault has at most a few")
    entries = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("desc"), str):
            raise FormatError(f"{fmt}: entry {i} has no \"desc\" string")
        internal = item.get("internal")
        if internal is not None and not isinstance(internal, bool):
            raise FormatError(f"{fmt}: entry {i}: \"internal\" must be true or false")
        entries.append((item["desc"], internal))
    vault, warnings = combine(entries, network, fmt, recovery=fmt == FORMAT)
    return vault, name, warnings


def _recovery_vault(desc: str, network, where: str) -> "Optional[tuple[Vault, bool, set[int]]]":
    """(vault, has a checksum, branches covered) when ``desc`` is a miniscript ``wsh()`` or a
    ``tr()`` with a script tree, read by :meth:`Vault.from_descriptor`; None for anything else
    (the plain multisig reader then parses it and reports its own errors)."""
    from ..errors import MsigvaultError
    from ..policy.descriptors import TapBranch, Tr, Wsh, parse_descriptor as parse_any
    from ..policy.miniscript import Miniscript

    if not isinstance(desc, str):
        return None
    text = desc.strip()
    try:
        parsed = parse_any(text, only_multipath="0;1")
    except MsigvaultError:
        return None
    node = parsed.node
    if not (isinstance(node, Wsh) and isinstance(node.inner, Miniscript)
            or isinstance(node, Tr) and isinstance(node.tree, TapBranch)):
        return None
    try:
        vault = Vault.from_descriptor(text, network=network, require_checksum=False)
    except MsigvaultError as e:
        e.args = (f"{where}: {e}",)
        raise
    paths = {k.paths for k in parsed.keys if k.kind == "xpub"}  # (tr: not the NUMS internal key)
    covered = {0, 1} if paths == {((0,), (1,))} else {next(iter(paths))[0][0]}
    return vault, parsed.checksum is not None, covered



def vault_with_origin_issues(text: str, *, network, accept=(), origin_issues=()) -> Vault:
    """A vault from its descriptor (checksum required) when its key origins may disagree with
    their xpubs: a vault imported with origin warnings and saved. Every origin problem found must be
    listed in ``origin_issues`` (``OriginIssue`` values); ``accept`` is passed to the Vault."""
    from ..errors import InvalidKey
    from ..keys.cosigner import OriginIssue

    where = "vault descriptor"
    parsed = parse_descriptor(text, where)
    if parsed.checksum is None:
        raise FormatError(f"{where}: the descriptor has no checksum")
    cosigners = parsed.cosigners(where)
    allowed = {OriginIssue(i) for i in origin_issues}
    for i, c in enumerate(cosigners, 1):
        extra = [x.value for x in c.origin_issues if x not in allowed]
        if extra:
            raise InvalidKey(f"{where}: key {i}: its key origin has problems the vault was not accepted with "
                             f"({', '.join(extra)})")
    return Vault.multisig(parsed.m, cosigners, script=parsed.script, sorted=parsed.sorted, network=network,
                          accept=accept)
