"""Signer (BIP174): the keyholder's last line of defence.

``check`` inspects a PSBT against the registered vault and returns what signing it would do
(payments, change, fee); it raises :class:`SignerRefusal` for anything the vault did not
authorise. ``sign`` runs the same checks, then adds this keyholder's signature to every vault
input. See docs/psbt.md for each refusal and the attack it stops.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, NamedTuple, Sequence

from ..amounts import format_amount
from ..errors import FeeLimitExceeded, ForeignKey, RegistrationError, SighashRefused, SignerRefusal
from ..keys.bip32 import SECP256K1_N, ExtendedKey
from ..keys.cosigner import Cosigner
from ..policy.registration import DEFAULT_INDEX_LIMIT, RegisteredVault, own_cosigner
from ..policy.vault import DerivedScript, Vault
from . import fields as F
from .bip322 import ProofShape, recognise
from .display import escaped
from .common import (
    OutputLine,
    check_output,
    have,
    ecdsa_sign,
    scoped,
    ecdsa_verify,
    display_address,
    pubkey_of,
    resolve_input,
    schnorr_sign,
    schnorr_verify,
    signature_state,
    unsigned_tx,
)
from .psbt import Psbt
from .satisfaction import has_final
from .sighash import SIGHASH_ALL, SIGHASH_DEFAULT, SIGHASH_NAMES, SighashCache, TxOut, UnsignedTx
from .successor import SuccessorOutput, check_successor_roots, successor_outputs, usable_successors
from .paths import SpendPath, mining_notes, signer_paths, signing_leaves, spend_weight, usable_paths
from .weight import tx_weight, vsize


@dataclass(frozen=True)
class SignerPolicy:
    """What a signer accepts. The defaults are conservative; loosen them explicitly.

    Fee limits follow Caravan (2,500,000 sats, 1,000 sat/vB) and Coldcard (10 % of the amount
    sent out of the vault).
    """

    max_fee_sats: int = 2_500_000
    max_fee_rate: float = 1_000.0
    max_fee_fraction: float = 0.10
    allowed_sighashes: "frozenset[int]" = frozenset()  # beyond ALL (and DEFAULT for taproot)
    allow_witness_utxo_only: bool = False  # segwit v0 inputs without their previous transaction
    #: vault indexes (both branches) accepted in inputs and vault outputs when signing for a bare
    #: Vault; a RegisteredVault uses the index limit its registration signed instead
    index_limit: int = DEFAULT_INDEX_LIMIT

    def __post_init__(self) -> None:
        for name in ("max_fee_sats", "max_fee_rate", "max_fee_fraction", "index_limit"):
            value = getattr(self, name)
            kinds = (int,) if name == "index_limit" else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or not value >= 0:  # NaN fails >= 0
                what = "a whole number" if name == "index_limit" else "a number"
                raise SignerRefusal(f"signer policy {name} must be {what} >= 0, got {value!r}", field=name)
        if not isinstance(self.allow_witness_utxo_only, bool):
            raise SignerRefusal(f"signer policy allow_witness_utxo_only must be True or False, not "
                                f"{self.allow_witness_utxo_only!r}", field="allow_witness_utxo_only")
        object.__setattr__(self, "allowed_sighashes", _sighash_set(self.allowed_sighashes))


def _sighash_set(values: object) -> "frozenset[int]":
    """``allowed_sighashes`` as a frozenset of sighash bytes; SignerRefusal naming it otherwise."""
    if isinstance(values, (int, str, bytes)) or not isinstance(values, (set, frozenset, tuple, list)):
        raise SignerRefusal(f"signer policy allowed_sighashes must be a set of sighash types, not {values!r}",
                            field="allowed_sighashes")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v not in SIGHASH_NAMES:
            raise SignerRefusal(
                f"signer policy allowed_sighashes has {v!r}, which is not a sighash type "
                f"({', '.join(f'{k:#04x} {n}' for k, n in SIGHASH_NAMES.items())})", field="allowed_sighashes")
    return frozenset(values)


@dataclass(frozen=True)
class SigningSummary:
    """What the keyholder is asked to approve."""

    fingerprint: str
    inputs: int
    input_total: int
    outputs: "tuple[OutputLine, ...]"
    fee: int
    vsize: int
    fee_rate: float
    signed_inputs: int = 0
    notes: "tuple[str, ...]" = field(default=())
    vault_name: "str | None" = None  # the registered name, when signing for a registered vault
    policy_id: str = ""
    proof: "ProofOfControl | None" = None  # set when the PSBT is exactly a BIP322 proof (no coins move)
    #: payments recognised as going to a successor vault registered on this laptop (docs/rotation.md)
    successors: "tuple[SuccessorOutput, ...]" = field(default=())
    #: a vault with recovery paths: the paths this transaction's locks open, primary first (docs/recovery.md)
    spend_paths: "tuple[SpendPath, ...]" = field(default=())
    #: of those, the paths this keyholder signs for (their key is on it and their registration allows it)
    signing_paths: "tuple[str, ...]" = field(default=())

    @property
    def payments(self) -> "list[OutputLine]":
        return [o for o in self.outputs if o.kind == "payment"]

    @property
    def sent_out(self) -> int:
        return sum(o.amount for o in self.payments)

    def to_dict(self) -> "dict[str, Any]":
        d = asdict(self)
        d["outputs"] = [asdict(o) for o in self.outputs]
        d["sent_out"] = self.sent_out
        return d

    def text(self) -> str:
        lines = []
        if self.vault_name is not None:
            lines.append(f"Vault {self.vault_name!r} (registered), policy id {self.policy_id}")
        if self.proof is not None:
            lines.extend(self.proof.lines(self.fingerprint))
            lines.extend(f"  note: {n}" for n in self.notes)
            return "\n".join(lines)
        lines.append(f"Signing as {self.fingerprint}: spending {self.inputs} vault input(s) worth "
                     f"{format_amount(self.input_total)}")
        to_successor = {s.index: s for s in self.successors}
        for o in self.outputs:
            label = {"payment": "PAY", "change": "change back to vault", "vault-receive": "to vault (receive)"}[o.kind]
            if o.kind == "payment" and o.index in to_successor:
                label = to_successor[o.index].label()
            where = ""
            if o.vault_index is not None:
                where = f" ({'change' if o.kind == 'change' else 'receive'} index {o.vault_index})"
            lines.append(f"  output {o.index}: {label:<22} {format_amount(o.amount):>36}  {o.address}{where}")
        lines.append(f"  fee: {format_amount(self.fee)} = {self.fee_rate:.2f} sat/vB for about {self.vsize} vB")
        for p in self.spend_paths:
            mine = " (your key)" if self.fingerprint in p.fingerprints else ""
            if mine and p.name not in self.signing_paths:
                mine = " (your key, but your registration does not allow this path: you do not sign for it)"
            lines.append(f"  path open to this transaction: {p.describe()}{mine}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True)
class ProofOfControl:
    """A PSBT recognised as a BIP322 proof for one vault address: what the keyholder approves."""

    message: str
    address: str
    branch: int
    index: int
    to_spend_txid: str

    def lines(self, fingerprint: str) -> "list[str]":
        where = "change" if self.branch == 1 else "receive"
        return [f"Signing as {fingerprint}: BIP322 PROOF OF CONTROL: no coins move",
                f"  address: {self.address} (vault {where} index {self.index})",
                f"  message: \"{escaped(self.message)}\"",
                f"  (to_sign spends only the virtual to_spend {self.to_spend_txid} of this message and address; "
                "its one output is OP_RETURN of 0 sats)"]


def _proof(psbt: Psbt, inputs: "list[_Input]", vault: Vault, message: "str | None") -> "ProofOfControl | None":
    """The BIP322 proof ``psbt`` exactly is (see :func:`.bip322.recognise`), or None."""
    if message is not None and not isinstance(message, str):
        raise SignerRefusal(f"proof_message must be text, not {type(message).__name__}", field="proof_message")
    if len(inputs) != 1:
        return None
    shape: "ProofShape | None" = recognise(psbt, inputs[0].spent, message)
    if shape is None:
        return None
    d = inputs[0].derived
    return ProofOfControl(shape.message, display_address(shape.script_pubkey, vault), d.branch, d.index,
                          shape.to_spend_txid)


_SIGHASH_BYTES = [bytes([t]) for t in range(256)]


class _Input(NamedTuple):
    """One input as the checks resolved it (what signing uses)."""

    derived: DerivedScript
    spent: TxOut
    sighash: int


@scoped
def check(psbt: Psbt, vault: "Vault | RegisteredVault", *, fingerprint: bytes,
          policy: SignerPolicy = SignerPolicy(), proof_message: "str | None" = None,
          successors: "Sequence[RegisteredVault]" = ()) -> "tuple[SigningSummary, list[_Input]]":
    """Verify ``psbt`` against the registered vault; return (SigningSummary, per-input details).

    A PSBT that is exactly a BIP322 proof for ``proof_message`` (or for the message it carries)
    is summarised as a proof (``summary.proof``) and only the fee rules are not applied to it
    (its fee is 0 and nothing moves); anything else is a spend with every check. Payments to one
    of ``successors`` registered by ``fingerprint`` are listed in ``summary.successors``."""
    registered = vault if isinstance(vault, RegisteredVault) else None
    if registered is not None:
        vault = registered.vault
        if registered.fingerprint != fingerprint:
            raise RegistrationError(
                f"the registration given is {registered.fingerprint.hex()}'s, not this key's "
                f"({fingerprint.hex()}): register the vault with your own key",
                fingerprint=registered.fingerprint,
            )
    if not isinstance(vault, Vault):
        raise SignerRefusal("expected a Vault or a RegisteredVault")
    limit = registered.index_limit if registered is not None else policy.index_limit
    if not isinstance(psbt, Psbt):
        raise SignerRefusal("expected a parsed PSBT")
    if psbt.input_count == 0:
        raise SignerRefusal("the PSBT has no inputs")
    final = [has_final(m) for m in psbt.inputs]
    if all(final):
        raise SignerRefusal("this PSBT is already finalized: there is nothing left to sign; broadcast it")
    if any(final):
        raise SignerRefusal(
            f"input {final.index(True)} is already finalized but others are not: a finalized input can no "
            "longer be checked against the vault; ask the coordinator for the unfinalized PSBT",
            input_index=final.index(True),
        )
    _check_global_xpubs(psbt, vault)
    inputs = [_check_input(psbt, i, vault, policy, limit) for i in range(psbt.input_count)]
    tx = unsigned_tx(psbt)
    if len({(txin.txid, txin.vout) for txin in tx.inputs}) != len(tx.inputs):
        raise SignerRefusal("the PSBT spends the same coin twice")
    outputs = tuple(_check_output(psbt, o, vault, limit) for o in range(psbt.output_count))
    input_total = sum(x.spent.amount for x in inputs)
    output_total = sum(o.amount for o in outputs)
    if input_total > MAX_MONEY or output_total > MAX_MONEY:
        raise SignerRefusal("the amounts add up to more than 21 million BTC: the PSBT is forged")
    fee = input_total - output_total
    if fee < 0:
        raise SignerRefusal(f"the outputs ({output_total} sats) exceed the inputs ({input_total} sats)")
    allowed = registered.allowed_paths if registered is not None else None  # docs/recovery.md
    opened = signer_paths(vault, tx, fingerprint, allowed) if vault.recovery else ()
    signable = usable_paths(opened, fingerprint, allowed)
    size = vsize(tx_weight([spend_weight(vault, opened)] * len(inputs),
                           [len(psbt.script(o)) for o in range(psbt.output_count)]))
    rate = fee / size
    returned = sum(o.amount for o in outputs if o.is_vault)
    sent = input_total - returned - fee  # everything that leaves the vault and is not proven change
    proof = _proof(psbt, inputs, vault, proof_message)
    refusal = None if proof is not None else fee_refusal(
        policy, fee=fee, rate=rate, sent=sent, input_total=input_total,
        returns_to_vault=any(o.is_vault for o in outputs))
    if refusal is not None:
        raise refusal
    notes = []
    if proof is not None:
        notes.append("proof of control: no coins move")
    elif not sent:
        notes.append("no payment leaves the vault (consolidation or self-transfer)")
    locktime = psbt.locktime
    if locktime >= 500_000_000:
        notes.append(f"cannot be mined before unix time {locktime} (nLockTime)")
    elif locktime > 0:
        notes.append(f"cannot be mined before block {locktime} (nLockTime; normally the current height)")
    notes.extend(_relative_timelocks(tx))
    notes.extend(mining_notes(vault, tx, signable))
    usable, unused = usable_successors(successors, vault=vault, fingerprint=fingerprint)
    notes.extend(unused)
    summary = SigningSummary(fingerprint.hex(), len(inputs), input_total, outputs, fee, size, round(rate, 3),
                             notes=tuple(notes), policy_id=vault.policy_id,
                             vault_name=registered.name if registered is not None else None, proof=proof,
                             successors=successor_outputs(psbt, outputs, usable) if proof is None else (),
                             spend_paths=opened, signing_paths=tuple(p.name for p in signable))
    return summary, inputs


MAX_MONEY = 21_000_000 * 100_000_000


def fee_problem(policy: SignerPolicy, *, fee: int, rate: float, sent: int, input_total: int,
                returns_to_vault: bool) -> "str | None":
    """Why ``policy`` refuses this fee, or None. ``sent`` is everything that leaves the vault and
    is not the fee; the creator applies the same rule before anyone is asked to sign."""
    refusal = fee_refusal(policy, fee=fee, rate=rate, sent=sent, input_total=input_total,
                          returns_to_vault=returns_to_vault)
    return None if refusal is None else str(refusal)


def fee_refusal(policy: SignerPolicy, *, fee: int, rate: float, sent: int, input_total: int,
                returns_to_vault: bool) -> "FeeLimitExceeded | None":
    """:func:`fee_problem` as the (unraised) :class:`FeeLimitExceeded` whose ``limit`` is the one crossed."""
    if fee > policy.max_fee_sats:
        return FeeLimitExceeded(f"fee {fee} sats is above the limit of {policy.max_fee_sats} sats",
                                limit=policy.max_fee_sats)
    if rate > policy.max_fee_rate:
        return FeeLimitExceeded(f"fee rate {rate:.1f} sat/vB is above the limit of {policy.max_fee_rate} sat/vB",
                                limit=policy.max_fee_rate)
    if not returns_to_vault and sent == 0:
        return FeeLimitExceeded(
            f"nothing is paid to anyone and nothing returns to the vault: all {input_total} sats of the "
            "inputs would go to fees (fee burn); refusing",
            limit=policy.max_fee_fraction,
        )
    base = sent if sent else input_total  # a consolidation: the fee is measured against what it moves
    if fee > policy.max_fee_fraction * base:
        return FeeLimitExceeded(
            f"fee {fee} sats is more than {policy.max_fee_fraction:.0%} of the {base} sats "
            + ("being sent" if sent else "being moved within the vault"),
            limit=policy.max_fee_fraction,
        )
    return None


def _relative_timelocks(tx: UnsignedTx) -> "list[str]":
    """BIP68: a version >= 2 transaction whose input sequence has bit 31 clear is time-locked."""
    if tx.version < 2:
        return []
    notes = []
    for i, txin in enumerate(tx.inputs):
        seq = txin.sequence
        if seq & (1 << 31):
            continue
        value = seq & 0xFFFF
        if seq & (1 << 22):
            notes.append(f"input {i} cannot be mined until {value * 512} seconds after its coin confirmed "
                         "(relative timelock, nSequence)")
        else:
            notes.append(f"input {i} cannot be mined until {value} blocks after its coin confirmed "
                         "(relative timelock, nSequence)")
    return notes


def sign(psbt: Psbt, vault: "Vault | RegisteredVault", root: ExtendedKey, *,
         policy: SignerPolicy = SignerPolicy(),
         successors: "Sequence[RegisteredVault]" = ()) -> "tuple[Psbt, SigningSummary]":
    """Check ``psbt`` and sign every vault input with ``root``; return (new PSBT, SigningSummary).

    With a :class:`RegisteredVault` (what the CLI always uses) the registration is checked
    against ``root`` first and its index limit applies; a bare :class:`Vault` is trusted as given.
    Equivalent to ``prepare(psbt, vault, fingerprint=root.fingerprint, policy=policy).sign(root)``.
    """
    if not isinstance(vault, (Vault, RegisteredVault)):  # a watched descriptor, say: never signed for
        raise SignerRefusal(f"expected a Vault or a RegisteredVault, not {type(vault).__name__}: only a "
                            "registered vault can be signed for")
    _check_root(vault, root)
    me, _ = find_cosigner(vault.vault if isinstance(vault, RegisteredVault) else vault, root)
    return prepare(psbt, vault, fingerprint=me.fingerprint, policy=policy, successors=successors).sign(root)


def prepare(psbt: Psbt, vault: "Vault | RegisteredVault", *, fingerprint: bytes,
            policy: SignerPolicy = SignerPolicy(), proof_message: "str | None" = None,
            successors: "Sequence[RegisteredVault]" = ()) -> "SigningRequest":
    """Check ``psbt`` for the keyholder ``fingerprint`` without their key: the request to show
    them (``.summary``) and, once approved, to sign with the very data that was checked.
    ``summary.proof`` is set when it is exactly a BIP322 proof (see :func:`check`);
    ``summary.successors`` lists the payments to one of ``successors`` (docs/rotation.md)."""
    if not isinstance(psbt, Psbt):
        raise SignerRefusal("expected a parsed PSBT")
    plain = vault.vault if isinstance(vault, RegisteredVault) else vault
    if isinstance(plain, Vault) and all(c.fingerprint != fingerprint for c in plain.cosigners):
        raise RegistrationError(f"this key (fingerprint {bytes(fingerprint).hex()}) is not a cosigner of the vault: "
                                "check you loaded the right key and the right vault", fingerprint=fingerprint)
    from . import por  # BIP127 proof of reserves: its own checks of the commitment, the vault ones for the rest

    if por.claims_reserves(psbt):
        return por.prepare_reserves(psbt, vault, fingerprint=fingerprint, policy=policy, message=proof_message)
    frozen = psbt.copy()  # what is shown is what is signed, whatever the caller does to ``psbt``
    summary, inputs = check(frozen, vault, fingerprint=fingerprint, policy=policy, proof_message=proof_message,
                            successors=successors)
    return SigningRequest(frozen, vault, fingerprint, policy, summary, tuple(inputs), tuple(successors))


def prepare_proof(psbt: Psbt, vault: "Vault | RegisteredVault", *, fingerprint: bytes, message: str,
                  policy: SignerPolicy = SignerPolicy()) -> "SigningRequest":
    """:func:`prepare` for a BIP322 proof of ``message`` only: SignerRefusal for anything else."""
    if not isinstance(message, str):
        raise SignerRefusal(f"the proof message must be text, not {type(message).__name__}", field="proof_message")
    try:
        request = prepare(psbt, vault, fingerprint=fingerprint, policy=policy, proof_message=message)
    except SignerRefusal as e:  # the same refusal, saying first that it is not a proof
        e.args = (f"this PSBT is not a BIP322 proof of the message given, and as a transaction it is refused: {e}",)
        raise
    if request.summary.proof is None:
        raise SignerRefusal(
            "this PSBT is not a BIP322 proof of the message given (its to_sign and to_spend do not match the "
            "message and the vault address exactly): it would be a transaction; do not sign it as a proof")
    return request


@dataclass(frozen=True)
class SigningRequest:
    """A PSBT checked against the vault for one keyholder (:func:`prepare`): the summary they
    approve, and :meth:`sign` to sign exactly that, once, with the same checked inputs."""

    psbt: Psbt = field(repr=False)
    vault: "Vault | RegisteredVault" = field(repr=False)
    fingerprint: bytes
    policy: SignerPolicy = field(repr=False)
    summary: SigningSummary
    inputs: "tuple[_Input, ...]" = field(repr=False)
    successor_vaults: "tuple[RegisteredVault, ...]" = field(default=(), repr=False)

    @property
    def already_signed(self) -> bool:
        """True if every input already carries a valid signature by this keyholder's key."""
        plain = self.vault.vault if isinstance(self.vault, RegisteredVault) else self.vault
        pos = next(i for i, c in enumerate(plain.cosigners) if c.fingerprint == self.fingerprint)
        for i, x in enumerate(self.inputs):  # no record of this key on some input: not signed, nothing to verify
            d = x.derived
            pk = d.pubkeys[d.signers.index(pos)]
            t, keydata = (F.PSBT_IN_TAP_SCRIPT_SIG, pk[1:] + d.tap_leaf_hashes(pk[1:])[0]) if plain.script == "tr" \
                else (F.PSBT_IN_PARTIAL_SIG, pk)
            if self.psbt.inputs[i].get(t, keydata) is None:
                return False
        tx = unsigned_tx(self.psbt)
        cache = SighashCache(tx, [x.spent for x in self.inputs] if plain.script == "tr" else None)
        for i, x in enumerate(self.inputs):
            d = x.derived
            pk = d.pubkeys[d.signers.index(pos)]
            if signature_state(self.psbt.inputs[i], d, pk, i, cache, x.spent.amount) != "valid":
                return False
        return True

    def sign(self, root: ExtendedKey) -> "tuple[Psbt, SigningSummary]":
        """Sign every input with ``root`` (this keyholder's master key): (new PSBT, SigningSummary)."""
        vault = self.vault
        _check_root(vault, root)
        plain = vault.vault if isinstance(vault, RegisteredVault) else vault
        me, account = find_cosigner(plain, root)
        if me.fingerprint != self.fingerprint:
            raise SignerRefusal(
                f"this request was checked for {self.fingerprint.hex()}, not for this key ({me.fingerprint.hex()})",
                fingerprint=me.fingerprint,
            )
        summary, inputs, psbt = self.summary, self.inputs, self.psbt
        check_successor_roots(self.successor_vaults, summary.successors, root)
        vault = plain
        out = psbt.copy()
        tx = unsigned_tx(out)
        is_tr = vault.script == "tr"
        cache = SighashCache(tx, [x.spent for x in inputs] if is_tr else None)
        me_pos = vault.cosigners.index(me)
        usable = tuple(p for p in summary.spend_paths if p.name in summary.signing_paths)
        branches: "dict[int, _LeafSigner]" = {}
        signed = 0
        maps = out.inputs
        for i, x in enumerate(inputs):
            m = maps[i]
            d = x.derived
            leaf_signer = branches.get(d.branch)
            if leaf_signer is None:
                leaf_signer = branches[d.branch] = _LeafSigner(account.child(d.branch), me, d.branch, i)
            secret = leaf_signer.secret(d.index)
            pub = d.pubkeys[d.signers.index(me_pos)]
            if is_tr:
                for leaf_hash in signing_leaves(vault, d, pub[1:], usable):  # one leaf, or each usable leaf of this key
                    msg = cache.taproot(i, x.sighash, leaf_hash=leaf_hash)
                    key = pub[1:] + leaf_hash
                    existing = m.get(F.PSBT_IN_TAP_SCRIPT_SIG, key)
                    if existing is not None and schnorr_verify(pub[1:], existing[:64], msg):
                        continue
                    sig = schnorr_sign(secret, msg)
                    m.set(F.PSBT_IN_TAP_SCRIPT_SIG, key, sig if x.sighash == SIGHASH_DEFAULT else sig + bytes([x.sighash]))
            else:
                if d.script_type == "sh":
                    msg = cache.legacy(i, have(d.redeem_script), x.sighash)
                else:
                    msg = cache.segwit_v0(i, have(d.witness_script), x.spent.amount, x.sighash, memo=False)
                key = F.make_key(F.PSBT_IN_PARTIAL_SIG, pub)
                existing = m.raw_get(key)
                if existing is not None and ecdsa_verify(pub, existing[:-1], msg):
                    signed += 1
                    continue
                m.raw_set(key, ecdsa_sign(secret, msg) + _SIGHASH_BYTES[x.sighash])
            signed += 1
        if out.version == 2:
            _update_modifiable(out, [x.sighash for x in inputs])
        out.canonicalize()
        return out, replace(summary, signed_inputs=signed)


def _check_root(vault: "Vault | RegisteredVault", root: ExtendedKey) -> None:
    """A registered vault's registration must verify against the unlocked key."""
    if isinstance(vault, RegisteredVault):
        vault.registration.verify_with_root(vault.vault, root, name=vault.name)


def _update_modifiable(psbt: Psbt, sighashes: "Iterable[int]") -> None:
    """BIP370 Signer: clear Inputs Modifiable unless every signature is ANYONECANPAY, Outputs
    Modifiable unless it is NONE; set Has SIGHASH_SINGLE for SINGLE signatures."""
    raw = psbt.globals.get(F.PSBT_GLOBAL_TX_MODIFIABLE)
    if raw is None:
        return
    flags = raw[0]
    for sh in sighashes:
        base = SIGHASH_ALL if sh == SIGHASH_DEFAULT else sh & 0x1F
        if not sh & 0x80:
            flags &= ~0x01
        if base != 0x02:  # not SIGHASH_NONE
            flags &= ~0x02
        if base == 0x03:
            flags |= 0x04
    psbt.globals.set(F.PSBT_GLOBAL_TX_MODIFIABLE, b"", bytes([flags]))


class _LeafSigner:
    """Private child derivation below one branch key: one HMAC and one scalar add per index.

    The branch key is checked once against the vault's record of this cosigner (same public
    key, same chain code): every child secret then belongs to the vault key derived at the same
    index, since both sides add the same HMAC tweak (``(s + t)G = sG + tG``). That replaces a
    public-key computation per input; SignerRefusal if the record does not match.
    """

    def __init__(self, branch: ExtendedKey, me: Cosigner, number: int, i: int) -> None:
        self._secret = branch.key[1:]
        self._scalar = int.from_bytes(self._secret, "big")
        self._pub = branch.public_key
        self._chain = branch.chain_code
        record = me.key.child(number)
        if pubkey_of(self._secret) != record.public_key or self._chain != record.chain_code:
            raise SignerRefusal(f"input {i}: this key does not derive the vault key it should (its branch "
                                f"{number} key differs from the vault's record of cosigner {me.fingerprint.hex()})",
                                input_index=i)

    def secret(self, index: int) -> bytes:
        digest = hmac.digest(self._chain, self._pub + index.to_bytes(4, "big"), "sha512")
        tweak = int.from_bytes(digest[:32], "big")
        child = (self._scalar + tweak) % SECP256K1_N
        if tweak >= SECP256K1_N or child == 0:  # BIP32: skip to the next index (probability 2^-127)
            raise SignerRefusal(f"BIP32 derivation at index {index} is invalid")
        return child.to_bytes(32, "big")


def find_cosigner(vault: Vault, root: ExtendedKey) -> "tuple[Cosigner, ExtendedKey]":
    """(this key's cosigner record, its account private key), or SignerRefusal."""
    return own_cosigner(vault, root)


def _check_global_xpubs(psbt: Psbt, vault: Vault) -> None:
    ours = {c.key.serialize()[4:] for c in vault.cosigners}  # without version bytes
    for xkey, _origin in psbt.globals.items_of_type(F.PSBT_GLOBAL_XPUB):
        key = ExtendedKey.from_bytes(bytes(xkey)) if len(xkey) == 78 else None
        if key is None:
            raise SignerRefusal("a global xpub in the PSBT is malformed", field="PSBT_GLOBAL_XPUB")
        if key.is_mainnet != vault.network.is_mainnet:
            raise SignerRefusal(f"the PSBT's global xpubs are for another network than this {vault.network.name} vault",
                                field="PSBT_GLOBAL_XPUB")
        if bytes(xkey)[4:] not in ours:
            raise ForeignKey(
                "the PSBT names a cosigner xpub that is not in the registered vault: it was made for a "
                "different vault (or a cosigner key was substituted)",
                field="PSBT_GLOBAL_XPUB", fingerprint=bytes(_origin[:4]) if len(_origin) >= 4 else None,
            )


def _check_input(psbt: Psbt, i: int, vault: Vault, policy: SignerPolicy, limit: int) -> _Input:
    segwit_v0 = vault.script in ("wsh", "sh-wsh")
    d, spent = resolve_input(psbt, i, vault, SignerRefusal, index_limit=limit,
                             require_full_tx=vault.script == "sh" or (segwit_v0 and not policy.allow_witness_utxo_only))
    raw = psbt.inputs[i].get(F.PSBT_IN_SIGHASH_TYPE)
    default = SIGHASH_DEFAULT if vault.script == "tr" else SIGHASH_ALL
    sighash = default if raw is None else int.from_bytes(raw, "little")
    if sighash != default and sighash != SIGHASH_ALL and sighash not in policy.allowed_sighashes:
        name = SIGHASH_NAMES.get(sighash, hex(sighash))
        raise SighashRefused(
            f"input {i} asks for sighash {name}, which would let others change the transaction after "
            "you sign; only ALL is accepted unless explicitly allowed",
            input_index=i, field="PSBT_IN_SIGHASH_TYPE",
        )
    return _Input(d, spent, sighash)


def _check_output(psbt: Psbt, o: int, vault: Vault, limit: int) -> OutputLine:
    line, problem = check_output(psbt, o, vault, index_limit=limit, match_scripts=True)
    if problem is not None:
        raise problem
    return line
