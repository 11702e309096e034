"""Outputs to a successor vault (key rotation by migration, docs/rotation.md).

A keyholder who registered a successor vault on this laptop may give it to the signer: an
output whose script is derived from that successor (either branch, below the index limit this
keyholder registered for it) is shown as going to the successor, by name and policy id. The
successor must carry a valid registration by the *signing* keyholder, made for its network; a
successor without one, with a registration that does not verify (a tampered file), or an output
the successor does not derive, leaves the output an ordinary payment. The signer finds successor
outputs by script alone: a migration PSBT carries no key derivations for them (the old vault's
change checks would take the shared master fingerprints for change fraud).

For the fee limits a successor output is still money leaving this vault: it counts as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import RegistrationError, SignerRefusal
from ..keys.bip32 import ExtendedKey
from ..policy.registration import RegisteredVault
from ..policy.vault import CHANGE, Vault
from .common import OutputLine, has_vault_template
from .display import escaped
from .psbt import Psbt

#: at most this many successor vaults may be given to one signature (each costs a script search)
MAX_SUCCESSORS = 8


@dataclass(frozen=True)
class SuccessorOutput:
    """An output the signer recognised as paying a registered successor vault."""

    index: int  # the output's position in the transaction
    vault_name: str
    policy_id: str
    branch: int  # 0 receive, 1 change
    vault_index: int

    def label(self) -> str:
        return f"TO SUCCESSOR VAULT {escaped(self.vault_name)} (policy id {self.policy_id})"


def usable_successors(successors: "Sequence[RegisteredVault]", *, vault: Vault,
                      fingerprint: bytes) -> "tuple[tuple[RegisteredVault, ...], tuple[str, ...]]":
    """(the successors whose registration by ``fingerprint`` verifies, notes on those left out)."""
    if isinstance(successors, (str, bytes)) or not isinstance(successors, (list, tuple)):
        raise SignerRefusal("successors must be a list of RegisteredVault (vault file .registered(fingerprint))",
                            field="successors")
    if len(successors) > MAX_SUCCESSORS:
        raise SignerRefusal(f"at most {MAX_SUCCESSORS} successor vaults may be given, not {len(successors)}",
                            field="successors")
    usable: "list[RegisteredVault]" = []
    notes: "list[str]" = []
    for s in successors:
        if not isinstance(s, RegisteredVault):
            raise SignerRefusal(f"a successor must be a RegisteredVault, not {type(s).__name__}", field="successors")
        why = _unusable(s, vault, fingerprint)
        if why is None:
            usable.append(s)
        else:
            notes.append(f"successor vault {s.name!r} is not used ({why}): its outputs are shown as payments")
    return tuple(usable), tuple(notes)


def _unusable(s: RegisteredVault, vault: Vault, fingerprint: bytes) -> "str | None":
    if s.fingerprint != fingerprint:
        return f"its registration is {s.fingerprint.hex()}'s, not this key's ({fingerprint.hex()})"
    try:
        s.registration.verify(s.vault, name=s.name)
    except RegistrationError:
        return "its registration by this key does not verify: the file was changed after you registered it"
    if s.vault.network != vault.network:
        return f"it is a {s.vault.network.name} vault, this one is {vault.network.name}"
    if s.vault.policy_id == vault.policy_id:
        return "it is the vault being spent"
    return None


def successor_outputs(psbt: Psbt, outputs: "Sequence[OutputLine]",
                      successors: "Sequence[RegisteredVault]") -> "tuple[SuccessorOutput, ...]":
    """The payment outputs of ``psbt`` whose script one of ``successors`` derives (checked ones)."""
    found = []
    for line in outputs:
        if line.kind != "payment":
            continue
        script = bytes(psbt.script(line.index))
        for s in successors:
            hit = s.vault.find(script, gap=s.index_limit) if has_vault_template(script, s.vault) else None
            if hit is not None:
                found.append(SuccessorOutput(line.index, s.name, s.vault.policy_id, hit[0], hit[1]))
                break
    return tuple(found)


def check_successor_roots(successors: "Sequence[RegisteredVault]", used: "Sequence[SuccessorOutput]",
                          root: ExtendedKey) -> None:
    """Before signing: each successor shown must also verify against the unlocked key (so an entry
    for this keyholder substituted in the successor file, with a registration made for it, is caught)."""
    names = {u.policy_id for u in used}
    for s in successors:
        if s.vault.policy_id in names:
            s.registration.verify_with_root(s.vault, root, name=s.name)


def branch_name(branch: int) -> str:
    return "change" if branch == CHANGE else "receive"
