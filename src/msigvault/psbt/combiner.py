"""Combiner (BIP174): merge partial PSBTs of one transaction, verifying every signature first.

Every map entry is merged by key. A partial signature is accepted only if it is a valid, low-S
signature (or a BIP340 signature) by a vault key of that input over the input's sighash with
SIGHASH_ALL (or DEFAULT for taproot). Two different values for one key are an error, except two
valid signatures by the same key (a keyholder who signed twice): the smaller value is kept, so
combining is commutative and associative.

Everything else that can end up in the transaction is verified or refused too: a final
scriptSig/witness is accepted only as the vault's satisfaction (exactly m valid signatures, the
vault's script byte for byte, see :mod:`.satisfaction`; of two valid finals of one input the
smaller is kept); taproot key-path signatures (the vault's internal key is the unspendable NUMS
point) and MuSig2 fields (vaults have no MuSig2 keys) are refused.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import CombineError
from ..policy.vault import DerivedScript, Vault
from . import fields as F
from .common import foreign_signature_keys, scoped, signature_state, unsigned_tx
from .psbt import Psbt, PsbtMap
from .satisfaction import FINAL_TYPES, Final, has_final, resolve_vault_input, verify_final
from .sighash import SighashCache, TxOut, UnsignedTx

_SIG_TYPES = (F.PSBT_IN_PARTIAL_SIG, F.PSBT_IN_TAP_SCRIPT_SIG)
# merged only after each copy's value is verified
_VERIFIED_TYPES = _SIG_TYPES + FINAL_TYPES
# input fields no vault can use: refused in any copy
_REFUSED = {
    F.PSBT_IN_TAP_KEY_SIG: (
        "a taproot key-path signature (PSBT_IN_TAP_KEY_SIG), but the vault's internal key is the "
        "unspendable NUMS point, so no key-path signature can be valid"
    ),
    F.PSBT_IN_MUSIG2_PARTICIPANT_PUBKEYS: "MuSig2 participant keys (BIP373), but vaults have no MuSig2 keys",
    F.PSBT_IN_MUSIG2_PUB_NONCE: "a MuSig2 nonce (BIP373), but vaults have no MuSig2 keys",
    F.PSBT_IN_MUSIG2_PARTIAL_SIG: "a MuSig2 partial signature (BIP373), but vaults have no MuSig2 keys",
}


@scoped
def combine(psbts: "Iterable[Psbt]", vault: Vault) -> Psbt:
    """One PSBT holding every valid signature and field of ``psbts``."""
    psbts = list(psbts)
    if any(not isinstance(p, Psbt) for p in psbts):
        raise CombineError("combine takes parsed PSBTs")
    if psbts:
        version = psbts[0].version
        psbts = [p if p.version == version else (p.to_v2() if version == 2 else p.to_v0()) for p in psbts]
    _refuse_unusable(psbts)
    # 1. everything but signatures and finals, so inputs can be resolved from the union of all copies
    result, tx = _merge_all(psbts, skip=_VERIFIED_TYPES)
    # 2. every signature and final of every copy is verified against the merged input data, then merged
    finalized = {i for p in psbts for i, m in enumerate(p.inputs) if has_final(m)}
    verifier = _Verifier(result, vault, tx, finalized)
    finals: "dict[int, Final]" = {}
    for k, p in enumerate(psbts, 1):
        for i, m in enumerate(p.inputs):
            sigs = [(key, value) for key, value in m.items() if key[0] in _SIG_TYPES]  # one-byte types
            if sigs:
                verifier.check_signatures(m, i, k, sigs)
                into = result.inputs[i]
                for key, value in sigs:
                    have = into.raw_get(key)
                    if have is None or value < have:  # two valid signatures by one key: keep the smaller
                        into.raw_set(key, value)
            if has_final(m):
                final = verifier.check_final(m, i, k)
                kept = finals.get(i)
                if kept is None or final.order_key() < kept.order_key():  # two valid finals: the smaller
                    finals[i] = final
    for i, final in finals.items():
        final.write(result.inputs[i])
    result.canonicalize()
    return result


def _refuse_unusable(psbts: "list[Psbt]") -> None:
    for k, p in enumerate(psbts, 1):
        for i, m in enumerate(p.inputs):
            present = {key[0] for key in m.keys()}  # the refused types are single-byte key types
            if present.isdisjoint(_REFUSED):
                continue
            for t, what in _REFUSED.items():
                if t in present:
                    raise CombineError(f"PSBT {k}, input {i}: carries {what}: reject that copy",
                                       psbt_index=k, input_index=i, field=F.INPUT_NAMES.get(t))


def merge(psbts: "Iterable[Psbt]") -> Psbt:
    """Merge copies of one PSBT without verifying signatures (hazmat: BIP174's plain Combiner).

    Vault ceremonies use :func:`combine`, which verifies every signature first.
    """
    result, _ = _merge_all(list(psbts), skip=())
    result.canonicalize()
    return result


def _merge_all(psbts: "list[Psbt]", *, skip: "tuple[int, ...]") -> "tuple[Psbt, UnsignedTx]":
    """(merged copy, unsigned tx): every map entry of every copy of one transaction except the
    input key types in ``skip``. Conflicting values are an error."""
    if not psbts:
        raise CombineError("nothing to combine: give at least one PSBT")
    tx = unsigned_tx(psbts[0])
    for k, p in enumerate(psbts[1:], 2):
        other = unsigned_tx(p)
        if other != tx:
            raise CombineError(f"PSBT {k} is for a different transaction: {_difference(tx, other)}", psbt_index=k)
    result = psbts[0].copy()
    for m in result.inputs:
        for t in skip:
            m.delete_type(t)
    for k, p in enumerate(psbts[1:], 2):  # result is the first copy (less the skipped types)
        _merge(result.globals, p.globals, "global map", k, F.GLOBAL_NAMES)
        for i, m in enumerate(p.inputs):
            try:
                _merge(result.inputs[i], m, f"input {i}", k, F.INPUT_NAMES, skip=skip)
            except CombineError as e:
                raise e.locate(input_index=i)
        for o, m in enumerate(p.outputs):
            try:
                _merge(result.outputs[o], m, f"output {o}", k, F.OUTPUT_NAMES)
            except CombineError as e:
                raise e.locate(output_index=o)
    merged = unsigned_tx(result)
    if merged != tx:  # e.g. BIP370 lock times spread over copies that each agree alone
        raise CombineError(
            f"the merged PSBT is for a different transaction than its copies: {_difference(tx, merged)}"
        )
    return result, tx


def _merge(into: PsbtMap, other: PsbtMap, where: str, k: int, names: "dict[int, str]",
           skip: "tuple[int, ...]" = ()) -> None:
    for key, value in other.items():
        if skip and F.keytype_of(key) in skip:
            continue
        have = into.raw_get(key)
        if have is None:
            into.raw_set(key, value)
        elif have != value:
            t = F.keytype_of(key)
            name = names.get(t, f"unknown type {t:#x}")
            raise CombineError(
                f"PSBT {k} has a different value for {name} in the {where} than the PSBTs before it: "
                "they disagree about the transaction's data; find out which copy was altered",
                psbt_index=k, field=names.get(t),
            )


class _Verifier:
    """Verifies signatures and finals against the merged PSBT's inputs; each distinct one once."""

    def __init__(self, merged: Psbt, vault: Vault, tx: UnsignedTx, finalized: "set[int]") -> None:
        self.vault = vault
        self._finalized = finalized
        self.tx = tx
        self._merged = merged
        self._derived: "dict[int, tuple[DerivedScript, TxOut]]" = {}
        self._cache: "SighashCache | None" = None
        self._checked: "set[tuple[int, tuple[tuple[bytes, bytes], ...]]]" = set()
        self._finals: "dict[tuple[int | bytes | None, ...], Final]" = {}

    def _input(self, i: int) -> "tuple[DerivedScript, TxOut]":
        if i not in self._derived:
            self._derived[i] = resolve_vault_input(self._merged, i, self.vault, CombineError,
                                                    finalized=i in self._finalized)
        return self._derived[i]

    def _sighashes(self) -> SighashCache:
        cache = self._cache
        if cache is None:
            spent = None
            if self.vault.script == "tr":
                spent = [self._input(j)[1] for j in range(len(self._merged.inputs))]
            cache = self._cache = SighashCache(self.tx, spent)
        return cache

    def check_signatures(self, m: PsbtMap, i: int, k: int, sigs: "list[tuple[bytes, bytes]]") -> None:
        """Verify the signature records ``sigs`` (full key, value) of copy ``k``'s input map ``m``."""
        token = (i, tuple(sigs))
        if token in self._checked:
            return
        d, spent = self._input(i)
        foreign = foreign_signature_keys(m, d)
        if foreign:
            raise CombineError(
                f"PSBT {k}, input {i}: a signature by key {foreign[0].hex()[:16]}..., which is not a vault "
                "key of this input: reject that copy",
                psbt_index=k, input_index=i, field=_sig_field(self.vault),
            )
        for pos, pk in enumerate(d.pubkeys):
            state = signature_state(m, d, pk, i, self._sighashes(), spent.amount)
            fingerprint = self.vault.cosigners[d.signers[pos]].fingerprint
            who = f"cosigner {fingerprint.hex()}"
            if state == "sighash":
                raise CombineError(f"PSBT {k}, input {i}: the signature by {who} uses a sighash type other than ALL",
                                   psbt_index=k, input_index=i, fingerprint=fingerprint, field=_sig_field(self.vault))
            if state == "invalid":
                raise CombineError(
                    f"PSBT {k}, input {i}: the signature by {who} does not verify (wrong key, wrong "
                    "transaction data, or high S): reject that keyholder's copy and ask them to sign again",
                    psbt_index=k, input_index=i, fingerprint=fingerprint, field=_sig_field(self.vault),
                )
        self._checked.add(token)

    def check_final(self, m: PsbtMap, i: int, k: int) -> Final:
        """The canonical final fields of copy ``k``'s input ``i``, verified as the vault's satisfaction."""
        token: "tuple[int | bytes | None, ...]" = (i,) + tuple(None if v is None else bytes(v) for v in map(m.get, FINAL_TYPES))
        if token not in self._finals:
            d, spent = self._input(i)
            try:
                self._finals[token] = verify_final(m, d, self.vault, i, self._sighashes(), spent.amount,
                                                   CombineError, f"PSBT {k}, input {i}")
            except CombineError as e:
                raise e.locate(psbt_index=k, input_index=i)
        return self._finals[token]


def _sig_field(vault: Vault) -> str:
    return "PSBT_IN_TAP_SCRIPT_SIG" if vault.script == "tr" else "PSBT_IN_PARTIAL_SIG"


def _difference(a: UnsignedTx, b: UnsignedTx) -> str:
    if len(a.inputs) != len(b.inputs):
        return f"{len(a.inputs)} inputs vs {len(b.inputs)}"
    if len(a.outputs) != len(b.outputs):
        return f"{len(a.outputs)} outputs vs {len(b.outputs)}"
    for i, (x, y) in enumerate(zip(a.inputs, b.inputs)):
        if x != y:
            return f"input {i} differs (coin spent or sequence)"
    for o, (out_a, out_b) in enumerate(zip(a.outputs, b.outputs)):
        if out_a != out_b:
            return f"output {o} differs (amount or destination)"
    if a.locktime != b.locktime:
        return f"locktime {a.locktime} vs {b.locktime}"
    return f"version {a.version} vs {b.version}"
