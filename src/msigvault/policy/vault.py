"""Vault: an m-of-n multisig policy over cosigners -> descriptors, scripts and addresses.

Script types (:class:`~msigvault.ScriptType`, a ``str`` enum): ``sh`` (P2SH), ``sh-wsh``
(P2SH-P2WSH), ``wsh`` (P2WSH) and ``tr`` (taproot with an unspendable internal key and one
``multi_a``/``sortedmulti_a`` leaf). Receive addresses derive from
branch 0 of every cosigner's account key, change addresses from branch 1 (``/<0;1>/*``).
A ``wsh`` or ``tr`` vault may add timelocked recovery paths (:mod:`.recovery`, docs/recovery.md).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import MISSING, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from embit.hashes import tagged_hash
from embit.util import secp256k1 as _secp

from ..address import address_from_script
from ..errors import InvalidDescriptor, NetworkMismatch, PolicyError
from .. import secp as _fast
from ..keys.cosigner import Cosigner
from ..keys.paths import HARDENED, coin_type_problem, separation_problem
from ..network import Network
from ..scripttypes import ScriptType, ScriptTypeLike
from ..script import (
    compact_size,
    multi_a_script,
    multisig_script,
    p2sh_script_pubkey,
    p2tr_script_pubkey,
    p2wsh_script_pubkey,
    tapleaf_hash,
)
from .checksum import add_checksum
from .recovery import Recovery, RecoveryPath, Timelock, check_recovery, descriptor_body, place, policy_text, templates

if TYPE_CHECKING:
    from ..keys.bip32 import ExtendedKey
    from ..psbt.extractor import FinalTx
    from ..psbt.psbt import Psbt
    from ..psbt.signer import SigningSummary
    from ..types import Utxo

SCRIPT_TYPES: "tuple[ScriptType, ...]" = tuple(ScriptType)
MAX_KEYS: "dict[ScriptType, int]" = {t: t.max_keys for t in ScriptType}
RECEIVE, CHANGE = 0, 1
_WRAPPERS = {ScriptType.SH: "sh({})", ScriptType.SH_WSH: "sh(wsh({}))", ScriptType.WSH: "wsh({})"}

# BIP341's provably unspendable point H = lift_x(sha256(G uncompressed)): no one knows its
# discrete log, so the vault can only be spent through its multisig leaf.
NUMS_H = bytes.fromhex("50929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0")


class Deviation(str, enum.Enum):
    """A departure from the rules a vault is built to, accepted only when named explicitly.

    A vault refuses each of these at construction unless it is listed in ``accept``; the
    keyholder's registration signs the accepted set, so a changed set is caught before signing.
    """

    #: a BIP44-family path whose coin type is not the network's (e.g. Keystone's mainnet xpubs
    #: under m/48'/1'/...)
    COIN_TYPE_MISMATCH = "coin-type-mismatch"
    #: a test-network vault whose keys sit at a path without the test coin type (BIP45 m/45',
    #: a master key): the same seed signs for mainnet with those keys
    UNSEPARATED_TEST_KEYS = "unseparated-test-keys"
    #: one master fingerprint (one seed) in two cosigner slots: that keyholder alone counts twice
    SHARED_SEED = "shared-seed"


@dataclass(frozen=True)
class TapLeaf:
    """One leaf of a tr vault with recovery paths: its script, hash, control block, the
    positions (in ``DerivedScript.pubkeys``) of its keys in script order, and its path (0 the
    primary path, i the vault's recovery path i)."""

    script: bytes
    leaf_hash: bytes
    control_block: bytes
    keys: "tuple[int, ...]"
    path: int


@dataclass(frozen=True)
class DerivedScript:
    """Everything about the vault's script at one (branch, index).

    ``pubkeys`` are the derived 33-byte keys in script order; ``signers[i]`` is the position in
    ``Vault.cosigners`` of the cosigner owning ``pubkeys[i]``.
    """

    script_type: ScriptType
    branch: int
    index: int
    pubkeys: "tuple[bytes, ...]"
    signers: "tuple[int, ...]"
    script_pubkey: bytes
    network: Network
    redeem_script: Optional[bytes] = None  # sh, sh-wsh
    witness_script: Optional[bytes] = None  # wsh, sh-wsh
    leaf_script: Optional[bytes] = None  # tr
    leaf_hash: Optional[bytes] = None  # tr
    output_key_parity: Optional[int] = None  # tr: 0 even, 1 odd (for the control block)
    #: tr with recovery paths: every leaf (the primary first; leaf_script/leaf_hash are its);
    #: pubkeys are then every cosigner's key in cosigner order
    leaves: "tuple[TapLeaf, ...]" = ()
    merkle_root: Optional[bytes] = None  # tr with recovery paths: the script tree's root

    @property
    def tap_merkle_root(self) -> Optional[bytes]:
        """The taproot merkle root (the single leaf's hash for a plain tr vault)."""
        return self.merkle_root if self.leaves else self.leaf_hash

    def leaf_hashes_of(self, pos: int) -> "tuple[bytes, ...]":
        """Leaf hashes of the leaves holding ``pubkeys[pos]`` (tr), in tree order."""
        if not self.leaves:
            return (self.leaf_hash,) if self.leaf_hash is not None else ()
        return tuple(leaf.leaf_hash for leaf in self.leaves if pos in leaf.keys)

    def tap_leaf_hashes(self, xonly: bytes) -> "tuple[bytes, ...]":
        """Leaf hashes of the leaves holding x-only key ``xonly`` (tr; () for another key)."""
        table: "dict[bytes, tuple[bytes, ...]] | None" = self.__dict__.get("_tap_leaf_hashes")
        if table is None:  # built once per derived script (the vault keeps those)
            table = {pk[1:]: self.leaf_hashes_of(pos) for pos, pk in enumerate(self.pubkeys)}
            self.__dict__["_tap_leaf_hashes"] = table
        return table.get(bytes(xonly), ())

    @property
    def tap_leaf_entries(self) -> "frozenset[tuple[bytes, bytes]]":
        """(control block, leaf script + leaf version) of every leaf: PSBT_IN_TAP_LEAF_SCRIPT's records."""
        if not self.leaves:
            if self.leaf_script is None or self.control_block is None:
                return frozenset()
            return frozenset({(self.control_block, self.leaf_script + b"\xc0")})
        return frozenset((leaf.control_block, leaf.script + b"\xc0") for leaf in self.leaves)

    @property
    def tap_tree(self) -> Optional[bytes]:
        """BIP371 PSBT_OUT_TAP_TREE: (depth, leaf version, script) per leaf, in tree order."""
        if self.leaf_script is None:
            return None
        if not self.leaves:
            depths = [(0, self.leaf_script)]
        else:
            last = len(self.leaves) - 1
            depths = [(min(i + 1, last), leaf.script) for i, leaf in enumerate(self.leaves)]
        return b"".join(bytes([depth, 0xC0]) + compact_size(len(script)) + script for depth, script in depths)

    @property
    def address(self) -> str:
        return address_from_script(self.script_pubkey, self.network)

    @property
    def control_block(self) -> Optional[bytes]:
        """tr: the BIP341 control block for the single leaf (leaf version | parity, internal key)."""
        if self.leaf_script is None or self.output_key_parity is None:
            return None
        if self.leaves:
            return self.leaves[0].control_block
        return bytes([0xC0 | self.output_key_parity]) + NUMS_H

    @property
    def xonly_pubkeys(self) -> "tuple[bytes, ...]":
        return tuple(pk[1:] for pk in self.pubkeys)


_DERIVED_DEFAULTS = {f.name: f.default for f in dataclass_fields(DerivedScript) if f.default is not MISSING}


def _new_derived(script_type: ScriptType, branch: int, index: int, pubkeys: "tuple[bytes, ...]",
                 signers: "tuple[int, ...]", script_pubkey: bytes, network: Network, **optional: Any) -> DerivedScript:
    """``DerivedScript(...)`` without the generated frozen ``__init__`` (one ``object.__setattr__``
    per field, most of the cost of rebuilding a script from known keys); the same value."""
    d: DerivedScript = object.__new__(DerivedScript)
    d.__dict__.update(_DERIVED_DEFAULTS, script_type=script_type, branch=branch, index=index, pubkeys=pubkeys,
                      signers=signers, script_pubkey=script_pubkey, network=network, **optional)
    return d


@dataclass(frozen=True)
class Vault:
    """An m-of-n multisig vault. Build one with :meth:`Vault.multisig` or :meth:`from_descriptor`.

    Invariants are checked at construction: 1 <= m <= n <= the script type's limit, no cosigner
    appears twice (compared by public key, and by fingerprint + path), every key belongs to
    ``network``. The :class:`Deviation` rules (coin type, test-key separation, one seed in two
    slots) are refused too unless named in ``accept``; ``deviations`` lists the ones present.

    ``recovery`` holds timelocked recovery paths (wsh and tr only; see docs/recovery.md). Then
    ``cosigners`` lists every keyholder: the first ``primary_n`` are the primary m-of-n path
    (``n``), the rest are keys only recovery paths use. Without recovery paths nothing changes.
    """

    m: int
    cosigners: "tuple[Cosigner, ...]"
    script: ScriptType
    sorted: bool
    network: Network
    accept: "frozenset[Deviation]" = field(default=frozenset(), compare=False, kw_only=True)
    recovery: "tuple[RecoveryPath, ...]" = field(default=(), kw_only=True)
    primary_n: "int | None" = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cosigners", _cosigner_tuple(self.cosigners))
        object.__setattr__(self, "script", ScriptType.parse(self.script))
        _check_bool(self.sorted, "sorted")
        object.__setattr__(self, "accept", _deviation_set(self.accept))
        if isinstance(self.recovery, (str, bytes, RecoveryPath)) or not isinstance(self.recovery, Iterable):
            raise PolicyError("recovery must be a list of RecoveryPath values", field="recovery")
        object.__setattr__(self, "recovery", tuple(self.recovery))
        n = self.primary_n
        if not self.recovery:
            if n is not None and n != len(self.cosigners):
                raise PolicyError("primary_n is only for vaults with recovery paths", field="primary_n")
            object.__setattr__(self, "primary_n", None)
        elif isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self.cosigners):
            raise PolicyError(f"primary_n must be the number of primary cosigners (1 to {len(self.cosigners)}), "
                              f"not {n!r}", field="primary_n")
        _check_policy(self.m, self.cosigners, self.script, self.network, self.n)
        if self.recovery:
            check_recovery(self)
        found = deviations_of(self.cosigners, self.network)
        for kind, problem in found.items():
            if kind not in self.accept:
                raise (NetworkMismatch if kind is not Deviation.SHARED_SEED else PolicyError)(
                    f"{problem}; if this is really intended, accept it explicitly "
                    f"(accept={{'{kind.value}'}}; on the command line --accept {kind.value})"
                )
        object.__setattr__(self, "_deviations", tuple(found.values()))

    @property
    def deviations(self) -> "tuple[str, ...]":
        """What this vault departs from (each one accepted explicitly), as sentences."""
        found: "tuple[str, ...]" = self.__dict__["_deviations"]
        return found

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def multisig(cls, m: int, cosigners: "Iterable[Cosigner | str]", *, script: ScriptTypeLike = ScriptType.WSH,
                 sorted: "bool | None" = None, network: "Network | str | None" = None,
                 accept: "Iterable[Deviation | str] | Deviation | str" = (),
                 recovery: "Iterable[Recovery]" = ()) -> "Vault":
        """An m-of-n vault. ``cosigners`` are Cosigner records or ``[fp/path]xpub`` strings.

        ``script`` is a :class:`ScriptType` or its name (``"wsh"``, ...). ``network`` is required
        for test networks (tpub keys serve testnet, signet and regtest). ``accept`` names the
        :class:`Deviation` rules this vault may break. ``recovery`` adds timelocked
        :class:`~msigvault.policy.recovery.Recovery` paths (wsh, tr). ``sorted`` defaults to
        True, except for wsh with recovery paths (miniscript has no sortedmulti). Every argument
        is checked here, before any key is parsed: a mistake raises PolicyError (or InvalidKey,
        NetworkMismatch) naming it.
        """
        kind = ScriptType.parse(script)
        wanted = tuple(recovery) if not isinstance(recovery, (str, Recovery)) and isinstance(recovery, Iterable) else None
        if wanted is None:
            raise PolicyError("recovery must be a list of Recovery(threshold, cosigners, lock) values", field="recovery")
        if sorted is None:
            sorted = not (wanted and kind is ScriptType.WSH)
        _check_bool(sorted, "sorted")
        _check_threshold_type(m)
        parsed = tuple(c if isinstance(c, Cosigner) else Cosigner.parse(c) for c in _cosigner_tuple(cosigners))
        everyone, paths = place(parsed, wanted)
        net = _resolve_network(network, everyone)
        return cls(m, everyone, kind, sorted, net, accept=_deviation_set(accept), recovery=paths,
                   primary_n=len(parsed) if paths else None)

    @classmethod
    def from_descriptor(cls, text: str, *, network: "Network | str | None" = None,
                        require_checksum: bool = True, accept: "Iterable[Deviation | str]" = ()) -> "Vault":
        """Parse a vault descriptor (multipath ``/<0;1>/*``, or a single ``/0/*`` or ``/1/*`` one).

        The checksum is verified; a descriptor without one is accepted only with
        ``require_checksum=False``.
        """
        from .descriptors import parse_descriptor

        if not isinstance(text, str):
            raise InvalidDescriptor("a descriptor is a string", field="text")
        _check_bool(require_checksum, "require_checksum")
        desc = parse_descriptor(text.strip(), require_checksum=require_checksum, only_multipath="0;1")
        try:
            vault: Vault = desc.to_vault(network=network, accept=accept)
        except InvalidDescriptor:
            from .descriptors import TapBranch, Tr, Wsh
            from .miniscript import Miniscript
            from .recovery import from_descriptor_node

            node = desc.node
            if not (isinstance(node, Wsh) and isinstance(node.inner, Miniscript)
                    or isinstance(node, Tr) and isinstance(node.tree, TapBranch)):
                raise
            return from_descriptor_node(node, network, accept)
        return vault

    # -- descriptors -----------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Number of keys of the primary m-of-n path (every cosigner, without recovery paths)."""
        return self.primary_n if self.primary_n is not None else len(self.cosigners)

    def descriptor(self, branch: "int | None" = None, *, checksum: bool = True) -> str:
        """The output descriptor: multipath ``/<0;1>/*`` by default, or one branch (0 or 1)."""
        if branch is None:
            suffix = "/<0;1>/*"
        elif branch in (RECEIVE, CHANGE):
            suffix = f"/{branch}/*"
        else:
            raise PolicyError("branch must be 0 (receive), 1 (change) or None (both, multipath)")
        if self.recovery:
            body = descriptor_body(self, suffix)
            return add_checksum(body) if checksum else body
        keys = ",".join(f"{c}{suffix}" for c in self.cosigners)
        if self.script is ScriptType.TR:
            inner = f"{'sortedmulti_a' if self.sorted else 'multi_a'}({self.m},{keys})"
            desc = f"tr({NUMS_H.hex()},{inner})"
        else:
            inner = f"{'sortedmulti' if self.sorted else 'multi'}({self.m},{keys})"
            desc = _WRAPPERS[self.script].format(inner)
        return add_checksum(desc) if checksum else desc

    def descriptors(self) -> "tuple[str, str]":
        """The receive and change single-path descriptors (BIP389 expansion of the multipath one)."""
        return self.descriptor(RECEIVE), self.descriptor(CHANGE)

    @property
    def policy_id(self) -> str:
        """A 256-bit identity of the spending policy, independent of cosigner order when sorted.

        Use it (not the 40-bit descriptor checksum) to check two parties hold the same vault.
        """
        keys = [c.origin() + c.xpub for c in self.cosigners]
        if self.sorted:
            keys.sort()
        text = f"msigvault-policy-v1|{self.script}|{self.m}|{int(self.sorted)}|{self.network.coin_type}|" + "|".join(keys)
        if self.recovery:  # the primary keys in script order (no sorting in wsh), then each path
            primary = [c.origin() + c.xpub for c in self.cosigners[: self.n]]
            text = (f"msigvault-policy-v2|{self.script}|{self.m}|{int(self.sorted)}|{self.network.coin_type}|"
                    + "|".join(sorted(primary) if self.sorted else primary) + policy_text(self))
        return hashlib.sha256(text.encode()).hexdigest()

    def same_policy(self, other: "Vault") -> bool:
        """True if ``other`` spends with the same keys under the same rule (order-insensitive when sorted)."""
        return self.network == other.network and self.policy_id == other.policy_id

    # -- derivation ------------------------------------------------------------------------------

    def derive(self, index: int, *, change: bool = False) -> DerivedScript:
        """Scripts and address at ``index`` on the receive (or change) branch."""
        branch = CHANGE if change else RECEIVE
        return self._derive(branch, index)

    def derive_branch(self, branch: int, index: int) -> DerivedScript:
        if branch not in (RECEIVE, CHANGE):
            raise PolicyError(f"vault branch must be 0 (receive) or 1 (change), not {branch}")
        return self._derive(branch, index)

    def _derive(self, branch: int, index: int) -> DerivedScript:
        cache: "dict[tuple[int, int], DerivedScript]" = self.__dict__.setdefault("_derived", {})
        d = cache.get((branch, index))
        if d is None:
            if len(cache) >= _DERIVE_CACHE_SIZE:
                cache.clear()
            d = cache[(branch, index)] = self._derive_uncached(branch, index)
        return d

    def _derive_uncached(self, branch: int, index: int) -> DerivedScript:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < HARDENED:
            raise PolicyError(f"address index must be an integer from 0 to 2^31-1, got {index!r}")
        row = None
        for _, loaded in self.__dict__.get("_loaded_keys", ()):  # derived-key records (policy/derived.py)
            row = loaded.row((branch, index))
            if row is not None:
                break
        if row is not None:
            keys: "Sequence[bytes]" = row
        else:
            keys = [c.pubkey_at(branch, index) for c in self.cosigners]
            computed: "dict[tuple[int, int], tuple[bytes, ...]]" = self.__dict__.setdefault("_computed_keys", {})
            if len(computed) < _COMPUTED_KEYS_SIZE:
                computed[(branch, index)] = tuple(keys)
        if self.recovery:
            return self._derive_recovery(branch, index, list(keys))
        order = list(range(len(keys)))
        if self.script is ScriptType.TR:
            if self.sorted:
                order.sort(key=lambda i: keys[i][1:])
            pubkeys = tuple(keys[i] for i in order)
            leaf = multi_a_script(self.m, [pk[1:] for pk in pubkeys])
            lh = tapleaf_hash(leaf)
            tweak = tagged_hash("TapTweak", NUMS_H + lh)
            q = _tweaked_nums(tweak)
            spk = p2tr_script_pubkey(q[1:])
            return _new_derived(ScriptType.TR, branch, index, pubkeys, tuple(order), spk, self.network,
                                leaf_script=leaf, leaf_hash=lh, output_key_parity=q[0] - 2)
        if self.sorted:
            order.sort(key=keys.__getitem__)
        pubkeys = tuple([keys[i] for i in order])
        ms = multisig_script(self.m, pubkeys)
        if self.script is ScriptType.WSH:
            return _new_derived(ScriptType.WSH, branch, index, pubkeys, tuple(order), p2wsh_script_pubkey(ms),
                                self.network, witness_script=ms)
        if self.script is ScriptType.SH_WSH:
            redeem = p2wsh_script_pubkey(ms)
            spk = p2sh_script_pubkey(redeem)
            return _new_derived(ScriptType.SH_WSH, branch, index, pubkeys, tuple(order), spk, self.network,
                                redeem_script=redeem, witness_script=ms)
        spk = p2sh_script_pubkey(ms)
        return _new_derived(ScriptType.SH, branch, index, pubkeys, tuple(order), spk, self.network,
                            redeem_script=ms)

    def _derive_recovery(self, branch: int, index: int, keys: "list[bytes]") -> DerivedScript:
        """Scripts of a vault with recovery paths: pubkeys in cosigner order (signers 0..)."""
        pubkeys, signers = tuple(keys), tuple(range(len(keys)))
        if self.script is ScriptType.WSH:
            ws = templates(self)[0].to_script(lambda pos: keys[pos])
            return DerivedScript(ScriptType.WSH, branch, index, pubkeys, signers, p2wsh_script_pubkey(ws),
                                 self.network, witness_script=ws)
        primary = list(range(self.n))
        if self.sorted:
            primary.sort(key=lambda i: keys[i][1:])
        scripts = [(multi_a_script(self.m, [keys[i][1:] for i in primary]), tuple(primary))]
        scripts += [(ms.to_script(lambda pos: keys[pos]), p.keys) for ms, p in zip(templates(self), self.recovery)]
        hashes = [tapleaf_hash(s) for s, _ in scripts]
        subtree = hashes[:]  # subtree[i]: the hash of {leaf i, {leaf i+1, ...}}
        for i in range(len(hashes) - 2, -1, -1):
            a, b = hashes[i], subtree[i + 1]
            subtree[i] = tagged_hash("TapBranch", min(a, b) + max(a, b))
        root = subtree[0]
        q = _tweaked_nums(tagged_hash("TapTweak", NUMS_H + root))
        parity = q[0] - 2
        leaves = []
        last = len(hashes) - 1
        for i, (script, held) in enumerate(scripts):
            path = [subtree[i + 1]] + hashes[:i][::-1] if i < last else hashes[:last][::-1]
            leaves.append(TapLeaf(script, hashes[i], bytes([0xC0 | parity]) + NUMS_H + b"".join(path), held, i))
        return DerivedScript(ScriptType.TR, branch, index, pubkeys, signers, p2tr_script_pubkey(q[1:]), self.network,
                             leaf_script=scripts[0][0], leaf_hash=hashes[0], output_key_parity=parity,
                             leaves=tuple(leaves), merkle_root=root)

    def dump_derived_keys(self, *, secret: bytes) -> bytes:
        """The cosigners' child keys this object derived, as a record signed with ``secret``
        (32 bytes) that :meth:`load_derived_keys` reads back in another process (:mod:`.derived`;
        for a keyholder, :meth:`RegisteredVault.dump_derived_keys`). Keys it loaded are
        included only from records signed by the same key: ``secret`` vouches for nothing else."""
        from .derived import dump, signer_key

        mine = signer_key(secret)
        rows: "dict[tuple[int, int], tuple[bytes, ...]]" = {}
        for trusted, loaded in self.__dict__.get("_loaded_keys", ()):
            if trusted == mine:
                rows.update(loaded.items())
        rows.update(self.__dict__.get("_computed_keys", {}))
        return dump(self, rows, secret)

    def load_derived_keys(self, data: bytes, *, trusted_key: bytes) -> int:
        """Use the child keys of a record made by :meth:`dump_derived_keys` for this vault and
        signed by ``trusted_key`` (x-only): scripts at those indexes are then built from them
        without BIP32 child steps. Returns how many (branch, index) entries were loaded;
        DerivedKeysError, and nothing loaded, for any other record."""
        from .derived import load

        rows = load(self, data, trusted_key)
        self.__dict__.setdefault("_loaded_keys", []).append((bytes(trusted_key), rows))
        return len(rows)

    def address(self, index: int, *, change: bool = False) -> str:
        return self.derive(index, change=change).address

    def change_address(self, index: int) -> str:
        return self.derive(index, change=True).address

    def addresses(self, start: int = 0, count: int = 20, *, change: bool = False) -> "list[str]":
        return [self.derive(i, change=change).address for i in range(start, start + count)]

    def script_pubkey(self, index: int, *, change: bool = False) -> bytes:
        return self.derive(index, change=change).script_pubkey

    def key_path(self, cosigner: int, branch: int, index: int) -> "tuple[int, ...]":
        """Full derivation path from cosigner ``cosigner``'s master key to its key at (branch, index)."""
        return self.cosigners[cosigner].path + (branch, index)

    def index_of(self, cosigner: "Cosigner | bytes") -> int:
        """Position of a cosigner (a record, or a master fingerprint) in ``cosigners``."""
        for i, c in enumerate(self.cosigners):
            if c == cosigner or c.fingerprint == cosigner:
                return i
        raise PolicyError("that cosigner is not part of this vault")

    def find(self, script_pubkey: bytes, *, gap: int = 1_000) -> "Optional[tuple[int, int]]":
        """(branch, index) of ``script_pubkey`` among the first ``gap`` indexes of both branches.

        Scripts are derived once per vault object and remembered.
        """
        index: "dict[bytes, tuple[int, int]]" = self.__dict__.setdefault("_spk_index", {})
        done: int = self.__dict__.get("_spk_index_upto", 0)
        for i in range(done, gap):
            for branch in (RECEIVE, CHANGE):
                index.setdefault(self._derive(branch, i).script_pubkey, (branch, i))
        self.__dict__["_spk_index_upto"] = max(done, gap)
        hit = index.get(script_pubkey)
        return hit if hit is not None and hit[1] < gap else None

    # -- PSBT roles (see msigvault.psbt) ---------------------------------------------------------

    def create_psbt(self, utxos: "Sequence[Utxo]", outputs: "Sequence[tuple[str | bytes, int]]", *,
                    fee_rate: float, change_index: int, **kwargs: Any) -> "Psbt":
        """Creator + Updater: a PSBT paying ``outputs`` [(address, sats)] from ``utxos``.

        ``kwargs`` are :func:`msigvault.psbt.creator.create_psbt`'s (``rbf``, ``locktime``, ...).
        """
        from ..psbt.creator import create_psbt

        return create_psbt(self, utxos, outputs, fee_rate=fee_rate, change_index=change_index, **kwargs)

    def sign(self, psbt: "Psbt", root: "ExtendedKey", **kwargs: Any) -> "tuple[Psbt, SigningSummary]":
        """Signer: (signed PSBT, SigningSummary); refuses anything this vault did not authorise."""
        from ..psbt.signer import sign

        return sign(psbt, self, root, **kwargs)

    def combine(self, psbts: "Iterable[Psbt]") -> "Psbt":
        """Combiner: merge partial PSBTs, verifying every signature first."""
        from ..psbt.combiner import combine

        return combine(psbts, self)

    def finalize(self, psbt: "Psbt") -> "Psbt":
        """Finalizer: final scriptSig/witness from exactly m signatures."""
        from ..psbt.finalizer import finalize

        return finalize(psbt, self)

    def extract(self, psbt: "Psbt", **kwargs: Any) -> "FinalTx":
        """Extractor: the checked network transaction (a FinalTx)."""
        from ..psbt.extractor import extract

        return extract(psbt, **kwargs)

    def analyze(self, psbt: "Psbt") -> "dict[str, Any]":
        """Who signed, who is missing, fee, change, next role (JSON-serialisable)."""
        from ..psbt.analyzer import analyze

        return analyze(psbt, self)

    def __str__(self) -> str:
        extra = f" with {len(self.recovery)} recovery path(s)" if self.recovery else ""
        return f"{self.m}-of-{self.n} {self.script} vault{extra} on {self.network.name}"


_NUMS_POINT = _secp.ec_pubkey_parse(b"\x02" + NUMS_H)
_DERIVE_CACHE_SIZE = 20_000  # derived scripts remembered per vault object
_COMPUTED_KEYS_SIZE = 200_000  # child keys computed by one vault object that dump_derived_keys can save


def _tweaked_nums(tweak: bytes) -> bytes:
    """The compressed taproot output key ``NUMS + tweak*G`` (BIP341), computed as a BIP32 child step is."""
    return _fast.point_serialize(_fast.child_point(_NUMS_POINT, tweak))


def _resolve_network(network: "Network | str | None", cosigners: "Sequence[Cosigner]") -> Network:
    if network is not None:
        if not isinstance(network, (Network, str)):
            raise NetworkMismatch(f"network must be a Network or a network name, not {network!r}", field="network")
        return Network.from_name(network)
    if cosigners and all(c.is_mainnet for c in cosigners):
        return Network.MAINNET
    raise NetworkMismatch(
        "tpub keys serve testnet, signet and regtest alike: pass network='testnet', 'signet' or 'regtest' (on the command line: --network)"
    )


def check_limits(m: object, n: int, script: ScriptTypeLike) -> None:
    """The m-of-n rules of each script type (BIP383/BIP387 and consensus limits)."""
    kind = ScriptType.parse(script)
    if n == 0:
        raise PolicyError("a vault needs at least one cosigner", field="cosigners")
    if n > kind.max_keys:
        raise PolicyError(
            f"a {kind} vault can have at most {kind.max_keys} cosigners, not {n}"
            + ("; use wsh (up to 20) or tr (up to 999)" if kind is ScriptType.SH else "")
            + ("; use tr (up to 999)" if kind in (ScriptType.WSH, ScriptType.SH_WSH) else ""),
            field="cosigners",
        )
    _check_threshold_type(m)
    assert isinstance(m, int)
    if not 1 <= m <= n:
        raise PolicyError(f"the threshold m must be a whole number from 1 to n={n}, got {m!r}", field="m")


def _check_threshold_type(m: object) -> None:
    if isinstance(m, bool) or not isinstance(m, int):
        raise PolicyError(f"the threshold m must be a whole number (1 to n), got {m!r}", field="m")


def _check_bool(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise PolicyError(f"{name} must be True or False, not {value!r}", field=name)


def _cosigner_tuple(cosigners: object) -> "tuple[Any, ...]":
    """``cosigners`` as a tuple; PolicyError if it is a single string or not iterable at all."""
    if isinstance(cosigners, (str, bytes, Cosigner)) or not isinstance(cosigners, Iterable):
        raise PolicyError(
            f"cosigners must be a list of Cosigner records or [fingerprint/path]xpub strings, not {type(cosigners).__name__}",
            field="cosigners",
        )
    return tuple(cosigners)


def _check_policy(m: int, cosigners: "tuple[Cosigner, ...]", script: ScriptType, network: Network,
                  n: "int | None" = None) -> None:
    if not isinstance(network, Network):
        raise PolicyError("network must be a msigvault Network (e.g. Network.REGTEST)", field="network")
    if not all(isinstance(c, Cosigner) for c in cosigners):
        raise PolicyError("cosigners must be Cosigner records", field="cosigners")
    check_limits(m, len(cosigners) if n is None else n, script)
    mainnet = {c.is_mainnet for c in cosigners}
    if len(mainnet) > 1:
        raise NetworkMismatch("the cosigners mix mainnet (xpub) and test-network (tpub) keys")
    for c in cosigners:
        c.check_network(network)
    seen_keys: "dict[bytes, int]" = {}
    seen_origins: "dict[tuple[bytes, tuple[int, ...]], int]" = {}
    for i, c in enumerate(cosigners):
        pk = c.public_key
        if pk in seen_keys:
            j = seen_keys[pk]
            raise PolicyError(
                f"cosigners {j + 1} and {i + 1} ({cosigners[j].fingerprint.hex()}, {c.fingerprint.hex()}) "
                "are the same public key: one keyholder would count twice; remove the duplicate"
            )
        seen_keys[pk] = i
        origin = (c.fingerprint, c.path)
        if origin in seen_origins:
            j = seen_origins[origin]
            raise PolicyError(
                f"cosigners {j + 1} and {i + 1} share fingerprint and path {c.origin()}: the same seed "
                "and account cannot hold two different keys; one record is wrong"
            )
        seen_origins[origin] = i


def _deviation_set(values: "Iterable[Deviation | str] | Deviation | str") -> "frozenset[Deviation]":
    if isinstance(values, (str, Deviation)):
        values = (values,)
    if not isinstance(values, Iterable):
        raise PolicyError(f"accept must be a set of deviation names, not {values!r}", field="accept")
    out = set()
    for v in values:
        try:
            out.add(Deviation(v))
        except ValueError:
            raise PolicyError(
                f"unknown deviation {v!r}: accept one of {', '.join(d.value for d in Deviation)}",
                field="accept",
            ) from None
    return frozenset(out)


def deviations_of(cosigners: "Iterable[Cosigner]", network: Network) -> "dict[Deviation, str]":
    """The :class:`Deviation` rules ``cosigners`` break on ``network``, with the first instance of each."""
    found: "dict[Deviation, str]" = {}
    for c in cosigners:
        problem = coin_type_problem(c.path, network)
        if problem:
            found.setdefault(Deviation.COIN_TYPE_MISMATCH, f"cosigner {c.fingerprint.hex()}: {problem}")
        elif not network.is_mainnet:
            problem = separation_problem(c.path, network)
            if problem:
                found.setdefault(Deviation.UNSEPARATED_TEST_KEYS, f"cosigner {c.fingerprint.hex()}: {problem}")
    seen: "dict[bytes, int]" = {}
    for i, c in enumerate(cosigners):
        if c.fingerprint in seen:
            found.setdefault(
                Deviation.SHARED_SEED,
                f"cosigners {seen[c.fingerprint] + 1} and {i + 1} have the same master fingerprint "
                f"{c.fingerprint.hex()}: one seed holds two keys, so one keyholder alone counts twice",
            )
        seen.setdefault(c.fingerprint, i)
    return found
