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
- For a vault with timelocked recovery paths (docs/recovery.md) a registration also signs the
  **spending paths** the keyholder agrees to sign for (``paths``: 0 the primary, i recovery path
  i); the signer signs only for those. A registration made before paths were signed (no
  ``paths`` field) still verifies and allows the primary path only; a plain vault's
  registration signs no paths, so its message is what it always was.

See docs/keystore.md ("Vault registrations") for the threat model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

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
    #: the spending paths signed for (recovery vaults; sorted, 0 = primary), or None: a plain
    #: vault's registration, or one made before paths were signed (primary path only)
    paths: "tuple[int, ...] | None" = None

    def __post_init__(self) -> None:
        if not isinstance(self.fingerprint, bytes) or len(self.fingerprint) != 4:
            raise RegistrationError("a registration names a 4-byte master fingerprint", field="fingerprint")
        check_index_limit(self.index_limit)
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise RegistrationError("a registration signature is 64 bytes (BIP340)", field="signature")
        if self.paths is not None:
            object.__setattr__(self, "paths", check_paths(self.paths))

    def allowed_paths(self, vault: "Vault") -> "frozenset[int]":
        """The spending paths of ``vault`` this keyholder signs for: every path of a plain vault
        (it has one); for a recovery vault the signed ``paths``, or the primary only when none
        were signed (a registration older than recovery paths)."""
        if not vault.recovery:
            return frozenset({0})
        return frozenset(self.paths) if self.paths is not None else frozenset({0})

    # -- making and checking ---------------------------------------------------------------------

    @classmethod
    def create(cls, vault: "Vault", root: "ExtendedKey", *, name: str,
               index_limit: int = DEFAULT_INDEX_LIMIT,
               paths: "Iterable[int] | None" = None) -> "Registration":
        """Sign ``vault`` (called ``name``) with ``root``, which must be one of its cosigners.

        ``paths`` (recovery vaults only): the spending paths to sign for, by index (0 = primary,
        i = recovery path i); default every path holding this key. Each must hold the key."""
        check_index_limit(index_limit)
        cosigner, account = own_cosigner(vault, root)
        chosen = registrable_paths(vault, cosigner, paths)
        secret = account.child(REGISTRATION_BRANCH).child(0).key[1:]
        msg = registration_message(vault, name=name, fingerprint=cosigner.fingerprint, index_limit=index_limit,
                                   paths=chosen)
        sig = _secp.schnorrsig_sign(msg, _secp.keypair_create(secret), None, os.urandom(32))
        return cls(cosigner.fingerprint, index_limit, sig, chosen)

    def verify(self, vault: "Vault", *, name: str) -> Cosigner:
        """Check the signature against the cosigner of ``vault`` it names; return that cosigner.

        Raises RegistrationError if the vault, its name or its limits are not what was signed.
        """
        cosigner = _cosigner_by_fingerprint(vault, self.fingerprint)
        xonly = registration_pubkey(cosigner)[1:]
        if self.paths is not None and not vault.recovery:
            raise RegistrationError(
                f"the registration by {self.fingerprint.hex()} names spending paths, but this vault has only its "
                "primary m-of-n (its recovery paths were removed after that keyholder registered it?): do not use "
                "this file", fingerprint=self.fingerprint, field="paths")
        msg = registration_message(vault, name=name, fingerprint=self.fingerprint, index_limit=self.index_limit,
                                   paths=self.paths)
        try:
            point = _secp.ec_pubkey_parse(b"\x02" + xonly)
            xpub, _ = _secp.xonly_pubkey_from_pubkey(point)
            ok = _secp.schnorrsig_verify(self.signature, msg, xpub)
        except (ValueError, RuntimeError):
            ok = False
        if not ok:
            raise RegistrationError(
                f"the registration by {self.fingerprint.hex()} does not match this vault: its cosigners, "
                "threshold, script, network, name, accepted deviations, index limit or spending paths changed "
                "after that "
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
        out: "dict[str, Any]" = {"fingerprint": self.fingerprint.hex(), "index_limit": self.index_limit,
                                 "signature": self.signature.hex()}
        if self.paths is not None:
            out["paths"] = list(self.paths)
        return out

    @classmethod
    def from_dict(cls, obj: object) -> "Registration":
        base = {"fingerprint", "index_limit", "signature"}
        if not isinstance(obj, dict) or set(obj) not in (base, base | {"paths"}):
            raise RegistrationError("a registration record has exactly: fingerprint, index_limit, signature "
                                    "(and paths, for a vault with recovery paths)")
        fp, limit, sig = obj["fingerprint"], obj["index_limit"], obj["signature"]
        if not isinstance(fp, str) or not isinstance(sig, str) or not isinstance(limit, int) or isinstance(limit, bool):
            raise RegistrationError("a registration record has a field of the wrong type")
        paths = obj.get("paths")
        if paths is not None and not isinstance(paths, list):
            raise RegistrationError("a registration record's paths are a list of path numbers", field="paths")
        try:
            return cls(bytes.fromhex(fp), limit, bytes.fromhex(sig), None if paths is None else tuple(paths))
        except ValueError:
            raise RegistrationError("a registration record's fingerprint or signature is not hex") from None


#: the most spending paths a registration can name (the primary and recovery.MAX_RECOVERY_PATHS)
MAX_PATHS = 9


def check_paths(paths: object) -> "tuple[int, ...]":
    """``paths`` as a sorted tuple of distinct path numbers including 0 (the primary);
    RegistrationError otherwise."""
    if isinstance(paths, (str, bytes)) or not isinstance(paths, (list, tuple, set, frozenset)) \
            or len(paths) > MAX_PATHS:
        raise RegistrationError(f"a registration's paths are a list of at most {MAX_PATHS} path numbers",
                                field="paths")
    if any(isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < MAX_PATHS for p in paths):
        raise RegistrationError(f"a registration's paths are numbers from 0 (primary) to {MAX_PATHS - 1}",
                                field="paths")
    out = tuple(sorted(set(paths)))
    if len(out) != len(paths) or 0 not in out:
        raise RegistrationError("a registration's paths list each path once and include 0, the primary path "
                                "(every keyholder may sign the everyday spend)", field="paths")
    return out


def registrable_paths(vault: "Vault", cosigner: Cosigner, paths: "Iterable[int] | None") -> "tuple[int, ...] | None":
    """The ``paths`` a registration of ``vault`` by ``cosigner`` signs: None for a plain vault;
    by default the primary and every recovery path holding the key; each named path must exist
    and (recovery paths) hold the key. RegistrationError otherwise."""
    if not vault.recovery:
        if paths is not None and set(paths) != {0}:
            raise RegistrationError("this vault has no recovery paths: there is no path to register but the "
                                    "primary", field="paths")
        return None
    pos = vault.cosigners.index(cosigner)
    holding = {0} | {i for i, p in enumerate(vault.recovery, 1) if pos in p.keys}
    if paths is None:
        return tuple(sorted(holding))
    wanted = set(check_paths(tuple(set(paths) | {0})))
    unknown = sorted(p for p in wanted if p > len(vault.recovery))
    if unknown:
        raise RegistrationError(f"this vault has recovery paths 1 to {len(vault.recovery)}, not {unknown[0]}",
                                field="paths")
    foreign = sorted(wanted - holding)
    if foreign:
        raise RegistrationError(f"recovery path {foreign[0]} does not hold your key ({cosigner.fingerprint.hex()}): "
                                "register only paths you can sign for", field="paths")
    return tuple(sorted(wanted))


def check_index_limit(index_limit: object) -> None:
    if isinstance(index_limit, bool) or not isinstance(index_limit, int) or not 1 <= index_limit <= MAX_INDEX_LIMIT:
        raise RegistrationError(
            f"the index limit must be a whole number from 1 to {MAX_INDEX_LIMIT:,}, got {index_limit!r}",
            field="index_limit",
        )


def registration_pubkey(cosigner: Cosigner) -> bytes:
    """The 33-byte public key that signs ``cosigner``'s registrations."""
    return cosigner.pubkey_at(REGISTRATION_BRANCH, 0)


def registration_message(vault: "Vault", *, name: str, fingerprint: bytes, index_limit: int,
                         paths: "tuple[int, ...] | None" = None) -> bytes:
    """The 32-byte tagged hash a registration signs (canonical JSON of what is registered;
    ``paths`` is in it only when given, so registrations without paths sign what they always did)."""
    if not isinstance(name, str):
        raise RegistrationError(f"a vault name is a string, not {type(name).__name__}", field="name")
    body: "dict[str, Any]" = {
        "accept": sorted(d.value for d in vault.accept),
        "fingerprint": fingerprint.hex(),
        "index_limit": index_limit,
        "name": name,
        "network": vault.network.name,
        "policy_id": vault.policy_id,
    }
    if paths is not None:
        body["paths"] = list(paths)
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
    accounts = []
    for c in mine:
        account = root.derive(c.path)
        if account.public_key != c.public_key or account.chain_code != c.key.chain_code:
            raise RegistrationError(
                f"the vault lists fingerprint {fp.hex()} at {c.origin()} with a different xpub than this "
                "key derives: the vault record was altered (cosigner key substitution) or the record's "
                "key origin is wrong; do not use it",
                fingerprint=fp,
            )
        accounts.append(account)
    return mine[0], accounts[0]


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

    @property
    def allowed_paths(self) -> "frozenset[int]":
        """The spending paths this keyholder registered (:meth:`Registration.allowed_paths`)."""
        return self.registration.allowed_paths(self.vault)

    def load_derived_keys(self, data: bytes) -> int:
        """Load this keyholder's derived-key record (signed by their registration key, checked
        without unlocking anything): see :meth:`Vault.load_derived_keys`."""
        from .derived import keyholder_trusted_key

        return self.vault.load_derived_keys(data, trusted_key=keyholder_trusted_key(
            _cosigner_by_fingerprint(self.vault, self.fingerprint)))

    def dump_derived_keys(self, root: "ExtendedKey") -> bytes:
        """The keyholder's derived-key record of the keys derived so far, signed by their
        registration key (derived from the unlocked ``root``)."""
        from .derived import keyholder_signer

        self.registration.verify_with_root(self.vault, root, name=self.name)
        return self.vault.dump_derived_keys(secret=keyholder_signer(self.vault, root))
