"""Shared pieces of the format modules: the error class, text/JSON intake, descriptor parsing,
SLIP-132 and first-address checks.

Nothing here ever puts the text of an input file into an error message: a file handed to
``import_vault`` by mistake could hold private keys (``listdescriptors true``, an xprv).
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Optional

from ..address import script_from_address
from ..errors import InvalidDescriptor, InvalidKey, MsigvaultError, NetworkMismatch
from ..keys.bip32 import ExtendedKey
from ..keys.cosigner import Cosigner
from ..keys.keyexpr import KeyExpression
from ..network import Network
from ..policy.descriptor import expand_multipath  # noqa: F401 (policy's BIP389 expansion, for callers)
from ..policy.descriptors import parse_descriptor as parse_any_descriptor
from ..policy.vault import SCRIPT_TYPES, Deviation, Vault
from ._warnings import FormatWarning, WarningCode, origin_warnings  # noqa: F401 (re-exported)

#: what an imported file may depart from: other wallets' files do (Keystone's coin types, BIP45
#: m/45' on testnet); import_vault() reports each one in ImportedVault.warnings. One seed in two
#: slots stays refused, as Coldcard refuses it.
IMPORT_ACCEPT = frozenset({Deviation.COIN_TYPE_MISMATCH, Deviation.UNSEPARATED_TEST_KEYS})

MAX_INPUT_CHARS = 1_000_000
_LONG_NUMBER = re.compile(r"[0-9]{400,}")

# What each SLIP-132 version says about the script its key is for. xpub/tpub say nothing.
# Y/Z (U/V on test networks) are the multisig versions; y/z (u/v) the single-sig ones, which
# still name the segwit flavour.
SLIP132_SCRIPT = {
    "Ypub": "sh-wsh", "Upub": "sh-wsh", "ypub": "sh-wsh", "upub": "sh-wsh",
    "Zpub": "wsh", "Vpub": "wsh", "zpub": "wsh", "vpub": "wsh",
}

SCRIPT_LABELS = {
    "sh": "P2SH", "sh-wsh": "P2SH-P2WSH", "wsh": "P2WSH", "tr": "P2TR (taproot)",
}


class FormatError(MsigvaultError):
    """A vault configuration file is malformed, unsupported, or inconsistent with itself."""

    code = "format.invalid"


@contextmanager
def context(fmt: str, where: str = "", *, line: "int | None" = None):
    """Re-raise msigvault errors with the format name (and ``where`` in the file) in front,
    keeping their class and structured fields; ``format`` (and ``line``) are filled in."""
    try:
        yield
    except MsigvaultError as e:
        msg = str(e)
        if msg.startswith(f"{fmt}: "):
            raise e.locate(format=fmt, line=line)
        try:
            new = type(e)(f"{fmt}: {where}{msg}")
        except Exception:  # an error class with another constructor: keep the original
            raise e.locate(format=fmt, line=line) from None
        raise new.locate(**e.fields()).locate(format=fmt, line=line) from None


def as_text(data, fmt: str = "import") -> str:
    """str or bytes -> str (UTF-8, BOM and CR/LF normalised), with a size limit."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if len(data) > MAX_INPUT_CHARS * 4:
            raise FormatError(f"{fmt}: the file is larger than any vault configuration ({len(data)} bytes)")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(
                f"{fmt}: the file is not UTF-8 text; vault configurations are text or JSON files"
            ) from None
    if not isinstance(data, str):
        raise FormatError(f"{fmt}: expected the file's text (str or bytes), got {type(data).__name__}")
    if len(data) > MAX_INPUT_CHARS:
        raise FormatError(f"{fmt}: the file is larger than any vault configuration ({len(data)} characters)")
    if data.startswith("\ufeff"):
        data = data[1:]
    if _LONG_NUMBER.search(data):
        # no field of any vault format is a number this long; Python's int() would also refuse
        # it with a ValueError deep inside a parser (limit: 4300 digits)
        raise FormatError(f"{fmt}: the file contains a number with hundreds of digits; it is not a vault configuration")
    return data.replace("\r\n", "\n").replace("\r", "\n")


def load_json(text: str, fmt: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"{fmt}: the file is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})",
                          format=fmt, line=e.lineno) from None
    except (RecursionError, ValueError):
        raise FormatError(f"{fmt}: the file is not valid JSON (nested too deeply or malformed)") from None


def get_str(obj: dict, key: str, fmt: str, *, required: bool = True, where: str = "") -> Optional[str]:
    value = obj.get(key)
    if value is None:
        if required:
            raise FormatError(f"{fmt}: {where}missing \"{key}\"")
        return None
    if not isinstance(value, str):
        raise FormatError(f"{fmt}: {where}\"{key}\" must be a string, not {type(value).__name__}")
    return value


def get_int(obj: dict, key: str, fmt: str, *, required: bool = True, where: str = "") -> Optional[int]:
    value = obj.get(key)
    if value is None:
        if required:
            raise FormatError(f"{fmt}: {where}missing \"{key}\"")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(f"{fmt}: {where}\"{key}\" must be a whole number, not {type(value).__name__}")
    return value


def clean_name(name, fmt: str, *, max_len: Optional[int] = None, ascii_only: bool = False) -> str:
    """A wallet name for an export: one line of printable text."""
    if not isinstance(name, str):
        raise FormatError(f"{fmt}: the wallet name must be a string")
    name = name.strip()
    if not name:
        raise FormatError(f"{fmt}: the wallet name is empty")
    if any(not ch.isprintable() for ch in name):
        raise FormatError(f"{fmt}: the wallet name must be one line of printable text")
    if ascii_only and not name.isascii():
        raise FormatError(f"{fmt}: the wallet name must be ASCII for this format")
    if max_len is not None and len(name) > max_len:
        raise FormatError(f"{fmt}: the wallet name may have at most {max_len} characters, not {len(name)}")
    return name


def resolve_network(given, declared: "Network | None", fmt: str) -> "Network | None":
    """Combine the caller's ``network`` with a network the file itself declares."""
    net = Network.from_name(given) if given is not None else None
    if declared is not None and net is not None and declared.name != net.name:
        raise NetworkMismatch(f"{fmt}: the file is for {declared.name}, but network={net.name} was asked for")
    return net or declared


def network_from_address(address: str) -> "Network | None":
    """The network an address pins down unambiguously (only regtest's bcrt1 is unique to it)."""
    a = address.strip().lower()
    if a.startswith("bcrt1"):
        return Network.REGTEST
    return None


def check_slip132(prefixes: Iterable[str], script: str, fmt: str, *, what: str = "the file") -> None:
    """SLIP-132 versions (Ypub, Zpub, ...) must agree with the script type the file states."""
    for i, prefix in enumerate(prefixes, 1):
        implied = SLIP132_SCRIPT.get(prefix)
        if implied is None:
            continue
        if implied != script:
            raise FormatError(
                f"{fmt}: key {i} is a {prefix} key, which SLIP-132 reserves for "
                f"{SCRIPT_LABELS[implied]} wallets, but {what} says {SCRIPT_LABELS[script]}: the key was "
                f"exported for another wallet type, or the script type was changed; export the key again "
                f"for {SCRIPT_LABELS[script]}"
            )


def key_prefix(key_text: str) -> str:
    """The version prefix (xpub, tpub, Zpub, ...) of an extended key, validated."""
    return ExtendedKey.parse(key_text).prefix


def implied_fingerprint(key) -> "str | None":
    """The master fingerprint an extended key itself reveals: its own (depth 0) or its parent's
    (depth 1); None deeper down, where only the file can say."""
    if key.depth == 0:
        return key.fingerprint.hex()
    if key.depth == 1:
        return key.parent_fingerprint.hex()
    return None


def file_cosigner(xfp, path, key_text: str, fmt: str, index: int, where: str
                  ) -> "tuple[Cosigner, list[FormatWarning]]":
    """A cosigner record as a file states it (``xfp`` hex or None, ``path`` or None = unknown), and
    a warning for each way its origin disagrees with the xpub. Invalid keys are still refused."""
    with context(fmt, where):
        fp = None if xfp is None else bytes.fromhex(xfp)
        cosigner = Cosigner.unchecked_origin(fp, path, key_text)
    return cosigner, origin_warnings(cosigner, index, fmt)


def check_first_address(vault: Vault, address: str, fmt: str, *, branch: int = 0, index: int = 0) -> None:
    """The file's first address must be the vault's address at (branch, index)."""
    if not isinstance(address, str) or not address.strip():
        raise FormatError(f"{fmt}: the first address is empty")
    address = address.strip()
    try:
        expected = script_from_address(address, vault.network)
    except MsigvaultError as e:
        raise type(e)(f"{fmt}: the file's first address is not usable: {e}") from None
    derived = vault.derive_branch(branch, index)
    if expected != derived.script_pubkey:
        raise FormatError(
            f"{fmt}: the file's first address {address} is not the vault's address "
            f"{derived.address} at {'receive' if branch == 0 else 'change'} index {index}: "
            "the keys, threshold or script type in the file differ from the ones the address was made "
            "from; do not use this file, get a fresh copy from the coordinator"
        )


@dataclass(frozen=True)
class ParsedDescriptor:
    """One descriptor string, checked, before it is turned into a Vault."""

    m: int
    keys: "tuple[KeyExpression, ...]"
    script: str
    sorted: bool
    shape: str  # "multipath", "branch" (all keys /b/*), "bare" (no derivation), "fixed" (all /b/i)
    branch: Optional[int]  # branch for "branch" and "fixed"
    index: Optional[int]  # index for "fixed"
    checksum: Optional[str]

    def cosigners(self, fmt: str) -> "tuple[Cosigner, ...]":
        """The cosigner records; an origin that disagrees with its xpub is recorded, not refused
        (see :meth:`build` for the warnings)."""
        out = []
        for i, k in enumerate(self.keys, 1):
            with context(fmt, f"key {i} of the descriptor: "):
                out.append(Cosigner.from_key_expression(k, check_origin=False))
        return tuple(out)

    @property
    def prefixes(self) -> "list[str]":
        return [key_prefix(k.key) if k.kind == "xpub" else "" for k in self.keys]

    def vault(self, network, fmt: str) -> Vault:
        return self.build(network, fmt)[0]

    def build(self, network, fmt: str) -> "tuple[Vault, list[FormatWarning]]":
        """The vault, and a warning for each key origin that disagrees with its xpub."""
        cosigners = self.cosigners(fmt)
        warnings = [w for i, c in enumerate(cosigners, 1) for w in origin_warnings(c, i, fmt)]
        check_slip132(self.prefixes, self.script, fmt, what="the descriptor")
        with context(fmt):
            vault = Vault.multisig(self.m, cosigners, script=self.script, sorted=self.sorted, network=network,
                                   accept=IMPORT_ACCEPT)
        return vault, warnings


_WS = re.compile(r"\s")


def parse_descriptor(text: str, fmt: str, *, allow: "Iterable[str]" = ("multipath", "branch")) -> ParsedDescriptor:
    """Parse one vault descriptor with the one parser (policy/descriptors.py); its checksum is
    verified when present.

    ``allow`` lists the key-derivation shapes the format accepts: ``multipath`` (``/<0;1>/*``),
    ``branch`` (all ``/0/*`` or all ``/1/*``), ``bare`` (no derivation after the xpub, as Specter
    writes) and ``fixed`` (all ``/b/i``: one address, as some BSMS records carry).
    """
    if not isinstance(text, str):
        raise FormatError(f"{fmt}: a descriptor is text")
    text = text.strip()
    if not text:
        raise FormatError(f"{fmt}: the descriptor is empty")
    if _WS.search(text):
        raise FormatError(f"{fmt}: the descriptor contains spaces or line breaks inside it: remove them")
    with context(fmt):  # other multipaths are refused before anything is expanded
        parsed = parse_any_descriptor(text, only_multipath="0;1")
        m, dkeys, script, is_sorted = parsed.vault_shape()
    keys = tuple(k.key_expression() for k in dkeys)
    shapes = set()
    for i, k in enumerate(dkeys, 1):
        if k.kind != "xpub":
            raise InvalidKey(
                f"{fmt}: key {i} of the descriptor is a raw public key; a vault needs each "
                "cosigner's extended public key (xpub) with its key origin"
            )
        steps = k.paths[0]
        if k.wildcard == "*h":
            raise InvalidDescriptor(f"{fmt}: key {i} ends in a hardened wildcard, which cannot be derived from an xpub")
        if k.wildcard == "*" and len(steps) == 1:
            shapes.add(("branch", steps[0], None))
        elif k.wildcard is None and not steps:
            shapes.add(("bare", None, None))
        elif k.wildcard is None and len(steps) == 2:
            shapes.add(("fixed", steps[0], steps[1]))
        else:
            shapes.add(("other", None, None))
    if parsed.branches == 2:
        if not (shapes == {("branch", 0, None)} and {k.paths for k in dkeys} == {((0,), (1,))}):
            raise InvalidDescriptor(f"{fmt}: every key of a multipath vault descriptor must end in /<0;1>/*")
        shape, branch, index = "multipath", None, None
    elif len(shapes) != 1:
        raise InvalidDescriptor(
            f"{fmt}: the keys of the descriptor end in different derivations; a vault's keys all end in "
            "/<0;1>/* (or all /0/*, or all /1/*)"
        )
    else:
        shape, branch, index = shapes.pop()
    if shape == "other" or (shape in ("branch", "fixed") and branch not in (0, 1)):
        raise InvalidDescriptor(
            f"{fmt}: the descriptor's keys end in a derivation msigvault does not use; vault keys end in "
            "/<0;1>/* (receive branch 0, change branch 1)"
        )
    if shape == "fixed" and index >= 0x80000000:
        raise InvalidDescriptor(f"{fmt}: the descriptor's keys end in a hardened index")
    if shape not in allow:
        explain = {
            "bare": "its keys have no /<0;1>/* derivation after the xpub",
            "fixed": "its keys end in a fixed index (one address, not a wallet)",
            "branch": "it covers only one branch (/0/* or /1/*)",
            "multipath": "it is a multipath descriptor",
        }[shape]
        raise InvalidDescriptor(f"{fmt}: this descriptor is not accepted here: {explain}")
    return ParsedDescriptor(m, keys, script, is_sorted, shape, branch, index, parsed.checksum)


def same_vault(a: Vault, b: Vault) -> bool:
    return (a.m, a.cosigners, a.script, a.sorted, a.network) == (b.m, b.cosigners, b.script, b.sorted, b.network)


def describe_difference(a: Vault, b: Vault) -> str:
    if a.script != b.script:
        return f"script type {a.script} vs {b.script}"
    if a.m != b.m:
        return f"threshold {a.m} vs {b.m}"
    if a.n != b.n:
        return f"{a.n} vs {b.n} cosigners"
    if a.sorted != b.sorted:
        return "sortedmulti vs multi"
    for i, (x, y) in enumerate(zip(a.cosigners, b.cosigners), 1):
        if x != y:
            return f"cosigner {i} ({x.fingerprint.hex()} vs {y.fingerprint.hex()})"
    return "network"

