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
