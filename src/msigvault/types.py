"""Small shared value types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .errors import PolicyError


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

    def __post_init__(self) -> None:
        txid = self.txid
        if not isinstance(txid, str) or len(txid) != 64 or not _is_hex(txid):
            raise PolicyError(f"a UTXO's txid is 64 hex digits, not {str(txid)[:70]!r}", field="txid")
        object.__setattr__(self, "txid", txid.lower())
        _check_int(self.vout, "vout", 0, 0xFFFFFFFF)
        _check_int(self.amount, "amount", 0, MAX_MONEY)
        if not isinstance(self.script_pubkey, bytes):
            raise PolicyError(f"a UTXO's script_pubkey is bytes, not {type(self.script_pubkey).__name__}",
                              field="script_pubkey")
        if self.branch is not None:
            _check_int(self.branch, "branch", 0, 1)
        if self.index is not None:
            _check_int(self.index, "index", 0, 0x7FFFFFFF)
        if self.prev_tx is not None and not isinstance(self.prev_tx, bytes):
            raise PolicyError(f"a UTXO's prev_tx is the serialized transaction (bytes) or None, not "
                              f"{type(self.prev_tx).__name__}", field="prev_tx")

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"

    def to_dict(self) -> "dict[str, Any]":
        return {"txid": self.txid, "vout": self.vout, "amount": self.amount,
                "script_pubkey": self.script_pubkey.hex(), "branch": self.branch, "index": self.index,
                "prev_tx": self.prev_tx.hex() if self.prev_tx is not None else None}

    @classmethod
    def from_dict(cls, d: "dict[str, Any]") -> "Utxo":
        """Parse a UTXO record (as written by :meth:`to_dict`); raise MsigvaultError if malformed."""
        from .errors import MsigvaultError

        if not isinstance(d, dict):
            raise MsigvaultError(f"a UTXO record is a JSON object, not {type(d).__name__}")
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


MAX_MONEY = 21_000_000 * 100_000_000  # sats: no output can hold more


def _is_hex(text: str) -> bool:
    return text.isascii() and all(c in "0123456789abcdefABCDEF" for c in text)


def _check_int(value: object, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"a UTXO's {name} is a whole number from {low} to {high}, not {value!r}", field=name)
