"""Amounts as people type them, and one way of showing them."""

import pytest

from msigvault.amounts import InvalidAmount, format_amount, format_btc, parse_amount


@pytest.mark.parametrize("text,sats", [
    ("0.5btc", 50_000_000), ("0.5 BTC", 50_000_000), ("0.00000001btc", 1), ("21000000btc", 21_000_000 * 10**8),
    ("50000sat", 50_000), ("50000 sats", 50_000), ("50000", 50_000), ("1,000,000", 1_000_000),
    ("0.1btc", 10_000_000), ("1_000sat", 1_000),
])
def test_parse(text, sats):
    assert parse_amount(text) == sats


@pytest.mark.parametrize("text", ["0.000000001btc", "0.5", "1.5sat", "-1", "0", "0btc", "21000000.00000001btc",
                                  "abc", "1e5", "5 bitcoin", "", "0x10", "١٢٣"])
def test_refused(text):
    with pytest.raises(InvalidAmount):
        parse_amount(text)


def test_format():
    assert format_btc(150_000) == "0.00150000 BTC"
    assert format_amount(65_000_000) == "0.65000000 BTC (65,000,000 sat)"
    assert format_btc(21_000_000 * 10**8) == "21,000,000.00000000 BTC"
    assert format_btc(-1) == "-0.00000001 BTC"
