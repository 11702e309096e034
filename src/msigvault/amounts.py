"""Amounts: parse what people type (``0.5btc``, ``50000sat``, ``50000``) and show sats one way
everywhere (``0.00150000 BTC (150,000 sat)``).

Amounts are whole satoshis (int) inside msigvault; BTC strings are parsed as decimals, never as
floats, so ``0.1btc`` is exactly 10,000,000 sats.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import MsigvaultError

SATS_PER_BTC = 100_000_000
MAX_MONEY = 21_000_000 * SATS_PER_BTC

_AMOUNT = re.compile(r"(?i)^\s*([0-9][0-9_,]{0,24}(?:\.[0-9]{1,12})?)\s*(btc|sats?|)\s*$")


class InvalidAmount(MsigvaultError):
    """An amount is malformed, has more than 8 decimals of BTC, or is out of range."""

    code = "amount.invalid"


def parse_amount(text: str) -> int:
    """Sats from ``"0.5btc"``, ``"0.5 BTC"``, ``"50000sat"``, ``"50000sats"`` or ``"50000"`` (sats).

    Refuses fractions of a sat, negative amounts, zero and anything above 21 million BTC.
    """
    if not isinstance(text, str):
        raise InvalidAmount("an amount is text like 0.5btc, 50000sat or 50000 (sats)")
    m = _AMOUNT.match(text)
    if not m:
        raise InvalidAmount(f"amount {text[:40]!r} is not like 0.5btc, 50000sat or 50000 (sats)")
    number, unit = m.group(1).replace("_", "").replace(",", ""), m.group(2).lower()
    try:
        value = Decimal(number)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise InvalidAmount(f"amount {text[:40]!r} is not a number") from None
    sats = value * SATS_PER_BTC if unit == "btc" else value
    if sats != sats.to_integral_value():
        raise InvalidAmount(
            f"amount {text[:40]!r} is not a whole number of sats"
            + (" (BTC has at most 8 decimals)" if unit == "btc" else "")
        )
    whole = int(sats)
    if not 0 < whole <= MAX_MONEY:
        raise InvalidAmount(f"amount {text[:40]!r} must be more than 0 and at most 21,000,000 BTC")
    return whole


def format_btc(sats: int) -> str:
    """``0.00150000 BTC``"""
    sign = "-" if sats < 0 else ""
    whole, frac = divmod(abs(sats), SATS_PER_BTC)
    return f"{sign}{whole:,}.{frac:08d} BTC"


def format_amount(sats: int) -> str:
    """``0.00150000 BTC (150,000 sat)``: both units, the same way everywhere."""
    return f"{format_btc(sats)} ({sats:,} sat)"
