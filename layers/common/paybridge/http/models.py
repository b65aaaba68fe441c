"""Request and response models of the HTTP API (separate from the domain entity; mapped explicitly)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from paybridge.domain.invoice import (
    AuditEntry,
    Customer,
    DealId,
    Invoice,
    InvoiceId,
    InvoiceNumber,
    InvoicePart,
    InvoiceState,
    NewInvoice,
    RefundStatus,
)
from paybridge.domain.money import Currency
from paybridge.domain.receipt import MAX_ITEMS, ReceiptItem, check_items_sum
from paybridge.domain.staged import StageSpec
from paybridge.domain.subscriptions import PLAN_MAX_LENGTH
from paybridge.http.api_model import ApiModel

INVOICE_NUMBER_MAX = 40


StrictMinorUnits = Annotated[
    int, Field(strict=True, gt=0, le=10**13, description="Amount in minor units (kopecks, cents); integers only")
]


class CreateInvoiceBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    deal_id: DealId
    number: InvoiceNumber = Field(description="Invoice number; the same deal + number returns the same invoice")
    amount: StrictMinorUnits
    currency: Currency | None = Field(default=None, description="Defaults to the tenant's currency")
    description: str = Field(default="", max_length=250)
    customer: Customer = Field(default_factory=Customer)
    lifetime_seconds: int | None = Field(
        default=None, ge=1, le=90 * 24 * 3600, description="Link lifetime; defaults to the tenant's"
    )
    items: list[ReceiptItem] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="54-FZ receipt lines; price × quantity of all lines must add up to `amount`",
    )

    @model_validator(mode="after")
    def _items_add_up(self) -> CreateInvoiceBody:
        check_items_sum(tuple(self.items), self.amount)
        return self

    def to_domain(self, default_currency: str) -> NewInvoice:
        fields = {
            "deal_id": self.deal_id,
            "number": self.number,
            "amount": self.amount,
            "currency": self.currency or default_currency,
            "description": self.description,
            "customer": self.customer,
            "items": tuple(self.items),
        }
        if self.lifetime_seconds is not None:
            fields["lifetime_seconds"] = self.lifetime_seconds
        return NewInvoice.model_validate(fields)


class ScheduleBody(ApiModel):
    """A deal paid in stages: the total and its parts (percents or amounts); invoices `<number>/1`, `<number>/2`…"""

    model_config = ConfigDict(extra="forbid")
    number: InvoiceNumber = Field(description="The schedule's number; each stage's invoice is `<number>/<k>`")
    total: StrictMinorUnits
    currency: Currency | None = Field(default=None, description="Defaults to the tenant's currency")
    description: str = Field(default="", max_length=250)
    customer: Customer = Field(default_factory=Customer)
    lifetime_seconds: int | None = Field(default=None, ge=1, le=90 * 24 * 3600)
    stages: list[StageSpec] = Field(min_length=2, max_length=12)

    @model_validator(mode="after")
    def _numbers_fit(self) -> ScheduleBody:
        # each stage's invoice is `<number>/<k>`, and an invoice number has at most 40 characters
        longest = f"{self.number}/{len(self.stages)}"
        if len(longest) > INVOICE_NUMBER_MAX:
            raise ValueError(
                f"the number leaves no room for the stage suffix: {longest!r} is over {INVOICE_NUMBER_MAX} characters"
            )
        return self

    def template(self, deal_id: str, default_currency: str) -> NewInvoice:
        fields: dict[str, Any] = {
            "deal_id": deal_id,
            "number": self.number,
            "amount": self.total,
            "currency": self.currency or default_currency,
            "description": self.description,
            "customer": self.customer,
        }
        if self.lifetime_seconds is not None:
            fields["lifetime_seconds"] = self.lifetime_seconds
        return NewInvoice.model_validate(fields)


class CancelBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class RefundBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    amount: StrictMinorUnits | None = Field(default=None, description="Defaults to everything still refundable")
    reason: str = Field(default="", max_length=250)
    items: list[ReceiptItem] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="Lines of the refund receipt (54-FZ); by default the invoice's lines for a full refund",
    )

    @model_validator(mode="after")
    def _items_add_up(self) -> RefundBody:
        if self.amount is not None:
            check_items_sum(tuple(self.items), self.amount, "the refund")
        return self


class RefundRequestOut(ApiModel):
    refund_key: str
    amount: int
    status: RefundStatus
    provider_ref: str | None
    detail: str
    reason: str


class HistoryEntryOut(ApiModel):
    at: datetime
    event: str
    from_state: InvoiceState
    to_state: InvoiceState
    amount: int | None = None
    ref: str | None = None
    detail: str = ""
    actor: str | None = Field(default=None, description="who made the change by hand (a lever) or by a check")


class MoneyTrailOut(ApiModel):
    """One provider money fact on its way: recorded at the provider (and shown in the deal) → settled to the bank."""

    ref: str
    kind: Literal["payment", "refund"]
    amount: int
    method: str | None = None
    stage: Literal["recorded", "settled"]
    settled_on: date | None = Field(default=None, description="the value date of the payout that brought it")
    fee: int | None = Field(default=None, description="the provider's fee on it, minor units")
    fee_basis: str | None = Field(default=None, description="`exact` (the provider's net amount) or `estimate`")
    bank_line: str | None = Field(default=None, description="the payout line's fingerprint")


class InvoiceOut(ApiModel):
    invoice_id: InvoiceId
    tenant_id: str
    deal_id: str
    number: str
    state: InvoiceState
    amount: int
    paid: int
    #: The money received per method (`card`, `sbp`, `bank_transfer`, `saved_method`, `manual`; `unknown` for money
    #: recorded before methods were), minor units.
    paid_by_method: dict[str, int] = Field(default_factory=dict)
    refunded: int
    refund_awaiting_payment: int = Field(
        default=0,
        description="refunds confirmed before we heard of their payment: applied once it arrives",
    )
    outstanding: int
    currency: str
    description: str
    provider: str
    payment_id: str | None
    payment_url: str | None
    qr_payload: str | None
    created_at: datetime
    expires_at: datetime
    flags: list[str]
    items: list[ReceiptItem]
    refunds: list[RefundRequestOut]
    part: InvoicePart | None = Field(default=None, description="For a staged payment: which stage this invoice is")
    history: list[HistoryEntryOut] | None = None
    #: Acquiring: each payment and refund through a provider, and whether its money reached the bank (on `GET`).
    money_trail: list[MoneyTrailOut] | None = None

    @classmethod
    def of(cls, invoice: Invoice, history: list[AuditEntry] | None = None) -> InvoiceOut:
        return cls(
            invoice_id=invoice.invoice_id,
            tenant_id=invoice.tenant_id,
            deal_id=invoice.deal_id,
            number=invoice.number,
            state=invoice.state,
            amount=invoice.amount,
            paid=invoice.paid,
            paid_by_method=invoice.paid_by_method,
            refunded=invoice.refunded,
            refund_awaiting_payment=invoice.refund_awaiting_payment,
            outstanding=invoice.outstanding,
            currency=invoice.currency,
            description=invoice.description,
            provider=invoice.provider,
            payment_id=invoice.payment_id,
            payment_url=invoice.payment_url,
            qr_payload=invoice.qr_payload,
            created_at=invoice.created_at,
            expires_at=invoice.expires_at,
            flags=list(invoice.flags),
            items=list(invoice.items),
            refunds=[
                RefundRequestOut(
                    refund_key=key,
                    amount=r.amount,
                    status=r.status,
                    provider_ref=r.provider_ref,
                    detail=r.detail,
                    reason=r.reason,
                )
                for key, r in invoice.refund_requests.items()
            ],
            part=invoice.part,
            history=None if history is None else [HistoryEntryOut(**h.model_dump()) for h in history],
        )


class RefundOut(RefundRequestOut):
    invoice: InvoiceOut


class ScheduleOut(ApiModel):
    deal_id: str
    number: str
    invoices: list[InvoiceOut]


class SubscribeBody(ApiModel):
    """A subscription: its first invoice is paid by the customer (the method is saved), later ones are charged."""

    model_config = ConfigDict(extra="forbid")
    deal_id: DealId
    plan: str = Field(
        min_length=1,
        max_length=PLAN_MAX_LENGTH,
        pattern=r"^[\w.-]+$",
        description="e.g. pro-monthly; each period's invoice is `<plan>/<period>` (a retry `<plan>/<period>.<n>`)",
    )
    amount: StrictMinorUnits
    period: Literal["week", "month", "year"] = "month"
    currency: Currency | None = None
    description: str = Field(default="", max_length=250)
    customer: Customer = Field(default_factory=Customer)


class SubscriptionLeverBody(ApiModel):
    """Why a subscription is cancelled, paused or resumed (kept in the log and the deal's timeline)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class SubscriptionOut(ApiModel):
    subscription_id: str
    deal_id: str
    plan: str
    amount: int
    currency: str
    period: str
    state: str
    period_index: int
    next_charge_at: datetime | None
    failed_attempts: int
    first_invoice: InvoiceOut | None = None

    @classmethod
    def of(cls, sub: Any, first: Invoice | None = None) -> SubscriptionOut:
        return cls(
            subscription_id=sub.subscription_id,
            deal_id=sub.deal_id,
            plan=sub.plan,
            amount=sub.amount,
            currency=sub.currency,
            period=sub.period,
            state=sub.state,
            period_index=sub.period_index,
            next_charge_at=sub.next_charge_at,
            failed_attempts=sub.failed_attempts,
            first_invoice=InvoiceOut.of(first) if first is not None else None,
        )


def money_trail(invoice: Invoice, settled: Callable[[str, list[str]], dict[str, Any]]) -> list[MoneyTrailOut]:
    """The invoice's provider money facts with their settlement (`settled(tenant, refs)`: the settled marks)."""
    facts = [("payment", ref, amount) for ref, amount in invoice.receipts.items()]
    facts += [("refund", ref, amount) for ref, amount in invoice.refunds.items()]
    providers = ("tbank:", "yookassa:", "stripe:", "sandbox:")
    facts = [fact for fact in facts if fact[1].startswith(providers)]
    if not facts:
        return []
    marks = settled(invoice.tenant_id, [ref for _, ref, _ in facts])
    trail = []
    for kind, ref, amount in facts:
        mark = marks.get(ref)
        trail.append(
            MoneyTrailOut(
                ref=ref,
                kind=kind,
                amount=amount,
                method=invoice.receipt_methods.get(ref) if kind == "payment" else None,
                stage="settled" if mark is not None else "recorded",
                settled_on=mark.value_date if mark is not None else None,
                fee=mark.fee if mark is not None and kind == "payment" else None,
                fee_basis=mark.basis if mark is not None and kind == "payment" else None,
                bank_line=mark.fingerprint if mark is not None else None,
            )
        )
    return trail
