"""What a seized source can receive on, as public watch data, and the keys behind one script.

:func:`watch_groups` turns a :class:`~.sources.Source` into :class:`WatchGroup` records holding
no secret: a fixed script (WIF keys, descriptors) or an account's extended *public* key and its
path (mnemonics and xprvs: BIP44/49/84/86 accounts, receive and change branches), from which the
online machine derives addresses with a gap limit. :func:`resolve` is the offline side: the
private keys and scripts for a (group, branch, index) a sweep input claims, rebuilt from the
source, so the signer never trusts the plan's word for what it signs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from embit.hashes import hash160, tagged_hash
from embit.util import secp256k1 as _secp

from ..address import address_from_script
from ..keys.bip32 import ExtendedKey, PublicDeriver
from ..keys.paths import HARDENED, format_path
from ..network import Network
from ..script import multisig_script, p2sh_script_pubkey
from .errors import IntakeFileError, SweepRefused
from .secrets import Secret
from .sources import (MAX_ACCOUNTS, PURPOSES, SINGLE_KINDS, DescriptorEntry, ScriptKind, SingleKey, Source,
                      SourceKind, account_kinds)

WATCH_FORMAT = "msigvault-intake-watch"
VERSION = 1
MAX_WATCH_BYTES = 4 * 1024 * 1024
MAX_GROUPS = 5000
MAX_INDEX = 2**31 - 1
_ID = re.compile(r"^[a-z0-9/_-]{1,40}$")


# -- scripts -----------------------------------------------------------------------------------


def taproot_output_key(pubkey: bytes) -> bytes:
    """BIP86 output key (x-only) for an internal key with no script tree."""
    xonly = pubkey[1:33]
    tweak = tagged_hash("TapTweak", xonly)
    point = _secp.ec_pubkey_parse(b"\x02" + xonly)
    return _secp.ec_pubkey_serialize(_secp.ec_pubkey_add(point, tweak))[1:]


def single_script(kind: ScriptKind, pubkey: bytes) -> bytes:
    """The scriptPubKey of a one-key output of ``kind``."""
    h = hash160(pubkey)
    if kind == ScriptKind.P2PKH:
        return b"\x76\xa9\x14" + h + b"\x88\xac"
    if kind == ScriptKind.P2WPKH:
        return b"\x00\x14" + h
    if kind == ScriptKind.P2SH_P2WPKH:
        return p2sh_script_pubkey(b"\x00\x14" + h)
    if kind == ScriptKind.P2TR:
        return b"\x51\x20" + taproot_output_key(pubkey)
    raise ValueError(kind)


# -- public watch data -------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchGroup:
    """One thing to watch: a fixed script, or an account (``xpub`` + ``path``) with two branches."""

    id: str
    kind: ScriptKind
    script_pubkey: Optional[bytes] = None
    redeem_script: Optional[bytes] = None
    xpub: Optional[str] = None
    path: Optional[str] = None

    @property
    def is_account(self) -> bool:
        return self.xpub is not None

    def script_at(self, branch: int, index: int) -> bytes:
        """The script of receive (0) or change (1) ``index`` of an account group."""
        if self.xpub is None:
            raise IntakeFileError(f"watch group {self.id} is a single script, not an account")
        deriver = PublicDeriver(ExtendedKey.parse(self.xpub)).child(branch)
        return single_script(self.kind, deriver.child_pubkey(index))

    def to_dict(self, network: Network) -> "dict[str, Any]":
        out: "dict[str, Any]" = {"id": self.id, "type": self.kind.value}
        if self.script_pubkey is not None:
            out["script_pubkey"] = self.script_pubkey.hex()
            out["address"] = address_from_script(self.script_pubkey, network)
        if self.redeem_script is not None:
            out["redeem_script"] = self.redeem_script.hex()
        if self.xpub is not None:
            out["xpub"] = self.xpub
            out["path"] = self.path
        return out


class Deriver:
    """Scripts of an account group's two branches, with the parsed branch keys kept."""

    def __init__(self, group: WatchGroup) -> None:
        assert group.xpub is not None
        account = PublicDeriver(ExtendedKey.parse(group.xpub))
        self.kind = group.kind
        self.branches = (account.child(0), account.child(1))

    def script(self, branch: int, index: int) -> bytes:
        return single_script(self.kind, self.branches[branch].child_pubkey(index))


def watch_groups(source: Source, *, accounts: int = 1) -> "list[WatchGroup]":
    """The public watch data of ``source`` (``accounts`` BIP44/49/84/86 accounts for a master key)."""
    if isinstance(accounts, bool) or not isinstance(accounts, int) or not 1 <= accounts <= MAX_ACCOUNTS:
        raise IntakeFileError(f"the number of accounts is a whole number from 1 to {MAX_ACCOUNTS}")
    if source.kind == SourceKind.WIF:
        return [g for i, k in enumerate(source.keys) for g in _key_groups(f"wif{i}", k)]
    if source.kind == SourceKind.DESCRIPTOR:
        return [_descriptor_group(f"desc{i}", e) for i, e in enumerate(source.descriptors)]
    key = source.extended_key()
    net = source.network
    if key.depth == 0:
        return [WatchGroup(f"bip{purpose}/{a}", kind, xpub=_account(key, purpose, a, net).neuter(net).to_base58(),
                           path=format_path(_account_path(purpose, a, net)))
                for purpose, kind in PURPOSES.items() for a in range(accounts)]
    xpub = key.neuter(net).to_base58()
    return [WatchGroup(f"account/{kind.value}", kind, xpub=xpub, path="m")
            for kind in account_kinds(key.prefix)]


def _key_groups(prefix: str, key: SingleKey) -> "list[WatchGroup]":
    kinds = SINGLE_KINDS if key.compressed else (ScriptKind.P2PKH,)  # segwit needs compressed keys
    pub = key.pubkey
    return [WatchGroup(f"{prefix}/{kind.value}", kind, script_pubkey=single_script(kind, pub)) for kind in kinds]


def _descriptor_group(gid: str, entry: DescriptorEntry) -> WatchGroup:
    if entry.key is not None:
        return WatchGroup(gid, entry.kind, script_pubkey=single_script(entry.kind, entry.key.pubkey))
    assert entry.multi is not None
    redeem = multisig_script(entry.multi.m, entry.multi.pubkeys())
    return WatchGroup(gid, ScriptKind.P2SH_MULTI, script_pubkey=p2sh_script_pubkey(redeem), redeem_script=redeem)


def _account_path(purpose: int, account: int, net: Network) -> "tuple[int, ...]":
    return (purpose + HARDENED, net.coin_type + HARDENED, account + HARDENED)


def _account(root: ExtendedKey, purpose: int, account: int, net: Network) -> ExtendedKey:
    return root.derive(_account_path(purpose, account, net))


# -- the watch file ----------------------------------------------------------------------------


def watch_document(source: Source, groups: Sequence[WatchGroup], *, created: str) -> bytes:
    """The watch file's bytes (JSON, no secrets)."""
    doc = {"format": WATCH_FORMAT, "version": VERSION, "network": source.network.name, "created": created,
           "source": {"kind": source.kind.value, "summary": source.summary},
           "groups": [g.to_dict(source.network) for g in groups]}
    return json.dumps(doc, indent=2).encode() + b"\n"


@dataclass(frozen=True)
class Watch:
    network: Network
    source_kind: str
    summary: str
    created: str
    groups: "tuple[WatchGroup, ...]"
    sha256: str

    def group(self, gid: str) -> WatchGroup:
        for g in self.groups:
            if g.id == gid:
                return g
        raise IntakeFileError(f"the watch file has no group {gid!r}")


def parse_watch(data: bytes) -> Watch:
    """A watch file, checked (size, fields, every key and script well-formed)."""
    obj = load_json(data, WATCH_FORMAT, "watch file", MAX_WATCH_BYTES)
    net = _network(obj)
    source = obj.get("source")
    groups_raw = obj.get("groups")
    if not isinstance(source, dict) or not isinstance(groups_raw, list) or not groups_raw:
        raise IntakeFileError("the watch file needs 'source' and a non-empty list of 'groups'")
    if len(groups_raw) > MAX_GROUPS:
        raise IntakeFileError(f"a watch file holds at most {MAX_GROUPS} groups", limit=MAX_GROUPS)
    groups = tuple(_group_from(g, net) for g in groups_raw)
    if len({g.id for g in groups}) != len(groups):
        raise IntakeFileError("the watch file names a group twice")
    return Watch(net, _text(source.get("kind"), "source.kind"), _text(source.get("summary"), "source.summary"),
                 _text(obj.get("created"), "created"), groups, hashlib.sha256(data).hexdigest())


def _group_from(g: object, net: Network) -> WatchGroup:
    from ..errors import InvalidKey

    if not isinstance(g, dict):
        raise IntakeFileError("a watch group is a JSON object")
    gid = g.get("id")
    if not isinstance(gid, str) or not _ID.match(gid):
        raise IntakeFileError("a watch group id is 1 to 40 of a-z 0-9 / _ -")
    try:
        kind = ScriptKind(g.get("type"))
    except ValueError:
        raise IntakeFileError(f"watch group {gid}: unknown type") from None
    if "xpub" in g:
        try:
            key = ExtendedKey.parse(str(g["xpub"]))
        except InvalidKey as e:
            raise IntakeFileError(f"watch group {gid}: {e}") from None
        if key.is_private:
            raise IntakeFileError(f"watch group {gid} holds a private key: a watch file must never hold one; "
                                  "destroy this file and prepare it again")
        return WatchGroup(gid, kind, xpub=key.to_base58(), path=_text(g.get("path"), "path"))
    spk = _hexfield(g, "script_pubkey", gid, 100)
    redeem = _hexfield(g, "redeem_script", gid, 520) if "redeem_script" in g else None
    if kind == ScriptKind.P2SH_MULTI and (redeem is None or p2sh_script_pubkey(redeem) != spk):
        raise IntakeFileError(f"watch group {gid}: the redeem script does not hash to the script")
    return WatchGroup(gid, kind, script_pubkey=spk, redeem_script=redeem)


# -- small JSON helpers shared by the intake files ---------------------------------------------


def load_json(data: bytes, fmt: str, what: str, limit: int) -> "dict[str, Any]":
    if len(data) > limit:
        raise IntakeFileError(f"the {what} is larger than {limit:,} bytes", limit=limit)
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise IntakeFileError(f"the {what} is not JSON") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise IntakeFileError(f"this is not an intake {what} (format {fmt!r})")
    if obj.get("version") != VERSION:
        raise IntakeFileError(f"the {what} has version {obj.get('version')!r}; this msigvault reads {VERSION}")
    return obj


def _network(obj: Mapping[str, Any]) -> Network:
    from ..errors import NetworkMismatch

    try:
        return Network.from_name(str(obj.get("network")))
    except NetworkMismatch:
        raise IntakeFileError("the file names no known network") from None


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) > 2000:
        raise IntakeFileError(f"field {name!r} is missing or not a short text", field=name)
    return value


def _hexfield(g: Mapping[str, Any], name: str, gid: str, max_len: int) -> bytes:
    value = g.get(name)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or not 1 <= len(raw) <= max_len:
        raise IntakeFileError(f"watch group {gid}: {name} is missing or not hex", field=name)
    return raw


# -- the offline side: the keys behind a script ------------------------------------------------


class Spend:
    """What signs one input: its kind, scripts and the private keys (wipeable) we hold for it."""

    __slots__ = ("kind", "script_pubkey", "redeem_script", "m", "pubkeys", "keys")

    def __init__(self, kind: ScriptKind, script_pubkey: bytes, keys: "Sequence[tuple[bytes, Secret]]", *,
                 redeem_script: Optional[bytes] = None, m: int = 1, pubkeys: Sequence[bytes] = ()) -> None:
        self.kind = kind
        self.script_pubkey = script_pubkey
        self.redeem_script = redeem_script
        self.m = m
        self.pubkeys = tuple(pubkeys)
        self.keys = dict(keys)  # public key -> its private key

    def __repr__(self) -> str:
        return f"Spend({self.kind.value}, {len(self.keys)} key(s))"

    def wipe(self) -> None:
        for s in self.keys.values():
            s.wipe()


def resolve(source: Source, group_id: str, branch: Optional[int], index: Optional[int]) -> Spend:
    """The keys and scripts for an input claimed to be at (group, branch, index) of ``source``.

    SweepRefused if the source has no such group; the caller compares ``script_pubkey`` with the
    script the previous transaction really pays.
    """
    def refuse(why: str) -> SweepRefused:
        return SweepRefused(f"input claims watch group {group_id!r}: {why}; it is not this source's coin")

    if source.kind == SourceKind.WIF:
        m = re.fullmatch(r"wif(\d{1,4})/([a-z0-9-]+)", group_id)
        if m is None or int(m.group(1)) >= len(source.keys):
            raise refuse("this source has no such key")
        key = source.keys[int(m.group(1))]
        try:
            kind = ScriptKind(m.group(2))
        except ValueError:
            raise refuse("unknown script type") from None
        if kind not in SINGLE_KINDS or (kind != ScriptKind.P2PKH and not key.compressed):
            raise refuse("this key has no such script type")
        return _single_spend(kind, key)
    if source.kind == SourceKind.DESCRIPTOR:
        m = re.fullmatch(r"desc(\d{1,4})", group_id)
        if m is None or int(m.group(1)) >= len(source.descriptors):
            raise refuse("this source has no such descriptor")
        entry = source.descriptors[int(m.group(1))]
        if entry.key is not None:
            return _single_spend(entry.kind, entry.key)
        assert entry.multi is not None
        pubs = entry.multi.pubkeys()
        redeem = multisig_script(entry.multi.m, pubs)
        held = [(s.pubkey, Secret(s.secret.reveal())) for s in entry.multi.slots if isinstance(s, SingleKey)]
        return Spend(ScriptKind.P2SH_MULTI, p2sh_script_pubkey(redeem), held, redeem_script=redeem,
                     m=entry.multi.m, pubkeys=pubs)
    return _hd_spend(source, group_id, branch, index, refuse)


def _single_spend(kind: ScriptKind, key: SingleKey) -> Spend:
    pub = key.pubkey
    return Spend(kind, single_script(kind, pub), [(pub, Secret(key.secret.reveal()))])


def _hd_spend(source: Source, group_id: str, branch: Optional[int], index: Optional[int],
              refuse: "Any") -> Spend:
    if branch not in (0, 1) or not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
        raise refuse("an account input needs branch 0 or 1 and an unhardened index")
    root = source.extended_key()
    net = source.network
    m = re.fullmatch(r"bip(\d{2})/(\d{1,3})", group_id)
    if root.depth == 0 and m is not None:
        purpose, account = int(m.group(1)), int(m.group(2))
        if purpose not in PURPOSES or account >= MAX_ACCOUNTS:
            raise refuse("no such account")
        kind, account_key = PURPOSES[purpose], _account(root, purpose, account, net)
    elif root.depth > 0 and group_id.startswith("account/"):
        try:
            kind = ScriptKind(group_id.split("/", 1)[1])
        except ValueError:
            raise refuse("unknown script type") from None
        if kind not in account_kinds(root.prefix):
            raise refuse("this account key is not scanned for that script type")
        account_key = root
    else:
        raise refuse("this source has no such account")
    child = account_key.derive((branch, index))
    secret = Secret(child.key[1:])
    pub = child.public_key
    return Spend(kind, single_script(kind, pub), [(pub, secret)])
