"""Combiner (BIP174): merge partial PSBTs of one transaction, verifying every signature first.

Every map entry is merged by key. A partial signature is accepted only if it is a valid, low-S
signature (or a BIP340 signature) by a vault key of that input over the input's sighash with
SIGHASH_ALL (or DEFAULT for taproot). Two different values for one key are an error, except two
valid signatures by the same key (a keyholder who signed twice): the smaller value is kept, so
combining is commutative and associative.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import CombineError
from ..policy.vault import Vault
from . import fields as F
from .common import foreign_signature_keys, resolve_input, signature_state, unsigned_tx
from .psbt import Psbt
from .sighash import SighashCache

_SIG_TYPES = (F.PSBT_IN_PARTIAL_SIG, F.PSBT_IN_TAP_SCRIPT_SIG)


def combine(psbts: "Iterable[Psbt]", vault: Vault) -> Psbt:
    """One PSBT holding every valid signature and field of ``psbts``."""
    psbts = list(psbts)
    if any(not isinstance(p, Psbt) for p in psbts):
        raise CombineError("combine takes parsed PSBTs")
    if psbts:
        version = psbts[0].version
        psbts = [p if p.version == version else (p.to_v2() if version == 2 else p.to_v0()) for p in psbts]
    # 1. everything but signatures, so inputs can be resolved from the union of all copies
    result, tx = _merge_all(psbts, skip_signatures=True)
    # 2. every signature of every copy is verified against the merged input data, then merged
    verifier = _Verifier(result, vault, tx)
    for k, p in enumerate(psbts, 1):
        for i, m in enumerate(p.inputs):
            verifier.check_signatures(m, i, k)
            for t in _SIG_TYPES:
                for keydata, value in m.items_of_type(t):
                    have = result.inputs[i].get(t, keydata)
                    if have is None or value < have:  # two valid signatures by one key: keep the smaller
                        result.inputs[i].set(t, keydata, value)
    result.canonicalize()
    return result


def merge(psbts: "Iterable[Psbt]") -> Psbt:
    """Merge copies of one PSBT without verifying signatures (hazmat: BIP174's plain Combiner).

    Vault ceremonies use :func:`combine`, which verifies every signature first.
    """
    result, _ = _merge_all(list(psbts), skip_signatures=False)
    result.canonicalize()
    return result


def _merge_all(psbts: "list[Psbt]", *, skip_signatures: bool):
    """(merged copy, unsigned tx): every map entry of every copy of one transaction; signatures
    are left out with ``skip_signatures``. Conflicting values are an error."""
    if not psbts:
        raise CombineError("nothing to combine: give at least one PSBT")
    tx = unsigned_tx(psbts[0])
    for k, p in enumerate(psbts[1:], 2):
        other = unsigned_tx(p)
        if other != tx:
            raise CombineError(f"PSBT {k} is for a different transaction: {_difference(tx, other)}")
    result = psbts[0].copy()
    if skip_signatures:
        for m in result.inputs:
            for t in _SIG_TYPES:
                m.delete_type(t)
    for k, p in enumerate(psbts, 1):  # the first copy merges into itself as a no-op
        _merge(result.globals, p.globals, "global map", k, F.GLOBAL_NAMES)
        for i, m in enumerate(p.inputs):
            _merge(result.inputs[i], m, f"input {i}", k, F.INPUT_NAMES, skip_signatures=skip_signatures)
        for o, m in enumerate(p.outputs):
            _merge(result.outputs[o], m, f"output {o}", k, F.OUTPUT_NAMES)
    return result, tx


def _merge(into, other, where: str, k: int, names: dict, skip_signatures: bool = False) -> None:
    for key, value in other.items():
        if skip_signatures and F.keytype_of(key) in _SIG_TYPES:
            continue
        have = into.raw_get(key)
        if have is None:
            into.raw_set(key, value)
        elif have != value:
            t = F.keytype_of(key)
            name = names.get(t, f"unknown type {t:#x}")
            raise CombineError(
                f"PSBT {k} has a different value for {name} in the {where} than the PSBTs before it: "
                "they disagree about the transaction's data; find out which copy was altered"
            )


class _Verifier:
    """Verifies signatures against the merged PSBT's inputs; each distinct set once."""

    def __init__(self, merged: Psbt, vault: Vault, tx):
        self.vault = vault
        self.tx = tx
        self._merged = merged
        self._derived = {}
        self._cache = None
        self._checked = set()

    def _input(self, i: int):
        if i not in self._derived:
            self._derived[i] = resolve_input(self._merged, i, self.vault, CombineError, require_full_tx=False)
        return self._derived[i]

    def _sighashes(self) -> SighashCache:
        if self._cache is None:
            spent = None
            if self.vault.script == "tr":
                spent = [self._input(j)[1] for j in range(len(self._merged.inputs))]
            self._cache = SighashCache(self.tx, spent)
        return self._cache

    def check_signatures(self, m, i: int, k: int) -> None:
        sigs = m.items_of_type(F.PSBT_IN_PARTIAL_SIG) + m.items_of_type(F.PSBT_IN_TAP_SCRIPT_SIG)
        if not sigs:
            return
        token = (i, tuple(sigs))
        if token in self._checked:
            return
        d, spent = self._input(i)
        foreign = foreign_signature_keys(m, d)
        if foreign:
            raise CombineError(
                f"PSBT {k}, input {i}: a signature by key {foreign[0].hex()[:16]}..., which is not a vault "
                "key of this input: reject that copy"
            )
        for pos, pk in enumerate(d.pubkeys):
            state = signature_state(m, d, pk, i, self._sighashes(), spent.amount)
            who = f"cosigner {self.vault.cosigners[d.signers[pos]].fingerprint.hex()}"
            if state == "sighash":
                raise CombineError(f"PSBT {k}, input {i}: the signature by {who} uses a sighash type other than ALL")
            if state == "invalid":
                raise CombineError(
                    f"PSBT {k}, input {i}: the signature by {who} does not verify (wrong key, wrong "
                    "transaction data, or high S): reject that keyholder's copy and ask them to sign again"
                )
        self._checked.add(token)


def _difference(a, b) -> str:
    if len(a.inputs) != len(b.inputs):
        return f"{len(a.inputs)} inputs vs {len(b.inputs)}"
    if len(a.outputs) != len(b.outputs):
        return f"{len(a.outputs)} outputs vs {len(b.outputs)}"
    for i, (x, y) in enumerate(zip(a.inputs, b.inputs)):
        if x != y:
            return f"input {i} differs (coin spent or sequence)"
    for o, (x, y) in enumerate(zip(a.outputs, b.outputs)):
        if x != y:
            return f"output {o} differs (amount or destination)"
    if a.locktime != b.locktime:
        return f"locktime {a.locktime} vs {b.locktime}"
    return f"version {a.version} vs {b.version}"
