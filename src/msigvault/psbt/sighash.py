"""Signature hashes: legacy (P2SH), BIP143 (segwit v0) and BIP341 (taproot), computed once per tx.

``SighashCache`` holds the per-transaction midstates (hashPrevouts, hashSequence, hashOutputs and
BIP341's sha_* values), so signing or verifying N inputs costs O(N), not O(N^2) as when each
input recomputes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence

from embit.hashes import tagged_hash

from ..script import compact_size

SIGHASH_DEFAULT = 0x00
SIGHASH_ALL = 0x01
SIGHASH_NONE = 0x02
SIGHASH_SINGLE = 0x03
SIGHASH_ANYONECANPAY = 0x80
VALID_ECDSA_SIGHASHES = frozenset({1, 2, 3, 0x81, 0x82, 0x83})
VALID_TAPROOT_SIGHASHES = frozenset({0, 1, 2, 3, 0x81, 0x82, 0x83})
SIGHASH_NAMES = {0: "DEFAULT", 1: "ALL", 2: "NONE", 3: "SINGLE", 0x81: "ALL|ANYONECANPAY",
                 0x82: "NONE|ANYONECANPAY", 0x83: "SINGLE|ANYONECANPAY"}


def _sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def _dsha256(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


class TxIn(NamedTuple):
    """One input of an unsigned transaction (a named tuple: the roles make one per input, often)."""

    txid: bytes  # 32 bytes, internal (little-endian) byte order
    vout: int
    sequence: int

    @property
    def outpoint(self) -> bytes:
        return self.txid + self.vout.to_bytes(4, "little")


class TxOut(NamedTuple):
    """One transaction output: the coin an input spends, or an output of the transaction."""

    amount: int
    script_pubkey: bytes

    def serialize(self) -> bytes:
        return self.amount.to_bytes(8, "little") + compact_size(len(self.script_pubkey)) + self.script_pubkey


@dataclass(frozen=True)
class UnsignedTx:
    version: int
    locktime: int
    inputs: "tuple[TxIn, ...]"
    outputs: "tuple[TxOut, ...]"

    def serialize(self) -> bytes:
        """Serialization without witnesses and with empty scriptSigs (the txid preimage)."""
        from .fields import serialize_tx

        return serialize_tx(self.version, [(i.txid, i.vout, i.sequence) for i in self.inputs],
                            [(o.amount, o.script_pubkey) for o in self.outputs], self.locktime)

    def txid(self) -> bytes:
        """txid in internal byte order (reverse it for display)."""
        return _dsha256(self.serialize())


class SighashCache:
    """Sighashes for every input of one unsigned transaction.

    ``spent_outputs`` (the TxOut each input spends, in input order) is needed for BIP341; for
    BIP143 only the input's own amount is needed.
    """

    def __init__(self, tx: UnsignedTx, spent_outputs: "Optional[Sequence[TxOut]]" = None):
        self.tx = tx
        self.spent = list(spent_outputs) if spent_outputs is not None else None
        self._v = tx.version.to_bytes(4, "little", signed=True)
        self._lt = tx.locktime.to_bytes(4, "little")
        self._outpoints = [txid + vout.to_bytes(4, "little") for txid, vout, _ in tx.inputs]
        self._sequences = [i.sequence.to_bytes(4, "little") for i in tx.inputs]
        prevouts = b"".join(self._outpoints)
        sequences = b"".join(self._sequences)
        self._outputs_ser = [o.serialize() for o in tx.outputs]
        outputs = b"".join(self._outputs_ser)
        # BIP341 single-SHA256 values; BIP143 uses their double-SHA256 counterparts
        self._sha_prevouts = _sha256(prevouts)
        self._sha_sequences = _sha256(sequences)
        self._sha_outputs = _sha256(outputs)
        self._hash_prevouts = _sha256(self._sha_prevouts)
        self._hash_sequence = _sha256(self._sha_sequences)
        self._hash_outputs = _sha256(self._sha_outputs)
        self._sha_amounts = self._sha_scripts = None
        if self.spent is not None:
            if len(self.spent) != len(tx.inputs):
                raise ValueError("spent_outputs must have one entry per input")
            self._sha_amounts = _sha256(b"".join(o.amount.to_bytes(8, "little") for o in self.spent))
            self._sha_scripts = _sha256(b"".join(compact_size(len(o.script_pubkey)) + o.script_pubkey
                                                 for o in self.spent))
        self._all_v0: "Optional[tuple[bytes, bytes]]" = None
        self._legacy_inputs: "Optional[list[bytes]]" = None
        # sighashes already computed: (index, script code, amount (-1: legacy), hashtype) -> digest
        self._memo: "dict[tuple[int, bytes, int, int], bytes]" = {}
        self._legacy_tail = b""

    # -- BIP143 ----------------------------------------------------------------------------------

    def segwit_v0(self, index: int, script_code: bytes, amount: int, hashtype: int = SIGHASH_ALL, *,
                  memo: bool = True) -> bytes:
        """BIP143 sighash of input ``index``; ``script_code`` is the witness script for P2WSH.
        ``memo=False`` for a caller that asks once per input (the signer): not remembered."""
        if not memo:
            return self._segwit_v0(index, script_code, amount, hashtype)
        key = (index, script_code, amount, hashtype)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._segwit_v0(index, script_code, amount, hashtype)
        return hit

    def _segwit_v0(self, index: int, script_code: bytes, amount: int, hashtype: int) -> bytes:
        if hashtype == SIGHASH_ALL:  # the vault's signatures: the parts around the input, built once
            around = self._all_v0
            if around is None:
                around = self._all_v0 = (self._v + self._hash_prevouts + self._hash_sequence,
                                         self._hash_outputs + self._lt + b"\x01\x00\x00\x00")
            return _dsha256(b"".join((around[0], self._outpoints[index], compact_size(len(script_code)), script_code,
                                      amount.to_bytes(8, "little"), self._sequences[index], around[1])))
        tx = self.tx
        base = hashtype & 0x1F
        acp = hashtype & SIGHASH_ANYONECANPAY
        zero = b"\x00" * 32
        hash_prevouts = zero if acp else self._hash_prevouts
        hash_sequence = zero if (acp or base in (SIGHASH_NONE, SIGHASH_SINGLE)) else self._hash_sequence
        if base not in (SIGHASH_NONE, SIGHASH_SINGLE):
            hash_outputs = self._hash_outputs
        elif base == SIGHASH_SINGLE and index < len(tx.outputs):
            hash_outputs = _dsha256(self._outputs_ser[index])
        else:
            hash_outputs = zero
        txin = tx.inputs[index]
        preimage = b"".join((
            self._v, hash_prevouts, hash_sequence, txin.outpoint,
            compact_size(len(script_code)), script_code, amount.to_bytes(8, "little"),
            txin.sequence.to_bytes(4, "little"), hash_outputs, self._lt,
            (hashtype & 0xFFFFFFFF).to_bytes(4, "little"),
        ))
        return _dsha256(preimage)

    # -- legacy (P2SH) ---------------------------------------------------------------------------

    def legacy(self, index: int, script_code: bytes, hashtype: int = SIGHASH_ALL) -> bytes:
        """Pre-segwit sighash (used by ``sh`` vaults); ``script_code`` is the redeem script.

        Inherently O(tx size) per input: that is a property of the legacy algorithm. The script
        code must not contain OP_CODESEPARATOR (multisig redeem scripts do not).
        """
        tx = self.tx
        base = hashtype & 0x1F
        acp = hashtype & SIGHASH_ANYONECANPAY
        if base == SIGHASH_SINGLE and index >= len(tx.outputs):
            return (1).to_bytes(32, "little")  # the historic SIGHASH_SINGLE bug, as consensus has it
        if not acp and base not in (SIGHASH_NONE, SIGHASH_SINGLE):
            key = (index, script_code, -1, hashtype)
            hit = self._memo.get(key)
            if hit is None:
                hit = self._memo[key] = self._legacy_all(index, script_code, hashtype)
            return hit
        parts = [self._v]
        inputs = [(index, tx.inputs[index])] if acp else list(enumerate(tx.inputs))
        parts.append(compact_size(len(inputs)))
        for j, txin in inputs:
            script = script_code if j == index else b""
            seq = txin.sequence
            if j != index and base in (SIGHASH_NONE, SIGHASH_SINGLE):
                seq = 0
            parts.append(txin.outpoint + compact_size(len(script)) + script + seq.to_bytes(4, "little"))
        if base == SIGHASH_NONE:
            parts.append(b"\x00")
        elif base == SIGHASH_SINGLE:
            parts.append(compact_size(index + 1))
            parts.extend(b"\xff" * 8 + b"\x00" for _ in range(index))
            parts.append(self._outputs_ser[index])
        else:
            parts.append(compact_size(len(tx.outputs)))
            parts.extend(self._outputs_ser)
        parts.append(self._lt)
        parts.append((hashtype & 0xFFFFFFFF).to_bytes(4, "little"))
        return _dsha256(b"".join(parts))

    def _legacy_all(self, index: int, script_code: bytes, hashtype: int) -> bytes:
        """:meth:`legacy` for SIGHASH_ALL: every other input's serialization (empty script) is
        built once per transaction, so each input costs one join and one hash of the preimage."""
        if self._legacy_inputs is None:
            tx = self.tx
            self._legacy_inputs = [i.outpoint + b"\x00" + i.sequence.to_bytes(4, "little") for i in tx.inputs]
            self._legacy_tail = b"".join([compact_size(len(tx.outputs))] + self._outputs_ser + [self._lt])
        parts = self._legacy_inputs
        txin = self.tx.inputs[index]
        own = txin.outpoint + compact_size(len(script_code)) + script_code + txin.sequence.to_bytes(4, "little")
        return _dsha256(b"".join((self._v, compact_size(len(parts)), *parts[:index], own, *parts[index + 1:],
                                  self._legacy_tail, (hashtype & 0xFFFFFFFF).to_bytes(4, "little"))))

    # -- BIP341 ----------------------------------------------------------------------------------

    def taproot(self, index: int, hashtype: int = SIGHASH_DEFAULT, *, leaf_hash: Optional[bytes] = None,
                annex: Optional[bytes] = None, codesep_pos: int = 0xFFFFFFFF) -> bytes:
        """BIP341/342 sighash: key path when ``leaf_hash`` is None, else script path for that leaf."""
        if self.spent is None:
            raise ValueError("taproot sighash needs the outputs spent by every input")
        if hashtype not in VALID_TAPROOT_SIGHASHES:
            raise ValueError(f"invalid taproot sighash type {hashtype:#x}")
        tx = self.tx
        base = hashtype & 0x03
        acp = hashtype & SIGHASH_ANYONECANPAY
        parts = [b"\x00", bytes([hashtype]), self._v, self._lt]
        if not acp:
            amounts, scripts = self._sha_amounts, self._sha_scripts
            assert amounts is not None and scripts is not None  # set whenever self.spent is
            parts += [self._sha_prevouts, amounts, scripts, self._sha_sequences]
        if base not in (SIGHASH_NONE, SIGHASH_SINGLE):
            parts.append(self._sha_outputs)
        ext_flag = 0 if leaf_hash is None else 1
        parts.append(bytes([ext_flag * 2 + (1 if annex is not None else 0)]))
        if acp:
            txin, spent = tx.inputs[index], self.spent[index]
            parts += [txin.outpoint, spent.amount.to_bytes(8, "little"),
                      compact_size(len(spent.script_pubkey)), spent.script_pubkey,
                      txin.sequence.to_bytes(4, "little")]
        else:
            parts.append(index.to_bytes(4, "little"))
        if annex is not None:
            parts.append(_sha256(compact_size(len(annex)) + annex))
        if base == SIGHASH_SINGLE:
            if index >= len(tx.outputs):
                raise ValueError("SIGHASH_SINGLE without a matching output")
            parts.append(_sha256(self._outputs_ser[index]))
        if leaf_hash is not None:
            parts += [leaf_hash, b"\x00", codesep_pos.to_bytes(4, "little")]
        return tagged_hash("TapSighash", b"".join(parts))
