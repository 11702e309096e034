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

On import, msigvault checks more than Coldcard can and refuses the SLIP-132 version (Ypub/Upub =
P2SH-P2WSH, Zpub/Vpub = P2WSH) against ``Format``, N against the number of keys, mixed networks and
duplicate keys. It warns, key by key, when a key's depth, child number or (depth 0/1) fingerprint
disagrees with its derivation (Jade, Cobo Vault, BlueWallet and Nunchuk write depth-3 xpubs under
4-step BIP48 paths; Sparrow's multi-derivation export names the wrong last step), when the coin
type is not the network's (Keystone), and when a BIP48 path names another script type than
``Format``: such a vault can be watched, and only the keyholder whose own record is wrong is
refused at signing.

There is no taproot in this format (Coldcard registers taproot multisig as a descriptor).

Coldcard's other multisig JSON, the "Electrum Wallet" export (``el-NAME.json``), is an Electrum
wallet file: :mod:`msigvault.formats.electrum` reads it (``fmt="coldcard"`` still accepts it).

``cosigner_from_xpub_export`` reads Coldcard's "Export XPUB" file (``ccxp-XXXXXXXX.json``), which
carries one keyholder's cosigner record for each script type, and the ``bip45``/``bip48_1``/
``bip48_2`` sections of Coldcard's "Generic JSON" export.
"""

from __future__ import annotations

import re

from ..keys.bip32 import ExtendedKey
from ..keys.cosigner import Cosigner, OriginIssue
from ..keys.paths import HARDENED, format_path, parse_path
from ..network import Network
from ..policy.vault import Vault
from ._common import (
    IMPORT_ACCEPT,
    SCRIPT_LABELS,
    FormatError,
    FormatWarning,
    WarningCode,
    file_cosigner,
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
_SINGLE_LABELS = ("name", "policy", "format", "sorted")  # "derivation" may repeat: it applies to the keys after it


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
    for i, c in enumerate(vault.cosigners, 1):
        if {OriginIssue.UNKNOWN, OriginIssue.FINGERPRINT_UNKNOWN} & set(c.origin_issues):
            raise FormatError(
                f"{FORMAT}: key {i} has no known key origin, and a Coldcard setup file needs every key's "
                "master fingerprint and derivation: use fmt='descriptor' or 'caravan'"
            )
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
        raise FormatError(f"{fmt}: line {lineno}: the derivation is blank", line=lineno)
    with context(fmt, f"line {lineno}: ", line=lineno):
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
    seen_labels: "dict[str, int]" = {}
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
                raise FormatError(f"{fmt}: line {lineno} is not 'Label: value' nor a key", line=lineno)
        else:
            label, _, value = line.partition(":")
            label, value = label.strip().lower(), value.strip()
        if label in _SINGLE_LABELS:
            if label in seen_labels:
                # devices disagree on which copy counts (Jade refuses, others take the first or the
                # last): a file that says two things is refused rather than read one way
                raise FormatError(
                    f"{fmt}: line {lineno}: a second {label.capitalize()} line (the first is line "
                    f"{seen_labels[label]}); a setup file states each of Name, Policy, Format and Sorted once",
                    line=lineno,
                )
            seen_labels[label] = lineno
        if label == "name":
            name = value
        elif label == "policy":
            mat = _POLICY.match(value)
            if not mat:
                raise FormatError(f"{fmt}: line {lineno}: the Policy line must read 'M of N'", line=lineno)
            m, n = int(mat.group(1)), int(mat.group(2))
        elif label == "derivation":
            deriv = _path(value, fmt, lineno)
        elif label == "format":
            v = value.lower()
            if v not in FORMAT_NAMES:
                if v.startswith("p2tr"):
                    raise FormatError(
                        f"{fmt}: line {lineno}: Format {value[:20]} — Coldcard's text file has no taproot format; "
                        "taproot vaults travel as descriptors",
                        line=lineno,
                    )
                raise FormatError(
                    f"{fmt}: line {lineno}: unknown Format {value[:20]!r}; use P2SH, P2SH-P2WSH or P2WSH",
                    line=lineno,
                )
            script = FORMAT_NAMES[v]
        elif label == "sorted":
            v = value.lower()
            if v not in ("true", "false", "yes", "no", "1", "0"):
                raise FormatError(f"{fmt}: line {lineno}: Sorted must be true or false", line=lineno)
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
                        f"{format_path(comment_deriv)} but the Derivation line in effect says {format_path(deriv)}",
                        line=lineno,
                    )
                path = comment_deriv
                comment_deriv = None
            keys.append((label or None, path, value, lineno))
        else:
            warnings.append(FormatWarning(
                WarningCode.IGNORED_FIELD, f"{fmt}: line {lineno}: unknown label {label[:20]!r} ignored"))
    if not keys:
        raise FormatError(f"{fmt}: the file lists no keys ('XFP: xpub' lines)")
    if m is None:
        m = n = len(keys)
        warnings.append(FormatWarning(
            WarningCode.ASSUMED_DEFAULT,
            f"{fmt}: no Policy line: {m}-of-{n} assumed (Coldcard's default: every key must sign)"))
    if n != len(keys):
        raise FormatError(
            f"{fmt}: the Policy says {m} of {n}, but the file lists {len(keys)} key(s): a key is missing or extra"
        )
    format_what = "the Format line"
    if script is None:
        script = "sh"
        format_what = "the file (no Format line: P2SH, Coldcard's default)"
        warnings.append(FormatWarning(WarningCode.ASSUMED_DEFAULT, f"{fmt}: no Format line: P2SH assumed (Coldcard's default)"))
    cosigners, prefixes = [], []
    for i, (xfp, path, key_text, lineno) in enumerate(keys, 1):
        with context(fmt, f"key {i} (line {lineno}): ", line=lineno):
            key = ExtendedKey.parse(key_text)
        if path is None:
            if key.depth == 1:
                path = (key.child_number,)
            elif key.depth == 0:
                path = ()
            else:
                raise FormatError(
                    f"{fmt}: key {i} (line {lineno}) has depth {key.depth} but no Derivation line before it: "
                    "add 'Derivation: m/...' so signers can find their keys",
                    line=lineno,
                )
        if xfp is None or xfp == "00000000":
            xfp = implied_fingerprint(key)
            if xfp is None:
                raise FormatError(f"{fmt}: key {i} (line {lineno}) has no master fingerprint; write it as 'XFP: xpub'",
                                  line=lineno)
        cosigner, notes = file_cosigner(xfp, path, key_text, fmt, i, f"key {i} ({xfp.upper()}, line {lineno}): ")
        cosigners.append(cosigner)
        warnings += notes
        prefixes.append(key.prefix)
        if len(path) >= 4 and path[0] == 48 + HARDENED and path[3] - HARDENED in _BIP48_SCRIPT:
            implied = _BIP48_SCRIPT[path[3] - HARDENED]
            if implied != script:
                warnings.append(FormatWarning(
                    WarningCode.PATH_SCRIPT_MISMATCH,
                    f"{fmt}: key {i} ({xfp.upper()}) has the BIP48 path {format_path(path)}, which is for "
                    f"{SCRIPT_LABELS[implied]}, but the file's Format is {SCRIPT_LABELS[script]}", i
                ))
    check_slip132(prefixes, script, fmt, what=format_what)
    if len(keys) > MAX_SIGNERS:
        warnings.append(FormatWarning(WarningCode.DEVICE_LIMIT, f"{fmt}: {len(keys)} keys: a Coldcard accepts at most {MAX_SIGNERS}"))
    if name is not None and (len(name) > 20 or not name.isascii()):
        warnings.append(FormatWarning(
            WarningCode.DEVICE_LIMIT, f"{fmt}: the name is longer than 20 characters or not ASCII; a Coldcard will refuse it"))
    net = resolve_network(network, None, fmt)
    with context(fmt):
        vault = Vault.multisig(m, cosigners, script=script, sorted=is_sorted, network=net, accept=IMPORT_ACCEPT)
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


# -- Coldcard's "Electrum Wallet" multisig export: Electrum's wallet JSON (see formats/electrum.py) --

def is_electrum_multisig(obj) -> bool:
    from .electrum import is_multisig_wallet

    return is_multisig_wallet(obj)


def parse_electrum(obj, *, network=None, fmt: str = FORMAT):
    """Coldcard's "Electrum Wallet" export (``el-NAME.json``), read by :mod:`.electrum`."""
    from .electrum import parse_wallet

    return parse_wallet(obj, network=network, fmt=fmt)
