"""Shared helpers of the PSBT roles: the transaction view, spent outputs, key origins, vault
membership of inputs and outputs, and signature primitives.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Literal, NamedTuple, Optional, ParamSpec, Sequence, TypeVar

from ..address import address_from_script
from ..errors import (
    ChangeFraud,
    ForeignInput,
    IndexLimitExceeded,
    InvalidAddress,
    InvalidPSBT,
    MissingPreviousTx,
    MsigvaultError,
    UtxoMismatch,
    narrow,
)
from ..policy.vault import CHANGE, NUMS_H, RECEIVE, DerivedScript, Vault
from ..script import compact_size
from .. import secp as _fast
from . import fields as F
from .psbt import Psbt, PsbtMap
from .sighash import SIGHASH_ALL, SIGHASH_DEFAULT, TxIn, TxOut, UnsignedTx

if TYPE_CHECKING:
    from .sighash import SighashCache

HARDENED = 0x80000000
_T = TypeVar("_T")


def have(value: "Optional[_T]") -> _T:
    """``value``, which the script type guarantees is set (a DerivedScript's optional scripts)."""
    assert value is not None, "internal: a script field this script type always has is missing"
    return value


def unsigned_tx(psbt: Psbt) -> UnsignedTx:
    """The unsigned transaction of a v0 or v2 PSBT."""
    if psbt.version == 0:  # read the global transaction once
        raw = psbt._v0_tx()
        return UnsignedTx(raw.version, raw.locktime, tuple([TxIn(bytes(txid), vout, seq) for txid, vout, _, seq in raw.vin]),
                          tuple([TxOut(amount, bytes(spk)) for amount, spk in raw.vout]))
    inputs = []
    for i in range(psbt.input_count):
        txid, vout = psbt.prevout(i)
        inputs.append(TxIn(bytes(txid), vout, psbt.sequence(i)))
    outputs = tuple(TxOut(psbt.amount(i), bytes(psbt.script(i))) for i in range(psbt.output_count))
    return UnsignedTx(psbt.tx_version, psbt.locktime, tuple(inputs), outputs)


@dataclass
class CallScope:
    """What one role call (or one combine-finalize-extract pipeline) may reuse, and nothing longer.

    ``txs``: previous transactions already parsed and hashed, by their exact bytes (ten inputs
    spending one funding transaction parse it once). ``verified``: (key, signature, message)
    triples that libsecp256k1 accepted in this call; each role still computes every sighash and
    asks for every signature it uses, and an exact triple verified once is not verified again.
    ``resolved``: inputs :func:`resolve_input` proved to be vault coins, by the exact data it
    read (the outpoint, every record of the input map but its signatures, the limits it was
    given), kept only in a ``pipeline`` scope: the Finalizer after the Combiner, with the same
    input data, gets the same answer without rebuilding it. Nothing is read from the PSBT to
    decide what was verified.
    """

    txs: "dict[bytes, tuple[bytes, F.RawTx]]" = field(default_factory=dict)
    verified: "set[tuple[bytes, bytes, bytes]]" = field(default_factory=set)
    #: several roles in one call (:func:`.extractor.combine_finalize_extract`): ``resolved`` is kept
    pipeline: bool = False
    #: per vault object: input data already proven a vault coin -> (DerivedScript, spent TxOut)
    resolved: "dict[int, tuple[Vault, dict[object, tuple[DerivedScript, TxOut]]]]" = field(default_factory=dict)


_SCOPE: "ContextVar[Optional[CallScope]]" = ContextVar("msigvault_psbt_call", default=None)


@contextmanager
def call_scope(*, pipeline: bool = False) -> Iterator[CallScope]:
    """The current call's :class:`CallScope`, opened here if none is (nested roles share it);
    ``pipeline`` for a call that runs several roles over the same inputs."""
    scope = _SCOPE.get()
    if scope is not None:
        yield scope
        return
    scope = CallScope(pipeline=pipeline)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def scoped(fn: "Callable[_P, _R]") -> "Callable[_P, _R]":
    """Run ``fn`` inside :func:`call_scope` (a role's entry point)."""
    @functools.wraps(fn)
    def run(*args: "_P.args", **kwargs: "_P.kwargs") -> _R:
        with call_scope():
            return fn(*args, **kwargs)

    return run


def _parsed_prev_tx(psbt: Psbt, full: bytes, i: int) -> "tuple[bytes, F.RawTx]":
    """(txid, parsed transaction) of input ``i``'s non_witness_utxo: parsed once per call scope,
    or taken from what :meth:`Psbt.parse` read (looked up by the exact bytes, either way)."""
    scope = _SCOPE.get()
    if scope is not None:
        hit = scope.txs.get(full)
        if hit is not None:
            return hit
    raw = psbt.parsed_prev_tx(full)
    if raw is None:
        try:
            raw = F.parse_tx(full, f"input {i}: PSBT_IN_NON_WITNESS_UTXO")
        except InvalidPSBT as e:
            raise e.locate(input_index=i, field="PSBT_IN_NON_WITNESS_UTXO")
    parsed = (raw.txid(), raw)
    if scope is not None:
        scope.txs[bytes(full)] = parsed
    return parsed


_NON_WITNESS_UTXO_KEY = F.make_key(F.PSBT_IN_NON_WITNESS_UTXO)
_WITNESS_UTXO_KEY = F.make_key(F.PSBT_IN_WITNESS_UTXO)


def legacy_txid(raw: "F.RawTx") -> bytes:
    """txid (internal byte order) of a parsed transaction: hash of the serialization without witness."""
    parts = [raw.version.to_bytes(4, "little", signed=True), F.compact_size(len(raw.vin))]
    for txid, n, script_sig, seq in raw.vin:
        parts += [txid, n.to_bytes(4, "little"), F.compact_size(len(script_sig)), script_sig,
                  seq.to_bytes(4, "little")]
    parts.append(F.compact_size(len(raw.vout)))
    for amount, spk in raw.vout:
        parts += [amount.to_bytes(8, "little", signed=True), F.compact_size(len(spk)), spk]
    parts.append(raw.locktime.to_bytes(4, "little"))
    data = b"".join(parts)
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def spent_output(psbt: Psbt, i: int, error: "type[MsigvaultError]", *, require_full_tx: bool) -> TxOut:
    """The output input ``i`` spends, from its UTXO fields, cross-checked.

    A non_witness_utxo must hash to the outpoint's txid and agree with a witness_utxo given
    alongside. With ``require_full_tx`` a non_witness_utxo is mandatory (segwit v0 fee attack,
    CVE-2020-14199, and legacy inputs).
    """
    m = psbt.inputs[i]
    txid, vout = psbt.prevout(i)
    full = m.raw_get(_NON_WITNESS_UTXO_KEY)
    wit = m.raw_get(_WITNESS_UTXO_KEY)
    from_full = None
    if full is not None:
        full_txid, raw = _parsed_prev_tx(psbt, full, i)
        if full_txid != bytes(txid):
            raise narrow(error, UtxoMismatch)(
                f"input {i}: the previous transaction given (non_witness_utxo) does not hash to the "
                "txid the input spends: the PSBT was tampered with or built wrongly",
                input_index=i, field="PSBT_IN_NON_WITNESS_UTXO",
            )
        if vout >= len(raw.vout):
            raise narrow(error, UtxoMismatch)(
                f"input {i}: spends output {vout}, but the previous transaction has only {len(raw.vout)}",
                input_index=i, field="PSBT_IN_NON_WITNESS_UTXO",
            )
        amount, spk = raw.vout[vout]
        from_full = TxOut(amount, bytes(spk))
    from_wit = None
    if wit is not None:
        try:
            amount, spk = F.parse_txout(wit, f"input {i}: PSBT_IN_WITNESS_UTXO")
        except InvalidPSBT as e:
            raise e.locate(input_index=i, field="PSBT_IN_WITNESS_UTXO")
        if from_full is None:
            from_wit = TxOut(amount, bytes(spk))
        elif amount != from_full.amount or spk != from_full.script_pubkey:
            from_wit = TxOut(amount, bytes(spk))
    if from_full is not None and from_wit is not None and from_full != from_wit:
        raise narrow(error, UtxoMismatch)(
            f"input {i}: witness_utxo claims {from_wit.amount} sats but the previous transaction "
            f"says {from_full.amount} sats: refusing a PSBT that lies about amounts",
            input_index=i, field="PSBT_IN_WITNESS_UTXO",
        )
    if require_full_tx and from_full is None:
        raise narrow(error, MissingPreviousTx)(
            f"input {i}: the previous transaction (non_witness_utxo) is missing; segwit v0 and "
            "legacy signatures do not commit to other inputs' amounts, so a hostile coordinator "
            "could make you overpay (CVE-2020-14199). Ask the coordinator to include it, or "
            "explicitly accept witness-only inputs",
            input_index=i, field="PSBT_IN_NON_WITNESS_UTXO",
        )
    out = from_full or from_wit
    if out is None:
        raise error(f"input {i}: has neither witness_utxo nor non_witness_utxo: the Updater must add them",
                    input_index=i, field="PSBT_IN_WITNESS_UTXO")
    return out


def encode_origin(fingerprint: bytes, path: "Iterable[int]") -> bytes:
    return fingerprint + b"".join(p.to_bytes(4, "little") for p in path)


def _key_prefixes(vault: Vault) -> "dict[tuple[bytes, tuple[int, ...]], int]":
    """(fingerprint, account path) -> the position of the first cosigner with them (kept on the vault)."""
    prefixes: "Optional[dict[tuple[bytes, tuple[int, ...]], int]]" = vault.__dict__.get("_key_prefixes")
    if prefixes is None:
        prefixes = {}
        for at, c in enumerate(vault.cosigners):
            prefixes.setdefault((c.fingerprint, tuple(c.path)), at)
        vault.__dict__["_key_prefixes"] = prefixes
    return prefixes


def _branch_index_from_path(vault: Vault, fingerprint: bytes, path: "Sequence[int]") -> "Optional[tuple[int, int, int]]":
    """(cosigner position, branch, index) if (fingerprint, path) is a vault key path."""
    if len(path) < 2:
        return None
    pos = _key_prefixes(vault).get((fingerprint, tuple(path[:-2])))
    branch, index = path[-2], path[-1]
    if pos is not None and branch in (RECEIVE, CHANGE) and index < HARDENED:
        return pos, branch, index
    return None


class Derivation(NamedTuple):
    """One BIP32 derivation record of an input or output map.

    ``pubkey`` is 33 bytes (BIP174) or 32 bytes x-only (BIP371); ``leaf_hashes`` is None for
    BIP174 records and the BIP371 leaf hashes for taproot ones. (A named tuple: the roles make
    three per input of a 1,000-input PSBT, several times.)
    """

    pubkey: bytes
    fingerprint: bytes
    path: "tuple[int, ...]"
    leaf_hashes: "Optional[tuple[bytes, ...]]" = None


_PATHS = [struct.Struct(f"<{k}I") for k in range(17)]  # 4-byte little-endian path elements
_new_tuple = tuple.__new__  # a Derivation without its generated __new__ (a Python-level lambda)


def claimed_derivations(m: PsbtMap, *, is_input: bool) -> "list[Derivation]":
    """Every BIP32 derivation in an input or output map (taproot derivations give x-only keys):
    the BIP174 records first, then the BIP371 ones, each in map order (and parsed in that order,
    so the first malformed one is the one named)."""
    out, taps = [], []
    bip32 = F.PSBT_IN_BIP32_DERIVATION if is_input else F.PSBT_OUT_BIP32_DERIVATION
    tap = F.PSBT_IN_TAP_BIP32_DERIVATION if is_input else F.PSBT_OUT_TAP_BIP32_DERIVATION
    for key, value in m.items():  # both types are below 0xfd: one byte of key type
        t = key[0]
        if t == bip32:
            k = (len(value) - 4) >> 2
            if 0 <= k < len(_PATHS) and len(value) == 4 + 4 * k:
                out.append(_new_tuple(Derivation, (key[1:], value[:4], _PATHS[k].unpack_from(value, 4), None)))
            else:  # a long or malformed origin: the general parser (and its error)
                fp, path = F.parse_key_origin(value, "BIP32 derivation")
                out.append(Derivation(key[1:], fp, tuple(path)))
        elif t == tap:
            taps.append((key, value))
    for key, value in taps:
        h = value[0] if value else 0xFD  # leaf hash count, below 0xfd in one byte
        k = (len(value) - 5 - 32 * h) >> 2
        if h < 0xFD and 0 <= k < len(_PATHS) and len(value) == 5 + 32 * h + 4 * k:
            at = 1 + 32 * h
            out.append(_new_tuple(Derivation, (key[1:], value[at:at + 4], _PATHS[k].unpack_from(value, at + 4),
                                               tuple([value[1 + 32 * j:33 + 32 * j] for j in range(h)]))))
        else:  # the general parser (and its error)
            hashes, fp, path = F.parse_tap_bip32(value, "taproot BIP32 derivation")
            out.append(Derivation(key[1:], fp, tuple(path), tuple(bytes(x) for x in hashes)))
    return out


def is_nums_entry(d: Derivation) -> bool:
    """BIP371 allows a derivation for the internal key with no leaf hashes; BDK writes one for
    the vault's unspendable NUMS key. It says nothing about the vault's keys and is ignored."""
    return d.leaf_hashes == () and d.pubkey == NUMS_H


def vault_position(vault: Vault, derivations: "Sequence[Derivation]") -> "Optional[tuple[int, int]]":
    """The single (branch, index) that the derivations claim within ``vault``, or None if none do.

    Raises ValueError if they claim several different positions.
    """
    prefixes = _key_prefixes(vault)
    found = None
    for d in derivations:
        path = d.path
        if len(path) < 2 or (d.fingerprint, tuple(path[:-2])) not in prefixes:
            continue
        branch, index = path[-2], path[-1]
        if branch in (RECEIVE, CHANGE) and index < HARDENED:
            if found is None:
                found = (branch, index)
            elif found != (branch, index):
                raise ValueError("derivations point at different vault indexes")
    return found


def rebuilds(vault: Vault, derived: DerivedScript, derivations: "Sequence[Derivation]") -> Optional[str]:
    """None if every claimed derivation is exactly a vault key of ``derived``; else the reason.

    Taproot records must name exactly the vault's one leaf; a record for the NUMS internal key
    with no leaf hashes (BIP371, written by BDK) is accepted and ignored, and any other record
    claiming the internal key is refused.
    """
    is_tr = derived.script_type == "tr"
    cosigners, tail = vault.cosigners, (derived.branch, derived.index)
    want = {}
    for pk, ci in zip(derived.pubkeys, derived.signers):
        c = cosigners[ci]
        want[pk[1:] if is_tr else pk] = (c.fingerprint, c.path + tail)
    seen = set()
    for d in derivations:
        if is_tr and d.pubkey == NUMS_H:
            if is_nums_entry(d):
                continue
            return "it lists the unspendable internal key with leaf hashes, as if it could sign"
        if (d.leaf_hashes is not None) != is_tr:
            return (f"it lists key {d.pubkey.hex()[:16]}... as a "
                    f"{'taproot' if d.leaf_hashes is not None else 'non-taproot'} key, which this vault's keys are not")
        if d.pubkey not in want:
            return f"it lists key {d.pubkey.hex()[:16]}... which is not a vault key at that index"
        if want[d.pubkey] != (d.fingerprint, tuple(d.path)):
            return f"key {d.pubkey.hex()[:16]}... is listed with a derivation path that is not the vault's"
        if is_tr and sorted(d.leaf_hashes or ()) != sorted(derived.tap_leaf_hashes(d.pubkey)):  # its leaves, any order
            return f"key {d.pubkey.hex()[:16]}... is listed with leaf hashes that are not the vault's leaves of that key"
        seen.add(d.pubkey)
    if seen and len(seen) != len(want):
        return f"it lists {len(seen)} of the vault's {len(want)} keys"
    return None


def _tap_tree_of(d: DerivedScript) -> bytes:
    return have(d.tap_tree)  # one leaf at depth 0, or the primary and recovery leaves


def metadata_problem(m: PsbtMap, d: DerivedScript, *, is_input: bool) -> Optional[str]:
    """None if every script field of a vault input or output map is the vault's own at ``d``.

    An output that names vault keys but carries another redeem/witness script, internal key or
    script tree is refused as change fraud (Coldcard refuses these too), even if the
    scriptPubKey matches: whoever wrote them is not building from the vault.
    """
    if is_input:
        fields = {F.PSBT_IN_REDEEM_SCRIPT: d.redeem_script, F.PSBT_IN_WITNESS_SCRIPT: d.witness_script,
                  F.PSBT_IN_TAP_INTERNAL_KEY: NUMS_H if d.leaf_script else None,
                  F.PSBT_IN_TAP_MERKLE_ROOT: d.tap_merkle_root}
    else:
        fields = {F.PSBT_OUT_REDEEM_SCRIPT: d.redeem_script, F.PSBT_OUT_WITNESS_SCRIPT: d.witness_script,
                  F.PSBT_OUT_TAP_INTERNAL_KEY: NUMS_H if d.leaf_script else None,
                  F.PSBT_OUT_TAP_TREE: _tap_tree_of(d) if d.leaf_script else None}
    names = F.INPUT_NAMES if is_input else F.OUTPUT_NAMES
    leaf_type = F.PSBT_IN_TAP_LEAF_SCRIPT if is_input else -1
    leaves = []
    for key, value in m.items():  # one pass; every type checked here is below 0xfd
        t = key[0]
        if len(key) == 1 and t in fields:
            if value != fields[t]:
                return f"its {names.get(t, hex(t))} is not the vault's script data there"
        elif t == leaf_type:
            leaves.append((key[1:], value))
    for control, value in leaves:
        if (bytes(control), bytes(value)) not in d.tap_leaf_entries:
            return "its taproot leaf script is not the vault's"
    return None


# -- signatures --------------------------------------------------------------------------------

def ecdsa_sign(secret: bytes, msg: bytes) -> bytes:
    """DER signature with low R (grinds like Bitcoin Core) and low S."""
    return _fast.ecdsa_sign_low_r(secret, msg)


def ecdsa_verify(pubkey: bytes, der: bytes, msg: bytes) -> bool:
    """Strict-DER, low-S ECDSA verification (what standardness and BIP66 demand).

    Within a :func:`call_scope`, an exact (key, signature, message) triple already accepted in
    that call is accepted without asking libsecp256k1 again."""
    pubkey, der, msg = bytes(pubkey), bytes(der), bytes(msg)
    scope = _SCOPE.get()
    if scope is not None and (pubkey, der, msg) in scope.verified:
        return True
    ok = _fast.ecdsa_verify(pubkey, der, msg)
    if ok and scope is not None:
        scope.verified.add((pubkey, der, msg))
    return ok


def schnorr_sign(secret: bytes, msg: bytes) -> bytes:
    return _fast.schnorr_sign(secret, msg, os.urandom(32))


def schnorr_verify(xonly: bytes, sig: bytes, msg: bytes) -> bool:
    """BIP340 verification (memoized within a :func:`call_scope` like :func:`ecdsa_verify`)."""
    xonly, sig, msg = bytes(xonly), bytes(sig), bytes(msg)
    scope = _SCOPE.get()
    key = (b"\x00" + xonly, sig, msg)  # no ECDSA key starts with 0x00: the two kinds never mix
    if scope is not None and key in scope.verified:
        return True
    ok = _schnorr_verify(xonly, sig, msg)
    if ok and scope is not None:
        scope.verified.add(key)
    return ok


def _schnorr_verify(xonly: bytes, sig: bytes, msg: bytes) -> bool:
    return _fast.schnorr_verify(xonly, sig, msg)


def pubkey_of(secret: bytes) -> bytes:
    return _fast.pubkey_create(secret)


def _derivation_field(vault: Vault) -> str:
    return "PSBT_IN_TAP_BIP32_DERIVATION" if vault.script == "tr" else "PSBT_IN_BIP32_DERIVATION"


def resolve_input(psbt: Psbt, i: int, vault: Vault, error: "type[MsigvaultError]", *, require_full_tx: bool,
                  index_limit: Optional[int] = None) -> "tuple[DerivedScript, TxOut]":
    """(DerivedScript, spent TxOut) of input ``i``, proven to be a vault coin; else ``error``.

    The input's BIP32 derivations must name one vault (branch, index), below ``index_limit`` if
    given; the script rebuilt there from the registered cosigners must be byte for byte the
    script of the coin spent, and every script field in the PSBT must be the vault's.
    """
    m = psbt.inputs[i]
    scope = _SCOPE.get()
    if scope is None or not scope.pipeline:  # one role resolves each input once anyway
        return _resolve_input(psbt, i, m, vault, error, require_full_tx=require_full_tx, index_limit=index_limit)
    memo = scope.resolved.get(id(vault))
    if memo is None or memo[0] is not vault:
        memo = scope.resolved[id(vault)] = (vault, {})
    token = (psbt.prevout(i), require_full_tx, index_limit,
             frozenset([item for item in m.items() if item[0][0] not in _SIGNATURE_TYPES]))
    found = memo[1].get(token)
    if found is None:
        found = memo[1][token] = _resolve_input(psbt, i, m, vault, error, require_full_tx=require_full_tx,
                                                index_limit=index_limit)
    return found


# signature records (partial, taproot key and script path): what signing adds to an input
_SIGNATURE_TYPES = frozenset((F.PSBT_IN_PARTIAL_SIG, F.PSBT_IN_TAP_KEY_SIG, F.PSBT_IN_TAP_SCRIPT_SIG))


def _resolve_input(psbt: Psbt, i: int, m: PsbtMap, vault: Vault, error: "type[MsigvaultError]", *,
                   require_full_tx: bool, index_limit: Optional[int]) -> "tuple[DerivedScript, TxOut]":
    spent = spent_output(psbt, i, error, require_full_tx=require_full_tx)
    try:
        derivations = claimed_derivations(m, is_input=True)
        position = vault_position(vault, derivations)
    except (ValueError, InvalidPSBT) as e:
        raise narrow(error, ForeignInput)(f"input {i}: its key derivations are inconsistent ({e})",
                                          input_index=i, field=_derivation_field(vault)) from None
    if position is None:
        raise narrow(error, ForeignInput)(
            f"input {i} does not spend from this vault (none of its key derivations is a vault key): "
            "refusing a PSBT with foreign inputs",
            input_index=i, field=_derivation_field(vault),
        )
    if index_limit is not None and position[1] >= index_limit:
        raise narrow(error, IndexLimitExceeded)(
            f"input {i} spends a coin at vault index {position[1]}, beyond the indexes this keyholder "
            f"registered (below {index_limit}): anyone who knows the xpubs can plant a coin there to "
            "move change out of reach; if the index is really in use, register the vault again with a "
            "higher index limit",
            input_index=i, limit=index_limit,
        )
    d = vault.derive_branch(*position)
    if d.script_pubkey != spent.script_pubkey:
        raise narrow(error, ForeignInput)(
            f"input {i} claims vault branch {position[0]} index {position[1]} but the coin it spends "
            "pays a different script: it is not a vault coin",
            input_index=i,
        )
    reason = rebuilds(vault, d, derivations) or metadata_problem(m, d, is_input=True)
    if reason:
        raise narrow(error, ForeignInput)(f"input {i}: {reason}", input_index=i)
    return d, spent


OutputKind = Literal["payment", "change", "vault-receive"]


@dataclass(frozen=True)
class OutputLine:
    index: int
    address: str
    amount: int
    kind: OutputKind  # "payment", "change" (vault branch 1) or "vault-receive" (vault branch 0)
    vault_index: Optional[int] = None
    proven_by: Optional[str] = None  # vault outputs: "derivations" (key origins) or "script" (found by script)

    @property
    def is_vault(self) -> bool:
        return self.kind != "payment"


def classify_output(psbt: Psbt, o: int, vault: Vault, *, index_limit: int,
                    match_scripts: bool = False) -> "tuple[OutputLine, Optional[str]]":
    """Label output ``o`` and say what is wrong with it, if anything (see :func:`check_output`)."""
    line, problem = check_output(psbt, o, vault, index_limit=index_limit, match_scripts=match_scripts)
    return line, (str(problem) if problem is not None else None)


def check_output(psbt: Psbt, o: int, vault: Vault, *, index_limit: int,
                 match_scripts: bool = False) -> "tuple[OutputLine, Optional[MsigvaultError]]":
    """Label output ``o`` and give the refusal (not raised) that what is wrong with it calls for.

    The refusal is a :class:`ChangeFraud` or :class:`IndexLimitExceeded` with ``output_index`` set.

    An output is the vault's own only if its derivations name one vault (branch, index) below
    ``index_limit`` and the script rebuilt there from the registered cosigners is byte for byte
    its script, with every script field the vault's. One that carries vault fingerprints but does
    not rebuild is a problem (change fraud or derivation-path ransom); one without vault
    derivations is a payment, unless ``match_scripts`` finds its script among the vault's first
    ``index_limit`` scripts of both branches (a PSBT whose derivations were cleared, as BDK's
    finalizer does); such an output's remaining claims must then be the vault's too.
    """
    m = psbt.outputs[o]
    script = bytes(psbt.script(o))
    amount = psbt.amount(o)
    address = display_address(script, vault)
    payment = OutputLine(o, address, amount, "payment")
    try:
        derivations = claimed_derivations(m, is_input=False)
        position = vault_position(vault, derivations)
    except (ValueError, InvalidPSBT) as e:
        return payment, ChangeFraud(f"output {o}: its key derivations are inconsistent ({e})", output_index=o)
    if position is None:
        vault_fps = {c.fingerprint for c in vault.cosigners}
        if any(d.fingerprint in vault_fps for d in derivations if not is_nums_entry(d)):
            return payment, ChangeFraud(
                f"output {o} carries vault key fingerprints but not at a vault change path "
                "(hardened step, other branch or other account): it may be a ransom or a fraud",
                output_index=o,
            )
        found = vault.find(script, gap=index_limit) if match_scripts and has_vault_template(script, vault) else None
        if found is not None:
            d = vault.derive_branch(*found)
            claims = [x for x in derivations if not is_nums_entry(x)]
            reason = (rebuilds(vault, d, claims) if claims else None) or metadata_problem(m, d, is_input=False)
            if reason:
                return payment, ChangeFraud(f"output {o} pays the vault's own script but {reason}: change fraud",
                                            output_index=o)
            kind: OutputKind = "change" if found[0] == CHANGE else "vault-receive"
            return OutputLine(o, address, amount, kind, found[1], "script"), None
        return payment, None
    branch, index = position
    if index >= index_limit:
        return payment, IndexLimitExceeded(
            f"output {o} sends {'change' if branch == CHANGE else 'coins'} to vault index {index}, beyond "
            f"the indexes this keyholder registered (below {index_limit}); wallets scanning the vault would "
            "not find it (derivation-path ransom)",
            output_index=o, limit=index_limit,
        )
    d = vault.derive_branch(branch, index)
    if d.script_pubkey != script:
        return payment, ChangeFraud(
            f"output {o} claims to be vault {'change' if branch == CHANGE else 'receive'} index {index} "
            "but its script is not the vault's script there: change fraud",
            output_index=o,
        )
    reason = rebuilds(vault, d, derivations) or metadata_problem(m, d, is_input=False)
    if reason:
        return payment, ChangeFraud(f"output {o} (claimed vault change): {reason}: change fraud", output_index=o)
    return OutputLine(o, address, amount, "change" if branch == CHANGE else "vault-receive", index,
                      "derivations"), None


def has_vault_template(script: bytes, vault: Vault) -> bool:
    """Whether ``script`` has the shape of the vault's scripts (P2TR, P2WSH or P2SH), so that
    only such outputs cost a search of the vault's addresses."""
    if vault.script == "tr":
        return len(script) == 34 and script[:2] == b"\x51\x20"
    if vault.script == "wsh":
        return len(script) == 34 and script[:2] == b"\x00\x20"
    return len(script) == 23 and script[:2] == b"\xa9\x14" and script[-1:] == b"\x87"


def display_address(script: bytes, vault: Vault) -> str:
    """The address of ``script`` on the vault's network, or a readable description of it."""
    try:
        return address_from_script(script, vault.network)
    except InvalidAddress:
        if script[:1] == b"\x6a":
            return f"OP_RETURN data ({script[1:].hex()[:40]})"
        return f"script:{script.hex()}"


def signature_state(m: PsbtMap, d: DerivedScript, pk: bytes, i: int, cache: "SighashCache", amount: int) -> str:
    """State of the signature by vault key ``pk`` in input map ``m``.

    "absent", "valid", "sighash" (a sighash type other than ALL, or DEFAULT for taproot) or
    "invalid" (does not verify for this input: wrong key, wrong data, or high S).
    """
    if d.leaves:  # tr with recovery leaves: the key's record for every leaf it is on
        from .paths import leaf_signature_state

        return leaf_signature_state(m, d, pk, i, cache)
    if d.script_type == "tr":
        value = m.get(F.PSBT_IN_TAP_SCRIPT_SIG, pk[1:] + have(d.leaf_hash))
        if value is None:
            return "absent"
        if len(value) == 64:
            hashtype = SIGHASH_DEFAULT
        elif len(value) == 65 and value[64] == SIGHASH_ALL:
            hashtype = SIGHASH_ALL
        else:
            return "sighash" if len(value) == 65 else "invalid"
        msg = cache.taproot(i, hashtype, leaf_hash=d.leaf_hash)
        return "valid" if schnorr_verify(pk[1:], bytes(value[:64]), msg) else "invalid"
    value = m.get(F.PSBT_IN_PARTIAL_SIG, pk)
    if value is None:
        return "absent"
    if len(value) < 9:
        return "invalid"
    if value[-1] != SIGHASH_ALL:
        return "sighash"
    if d.script_type == "sh":
        msg = cache.legacy(i, have(d.redeem_script), SIGHASH_ALL)
    else:
        msg = cache.segwit_v0(i, have(d.witness_script), amount, SIGHASH_ALL)
    return "valid" if ecdsa_verify(pk, bytes(value[:-1]), msg) else "invalid"


def foreign_signature_keys(m: PsbtMap, d: DerivedScript) -> "list[bytes]":
    """Keys of signatures in input map ``m`` that are not vault keys (for taproot: or not the vault leaf)."""
    vault_keys = set(d.pubkeys)
    bad, bad_tap = [], []  # partial signatures first, then taproot ones, each in map order
    for key in m.keys():
        t = key[0]
        if t == F.PSBT_IN_PARTIAL_SIG:
            if key[1:] not in vault_keys or d.script_type == "tr":
                bad.append(key[1:])
        elif t == F.PSBT_IN_TAP_SCRIPT_SIG:
            if d.script_type != "tr" or key[33:] not in d.tap_leaf_hashes(key[1:33]):
                bad_tap.append(key[1:])
    return bad + bad_tap
