"""Extractor (BIP174): the network transaction from a finalized PSBT, sanity-checked.

Checks: every input finalized, fee not negative and within limits, no dust outputs, standard
weight. When libbitcoinkernel is installed (extra ``regtest``), every input's script is verified
by Bitcoin Core's own interpreter before the transaction is returned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

from ..errors import ExtractError
from ..standardness import MAX_STANDARD_TX_WEIGHT, MIN_RELAY_FEE_RATE, is_dust, is_standard_output
from . import fields as F
from .common import spent_output, unsigned_tx
from .psbt import Psbt
from .sighash import TxOut


@dataclass(frozen=True)
class FinalTx:
    """A signed transaction ready to broadcast."""

    raw: bytes
    txid: str  # display hex
    wtxid: str
    weight: int
    fee: int
    verified_by_kernel: bool

    @property
    def vsize(self) -> int:
        return (self.weight + 3) // 4

    def hex(self) -> str:
        return self.raw.hex()


def extract(psbt: Psbt, *, max_fee_sats: Optional[int] = 2_500_000, verify: bool = True,
            max_weight: Optional[int] = MAX_STANDARD_TX_WEIGHT,
            min_fee_rate: Optional[float] = MIN_RELAY_FEE_RATE) -> FinalTx:
    """The final transaction, checked against consensus (when libbitcoinkernel is installed) and
    against the mempool policy a broadcaster needs: minimum relay fee rate, no dust, standard
    output scripts, standard weight. ``max_fee_sats=None``, ``max_weight=None`` and
    ``min_fee_rate=None`` lift those limits (the transaction may then be valid in a block but not
    relayed by nodes)."""
    tx = unsigned_tx(psbt)
    spent = []
    script_sigs, witnesses = [], []
    for i, m in enumerate(psbt.inputs):
        ss = m.get(F.PSBT_IN_FINAL_SCRIPTSIG)
        wit = m.get(F.PSBT_IN_FINAL_SCRIPTWITNESS)
        if ss is None and wit is None:
            raise ExtractError(f"input {i} is not finalized: run the Finalizer first")
        script_sigs.append(bytes(ss) if ss is not None else b"")
        witnesses.append(bytes(wit) if wit is not None else b"\x00")
        spent.append(spent_output(psbt, i, ExtractError, require_full_tx=False))
    fee = sum(s.amount for s in spent) - sum(o.amount for o in tx.outputs)
    if fee < 0:
        raise ExtractError(f"the outputs exceed the inputs by {-fee} sats")
    if max_fee_sats is not None and fee > max_fee_sats:
        raise ExtractError(f"fee {fee} sats is above the extractor's limit of {max_fee_sats} sats")
    for o, out in enumerate(tx.outputs):
        if not is_standard_output(out.script_pubkey):
            raise ExtractError(f"output {o} has a non-standard script: nodes will not relay the transaction")
        if is_dust(out.amount, out.script_pubkey):
            raise ExtractError(f"output {o} ({out.amount} sats) is dust: nodes will not relay the transaction")
    has_witness = any(w != b"\x00" for w in witnesses)
    base = _serialize(tx, script_sigs, None)
    full = _serialize(tx, script_sigs, witnesses) if has_witness else base
    weight = 3 * len(base) + len(full)
    if max_weight is not None and weight > max_weight:
        raise ExtractError(
            f"transaction weight {weight} exceeds the limit {max_weight} (standard: {MAX_STANDARD_TX_WEIGHT}): "
            "nodes will not relay it; spend fewer inputs per transaction"
        )
    if min_fee_rate is not None and fee < min_fee_rate * ((weight + 3) // 4) - 1e-9:
        raise ExtractError(
            f"fee {fee} sats for {(weight + 3) // 4} vB is below the minimum relay fee rate of {min_fee_rate} "
            "sat/vB: nodes will not relay it; create the PSBT again with a higher fee rate"
        )
    verified = False
    if verify:
        verified = verify_scripts(full, spent)
    return FinalTx(full, _dsha(base)[::-1].hex(), _dsha(full)[::-1].hex(), weight, fee, verified)


def _dsha(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def _serialize(tx, script_sigs, witnesses) -> bytes:
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


def verify_scripts(raw_tx: bytes, spent: "list[TxOut]") -> bool:
    """Verify every input with libbitcoinkernel; False if it is not installed, ExtractError if invalid."""
    try:
        import pbk
        from pbk.script import PrecomputedTransactionData
    except ImportError:
        return False
    ktx = pbk.Transaction(raw_tx)
    kspent = [pbk.TransactionOutput(pbk.ScriptPubkey(s.script_pubkey), s.amount) for s in spent]
    pre = PrecomputedTransactionData(ktx, kspent)
    flags = pbk.ScriptVerificationFlags.ALL
    for i, s in enumerate(spent):
        try:
            ok = pbk.ScriptPubkey(s.script_pubkey).verify(s.amount, ktx, pre, i, flags)
        except pbk.ScriptVerifyException as e:
            raise ExtractError(f"input {i}: libbitcoinkernel could not verify the script ({e})") from None
        if not ok:
            raise ExtractError(
                f"input {i}: Bitcoin Core's script interpreter (libbitcoinkernel) rejects its signature "
                "script: the transaction would not be valid"
            )
    return True
