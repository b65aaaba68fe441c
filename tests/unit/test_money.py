"""Money helpers (paybridge.domain.money): formatting for people and the decimal wire format."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paybridge.domain.money import format_money, from_decimal_string, to_decimal_string

MAX_MINOR = 10**13


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (150050, "RUB", "1 500.50 RUB"),
        (0, "RUB", "0.00 RUB"),
        (1, "USD", "0.01 USD"),
        (99, "EUR", "0.99 EUR"),
        (100, "RUB", "1.00 RUB"),
        (100_000_000, "RUB", "1 000 000.00 RUB"),
        (123_456_789_01, "RUB", "123 456 789.01 RUB"),
        (-150050, "RUB", "-1 500.50 RUB"),
        (-1, "RUB", "-0.01 RUB"),
    ],
)
def test_format_money(amount: int, currency: str, expected: str) -> None:
    assert format_money(amount, currency) == expected


def test_format_money_is_the_grouping_format_at_every_boundary() -> None:
    # the fast path below a million (joined from tables) writes what the format spec with grouping writes
    def reference(amount: int, currency: str) -> str:
        sign = "-" if amount < 0 else ""
        return f"{sign}{abs(amount) // 100:,}.{abs(amount) % 100:02d} {currency}".replace(",", " ")

    amounts = {*range(0, 200_000), *(10**k + d for k in range(16) for d in range(-101, 102))}
    for amount in sorted(amounts | {-amount for amount in amounts}):
        for currency in ("RUB", "X,Y"):
            assert format_money(amount, currency) == reference(amount, currency), (amount, currency)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [(0, "0.00"), (5, "0.05"), (50, "0.50"), (100, "1.00"), (150050, "1500.50"), (10**13, "100000000000.00")],
)
def test_to_decimal_string(amount: int, expected: str) -> None:
    # no thousands separators on the wire
    assert to_decimal_string(amount) == expected


@pytest.mark.parametrize(
    ("amount", "expected"), [(-150, "-1.50"), (-1, "-0.01"), (-100, "-1.00"), (-150050, "-1500.50")]
)
def test_to_decimal_string_negative(amount: int, expected: str) -> None:
    # Regression: floor divmod once rendered -150 as "-2.50"
    assert to_decimal_string(amount) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1500.5", 150050),
        ("1500.50", 150050),
        ("1500", 150000),
        ("0.01", 1),
        ("0", 0),
        ("0.00", 0),
        ("1,5", 150),  # comma as the decimal separator (1C files)
        ("  12.30 \n", 1230),
        (".5", 50),
        ("1.", 100),
        ("007", 700),
        ("100000000000.00", 10**13),
    ],
)
def test_from_decimal_string_valid(text: str, expected: int) -> None:
    assert from_decimal_string(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.234", "more than two decimals"),
        ("0.001", "more than two decimals"),
        ("-1", "not a money amount"),
        ("+1", "not a money amount"),
        ("abc", "not a money amount"),
        ("", "not a money amount"),
        ("   ", "not a money amount"),
        (".", "not a money amount"),
        ("1.2.3", "not a money amount"),
        ("1,000.50", "not a money amount"),
        ("1 000", "not a money amount"),
        ("1e3", "not a money amount"),
        ("12a", "not a money amount"),
    ],
)
def test_from_decimal_string_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        from_decimal_string(text)
    assert repr(text) in str(caught.value)  # the message quotes the input


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=MAX_MINOR))
def test_decimal_string_round_trip(amount: int) -> None:
    text = to_decimal_string(amount)
    assert from_decimal_string(text) == amount
    major, _, minor = text.partition(".")
    assert len(minor) == 2
    assert major == str(amount // 100)


@settings(max_examples=300)
@given(
    major=st.integers(min_value=0, max_value=10**11),
    minor=st.sampled_from(["", "0", "5", "05", "50", "99"]),
    dot=st.booleans(),
)
def test_from_decimal_string_agrees_with_decimal(major: int, minor: str, dot: bool) -> None:
    text = f"{major}.{minor}" if dot or minor else str(major)
    expected = int(Decimal(text.rstrip(".") or "0") * 100)
    parsed = from_decimal_string(text)
    assert parsed == expected
    assert to_decimal_string(parsed) == f"{Decimal(expected) / 100:.2f}"


@settings(max_examples=300)
@given(st.text(max_size=12))
def test_from_decimal_string_returns_non_negative_or_raises_value_error(text: str) -> None:
    try:
        value = from_decimal_string(text)
    except ValueError:
        return
    assert isinstance(value, int)
    assert value >= 0
