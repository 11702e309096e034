"""Finalizer (BIP174): build each input's final scriptSig / witness from exactly m signatures.

Descriptor-driven: the script comes from the registered vault (rebuilt at the input's
derivation), never from the PSBT, and every signature is verified again before it is used.
With fewer than m valid signatures it refuses and names the cosigners still missing. An input
that arrives already finalized is kept only if its final scriptSig/witness verifies as the
vault's satisfaction (see :mod:`.satisfaction`); then the fields BIP174 clears are cleared.
"""

from __future__ import annotations

from ..errors import FinalizeError, NotEnoughSignatures
from ..policy.vault import DerivedScript, Vault
from ..script import push_data
from . import fields as F
from .common import have, scoped, signature_state, unsigned_tx
from .psbt import Psbt, PsbtMap
from .satisfaction import expected_final, has_final, resolve_vault_input, verify_final, witness_bytes
from .sighash import SighashCache

__all__ = ["finalize", "set_final_multisig", "witness_bytes", "write_final"]

# BIP174 / BIP370: what a finalized input keeps (UTXOs, finals, the v2 transaction fields);
# unknown and proprietary keys are kept as well.
_KEEP = {
    F.PSBT_IN_NON_WITNESS_UTXO, F.PSBT_IN_WITNESS_UTXO, F.PSBT_IN_FINAL_SCRIPTSIG,
    F.PSBT_IN_FINAL_SCRIPTWITNESS, F.PSBT_IN_PREVIOUS_TXID, F.PSBT_IN_OUTPUT_INDEX,
    F.PSBT_IN_SEQUENCE, F.PSBT_IN_REQUIRED_TIME_LOCKTIME, F.PSBT_IN_REQUIRED_HEIGHT_LOCKTIME,
    F.PSBT_IN_PROPRIETARY,
}


@scoped
def finalize(psbt: Psbt, vault: Vault) -> Psbt:
    """A copy of ``psbt`` with every input finalized; FinalizeError if any lacks signatures."""
    if vault.recovery:  # miniscript satisfaction of the vault's paths (docs/recovery.md)
        from .paths import finalize as finalize_paths

        return finalize_paths(psbt, vault)
    out = psbt.copy()
    tx = unsigned_tx(out)
    resolved = [resolve_vault_input(out, i, vault, FinalizeError) for i in range(out.input_count)]
    cache = SighashCache(tx, [s for _, s in resolved] if vault.script == "tr" else None)
    missing = []
    for i, (d, spent) in enumerate(resolved):
        m = out.inputs[i]
        if has_final(m):  # finalized elsewhere: kept only once verified
            final = verify_final(m, d, vault, i, cache, spent.amount, FinalizeError, f"input {i}")
            _clear_for_final(m)
            final.write(m)
            continue
        chosen = []  # (script position, signature) for valid signatures, in script order
        for pos, pk in enumerate(d.pubkeys):
            state = signature_state(m, d, pk, i, cache, spent.amount)
            if state == "valid":
                chosen.append((pos, _signature(m, d, pk)))
            elif state != "absent":
                raise FinalizeError(
                    f"input {i}: the signature of cosigner {vault.cosigners[d.signers[pos]].fingerprint.hex()} "
                    f"is {'of a sighash type other than ALL' if state == 'sighash' else 'invalid'}; "
                    "combine only verified copies",
                    input_index=i, fingerprint=vault.cosigners[d.signers[pos]].fingerprint,
                )
        if len(chosen) < vault.m:
            have = {pos for pos, _ in chosen}
            absent = [vault.cosigners[ci].fingerprint.hex() for pos, ci in enumerate(d.signers) if pos not in have]
            missing.append((i, vault.m - len(chosen), absent))
            continue
        write_final(m, d, chosen[: vault.m])
    if missing:
        i, need, absent = missing[0]
        more = f" (and {len(missing) - 1} more input(s))" if len(missing) > 1 else ""
        raise NotEnoughSignatures(
            f"input {i} needs {need} more signature(s) of {vault.m}: still missing from cosigner(s) "
            f"{', '.join(absent)}{more}; send the PSBT to one of them",
            input_index=i, limit=vault.m,
        )
    out.canonicalize()
    return out


def write_final(m: PsbtMap, d: DerivedScript, chosen: "list[tuple[int, bytes]]") -> None:
    """Finalize input map ``m`` of the vault script ``d`` with ``chosen`` (script position,
    signature) in script order, exactly m of them, and clear what BIP174 says a finalized input drops."""
    if d.script_type == "tr":
        by_pos = dict(chosen)
        # multi_a checks key 1 first, which consumes the top of the stack: reverse script order
        items = [by_pos.get(pos, b"") for pos in reversed(range(len(d.pubkeys)))]
    else:
        items = [sig for _, sig in chosen]
    _clear_for_final(m)
    expected_final(d, items).write(m)


def _signature(m: PsbtMap, d: DerivedScript, pk: bytes) -> bytes:
    """The signature by ``pk`` (signature_state found it valid, so it is there)."""
    if d.script_type == "tr":
        return have(m.get(F.PSBT_IN_TAP_SCRIPT_SIG, pk[1:] + have(d.leaf_hash)))
    return have(m.get(F.PSBT_IN_PARTIAL_SIG, pk))


def _clear_for_final(m: PsbtMap) -> None:
    for key in list(m.keys()):
        t = F.keytype_of(key)
        if t not in _KEEP and t in F.INPUT_NAMES:
            m.raw_delete(key)


def set_final_multisig(m: PsbtMap, script_type: str, sigs: "list[bytes]", *, redeem_script: "bytes | None" = None,
                       witness_script: "bytes | None" = None) -> None:
    """Write the final scriptSig/witness of an ``OP_CHECKMULTISIG`` input (sh, sh-wsh, wsh) from
    signatures in script key order, and clear what BIP174 says a finalized input drops."""
    _clear_for_final(m)
    if script_type == "sh":
        m.set(F.PSBT_IN_FINAL_SCRIPTSIG, b"", b"\x00" + b"".join(push_data(s) for s in sigs) + push_data(have(redeem_script)))
        return
    m.set(F.PSBT_IN_FINAL_SCRIPTWITNESS, b"", witness_bytes([b""] + list(sigs) + [have(witness_script)]))
    if script_type == "sh-wsh":
        m.set(F.PSBT_IN_FINAL_SCRIPTSIG, b"", push_data(have(redeem_script)))
