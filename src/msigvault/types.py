"""Small shared value types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Utxo:
    """An unspent output the vault can spend.

    ``txid`` is the usual display (big-endian) hex. ``branch``/``index`` say where in the vault
    the output's script derives from (branch 0 = receive, 1 = change). ``prev_tx`` is the full
    serialized previous transaction when known; signers need it for segwit v0 inputs
    (CVE-2020-14199).
    """

    txid: str
    vout: int
    amount: int
    script_pubkey: bytes
    branch: Optional[int] = None
    index: Optional[int] = None
    prev_tx: Optional[bytes] = None

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"

    def to_dict(self) -> dict:
        return {"txid": self.txid, "vout": self.vout, "amount": self.amount,
                "script_pubkey": self.script_pubkey.hex(), "branch": self.branch, "index": self.index,
                "prev_tx": self.prev_tx.hex() if self.prev_tx is not None else None}

    @classmethod
    def from_dict(cls, d: dict) -> "Utxo":
        """Parse a UTXO record (as written by :meth:`to_dict`); raise MsigvaultError if malformed."""
        from .errors import MsigvaultError

        try:
            txid = str(d["txid"]).lower()
            if len(txid) != 64:
                raise ValueError("txid must be 64 hex digits")
            bytes.fromhex(txid)
            vout, amount = d["vout"], d["amount"]
            if not isinstance(vout, int) or not isinstance(amount, int) or vout < 0 or amount <= 0:
                raise ValueError("vout and amount must be positive integers")
            branch, index = d.get("branch"), d.get("index")
            prev = d.get("prev_tx")
            return cls(txid, vout, amount, bytes.fromhex(d["script_pubkey"]), branch, index,
                       bytes.fromhex(prev) if prev else None)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MsigvaultError(f"bad UTXO record {str(d)[:80]}: {e}") from None
