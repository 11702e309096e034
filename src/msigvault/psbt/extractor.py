"""Extractor (BIP174): the network transaction from a finalized PSBT, sanity-checked.

The transaction is the PSBT's unsigned transaction with each input's final scriptSig and
witness; nothing else comes from the PSBT. Checks: every input finalized, fee not negative and
within limits, no dust outputs, standard weight. With ``vault=`` every final scriptSig/witness is
verified as the vault's satisfaction (no libbitcoinkernel needed). When libbitcoinkernel is
installed (extra ``regtest``), every input's script is verified by Bitcoin Core's own
interpreter against the spent outputs, and :class:`FinalTx` says where those came from
(:class:`UtxoEvidence`): the PSBT's previous transactions, its witness_utxo claims, or the
caller's own chain (``spent_outputs=``), which the PSBT's claims must then agree with.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from ..errors import ExtractError
from ..policy.vault import Vault
from ..standardness import MAX_STANDARD_TX_WEIGHT, MIN_RELAY_FEE_RATE, is_dust, is_standard_output
from ..types import Utxo
from . import fields as F
from .common import call_scope, scoped, spent_output, unsigned_tx
from .psbt import Psbt
from .satisfaction import resolve_vault_input, verify_final
from .sighash import SighashCache, TxOut, UnsignedTx

MAX_MONEY = 21_000_000 * 100_000_000


class UtxoEvidence(enum.Enum):
    """Where the spent outputs (amounts and scripts) behind the fee and the script checks came from.

    BIP341 signatures commit to the amounts they are told, so a kernel that verifies against
    amounts the PSBT merely claims says "valid if the claims are true", nothing more.
    """

    PREVIOUS_TRANSACTIONS = "previous_transactions"
    """every spent output read from a non_witness_utxo whose txid is the outpoint's: proven"""
    WITNESS_UTXO_CLAIMS = "witness_utxo_claims"
    """at least one spent output only as the PSBT's witness_utxo claims it: not proven"""
    CALLER = "caller"
    """the caller's ``spent_outputs`` (from a chain it trusts); the PSBT's claims agree with them"""

    def describe(self) -> str:
        return {
            UtxoEvidence.PREVIOUS_TRANSACTIONS: "the previous transactions in the PSBT (txids match)",
            UtxoEvidence.WITNESS_UTXO_CLAIMS: "the PSBT's witness_utxo claims only (amounts not proven)",
            UtxoEvidence.CALLER: "the spent outputs given by the caller's chain",
        }[self]


@dataclass(frozen=True)
class FinalTx:
    """A signed transaction ready to broadcast.

    ``verified_by_kernel``: libbitcoinkernel ran and accepted every input's script;
    ``verified_against``: where the spent outputs it (and the fee) used came from;
    ``vault_verified``: every final scriptSig/witness was checked as the vault's satisfaction.
    """

    raw: bytes
    txid: str  # display hex
    wtxid: str
    weight: int
    fee: int
    verified_by_kernel: bool
    verified_against: UtxoEvidence
    vault_verified: bool

    @property
    def vsize(self) -> int:
        return (self.weight + 3) // 4

    def hex(self) -> str:
        return self.raw.hex()


@scoped
def extract(psbt: Psbt, *, max_fee_sats: Optional[int] = 2_500_000, verify: bool = True,
            max_weight: Optional[int] = MAX_STANDARD_TX_WEIGHT,
            min_fee_rate: Optional[float] = MIN_RELAY_FEE_RATE,
            spent_outputs: "Optional[Sequence[Union[TxOut, Utxo]]]" = None,
            vault: Optional[Vault] = None) -> FinalTx:
    """The final transaction, checked against consensus (when libbitcoinkernel is installed) and
    against the mempool policy a broadcaster needs: minimum relay fee rate, no dust, standard
    output scripts, standard weight. ``max_fee_sats=None``, ``max_weight=None`` and
    ``min_fee_rate=None`` lift those limits (the transaction may then be valid in a block but not
    relayed by nodes).

    ``spent_outputs``: the output each input spends (TxOut, or Utxo records whose outpoints are
    checked), in input order, from a chain the caller trusts; the fee and the kernel use them and
    the PSBT's UTXO fields must agree. ``vault``: verify each final scriptSig/witness as that
    vault's satisfaction first.
    """
    tx = unsigned_tx(psbt)
    script_sigs, witnesses = [], []
    for i, m in enumerate(psbt.inputs):
        ss = m.get(F.PSBT_IN_FINAL_SCRIPTSIG)
        wit = m.get(F.PSBT_IN_FINAL_SCRIPTWITNESS)
        if ss is None and wit is None:
            raise ExtractError(f"input {i} is not finalized: run the Finalizer first", input_index=i)
        script_sigs.append(bytes(ss) if ss is not None else b"")
        witnesses.append(bytes(wit) if wit is not None else b"\x00")
    spent, evidence = _spent_outputs(psbt, tx, spent_outputs)
    if vault is not None:
        _verify_finals(psbt, tx, vault, spent)
    fee = sum(s.amount for s in spent) - sum(o.amount for o in tx.outputs)
    if fee < 0:
        raise ExtractError(f"the outputs exceed the inputs by {-fee} sats")
    if max_fee_sats is not None and fee > max_fee_sats:
        raise ExtractError(f"fee {fee} sats is above the extractor's limit of {max_fee_sats} sats", limit=max_fee_sats)
    for o, out in enumerate(tx.outputs):
        if not is_standard_output(out.script_pubkey):
            raise ExtractError(f"output {o} has a non-standard script: nodes will not relay the transaction",
                               output_index=o)
        if is_dust(out.amount, out.script_pubkey):
            raise ExtractError(f"output {o} ({out.amount} sats) is dust: nodes will not relay the transaction",
                               output_index=o)
    has_witness = any(w != b"\x00" for w in witnesses)
    base = _serialize(tx, script_sigs, None)
    full = _serialize(tx, script_sigs, witnesses) if has_witness else base
    weight = 3 * len(base) + len(full)
    if max_weight is not None and weight > max_weight:
        raise ExtractError(
            f"transaction weight {weight} exceeds the limit {max_weight} (standard: {MAX_STANDARD_TX_WEIGHT}): "
            "nodes will not relay it; spend fewer inputs per transaction",
            limit=max_weight,
        )
    if min_fee_rate is not None and fee < min_fee_rate * ((weight + 3) // 4) - 1e-9:
        raise ExtractError(
            f"fee {fee} sats for {(weight + 3) // 4} vB is below the minimum relay fee rate of {min_fee_rate} "
            "sat/vB: nodes will not relay it; create the PSBT again with a higher fee rate",
            limit=min_fee_rate,
        )
    verified = False
    if verify:
        verified = verify_scripts(full, spent)
    return FinalTx(full, _dsha(base)[::-1].hex(), _dsha(full)[::-1].hex(), weight, fee, verified,
                   evidence, vault is not None)


def _spent_outputs(psbt: Psbt, tx: UnsignedTx, given: "Optional[Sequence[Union[TxOut, Utxo]]]"
                   ) -> "tuple[list[TxOut], UtxoEvidence]":
    """The outputs the inputs spend and where they came from; the caller's, if ``given``, after
    checking that the PSBT's own UTXO fields agree with them."""
    if given is None:
        spent = [spent_output(psbt, i, ExtractError, require_full_tx=False) for i in range(len(tx.inputs))]
        proven = all(m.get(F.PSBT_IN_NON_WITNESS_UTXO) is not None for m in psbt.inputs)
        return spent, UtxoEvidence.PREVIOUS_TRANSACTIONS if proven else UtxoEvidence.WITNESS_UTXO_CLAIMS
    given = list(given)
    if len(given) != len(tx.inputs):
        raise ExtractError(
            f"spent_outputs has {len(given)} entries for {len(tx.inputs)} inputs: give the output each "
            "input spends, in input order"
        )
    spent = [_caller_output(given[i], tx, i) for i in range(len(tx.inputs))]
    for i, true in enumerate(spent):
        m = psbt.inputs[i]
        if m.get(F.PSBT_IN_NON_WITNESS_UTXO) is None and m.get(F.PSBT_IN_WITNESS_UTXO) is None:
            continue
        claimed = spent_output(psbt, i, ExtractError, require_full_tx=False)
        if claimed != true:
            what = (f"{claimed.amount} sats" if claimed.amount != true.amount else "a different script")
            raise ExtractError(
                f"input {i}: the PSBT claims the coin it spends holds {what}, but your chain says "
                f"{true.amount} sats to script {true.script_pubkey.hex()[:16]}...: the signatures commit to "
                "the false claim, so the network would reject the transaction (or the fee is not what was "
                "shown); do not broadcast, and rebuild the PSBT from the chain's UTXOs",
                input_index=i,
            )
    return spent, UtxoEvidence.CALLER


def _caller_output(item: object, tx: UnsignedTx, i: int) -> TxOut:
    if isinstance(item, Utxo):
        txin = tx.inputs[i]
        if (item.txid.lower(), item.vout) != (txin.txid[::-1].hex(), txin.vout):
            raise ExtractError(
                f"spent_outputs[{i}] is the coin {item.outpoint}, but input {i} spends "
                f"{txin.txid[::-1].hex()}:{txin.vout}: give the outputs in input order",
                input_index=i,
            )
        item = TxOut(item.amount, bytes(item.script_pubkey))
    if not isinstance(item, TxOut):
        raise ExtractError(f"spent_outputs[{i}] is a {type(item).__name__}, not a TxOut or Utxo", input_index=i)
    if isinstance(item.amount, bool) or not isinstance(item.amount, int) or not 0 <= item.amount <= MAX_MONEY:
        raise ExtractError(f"spent_outputs[{i}] has amount {item.amount!r}, not 0 to 21,000,000 BTC in sats",
                           input_index=i)
    return item


def _verify_finals(psbt: Psbt, tx: UnsignedTx, vault: Vault, spent: "list[TxOut]") -> None:
    """Every input's final fields, verified as ``vault``'s satisfaction (ExtractError otherwise)."""
    resolved = [resolve_vault_input(psbt, i, vault, ExtractError, finalized=True) for i in range(len(tx.inputs))]
    cache = SighashCache(tx, spent if vault.script == "tr" else None)
    for i, (d, _) in enumerate(resolved):
        verify_final(psbt.inputs[i], d, vault, i, cache, spent[i].amount, ExtractError, f"input {i}")


def _dsha(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def _serialize(tx: UnsignedTx, script_sigs: "Sequence[bytes]", witnesses: "Optional[Sequence[bytes]]") -> bytes:
    parts = [tx.version.to_bytes(4, "little", signed=True)]
    if witnesses is not None:
        parts.append(b"\x00\x01")
    parts.append(F.compact_size(len(tx.inputs)))
    for txin, ss in zip(tx.inputs, script_sigs):
        parts += [txin.outpoint, F.compact_size(len(ss)), ss, txin.sequence.to_bytes(4, "little")]
    parts.append(F.compact_size(len(tx.outputs)))
    parts.extend(o.serialize() for o in tx.outputs)
    if witnesses is not None:
        parts.extend(witnesses)
    parts.append(tx.locktime.to_bytes(4, "little"))
    return b"".join(parts)


def _kernel_tx(pbk: Any, raw_tx: bytes) -> Any:
    """``pbk.Transaction(raw_tx)``, with the bytes handed over in one copy: pbk's constructor
    builds its ctypes array byte by byte (about 30 ms for a 1,000-input transaction)."""
    return _kernel_object(pbk.Transaction, raw_tx)


def _kernel_object(cls: Any, data: bytes) -> Any:
    """``cls(data)`` for a pbk class built from bytes (Transaction, ScriptPubkey), the bytes
    handed over in one copy instead of pbk's byte-by-byte ctypes array."""
    import ctypes

    from pbk.capi.base import KernelOpaquePtr

    try:
        obj = cls.__new__(cls)
        KernelOpaquePtr.__init__(obj, (ctypes.c_ubyte * len(data)).from_buffer_copy(data), len(data))
        return obj
    except (AttributeError, TypeError):  # pragma: no cover - another pbk layout: its own constructor
        return cls(data)


def verify_scripts(raw_tx: bytes, spent: "list[TxOut]") -> bool:
    """Verify every input with libbitcoinkernel; False if it is not installed, ExtractError if invalid."""
    try:
        import pbk
        from pbk.script import PrecomputedTransactionData
    except ImportError:
        return False
    ktx = _kernel_tx(pbk, raw_tx)
    scripts: "dict[bytes, Any]" = {}  # one kernel object per distinct script
    for s in spent:
        if s.script_pubkey not in scripts:
            scripts[s.script_pubkey] = _kernel_object(pbk.ScriptPubkey, s.script_pubkey)
    kscripts = [scripts[s.script_pubkey] for s in spent]
    kspent = [pbk.TransactionOutput(k, s.amount) for k, s in zip(kscripts, spent)]
    pre = PrecomputedTransactionData(ktx, kspent)
    flags = pbk.ScriptVerificationFlags.ALL
    for i, s in enumerate(spent):
        try:
            ok = kscripts[i].verify(s.amount, ktx, pre, i, flags)
        except pbk.ScriptVerifyException as e:
            raise ExtractError(f"input {i}: libbitcoinkernel could not verify the script ({e})",
                               input_index=i) from None
        if not ok:
            raise ExtractError(
                f"input {i}: Bitcoin Core's script interpreter (libbitcoinkernel) rejects its signature "
                "script: the transaction would not be valid",
                input_index=i,
            )
    return True


def combine_finalize_extract(psbts: "Sequence[Psbt]", vault: Vault, **kwargs: Any) -> "tuple[Psbt, FinalTx]":
    """Combiner, Finalizer and Extractor in one call: (finalized PSBT, FinalTx).

    The same checks as calling :func:`.combiner.combine`, :func:`.finalizer.finalize` and
    :func:`extract` one after the other; they share one call scope, so a previous transaction
    is parsed once and a signature the Combiner verified is not verified again by libsecp256k1
    when the Finalizer (or the Extractor, given ``vault=``) checks the same (key, signature,
    sighash): each role computes its own sighashes and asks for every signature it uses (see
    :class:`.common.CallScope`). libbitcoinkernel still verifies every input. ``kwargs`` are
    :func:`extract`'s.
    """
    from .combiner import combine
    from .finalizer import finalize

    with call_scope(pipeline=True):
        final = finalize(combine(psbts, vault), vault)
        return final, extract(final, **kwargs)
