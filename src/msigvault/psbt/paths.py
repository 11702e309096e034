"""Spending paths of a vault with timelocked recovery paths, for every PSBT role.

A plain vault has one path (its m-of-n); a vault with recovery paths (docs/recovery.md) has the
primary path and one path per recovery policy. This module is what the roles ask about paths:

- the Creator picks a path (``path="recovery"``) and sets the nSequence (``older``) or
  nLockTime (``after``) it needs; a primary spend never sets them;
- fee estimates use the chosen path's witness, measured by satisfying the path's own
  miniscript with largest-size placeholder signatures (exact, and never above the script's
  ``max_witness_weight``);
- the Signer is told which paths the transaction's locks open (:func:`open_paths`);
- the Finalizer builds the witness by miniscript satisfaction, **preferring the primary path**
  whenever its signatures are there (Core's cheapest-witness rule alone would pick a 1-of-2
  recovery path over a 2-of-3 primary once the lock passed; a routine spend should not depend on
  the recovery keys, and the recovery keyholders' signatures are then left unused), else the
  cheapest satisfiable recovery path;
- a final witness is accepted only when it is exactly what this Finalizer builds from the valid
  signatures it carries, for one of the vault's paths (:func:`verify_final`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from ..errors import FinalizeError, MsigvaultError, NotEnoughSignatures, PolicyError, SignerRefusal
from ..policy.miniscript import Context, Fragment, Miniscript, Satisfier
from ..policy.recovery import SEQUENCE_TYPE_FLAG, Timelock, templates
from ..policy.vault import DerivedScript, Vault
from ..script import compact_size
from . import fields as F
from .common import ecdsa_verify, schnorr_verify
from .psbt import Psbt, PsbtMap
from .sighash import SIGHASH_ALL, SIGHASH_DEFAULT, SighashCache, UnsignedTx
from .weight import MAX_ECDSA_SIG, OUTPOINT_AND_SEQUENCE, SCHNORR_SIG, input_weight as multisig_input_weight

if TYPE_CHECKING:
    from .satisfaction import Final

SEQUENCE_FINAL = 0xFFFFFFFF
SEQUENCE_RBF = 0xFFFFFFFD


@dataclass(frozen=True)
class SpendPath:
    """One way to spend the vault: ``index`` 0 is the primary m-of-n, ``i`` is
    ``vault.recovery[i - 1]``. ``keys`` are positions in ``vault.cosigners``."""

    index: int
    threshold: int
    keys: "tuple[int, ...]"
    fingerprints: "tuple[str, ...]"
    lock: Optional[Timelock] = None

    @property
    def name(self) -> str:
        return "primary" if self.index == 0 else f"recovery {self.index}"

    def describe(self) -> str:
        """``recovery 1: 1-of-2 (fp, fp), 52,560 blocks after the coin confirmed``."""
        text = f"{self.name}: {self.threshold}-of-{len(self.keys)} ({', '.join(self.fingerprints)})"
        return text + (f", {self.lock.describe()}" if self.lock is not None else ", at any time")

    def to_dict(self) -> "dict[str, Any]":
        return {"path": self.name, "threshold": self.threshold, "cosigners": list(self.fingerprints),
                "lock": self.lock.to_dict() if self.lock is not None else None}


def spend_paths(vault: Vault) -> "tuple[SpendPath, ...]":
    """Every path of ``vault``: the primary first, then its recovery paths in order."""
    fps = [c.fingerprint.hex() for c in vault.cosigners]
    primary = SpendPath(0, vault.m, tuple(range(vault.n)), tuple(fps[: vault.n]))
    return (primary,) + tuple(SpendPath(i, p.threshold, p.keys, tuple(fps[k] for k in p.keys), p.lock)
                              for i, p in enumerate(vault.recovery, 1))


def select_path(vault: Vault, path: "str | int | None") -> SpendPath:
    """The path a caller names: None, ``"primary"`` or 0; ``"recovery"`` (the only one), or
    ``"recovery N"`` / N for recovery path N. PolicyError for anything else."""
    paths = spend_paths(vault)
    if path is None or path == "primary" or (path == 0 and not isinstance(path, bool)):
        return paths[0]
    wanted: "int | None" = None
    if isinstance(path, int) and not isinstance(path, bool):
        wanted = path
    elif isinstance(path, str) and path.startswith("recovery"):
        rest = path[len("recovery"):].strip()
        if not rest:
            if len(paths) == 2:
                return paths[1]
            if len(paths) > 2:
                raise PolicyError(f"this vault has {len(paths) - 1} recovery paths: name one ('recovery 1' to "
                                  f"'recovery {len(paths) - 1}')", field="path")
        wanted = int(rest) if rest.isdigit() else None
    if len(paths) == 1:
        raise PolicyError(f"this vault has no recovery paths, only its primary m-of-n; path {path!r} does not exist",
                          field="path")
    if wanted is None or not 1 <= wanted < len(paths):
        raise PolicyError(f"unknown spending path {path!r}: use 'primary' or 'recovery 1' to "
                          f"'recovery {len(paths) - 1}'", field="path")
    return paths[wanted]


# ---------------------------------------------------------------------------------- locks


def lock_open(lock: Optional[Timelock], version: int, locktime: int, sequence: int) -> bool:
    """Whether an input with ``sequence`` in a transaction (``version``, ``locktime``) meets
    ``lock`` (OP_CHECKSEQUENCEVERIFY / OP_CHECKLOCKTIMEVERIFY's rules)."""
    if lock is None:
        return True
    check = Satisfier(lock_time=locktime, sequence=sequence, version=version)
    return check.check_older(lock.value) if lock.is_relative else check.check_after(lock.value)


def open_paths(vault: Vault, tx: UnsignedTx) -> "tuple[SpendPath, ...]":
    """The paths whose lock every input of ``tx`` meets (the primary always)."""
    return tuple(p for p in spend_paths(vault)
                 if all(lock_open(p.lock, tx.version, tx.locktime, i.sequence) for i in tx.inputs))


def opens_at_height(vault: Vault, confirmed_height: int) -> "tuple[tuple[SpendPath, Optional[int]], ...]":
    """For a coin confirmed at ``confirmed_height``: each recovery path with the first block
    height that can include its recovery spend (None for a time lock: see the lock itself).
    Refresh the coin (a primary-path spend back to the vault) before the earliest one."""
    out: "list[tuple[SpendPath, Optional[int]]]" = []
    for p in spend_paths(vault)[1:]:
        lock = p.lock
        assert lock is not None
        if lock.is_time:
            out.append((p, None))
        elif lock.is_relative:
            out.append((p, confirmed_height + lock.value))
        else:
            out.append((p, lock.value + 1))  # nLockTime must be below the block's height
    return tuple(out)


def spend_fields(vault: Vault, path: SpendPath, *, sequence: int, locktime: int) -> "tuple[int, int]":
    """(nSequence, nLockTime) for a spend by ``path``: the primary keeps the caller's; a relative
    lock sets nSequence to its value, an absolute one raises nLockTime to it (same kind)."""
    lock = path.lock
    if lock is None:
        return sequence, locktime
    if lock.is_relative:
        return lock.sequence(), locktime
    if (locktime >= 500_000_000) != lock.is_time:
        locktime = 0
    return (sequence if sequence != SEQUENCE_FINAL else SEQUENCE_RBF), max(locktime, lock.value)


# ---------------------------------------------------------------------------------- weight


def input_weight(vault: Vault, path: "SpendPath | None" = None) -> "tuple[int, int]":
    """(non-witness bytes, witness bytes) of one input spent by ``path`` (default: primary)."""
    if not vault.recovery:
        return multisig_input_weight(vault.script, vault.m, vault.n)
    chosen = path or spend_paths(vault)[0]
    cache: "dict[int, tuple[int, int]]" = vault.__dict__.setdefault("_path_weights", {})
    if chosen.index not in cache:
        d = vault.derive(0)
        tap = vault.script == "tr"
        size = SCHNORR_SIG if tap else MAX_ECDSA_SIG
        sigs: "dict[Any, bytes]" = {}
        for pos in chosen.keys:
            if tap:
                sigs[(d.pubkeys[pos][1:], d.leaves[chosen.index].leaf_hash)] = bytes(size)
            else:
                sigs[d.pubkeys[pos]] = bytes(size - 1) + bytes([SIGHASH_ALL])
        lock = chosen.lock
        locktime = lock.value if lock is not None and not lock.is_relative else 0
        sequence = lock.value if lock is not None and lock.is_relative else SEQUENCE_RBF
        items = _satisfy_path(vault, d, chosen, Satisfier(sigs, lock_time=locktime, sequence=sequence))
        assert items is not None, "internal: a vault path cannot be satisfied by all its keys"
        cache[chosen.index] = (OUTPOINT_AND_SEQUENCE + 1, _witness_len(items))
    return cache[chosen.index]


def spend_weight(vault: Vault, paths: "tuple[SpendPath, ...] | None" = None) -> "tuple[int, int]":
    """:func:`input_weight` of the largest of ``paths`` (default: the primary): the Finalizer
    uses whichever of the paths a transaction opens has its signatures, so fees are estimated
    for the largest."""
    if not vault.recovery or not paths:
        return input_weight(vault)
    return max((input_weight(vault, p) for p in paths), key=lambda w: 4 * w[0] + w[1])


def opened_by(vault: Vault, path: SpendPath) -> "tuple[SpendPath, ...]":
    """The paths a transaction made for ``path`` opens (the primary, ``path``, and any other
    recovery path whose lock the same nSequence/nLockTime meets)."""
    lock = path.lock
    if lock is None:
        return (path,)
    locktime = lock.value if not lock.is_relative else 0
    sequence = lock.value if lock.is_relative else SEQUENCE_RBF
    return tuple(p for p in spend_paths(vault) if lock_open(p.lock, 2, locktime, sequence))


def _witness_len(items: "list[bytes]") -> int:
    return len(compact_size(len(items))) + sum(len(compact_size(len(x))) + len(x) for x in items)


# ---------------------------------------------------------------------------------- satisfaction


def _leaf_miniscript(vault: Vault, d: DerivedScript, index: int) -> Miniscript:
    if index == 0:
        return Miniscript(Fragment.MULTI_A, Context.TAPSCRIPT, vault.m, d.leaves[0].keys)
    return templates(vault)[index - 1]


def _satisfy_path(vault: Vault, d: DerivedScript, path: SpendPath, sat: Satisfier) -> "Optional[list[bytes]]":
    """The whole witness spending ``d`` by ``path`` from ``sat``, or None (wsh: the one script
    chooses among its paths from the signatures ``sat`` holds)."""
    def key(pos: Any) -> bytes:
        return d.pubkeys[int(pos)]

    if vault.script == "wsh":
        assert d.witness_script is not None
        stack = templates(vault)[0].satisfy(sat, key)
        return None if stack is None else stack + [d.witness_script]
    leaf = d.leaves[path.index]
    stack = _leaf_miniscript(vault, d, path.index).satisfy(sat, key, leaf_hash=leaf.leaf_hash)
    return None if stack is None else stack + [leaf.script, leaf.control_block]


def choose_witness(vault: Vault, d: DerivedScript, signatures: "dict[Any, bytes]", *, version: int,
                   locktime: int, sequence: int) -> "Optional[list[bytes]]":
    """The witness the Finalizer writes: the primary path when its signatures are there, else
    the cheapest satisfiable recovery path; None when no path can be satisfied yet.

    ``signatures``: valid ones, by 33-byte key (wsh) or by (x-only key, leaf hash) (tr)."""
    paths = spend_paths(vault)
    primary = paths[0]

    def satisfier(sigs: "dict[Any, bytes]") -> Satisfier:
        return Satisfier(sigs, lock_time=locktime, sequence=sequence, version=version)

    if vault.script == "wsh":
        primary_keys = {d.pubkeys[pos] for pos in primary.keys}
        first = _satisfy_path(vault, d, primary, satisfier({k: v for k, v in signatures.items() if k in primary_keys}))
        return first if first is not None else _satisfy_path(vault, d, primary, satisfier(signatures))
    best: "Optional[list[bytes]]" = None
    for p in paths:
        leaf_hash = d.leaves[p.index].leaf_hash
        own = {k: v for k, v in signatures.items() if k[1] == leaf_hash}
        w = _satisfy_path(vault, d, p, satisfier(own))
        if w is not None and p.index == 0:
            return w
        if w is not None and (best is None or _witness_len(w) < _witness_len(best)):
            best = w
    return best


def _tap_state(m: PsbtMap, xonly: bytes, leaf_hash: bytes, i: int, cache: SighashCache) -> "tuple[str, Optional[bytes]]":
    value = m.get(F.PSBT_IN_TAP_SCRIPT_SIG, xonly + leaf_hash)
    if value is None:
        return "absent", None
    if len(value) == 64:
        hashtype = SIGHASH_DEFAULT
    elif len(value) == 65 and value[64] == SIGHASH_ALL:
        hashtype = SIGHASH_ALL
    else:
        return ("sighash" if len(value) == 65 else "invalid"), None
    msg = cache.taproot(i, hashtype, leaf_hash=leaf_hash)
    return ("valid", bytes(value)) if schnorr_verify(xonly, bytes(value[:64]), msg) else ("invalid", None)


def leaf_signature_state(m: PsbtMap, d: DerivedScript, pk: bytes, i: int, cache: SighashCache) -> str:
    """:func:`common.signature_state` for a tr vault with recovery leaves: the key's records for
    every leaf it is on; "invalid" or "sighash" if any is, "valid" if one is, else "absent"."""
    states = {_tap_state(m, pk[1:], lh, i, cache)[0] for lh in d.tap_leaf_hashes(pk[1:])}
    for state in ("invalid", "sighash", "valid"):
        if state in states:
            return state
    return "absent"


def _valid_signatures(m: PsbtMap, d: DerivedScript, vault: Vault, i: int, cache: SighashCache,
                      amount: int) -> "dict[Any, bytes]":
    """Every valid signature of input map ``m`` by vault keys; FinalizeError for an invalid one."""
    out: "dict[Any, bytes]" = {}
    for pos, pk in enumerate(d.pubkeys):
        who = vault.cosigners[d.signers[pos]].fingerprint
        if vault.script == "tr":
            states = [(lh, *_tap_state(m, pk[1:], lh, i, cache)) for lh in d.tap_leaf_hashes(pk[1:])]
        else:
            from .common import signature_state

            state = signature_state(m, d, pk, i, cache, amount)
            value = m.get(F.PSBT_IN_PARTIAL_SIG, pk)
            states = [(b"", state, bytes(value) if value is not None and state == "valid" else None)]
        for leaf_hash, state, sig in states:
            if state in ("sighash", "invalid"):
                raise FinalizeError(
                    f"input {i}: the signature of cosigner {who.hex()} is "
                    f"{'of a sighash type other than ALL' if state == 'sighash' else 'invalid'}; "
                    "combine only verified copies", input_index=i, fingerprint=who)
            if state == "valid" and sig is not None:
                out[(pk[1:], leaf_hash) if vault.script == "tr" else pk] = sig
    return out


def finalize(psbt: Psbt, vault: Vault) -> Psbt:
    """The Finalizer for a vault with recovery paths (see the module doc); the same contract as
    :func:`msigvault.psbt.finalizer.finalize`."""
    from .common import unsigned_tx
    from .finalizer import _clear_for_final
    from .satisfaction import Final, has_final, resolve_vault_input, witness_bytes

    out = psbt.copy()
    tx = unsigned_tx(out)
    resolved = [resolve_vault_input(out, i, vault, FinalizeError) for i in range(out.input_count)]
    cache = SighashCache(tx, [s for _, s in resolved] if vault.script == "tr" else None)
    missing: "list[tuple[int, str]]" = []
    for i, (d, spent) in enumerate(resolved):
        m = out.inputs[i]
        if has_final(m):
            final = verify_final(m, d, vault, i, cache, spent.amount, FinalizeError, f"input {i}")
            _clear_for_final(m)
            final.write(m)
            continue
        sigs = _valid_signatures(m, d, vault, i, cache, spent.amount)
        witness = choose_witness(vault, d, sigs, version=tx.version, locktime=tx.locktime,
                                 sequence=tx.inputs[i].sequence)
        if witness is None:
            missing.append((i, _why_not(vault, d, sigs, tx, i)))
            continue
        _clear_for_final(m)
        Final(None, witness_bytes(witness)).write(m)
    if missing:
        more = f" (and {len(missing) - 1} more input(s))" if len(missing) > 1 else ""
        raise NotEnoughSignatures(missing[0][1] + more, input_index=missing[0][0], limit=vault.m)
    out.canonicalize()
    return out


def _held(vault: Vault, d: DerivedScript, p: SpendPath, sigs: "dict[Any, bytes]") -> "list[int]":
    """The positions of path ``p``'s keys with a valid signature in ``sigs`` (by key, or for tr
    by (x-only key, the path's leaf hash))."""
    if vault.script == "tr":
        lh = d.leaves[p.index].leaf_hash
        return [pos for pos in p.keys if (d.pubkeys[pos][1:], lh) in sigs]
    return [pos for pos in p.keys if d.pubkeys[pos] in sigs]


def _why_not(vault: Vault, d: DerivedScript, sigs: "dict[Any, bytes]", tx: UnsignedTx, i: int) -> str:
    """Why no path of input ``i`` can be satisfied: per path, signatures missing or the lock."""
    parts = []
    for p in spend_paths(vault):
        have = _held(vault, d, p, sigs)
        need = max(0, p.threshold - len(have))
        absent = [vault.cosigners[pos].fingerprint.hex() for pos in p.keys if pos not in have]
        text = f"{p.name} path needs {need} more signature(s) of {p.threshold} (from {', '.join(absent)})" if need \
            else f"{p.name} path has its {p.threshold} signature(s)"
        if not lock_open(p.lock, tx.version, tx.locktime, tx.inputs[i].sequence):
            assert p.lock is not None
            text += (f" but opens only {p.lock.describe()}, which this transaction's "
                     f"{'nSequence' if p.lock.is_relative else 'nLockTime'} does not meet (create the PSBT with "
                     f"path='{p.name}')")
        parts.append(text)
    return f"input {i}: no spending path is complete: " + "; ".join(parts) + "; send the PSBT to a keyholder who can complete one"


# ---------------------------------------------------------------------------------- finals


class _Refused(Exception):
    pass


def verify_final(m: PsbtMap, d: DerivedScript, vault: Vault, i: int, cache: SighashCache, amount: int,
                 error: "type[MsigvaultError]", where: str) -> "Final":
    """A finalized input of a vault with recovery paths, accepted only when its witness is
    exactly what :func:`finalize` builds from the valid signatures it carries (one path of the
    vault, the same choice); else ``error`` starting ``where``."""
    from .satisfaction import Final, witness_bytes

    script_sig, witness = m.get(F.PSBT_IN_FINAL_SCRIPTSIG), m.get(F.PSBT_IN_FINAL_SCRIPTWITNESS)
    try:
        if script_sig:
            raise _Refused("a segwit input of this vault has an empty scriptSig")
        stack = _stack(bytes(witness) if witness is not None else b"")
        sigs = _final_signatures(stack, d, vault, i, cache, amount)
        tx = cache.tx
        rebuilt = choose_witness(vault, d, sigs, version=tx.version, locktime=tx.locktime,
                                 sequence=tx.inputs[i].sequence)
        if rebuilt is None:
            raise _Refused("its signatures complete no spending path of the vault under this transaction's locks")
    except _Refused as e:
        raise error(f"{where}: its final witness is not a valid satisfaction of the vault's {d.script_type} "
                    f"script ({e}); nobody verified it: reject that copy and finalize from the keyholders' "
                    "partial copies", input_index=i, field="PSBT_IN_FINAL_SCRIPTWITNESS") from None
    final = Final(None, witness_bytes(rebuilt))
    if witness is None or bytes(witness) != final.witness:
        raise error(f"{where}: its final witness is not byte for byte what the vault's Finalizer builds from "
                    "its signatures (another path, extra data or a misplaced field): reject that copy and "
                    "finalize from the keyholders' partial copies", input_index=i, field="PSBT_IN_FINAL_SCRIPTWITNESS")
    return final


def _stack(witness: bytes) -> "list[bytes]":
    if not witness:
        raise _Refused("it has no witness")
    try:
        items, pos = F.read_witness_stack(witness, 0, len(witness), "final witness")
    except MsigvaultError as e:
        raise _Refused(str(e)) from None
    if pos != len(witness):
        raise _Refused(f"the witness has {len(witness) - pos} bytes after its last item")
    return [bytes(x) for x in items]


def _final_signatures(stack: "list[bytes]", d: DerivedScript, vault: Vault, i: int, cache: SighashCache,
                      amount: int) -> "dict[Any, bytes]":
    """The valid signatures a final witness carries (each item checked against the keys it
    can belong to: every key in wsh, its slot's key in a tr leaf)."""
    sigs: "dict[Any, bytes]" = {}
    if vault.script == "wsh":
        if not stack or stack[-1] != d.witness_script:
            raise _Refused("its last item is not the vault's witness script")
        msg = cache.segwit_v0(i, stack[-1], amount, SIGHASH_ALL)
        for item in stack[:-1]:
            if 9 <= len(item) <= 73 and item[-1] == SIGHASH_ALL:
                for pk in d.pubkeys:
                    if pk not in sigs and ecdsa_verify(pk, item[:-1], msg):
                        sigs[pk] = item
                        break
        return sigs
    if len(stack) < 2:
        raise _Refused("it lacks the leaf script and control block")
    leaf = next((x for x in d.leaves if x.script == stack[-2] and x.control_block == stack[-1]), None)
    if leaf is None:
        raise _Refused("its leaf script and control block are not one of the vault's leaves")
    items = stack[:-2]
    if len(items) != len(leaf.keys):
        raise _Refused(f"the leaf has {len(leaf.keys)} keys, the witness {len(items)} signature slots")
    for slot, item in enumerate(items):
        if not item:
            continue
        pos = leaf.keys[len(items) - 1 - slot]  # multi_a checks its first key against the top of the stack
        if len(item) == 64:
            hashtype = SIGHASH_DEFAULT
        elif len(item) == 65 and item[64] == SIGHASH_ALL:
            hashtype = SIGHASH_ALL
        else:
            raise _Refused("a signature is not BIP340 with sighash DEFAULT or ALL")
        xonly = d.pubkeys[pos][1:]
        if not schnorr_verify(xonly, item[:64], cache.taproot(i, hashtype, leaf_hash=leaf.leaf_hash)):
            raise _Refused(f"the signature of cosigner {vault.cosigners[pos].fingerprint.hex()} does not verify")
        sigs[(xonly, leaf.leaf_hash)] = item
    return sigs


# ---------------------------------------------------------------------------------- analyzer


def analyze_input(vault: Vault, d: DerivedScript, m: PsbtMap, i: int, cache: SighashCache, amount: int,
                  tx: UnsignedTx) -> "tuple[int, list[dict[str, Any]]]":
    """(signatures still needed, per path: who signed, how many more, whether its lock is met)
    for one unfinalized input; 0 needed once some path can be finalized."""
    from .common import signature_state

    sigs: "dict[Any, bytes]" = {}
    for pos, pk in enumerate(d.pubkeys):
        if vault.script == "tr":
            for lh in d.tap_leaf_hashes(pk[1:]):
                state, sig = _tap_state(m, pk[1:], lh, i, cache)
                if state == "valid" and sig is not None:
                    sigs[(pk[1:], lh)] = sig
        elif signature_state(m, d, pk, i, cache, amount) == "valid":
            value = m.get(F.PSBT_IN_PARTIAL_SIG, pk)
            if value is not None:
                sigs[pk] = bytes(value)
    report, needs = [], []
    for p in spend_paths(vault):
        have = _held(vault, d, p, sigs)
        opened = lock_open(p.lock, tx.version, tx.locktime, tx.inputs[i].sequence)
        need = max(0, p.threshold - len(have))
        if opened:
            needs.append(need)
        report.append({**p.to_dict(), "signed_by": [vault.cosigners[pos].fingerprint.hex() for pos in have],
                       "signatures_needed": need, "lock_met": opened})
    done = choose_witness(vault, d, sigs, version=tx.version, locktime=tx.locktime,
                          sequence=tx.inputs[i].sequence) is not None
    return (0 if done else min(needs)), report


# ---------------------------------------------------------------------------------- signer


def signer_paths(vault: Vault, tx: UnsignedTx, fingerprint: bytes,
                 allowed: "frozenset[int] | None" = None) -> "tuple[SpendPath, ...]":
    """The paths this transaction's locks open (the primary first); SignerRefusal when the
    keyholder ``fingerprint`` can use none of them: their key is on none, or only on paths their
    registration does not allow (``allowed``: path numbers; None, a bare Vault: every path)."""
    if not vault.recovery:
        return ()
    opened = open_paths(vault, tx)
    mine = [p for p in opened if fingerprint.hex() in p.fingerprints]
    if mine and allowed is not None and not any(p.index in allowed for p in mine):
        raise SignerRefusal(
            f"this transaction's nSequence/nLockTime open {', '.join(p.name for p in mine)} for your key, and your "
            f"registration of this vault allows you to sign for {_names(allowed)} only: refusing. If you agree to "
            "sign recovery spends, register again with that path (msigvault vault verify --path ...) after "
            "checking the policy id", fingerprint=fingerprint, field="paths")
    if not mine:
        on = [p.describe() for p in spend_paths(vault) if fingerprint.hex() in p.fingerprints]
        raise SignerRefusal(
            f"your key is only on {'; '.join(on)}, and this transaction's nSequence/nLockTime do not meet that "
            "lock, so your signature could not be used: ask the coordinator for a PSBT made for that path, "
            "or wait for the primary keyholders", fingerprint=fingerprint)
    return opened


def _names(allowed: "frozenset[int]") -> str:
    return ", ".join("the primary path" if i == 0 else f"recovery {i}" for i in sorted(allowed))


def usable_paths(opened: "tuple[SpendPath, ...]", fingerprint: bytes,
                 allowed: "frozenset[int] | None") -> "tuple[SpendPath, ...]":
    """Of the ``opened`` paths, those holding ``fingerprint``'s key that it may sign for."""
    return tuple(p for p in opened if fingerprint.hex() in p.fingerprints and (allowed is None or p.index in allowed))


def signing_leaves(vault: Vault, d: DerivedScript, xonly: bytes, usable: "tuple[SpendPath, ...]") -> "list[bytes]":
    """The leaf hashes a tr keyholder signs in: the leaves of ``usable`` paths holding ``xonly``
    (every leaf of the key for a plain vault, which has one)."""
    own = d.tap_leaf_hashes(xonly)
    if not vault.recovery:
        return list(own)
    wanted = {d.leaves[p.index].leaf_hash for p in usable}
    return [lh for lh in own if lh in wanted]


def mining_notes(vault: Vault, tx: UnsignedTx, usable: "tuple[SpendPath, ...]") -> "list[str]":
    """When this transaction can be mined, for each recovery path the keyholder signs for (the
    transaction's own nSequence/nLockTime, which meet that path's lock): shown with the summary."""
    notes = []
    for p in usable:
        lock = p.lock
        if lock is None:
            continue
        if lock.is_relative:
            waits = sorted({Timelock(lock.kind, s & (SEQUENCE_TYPE_FLAG | 0xFFFF)).describe() for s in
                            (i.sequence for i in tx.inputs)})
            notes.append(f"{p.name} spend: it can be mined only once every input's coin is old enough: "
                         f"{' / '.join(waits)} (nSequence); before that the network refuses it, keep it until then")
        elif lock.is_time:
            notes.append(f"{p.name} spend: it can be mined once the chain's median time passes unix time "
                         f"{tx.locktime:,} (nLockTime; the path opens {lock.describe()}); before that the network "
                         "refuses it")
        else:
            notes.append(f"{p.name} spend: it can be mined from block {tx.locktime + 1:,} (nLockTime {tx.locktime:,}; "
                         f"the path opens {lock.describe()}); before that the network refuses it")
    return notes
