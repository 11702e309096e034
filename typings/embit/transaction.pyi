from typing import Any

from .script import Script

class Witness:
    items: list[bytes]

class TransactionInput:
    txid: bytes
    vout: int
    sequence: int
    script_sig: Script
    witness: Witness
    def __init__(self, txid: bytes, vout: int, script_sig: Script | None = ..., sequence: int = ...,
                 witness: Any = ...) -> None: ...

class TransactionOutput:
    value: int
    script_pubkey: Script
    def __init__(self, value: int, script_pubkey: Script) -> None: ...

class Transaction:
    version: int
    vin: list[TransactionInput]
    vout: list[TransactionOutput]
    locktime: int
    def __init__(self, version: int = ..., vin: list[TransactionInput] = ...,
                 vout: list[TransactionOutput] = ..., locktime: int = ...) -> None: ...
    def serialize(self) -> bytes: ...
