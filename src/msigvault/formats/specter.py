"""Specter Desktop's wallet file ("Export to wallet software"), also read by Sparrow, FullyNoded
and Gordian Wallet::

    {"label": "Multisig Wallet", "blockheight": 638325,
     "descriptor": "wsh(sortedmulti(2,[73756c7f/48h/0h/0h/2h]tpub.../0/*,...))#checksum",
     "devices": [{"type": "coldcard", "label": "Office"}, ...]}

``descriptor`` is the receive descriptor (``/0/*``; change is the same keys with ``/1/*``), a
multipath descriptor, or (older Specter files) keys with no derivation after the xpub, which
Specter and Sparrow read as ``/0/*`` and ``/1/*``. ``recv_descriptor`` / ``change_descriptor``
(Specter's internal wallet files) and ``name`` instead of ``label`` are accepted too. The checksum
is verified when present. ``devices`` is only checked for its count.

Specter DIY (the hardware signer) registers a wallet with one command line, which Sparrow and
Specter Desktop write to a file or QR code::

    addwallet Sparrow Multisig&wsh(sortedmulti(2,[7fd1bbf4/48h/0h/0h/2h]xpub...,...))

The wallet name runs from after ``addwallet `` to the first ``&`` and may contain spaces; the
descriptor follows (no checksum needed; keys may end in Specter DIY's own ``/{0,1}/*``, in
``/<0;1>/*``, or nothing, which Specter DIY reads as receive ``/0/*`` and change ``/1/*``).
Export it with ``form="diy"``: the line Sparrow writes (keys without derivation, no checksum).
"""

from __future__ import annotations

import json

from ..policy.vault import Vault
from ._common import FormatError, FormatWarning, WarningCode, as_text, clean_name, get_int, load_json
from .descriptor import combine

FORMAT = "specter"
DIY_COMMAND = "addwallet"


def export(vault: Vault, *, name: str = "msigvault", blockheight: int = 0, devices=None, form: str = "json") -> str:
    """Specter Desktop's wallet JSON (``form="json"``) or Specter DIY's ``addwallet`` line (``"diy"``)."""
    name = clean_name(name, FORMAT)
    if form == "diy":
        if "&" in name:
            raise FormatError(f"{FORMAT}: a Specter DIY wallet name cannot contain '&' (it separates the descriptor)")
        # as Sparrow writes it: keys without a derivation (Specter DIY reads them as /{0,1}/*), no checksum
        return f"{DIY_COMMAND} {name}&{vault.descriptor(checksum=False).replace('/<0;1>/*', '')}\n"
    if form != "json":
        raise FormatError(f"{FORMAT}: unknown form {form!r}; use 'json' (Specter Desktop) or 'diy' (Specter DIY)")
    if isinstance(blockheight, bool) or not isinstance(blockheight, int) or blockheight < 0:
        raise FormatError(f"{FORMAT}: blockheight must be a block height (0 or more)")
    if devices is None:
        devices = [{"type": "other", "label": f"Key {c.fingerprint.hex()}"} for c in vault.cosigners]
    elif not isinstance(devices, list) or len(devices) != vault.n:
        raise FormatError(f"{FORMAT}: devices must be a list with one entry per cosigner ({vault.n})")
    obj = {"label": name, "blockheight": blockheight, "descriptor": vault.descriptor(0), "devices": devices}
    return json.dumps(obj, indent=2) + "\n"


def is_diy(text: str) -> bool:
    """True for a Specter DIY ``addwallet NAME&descriptor`` command."""
    return text.lstrip().startswith(DIY_COMMAND + " ")


def parse_diy(text: str, *, network=None, fmt: str = FORMAT):
    """Specter DIY's ``addwallet NAME&descriptor`` (one line; the name may contain spaces)."""
    lines = [line.strip() for line in text.strip().split("\n") if line.strip()]
    if len(lines) != 1 or not is_diy(lines[0]):
        raise FormatError(f"{fmt}: a Specter DIY file holds one line: addwallet NAME&descriptor")
    rest = lines[0][len(DIY_COMMAND) + 1:]
    name, sep, desc = rest.partition("&")
    name = name.strip()
    if not sep or not desc.strip():
        raise FormatError(f"{fmt}: the addwallet line has no '&' before the descriptor (addwallet NAME&descriptor)")
    if not name or any(not ch.isprintable() for ch in name):
        raise FormatError(f"{fmt}: the addwallet line's wallet name is empty or not printable text")
    desc = desc.strip().replace("/{0,1}/", "/<0;1>/")
    vault, warnings = combine([(desc, None)], network, fmt, allow=("multipath", "branch", "bare"))
    return vault, name, warnings


def parse(text, *, network=None, fmt: str = FORMAT):
    text = as_text(text, fmt)
    if is_diy(text):
        return parse_diy(text, network=network, fmt=fmt)
    obj = load_json(text.strip(), fmt)
    if not isinstance(obj, dict):
        raise FormatError(f"{fmt}: expected a JSON object with a \"descriptor\"")
    entries = []
    for key in ("descriptor", "recv_descriptor", "change_descriptor"):
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise FormatError(f"{fmt}: \"{key}\" must be a string")
        if key == "recv_descriptor" and "descriptor" in obj:
            continue
        entries.append((value, True if key == "change_descriptor" else None))
    if not entries:
        raise FormatError(f"{fmt}: the file has no \"descriptor\"")
    vault, warnings = combine(entries, network, fmt, allow=("multipath", "branch", "bare"))
    label = obj.get("label", obj.get("name"))
    name = label if isinstance(label, str) else None
    get_int(obj, "blockheight", fmt, required=False)
    devices = obj.get("devices")
    if devices is not None:
        if not isinstance(devices, list):
            raise FormatError(f"{fmt}: \"devices\" must be a list")
        if len(devices) != vault.n:
            warnings.append(FormatWarning(
                WarningCode.DEVICE_COUNT, f"{fmt}: the file lists {len(devices)} device(s) for {vault.n} keys"))
    return vault, name, warnings
