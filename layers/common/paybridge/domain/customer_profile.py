"""Payments on the customer's profile: the money facts of an invoice, as the CRM contact (or company) of its deal
shows them — one timeline entry per fact, and the running totals a tenant may map to the entity's fields.

Pure: what a fact is (`MoneyFact`, each keyed by its invoice and the provider's reference, so the same payment is
one fact however often it is told), the facts of an invoice (`facts_of`), how one fact changes an entity's totals
(`ProfileTotals.count`: a payment adds, a refund subtracts, per currency, in integer minor units) and the entry's
text. Counting once per fact is the ledger's job (`storage/customer_profiles.py`, a conditional write keyed by the
fact's id); resolving the entity and writing to the CRM is the outbox consumer's (`app/deal_delivery.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from paybridge.domain.invoice import Invoice, PaymentMethod
from paybridge.domain.model import Model
from paybridge.domain.money import Currency, PositiveMinorUnits, format_money

ProfileEntityKind = Literal["contact", "company"]
FactKind = Literal["payment", "refund"]


class MoneyFact(Model):
    """One payment received or one refund confirmed for an invoice, as it stands on the invoice."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: FactKind
    invoice_id: str
    invoice_number: str
    ref: str = Field(min_length=1, max_length=300)
    amount: PositiveMinorUnits
    currency: Currency
    method: PaymentMethod | None = None

    @property
    def fact_id(self) -> str:
        """Stable whoever tells it (a retried notification, a re-check, a redelivered outbox message)."""
        return f"{self.invoice_id}#{self.kind}#{self.ref}"

    @property
    def signed_amount(self) -> int:
        return self.amount if self.kind == "payment" else -self.amount


def facts_of(invoice: Invoice) -> tuple[MoneyFact, ...]:
    """Every money fact the invoice holds: its receipts, then its confirmed refunds (sorted by reference, so the same
    invoice always plans the same op)."""
    common = {"invoice_id": invoice.invoice_id, "invoice_number": invoice.number, "currency": invoice.currency}
    payments = [
        MoneyFact(kind="payment", ref=ref, amount=amount, method=invoice.receipt_methods.get(ref), **common)
        for ref, amount in sorted(invoice.receipts.items())
        if amount > 0
    ]
    refunds = [
        MoneyFact(kind="refund", ref=ref, amount=amount, **common)
        for ref, amount in sorted(invoice.refunds.items())
        if amount > 0
    ]
    return (*payments, *refunds)


class ProfileEntity(Model):
    """The CRM entity a deal's payments go to: its main contact, or its company."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ProfileEntityKind
    entity_id: str = Field(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")


def choose_entity(preferred: ProfileEntityKind, contact_id: str | None, company_id: str | None) -> ProfileEntity | None:
    """The tenant's preferred entity when the deal has one, else the other; None when the deal has neither."""
    ids = {"contact": contact_id, "company": company_id}
    other: ProfileEntityKind = "company" if preferred == "contact" else "contact"
    for kind in (preferred, other):
        entity_id = ids[kind]
        if entity_id:
            return ProfileEntity(kind=kind, entity_id=entity_id)
    return None


class ProfileTotals(Model):
    """An entity's running totals: what it paid net of refunds, per currency, and its last payment."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    total_paid: dict[str, int] = Field(default_factory=dict)  # currency → minor units (may go below 0 transiently)
    last_payment_at: datetime | None = None
    last_payment_amount: int | None = None
    last_payment_currency: str | None = None
    #: Facts counted (for the ledger's optimistic concurrency).
    version: int = 0

    def count(self, fact: MoneyFact, at: datetime) -> ProfileTotals:
        """The totals after `fact` (counted once: the caller makes sure of that by the fact's id)."""
        totals = {**self.total_paid, fact.currency: self.total_paid.get(fact.currency, 0) + fact.signed_amount}
        update: dict[str, object] = {"total_paid": totals, "version": self.version + 1}
        if fact.kind == "payment" and (self.last_payment_at is None or at >= self.last_payment_at):
            update |= {
                "last_payment_at": at,
                "last_payment_amount": fact.amount,
                "last_payment_currency": fact.currency,
            }
        return self.model_copy(update=update)


class ProfileWrite(Model):
    """What the CRM adapter writes to the entity for one deal update: the entries of the facts not shown yet, and
    the entity's totals as they now stand (absolute values: writing them again is harmless). `currency` is the
    currency whose total the fields show (the latest fact's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    entity: ProfileEntity
    entries: tuple[str, ...] = ()
    currency: Currency
    total_paid: int
    last_payment_at: datetime | None = None
    last_payment_amount: int | None = None
    last_payment_currency: str | None = None


_METHOD = {
    "card": "картой",
    "sbp": "через СБП",
    "bank_transfer": "банковским переводом",
    "saved_method": "списанием с сохранённой карты",
    "manual": "вне PayBridge",
}


def entry_text(fact: MoneyFact, totals: ProfileTotals) -> str:
    """`PayBridge: оплата 1 500.00 RUB картой по счёту № 42. Всего оплачено: 3 000.00 RUB.`"""
    total = format_money(totals.total_paid.get(fact.currency, 0), fact.currency)
    amount = format_money(fact.amount, fact.currency)
    if fact.kind == "refund":
        return f"PayBridge: возврат {amount} по счёту № {fact.invoice_number}. Всего оплачено: {total}."
    method = f" {_METHOD[fact.method]}" if fact.method in _METHOD else ""
    return f"PayBridge: оплата {amount}{method} по счёту № {fact.invoice_number}. Всего оплачено: {total}."
