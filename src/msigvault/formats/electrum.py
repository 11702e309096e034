"""Electrum multisig wallet files (JSON), as Electrum writes them and as Coldcard exports them::

    {"wallet_type": "2of3", "use_encryption": false, "seed_version": 17,
     "x1/": {"type": "bip32", "xpub": "Zpub...", "xprv": null,
             "derivation": "m/48h/0h/0h/2h", "root_fingerprint": "f00dbabe"},
     "x2/": {"type": "hardware", "hw_type": "coldcard", "xpub": "Zpub...", "ckcc_xfp": 1130956047,
             "derivation": "m/48'/0'/0'/2'", "label": "Coldcard 0F056943"},
     ...}

The field names are Electrum's own (``electrum/keystore.py``: ``BIP32_KeyStore.dump`` and
``Hardware_KeyStore.dump``; ``electrum/wallet.py``: ``Multisig_Wallet`` reads ``wallet_type``
``MofN`` and keystores ``x1/`` ... ``xN/``). Electrum multisig is always BIP67-sorted and names no
script type: it is the keys' SLIP-132 version (``xpub``/``tpub`` P2SH, ``Ypub``/``Upub``
P2SH-P2WSH, ``Zpub``/``Vpub`` P2WSH), which must be the same for every key. The master
fingerprint is ``root_fingerprint`` (hex) or Coldcard's ``ckcc_xfp`` (a little-endian 32-bit
integer); old files have neither, or no ``derivation``: such keys import with a warning (see
``docs/formats.md``) and so do origins that disagree with their xpub.

Refused: encrypted wallet files (Electrum's password-encrypted storage is base64 starting
``BIE1``; msigvault never asks for wallet passwords), files holding private keys or seeds (a
non-null ``xprv``, ``seed``, ``keypairs``, or ``use_encryption`` true, which means encrypted
private keys are in it), single-signature and imported-address wallets, taproot (Electrum has no
taproot multisig) and unsorted ``multi`` on export.

Export writes a watch-only skeleton in the shape Coldcard's "Electrum Wallet" export uses (which
Electrum opens and upgrades): ``seed_version`` 17, one ``bip32`` keystore per cosigner.
"""

from __future__ import annotations

import json
import re

from ..keys.bip32 import ExtendedKey
from ..keys.cosigner import OriginIssue
from ..keys.paths import format_path, parse_path
from ..policy.vault import Vault
from ._common import (
    IMPORT_ACCEPT,
    SCRIPT_LABELS,
    FormatError,
    FormatWarning,
    WarningCode,
    as_text,
    context,
    file_cosigner,
    get_str,
    implied_fingerprint,
    load_json,
    resolve_network,
)

FORMAT = "electrum"
MAX_KEYSTORES = 15  # Electrum's multisig limit (CHECKMULTISIG in P2SH)
SEED_VERSION = 17  # the version Coldcard's Electrum export writes; Electrum upgrades it on open
ENCRYPTED_PREFIX = "QklFMQ"  # base64 of b"BIE1": Electrum's encrypted wallet storage
_WALLET_TYPE = re.compile(r"^([0-9]{1,3})of([0-9]{1,3})$")
_KEYSTORE = re.compile(r"^x([0-9]{1,3})/$")
_XFP = re.compile(r"^[0-9a-fA-F]{8}$")
SCRIPT_OF_PREFIX = {"xpub": "sh", "tpub": "sh", "Ypub": "sh-wsh", "Upub": "sh-wsh", "Zpub": "wsh", "Vpub": "wsh"}
_PREFIX_OF_SCRIPT = {("sh", True): "xpub", ("sh", False): "tpub", ("sh-wsh", True): "Ypub",
                     ("sh-wsh", False): "Upub", ("wsh", True): "Zpub", ("wsh", False): "Vpub"}
_PRIVATE_FIELDS = ("xprv", "seed", "keypairs", "passphrase")


def is_encrypted(text: str) -> bool:
    """True for Electrum's password-encrypted wallet storage (base64 of ``BIE1...``)."""
    return text.lstrip().startswith(ENCRYPTED_PREFIX)


def is_multisig_wallet(obj) -> bool:
    """True for the JSON of an Electrum multisig wallet (``wallet_type`` and an ``x1/`` keystore)."""
    return isinstance(obj, dict) and isinstance(obj.get("wallet_type"), str) and "x1/" in obj


def export(vault: Vault, *, name: str = "msigvault") -> str:
    """A watch-only Electrum multisig wallet file for ``vault`` (Electrum stores no wallet name)."""
    if vault.script == "tr":
        raise FormatError(f"{FORMAT}: Electrum has no taproot multisig wallets; use fmt='descriptor'")
    if not vault.sorted:
        raise FormatError(f"{FORMAT}: Electrum multisig always sorts keys (BIP67); this vault uses multi: use fmt='descriptor'")
    if vault.n > MAX_KEYSTORES:
        raise FormatError(f"{FORMAT}: Electrum multisig wallets have at most {MAX_KEYSTORES} keys, this vault has {vault.n}")
    version = vault.network.slip132_pub[_PREFIX_OF_SCRIPT[(vault.script, vault.network.is_mainnet)]]
    obj = {"wallet_type": f"{vault.m}of{vault.n}", "use_encryption": False, "seed_version": SEED_VERSION}
    for i, c in enumerate(vault.cosigners, 1):
        unknown = OriginIssue.UNKNOWN in c.origin_issues
        no_fp = unknown or OriginIssue.FINGERPRINT_UNKNOWN in c.origin_issues
        obj[f"x{i}/"] = {
            "type": "bip32",
            "xpub": c.key.to_base58(version),
            "xprv": None,
            "derivation": None if unknown else format_path(c.path),
            "root_fingerprint": None if no_fp else c.fingerprint.hex(),
        }
    return json.dumps(obj, indent=4) + "\n"


def parse(text, *, network=None, fmt: str = FORMAT):
    text = as_text(text, fmt)
    if is_encrypted(text):
        raise FormatError(
            f"{fmt}: this Electrum wallet file is encrypted with its password, and msigvault never asks for wallet "
            "passwords: in Electrum, remove the file's password (Wallet > Password, leave the new one empty) on a "
            "watch-only copy of the wallet, or export the vault as a descriptor or Coldcard file"
        )
    return parse_wallet(load_json(text.strip(), fmt), network=network, fmt=fmt)


def parse_wallet(obj, *, network=None, fmt: str = FORMAT):
    """(vault, name, warnings) of a parsed Electrum multisig wallet JSON object."""
    m, n = _wallet_type(obj, fmt)
    if obj.get("use_encryption") is True:
        raise FormatError(
            f"{fmt}: the wallet file has use_encryption set: it holds password-encrypted private keys or a seed; "
            "give msigvault a watch-only copy (Electrum: File > New, 'Use a master key', the cosigners' xpubs)"
        )
    cosigners, prefixes, warnings = [], [], []
    for i in range(1, n + 1):
        cosigner, prefix, notes = _keystore(obj.get(f"x{i}/"), i, m, n, fmt)
        cosigners.append(cosigner)
        prefixes.append(prefix)
        warnings += notes
    script = _script(prefixes, fmt)
    warnings.insert(0, FormatWarning(
        WarningCode.SCRIPT_FROM_KEYS,
        f"{fmt}: Electrum wallet file: the script type ({SCRIPT_LABELS[script]}) comes from the keys' SLIP-132 versions",
    ))
    net = resolve_network(network, None, fmt)
    with context(fmt):
        vault = Vault.multisig(m, cosigners, script=script, sorted=True, network=net, accept=IMPORT_ACCEPT)
    return vault, None, warnings


def _wallet_type(obj, fmt: str) -> "tuple[int, int]":
    if not isinstance(obj, dict):
        raise FormatError(f"{fmt}: expected a JSON object (an Electrum wallet file)")
    wallet_type = obj.get("wallet_type")
    if wallet_type in ("standard", "imported", "old"):
        raise FormatError(f"{fmt}: this is a single-signature Electrum wallet ({wallet_type}), not a multisig vault")
    if not isinstance(wallet_type, str):
        raise FormatError(f"{fmt}: missing \"wallet_type\" (Electrum multisig wallets say MofN, e.g. 2of3)")
    mat = _WALLET_TYPE.match(wallet_type)
    if not mat:
        raise FormatError(f"{fmt}: wallet_type must read MofN (e.g. 2of3), not {wallet_type[:20]!r}")
    m, n = int(mat.group(1)), int(mat.group(2))
    version = obj.get("seed_version")
    if "x1/" not in obj and isinstance(version, int) and not isinstance(version, bool) and version < 13:
        raise FormatError(
            f"{fmt}: this wallet file was written by Electrum before 2.7 (seed_version {version}), which "
            "stored keys another way: open it once in a current Electrum (it upgrades the file), then import it"
        )
    if not 1 <= n <= MAX_KEYSTORES:
        raise FormatError(f"{fmt}: wallet_type {m}of{n}: Electrum multisig wallets have 1 to {MAX_KEYSTORES} keys")
    extra = sorted(k for k in obj if isinstance(k, str) and _KEYSTORE.match(k) and not 1 <= int(k[1:-1]) <= n)
    if extra:
        raise FormatError(f"{fmt}: wallet_type says {m}of{n}, but the file has other keystores ({', '.join(extra[:3])})")
    return m, n


def _keystore(ks, i: int, m: int, n: int, fmt: str):
    """(cosigner, SLIP-132 prefix, warnings) of keystore ``x{i}/``."""
    where = f"keystore x{i}/: "
    if not isinstance(ks, dict):
        raise FormatError(f"{fmt}: wallet_type says {m}of{n}, but keystore x{i}/ is missing")
    if any(ks.get(k) not in (None, "", {}, []) for k in _PRIVATE_FIELDS):
        raise FormatError(f"{fmt}: {where}the file holds private keys or a seed; give msigvault a watch-only copy")
    kind = ks.get("type", "bip32")
    if kind not in ("bip32", "hardware"):
        raise FormatError(f"{fmt}: {where}keystore type {str(kind)[:20]!r} has no extended public key; a vault needs "
                          "bip32 or hardware keystores")
    key_text = get_str(ks, "xpub", fmt, where=where)
    with context(fmt, where):
        key = ExtendedKey.parse(key_text)
    xfp = _fingerprint(ks, fmt, where)
    deriv = ks.get("derivation")
    if deriv is None:
        path = (key.child_number,) if key.depth == 1 else (() if key.depth == 0 else None)
    elif not isinstance(deriv, str):
        raise FormatError(f"{fmt}: {where}derivation must be a string")
    else:
        with context(fmt, where):
            path = parse_path(deriv)
    if xfp is None and path is not None:
        xfp = implied_fingerprint(key)
    cosigner, notes = file_cosigner(xfp, path, key_text, fmt, i, where)
    return cosigner, key.prefix, notes


def _fingerprint(ks: dict, fmt: str, where: str) -> "str | None":
    found = set()
    ckcc = ks.get("ckcc_xfp")
    if ckcc is not None:
        if isinstance(ckcc, bool) or not isinstance(ckcc, int) or not 0 < ckcc < 2**32:
            raise FormatError(f"{fmt}: {where}ckcc_xfp must be a 32-bit number")
        found.add(ckcc.to_bytes(4, "little").hex())
    root_fp = ks.get("root_fingerprint")
    if root_fp is not None:
        if not isinstance(root_fp, str) or not _XFP.match(root_fp):
            raise FormatError(f"{fmt}: {where}root_fingerprint must be 8 hex digits")
        found.add(root_fp.lower())
    if len(found) > 1:
        raise FormatError(f"{fmt}: {where}ckcc_xfp and root_fingerprint name different master keys")
    return found.pop() if found else None


def _script(prefixes: "list[str]", fmt: str) -> str:
    scripts = {SCRIPT_OF_PREFIX.get(p) for p in prefixes}
    if None in scripts:
        bad = next(p for p in prefixes if p not in SCRIPT_OF_PREFIX)
        raise FormatError(f"{fmt}: a {bad} key is a single-signature key; Electrum multisig uses xpub, Ypub or Zpub")
    if len(scripts) != 1:
        raise FormatError(
            f"{fmt}: the keys have different SLIP-132 versions ({', '.join(sorted(set(prefixes)))}), so the file "
            "names no single script type"
        )
    return scripts.pop()
