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
"""

from __future__ import annotations

import json

from ..policy.vault import Vault
from ._common import FormatError, as_text, clean_name, get_int, load_json
from .descriptor import combine

FORMAT = "specter"


def export(vault: Vault, *, name: str = "msigvault", blockheight: int = 0, devices=None) -> str:
    name = clean_name(name, FORMAT)
    if isinstance(blockheight, bool) or not isinstance(blockheight, int) or blockheight < 0:
        raise FormatError(f"{FORMAT}: blockheight must be a block height (0 or more)")
    if devices is None:
        devices = [{"type": "other", "label": f"Key {c.fingerprint.hex()}"} for c in vault.cosigners]
    elif not isinstance(devices, list) or len(devices) != vault.n:
        raise FormatError(f"{FORMAT}: devices must be a list with one entry per cosigner ({vault.n})")
    obj = {"label": name, "blockheight": blockheight, "descriptor": vault.descriptor(0), "devices": devices}
    return json.dumps(obj, indent=2) + "\n"


def parse(text, *, network=None, fmt: str = FORMAT):
    obj = load_json(as_text(text, fmt).strip(), fmt)
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
            warnings.append(f"{fmt}: the file lists {len(devices)} device(s) for {vault.n} keys")
    return vault, name, warnings
