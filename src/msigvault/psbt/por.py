"""BIP127 proof-of-reserves PSBTs: the exact shape, and the Signer, Combiner and Finalizer for it.

A proof of reserves is a transaction that spends every proven vault coin plus a first
"commitment input" whose outpoint is ``SHA-256("Proof-of-Reserves: " + message):0`` (the
digest as the serialized txid bytes), into one output of exactly the coins' total (no fee).
That outpoint cannot exist (its txid would have to be a double SHA-256 of a transaction), so the
transaction can never be valid, and every vault signature (SIGHASH_ALL, or DEFAULT for taproot)
commits to it, so no signature can be reused in a valid transaction. The commitment input
carries BIP127's ``PSBT_IN_POR_COMMITMENT`` (the message) and, for taproot sighashes, the
witness_utxo ``0 sats, OP_TRUE`` every role assumes for it ("as if the scriptPubKey was
OP_TRUE"); its final scriptSig and witness are empty.

The roles here run the vault roles' own checks (``signer._check_input``, ``signature_state``,
``verify_final``...) on inputs 1..n; only the commitment input is checked differently.
Pure and offline: ``msigvault.reserves.por`` builds, encodes and verifies proofs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Optional

from ..amounts import format_amount
from ..errors import CombineError, FinalizeError, MsigvaultError, NotEnoughSignatures, RegistrationError, SignerRefusal
from ..policy.registration import RegisteredVault
from ..policy.vault import DerivedScript, Vault
from ..script import compact_size
from . import fields as F
from .common import (ecdsa_sign, ecdsa_verify, foreign_signature_keys, have, pubkey_of, schnorr_sign, schnorr_verify,
                     signature_state, unsigned_tx)
from .display import escaped, escaped_lines
from .finalizer import write_final
from .psbt import Psbt, PsbtMap
from .satisfaction import has_final, resolve_vault_input, verify_final
from . import signer as S
from .sighash import SIGHASH_DEFAULT, SighashCache, TxOut
from .signer import SignerPolicy, SigningRequest, SigningSummary

if TYPE_CHECKING:
    from ..keys.bip32 import ExtendedKey

PREFIX = "Proof-of-Reserves: "
MAX_MESSAGE_BYTES = 16_384
MAX_COINS = 10_000
OP_TRUE = b"\x51"
#: the one output: OP_RETURN (provably unspendable) of exactly the proven total
OUTPUT_SCRIPT = b"\x6a"
#: the output every role assumes the commitment input spends (BIP127: value 0, "as if OP_TRUE")
COMMITMENT_SPENT = TxOut(0, OP_TRUE)
COMMITMENT_WITNESS_UTXO = (0).to_bytes(8, "little") + compact_size(1) + OP_TRUE
# what the commitment input may carry besides the message: its BIP370 transaction fields
_COMMITMENT_FIELDS = {F.PSBT_IN_POR_COMMITMENT, F.PSBT_IN_WITNESS_UTXO, F.PSBT_IN_PREVIOUS_TXID,
                      F.PSBT_IN_OUTPUT_INDEX, F.PSBT_IN_SEQUENCE}
_EMPTY_FINALS = (F.PSBT_IN_FINAL_SCRIPTSIG, F.PSBT_IN_FINAL_SCRIPTWITNESS)
_SIG_TYPES = (F.PSBT_IN_PARTIAL_SIG, F.PSBT_IN_TAP_SCRIPT_SIG)
_UNUSABLE = (F.PSBT_IN_TAP_KEY_SIG, F.PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS, F.PSBT_IN_MUSIG2_PUB_NONCE,
             F.PSBT_IN_MUSIG2_PARTIAL_SIG)


class ReserveProofRefused(SignerRefusal):
    """A PSBT claims to be a BIP127 proof of reserves but is not exactly one: it could be valid."""

    code = "signer.reserves-proof"


def commitment_txid(message: str) -> bytes:
    """The commitment input's txid bytes (as serialized): SHA-256 of the prefixed UTF-8 message."""
    return hashlib.sha256((PREFIX + message).encode("utf-8")).digest()


def check_message(message: object, error: "type[MsigvaultError]" = ReserveProofRefused) -> str:
    """``message`` if it is text within :data:`MAX_MESSAGE_BYTES`; ``error`` otherwise."""
    if not isinstance(message, str):
        raise error(f"a proof-of-reserves message must be text, not {type(message).__name__}", field="message")
    size = len(message.encode("utf-8"))
    if not message or size > MAX_MESSAGE_BYTES:
        raise error(f"a proof-of-reserves message is 1 to {MAX_MESSAGE_BYTES} bytes, this one is {size}",
                    field="message", limit=MAX_MESSAGE_BYTES)
    return message


def check_no_recovery(vault: Vault, error: "type[MsigvaultError]") -> None:
    """The proof roles here satisfy the vault's one m-of-n script; a vault with timelocked recovery
    paths (docs/recovery.md) is refused until they know its paths (they built a witness its
    primary leaf does not have, and signed a recovery key's input with the primary leaf's data)."""
    if getattr(vault, "recovery", None):
        raise error("proofs of reserves of a vault with recovery paths are not supported yet: prove the "
                    "reserves of its coins with BIP322 proofs of control, or before adding recovery paths")


def claims_reserves(psbt: Psbt) -> bool:
    """Whether any input of ``psbt`` carries ``PSBT_IN_POR_COMMITMENT``: it claims to be a proof."""
    return any(m.has_type(F.PSBT_IN_POR_COMMITMENT) for m in psbt.inputs)


def check_shape(psbt: Psbt, message: Optional[str] = None) -> str:
    """The message ``psbt`` proves reserves for, if it is exactly a proof; ReserveProofRefused.

    Everything but the vault inputs: the commitment input is input 0, spends
    ``commitment_txid(message):0``, carries the message and nothing that claims a real coin;
    there is one output, OP_RETURN. ``message`` (what the keyholder was told) must equal the
    PSBT's. The vault inputs and the output's amount are checked by the roles.
    """
    for i in range(1, psbt.input_count):
        if psbt.inputs[i].has_type(F.PSBT_IN_POR_COMMITMENT):
            raise ReserveProofRefused(f"input {i} carries a proof-of-reserves commitment: BIP127 puts it on the "
                                      "first input only; do not sign", input_index=i, field="PSBT_IN_POR_COMMITMENT")
    if psbt.input_count == 0:
        raise ReserveProofRefused("the PSBT has no inputs: a proof of reserves spends its commitment and at "
                                  "least one vault coin")
    m = psbt.inputs[0]
    raw = m.get(F.PSBT_IN_POR_COMMITMENT)
    if raw is None:
        raise ReserveProofRefused("input 0 carries no proof-of-reserves commitment (PSBT_IN_POR_COMMITMENT): "
                                  "not a proof of reserves", input_index=0, field="PSBT_IN_POR_COMMITMENT")
    try:
        text = check_message(bytes(raw).decode("utf-8"))
    except UnicodeDecodeError:
        raise ReserveProofRefused("the proof-of-reserves commitment is not UTF-8 text", input_index=0,
                                  field="PSBT_IN_POR_COMMITMENT") from None
    if message is not None and check_message(message) != text:
        raise ReserveProofRefused(
            f"the PSBT commits to the message \"{escaped(text)[:200]}\", not to the one you "
            "were given: do not sign", input_index=0, field="PSBT_IN_POR_COMMITMENT")
    txid, vout = psbt.prevout(0)
    if (bytes(txid), vout) != (commitment_txid(text), 0):
        raise ReserveProofRefused(
            "input 0 is not the outpoint the message commits to (SHA-256(\"Proof-of-Reserves: \" + message):0): "
            "it could be a real coin, and the transaction could be valid; do not sign",
            input_index=0, field="PSBT_IN_POR_COMMITMENT")
    for key, value in m.items():
        t = F.keytype_of(key)
        if t in _EMPTY_FINALS and bytes(value) in (b"", b"\x00"):
            continue  # the commitment's final scriptSig/witness: empty (BIP127)
        if t not in _COMMITMENT_FIELDS:
            raise ReserveProofRefused(
                f"the commitment input carries {F.INPUT_NAMES.get(t, f'field type {t:#x}')}: it must spend "
                "nothing real and carry no signature or script; do not sign",
                input_index=0, field=F.INPUT_NAMES.get(t))
    wit = m.get(F.PSBT_IN_WITNESS_UTXO)
    if wit is not None and bytes(wit) != COMMITMENT_WITNESS_UTXO:
        raise ReserveProofRefused("the commitment input claims to spend a coin with a value or script (its "
                                  "witness_utxo must be 0 sats, OP_TRUE): do not sign",
                                  input_index=0, field="PSBT_IN_WITNESS_UTXO")
    if psbt.input_count < 2:
        raise ReserveProofRefused("a proof of reserves spends at least one vault coin besides the commitment")
    if psbt.input_count > MAX_COINS + 1:
        raise ReserveProofRefused(f"a proof of reserves here proves at most {MAX_COINS} coins", limit=MAX_COINS)
    if psbt.output_count != 1 or bytes(psbt.script(0)) != OUTPUT_SCRIPT:
        raise ReserveProofRefused(
            f"a proof of reserves has exactly one output, OP_RETURN of the total; this PSBT has "
            f"{psbt.output_count} output(s){'' if psbt.output_count != 1 else ' paying a script'}: it would "
            "pay somewhere; do not sign", output_index=0 if psbt.output_count else None)
    return text


def check_total(psbt: Psbt, total: int) -> None:
    """The one output must hold exactly ``total`` (the vault coins' sum): BIP127's zero fee."""
    if psbt.amount(0) != total:
        raise ReserveProofRefused(
            f"the output holds {psbt.amount(0)} sats but the vault coins hold {total}: BIP127 requires the "
            "exact sum (no fee)", output_index=0)


def spent_outputs(vault_spent: "Iterable[TxOut]") -> "list[TxOut]":
    """Every input's spent output, the commitment's first (what taproot sighashes commit to)."""
    return [COMMITMENT_SPENT, *vault_spent]


# -- Signer -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReservesShown:
    """What the keyholder approves for a proof of reserves."""

    message: str
    total: int
    coins: int
    commitment: str  # outpoint, display order

    def lines(self, fingerprint: str) -> "list[str]":
        return [f"Signing as {fingerprint}: PROOF OF RESERVES: no coins move",
                "  message (each line escaped: JSON escapes, and every character that does not print as itself):",
                *(f"    {line}" for line in escaped_lines(self.message)),
                f"  total: {format_amount(self.total)} in {self.coins} coin(s) of the vault",
                f"  (input 0 is the commitment {self.commitment}, SHA-256 of the message: it does not exist, so "
                "this transaction can never be valid; one OP_RETURN output of the total, no fee)"]


@dataclass(frozen=True)
class ReservesSummary(SigningSummary):
    """A :class:`~.signer.SigningSummary` of a proof of reserves: ``reserves`` set, no payments."""

    reserves: "ReservesShown | None" = None

    def text(self) -> str:
        lines = []
        if self.vault_name is not None:
            lines.append(f"Vault {self.vault_name!r} (registered), policy id {self.policy_id}")
        lines.extend(have(self.reserves).lines(self.fingerprint))
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def prepare_reserves(psbt: Psbt, vault: "Vault | RegisteredVault", *, fingerprint: bytes,
                     policy: SignerPolicy, message: Optional[str] = None) -> "ReservesRequest":
    """The signer's check of a proof-of-reserves PSBT (``signer.prepare`` calls this for a PSBT
    that :func:`claims_reserves`): the shape, then every vault input exactly as for a spend, with
    sighash ALL (DEFAULT for taproot) whatever the policy allows."""
    registered = vault if isinstance(vault, RegisteredVault) else None
    plain = registered.vault if registered is not None else vault
    if not isinstance(plain, Vault):
        raise SignerRefusal("expected a Vault or a RegisteredVault")
    check_no_recovery(plain, ReserveProofRefused)
    if registered is not None and registered.fingerprint != fingerprint:
        raise RegistrationError(f"the registration given is {registered.fingerprint.hex()}'s, not this key's "
                                f"({fingerprint.hex()}): register the vault with your own key",
                                fingerprint=registered.fingerprint)
    frozen = psbt.copy()
    text = check_shape(frozen, message)
    final = [i for i in range(1, frozen.input_count) if has_final(frozen.inputs[i])]
    if final:
        raise SignerRefusal(f"input {final[0]} is already finalized: there is nothing to sign", input_index=final[0])
    S._check_global_xpubs(frozen, plain)
    limit = registered.index_limit if registered is not None else policy.index_limit
    strict = replace(policy, allowed_sighashes=frozenset())
    inputs = [S._check_input(frozen, i, plain, strict, limit) for i in range(1, frozen.input_count)]
    if len({frozen.prevout(i) for i in range(frozen.input_count)}) != frozen.input_count:
        raise ReserveProofRefused("the proof spends the same coin twice: its total would count it twice")
    total = sum(x.spent.amount for x in inputs)
    check_total(frozen, total)
    shown = ReservesShown(text, total, len(inputs), f"{commitment_txid(text)[::-1].hex()}:0")
    summary = ReservesSummary(
        fingerprint.hex(), len(inputs), total, (), 0, 0, 0.0,
        notes=("proof of reserves: no coins move",), policy_id=plain.policy_id,
        vault_name=registered.name if registered is not None else None, reserves=shown)
    return ReservesRequest(frozen, vault, fingerprint, policy, summary, tuple(inputs))


class ReservesRequest(SigningRequest):
    """A :class:`~.signer.SigningRequest` for a proof of reserves: signs inputs 1..n."""

    def _plain(self) -> Vault:
        return self.vault.vault if isinstance(self.vault, RegisteredVault) else self.vault

    def _cache(self, psbt: Psbt) -> SighashCache:
        tr = self._plain().script == "tr"
        return SighashCache(unsigned_tx(psbt), spent_outputs(x.spent for x in self.inputs) if tr else None)

    @property
    def already_signed(self) -> bool:
        plain = self._plain()
        pos = next(i for i, c in enumerate(plain.cosigners) if c.fingerprint == self.fingerprint)
        cache = self._cache(self.psbt)
        for i, x in enumerate(self.inputs, 1):
            d = x.derived
            if signature_state(self.psbt.inputs[i], d, d.pubkeys[d.signers.index(pos)], i, cache,
                               x.spent.amount) != "valid":
                return False
        return True

    def sign(self, root: "ExtendedKey") -> "tuple[Psbt, SigningSummary]":
        """Sign every vault input (1..n) with ``root``: (new PSBT, summary)."""
        S._check_root(self.vault, root)
        plain = self._plain()
        me, account = S.find_cosigner(plain, root)
        if me.fingerprint != self.fingerprint:
            raise SignerRefusal(f"this request was checked for {self.fingerprint.hex()}, not for this key "
                                f"({me.fingerprint.hex()})", fingerprint=me.fingerprint)
        out = self.psbt.copy()
        cache = self._cache(out)
        me_pos = plain.cosigners.index(me)
        branches: "dict[int, ExtendedKey]" = {}
        for i, x in enumerate(self.inputs, 1):
            d = x.derived
            if d.branch not in branches:
                branches[d.branch] = account.child(d.branch)
            secret = bytes(branches[d.branch].child(d.index).key[1:])
            pub = d.pubkeys[d.signers.index(me_pos)]
            if pubkey_of(secret) != pub:  # cannot happen unless the vault record is corrupt
                raise SignerRefusal(f"input {i}: this key does not derive the vault key it should", input_index=i)
            _sign_input(out.inputs[i], d, x.sighash, secret, pub, i, cache, x.spent.amount)
        if out.version == 2:
            S._update_modifiable(out, [x.sighash for x in self.inputs])
        out.canonicalize()
        return out, replace(self.summary, signed_inputs=len(self.inputs))


def _sign_input(m: PsbtMap, d: DerivedScript, sighash: int, secret: bytes, pub: bytes, i: int,
                cache: SighashCache, amount: int) -> None:
    if d.script_type == "tr":
        msg = cache.taproot(i, sighash, leaf_hash=have(d.leaf_hash))
        key = pub[1:] + have(d.leaf_hash)
        existing = m.get(F.PSBT_IN_TAP_SCRIPT_SIG, key)
        if existing is None or not schnorr_verify(pub[1:], existing[:64], msg):
            sig = schnorr_sign(secret, msg)
            m.set(F.PSBT_IN_TAP_SCRIPT_SIG, key, sig if sighash == SIGHASH_DEFAULT else sig + bytes([sighash]))
        return
    if d.script_type == "sh":
        msg = cache.legacy(i, have(d.redeem_script), sighash)
    else:
        msg = cache.segwit_v0(i, have(d.witness_script), amount, sighash)
    existing = m.get(F.PSBT_IN_PARTIAL_SIG, pub)
    if existing is None or not ecdsa_verify(pub, existing[:-1], msg):
        m.set(F.PSBT_IN_PARTIAL_SIG, pub, ecdsa_sign(secret, msg) + bytes([sighash]))


# -- Combiner and Finalizer -------------------------------------------------------------------


@dataclass(frozen=True)
class _Resolved:
    """The vault inputs (1..n) of a proof, resolved, and the sighash cache over all inputs."""

    derived: "list[tuple[DerivedScript, TxOut]]"
    cache: SighashCache


def _resolve(psbt: Psbt, vault: Vault, error: "type[MsigvaultError]") -> _Resolved:
    derived = [resolve_vault_input(psbt, i, vault, error, finalized=False) for i in range(1, psbt.input_count)]
    tr = vault.script == "tr"
    return _Resolved(derived, SighashCache(unsigned_tx(psbt), spent_outputs(s for _, s in derived) if tr else None))


def combine(copies: "Iterable[Psbt]", vault: Vault) -> Psbt:
    """One proof PSBT holding every valid signature of ``copies`` (all of one proof); each
    signature is verified first, as the vault Combiner does. Copies must be unfinalized."""
    from .combiner import merge

    check_no_recovery(vault, CombineError)
    psbts = list(copies)
    if not psbts or any(not isinstance(p, Psbt) for p in psbts):
        raise CombineError("combine takes one or more parsed proof PSBTs")
    messages = set()
    for k, p in enumerate(psbts, 1):
        try:
            messages.add(check_shape(p))
        except ReserveProofRefused as e:
            raise CombineError(f"PSBT {k} is not a proof of reserves: {e}", psbt_index=k) from None
        for i, m in enumerate(p.inputs):
            bad = [t for t in _UNUSABLE if m.has_type(t)]
            if has_final(m) or bad:
                what = "is finalized" if not bad else f"carries {F.INPUT_NAMES.get(bad[0])}, which no vault uses"
                raise CombineError(f"PSBT {k}, input {i} {what}: combine the keyholders' partial copies",
                                   psbt_index=k, input_index=i)
    if len(messages) != 1:
        raise CombineError("the copies are proofs for different messages")
    stripped = []
    for p in psbts:
        q = p.copy()
        for m in q.inputs:
            for t in _SIG_TYPES:
                m.delete_type(t)
        stripped.append(q)
    result = merge(stripped)
    r = _resolve(result, vault, CombineError)
    for k, p in enumerate(psbts, 1):
        for i, (d, spent) in enumerate(r.derived, 1):
            m = p.inputs[i]
            foreign = foreign_signature_keys(m, d)
            if foreign:
                raise CombineError(f"PSBT {k}, input {i}: a signature by key {foreign[0].hex()[:16]}..., which is not "
                                   "a vault key of this input: reject that copy", psbt_index=k, input_index=i)
            for pk in d.pubkeys:
                state = signature_state(m, d, pk, i, r.cache, spent.amount)
                if state in ("sighash", "invalid"):
                    raise CombineError(f"PSBT {k}, input {i}: a signature is {'not SIGHASH_ALL' if state == 'sighash' else 'invalid'}"
                                       ": reject that keyholder's copy", psbt_index=k, input_index=i)
            for t in _SIG_TYPES:
                for keydata, value in m.items_of_type(t):
                    kept = result.inputs[i].get(t, keydata)
                    if kept is None or value < kept:
                        result.inputs[i].set(t, keydata, value)
    result.canonicalize()
    return result


def finalize(psbt: Psbt, vault: Vault) -> Psbt:
    """A copy with every vault input finalized from exactly m verified signatures (as the vault
    Finalizer) and the commitment input's empty scriptSig; NotEnoughSignatures naming who is missing."""
    check_no_recovery(vault, FinalizeError)
    try:
        check_shape(psbt)
    except ReserveProofRefused as e:
        raise FinalizeError(f"not a proof of reserves: {e}") from None
    out = psbt.copy()
    r = _resolve(out, vault, FinalizeError)
    check_total(out, sum(s.amount for _, s in r.derived))
    for i, (d, spent) in enumerate(r.derived, 1):
        m = out.inputs[i]
        chosen = []
        for pos, pk in enumerate(d.pubkeys):
            state = signature_state(m, d, pk, i, r.cache, spent.amount)
            if state == "valid":
                sig = m.get(F.PSBT_IN_TAP_SCRIPT_SIG, pk[1:] + have(d.leaf_hash)) if d.script_type == "tr" \
                    else m.get(F.PSBT_IN_PARTIAL_SIG, pk)
                chosen.append((pos, have(sig)))
            elif state != "absent":
                raise FinalizeError(f"input {i}: a signature is invalid or not SIGHASH_ALL; combine verified copies",
                                    input_index=i)
        if len(chosen) < vault.m:
            have_pos = {pos for pos, _ in chosen}
            absent = [vault.cosigners[ci].fingerprint.hex() for pos, ci in enumerate(d.signers) if pos not in have_pos]
            raise NotEnoughSignatures(f"input {i} needs {vault.m - len(chosen)} more signature(s) of {vault.m}: still "
                                      f"missing from cosigner(s) {', '.join(absent)}", input_index=i, limit=vault.m)
        write_final(m, d, chosen[: vault.m])
    out.inputs[0].set(F.PSBT_IN_FINAL_SCRIPTSIG, b"", b"")
    out.canonicalize()
    return out


def verify_finals(psbt: Psbt, vault: Vault, vault_spent: "list[TxOut]", error: "type[MsigvaultError]") -> None:
    """Every vault input's final scriptSig/witness, verified as the vault's satisfaction against
    ``vault_spent`` (the true outputs, in input order from input 1); the commitment's must be empty."""
    m0 = psbt.inputs[0]
    if m0.get(F.PSBT_IN_FINAL_SCRIPTSIG) not in (None, b"") or \
            m0.get(F.PSBT_IN_FINAL_SCRIPTWITNESS) not in (None, b"", b"\x00"):
        raise error("the commitment input's final scriptSig/witness must be empty", input_index=0)
    tx = unsigned_tx(psbt)
    cache = SighashCache(tx, spent_outputs(vault_spent) if vault.script == "tr" else None)
    for i in range(1, psbt.input_count):
        d, _ = resolve_vault_input(psbt, i, vault, error, finalized=True)
        if d.script_pubkey != vault_spent[i - 1].script_pubkey:
            raise error(f"input {i} spends a coin whose script is not the vault's", input_index=i)
        verify_final(psbt.inputs[i], d, vault, i, cache, vault_spent[i - 1].amount, error, f"input {i}")
