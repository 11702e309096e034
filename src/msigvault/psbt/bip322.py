"""BIP322 virtual transactions and the exact shape of a proof-of-control PSBT.

``to_spend`` commits to a message and an address's scriptPubKey; ``to_sign`` spends it into a
single OP_RETURN output of 0 sats. The signer (:mod:`.signer`) treats a PSBT as a proof only if
:func:`recognise` finds exactly that shape, with the ``to_spend`` txid it recomputes itself from
the message and the coin's script; anything else is a normal spend with every normal check.
Pure builders only: the reserves layer (``msigvault.reserves``) signs, encodes and verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from embit.hashes import tagged_hash

from ..errors import SignerRefusal
from ..script import compact_size
from . import fields as F
from .psbt import Psbt
from .sighash import SIGHASH_ALL, SIGHASH_DEFAULT, TxOut

TAG = "BIP0322-signed-message"
OP_RETURN = b"\x6a"
MAX_MESSAGE_BYTES = 16_384
#: PSBT_GLOBAL_PROPRIETARY key carrying the message (identifier "msigvault", subtype 0x22)
MESSAGE_KEY = compact_size(9) + b"msigvault" + b"\x22"


def message_hash(message: bytes) -> bytes:
    """BIP340-tagged hash of the message, tag ``BIP0322-signed-message``."""
    return tagged_hash(TAG, bytes(message))


def to_spend(script_pubkey: bytes, message: bytes) -> bytes:
    """The serialized ``to_spend`` transaction (version 0, locktime 0, no witness)."""
    script_sig = b"\x00\x20" + message_hash(message)
    return b"".join([
        (0).to_bytes(4, "little"), b"\x01", b"\x00" * 32, b"\xff\xff\xff\xff",
        compact_size(len(script_sig)), script_sig, (0).to_bytes(4, "little"),
        b"\x01", (0).to_bytes(8, "little"), compact_size(len(script_pubkey)), bytes(script_pubkey),
        (0).to_bytes(4, "little"),
    ])


def to_spend_txid(script_pubkey: bytes, message: bytes) -> bytes:
    """txid of ``to_spend`` in internal byte order."""
    raw = F.parse_tx(to_spend(script_pubkey, message), "BIP322 to_spend")
    return raw.txid()


def to_sign(spend_txid: bytes, *, version: int = 0, locktime: int = 0, sequence: int = 0) -> bytes:
    """The unsigned ``to_sign`` transaction spending ``to_spend:0`` into one OP_RETURN of 0 sats."""
    return F.serialize_tx(version, [(bytes(spend_txid), 0, sequence)], [(0, OP_RETURN)], locktime)


def check_message(message: object) -> bytes:
    """The message as UTF-8 bytes, within :data:`MAX_MESSAGE_BYTES`; SignerRefusal otherwise."""
    if isinstance(message, str):
        data = message.encode("utf-8")
    else:
        raise SignerRefusal(f"a BIP322 message must be text, not {type(message).__name__}", field="message")
    if len(data) > MAX_MESSAGE_BYTES:
        raise SignerRefusal(f"the BIP322 message is {len(data)} bytes, above the limit of {MAX_MESSAGE_BYTES}",
                            field="message", limit=MAX_MESSAGE_BYTES)
    return data


def embedded_message(psbt: Psbt) -> Optional[str]:
    """The message a proof PSBT carries (msigvault's proprietary global field), or None."""
    raw = psbt.globals.get(F.PSBT_GLOBAL_PROPRIETARY, MESSAGE_KEY)
    if raw is None or len(raw) > MAX_MESSAGE_BYTES:
        return None
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def embed_message(psbt: Psbt, message: str) -> None:
    psbt.globals.set(F.PSBT_GLOBAL_PROPRIETARY, MESSAGE_KEY, check_message(message))


@dataclass(frozen=True)
class ProofShape:
    """A PSBT recognised as a BIP322 proof: the message it proves for and the coin's script."""

    message: str
    script_pubkey: bytes
    to_spend_txid: str  # display order (hex)


def recognise(psbt: Psbt, spent: TxOut, message: Optional[str] = None) -> Optional[ProofShape]:
    """The proof ``psbt`` is, or None if it is anything but exactly a BIP322 ``to_sign``.

    ``spent`` is the output its one input spends (from its UTXO fields, already checked against
    the outpoint). ``message`` is the message the keyholder was told to expect; the PSBT's
    embedded message, if any, must be the same. The ``to_spend`` txid is recomputed here from
    the message and ``spent``'s script, so no real coin can pass (its txid would have to be that
    hash).
    """
    embedded = embedded_message(psbt)
    if message is not None and embedded is not None and message != embedded:
        return None
    text = message if message is not None else embedded
    if text is None or len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
        return None
    if psbt.input_count != 1 or psbt.output_count != 1:
        return None
    if psbt.tx_version != 0 or psbt.locktime != 0 or psbt.sequence(0) != 0:
        return None
    if psbt.amount(0) != 0 or bytes(psbt.script(0)) != OP_RETURN:
        return None
    raw = psbt.inputs[0].get(F.PSBT_IN_SIGHASH_TYPE)
    if raw is not None and int.from_bytes(raw, "little") not in (SIGHASH_ALL, SIGHASH_DEFAULT):
        return None
    if spent.amount != 0:
        return None
    txid, vout = psbt.prevout(0)
    expected = to_spend_txid(spent.script_pubkey, text.encode("utf-8"))
    if vout != 0 or bytes(txid) != expected:
        return None
    return ProofShape(text, bytes(spent.script_pubkey), expected[::-1].hex())
