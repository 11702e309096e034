"""Cosigner: the public record a keyholder hands over (master fingerprint, derivation path, xpub).

Rendered and parsed as a descriptor key origin: ``[f00dbabe/48h/1h/0h/2h]tpubD6Nz...``.

A record whose origin does not fit its xpub (wrong depth, child number or fingerprint, or no
origin at all) is refused unless the caller accepts the deviation: :meth:`Cosigner.unchecked_origin`
builds such a record and lists what is wrong in ``origin_issues``. Other wallets write these records
(Jade, Cobo, Caravan, Sparrow); such a vault can be watched and its addresses derived, but the
keyholder whose own record is wrong cannot sign until it is corrected (the signer derives the key at
the record's path and compares).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Iterable, Sequence

from ..errors import InvalidKey, NetworkMismatch
from ..network import Network
from .bip32 import ExtendedKey, PublicDeriver
from .keyexpr import KeyExpression, parse_key_expression
from .paths import HARDENED, check_path, format_path, parse_path


UNKNOWN_FINGERPRINT = bytes(4)  # "00000000": what Caravan and Sparrow write for an unknown master fingerprint


class OriginIssue(str, Enum):
    """Ways a cosigner record's key origin can disagree with its xpub (or be unknown)."""

    UNKNOWN = "origin-unknown"  # no origin: recorded as its own root (its own fingerprint, path m)
    FINGERPRINT_UNKNOWN = "fingerprint-unknown"  # a path but no master fingerprint (00000000, or the key's own)
    DEPTH = "origin-depth-mismatch"  # the xpub's depth is not the path length
    CHILD = "origin-child-mismatch"  # the xpub's child number is not the path's last step
    FINGERPRINT = "origin-fingerprint-mismatch"  # a master/depth-1 key names another fingerprint


@dataclass(frozen=True)
class Cosigner:
    """One keyholder's public key record.

    ``fingerprint`` is the master key fingerprint (4 bytes), ``path`` the account derivation path
    from the master key, ``xpub`` the account-level extended public key, normalised to the plain
    ``xpub``/``tpub`` version. Invariants checked at construction: the key is public, its depth is
    the path length, its child number is the path's last step, and a depth-0/1 key's own/parent
    fingerprint is the master fingerprint. ``origin_issues`` lists the origin checks the caller
    accepts to fail (see :meth:`unchecked_origin`); after construction it holds the ones that did.
    """

    fingerprint: bytes
    path: "tuple[int, ...]"
    xpub: str
    _key: "ExtendedKey | None" = field(repr=False, compare=False, hash=False, default=None)
    origin_issues: "tuple[OriginIssue, ...]" = field(default=(), compare=False, hash=False)

    def __post_init__(self) -> None:
        fp = self.fingerprint
        if isinstance(fp, str):
            fp = _parse_fingerprint(fp)
            object.__setattr__(self, "fingerprint", fp)
        if not isinstance(fp, bytes) or len(fp) != 4:
            raise InvalidKey("a master fingerprint is 4 bytes (8 hex digits)", field="fingerprint")
        path = check_path(self.path)
        object.__setattr__(self, "path", path)
        if not isinstance(self.xpub, str):
            raise InvalidKey(f"xpub must be a base58 extended public key string, not {type(self.xpub).__name__}",
                             field="xpub")
        if self._key is not None and not isinstance(self._key, ExtendedKey):
            raise InvalidKey("_key must be the ExtendedKey parsed from xpub, or None", field="_key")
        if isinstance(self.origin_issues, (str, OriginIssue)) or not isinstance(self.origin_issues, (tuple, list, set, frozenset)):
            raise InvalidKey("origin_issues must be a tuple of OriginIssue values", field="origin_issues")
        key = self._key or ExtendedKey.parse(self.xpub)
        if key.is_private:
            raise InvalidKey(
                f"the key for cosigner {fp.hex()} is a private extended key ({key.prefix}...): "
                "a cosigner record must hold only the public key; never share the private one"
            )
        accepted = _origin_issue_set(self.origin_issues)
        found = origin_problems(fp, path, key)
        for issue, message in found:
            if issue not in accepted:
                raise InvalidKey(message)
        object.__setattr__(self, "origin_issues", tuple(issue for issue, _ in found))
        normal = key.neuter()  # plain xpub/tpub version, even if given as SLIP-132 Zpub etc.
        object.__setattr__(self, "_key", normal)
        object.__setattr__(self, "xpub", normal.to_base58())

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def unchecked_origin(cls, fingerprint: "bytes | str | None", path: "str | Sequence[int] | None",
                         xpub: str) -> "Cosigner":
        """A record whose origin may disagree with its xpub; what disagrees is in ``origin_issues``.

        The key must still be a valid public extended key. ``fingerprint=None`` (unknown) records
        the key's own fingerprint: with ``path=None`` too the key is its own root (path ``m``),
        which is what BIP380 and Bitcoin Core mean by a key without an origin; with a path it marks
        the master fingerprint as unknown (no key's master has the key's own fingerprint). Unlike the
        ``00000000`` placeholder Caravan and Sparrow write, it keeps two unknown keys distinct.
        """
        if fingerprint is None:
            fp = ExtendedKey.parse(xpub).fingerprint
        else:
            fp = _parse_fingerprint(fingerprint) if isinstance(fingerprint, str) else fingerprint
        steps = () if path is None else check_path(path)
        return cls(fp, steps, xpub, origin_issues=tuple(OriginIssue))

    @classmethod
    def parse(cls, text: str, *, network: "Network | None" = None) -> "Cosigner":
        """Parse ``[fingerprint/path]xpub`` (BIP380 key origin syntax; hardened steps ``h`` or ``'``).

        A bare master xpub (depth 0) needs no origin. With ``network``, the key's version must
        belong to that network.
        """
        if not isinstance(text, str):
            raise InvalidKey("a cosigner record is a string like [f00dbabe/48h/1h/0h/2h]tpub...")
        expr = parse_key_expression(text.strip())
        if expr.steps or expr.wildcard:
            raise InvalidKey(
                "a cosigner record ends at the account xpub: remove the derivation steps after it"
            )
        c = cls.from_key_expression(expr)
        if network is not None:
            c.check_network(network)
        return c

    @classmethod
    def from_key_expression(cls, expr: KeyExpression, *, check_origin: bool = True) -> "Cosigner":
        """The cosigner of a parsed key expression (its derivation steps are ignored).

        ``check_origin=False`` accepts an origin that disagrees with the xpub, or none, and records
        it in ``origin_issues`` (see :meth:`unchecked_origin`).
        """
        if expr.kind not in ("xpub", "xprv"):
            raise InvalidKey(
                "a vault cosigner is an extended public key (xpub/tpub) with its key origin, not a "
                + ("raw public key" if expr.kind == "pubkey" else "private key")
            )
        key = ExtendedKey.parse(expr.key)
        if not check_origin:
            return cls.unchecked_origin(expr.fingerprint, expr.origin_path if expr.fingerprint else None,
                                        key.to_base58())
        if expr.fingerprint is None:
            if key.depth != 0:
                raise InvalidKey(
                    f"the key {expr.key[:12]}... has depth {key.depth} but no key origin: add "
                    "[master fingerprint/derivation path] in front so signers can find their keys"
                )
            return cls(key.fingerprint, (), key.to_base58(), key)
        return cls(expr.fingerprint, expr.origin_path, key.to_base58(), key)

    @classmethod
    def from_root(cls, root: ExtendedKey, path: "str | Sequence[int]", network: Network) -> "Cosigner":
        """The cosigner record of ``root`` (a master private key) at account ``path``."""
        steps = check_path(path)
        account = root.derive(steps).neuter(network)
        return cls(root.fingerprint, steps, account.to_base58(), account)

    # -- views -----------------------------------------------------------------------------------

    @property
    def key(self) -> ExtendedKey:
        """The account-level extended public key (parsed once, at construction)."""
        key = self._key
        assert key is not None  # __post_init__ always sets it
        return key

    @property
    def is_mainnet(self) -> bool:
        return self.key.is_mainnet

    @property
    def public_key(self) -> bytes:
        """The account-level public key; cosigners are compared by it."""
        return self.key.public_key

    @property
    def origin_verified(self) -> bool:
        """True when the key origin fits the xpub (no accepted deviation)."""
        return not self.origin_issues

    def origin(self, hardened_marker: str = "h") -> str:
        """``[f00dbabe/48h/1h/0h/2h]``; empty for a record with no known origin (a bare xpub)."""
        if OriginIssue.UNKNOWN in self.origin_issues:
            return ""
        steps = format_path(self.path, prefix="", hardened_marker=hardened_marker)
        return f"[{self.fingerprint.hex()}{'/' + steps if steps else ''}]"

    def __str__(self) -> str:
        return self.origin() + self.xpub

    def check_network(self, network: Network) -> None:
        if self.is_mainnet != network.is_mainnet:
            kind = "mainnet (xpub)" if self.is_mainnet else "test-network (tpub)"
            raise NetworkMismatch(
                f"cosigner {self.fingerprint.hex()} has a {kind} key, but the vault is on {network.name}"
            )

    @cached_property
    def _branch_derivers(self) -> "dict[int, PublicDeriver]":
        return {}

    def branch(self, branch: int) -> PublicDeriver:
        """A fast deriver for ``xpub/branch`` (cached)."""
        d = self._branch_derivers.get(branch)
        if d is None:
            d = PublicDeriver(self.key).child(branch)
            self._branch_derivers[branch] = d
        return d

    def pubkey_at(self, branch: int, index: int) -> bytes:
        return self.branch(branch).child_pubkey(index)


def origin_problems(fp: bytes, path: "tuple[int, ...]", key: ExtendedKey) -> "list[tuple[OriginIssue, str]]":
    """Every way the origin (``fp``, ``path``) disagrees with ``key``, each with a message."""
    who = f"cosigner {fp.hex()}"
    if fp == key.fingerprint and not path and key.depth != 0:
        return [(OriginIssue.UNKNOWN, (
            f"the key {key.to_base58()[:12]}... has depth {key.depth} but no key origin: add "
            "[master fingerprint/derivation path] in front so signers can find their keys"))]
    out = []
    unknown_fp = key.depth != 0 and fp in (UNKNOWN_FINGERPRINT, key.fingerprint)
    if unknown_fp:
        out.append((OriginIssue.FINGERPRINT_UNKNOWN, (
            f"{who}: the master fingerprint is unknown (the file gives none); signers find their keys by it")))
    if key.depth != len(path):
        out.append((OriginIssue.DEPTH, (
            f"{who}: the xpub has depth {key.depth} but the key origin path {format_path(path)} has "
            f"{len(path)} steps; the path or the xpub is wrong")))
    if key.depth == 0 and key.fingerprint != fp:
        out.append((OriginIssue.FINGERPRINT, (
            f"{who}: this is a master key whose own fingerprint is {key.fingerprint.hex()}; the record's "
            "fingerprint is wrong")))
    if key.depth == 1 and key.parent_fingerprint != fp and not unknown_fp:
        out.append((OriginIssue.FINGERPRINT, (
            f"{who}: the xpub's parent fingerprint is {key.parent_fingerprint.hex()}, not the master "
            "fingerprint given; the record mixes keys from different seeds")))
    if path and key.child_number != path[-1]:
        out.append((OriginIssue.CHILD, (
            f"{who}: the xpub is child {_step(key.child_number)} but the path ends in {_step(path[-1])}; "
            "the path or the xpub is wrong")))
    return out


def _origin_issue_set(values: "Iterable[OriginIssue | str]") -> "set[OriginIssue]":
    out = set()
    for v in values:
        try:
            out.add(OriginIssue(v))
        except ValueError:
            raise InvalidKey(f"unknown origin issue {v!r}: use OriginIssue values", field="origin_issues") from None
    return out


def _parse_fingerprint(text: str) -> bytes:
    t = text.strip().lower()
    if len(t) != 8 or any(c not in "0123456789abcdef" for c in t):
        raise InvalidKey(f"a master fingerprint is 8 hex digits, got {text!r}")
    return bytes.fromhex(t)


def _step(i: int) -> str:
    return f"{i - HARDENED}h" if i >= HARDENED else str(i)
