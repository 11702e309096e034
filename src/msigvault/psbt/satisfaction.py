"""The vault's satisfaction: verify a final scriptSig / witness without libbitcoinkernel.

A finalized input carries ``PSBT_IN_FINAL_SCRIPTSIG`` / ``PSBT_IN_FINAL_SCRIPTWITNESS``, which
the Extractor copies into the transaction as they are. :func:`verify_final` checks them
descriptor-driven: the input resolves to a vault (branch, index), so the only acceptable final
fields are the ones the vault's Finalizer builds from exactly m valid signatures:

- ``sh``: scriptSig ``OP_0 <sig>*m <redeem script>``, no witness;
- ``sh-wsh``: scriptSig ``<redeem script>``, witness ``[b"", sig*m, witness script]``;
- ``wsh``: no scriptSig, witness ``[b"", sig*m, witness script]``;
- ``tr``: no scriptSig, witness of the ``multi_a`` leaf (one item per key in reverse key order,
  empty or a 64/65-byte BIP340 signature), the leaf script and the control block.

Each ECDSA signature must be strict DER, low S, SIGHASH_ALL, by the right key in script order;
each BIP340 signature DEFAULT or ALL. Scripts and control block must be the vault's byte for
byte, with minimal pushes. An absent field and an empty one are the same (the Extractor writes
an empty scriptSig or witness for both). Cost: one parse of each field and at most n signature
checks per input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ForeignInput, InvalidPSBT, MsigvaultError, narrow
from ..policy.vault import DerivedScript, Vault
from ..script import compact_size, push_data
from . import fields as F
from .common import (ecdsa_verify, have, metadata_problem, resolve_input, schnorr_verify,
                     spent_output)
from .psbt import Psbt, PsbtMap
from .sighash import SIGHASH_ALL, SIGHASH_DEFAULT, SighashCache, TxOut

FINAL_TYPES = (F.PSBT_IN_FINAL_SCRIPTSIG, F.PSBT_IN_FINAL_SCRIPTWITNESS)
_DERIVATION_TYPES = frozenset((F.PSBT_IN_BIP32_DERIVATION, F.PSBT_IN_TAP_BIP32_DERIVATION))
# how far Vault.find looks for the script of a finalized input that no longer lists derivations
FINAL_INPUT_GAP = 1_000
_EMPTY_WITNESS = b"\x00"


@dataclass(frozen=True)
class Final:
    """Canonical final fields of one input (None: the field is absent)."""

    script_sig: Optional[bytes]
    witness: Optional[bytes]

    def order_key(self) -> "tuple[bytes, bytes]":
        """Total order used to pick one of two valid finals (keeps combining commutative)."""
        return (self.script_sig or b"", self.witness or b"")

    def write(self, m: PsbtMap) -> None:
        """Set these final fields in input map ``m`` (and drop an absent one)."""
        for t, value in zip(FINAL_TYPES, (self.script_sig, self.witness)):
            m.delete_type(t)
            if value is not None:
                m.set(t, b"", value)


_FINAL_KEYS = (F.make_key(F.PSBT_IN_FINAL_SCRIPTSIG), F.make_key(F.PSBT_IN_FINAL_SCRIPTWITNESS))


def has_final(m: PsbtMap) -> bool:
    """True if input map ``m`` carries a final scriptSig or witness."""
    return m.raw_get(_FINAL_KEYS[0]) is not None or m.raw_get(_FINAL_KEYS[1]) is not None


def witness_bytes(items: "list[bytes]") -> bytes:
    """Serialized witness stack (item count, then each item with its length)."""
    return compact_size(len(items)) + b"".join(compact_size(len(x)) + x for x in items)


def expected_final(d: DerivedScript, sig_items: "list[bytes]") -> Final:
    """The final fields the vault's Finalizer writes for ``d`` from ``sig_items``: the
    signatures in script key order (sh, sh-wsh, wsh) or, for tr, the multi_a witness items."""
    if d.script_type == "tr":
        return Final(None, witness_bytes(list(sig_items) + [have(d.leaf_script), have(d.control_block)]))
    if d.script_type == "sh":
        return Final(b"\x00" + b"".join(push_data(s) for s in sig_items) + push_data(have(d.redeem_script)), None)
    witness = witness_bytes([b""] + list(sig_items) + [have(d.witness_script)])
    return Final(push_data(have(d.redeem_script)) if d.script_type == "sh-wsh" else None, witness)


def resolve_vault_input(psbt: Psbt, i: int, vault: Vault, error: "type[MsigvaultError]", *,
                        finalized: Optional[bool] = None) -> "tuple[DerivedScript, TxOut]":
    """(DerivedScript, spent TxOut) of input ``i``, proven to be a vault coin.

    Like :func:`common.resolve_input`; a finalized input that no longer lists its derivations
    (BIP174 Finalizers clear them) is found by its scriptPubKey among the vault's first
    ``FINAL_INPUT_GAP`` indexes of both branches. ``finalized`` says whether the input is
    finalized (default: whether ``psbt``'s input map has a final field).
    """
    m = psbt.inputs[i]
    # any derivation record (well-formed or not: resolve_input parses them and names a problem)
    listed = any(key[0] in _DERIVATION_TYPES for key in m.keys())
    if finalized is None:
        finalized = has_final(m)
    if listed or not finalized:
        return resolve_input(psbt, i, vault, error, require_full_tx=False)
    spent = spent_output(psbt, i, error, require_full_tx=False)
    position = vault.find(spent.script_pubkey, gap=FINAL_INPUT_GAP)
    if position is None:
        raise narrow(error, ForeignInput)(
            f"input {i} is finalized but lists no key derivations, and the coin it spends is not among "
            f"the vault's first {FINAL_INPUT_GAP} receive or change scripts: it is not a vault coin "
            "this coordinator can verify; finalize it from the keyholders' partial copies instead",
            input_index=i, limit=FINAL_INPUT_GAP,
        )
    d = vault.derive_branch(*position)
    problem = metadata_problem(m, d, is_input=True)  # the same script-field check as resolve_input's
    if problem:
        raise narrow(error, ForeignInput)(f"input {i}: {problem}", input_index=i)
    return d, spent


def verify_final(m: PsbtMap, d: DerivedScript, vault: Vault, i: int, cache: SighashCache, amount: int,
                 error: "type[MsigvaultError]", where: str) -> Final:
    """The canonical final fields of input map ``m``, verified as exactly ``vault.m`` valid
    signatures of the vault script ``d``; else ``error`` with a message starting ``where``."""
    if vault.recovery:  # exactly one of the vault's paths, as its Finalizer builds it (docs/recovery.md)
        from .paths import verify_final as verify_paths_final

        return verify_paths_final(m, d, vault, i, cache, amount, error, where)
    script_sig = _field(m, F.PSBT_IN_FINAL_SCRIPTSIG)
    witness = _field(m, F.PSBT_IN_FINAL_SCRIPTWITNESS)
    try:
        if d.script_type == "tr":
            final = _verify_tapscript(script_sig, witness, d, vault, i, cache)
        else:
            final = _verify_multisig(script_sig, witness, d, vault, i, cache, amount)
    except _Refused as e:
        raise error(
            f"{where}: its final scriptSig/witness is not a valid satisfaction of the vault's "
            f"{d.script_type} script ({e}); nobody verified it: reject that copy and finalize from "
            "the keyholders' partial copies",
            input_index=i, field=_final_field(witness),
        ) from None
    given = Final(script_sig or None, witness if witness not in (None, _EMPTY_WITNESS) else None)
    if given != final:
        raise error(
            f"{where}: its final scriptSig/witness is not byte for byte what the vault's Finalizer "
            "builds from its signatures (extra data, non-minimal pushes or a misplaced field): "
            "reject that copy and finalize from the keyholders' partial copies",
            input_index=i, field=_final_field(witness),
        )
    return final


def _final_field(witness: Optional[bytes]) -> str:
    return "PSBT_IN_FINAL_SCRIPTSIG" if witness in (None, _EMPTY_WITNESS) else "PSBT_IN_FINAL_SCRIPTWITNESS"


class _Refused(Exception):
    """Why a final field is not the vault's satisfaction (internal; turned into ``error``)."""


def _field(m: PsbtMap, t: int) -> Optional[bytes]:
    value = m.get(t)
    return bytes(value) if value is not None else None


def _stack(witness: Optional[bytes]) -> "list[bytes]":
    if witness is None:
        return []
    try:
        items, pos = F.read_witness_stack(witness, 0, len(witness), "final witness")
    except InvalidPSBT as e:
        raise _Refused(str(e)) from None
    if pos != len(witness):
        raise _Refused(f"the witness has {len(witness) - pos} bytes after its last item")
    return [bytes(x) for x in items]


def _pushes(script: bytes) -> "list[bytes]":
    """The items a push-only scriptSig puts on the stack; _Refused for any other opcode."""
    items, pos, end = [], 0, len(script)
    while pos < end:
        op = script[pos]
        pos += 1
        if op == 0x00:
            items.append(b"")
            continue
        if op == 0x4F:
            items.append(b"\x81")
            continue
        if 0x51 <= op <= 0x60:
            items.append(bytes([op - 0x50]))
            continue
        if op <= 0x4B:
            n = op
        elif op in (0x4C, 0x4D, 0x4E):
            width = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
            if pos + width > end:
                raise _Refused("the scriptSig is truncated")
            n = int.from_bytes(script[pos:pos + width], "little")
            pos += width
        else:
            raise _Refused(f"the scriptSig has opcode {op:#04x}; only pushes are allowed")
        if pos + n > end:
            raise _Refused("the scriptSig is truncated")
        items.append(script[pos:pos + n])
        pos += n
    return items


def _who(vault: Vault, d: DerivedScript, pos: int) -> str:
    return f"cosigner {vault.cosigners[d.signers[pos]].fingerprint.hex()}"


def _verify_multisig(script_sig: Optional[bytes], witness: Optional[bytes], d: DerivedScript, vault: Vault, i: int,
                     cache: SighashCache, amount: int) -> Final:
    if d.script_type == "sh":
        if witness not in (None, _EMPTY_WITNESS):
            raise _Refused("a legacy P2SH input has no witness")
        stack, script = _pushes(script_sig or b""), have(d.redeem_script)
    else:
        stack, script = _stack(witness), have(d.witness_script)
    if len(stack) < 2 or stack[0] != b"" or stack[-1] != script:
        raise _Refused(f"expected [OP_0 dummy, {vault.m} signatures, the vault's script]")
    sigs = stack[1:-1]
    if len(sigs) != vault.m:
        raise _Refused(f"it has {len(sigs)} signature(s), the vault needs exactly {vault.m}")
    for s in sigs:
        if len(s) < 9 or s[-1] != SIGHASH_ALL:
            raise _Refused("a signature is not DER with SIGHASH_ALL")
    if d.script_type == "sh":
        msg = cache.legacy(i, script, SIGHASH_ALL)
    else:
        msg = cache.segwit_v0(i, script, amount, SIGHASH_ALL)
    k = 0  # as OP_CHECKMULTISIG: signatures in key order, each key tried once
    for pk in d.pubkeys:
        if k < len(sigs) and ecdsa_verify(pk, sigs[k][:-1], msg):
            k += 1
    if k != len(sigs):
        raise _Refused(f"signature {k + 1} of {len(sigs)} does not verify for a vault key after the "
                       "previous one (wrong key, wrong order, wrong transaction data or high S)")
    return expected_final(d, sigs)


def _verify_tapscript(script_sig: Optional[bytes], witness: Optional[bytes], d: DerivedScript, vault: Vault, i: int,
                      cache: SighashCache) -> Final:
    if script_sig:
        raise _Refused("a taproot input has an empty scriptSig")
    stack = _stack(witness)
    n = len(d.pubkeys)
    if len(stack) != n + 2 or stack[-2] != d.leaf_script or stack[-1] != d.control_block:
        raise _Refused(f"expected {n} signature slots, the vault's multi_a leaf script and its control block")
    items = stack[:n]
    count = 0
    for slot, item in enumerate(items):
        if not item:
            continue
        pos = n - 1 - slot  # multi_a checks key 1 first, against the top of the stack
        if len(item) == 64:
            hashtype = SIGHASH_DEFAULT
        elif len(item) == 65 and item[64] == SIGHASH_ALL:
            hashtype = SIGHASH_ALL
        else:
            raise _Refused(f"the signature of {_who(vault, d, pos)} is not a BIP340 signature with "
                           "sighash DEFAULT or ALL")
        msg = cache.taproot(i, hashtype, leaf_hash=d.leaf_hash)
        if not schnorr_verify(d.pubkeys[pos][1:], item[:64], msg):
            raise _Refused(f"the signature of {_who(vault, d, pos)} does not verify")
        count += 1
    if count != vault.m:
        raise _Refused(f"it has {count} signature(s), the vault needs exactly {vault.m}")
    return expected_final(d, items)
