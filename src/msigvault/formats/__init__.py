"""Vault configuration import/export: every air-gap dialect keyholders and coordinators speak.

>>> text = export_vault(vault, "coldcard", name="Treasury")       # doctest: +SKIP
>>> imported = import_vault(text, network="testnet")              # doctest: +SKIP
>>> imported.vault == vault, imported.format, imported.warnings   # doctest: +SKIP

``import_vault`` detects the format when ``fmt`` is None and says which one it found. Every import
is verified (checksums, key origins against xpub depth/child/parent, SLIP-132 versions against the
script type, networks, m-of-n, duplicate keys, first address when the file carries one, MACs and
signatures for BSMS); a mismatch raises a :class:`msigvault.errors.MsigvaultError` subclass, most
often :class:`FormatError`, whose message says what is wrong. Things that are not wrong but worth
knowing (a default was assumed, a branch was implied) and inconsistencies other wallets write
routinely (a key origin that disagrees with its xpub, no origin at all, a coin type that is not the
network's) come back in ``ImportedVault.warnings`` as :class:`FormatWarning` (a
:class:`WarningCode` and a message). Such a vault can be watched; the signer refuses only the
keyholder whose own record is wrong.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Optional

from ..errors import InvalidKey, MsigvaultError
from ..keys.cosigner import Cosigner
from ..network import Network
from ..policy.vault import Vault
from . import bip388, bsms, caravan, coldcard, descriptor, electrum, sparrow, specter
from ._common import FormatError, as_text, load_json
from ._warnings import FormatWarning, WarningCode, deviation_warnings
from .bsms import bsms_key_record, parse_bsms_key_record, verify_bsms_key_record
from .coldcard import cosigner_from_xpub_export

FORMATS = ("descriptor", "bip388", "bsms", "coldcard", "specter", "caravan", "sparrow", "electrum")

_MODULES = {
    "descriptor": descriptor, "bip388": bip388, "bsms": bsms, "coldcard": coldcard,
    "specter": specter, "caravan": caravan, "sparrow": sparrow, "electrum": electrum,
}

__all__ = [
    "FORMATS", "ImportedVault", "FormatError", "FormatWarning", "WarningCode", "export_vault", "import_vault",
    "detect_format",
    "import_cosigner", "bsms_key_record", "verify_bsms_key_record", "parse_bsms_key_record",
    "cosigner_from_xpub_export",
]


@dataclass(frozen=True)
class ImportedVault:
    """The result of :func:`import_vault`."""

    vault: Vault
    format: str  # one of FORMATS: what the file was read as
    name: Optional[str]  # the wallet name the file carries, if any
    warnings: "tuple[FormatWarning, ...]" = ()

    def warning_codes(self) -> "frozenset[WarningCode]":
        """The codes of ``warnings`` (e.g. to refuse a file with an unverified key origin)."""
        return frozenset(w.code for w in self.warnings)


def _check_fmt(fmt) -> str:
    if fmt not in _MODULES:
        raise FormatError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return fmt


def export_vault(vault: Vault, fmt: str, *, name: str = "msigvault", **options) -> str:
    """The text of a ``fmt`` file describing ``vault``.

    Options by format: ``descriptor``: ``form`` (multipath, pair, listdescriptors,
    importdescriptors), ``timestamp``, ``range_end``; ``bip388``: ``form`` (json, text);
    ``bsms``: ``token`` (encrypts the descriptor record); ``coldcard``: ``header``; ``specter``:
    ``blockheight``, ``devices``, ``form`` (json, diy); ``caravan``: ``key_names``, ``client``;
    ``electrum``: none.
    A format that cannot express the vault (taproot in Coldcard, Caravan or BIP388; unsorted
    ``multi`` in Coldcard or Caravan) raises :class:`FormatError` saying which format can.
    """
    if not isinstance(vault, Vault):
        raise FormatError("export_vault needs a Vault")
    module = _MODULES[_check_fmt(fmt)]
    if vault.recovery and fmt != "descriptor":  # docs/recovery.md: only a descriptor holds recovery paths
        raise FormatError(f"{fmt}: this vault has timelocked recovery paths, which a {fmt} file cannot express "
                          "(it would describe a plain multisig of other keys): export it as a descriptor")
    try:
        inspect.signature(module.export).bind(vault, name=name, **options)
    except TypeError:
        allowed = [p for p in inspect.signature(module.export).parameters if p not in ("vault", "name")]
        raise FormatError(
            f"{fmt}: unknown option(s) {', '.join(sorted(options))}; this format takes "
            + (", ".join(allowed) if allowed else "no options")
        ) from None
    try:
        return module.export(vault, name=name, **options)
    except MsigvaultError as e:
        raise e.locate(format=fmt)


def detect_format(text) -> str:
    """The format a file is written in (by its structure, not its name); FormatError if none."""
    text = as_text(text, "detect")
    s = text.strip()
    if not s:
        raise FormatError("the file is empty")
    if s.startswith("BSMS ") or bsms.is_encrypted(s):
        return "bsms"
    if electrum.is_encrypted(s):
        return "electrum"
    if specter.is_diy(s):
        return "specter"
    if s.startswith(("{", "[")):
        obj = load_json(s, "detect")
        if isinstance(obj, dict):
            if electrum.is_multisig_wallet(obj) or "wallet_type" in obj and "seed_version" in obj:
                return "electrum"
            if "extendedPublicKeys" in obj or "quorum" in obj or "addressType" in obj:
                return "caravan"
            if "descriptor_template" in obj or "keys_info" in obj:
                return "bip388"
            if "descriptors" in obj or "desc" in obj:
                return "descriptor"
            if "descriptor" in obj or "recv_descriptor" in obj:
                return "specter"
            if "xfp" in obj and any(k in obj for k in ("p2wsh", "p2sh", "p2sh_p2wsh", "bip48_1", "bip48_2")):
                raise FormatError(
                    "this is a Coldcard 'Export XPUB' file: one keyholder's cosigner record, not a vault; read it "
                    "with import_cosigner() or cosigner_from_xpub_export()"
                )
        if isinstance(obj, list) and obj and all(isinstance(x, dict) and "desc" in x for x in obj):
            return "descriptor"
        raise FormatError("this JSON is not a vault configuration msigvault knows (" + ", ".join(FORMATS) + ")")
    lines = [line.strip() for line in s.split("\n") if line.strip()]
    lower = [line.lower() for line in lines]
    if any(line.startswith(("descriptor template:", "keys info:")) for line in lower):
        return "bip388"
    labels = ("name:", "policy:", "format:", "derivation:")
    if any(line.startswith(labels) for line in lower) or any(
        len(line) > 9 and line[8] == ":" and all(c in "0123456789abcdef" for c in line[:8]) for line in lower
    ):
        return "coldcard"
    if any(line.startswith("#") for line in lines):
        return "sparrow"
    if any("(" in line for line in lines):
        return "descriptor"
    raise FormatError(
        "the file is not in any vault format msigvault knows (" + ", ".join(FORMATS) + "): nothing in it looks "
        "like a descriptor, a BSMS record, a Coldcard setup file or a wallet JSON"
    )


def import_vault(text, *, network=None, fmt: Optional[str] = None, token=None) -> ImportedVault:
    """Read a vault configuration file (str or bytes), verify it, and return the vault.

    ``network``: needed when the keys are tpubs and the file does not say which test network
    (tpub keys serve testnet, signet and regtest). ``token``: the BIP129 TOKEN of an encrypted BSMS
    record. With ``fmt=None`` the format is detected and reported in ``ImportedVault.format``.
    """
    text = as_text(text, fmt or "import")
    found = detect_format(text) if fmt is None else _check_fmt(fmt)
    if network is not None:
        network = Network.from_name(network)
    try:
        if found == "bsms":
            vault, name, warnings = bsms.parse(text, network=network, token=token)
        else:
            if token is not None:
                raise FormatError(f"{found}: a TOKEN only applies to BSMS records")
            vault, name, warnings = _MODULES[found].parse(text, network=network)
    except MsigvaultError as e:
        raise e.locate(format=found)
    warnings = list(warnings) + deviation_warnings(vault, found)
    return ImportedVault(vault, found, name, tuple(warnings))


def import_cosigner(text, *, network=None, token=None, script: Optional[str] = None) -> Cosigner:
    """One keyholder's cosigner record from a BSMS key record (signature checked), a Coldcard
    "Export XPUB" JSON (``script`` picks the key), or ``[fingerprint/path]xpub`` text."""
    text = as_text(text, "cosigner").strip()
    if text.startswith("BSMS ") or bsms.is_encrypted(text):
        cosigner = verify_bsms_key_record(text, token)
    elif text.startswith("{"):
        cosigner = cosigner_from_xpub_export(text, script or "wsh")
    else:
        if "\n" in text:
            raise FormatError("cosigner: expected one [fingerprint/path]xpub line")
        try:
            cosigner = Cosigner.parse(text)
        except InvalidKey as e:
            raise InvalidKey(f"cosigner: {e}") from None
    if network is not None:
        cosigner.check_network(Network.from_name(network))
    return cosigner

