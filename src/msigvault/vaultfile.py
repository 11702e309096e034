"""The vault file: a registered vault as JSON, written atomically, checked when read.

    {"format": "msigvault-vault", "version": 1, "name": "...", "network": "regtest",
     "descriptor": "wsh(sortedmulti(...))#checksum", "policy_id": "<sha256 hex>",
     "next_change_index": 0}

``policy_id`` is recomputed from the descriptor on every read: an edited key, threshold or
script type is caught even if the descriptor's 40-bit checksum was fixed up.
``next_change_index`` is the coordinator's bookkeeping of change addresses handed out.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import MsigvaultError
from .fileio import write_atomic
from .network import Network
from .policy.vault import Vault

FORMAT = "msigvault-vault"
VERSION = 1


class VaultFileError(MsigvaultError):
    """A vault file is missing, malformed or does not match its own policy id."""


@dataclass(frozen=True)
class VaultFile:
    vault: Vault
    name: str
    next_change_index: int = 0

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "version": VERSION, "name": self.name,
            "network": self.vault.network.name, "descriptor": self.vault.descriptor(),
            "policy_id": self.vault.policy_id, "next_change_index": self.next_change_index,
        }, indent=2) + "\n"

    def save(self, path: "str | os.PathLike", *, overwrite: bool = False) -> Path:
        return write_atomic(path, self.to_json().encode(), overwrite=overwrite)

    def with_next_change_index(self, index: int) -> "VaultFile":
        return replace(self, next_change_index=index)


def load_vault_file(path: "str | os.PathLike") -> VaultFile:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise VaultFileError(f"vault file {p} does not exist: create one with 'msigvault vault create'") from None
    except (OSError, UnicodeDecodeError) as e:
        raise VaultFileError(f"cannot read vault file {p}: {e}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        raise VaultFileError(f"{p} is not a msigvault vault file (not JSON)") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise VaultFileError(f"{p} is not a msigvault vault file; import other formats with 'msigvault vault import'")
    if obj.get("version") != VERSION:
        raise VaultFileError(f"{p} has vault file version {obj.get('version')!r}; this msigvault reads version {VERSION}")
    for key, kind in (("name", str), ("network", str), ("descriptor", str), ("policy_id", str), ("next_change_index", int)):
        if not isinstance(obj.get(key), kind) or isinstance(obj.get(key), bool):
            raise VaultFileError(f"vault file {p}: field {key!r} is missing or has the wrong type")
    vault = Vault.from_descriptor(obj["descriptor"], network=Network.from_name(obj["network"]))
    if vault.policy_id != obj["policy_id"]:
        raise VaultFileError(
            f"vault file {p}: the descriptor does not match the recorded policy id; the file was "
            "altered: do not use it, restore it from a trusted copy"
        )
    if obj["next_change_index"] < 0:
        raise VaultFileError(f"vault file {p}: next_change_index must not be negative")
    return VaultFile(vault, obj["name"], obj["next_change_index"])
