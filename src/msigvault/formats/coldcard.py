"""Coldcard's multisig setup text file, the de-facto air-gap format.

Written by Coldcard, Passport, Keystone, Jade, SeedSigner, BlueWallet, Electrum ("Export for
Coldcard"), Sparrow, Specter and Nunchuk::

    # Coldcard Multisig setup file (created on 0F056943)
    #
    Name: CC-2-of-4
    Policy: 2 of 4
    Derivation: m/48'/1'/0'/2'
    Format: P2WSH

    0F056943: tpubDF2rnouQ...
    6BA6CFD0: tpubDFcrvj5n...

Rules follow Coldcard's own parser (``shared/multisig.py``): labels are case-insensitive, ``#``
starts a comment, ``Derivation:`` applies to the keys after it (so each key may have its own),
``Format`` is ``P2SH`` (the default), ``P2SH-P2WSH`` (alias ``P2WSH-P2SH``) or ``P2WSH``, a missing
``Policy`` means N-of-N, and a bare xpub of depth 1 may omit its fingerprint. A ``# derivation: ...``
comment, which Electrum and BlueWallet write before each key, sets the next key's derivation
(Coldcard ignores comments, so one that contradicts a ``Derivation:`` line is refused).
A ``Sorted: false`` line (some wallets add it) selects ``multi`` instead of BIP67 ``sortedmulti``.

On import, msigvault checks more than Coldcard can: every key's depth, child number and (depth 1)
parent fingerprint against its derivation, the SLIP-132 version (Ypub/Upub = P2SH-P2WSH, Zpub/Vpub
= P2WSH) against ``Format``, coin type against network, N against the number of keys, duplicate
keys; it warns when a BIP48 path names another script type than ``Format``.

There is no taproot in this format (Coldcard registers taproot multisig as a descriptor).

The same module reads Coldcard's other multisig JSON, the "Electrum Wallet" export
(``el-NAME.json``, Electrum's wallet-file skeleton): see :func:`parse_electrum`.

``cosigner_from_xpub_export`` reads Coldcard's "Export XPUB" file (``ccxp-XXXXXXXX.json``), which
carries one keyholder's cosigner record for each script type, and the ``bip45``/``bip48_1``/
``bip48_2`` sections of Coldcard's "Generic JSON" export.
"""

from __future__ import annotations

import re

from ..keys.bip32 import ExtendedKey
from ..keys.cosigner import Cosigner
from ..keys.paths import HARDENED, format_path, parse_path
from ..network import Network
from ..policy.vault import Vault
from ._common import (
    SCRIPT_LABELS,
    FormatError,
    implied_fingerprint,
    as_text,
    check_slip132,
    clean_name,
    context,
    get_str,
    load_json,
    resolve_network,
)

FORMAT = "coldcard"
FORMAT_NAMES = {"p2sh": "sh", "p2wsh": "wsh", "p2sh-p2wsh": "sh-wsh", "p2wsh-p2sh": "sh-wsh"}
EXPORT_NAMES = {"sh": "P2SH", "wsh": "P2WSH", "sh-wsh": "P2SH-P2WSH"}
MAX_SIGNERS = 15  # Coldcard's limit (CHECKMULTISIG in P2SH)
_POLICY = re.compile(r"^([0-9]{1,4})\s*(?:of|/|,|\s)\s*([0-9]{1,4})$", re.IGNORECASE)
_XFP = re.compile(r"^[0-9a-fA-F]{8}$")
_BIP48_SCRIPT = {1: "sh-wsh", 2: "wsh"}


def export(vault: Vault, *, name: str = "msigvault", header: str = "created by msigvault") -> str:
    """Coldcard's setup file, laid out exactly as Coldcard's own export."""
    if vault.script == "tr":
        raise FormatError(
            f"{FORMAT}: Coldcard's multisig text file has no taproot format; give Coldcard the descriptor "
            "(fmt='descriptor')"
        )
    if not vault.sorted:
        raise FormatError(
            f"{FORMAT}: Coldcard's text file always means BIP67 sortedmulti; this vault uses multi (keys in "
            "order): use fmt='descriptor'"
        )
    if vault.n > MAX_SIGNERS:
        raise FormatError(f"{FORMAT}: Coldcard supports at most {MAX_SIGNERS} co-signers, this vault has {vault.n}")
    name = clean_name(name, FORMAT, max_len=20, ascii_only=True)
    header = clean_name(header, FORMAT)
    lines = [f"# Coldcard Multisig setup file ({header})", "#", f"Name: {name}", f"Policy: {vault.m} of {vault.n}"]
    if vault.script != "sh":
        lines.append(f"Format: {EXPORT_NAMES[vault.script]}")
    last = None
    for c in vault.cosigners:
        deriv = format_path(c.path, hardened_marker="'")
        if deriv != last:
            lines += ["", f"Derivation: {deriv}", ""]
            last = deriv
        lines.append(f"{c.fingerprint.hex().upper()}: {c.xpub}")
    return "\n".join(lines) + "\n"


def _path(value: str, fmt: str, lineno: int):
    if not value:
        raise FormatError(f"{fmt}: line {lineno}: the derivation is blank")
    with context(fmt, f"line {lineno}: "):
        return parse_path(value)


def parse(text, *, network=None, fmt: str = FORMAT):
    text = as_text(text, fmt)
    stripped = text.strip()
    if stripped.startswith("{"):
        return parse_electrum(load_json(stripped, fmt), network=network, fmt=fmt)
    if stripped and "\n" not in stripped and ":" not in stripped.split("(", 1)[0] and "(" in stripped:
        # Coldcard imports a one-line descriptor file as well
        from .descriptor import parse as parse_descriptor_file

        return parse_descriptor_file(text, network=network, fmt=fmt)
    name = None
    m = n = None
    script = None
    is_sorted = True
    deriv = None  # from "Derivation:" lines: applies to every key after it (Coldcard's rule)
    comment_deriv = None  # from a "# derivation:" comment: applies to the next key only
    keys = []  # (xfp hex or None, path or None, key text, line number)
    warnings = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            head, sep, value = line[1:].strip().partition(":")
            if sep and head.strip().lower() == "derivation":
                comment_deriv = _path(value.strip(), fmt, lineno)
            continue
        comment = line.find("#")
        if comment != -1 and not line[comment + 1:comment + 2].isdigit():
            line = line[:comment].strip()
        if ":" not in line:
            if "pub" in line and " " not in line:
                label, value = "", line
            else:
                raise FormatError(f"{fmt}: line {lineno} is not 'Label: value' nor a key")
        else:
            label, _, value = line.partition(":")
            label, value = label.strip().lower(), value.strip()
        if label == "name":
            name = value
        elif label == "policy":
            mat = _POLICY.match(value)
            if not mat:
                raise FormatError(f"{fmt}: line {lineno}: the Policy line must read 'M of N'")
            m, n = int(mat.group(1)), int(mat.group(2))
        elif label == "derivation":
            deriv = _path(value, fmt, lineno)
        elif label == "format":
            v = value.lower()
            if v not in FORMAT_NAMES:
                if v.startswith("p2tr"):
                    raise FormatError(
                        f"{fmt}: line {lineno}: Format {value[:20]} — Coldcard's text file has no taproot format; "
                        "taproot vaults travel as descriptors"
                    )
                raise FormatError(
                    f"{fmt}: line {lineno}: unknown Format {value[:20]!r}; use P2SH, P2SH-P2WSH or P2WSH"
                )
            script = FORMAT_NAMES[v]
        elif label == "sorted":
            v = value.lower()
            if v not in ("true", "false", "yes", "no", "1", "0"):
                raise FormatError(f"{fmt}: line {lineno}: Sorted must be true or false")
            is_sorted = v in ("true", "yes", "1")
        elif label == "" or _XFP.match(label):
            if len(keys) >= 1000:
                raise FormatError(f"{fmt}: too many keys")
            path = deriv
            if comment_deriv is not None:
                if deriv is not None and comment_deriv != deriv:
                    # Coldcard ignores comments and would use the Derivation line: refuse rather
                    # than read another vault than the device registers
                    raise FormatError(
                        f"{fmt}: line {lineno}: the '# derivation:' comment before this key says "
                        f"{format_path(comment_deriv)} but the Derivation line in effect says {format_path(deriv)}"
                    )
                path = comment_deriv
                comment_deriv = None
            keys.append((label or None, path, value, lineno))
        else:
            warnings.append(f"{fmt}: line {lineno}: unknown label {label[:20]!r} ignored")
    if not keys:
        raise FormatError(f"{fmt}: the file lists no keys ('XFP: xpub' lines)")
    if m is None:
        m = n = len(keys)
        warnings.append(f"{fmt}: no Policy line: {m}-of-{n} assumed (Coldcard's default: every key must sign)")
    if n != len(keys):
        raise FormatError(
            f"{fmt}: the Policy says {m} of {n}, but the file lists {len(keys)} key(s): a key is missing or extra"
        )
    format_what = "the Format line"
    if script is None:
        script = "sh"
        format_what = "the file (no Format line: P2SH, Coldcard's default)"
        warnings.append(f"{fmt}: no Format line: P2SH assumed (Coldcard's default)")
    cosigners, prefixes = [], []
    for i, (xfp, path, key_text, lineno) in enumerate(keys, 1):
        with context(fmt, f"key {i} (line {lineno}): "):
            key = ExtendedKey.parse(key_text)
        if path is None:
            if key.depth == 1:
                path = (key.child_number,)
            elif key.depth == 0:
                path = ()
            else:
                raise FormatError(
                    f"{fmt}: key {i} (line {lineno}) has depth {key.depth} but no Derivation line before it: "
                    "add 'Derivation: m/...' so signers can find their keys"
                )
        if xfp is None or xfp == "00000000":
            xfp = implied_fingerprint(key)
            if xfp is None:
                raise FormatError(f"{fmt}: key {i} (line {lineno}) has no master fingerprint; write it as 'XFP: xpub'")
        with context(fmt, f"key {i} ({xfp.upper()}, line {lineno}): "):
            cosigners.append(Cosigner(bytes.fromhex(xfp), path, key_text))
        prefixes.append(key.prefix)
        if len(path) >= 4 and path[0] == 48 + HARDENED and path[3] - HARDENED in _BIP48_SCRIPT:
            implied = _BIP48_SCRIPT[path[3] - HARDENED]
            if implied != script:
                warnings.append(
                    f"{fmt}: key {i} ({xfp.upper()}) has the BIP48 path {format_path(path)}, which is for "
                    f"{SCRIPT_LABELS[implied]}, but the file's Format is {SCRIPT_LABELS[script]}"
                )
    check_slip132(prefixes, script, fmt, what=format_what)
    if len(keys) > MAX_SIGNERS:
        warnings.append(f"{fmt}: {len(keys)} keys: a Coldcard accepts at most {MAX_SIGNERS}")
    if name is not None and (len(name) > 20 or not name.isascii()):
        warnings.append(f"{fmt}: the name is longer than 20 characters or not ASCII; a Coldcard will refuse it")
    net = resolve_network(network, None, fmt)
    with context(fmt):
        vault = Vault.multisig(m, cosigners, script=script, sorted=is_sorted, network=net)
    return vault, name, warnings


# -- "Export XPUB" (ccxp-XXXXXXXX.json) -------------------------------------------------------

_CCXP_FIELDS = {"sh": "p2sh", "sh-wsh": "p2sh_p2wsh", "wsh": "p2wsh"}
_GENERIC_FIELDS = {"sh": "bip45", "sh-wsh": "bip48_1", "wsh": "bip48_2"}
_DESC_KEY = re.compile(r"\[([0-9a-fA-F]{8})((?:/[0-9]+[hH']?)*)\]([a-zA-Z]pub[1-9A-HJ-NP-Za-km-z]+)")


def cosigner_from_xpub_export(text, script: str = "wsh", network=None) -> Cosigner:
    """One keyholder's cosigner record from Coldcard's "Export XPUB" JSON, for ``script``.

    The JSON's own checks are applied: the fingerprint, path and key of the ``*_desc`` field must
    equal the others, and a SLIP-132 key (Upub/Vpub...) must be the one for ``script``.
    """
    fmt = f"{FORMAT} xpub export"
    obj = load_json(as_text(text, fmt).strip(), fmt)
    if not isinstance(obj, dict):
        raise FormatError(f"{fmt}: expected a JSON object")
    if script not in _CCXP_FIELDS:
        raise FormatError(
            f"{fmt}: Coldcard exports multisig keys for P2SH, P2SH-P2WSH and P2WSH, not {script!r}"
        )
    xfp = get_str(obj, "xfp", fmt)
    if not _XFP.match(xfp):
        raise FormatError(f"{fmt}: \"xfp\" must be 8 hex digits")
    field = _CCXP_FIELDS[script]
    if isinstance(obj.get(field), str):
        key_text = obj[field]
        deriv = get_str(obj, field + "_deriv", fmt)
        desc = obj.get(field + "_desc")
    elif isinstance(obj.get(_GENERIC_FIELDS.get(script)), dict):
        section = obj[_GENERIC_FIELDS[script]]
        key_text = get_str(section, "xpub", fmt, where=f"{_GENERIC_FIELDS[script]}: ")
        deriv = get_str(section, "deriv", fmt, where=f"{_GENERIC_FIELDS[script]}: ")
        desc = section.get("desc")
        slip = section.get("_pub")
        if isinstance(slip, str):
            with context(fmt, "the section's _pub key: "):
                slip_key = ExtendedKey.parse(slip)
            check_slip132([slip_key.prefix], script, fmt, what="the requested script type")
            if slip_key.neuter().serialize() != ExtendedKey.parse(key_text).neuter().serialize():
                raise FormatError(f"{fmt}: the section's _pub and xpub are different keys: the file was altered")
    else:
        raise FormatError(f"{fmt}: the file has no {SCRIPT_LABELS[script]} key (\"{field}\")")
    with context(fmt):
        key = ExtendedKey.parse(key_text)
        path = parse_path(deriv)
        cosigner = Cosigner(bytes.fromhex(xfp), path, key_text)
    check_slip132([key.prefix], script, fmt, what="the requested script type")
    if isinstance(desc, str):
        mat = _DESC_KEY.search(desc)
        if not mat:
            raise FormatError(f"{fmt}: the {field}_desc field has no [fingerprint/path]xpub key")
        d_fp, d_path, d_key = mat.groups()
        with context(fmt, "the descriptor in the file: "):
            d_cosigner = Cosigner(bytes.fromhex(d_fp), parse_path("m" + d_path), d_key)
        if d_cosigner != cosigner:
            raise FormatError(
                f"{fmt}: the file's descriptor names another key, fingerprint or path than its {field} fields: "
                "the file was altered; export it again from the Coldcard"
            )
    if network is not None:
        cosigner.check_network(Network.from_name(network))
    return cosigner


# -- Coldcard's "Electrum Wallet" multisig export (Electrum's wallet-file JSON) ---------------

_WALLET_TYPE = re.compile(r"^([0-9]{1,3})of([0-9]{1,3})$")
_ELECTRUM_SCRIPT = {"xpub": "sh", "tpub": "sh", "Ypub": "sh-wsh", "Upub": "sh-wsh", "Zpub": "wsh", "Vpub": "wsh"}


def is_electrum_multisig(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("wallet_type"), str) and "x1/" in obj


def parse_electrum(obj, *, network=None, fmt: str = FORMAT):
    """Coldcard's "Electrum Wallet" export (``el-NAME.json``): Electrum's multisig wallet skeleton.

    ``wallet_type`` is ``MofN``; keys ``x1/`` ... ``xN/`` hold ``xpub`` (whose SLIP-132 version is
    the script type, as in Electrum: xpub/tpub P2SH, Ypub/Upub P2SH-P2WSH, Zpub/Vpub P2WSH),
    ``derivation`` and the master fingerprint as ``ckcc_xfp`` (Coldcard: a little-endian 32-bit
    integer) or ``root_fingerprint`` (Electrum: hex).
    """
    if not is_electrum_multisig(obj):
        raise FormatError(f"{fmt}: this JSON is not a Coldcard/Electrum multisig wallet (wallet_type and x1/ ...)")
    mat = _WALLET_TYPE.match(obj["wallet_type"])
    if not mat:
        raise FormatError(f"{fmt}: wallet_type must read MofN (e.g. 2of3)")
    m, n = int(mat.group(1)), int(mat.group(2))
    if obj.get("use_encryption") is True:
        raise FormatError(f"{fmt}: the Electrum wallet file is encrypted; export an unencrypted watch-only copy")
    extra = [k for k in obj if re.fullmatch(r"x[0-9]+/", k) and not 1 <= int(k[1:-1]) <= n]
    if extra or n == 0:
        raise FormatError(f"{fmt}: wallet_type says {m}of{n}, but the file has other keystores ({', '.join(sorted(extra)[:3])})")
    cosigners, prefixes = [], []
    for i in range(1, n + 1):
        ks = obj.get(f"x{i}/")
        where = f"keystore x{i}/: "
        if not isinstance(ks, dict):
            raise FormatError(f"{fmt}: wallet_type says {m}of{n}, but keystore x{i}/ is missing")
        if any(k in ks for k in ("xprv", "seed", "keypairs")):
            raise FormatError(
                f"{fmt}: {where}the file holds private keys or a seed; give msigvault a watch-only copy"
            )
        key_text = get_str(ks, "xpub", fmt, where=where)
        with context(fmt, where):
            key = ExtendedKey.parse(key_text)
        fingerprints = set()
        ckcc = ks.get("ckcc_xfp")
        if ckcc is not None:
            if isinstance(ckcc, bool) or not isinstance(ckcc, int) or not 0 < ckcc < 2**32:
                raise FormatError(f"{fmt}: {where}ckcc_xfp must be a 32-bit number")
            fingerprints.add(ckcc.to_bytes(4, "little").hex())
        root_fp = ks.get("root_fingerprint")
        if root_fp is not None:
            if not isinstance(root_fp, str) or not _XFP.match(root_fp):
                raise FormatError(f"{fmt}: {where}root_fingerprint must be 8 hex digits")
            fingerprints.add(root_fp.lower())
        if len(fingerprints) > 1:
            raise FormatError(f"{fmt}: {where}ckcc_xfp and root_fingerprint name different master keys")
        deriv = ks.get("derivation")
        if deriv is None:
            path = (key.child_number,) if key.depth == 1 else None
            if key.depth == 0:
                path = ()
            if path is None:
                raise FormatError(f"{fmt}: {where}no derivation for a key of depth {key.depth}")
        elif not isinstance(deriv, str):
            raise FormatError(f"{fmt}: {where}derivation must be a string")
        else:
            with context(fmt, where):
                path = parse_path(deriv)
        if not fingerprints:
            implied = implied_fingerprint(key)
            if implied is None:
                raise FormatError(f"{fmt}: {where}no master fingerprint (ckcc_xfp or root_fingerprint)")
            fingerprints.add(implied)
        with context(fmt, where):
            cosigners.append(Cosigner(bytes.fromhex(fingerprints.pop()), path, key_text))
        prefixes.append(key.prefix)
    scripts = {_ELECTRUM_SCRIPT.get(p) for p in prefixes}
    if None in scripts:
        bad = next(p for p in prefixes if p not in _ELECTRUM_SCRIPT)
        raise FormatError(f"{fmt}: a {bad} key is a single-signature key; Electrum multisig uses xpub, Ypub or Zpub")
    if len(scripts) != 1:
        raise FormatError(
            f"{fmt}: the keys have different SLIP-132 versions ({', '.join(sorted(set(prefixes)))}), so the file "
            "names no single script type"
        )
    script = scripts.pop()
    warnings = [f"{fmt}: Electrum wallet file: the script type ({SCRIPT_LABELS[script]}) comes from the keys' "
                "SLIP-132 versions"]
    net = resolve_network(network, None, fmt)
    with context(fmt):
        vault = Vault.multisig(m, cosigners, script=script, sorted=True, network=net)
    return vault, None, warnings
