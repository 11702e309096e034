"""Registration: a keyholder's own, authenticated record of the vault they agreed to sign for.

A vault file's ``policy_id`` is an unkeyed hash: whoever can write the file can swap a cosigner
and fix the hash. So when a keyholder verifies a vault (``msigvault vault verify``), their key
signs a *registration*: a BIP340 signature over the vault's policy id, network, name, accepted
deviations and index limit, made with a key derived from their own vault key at a dedicated
branch (``account / 1836279670 / 0``; 1836279670 is "msgv" in ASCII, a branch no address uses).

- Anyone holding the vault file can verify a registration (the key is a public child of the
  keyholder's account xpub listed in the vault), so the coordinator can see who registered what.
- Nobody can forge one without the keyholder's private key. Changing any cosigner, the
  threshold, the script type, the network, the name, the accepted deviations or the index limit
  invalidates it.
- The signer refuses to sign without a valid registration by its own key, and, after unlocking
  the key, checks that the key really derives the listed account xpub (so a substituted entry
  for the keyholder themselves is caught too).

See docs/keystore.md ("Vault registrations") for the threat model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embit.hashes import tagged_hash
from embit.util import secp256k1 as _secp

from ..errors import RegistrationError
from ..keys.cosigner import Cosigner

if TYPE_CHECKING:
    from ..keys.bip32 import ExtendedKey
    from .vault import Vault

#: unhardened branch below each cosigner's account key that holds its registration key
REGISTRATION_BRANCH = 0x6D736776
#: default highest vault index + 1 a registration accepts on either branch (the scan gap)
DEFAULT_INDEX_LIMIT = 1_000
#: the largest index limit a registration may carry
MAX_INDEX_LIMIT = 1_000_000
_TAG = "msigvault/registration/v1"


@dataclass(frozen=True)
class Registration:
    """One keyholder's signed registration of one vault.

    ``index_limit`` bounds the vault indexes (both branches) this keyholder's signer accepts in
    inputs and vault outputs: change can never be sent where the keyholder's wallet does not look,
    whatever coins a coordinator chooses to spend.
    """

    fingerprint: bytes
    index_limit: int
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.fingerprint, bytes) or len(self.fingerprint) != 4:
            raise RegistrationError("a registration names a 4-byte master fingerprint", field="fingerprint")
        check_index_limit(self.index_limit)
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise RegistrationError("a registration signature is 64 bytes (BIP340)", field="signature")

    # -- making and checking ---------------------------------------------------------------------

    @classmethod
    def create(cls, vault: "Vault", root: "ExtendedKey", *, name: str,
               index_limit: int = DEFAULT_INDEX_LIMIT) -> "Registration":
        """Sign ``vault`` (called ``name``) with ``root``, which must be one of its cosigners."""
        check_index_limit(index_limit)
        cosigner, account = own_cosigner(vault, root)
        secret = account.child(REGISTRATION_BRANCH).child(0).key[1:]
        msg = registration_message(vault, name=name, fingerprint=cosigner.fingerprint, index_limit=index_limit)
        sig = _secp.schnorrsig_sign(msg, _secp.keypair_create(secret), None, os.urandom(32))
        return cls(cosigner.fingerprint, index_limit, sig)

    def verify(self, vault: "Vault", *, name: str) -> Cosigner:
        """Check the signature against the cosigner of ``vault`` it names; return that cosigner.

        Raises RegistrationError if the vault, its name or its limits are not what was signed.
        """
        cosigner = _cosigner_by_fingerprint(vault, self.fingerprint)
        xonly = registration_pubkey(cosigner)[1:]
        msg = registration_message(vault, name=name, fingerprint=self.fingerprint, index_limit=self.index_limit)
        try:
            point = _secp.ec_pubkey_parse(b"\x02" + xonly)
            xpub, _ = _secp.xonly_pubkey_from_pubkey(point)
            ok = _secp.schnorrsig_verify(self.signature, msg, xpub)
        except (ValueError, RuntimeError):
            ok = False
        if not ok:
            raise RegistrationError(
                f"the registration by {self.fingerprint.hex()} does not match this vault: its cosigners, "
                "threshold, script, network, name, accepted deviations or index limit changed after that "
                "keyholder registered it (a substituted vault file?); do not use this file, restore the "
                "registered copy or register again after checking the policy id with every keyholder"
            )
        return cosigner

    def verify_with_root(self, vault: "Vault", root: "ExtendedKey", *, name: str) -> None:
        """:meth:`verify`, and check that ``root`` is the key that registered (after unlocking)."""
        cosigner = self.verify(vault, name=name)
        me, _ = own_cosigner(vault, root)
        if me.fingerprint != cosigner.fingerprint:
            raise RegistrationError(
                f"this registration was made by {cosigner.fingerprint.hex()}, not by this key "
                f"({me.fingerprint.hex()}): use your own registration"
            )

    # -- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> "dict[str, Any]":
        return {"fingerprint": self.fingerprint.hex(), "index_limit": self.index_limit,
                "signature": self.signature.hex()}

    @classmethod
    def from_dict(cls, obj: object) -> "Registration":
        if not isinstance(obj, dict) or set(obj) != {"fingerprint", "index_limit", "signature"}:
            raise RegistrationError("a registration record has exactly: fingerprint, index_limit, signature")
        fp, limit, sig = obj["fingerprint"], obj["index_limit"], obj["signature"]
        if not isinstance(fp, str) or not isinstance(sig, str) or not isinstance(limit, int) or isinstance(limit, bool):
            raise RegistrationError("a registration record has a field of the wrong type")
        try:
            return cls(bytes.fromhex(fp), limit, bytes.fromhex(sig))
        except ValueError:
            raise RegistrationError("a registration record's fingerprint or signature is not hex") from None


def check_index_limit(index_limit: object) -> None:
    if isinstance(index_limit, bool) or not isinstance(index_limit, int) or not 1 <= index_limit <= MAX_INDEX_LIMIT:
        raise RegistrationError(
            f"the index limit must be a whole number from 1 to {MAX_INDEX_LIMIT:,}, got {index_limit!r}",
            field="index_limit",
        )


def registration_pubkey(cosigner: Cosigner) -> bytes:
    """The 33-byte public key that signs ``cosigner``'s registrations."""
    return cosigner.pubkey_at(REGISTRATION_BRANCH, 0)


def registration_message(vault: "Vault", *, name: str, fingerprint: bytes, index_limit: int) -> bytes:
    """The 32-byte tagged hash a registration signs (canonical JSON of what is registered)."""
    if not isinstance(name, str):
        raise RegistrationError(f"a vault name is a string, not {type(name).__name__}", field="name")
    body = {
        "accept": sorted(d.value for d in vault.accept),
        "fingerprint": fingerprint.hex(),
        "index_limit": index_limit,
        "name": name,
        "network": vault.network.name,
        "policy_id": vault.policy_id,
    }
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return tagged_hash(_TAG, data)


def own_cosigner(vault: "Vault", root: "ExtendedKey") -> "tuple[Cosigner, ExtendedKey]":
    """(this key's cosigner record, its account private key); refuses keys that are not one.

    Compares the account key the root derives at the record's path with the record's xpub, so
    a vault whose entry for this keyholder was substituted is refused.
    """
    from ..keys.bip32 import ExtendedKey

    if not isinstance(root, ExtendedKey) or not root.is_private:
        raise RegistrationError("this needs the keyholder's private master key")
    fp = root.fingerprint
    mine = [c for c in vault.cosigners if c.fingerprint == fp]
    if not mine:
        raise RegistrationError(
            f"this key (fingerprint {fp.hex()}) is not a cosigner of the vault: check you loaded the right "
            "key and the right vault",
            fingerprint=fp,
        )
    for c in mine:
        account = root.derive(c.path)
        if account.public_key != c.public_key or account.chain_code != c.key.chain_code:
            raise RegistrationError(
                f"the vault lists fingerprint {fp.hex()} at {c.origin()} with a different xpub than this "
                "key derives: the vault record was altered (cosigner key substitution) or the record's "
                "key origin is wrong; do not use it",
                fingerprint=fp,
            )
    return mine[0], root.derive(mine[0].path)


def _cosigner_by_fingerprint(vault: "Vault", fingerprint: bytes) -> Cosigner:
    for c in vault.cosigners:
        if c.fingerprint == fingerprint:
            return c
    raise RegistrationError(
        f"the registration names {fingerprint.hex()}, which is not a cosigner of this vault: the vault "
        "file was changed after that keyholder registered it",
        fingerprint=fingerprint,
    )


@dataclass(frozen=True)
class RegisteredVault:
    """A vault together with one keyholder's valid registration of it (checked at construction).

    This is what an offline signer signs for: the name and policy id it shows, the index limit it
    enforces, and the registration it re-checks against the unlocked key.
    """

    vault: "Vault"
    name: str
    registration: Registration

    def __post_init__(self) -> None:
        from .vault import Vault

        if not isinstance(self.vault, Vault):
            raise RegistrationError(f"vault must be a msigvault Vault, not {type(self.vault).__name__}", field="vault")
        if not isinstance(self.registration, Registration):
            raise RegistrationError(f"registration must be a Registration, not {type(self.registration).__name__}",
                                    field="registration")
        self.registration.verify(self.vault, name=self.name)

    @property
    def index_limit(self) -> int:
        return self.registration.index_limit

    @property
    def fingerprint(self) -> bytes:
        return self.registration.fingerprint
