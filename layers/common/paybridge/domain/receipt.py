"""54-FZ fiscal receipts: the line items of an invoice and what a receipt needs, defined once.

Names follow the fiscal data format (FFD) as T-Bank writes them; each provider adapter maps them to its own codes
(YooKassa: `vat_code` numbers, `tax_system_code` numbers) in one table of its own."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from paybridge.domain.errors import ReceiptError
from paybridge.domain.model import Model

#: VAT rates. 22% and 22/122 are the general rates since 1 January 2026; 20% stays for earlier documents.
VatRate = Literal[
    "none", "vat0", "vat5", "vat7", "vat10", "vat20", "vat22", "vat105", "vat107", "vat110", "vat120", "vat122"
]
#: Taxation systems (`Taxation` at T-Bank, `tax_system_code` 1..6 at YooKassa).
Taxation = Literal["osn", "usn_income", "usn_income_outcome", "envd", "esn", "patent"]
#: Payment method (FFD tag 1214).
PaymentMethod = Literal[
    "full_prepayment", "prepayment", "advance", "full_payment", "partial_payment", "credit", "credit_payment"
]
#: Payment object (FFD tag 1212).
PaymentObject = Literal[
    "commodity",
    "excise",
    "job",
    "service",
    "gambling_bet",
    "gambling_prize",
    "lottery",
    "lottery_prize",
    "intellectual_activity",
    "payment",
    "agent_commission",
    "composite",
    "another",
]
Quantity = Annotated[Decimal, Field(gt=0, le=Decimal("99999.999"), max_digits=8, decimal_places=3)]

MAX_ITEMS = 100


class ReceiptItem(Model):
    """One line of the receipt. `price` is per unit in minor units; the line's amount is price × quantity,
    which must come to whole kopecks."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    price: Annotated[int, Field(strict=True, gt=0, le=10**13)]
    quantity: Quantity = Decimal(1)
    vat: VatRate
    payment_method: PaymentMethod = "full_prepayment"
    payment_object: PaymentObject = "service"

    @field_validator("quantity", mode="before")
    @classmethod
    def _no_float_noise(cls, value: object) -> object:
        # JSON numbers arrive as float; go through str so 1.1 stays 1.1 and is checked for 3 decimals
        return Decimal(str(value)) if isinstance(value, float) else value

    @model_validator(mode="after")
    def _whole_kopecks(self) -> ReceiptItem:
        exact = Decimal(self.price) * self.quantity
        if exact != exact.to_integral_value():
            raise ValueError(f"price × quantity of {self.name!r} is {exact} minor units: it must be whole")
        return self

    @property
    def amount(self) -> int:
        return int((Decimal(self.price) * self.quantity).to_integral_value(rounding=ROUND_HALF_UP))


ReceiptItems = Annotated[tuple[ReceiptItem, ...], Field(max_length=MAX_ITEMS)]


def items_total(items: tuple[ReceiptItem, ...]) -> int:
    return sum(item.amount for item in items)


def check_items_sum(items: tuple[ReceiptItem, ...], amount: int, what: str = "the amount") -> None:
    total = items_total(items)
    if items and total != amount:
        raise ReceiptError(f"the items add up to {total} minor units, but {what} is {amount}")


class FiscalSettings(Model):
    """A tenant's receipt settings. When set, every payment and refund carries a receipt."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    taxation: Taxation
    ffd_version: Literal["1.05", "1.2"] = "1.05"
    #: The line used when an invoice comes without items (e.g. from a CRM deal with only a sum).
    default_vat: VatRate = "none"
    default_payment_object: PaymentObject = "service"
    default_payment_method: PaymentMethod = "full_prepayment"


class FiscalReceipt(Model):
    """What travels to the provider with a payment or a refund."""

    model_config = ConfigDict(frozen=True)
    taxation: Taxation
    ffd_version: Literal["1.05", "1.2"]
    email: str | None = None
    phone: str | None = None
    items: tuple[ReceiptItem, ...] = Field(min_length=1)

    @property
    def total(self) -> int:
        return items_total(self.items)


def build_receipt(
    settings: FiscalSettings,
    items: tuple[ReceiptItem, ...],
    amount: int,
    email: str | None,
    phone: str | None,
    fallback_name: str,
) -> FiscalReceipt:
    """The receipt for `amount`: the given items (which must add up to it) or one line named `fallback_name`."""
    if not email and not phone:
        raise ReceiptError("a 54-FZ receipt needs the customer's email or phone")
    if not items:
        items = (
            ReceiptItem(
                name=fallback_name[:128] or "Оплата",
                price=amount,
                vat=settings.default_vat,
                payment_method=settings.default_payment_method,
                payment_object=settings.default_payment_object,
            ),
        )
    check_items_sum(items, amount)
    return FiscalReceipt(
        taxation=settings.taxation, ffd_version=settings.ffd_version, email=email, phone=phone, items=items
    )


def refund_items(items: tuple[ReceiptItem, ...], invoice_amount: int, refund_amount: int) -> tuple[ReceiptItem, ...]:
    """The items of a refund receipt when the caller gives none: all of them for a full refund; for a partial refund
    only when it equals whole lines (the first lines that add up to it exactly) — otherwise the caller must say."""
    if not items or refund_amount == invoice_amount:
        return items
    chosen: list[ReceiptItem] = []
    total = 0
    for item in items:
        if total + item.amount <= refund_amount:
            chosen.append(item)
            total += item.amount
        if total == refund_amount:
            return tuple(chosen)
    raise ReceiptError(
        f"a partial refund of {refund_amount} minor units does not match whole invoice lines: give the refund's items"
    )
