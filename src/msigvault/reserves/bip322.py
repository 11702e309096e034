"""BIP322 for vaults: the proof PSBT, its full and simple encodings, and verification.

A vault proves control of one of its addresses for a message: :func:`create_proof` builds the
``to_sign`` PSBT (spending the virtual ``to_spend`` given as the input's previous transaction,
or as witness_utxo of 0 sats for taproot), each keyholder signs it with the normal offline
signer (which recognises it, shows the message and that no coins move), the coordinator
combines and finalizes m signatures as for any spend, and :func:`encode` gives the BIP322
*full* (the signed ``to_sign``) and *simple* (its witness stack) encodings. :func:`verify`
checks any BIP322 signature (single-key or multisig, made by anyone) with libbitcoinkernel's
script interpreter: ``to_sign`` must spend ``to_spend``'s output under consensus rules.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Optional

from ..address import address_from_script, script_from_address
from ..errors import ExtractError, InvalidPSBT, MsigvaultError
from ..network import Network
from ..policy.vault import CHANGE, RECEIVE, Vault
from ..psbt import bip322 as B
from ..psbt import fields as F
from ..psbt.extractor import extract, verify_scripts
from ..psbt.psbt import Psbt
from ..psbt.sighash import TxOut
from ..psbt.updater import add_global_xpubs, update_input
from ..script import compact_size
from ..types import Utxo
from .errors import ProofError, ProofInconclusive, ProofInvalid

MAX_SIGNATURE_CHARS = 200_000  # base64 characters of a full or simple signature
MAX_PROOF_INPUTS = 1  # proofs of funds (more inputs) need the UTXO set: not verified here


def _message(message: object) -> bytes:
    if not isinstance(message, str):
        raise ProofError(f"a BIP322 message must be text, not {type(message).__name__}", field="message")
    data = message.encode("utf-8")
    if len(data) > B.MAX_MESSAGE_BYTES:
        raise ProofError(f"the message is {len(data)} bytes, above the limit of {B.MAX_MESSAGE_BYTES}",
                         field="message", limit=B.MAX_MESSAGE_BYTES)
    return data


def create_proof(vault: Vault, message: str, *, branch: int = RECEIVE, index: int = 0) -> Psbt:
    """The unsigned BIP322 ``to_sign`` PSBT proving control of the vault address at (branch, index).

    It carries the vault's derivations (so the normal offline signer can sign it), ``to_spend``
    as the input's previous transaction (witness_utxo of 0 sats for taproot) and the message in
    a proprietary global field, so the signer can show it.
    """
    if not isinstance(vault, Vault):
        raise ProofError(f"vault must be a msigvault Vault, not {type(vault).__name__}", field="vault")
    data = _message(message)
    if branch not in (RECEIVE, CHANGE) or isinstance(index, bool) or not isinstance(index, int) \
            or not 0 <= index < 0x80000000:
        raise ProofError(f"the proof address must be at branch 0 or 1 and an index from 0 to 2^31-1, "
                         f"not branch {branch!r} index {index!r}", field="index")
    spk = vault.derive_branch(branch, index).script_pubkey
    spend = B.to_spend(spk, data)
    txid = B.to_spend_txid(spk, data)
    psbt = Psbt.from_unsigned_tx(B.to_sign(txid))
    add_global_xpubs(psbt, vault)
    update_input(psbt, 0, vault, Utxo(txid[::-1].hex(), 0, 0, spk, branch=branch, index=index, prev_tx=spend))
    B.embed_message(psbt, message)
    psbt.canonicalize()
    return psbt


@dataclass(frozen=True)
class Encoded:
    """A finalized vault proof in BIP322's encodings (base64). ``simple`` is None where BIP322
    allows only the full form (legacy P2SH vaults)."""

    message: str
    address: str
    full: str
    simple: Optional[str]
    verified_by_kernel: bool

    def to_dict(self) -> "dict[str, object]":
        return {"message": self.message, "address": self.address, "full": self.full, "simple": self.simple,
                "verified_by_kernel": self.verified_by_kernel}


def encode(final: Psbt, vault: Vault, *, message: Optional[str] = None) -> Encoded:
    """The full and simple encodings of a finalized proof PSBT, checked as the vault's
    satisfaction (and by libbitcoinkernel when installed); ProofError if it is not a proof."""
    text = message if message is not None else B.embedded_message(final)
    if text is None:
        raise ProofError("the PSBT carries no BIP322 message: give the message it proves")
    _message(text)
    try:
        spent = _spent(final)
    except InvalidPSBT as e:
        raise ProofError(f"not a BIP322 proof PSBT: {e}") from None
    if B.recognise(final, spent, text) is None:
        raise ProofError("this PSBT is not exactly a BIP322 proof of that message (to_sign of the to_spend "
                         "for the message and the input's address): refusing to encode it")
    try:
        tx = extract(final, vault=vault, min_fee_rate=None, max_weight=None)
    except ExtractError as e:
        raise ProofError(f"the proof cannot be encoded: {e}") from None
    address = address_from_script(spent.script_pubkey, vault.network)
    witness = final.inputs[0].get(F.PSBT_IN_FINAL_SCRIPTWITNESS)
    simple = base64.b64encode(bytes(witness)).decode() if witness is not None else None
    return Encoded(text, address, base64.b64encode(tx.raw).decode(), simple, tx.verified_by_kernel)


def _spent(psbt: Psbt) -> TxOut:
    from ..psbt.common import spent_output

    if psbt.input_count != 1:
        raise ProofError(f"a BIP322 proof has one input, this PSBT has {psbt.input_count}")
    return spent_output(psbt, 0, ProofError, require_full_tx=False)


@dataclass(frozen=True)
class Verified:
    """A BIP322 signature that proves ``message`` for ``address``: valid at time ``locktime``
    and age ``sequence`` (both 0 for a simple signature)."""

    message: str
    address: str
    format: str  # "simple" or "full"
    locktime: int
    sequence: int
    vault_branch: Optional[int] = None
    vault_index: Optional[int] = None

    def to_dict(self) -> "dict[str, object]":
        return {"valid": True, "message": self.message, "address": self.address, "format": self.format,
                "locktime": self.locktime, "sequence": self.sequence,
                "vault_branch": self.vault_branch, "vault_index": self.vault_index}


def verify(message: str, address: str, signature: str, network: Network) -> Verified:
    """Check a BIP322 simple or full ``signature`` (base64) of ``message`` for ``address``.

    Returns :class:`Verified`; raises :class:`ProofInvalid` when it does not prove the message
    (BIP322 "invalid") and :class:`ProofInconclusive` when it cannot be checked here (no
    libbitcoinkernel, a proof of funds with more inputs, an unknown to_sign version).
    """
    data = _message(message)
    spk = script_from_address(address, network)
    raw = _decode_base64(signature)
    to_spend_txid = B.to_spend_txid(spk, data)
    stack = _as_witness_stack(raw)
    if stack is not None:
        tx = _simple_to_sign(to_spend_txid, spk, stack)
        fmt, locktime, sequence = "simple", 0, 0
    else:
        tx, locktime, sequence = _full_to_sign(raw, to_spend_txid)
        fmt = "full"
    try:
        checked = verify_scripts(tx, [TxOut(0, spk)])
    except ExtractError as e:
        raise ProofInvalid(f"invalid signature: to_sign does not validly spend to_spend for this message and "
                           f"address ({e})") from None
    if not checked:
        raise ProofInconclusive("inconclusive: libbitcoinkernel (the regtest extra) is not installed, so the "
                                "signature's scripts could not be checked; install msigvault[regtest]")
    return Verified(message, address, fmt, locktime, sequence)


def verify_for_vault(vault: Vault, message: str, address: str, signature: str, *,
                     gap: int = 1_000) -> Verified:
    """:func:`verify` for an address of ``vault`` (among its first ``gap`` of each branch)."""
    spk = script_from_address(address, vault.network)
    found = vault.find(spk, gap=gap)
    if found is None:
        raise ProofInvalid(f"address {address} is not among the vault's first {gap} receive or change "
                           "addresses: this signature says nothing about the vault")
    v = verify(message, address, signature, vault.network)
    return Verified(v.message, v.address, v.format, v.locktime, v.sequence, found[0], found[1])


def _decode_base64(signature: object) -> bytes:
    if not isinstance(signature, str):
        raise ProofInvalid(f"a BIP322 signature is base64 text, not {type(signature).__name__}")
    text = signature.strip()
    if len(text) > MAX_SIGNATURE_CHARS:
        raise ProofInvalid(f"the signature is {len(text)} characters, above the limit of {MAX_SIGNATURE_CHARS}",
                           limit=MAX_SIGNATURE_CHARS)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofInvalid("the signature is not valid base64: copy it again exactly") from None
    if not raw:
        raise ProofInvalid("the signature is empty: unknown format (neither a simple nor a full BIP322 signature)")
    return raw


def _as_witness_stack(raw: bytes) -> "Optional[list[bytes]]":
    """The witness stack ``raw`` is, if it is exactly one (a simple signature)."""
    try:
        stack, pos = F.read_witness_stack(raw, 0, len(raw), "BIP322 simple signature")
    except InvalidPSBT:
        return None
    return stack if pos == len(raw) else None


def _simple_to_sign(to_spend_txid: bytes, spk: bytes, stack: "list[bytes]") -> bytes:
    """The signed to_sign of a simple signature: version 0, locktime 0, sequence 0."""
    script_sig = _wrapped_script_sig(spk, stack)
    return _serialize(0, to_spend_txid, script_sig, 0, stack, 0)


def _wrapped_script_sig(spk: bytes, stack: "list[bytes]") -> bytes:
    """For a P2SH-wrapped segwit address, the scriptSig pushing its redeem script (rebuilt from
    the witness: P2WPKH from the key, P2WSH from the witness script); empty otherwise."""
    import hashlib

    from embit.hashes import hash160

    if not (len(spk) == 23 and spk[:2] == b"\xa9\x14" and spk[-1] == 0x87) or not stack:
        return b""
    for redeem in (b"\x00\x14" + hash160(stack[-1]), b"\x00\x20" + hashlib.sha256(stack[-1]).digest()):
        if hash160(redeem) == spk[2:22]:
            return bytes([len(redeem)]) + redeem
    raise ProofInvalid("invalid signature: the simple signature's witness does not belong to this P2SH address")


def _full_to_sign(raw: bytes, to_spend_txid: bytes) -> "tuple[bytes, int, int]":
    try:
        tx = F.parse_tx(raw, "BIP322 full signature", max_inputs=10_000, max_outputs=10)
    except (InvalidPSBT, MsigvaultError) as e:
        raise ProofInvalid(f"unknown format: neither a simple (witness stack) nor a full (to_sign transaction) "
                           f"BIP322 signature ({e})") from None
    if not tx.vin or tx.vin[0][0] != to_spend_txid or tx.vin[0][1] != 0:
        raise ProofInvalid("invalid signature: the full signature's first input does not spend to_spend of this "
                           "message and address")
    if len(tx.vout) != 1 or tx.vout[0] != (0, B.OP_RETURN):
        raise ProofInvalid("invalid signature: to_sign must have exactly one output, OP_RETURN of 0 sats")
    if len(tx.vin) > MAX_PROOF_INPUTS:
        raise ProofInconclusive(f"inconclusive: this is a proof of funds with {len(tx.vin) - 1} more input(s); "
                                "checking those needs the UTXO set and is not done here")
    if tx.version not in (0, 2):
        raise ProofInconclusive(f"inconclusive: to_sign version {tx.version} (BIP322 upgradeable rule: 0 or 2)")
    return raw, tx.locktime, tx.vin[0][3]


def _serialize(version: int, txid: bytes, script_sig: bytes, sequence: int, stack: "list[bytes]",
               locktime: int) -> bytes:
    parts = [version.to_bytes(4, "little", signed=True)]
    if stack:
        parts.append(b"\x00\x01")
    parts += [b"\x01", txid, (0).to_bytes(4, "little"), compact_size(len(script_sig)), script_sig,
              sequence.to_bytes(4, "little"), b"\x01", (0).to_bytes(8, "little"), b"\x01", B.OP_RETURN]
    if stack:
        parts.append(compact_size(len(stack)))
        parts += [compact_size(len(item)) + item for item in stack]
    parts.append(locktime.to_bytes(4, "little"))
    return b"".join(parts)
