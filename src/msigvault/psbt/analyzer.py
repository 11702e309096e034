"""Analyzer: where a PSBT stands in the ceremony. Never refuses; reports problems instead.

Per input: which cosigners have signed (valid signatures only) and who is missing; fee, fee rate,
estimated final vsize; each output labelled as vault change or external payment; the next role.
The result is JSON-serialisable.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..errors import MsigvaultError
from ..policy.registration import DEFAULT_INDEX_LIMIT
from ..policy.vault import DerivedScript, Vault
from . import fields as F
from .common import (classify_output, has_vault_template, have, resolve_input, signature_state, spent_output,
                     unsigned_tx)
from .psbt import Psbt
from .satisfaction import has_final, resolve_vault_input, verify_final
from .sighash import SighashCache, TxOut
from .weight import tx_weight, vsize


class _Problem(MsigvaultError):
    pass


def analyze(psbt: Psbt, vault: Vault, *, index_limit: int = DEFAULT_INDEX_LIMIT) -> "dict[str, Any]":
    """Where ``psbt`` stands. Vault outputs are recognised by their key origins or, where those
    were cleared (BDK's finalizer does), by their script among the first ``index_limit`` indexes
    of both branches: the same bound the signer applies by default."""
    tx = unsigned_tx(psbt)
    problems: "list[str]" = []
    # per input: (its vault script, or None if it is final but not the vault's, and what it
    # spends), or None if not even the spent output is known
    resolved: "list[tuple[DerivedScript | None, TxOut] | None]" = []
    for i in range(psbt.input_count):
        m = psbt.inputs[i]
        try:
            if has_final(m):
                try:
                    resolved.append(resolve_vault_input(psbt, i, vault, _Problem, finalized=True))
                except _Problem as e:
                    problems.append(str(e))
                    resolved.append((None, spent_output(psbt, i, _Problem, require_full_tx=False)))
            else:
                resolved.append(resolve_input(psbt, i, vault, _Problem, require_full_tx=False))
        except _Problem as e:
            resolved.append(None)
            problems.append(str(e))
    known = [r for r in resolved if r is not None]
    spent_all = [r[1] for r in known] if len(known) == len(resolved) else None
    cache = SighashCache(tx, spent_all if vault.script == "tr" else None)
    inputs: "list[dict[str, Any]]" = []
    signer_sets: "list[set[str]]" = []
    for i, r in enumerate(resolved):
        m = psbt.inputs[i]
        final = m.get(F.PSBT_IN_FINAL_SCRIPTSIG) is not None or m.get(F.PSBT_IN_FINAL_SCRIPTWITNESS) is not None
        entry = {"index": i, "outpoint": f"{tx.inputs[i].txid[::-1].hex()}:{tx.inputs[i].vout}", "finalized": final}
        if r is None or r[0] is None:
            entry.update(amount=r[1].amount if r else None, vault_index=None, signed_by=[], missing=[],
                         signatures_needed=0 if final else None)
            inputs.append(entry)
            continue
        d, spent = r[0], r[1]
        if final:  # what the extractor will put in the transaction: verified, never trusted
            if spent_all is not None or vault.script != "tr":
                try:
                    verify_final(m, d, vault, i, cache, spent.amount, _Problem, f"input {i}")
                except _Problem as e:
                    problems.append(str(e))
            entry.update(amount=spent.amount, vault_index=[d.branch, d.index], signed_by=[], missing=[],
                         signatures_needed=0)
            inputs.append(entry)
            continue
        signed: "list[str]" = []
        invalid: "list[str]" = []
        for pos, pk in enumerate(d.pubkeys):
            fp = vault.cosigners[d.signers[pos]].fingerprint.hex()
            if vault.script == "tr" and spent_all is None:
                state = "absent" if m.get(F.PSBT_IN_TAP_SCRIPT_SIG, pk[1:] + have(d.leaf_hash)) is None else "invalid"
            else:
                state = signature_state(m, d, pk, i, cache, spent.amount)
            if state == "valid":
                signed.append(fp)
            elif state != "absent":
                invalid.append(fp)
        if invalid:
            problems.append(f"input {i}: invalid signature(s) from {', '.join(invalid)}")
        missing = [c.fingerprint.hex() for c in vault.cosigners if c.fingerprint.hex() not in signed]
        needed = 0 if final else max(0, vault.m - len(signed))
        if vault.recovery and (spent_all is not None or vault.script != "tr"):  # per path (docs/recovery.md)
            from .paths import analyze_input

            needed, entry["paths"] = analyze_input(vault, d, m, i, cache, spent.amount, tx)
        signer_sets.append(set(signed))
        entry.update(amount=spent.amount, vault_index=[d.branch, d.index], signed_by=signed,
                     missing=missing, signatures_needed=needed)
        inputs.append(entry)
    outputs = []
    for o in range(psbt.output_count):
        line, problem = classify_output(psbt, o, vault, index_limit=index_limit, match_scripts=True)
        if problem:
            problems.append(problem)
        outputs.append({**asdict(line), "suspicious": bool(problem)})
    from .paths import open_paths, spend_weight

    opened = open_paths(vault, tx) if vault.recovery else ()
    size = vsize(tx_weight([spend_weight(vault, opened)] * psbt.input_count,
                           [len(o.script_pubkey) for o in tx.outputs]))
    fee = None
    if spent_all is not None:
        fee = sum(s.amount for s in spent_all) - sum(o.amount for o in tx.outputs)
    all_final = all(x["finalized"] for x in inputs)
    if problems and not all(resolved):
        next_role = "updater"
    elif all_final:
        next_role = "extractor"
    elif all(x["signatures_needed"] == 0 for x in inputs):
        next_role = "finalizer"
    else:
        next_role = "signer"
    complete_signers: "set[str]" = set.intersection(*signer_sets) if signer_sets else set()
    return {
        "txid": tx.txid()[::-1].hex(),
        "spends_from_vault": any(
            r is not None and (r[0] is not None or (has_vault_template(r[1].script_pubkey, vault)
                                                     and vault.find(r[1].script_pubkey, gap=index_limit) is not None))
            for r in resolved),
        "vault": str(vault),
        "threshold": vault.m,
        "inputs": inputs,
        "outputs": outputs,
        "fee": fee,
        "estimated_vsize": size,
        "fee_rate": round(fee / size, 3) if fee is not None else None,
        "signed_by": sorted(complete_signers),
        "can_still_sign": sorted(c.fingerprint.hex() for c in vault.cosigners
                                 if c.fingerprint.hex() not in complete_signers),
        "next_role": next_role,
        "problems": problems,
        **({"open_paths": [p.to_dict() for p in opened]} if vault.recovery else {}),
    }
