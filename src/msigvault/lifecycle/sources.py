"""Seized sources: WIF keys, BIP39 mnemonics (with passphrase), xprv/tprv, private descriptors.

Everything is parsed strictly and bounded (:data:`MAX_SOURCE_BYTES`, :data:`MAX_KEYS`, line and
descriptor lengths), in time linear in the input. Messages name the line and what is wrong,
never the secret. Descriptors are read by a small parser of our own (policy/descriptors.py is
watch-only and refuses private keys on purpose): ``pkh(K)``, ``wpkh(K)``, ``sh(wpkh(K))``,
``tr(K)`` (key path only) and ``sh(multi(k,K,...))`` / ``sh(sortedmulti(k,K,...))``, where K is a
WIF key or (in multi) a hex public key, optionally after a ``[fingerprint/path]`` origin, with an
optional ``#checksum``.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from embit import base58
from embit.util import secp256k1 as _secp

from ..keys.bip32 import SECP256K1_N, ExtendedKey
from ..network import Network, networks_for_xkey_version
from .errors import SourceError
from .secrets import MAX_SOURCE_BYTES, Secret

MAX_KEYS = 1000
MAX_WALLET_BYTES = 16 * 1024 * 1024  # an Electrum wallet file with its history
MAX_LINE = 4000
MAX_MULTI_KEYS = 15  # a P2SH redeem script is at most 520 bytes
MAX_ACCOUNTS = 100
_Bad = Callable[[str], SourceError]


class ScriptKind(str, enum.Enum):
    """The output types intake discovers and sweeps."""

    P2PKH = "p2pkh"
    P2SH_P2WPKH = "p2sh-p2wpkh"
    P2WPKH = "p2wpkh"
    P2TR = "p2tr"
    P2SH_MULTI = "p2sh-multi"


SINGLE_KINDS = (ScriptKind.P2PKH, ScriptKind.P2SH_P2WPKH, ScriptKind.P2WPKH, ScriptKind.P2TR)
PURPOSES = {44: ScriptKind.P2PKH, 49: ScriptKind.P2SH_P2WPKH, 84: ScriptKind.P2WPKH, 86: ScriptKind.P2TR}
# SLIP-132 private prefixes say which script an account key was used for
_PREFIX_KINDS = {"yprv": ScriptKind.P2SH_P2WPKH, "uprv": ScriptKind.P2SH_P2WPKH,
                 "zprv": ScriptKind.P2WPKH, "vprv": ScriptKind.P2WPKH}


class SourceKind(str, enum.Enum):
    WIF = "wif"
    MNEMONIC = "mnemonic"
    XPRV = "xprv"
    DESCRIPTOR = "descriptor"
    ELECTRUM = "electrum"


class SingleKey:
    """One seized private key (in a wipeable buffer) and whether its public key is compressed."""

    __slots__ = ("secret", "compressed")

    def __init__(self, secret: Secret, compressed: bool) -> None:
        self.secret = secret
        self.compressed = compressed

    def __repr__(self) -> str:
        return f"SingleKey({'compressed' if self.compressed else 'uncompressed'})"

    @property
    def pubkey(self) -> bytes:
        point = _secp.ec_pubkey_create(self.secret.reveal())
        return _secp.ec_pubkey_serialize(point, _secp.EC_COMPRESSED if self.compressed else _secp.EC_UNCOMPRESSED)


@dataclass(frozen=True)
class MultiEntry:
    """``sh(multi(m, ...))``: each slot a :class:`SingleKey` (we hold it) or a public key."""

    m: int
    slots: "tuple[SingleKey | bytes, ...]"
    sorted: bool

    def pubkeys(self) -> "list[bytes]":
        keys = [s.pubkey if isinstance(s, SingleKey) else s for s in self.slots]
        return sorted(keys) if self.sorted else keys


@dataclass(frozen=True)
class DescriptorEntry:
    """One line of a descriptor source."""

    kind: ScriptKind
    key: Optional[SingleKey] = None
    multi: Optional[MultiEntry] = None


class Source:
    """A parsed seized source. ``summary`` is public text (what it is, never what it holds)."""

    __slots__ = ("kind", "network", "summary", "keys", "root", "descriptors", "_secrets")

    def __init__(self, kind: SourceKind, network: Network, summary: str, *,
                 keys: Sequence[SingleKey] = (), root: Optional[Secret] = None,
                 descriptors: Sequence[DescriptorEntry] = (), secrets: Sequence[Secret] = ()) -> None:
        self.kind = kind
        self.network = network
        self.summary = summary
        self.keys = tuple(keys)
        self.root = root  # the 78-byte serialized extended private key
        self.descriptors = tuple(descriptors)
        self._secrets = list(secrets)

    def __repr__(self) -> str:
        return f"Source({self.kind.value}, {self.network.name}, {self.summary!r})"

    def extended_key(self) -> ExtendedKey:
        """The seized extended private key (a short-lived immutable copy: see docs/intake.md)."""
        if self.root is None:
            raise SourceError("this source holds no extended key")
        return ExtendedKey.from_bytes(self.root.reveal())

    def wipe(self) -> None:
        """Zero every secret buffer this source holds."""
        for s in self._secrets:
            s.wipe()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.wipe()


# -- detection --------------------------------------------------------------------------------

_FUNCS = ("pkh(", "wpkh(", "sh(", "tr(")


def parse_source(secret: Secret, network: "Network | str", *, passphrase: str = "",
                 kind: "SourceKind | str | None" = None) -> Source:
    """Parse a seized source file's bytes (a :class:`Secret`) for ``network``.

    ``kind`` forces the format; by default it is detected: descriptor lines, a BIP39 mnemonic,
    one extended private key, or WIF keys one per line. ``passphrase`` is the BIP39 passphrase.
    """
    net = Network.from_name(network)
    if len(secret) > MAX_WALLET_BYTES:
        raise SourceError(f"a source is at most {MAX_WALLET_BYTES:,} bytes", limit=MAX_WALLET_BYTES)
    try:
        text = secret.reveal().decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError("the source is not UTF-8 text: give WIF keys, a mnemonic, an xprv or "
                          "descriptors, one per line") from None
    if kind == SourceKind.ELECTRUM.value or (kind is None and text.lstrip().startswith("{")):
        if passphrase:
            raise SourceError("a BIP39 passphrase was given, but the source is an Electrum wallet file")
        return _electrum(text, net)
    if len(secret) > MAX_SOURCE_BYTES:
        raise SourceError(f"a source other than a wallet file is at most {MAX_SOURCE_BYTES:,} bytes",
                          limit=MAX_SOURCE_BYTES)
    lines = _lines(text)
    if not lines:
        raise SourceError("the source holds no keys (only blank lines and # comments)")
    try:
        chosen = SourceKind(kind) if kind is not None else _detect(lines)
    except ValueError:
        raise SourceError(f"unknown source kind {kind!r}: use one of {', '.join(k.value for k in SourceKind)}") from None
    if passphrase and chosen != SourceKind.MNEMONIC:
        raise SourceError("a BIP39 passphrase was given, but the source is not a mnemonic")
    if chosen == SourceKind.MNEMONIC:
        return _mnemonic(lines, net, passphrase)
    if chosen == SourceKind.XPRV:
        return _xprv(lines, net)
    if chosen == SourceKind.DESCRIPTOR:
        return _descriptors(lines, net)
    return _wifs(lines, net)


def _lines(text: str) -> "list[tuple[int, str]]":
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        if len(raw) > MAX_LINE:
            raise SourceError(f"line {n} is longer than {MAX_LINE} characters", line=n, limit=MAX_LINE)
        line = raw.split("#", 1)[0].strip() if not _is_descriptor(raw.strip()) else raw.strip()
        if line:
            out.append((n, line))
        if len(out) > MAX_KEYS:
            raise SourceError(f"a source holds at most {MAX_KEYS} keys or lines", limit=MAX_KEYS)
    return out


def _is_descriptor(line: str) -> bool:
    return line.startswith(_FUNCS)


def _detect(lines: "list[tuple[int, str]]") -> SourceKind:
    first = lines[0][1]
    if _is_descriptor(first):
        return SourceKind.DESCRIPTOR
    words = " ".join(line for _, line in lines).split()
    if len(words) >= 12 and all(w.isalpha() for w in words):
        return SourceKind.MNEMONIC
    if len(lines) == 1 and len(first) > 100 and first[1:4] == "prv":
        return SourceKind.XPRV
    return SourceKind.WIF


# -- WIF ---------------------------------------------------------------------------------------


def parse_wif(text: str, network: Network, *, where: str) -> SingleKey:
    """A WIF private key for ``network``; SourceError naming ``where`` (never the key)."""
    if not (40 <= len(text) <= 60) or not text.isascii() or not text.isalnum():
        raise SourceError(f"{where} is not a WIF private key (51 or 52 base58 characters)")
    try:
        raw = bytearray(base58.decode_check(text))
    except Exception:
        raise SourceError(f"{where}: the WIF key's base58 checksum does not match: it was mistyped or "
                          "truncated") from None
    try:
        if len(raw) == 34 and raw[33] == 0x01:
            compressed = True
        elif len(raw) == 33:
            compressed = False
        else:
            raise SourceError(f"{where} decodes to {len(raw)} bytes: a WIF key has 33 or 34")
        if raw[0] != network.wif_version:
            other = "mainnet" if raw[0] == 0x80 else "a test network" if raw[0] == 0xEF else "no known network"
            raise SourceError(f"{where} is a WIF key for {other}, not {network.name}: check --network")
        k = int.from_bytes(raw[1:33], "big")
        if not 0 < k < SECP256K1_N:
            raise SourceError(f"{where} holds a private key outside the valid range 1..n-1")
        return SingleKey(Secret(raw[1:33]), compressed)
    finally:
        for i in range(len(raw)):
            raw[i] = 0


def _wifs(lines: "list[tuple[int, str]]", net: Network) -> Source:
    keys = []
    for n, line in lines:
        if " " in line or "\t" in line:
            raise SourceError(f"line {n}: give one WIF key per line", line=n)
        try:
            keys.append(parse_wif(line, net, where=f"line {n}"))
        except SourceError as e:
            for k in keys:
                k.secret.wipe()
            raise e.locate(line=n)
    return Source(SourceKind.WIF, net, f"{len(keys)} WIF key(s)", keys=keys, secrets=[k.secret for k in keys])


# -- mnemonic ----------------------------------------------------------------------------------


def _mnemonic(lines: "list[tuple[int, str]]", net: Network, passphrase: str) -> Source:
    from ..errors import InvalidKey
    from ..keys.mnemonic import mnemonic_to_seed

    words = " ".join(line for _, line in lines).split()
    try:
        seed = bytearray(mnemonic_to_seed(" ".join(words), unicodedata.normalize("NFKD", passphrase)))
    except InvalidKey as e:
        raise SourceError(f"the mnemonic is not valid BIP39: {e}") from None
    try:
        root = _root_secret(seed, net)
    finally:
        for i in range(len(seed)):
            seed[i] = 0
    what = f"BIP39 mnemonic, {len(words)} words, {'with' if passphrase else 'without'} a passphrase"
    return Source(SourceKind.MNEMONIC, net, what, root=root, secrets=[root])


def _root_secret(seed: bytearray, net: Network) -> Secret:
    from ..keys.bip32 import root_from_seed

    return Secret(root_from_seed(bytes(seed), net).serialize())


# -- Electrum wallet files ---------------------------------------------------------------------


def _electrum(text: str, net: Network) -> Source:
    """An unencrypted Electrum wallet file: a standard wallet's keystore xprv (Electrum derives
    receive and change addresses at xprv/0/i and xprv/1/i, the script type from its SLIP-132
    prefix), or an imported wallet's keys. Encrypted and multisig wallets are refused."""
    import json

    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise SourceError("the source starts with '{' but is not a JSON Electrum wallet file") from None
    if not isinstance(obj, dict) or "wallet_type" not in obj or not isinstance(obj.get("keystore"), dict):
        raise SourceError("this JSON is not an Electrum wallet file (no wallet_type and keystore)")
    if obj.get("use_encryption") is not False:
        raise SourceError("the Electrum wallet file is encrypted (or does not say it is not): open it in "
                          "Electrum on the offline machine and export its private keys, or decrypt it there")
    wallet_type, keystore = obj["wallet_type"], obj["keystore"]
    if wallet_type == "standard" and keystore.get("type") == "bip32":
        xprv = keystore.get("xprv")
        if not isinstance(xprv, str) or xprv[1:4] != "prv":
            raise SourceError("the Electrum keystore holds no unencrypted xprv (a watch-only or hardware wallet)")
        source = _xprv([(1, xprv)], net)
        return Source(SourceKind.XPRV, net, f"Electrum standard wallet ({source.summary})", root=source.root,
                      secrets=[source.root] if source.root is not None else [])
    if wallet_type == "imported" and keystore.get("type") == "imported":
        pairs = keystore.get("keypairs")
        if not isinstance(pairs, dict) or not pairs or len(pairs) > MAX_KEYS:
            raise SourceError(f"the Electrum imported keystore holds no keys (or more than {MAX_KEYS})")
        lines = []
        for n, value in enumerate(pairs.values(), 1):
            if not isinstance(value, str):
                raise SourceError(f"imported key {n} of the Electrum wallet is not text")
            lines.append((n, value.split(":", 1)[-1]))  # "p2wpkh:WIF": the script type prefix is dropped
        source = _wifs(lines, net)
        return Source(SourceKind.WIF, net, f"Electrum imported wallet, {len(source.keys)} key(s)",
                      keys=source.keys, secrets=[k.secret for k in source.keys])
    raise SourceError(f"Electrum {str(wallet_type)[:20]!r} wallets are not read by intake (standard and "
                      "imported wallets are): export the private keys from Electrum and give them as WIF keys")


# -- extended private keys ---------------------------------------------------------------------


def _xprv(lines: "list[tuple[int, str]]", net: Network) -> Source:
    from ..errors import InvalidKey

    if len(lines) != 1:
        raise SourceError("an extended-key source holds exactly one xprv/tprv (one line)")
    n, text = lines[0]
    try:
        key = ExtendedKey.parse(text)
    except InvalidKey as e:
        raise SourceError(f"line {n}: {e}", line=n) from None
    if not key.is_private:
        raise SourceError(f"line {n} is an extended public key: intake needs the private key to sweep; "
                          "an xpub alone can only watch", line=n)
    nets, _, prefix = networks_for_xkey_version(key.version)
    if net not in nets:
        raise SourceError(f"line {n} is a {prefix} key for {nets[0].name}, not {net.name}: check --network", line=n)
    root = Secret(key.serialize())
    level = "master key" if key.depth == 0 else f"account-level key (depth {key.depth})"
    return Source(SourceKind.XPRV, net, f"extended private key ({prefix}), {level}", root=root, secrets=[root])


def account_kinds(prefix: str) -> "tuple[ScriptKind, ...]":
    """Script kinds an account-level extended key is scanned for (its SLIP-132 prefix, else all)."""
    kind = _PREFIX_KINDS.get(prefix)
    return (kind,) if kind is not None else SINGLE_KINDS


# -- descriptors -------------------------------------------------------------------------------

_ORIGIN = re.compile(r"^\[[0-9a-fA-F]{8}(/[0-9]{1,10}[hH']?){0,32}\]")
_MAX_DESCRIPTOR = 3000


def _descriptors(lines: "list[tuple[int, str]]", net: Network) -> Source:
    entries: "list[DescriptorEntry]" = []
    secrets: "list[Secret]" = []
    try:
        for n, line in lines:
            entry = parse_private_descriptor(line, net, line_number=n)
            entries.append(entry)
            secrets += _entry_secrets(entry)
    except SourceError:
        for s in secrets:
            s.wipe()
        raise
    return Source(SourceKind.DESCRIPTOR, net, f"{len(entries)} descriptor(s) with private keys",
                  descriptors=entries, secrets=secrets)


def _entry_secrets(entry: DescriptorEntry) -> "list[Secret]":
    if entry.key is not None:
        return [entry.key.secret]
    assert entry.multi is not None
    return [s.secret for s in entry.multi.slots if isinstance(s, SingleKey)]


def parse_private_descriptor(text: str, net: Network, *, line_number: int = 1) -> DescriptorEntry:
    """One descriptor with WIF keys (see the module docstring for the accepted shapes)."""
    where = f"line {line_number}"

    def bad(why: str) -> SourceError:
        return SourceError(f"{where}: {why}", line=line_number)

    if len(text) > _MAX_DESCRIPTOR:
        raise bad(f"a descriptor is at most {_MAX_DESCRIPTOR} characters here")
    body, sep, checksum = text.partition("#")
    if sep:
        from ..errors import InvalidDescriptor
        from ..policy.checksum import descriptor_checksum

        try:
            expected = descriptor_checksum(body)
        except InvalidDescriptor:
            raise bad("the descriptor has a character descriptors do not allow") from None
        if checksum != expected:
            raise bad("the descriptor checksum does not match: it was mistyped")
    for prefix, kind in (("sh(wpkh(", ScriptKind.P2SH_P2WPKH), ("pkh(", ScriptKind.P2PKH),
                         ("wpkh(", ScriptKind.P2WPKH), ("tr(", ScriptKind.P2TR)):
        closing = ")" * prefix.count("(")
        if body.startswith(prefix):
            if not body.endswith(closing):
                raise bad(f"{prefix}...{closing} is not closed properly")
            inner = body[len(prefix):len(body) - len(closing)]
            if any(c in inner for c in "(),"):
                raise bad(f"{prefix}KEY{closing} takes one key (a WIF private key)")
            key = _desc_key(inner, net, bad, private_only=True)
            assert isinstance(key, SingleKey)
            if kind != ScriptKind.P2PKH and not key.compressed:
                key.secret.wipe()
                raise bad(f"{kind.value} needs a compressed key; this WIF key is uncompressed")
            return DescriptorEntry(kind, key=key)
    for prefix, is_sorted in (("sh(multi(", False), ("sh(sortedmulti(", True)):
        if body.startswith(prefix):
            if not body.endswith("))"):
                raise bad(f"{prefix}...)) is not closed properly")
            return DescriptorEntry(ScriptKind.P2SH_MULTI, multi=_multi(body[len(prefix):-2], net, bad, is_sorted))
    raise bad("intake reads pkh(KEY), wpkh(KEY), sh(wpkh(KEY)), tr(KEY) and sh(multi(k,KEY,...)) descriptors "
              "with WIF keys")


def _multi(inner: str, net: Network, bad: _Bad, is_sorted: bool) -> MultiEntry:
    parts = inner.split(",")
    if any(c in inner for c in "()"):
        raise bad("multi(...) takes a threshold and keys, no nested expressions")
    if not parts[0].isdigit() or len(parts[0]) > 2:
        raise bad("multi(k,...) needs a threshold k, a small whole number")
    m, texts = int(parts[0]), parts[1:]
    if not 1 <= len(texts) <= MAX_MULTI_KEYS:
        raise bad(f"P2SH multisig holds 1 to {MAX_MULTI_KEYS} keys, not {len(texts)}")
    if not 1 <= m <= len(texts):
        raise bad(f"the threshold {m} must be from 1 to the number of keys ({len(texts)})")
    slots: "list[SingleKey | bytes]" = []
    try:
        for t in texts:
            slots.append(_desc_key(t, net, bad, private_only=False))
    except SourceError:
        for s in slots:
            if isinstance(s, SingleKey):
                s.secret.wipe()
        raise
    held = sum(isinstance(s, SingleKey) for s in slots)
    entry = MultiEntry(m, tuple(slots), is_sorted)
    pubs = entry.pubkeys()
    if len(set(pubs)) != len(pubs):
        _wipe_slots(slots)
        raise bad("the multisig names the same key twice")
    if held < m:
        _wipe_slots(slots)
        raise bad(f"the multisig needs {m} signatures but the source holds only {held} of its private keys: "
                  "the coins cannot be swept with it")
    if 3 + sum(1 + len(p) for p in pubs) > 520:
        _wipe_slots(slots)
        raise bad("the redeem script would be larger than 520 bytes (P2SH's limit)")
    return entry


def _wipe_slots(slots: "Sequence[SingleKey | bytes]") -> None:
    for s in slots:
        if isinstance(s, SingleKey):
            s.secret.wipe()


def _desc_key(text: str, net: Network, bad: _Bad, *, private_only: bool) -> "SingleKey | bytes":
    origin = _ORIGIN.match(text)
    if origin is not None:
        text = text[origin.end():]
    elif text.startswith("["):
        raise bad("a key origin is [8 hex digits/path], e.g. [d34db33f/44h/1h/0h]")
    if len(text) in (66, 130) and all(c in "0123456789abcdefABCDEF" for c in text):
        if private_only:
            raise bad("this descriptor names a public key: intake needs the private key (WIF) to sweep")
        raw = bytes.fromhex(text)
        try:
            _secp.ec_pubkey_parse(raw)
        except ValueError:
            raise bad("a public key in the descriptor is not on the secp256k1 curve") from None
        if raw[0] not in ((2, 3) if len(raw) == 33 else (4,)):
            raise bad("a public key in the descriptor has a bad prefix byte")
        return raw
    if text[1:4] in ("prv", "pub"):
        raise bad("extended keys in descriptors are not read by intake: give the xprv as its own source")
    return parse_wif(text, net, where="a key in the descriptor")
