"""Caravan's wallet configuration (Unchained's coordinator; also written by Sparrow and Nunchuk)::

    {"name": "My Vault", "addressType": "P2WSH", "network": "mainnet",
     "client": {"type": "public"},
     "quorum": {"requiredSigners": 2, "totalSigners": 3},
     "extendedPublicKeys": [{"name": "Alice", "bip32Path": "m/48'/0'/0'/2'",
                             "xpub": "xpub...", "xfp": "f57ec65d", "method": "trezor"}, ...],
     "startingAddressIndex": 0}

Caravan always uses BIP67 ``sortedmulti`` on ``/0/*`` and ``/1/*``. ``addressType`` is ``P2SH``,
``P2SH-P2WSH`` or ``P2WSH`` (no taproot); ``network`` is ``mainnet``, ``testnet``, ``signet`` or
``regtest``. On import, ``totalSigners`` must equal the number of keys and keys must belong to
``network``; ``client`` details (which can hold node credentials) are ignored and never echoed.
Caravan writes ``"bip32Path": "Unknown"`` (or ``"Unknown (make sure you have written this down
previously!)"``) and ``"xfp": "00000000"`` or ``""`` for a key pasted as text: such a key is
imported with a warning, recorded with the fingerprint the file gives (or, with none, as its own
root, as BIP380 reads a key without origin). The vault can be watched; that keyholder cannot sign
until the key is imported again with its origin. Export writes ``"Unknown"`` / ``"00000000"`` back
for such keys.
"""

from __future__ import annotations

import json
import re

from ..keys.bip32 import ExtendedKey
from ..keys.cosigner import OriginIssue
from ..keys.paths import format_path, parse_path
from ..network import Network
from ..policy.vault import Vault
from ._common import (
    IMPORT_ACCEPT,
    FormatError,
    FormatWarning,
    WarningCode,
    file_cosigner,
    implied_fingerprint,
    as_text,
    check_slip132,
    clean_name,
    context,
    get_int,
    get_str,
    load_json,
    resolve_network,
)

FORMAT = "caravan"
ADDRESS_TYPES = {"P2SH": "sh", "P2SH-P2WSH": "sh-wsh", "P2WSH": "wsh"}
_EXPORT_TYPES = {v: k for k, v in ADDRESS_TYPES.items()}
NETWORKS = {"mainnet": Network.MAINNET, "testnet": Network.TESTNET, "signet": Network.SIGNET,
            "regtest": Network.REGTEST}
_XFP = re.compile(r"^[0-9a-fA-F]{8}$")


def export(vault: Vault, *, name: str = "msigvault", key_names=None, client=None) -> str:
    if vault.script not in _EXPORT_TYPES:
        raise FormatError(f"{FORMAT}: Caravan has no taproot address type; use fmt='descriptor'")
    if not vault.sorted:
        raise FormatError(f"{FORMAT}: Caravan always uses sortedmulti; this vault uses multi (keys in order)")
    name = clean_name(name, FORMAT)
    if key_names is None:
        key_names = [f"Cosigner {i} ({c.fingerprint.hex()})" for i, c in enumerate(vault.cosigners, 1)]
    if not isinstance(key_names, (list, tuple)) or len(key_names) != vault.n:
        raise FormatError(f"{FORMAT}: key_names must give one name per cosigner ({vault.n})")
    keys = []
    for label, c in zip(key_names, vault.cosigners):
        unknown = OriginIssue.UNKNOWN in c.origin_issues
        no_fp = unknown or OriginIssue.FINGERPRINT_UNKNOWN in c.origin_issues
        keys.append({
            "name": clean_name(label, FORMAT),
            "bip32Path": "Unknown" if unknown else format_path(c.path, hardened_marker="'"),
            "xpub": c.xpub,
            "xfp": "00000000" if no_fp else c.fingerprint.hex(),
            "method": "text",
        })
    obj = {
        "name": name,
        "uuid": "",
        "addressType": _EXPORT_TYPES[vault.script],
        "network": vault.network.name,
        "client": client if client is not None else {"type": "public"},
        "quorum": {"requiredSigners": vault.m, "totalSigners": vault.n},
        "extendedPublicKeys": keys,
        "startingAddressIndex": 0,
        "ledgerPolicyHmacs": [],
    }
    return json.dumps(obj, indent=2) + "\n"


def parse(text, *, network=None, fmt: str = FORMAT):
    obj = load_json(as_text(text, fmt).strip(), fmt)
    if not isinstance(obj, dict):
        raise FormatError(f"{fmt}: expected a JSON object (a Caravan wallet configuration)")
    warnings = []
    address_type = get_str(obj, "addressType", fmt)
    script = ADDRESS_TYPES.get(address_type.upper())
    if script is None:
        raise FormatError(f"{fmt}: unsupported addressType {address_type[:20]!r}; Caravan uses P2SH, P2SH-P2WSH or P2WSH")
    net_name = get_str(obj, "network", fmt)
    declared = NETWORKS.get(net_name.lower())
    if declared is None:
        raise FormatError(f"{fmt}: unknown network {net_name[:20]!r}; use mainnet, testnet, signet or regtest")
    net = resolve_network(network, declared, fmt)
    quorum = obj.get("quorum")
    if not isinstance(quorum, dict):
        raise FormatError(f"{fmt}: missing \"quorum\" {{requiredSigners, totalSigners}}")
    m = get_int(quorum, "requiredSigners", fmt, where="quorum: ")
    total = get_int(quorum, "totalSigners", fmt, where="quorum: ")
    items = obj.get("extendedPublicKeys")
    if not isinstance(items, list) or not items:
        raise FormatError(f"{fmt}: \"extendedPublicKeys\" must be a non-empty list")
    if total != len(items):
        raise FormatError(
            f"{fmt}: quorum.totalSigners is {total}, but the file lists {len(items)} extended public key(s): "
            "a key is missing or extra"
        )
    cosigners, prefixes = [], []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise FormatError(f"{fmt}: extended public key {i} is not an object")
        where = f"extended public key {i}: "
        xpub = get_str(item, "xpub", fmt, where=where)
        path_text = get_str(item, "bip32Path", fmt, where=where, required=False)
        xfp = get_str(item, "xfp", fmt, where=where, required=False)
        with context(fmt, where):
            key = ExtendedKey.parse(xpub)
        path = None
        if path_text and not path_text.lower().startswith("unknown"):
            with context(fmt, where):
                path = parse_path(path_text)
        if not xfp or xfp.lower() in ("00000000", "unknown"):
            xfp = implied_fingerprint(key) if path is not None else None
        elif not _XFP.match(xfp):
            raise FormatError(f"{fmt}: {where}xfp must be 8 hex digits")
        cosigner, notes = file_cosigner(xfp, path, xpub, fmt, i, where)
        if path is None:
            notes = [FormatWarning(
                WarningCode.ORIGIN_UNKNOWN,
                f"{fmt}: key {i} ({item.get('name', '')!s:.40}): its bip32Path is unknown (Caravan writes this for a "
                f"key pasted as text){'' if xfp else ' and so is its xfp'}: it is recorded as "
                f"{cosigner.origin() or 'a bare xpub'}; the vault can be watched and its addresses derived, but this "
                "keyholder's signer will refuse to sign until the key is imported again from its device", i)]
        cosigners.append(cosigner)
        warnings += notes
        prefixes.append(key.prefix)
    check_slip132(prefixes, script, fmt, what="addressType")
    start = get_int(obj, "startingAddressIndex", fmt, required=False)
    if start:
        warnings.append(FormatWarning(
            WarningCode.STARTING_INDEX, f"{fmt}: startingAddressIndex is {start}: Caravan skips the addresses below it"))
    name = obj.get("name") if isinstance(obj.get("name"), str) else None
    with context(fmt):
        vault = Vault.multisig(m, cosigners, script=script, sorted=True, network=net, accept=IMPORT_ACCEPT)
    return vault, name, warnings
