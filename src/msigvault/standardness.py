"""Mempool policy a broadcaster needs: consensus (libbitcoinkernel) does not check these.

Bitcoin Core's defaults: minimum relay fee 1 sat/vB (0.1 sat/vB since Core 29; we keep the
stricter 1 sat/vB), dust limit from the 3 sat/vB dust relay fee, standard output scripts, and a
maximum standard transaction weight of 400,000 WU.
"""

from __future__ import annotations

MIN_RELAY_FEE_RATE = 1.0  # sat/vB
DUST_RELAY_FEE_RATE = 3  # sat/vB, Core's -dustrelayfee default
MAX_STANDARD_TX_WEIGHT = 400_000
MAX_OP_RETURN_RELAY = 83  # bytes of scriptPubKey (Core <= 29 default)


def output_kind(script_pubkey: bytes) -> str:
    """Classify a scriptPubKey: p2pkh, p2sh, p2wpkh, p2wsh, p2tr, witness_unknown, op_return, nonstandard."""
    s = script_pubkey
    if len(s) == 25 and s[:3] == b"\x76\xa9\x14" and s[23:] == b"\x88\xac":
        return "p2pkh"
    if len(s) == 23 and s[:2] == b"\xa9\x14" and s[22] == 0x87:
        return "p2sh"
    if len(s) == 22 and s[:2] == b"\x00\x14":
        return "p2wpkh"
    if len(s) == 34 and s[:2] == b"\x00\x20":
        return "p2wsh"
    if len(s) == 34 and s[:2] == b"\x51\x20":
        return "p2tr"
    if 4 <= len(s) <= 42 and 0x51 <= s[0] <= 0x60 and s[1] == len(s) - 2:
        return "witness_unknown"
    if s[:1] == b"\x6a":
        return "op_return"
    return "nonstandard"


def dust_threshold(script_pubkey: bytes) -> int:
    """Smallest non-dust amount for this output (Core's GetDustThreshold at 3 sat/vB)."""
    kind = output_kind(script_pubkey)
    if kind == "op_return":
        return 0
    size = 8 + 1 + len(script_pubkey)  # the output itself
    if kind in ("p2wpkh", "p2wsh", "p2tr", "witness_unknown"):
        size += 32 + 4 + 1 + (107 // 4) + 4  # spending input, witness discounted
    else:
        size += 32 + 4 + 1 + 107 + 4
    return size * DUST_RELAY_FEE_RATE


def is_dust(amount: int, script_pubkey: bytes) -> bool:
    return amount < dust_threshold(script_pubkey)


def is_standard_output(script_pubkey: bytes) -> bool:
    kind = output_kind(script_pubkey)
    if kind == "op_return":
        return len(script_pubkey) <= MAX_OP_RETURN_RELAY
    return kind != "nonstandard"
