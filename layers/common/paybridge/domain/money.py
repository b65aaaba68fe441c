"""Money is an integer number of minor units (kopecks, cents) with an ISO 4217 currency code."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MinorUnits = Annotated[int, Field(ge=0, le=10**13, description="Amount in minor units (kopecks, cents)")]
PositiveMinorUnits = Annotated[int, Field(gt=0, le=10**13, description="Amount in minor units, > 0")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["RUB"])]


#: ".00 " … ".99 ", and " 000" … " 999": `format_money` below a million joins these (a format spec with grouping,
#: and the replacement of its commas, cost more than half of the reason of a reconciled line).
_CENTS = tuple(f".{cents:02d} " for cents in range(100))
_THOUSANDS = tuple(f" {units:03d}" for units in range(1000))


def format_money(amount: int, currency: str) -> str:
    """`150050, "RUB"` -> `"1 500.50 RUB"` (for people; never parsed back)."""
    if 0 <= amount < 100_000_000 and "," not in currency:  # the same text as below, built from the tables above
        major = amount // 100
        if major < 1000:
            return f"{major}{_CENTS[amount % 100]}{currency}"
        return f"{major // 1000}{_THOUSANDS[major % 1000]}{_CENTS[amount % 100]}{currency}"
    if amount < 0:
        return "-" + format_money(-amount, currency)
    return f"{amount // 100:,}.{amount % 100:02d} {currency}".replace(",", " ")


def to_decimal_string(amount: int) -> str:
    """`150050` -> `"1500.50"`: the wire format of YooKassa and 1C files."""
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 100)
    return f"{sign}{major}.{minor:02d}"


def from_decimal_string(value: str) -> int:
    """`"1500.5"` -> `150050`; rejects more than two decimals, signs and junk (ValueError)."""
    text = value.strip().replace(",", ".")
    if not text or text.count(".") > 1 or not text.replace(".", "").isdigit():
        raise ValueError(f"not a money amount: {value!r}")
    major, _, minor = text.partition(".")
    if len(minor) > 2:
        raise ValueError(f"more than two decimals: {value!r}")
    return int(major or "0") * 100 + int((minor + "00")[:2])
