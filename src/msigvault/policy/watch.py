"""Watch-only multisig descriptors beyond the vault shape (issue 18, item 5; docs/descriptors.md).

A :class:`~msigvault.policy.vault.Vault` is the ceremony-ready policy a keyholder registers and
signs for: xpubs with origins, ``/<0;1>/*``. Custody also meets multisig outputs no ceremony
made: a legacy ``sh(multi)`` of raw keys, a seized static-key P2SH, an xpub with a fixed path
(``xpub.../1/2``), keys with different suffixes, a ``tr()`` ``multi_a`` of x-only keys, a
miniscript policy of another wallet. :class:`Watched` reads any of them with the one descriptor
parser and derives their scripts and addresses, so they can be watched (scanned through a
backend: ``msigvault.backends.watch.scan_watched``) but never signed for: it is not a Vault,
and every signer entry point refuses anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from ..errors import InvalidDescriptor, NetworkMismatch
from ..network import Network
from .descriptors import Descriptor, DescriptorKey, Multi, Sh, TapBranch, Tr, Wsh
from .miniscript import Miniscript

HARDENED = 0x80000000
#: the most addresses one call derives
MAX_COUNT = 100_000


@dataclass(frozen=True)
class Watched:
    """A watch-only multisig descriptor on one network: scripts and addresses per branch and
    index (``branches`` multipath branches; ``is_range`` False: one script per branch)."""

    descriptor: Descriptor
    network: Network

    @classmethod
    def parse(cls, text: str, *, network: "Network | str", require_checksum: bool = False) -> "Watched":
        """Read ``text`` (its checksum verified when present); InvalidDescriptor for a descriptor
        that is not multisig (sh/wsh/sh-wsh multi or sortedmulti, bare multi, tr multi_a or a
        script tree, wsh miniscript) or that cannot be derived without private keys;
        NetworkMismatch for extended keys of the other kind of network."""
        if not isinstance(text, str):
            raise InvalidDescriptor("a descriptor is text")
        net = Network.from_name(network) if not isinstance(network, Network) else network
        desc = Descriptor.parse(text, require_checksum=require_checksum)
        _check_shape(desc)
        for i, k in enumerate(desc.keys, 1):
            _check_key(k, i, net)
        return cls(desc, net)

    @property
    def kind(self) -> str:
        """The shape in a few words: ``wsh(sortedmulti 2-of-3)``, ``sh(multi 1-of-2)``, ``tr(tree of 3 leaves)``."""
        return _kind(self.descriptor.node)

    @property
    def is_range(self) -> bool:
        return self.descriptor.is_range

    @property
    def branches(self) -> int:
        return self.descriptor.branches

    def text(self, branch: "int | None" = None) -> str:
        """The descriptor (one branch's single-path descriptor when ``branch`` is given)."""
        d = self.descriptor if branch is None else self.descriptor.branch(branch)
        return d.descriptor()

    def _single(self, branch: int) -> Descriptor:
        """The single-path descriptor of ``branch`` (keys without multipath serve every branch)."""
        if self.branches == 1:
            return self.descriptor
        cache: "dict[int, Descriptor]" = self.__dict__.setdefault("_branches", {})
        if branch not in cache:
            cache[branch] = self.descriptor.branch(branch)
        return cache[branch]

    def script_pubkey(self, index: int = 0, branch: int = 0) -> bytes:
        if isinstance(branch, bool) or not isinstance(branch, int) or not 0 <= branch < self.branches:
            raise InvalidDescriptor(f"this descriptor has {self.branches} branch(es): branch must be 0.."
                                    f"{self.branches - 1}, not {branch!r}")
        return self._single(branch).script_pubkey(index, 0)

    def address(self, index: int = 0, branch: int = 0) -> "str | None":
        """The address at ``index`` on ``branch``; None for bare ``multi()``, which has none."""
        from ..address import address_from_script

        if isinstance(self.descriptor.node, Multi):
            self.script_pubkey(index, branch)  # (checks index and branch)
            return None
        return address_from_script(self.script_pubkey(index, branch), self.network)

    def addresses(self, start: int = 0, count: int = 1, branch: int = 0) -> "list[tuple[int, str | None]]":
        """[(index, address)] for ``count`` indexes from ``start`` (one for a non-ranged descriptor)."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise InvalidDescriptor(f"count must be from 1 to {MAX_COUNT:,}, not {count!r}")
        if not self.is_range:
            return [(0, self.address(0, branch))]
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start or start + count > HARDENED:
            raise InvalidDescriptor(f"indexes run from 0 to 2^31-1: start {start!r}, count {count}")
        return [(i, self.address(i, branch)) for i in range(start, start + count)]


def _is_multisig(node: object) -> bool:
    if isinstance(node, Multi):
        return True
    if isinstance(node, Sh):
        return _is_multisig(node.inner)
    if isinstance(node, Wsh):
        return isinstance(node.inner, (Multi, Miniscript))
    if isinstance(node, Tr):
        return node.tree is not None
    return False


def _check_shape(desc: Descriptor) -> None:
    node = desc.node
    if not _is_multisig(node):
        raise InvalidDescriptor(
            f"{_kind(node)} is not a multisig descriptor: msigvault watches sh(multi), sh(wsh(multi)), "
            "wsh(multi) (and sortedmulti), bare multi, wsh(miniscript) and tr() with a script tree "
            "(multi_a, sortedmulti_a, miniscript leaves)")


def _check_key(k: DescriptorKey, i: int, net: Network) -> None:
    if k.kind != "xpub":
        return
    if k.wildcard == "*h" or any(step >= HARDENED for path in k.paths for step in path):
        raise InvalidDescriptor(f"key {i} has a hardened step after its extended key: watch-only derivation "
                                "needs unhardened steps (give the xpub at that path instead)")
    mainnet = k.key.startswith("xpub")
    if mainnet != net.is_mainnet:
        raise NetworkMismatch(f"key {i} is a {'mainnet' if mainnet else 'test-network'} extended key, but the "
                              f"descriptor is watched on {net.name}: give the right --network")


def _kind(node: object) -> str:
    if isinstance(node, Multi):
        return f"{node.name} {node.threshold}-of-{len(node.keys)}"
    if isinstance(node, Sh):
        return f"sh({_kind(node.inner)})"
    if isinstance(node, Wsh):
        return f"wsh({_kind(node.inner)})"
    if isinstance(node, Miniscript):
        return "miniscript"
    if isinstance(node, Tr):
        if node.tree is None:
            return "tr(key only)"
        if isinstance(node.tree, TapBranch):
            return f"tr(tree of {len(node.leaves())} leaves)"
        return f"tr({_kind(node.tree)})"
    return type(node).__name__.lower()


def parse_watched(text: str, *, network: "Network | str", require_checksum: bool = False) -> Watched:
    """:meth:`Watched.parse`."""
    return Watched.parse(text, network=network, require_checksum=require_checksum)


__all__ = ["Watched", "parse_watched", "MAX_COUNT"]
