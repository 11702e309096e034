"""The vault file: a registered vault as JSON, written atomically, checked when read.

    {"format": "msigvault-vault", "version": 1, "name": "...", "network": "regtest",
     "descriptor": "wsh(sortedmulti(...))#checksum", "policy_id": "<sha256 hex>",
     "next_change_index": 0, "accept": [], "registrations": [{"fingerprint": "...",
     "index_limit": 1000, "signature": "<BIP340 hex>"}]}

``policy_id`` is recomputed from the descriptor on every read: an edited key, threshold or
script type is caught even if the descriptor's 40-bit checksum was fixed up. That alone is no
protection against whoever can write the file (they fix the hash too), so each keyholder's
``registrations`` entry, signed by their own key when they verified the vault (see
policy/registration.py), is checked on every read, and the signer needs its own.
``accept`` lists the :class:`~msigvault.policy.vault.Deviation` rules the vault was accepted
with (files written before registrations existed have neither field).
``next_change_index`` is the coordinator's bookkeeping of change addresses handed out;
``next_receive_index`` (optional, default 0) the first receive index after the last used one, as
``msigvault vault scan`` last found it.
A vault with timelocked recovery paths (docs/recovery.md) carries them in its descriptor; the
file adds ``recovery``, the same paths in words for a reader (threshold, fingerprints, lock),
which must agree with the descriptor when read. Files without it load as before.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import MsigvaultError, RegistrationError
from .fileio import write_atomic
from .network import Network
from .policy.registration import Registration, RegisteredVault
from .policy.vault import Vault

MAX_VAULT_FILE_SIZE = 4 * 1024 * 1024  # a 999-key tr vault with registrations is well below 1 MB

FORMAT = "msigvault-vault"
VERSION = 1


class VaultFileError(MsigvaultError):
    """A vault file is missing, malformed or does not match its own policy id."""

    code = "vaultfile.invalid"


@dataclass(frozen=True)
class VaultFile:
    vault: Vault
    name: str
    next_change_index: int = 0
    registrations: "tuple[Registration, ...]" = ()
    next_receive_index: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "registrations", tuple(self.registrations))
        fps = [r.fingerprint for r in self.registrations]  # counted before any signature is checked
        if len(set(fps)) != len(fps) or len(fps) > len(self.vault.cosigners):
            raise VaultFileError("a vault file holds at most one registration per keyholder; this one repeats one "
                                 "or holds more than the vault has cosigners", field="registrations")
        for r in self.registrations:
            r.verify(self.vault, name=self.name)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "version": VERSION, "name": self.name,
            "network": self.vault.network.name, "descriptor": self.vault.descriptor(),
            "policy_id": self.vault.policy_id, "next_change_index": self.next_change_index,
            **({"next_receive_index": self.next_receive_index} if self.next_receive_index else {}),
            "accept": sorted(d.value for d in self.vault.accept),
            "registrations": [r.to_dict() for r in sorted(self.registrations, key=lambda r: r.fingerprint)],
            **_origin_issues(self.vault), **_recovery(self.vault),
        }, indent=2) + "\n"

    def registered(self, fingerprint: "bytes | str") -> RegisteredVault:
        """The vault as keyholder ``fingerprint`` registered it; RegistrationError if they did not."""
        fp = bytes.fromhex(fingerprint) if isinstance(fingerprint, str) else fingerprint
        if all(c.fingerprint != fp for c in self.vault.cosigners):
            raise RegistrationError(
                f"this key (fingerprint {fp.hex()}) is not a cosigner of the vault {self.name!r}: check you "
                "loaded the right key and the right vault",
                fingerprint=fp,
            )
        for r in self.registrations:
            if r.fingerprint == fp:
                return RegisteredVault(self.vault, self.name, r)
        raise RegistrationError(
            f"this vault file holds no registration by {fp.hex()}: before signing, check the vault "
            "(compare its policy id with every keyholder) and register it with your key: "
            "msigvault vault verify VAULTFILE --key YOUR.key",
            fingerprint=fp,
        )

    def with_registration(self, registration: Registration) -> "VaultFile":
        """This file with ``registration`` added (replacing that keyholder's earlier one)."""
        others = tuple(r for r in self.registrations if r.fingerprint != registration.fingerprint)
        return replace(self, registrations=others + (registration,))

    def save(self, path: "str | os.PathLike[str]", *, overwrite: bool = False) -> Path:
        return write_atomic(path, self.to_json().encode(), overwrite=overwrite)

    def with_next_change_index(self, index: int) -> "VaultFile":
        return replace(self, next_change_index=index)

    def with_next_receive_index(self, index: int) -> "VaultFile":
        return replace(self, next_receive_index=index)


def load_vault_file(path: "str | os.PathLike[str]") -> VaultFile:
    """A vault file, checked; any MsigvaultError it raises carries ``path``."""
    p = Path(path)
    try:
        return _load_vault_file(p)
    except MsigvaultError as e:
        raise e.locate(path=p)


def _load_vault_file(p: Path) -> VaultFile:
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_VAULT_FILE_SIZE + 1)  # bounded even for special files (/dev/zero)
        if len(raw) > MAX_VAULT_FILE_SIZE:
            raise VaultFileError(f"{p} is larger than {MAX_VAULT_FILE_SIZE:,} bytes: it is not a vault file")
        text = raw.decode()
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
            raise VaultFileError(f"vault file {p}: field {key!r} is missing or has the wrong type", field=key)
    accept = obj.get("accept", [])
    registrations = obj.get("registrations", [])
    if not isinstance(accept, list) or not all(isinstance(a, str) for a in accept):
        raise VaultFileError(f"vault file {p}: field 'accept' must be a list of deviation names", field="accept")
    if not isinstance(registrations, list):
        raise VaultFileError(f"vault file {p}: field 'registrations' must be a list", field="registrations")
    origin_issues = obj.get("origin_issues", [])
    if not isinstance(origin_issues, list) or not all(isinstance(a, str) for a in origin_issues):
        raise VaultFileError(f"vault file {p}: field 'origin_issues' must be a list of names", field="origin_issues")
    if origin_issues:  # imported from another wallet's file with key-origin warnings (docs/formats.md)
        from .formats.descriptor import vault_with_origin_issues

        vault = vault_with_origin_issues(obj["descriptor"], network=Network.from_name(obj["network"]),
                                         accept=accept, origin_issues=origin_issues)
    else:
        vault = Vault.from_descriptor(obj["descriptor"], network=Network.from_name(obj["network"]), accept=accept)
    if vault.policy_id != obj["policy_id"]:
        raise VaultFileError(
            f"vault file {p}: the descriptor does not match the recorded policy id; the file was "
            "altered: do not use it, restore it from a trusted copy",
            field="policy_id",
        )
    if "recovery" in obj and obj["recovery"] != _recovery(vault).get("recovery", []):
        raise VaultFileError(
            f"vault file {p}: its 'recovery' field does not describe the recovery paths of its descriptor; "
            "the file was altered: do not use it, restore it from a trusted copy", field="recovery")
    if obj["next_change_index"] < 0:
        raise VaultFileError(f"vault file {p}: next_change_index must not be negative", field="next_change_index")
    receive = obj.get("next_receive_index", 0)
    if not isinstance(receive, int) or isinstance(receive, bool) or receive < 0:
        raise VaultFileError(f"vault file {p}: next_receive_index must be a whole number, 0 or more",
                             field="next_receive_index")
    try:
        return VaultFile(vault, obj["name"], obj["next_change_index"],
                         tuple(Registration.from_dict(r) for r in registrations), receive)
    except RegistrationError as e:
        raise VaultFileError(f"vault file {p}: {e}", field="registrations").locate(**e.fields()) from None


def _recovery(vault: Vault) -> "dict[str, list[dict[str, object]]]":
    """``{"recovery": [...]}``: each recovery path in words, when the vault has any."""
    if not vault.recovery:
        return {}
    return {"recovery": [{"threshold": p.threshold, "cosigners": [vault.cosigners[i].fingerprint.hex() for i in p.keys],
                          "lock": p.lock.to_dict()} for p in vault.recovery]}


def _origin_issues(vault: Vault) -> "dict[str, list[str]]":
    """``{"origin_issues": [...]}`` when a cosigner record's origin disagrees with its xpub (an
    import from another wallet's file, accepted with warnings); nothing otherwise."""
    found = sorted({i.value for c in vault.cosigners for i in c.origin_issues})
    return {"origin_issues": found} if found else {}
