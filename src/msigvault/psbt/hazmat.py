"""Hazardous materials: PSBT operations driven by the PSBT's own scripts, not by a vault.

These trust the scripts and keys a PSBT carries. They exist for interoperability with arbitrary
multisig PSBTs and to reproduce BIP174's role examples byte for byte. A keyholder signing for a
vault must use ``msigvault.psbt.signer.sign``, which checks everything against the registered
vault first; nothing in this module refuses anything a vault would not authorise.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from embit.util import secp256k1 as _secp

from ..errors import FinalizeError, InvalidPSBT
from ..script import compact_size, p2sh_script_pubkey, p2wsh_script_pubkey
from . import fields as F
from .common import encode_origin, have, legacy_txid, pubkey_of, spent_output, unsigned_tx
from .finalizer import set_final_multisig
from .psbt import Psbt, PsbtMap
from .sighash import SIGHASH_ALL, SighashCache

_OP_CHECKMULTISIG = 0xAE


def create(inputs: "Iterable[tuple[str, int, int]]", outputs: "Iterable[tuple[bytes, int]]", *,
           version: int = 2, locktime: int = 0) -> Psbt:
    """Creator: a PSBT v0 for inputs [(txid display hex, vout, sequence)] and outputs [(script, sats)]."""
    vin = [(bytes.fromhex(txid)[::-1], vout, seq) for txid, vout, seq in inputs]
    return Psbt.from_unsigned_tx(F.serialize_tx(version, vin, list((a, s) for s, a in outputs), locktime))


def update(psbt: Psbt, *, previous_txs: Iterable[bytes] = (), redeem_scripts: Iterable[bytes] = (),
           witness_scripts: Iterable[bytes] = (), derivations: "Iterable[tuple[bytes, bytes, Sequence[int]]]" = ()) -> Psbt:
    """Updater from loose data, matched by hash: previous transactions to the inputs spending
    them (witness_utxo for segwit spends, non_witness_utxo otherwise), redeem and witness
    scripts to the scripts they hash to, (pubkey, fingerprint, path) derivations to every input
    and output whose script contains the key or its hash."""
    out = psbt.copy()
    prev = {legacy_txid(F.parse_tx(tx, "previous transaction")): tx for tx in previous_txs}
    redeem = {p2sh_script_pubkey(s): s for s in redeem_scripts}
    witness = {p2wsh_script_pubkey(s): s for s in witness_scripts}
    derivations = list(derivations)
    for i in range(out.input_count):
        m = out.inputs[i]
        txid, vout = out.prevout(i)
        tx = prev.get(bytes(txid))
        if tx is None:
            continue
        amount, spk = F.parse_tx(tx, "previous transaction").vout[vout]
        spk = bytes(spk)
        scripts = [spk]
        rs = redeem.get(spk)
        if rs is not None:
            m.set(F.PSBT_IN_REDEEM_SCRIPT, b"", rs)
            scripts.append(rs)
        ws = witness.get(rs if rs is not None else spk)
        if ws is not None:
            m.set(F.PSBT_IN_WITNESS_SCRIPT, b"", ws)
            scripts.append(ws)
        if ws is not None or _is_witness_program(rs if rs is not None else spk):
            m.set(F.PSBT_IN_WITNESS_UTXO, b"", amount.to_bytes(8, "little") + compact_size(len(spk)) + spk)
        else:
            m.set(F.PSBT_IN_NON_WITNESS_UTXO, b"", tx)
        _add_derivations(m, F.PSBT_IN_BIP32_DERIVATION, scripts, derivations)
    for o in range(out.output_count):
        spk = bytes(out.script(o))
        scripts = [spk]
        rs = redeem.get(spk)
        if rs is not None:
            out.outputs[o].set(F.PSBT_OUT_REDEEM_SCRIPT, b"", rs)
            scripts.append(rs)
        ws = witness.get(rs if rs is not None else spk)
        if ws is not None:
            out.outputs[o].set(F.PSBT_OUT_WITNESS_SCRIPT, b"", ws)
            scripts.append(ws)
        _add_derivations(out.outputs[o], F.PSBT_OUT_BIP32_DERIVATION, scripts, derivations)
    out.canonicalize()
    return out


def _is_witness_program(script: bytes) -> bool:
    return 4 <= len(script) <= 42 and (script[0] == 0 or 0x51 <= script[0] <= 0x60) and script[1] == len(script) - 2


def _add_derivations(m: PsbtMap, keytype: int, scripts: "Sequence[bytes]",
                     derivations: "Iterable[tuple[bytes, bytes, Sequence[int]]]") -> None:
    for pubkey, fp, path in derivations:
        h = F.hash160(pubkey)
        if any(pubkey in s or h in s for s in scripts):
            m.set(keytype, pubkey, encode_origin(fp, path))


def set_sighash(psbt: Psbt, sighash: int = SIGHASH_ALL) -> Psbt:
    out = psbt.copy()
    for m in out.inputs:
        m.set(F.PSBT_IN_SIGHASH_TYPE, b"", sighash.to_bytes(4, "little"))
    out.canonicalize()
    return out


def _input_scripts(psbt: Psbt, i: int) -> "tuple[str, bytes, int]":
    """(kind, script code, amount) of input i from its own fields: kind is 'legacy' or 'segwit'."""
    m = psbt.inputs[i]
    spent = spent_output(psbt, i, InvalidPSBT, require_full_tx=False)
    spk = spent.script_pubkey
    rs = m.get(F.PSBT_IN_REDEEM_SCRIPT)
    ws = m.get(F.PSBT_IN_WITNESS_SCRIPT)
    program = spk
    if spk[:2] == b"\xa9\x14" and len(spk) == 23:
        if rs is None or p2sh_script_pubkey(bytes(rs)) != spk:
            raise InvalidPSBT(f"input {i}: P2SH input without a matching redeem script")
        program = bytes(rs)
    if program[:2] == b"\x00\x20" and len(program) == 34:
        if ws is None or p2wsh_script_pubkey(bytes(ws)) != program:
            raise InvalidPSBT(f"input {i}: P2WSH input without a matching witness script")
        return "segwit", bytes(ws), spent.amount
    if program is spk:
        raise InvalidPSBT(f"input {i}: only P2SH, P2WSH and P2SH-P2WSH multisig inputs are supported here")
    return "legacy", program, spent.amount


def sign_input(psbt: Psbt, i: int, secret: bytes, *, grind: bool = True,
               cache: Optional[SighashCache] = None) -> bool:
    """Sign input ``i`` in place with ``secret`` if its key is in the input's script. Returns
    whether it signed. ``grind=False`` gives plain RFC6979 signatures (no low-R grinding)."""
    kind, code, amount = _input_scripts(psbt, i)
    pub = pubkey_of(secret)
    if pub not in code:
        return False
    raw = psbt.inputs[i].get(F.PSBT_IN_SIGHASH_TYPE)
    sighash = SIGHASH_ALL if raw is None else int.from_bytes(raw, "little")
    cache = cache or SighashCache(unsigned_tx(psbt))
    msg = cache.segwit_v0(i, code, amount, sighash) if kind == "segwit" else cache.legacy(i, code, sighash)
    if grind:
        from .common import ecdsa_sign

        der = ecdsa_sign(secret, msg)
    else:
        der = _secp.ecdsa_signature_serialize_der(_secp.ecdsa_sign(msg, secret))
    psbt.inputs[i].set(F.PSBT_IN_PARTIAL_SIG, pub, der + bytes([sighash & 0xFF]))
    return True


def sign(psbt: Psbt, secrets: Iterable[bytes], *, grind: bool = True) -> Psbt:
    """Sign every input each of ``secrets`` can sign; returns a new, canonical PSBT."""
    out = psbt.copy()
    cache = SighashCache(unsigned_tx(out))
    for secret in secrets:
        for i in range(out.input_count):
            sign_input(out, i, secret, grind=grind, cache=cache)
    out.canonicalize()
    return out


def parse_multisig(script: bytes) -> "tuple[int, list[bytes]]":
    """(m, pubkeys) of ``OP_m <pk>... OP_n OP_CHECKMULTISIG``; InvalidPSBT otherwise."""
    def num(b: int) -> Optional[int]:
        return b - 0x50 if 0x51 <= b <= 0x60 else None

    if len(script) < 3 or script[-1] != _OP_CHECKMULTISIG:
        raise InvalidPSBT("not a bare multisig script")
    m = num(script[0])
    keys, pos = [], 1
    while pos < len(script) - 2 and script[pos] in (33, 65):
        size = script[pos]
        keys.append(script[pos + 1: pos + 1 + size])
        pos += 1 + size
    n = num(script[pos]) if pos == len(script) - 2 else None
    if m is None or n is None or n != len(keys) or not 1 <= m <= n:
        raise InvalidPSBT("not a standard OP_m ... OP_n OP_CHECKMULTISIG script")
    return m, keys


def finalize_input(psbt: Psbt, i: int) -> bool:
    """Finalize a multisig input in place from its own scripts and partial signatures (which are
    not verified here). Returns False if it does not have m signatures yet."""
    kind, code, _ = _input_scripts(psbt, i)
    m_req, keys = parse_multisig(code)
    m = psbt.inputs[i]
    sigs = [bytes(s) for s in (m.get(F.PSBT_IN_PARTIAL_SIG, k) for k in keys) if s is not None]
    if len(sigs) < m_req:
        return False
    rs = m.get(F.PSBT_IN_REDEEM_SCRIPT)
    if kind == "legacy":
        set_final_multisig(m, "sh", sigs[:m_req], redeem_script=have(rs))  # _input_scripts checked it
    else:
        set_final_multisig(m, "sh-wsh" if rs is not None else "wsh", sigs[:m_req],
                           redeem_script=bytes(rs) if rs is not None else None, witness_script=code)
    return True


def finalize(psbt: Psbt) -> Psbt:
    out = psbt.copy()
    for i in range(out.input_count):
        if not finalize_input(out, i):
            raise FinalizeError(f"input {i} does not have enough partial signatures")
    out.canonicalize()
    return out
