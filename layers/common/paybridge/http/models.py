"""Request and response models of the HTTP API (separate from the domain entity; mapped explicitly)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from paybridge.app.drift import DriftReport
from paybridge.domain.invoice import (
    AuditEntry,
    Customer,
    DealId,
    Invoice,
    InvoiceId,
    InvoiceNumber,
    InvoicePart,
    InvoiceState,
    ManualMethod,
    NewInvoice,
    RefundStatus,
)
from paybridge.domain.money import Currency
from paybridge.domain.receipt import MAX_ITEMS, ReceiptItem, check_items_sum
from paybridge.domain.staged import StageSpec
from paybridge.domain.subscriptions import PLAN_MAX_LENGTH

INVOICE_NUMBER_MAX = 40

StrictMinorUnits = Annotated[
    int, Field(strict=True, gt=0, le=10**13, description="Amount in minor units (kopecks, cents); integers only")
]


class CreateInvoiceBody(BaseModel):
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


class ScheduleBody(BaseModel):
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


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class RefundBody(BaseModel):
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


class RefundRequestOut(BaseModel):
    refund_key: str
    amount: int
    status: RefundStatus
    provider_ref: str | None
    detail: str
    reason: str


class HistoryEntryOut(BaseModel):
    at: datetime
    event: str
    from_state: InvoiceState
    to_state: InvoiceState
    amount: int | None = None
    ref: str | None = None
    detail: str = ""
    actor: str | None = Field(default=None, description="who made the change by hand (a lever) or by a check")


class InvoiceOut(BaseModel):
    invoice_id: InvoiceId
    tenant_id: str
    deal_id: str
    number: str
    state: InvoiceState
    amount: int
    paid: int
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


class BankDecisionOut(BaseModel):
    fingerprint: str
    kind: str
    reason: str
    numbers_found: list[str]
    allocations: list[dict[str, Any]]


class BankSummaryOut(BaseModel):
    """What an uploaded statement led to."""

    documents: int = Field(description="payment documents in the file")
    skipped: int = Field(description="documents that are not incoming payments to the tenant's accounts")
    lines: int = Field(description="incoming payments to the tenant's accounts")
    duplicates: int = Field(description="lines seen before (polled, pushed or uploaded): counted once")
    applied: int = Field(description="lines that paid invoices")
    needs_a_person: int = Field(description="lines with no invoice or an ambiguous one: on the review list")
    decisions: dict[str, int]
    records: list[BankDecisionOut]

    @classmethod
    def of(cls, summary: Any, documents: int, skipped: int) -> BankSummaryOut:
        return cls(
            documents=documents,
            skipped=skipped,
            lines=summary.lines,
            duplicates=summary.duplicates,
            applied=summary.applied,
            needs_a_person=summary.needs_a_person,
            decisions=dict(summary.decisions),
            records=[_decision(d) for d in summary.records],
        )


class BankReviewItem(BaseModel):
    value_date: str
    amount: int
    currency: str
    payer_name: str
    payer_inn: str | None
    purpose: str
    decision: BankDecisionOut
    recorded_at: str


class BankReviewOut(BaseModel):
    lines: list[BankReviewItem]

    @classmethod
    def of(cls, records: Any) -> BankReviewOut:
        return cls(
            lines=[
                BankReviewItem(
                    value_date=r.line.value_date.isoformat(),
                    amount=r.line.amount,
                    currency=r.line.currency,
                    payer_name=r.line.payer_name,
                    payer_inn=r.line.payer_inn,
                    purpose=r.line.purpose,
                    decision=_decision(r.decision),
                    recorded_at=r.recorded_at,
                )
                for r in records
            ]
        )


def _decision(decision: Any) -> BankDecisionOut:
    return BankDecisionOut(
        fingerprint=decision.fingerprint,
        kind=decision.kind,
        reason=decision.reason,
        numbers_found=list(decision.numbers_found),
        allocations=[a.model_dump() for a in decision.allocations],
    )


class ScheduleOut(BaseModel):
    deal_id: str
    number: str
    invoices: list[InvoiceOut]


class SubscribeBody(BaseModel):
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


class SubscriptionOut(BaseModel):
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


# -- a person's levers (ops scope) ---------------------------------------------------------------------------------

Reason = Annotated[
    str,
    Field(min_length=3, max_length=500, description="Why: written into the invoice's audit history with who"),
]


class ManualPaymentBody(BaseModel):
    """Money received outside PayBridge (cash, a transfer to another account)."""

    model_config = ConfigDict(extra="forbid")
    amount: StrictMinorUnits
    method: ManualMethod
    reference: str = Field(default="", max_length=200, description="e.g. the cash receipt or the payment order")
    reason: Reason


class ReissueBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason
    lifetime_seconds: int | None = Field(
        default=None, ge=1, le=90 * 24 * 3600, description="The new link's lifetime; defaults to the tenant's"
    )


class ResyncBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_id: InvoiceId
    amount: StrictMinorUnits


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class ResolveBody(BaseModel):
    """Either `assign` the line's money to invoices (with a `reason`), or `dismiss` the line with its reason."""

    model_config = ConfigDict(extra="forbid")
    assign: list[AssignmentIn] | None = Field(default=None, min_length=1, max_length=20)
    reason: Reason | None = None
    dismiss: DismissIn | None = None

    @model_validator(mode="after")
    def _one_decision(self) -> ResolveBody:
        if (self.assign is None) == (self.dismiss is None):
            raise ValueError("give either `assign` (with `reason`) or `dismiss`")
        if self.assign is not None and self.reason is None:
            raise ValueError("`assign` needs a `reason`")
        if self.dismiss is not None and self.reason is not None:
            raise ValueError("a dismissal's reason goes in `dismiss.reason`")
        return self

    @property
    def why(self) -> str:
        return self.dismiss.reason if self.dismiss is not None else str(self.reason)


class LeverOut(BaseModel):
    lever: str
    idempotency_key: str
    actor: str = Field(description="`ops:<name>` from the X-Actor header")
    reason: str
    target: str = Field(description="the invoice, deal or bank line the lever acted on")
    detail: str
    replayed: bool = Field(description="true: the answer of an earlier request with this Idempotency-Key")
    invoices: list[InvoiceOut]

    @classmethod
    def of(cls, result: Any) -> LeverOut:
        outcome = result.outcome
        return cls(
            lever=outcome.lever,
            idempotency_key=outcome.key,
            actor=outcome.actor,
            reason=outcome.reason,
            target=outcome.target,
            detail=outcome.detail,
            replayed=result.replayed,
            invoices=[InvoiceOut.of(i) for i in outcome.invoices],
        )


class ListedInvoiceOut(InvoiceOut):
    stuck: bool = Field(description="still waiting for money past its link's deadline")
    age_seconds: int


class InvoiceListOut(BaseModel):
    count: int
    invoices: list[ListedInvoiceOut]

    @classmethod
    def of(cls, listed: Any) -> InvoiceListOut:
        items = [
            ListedInvoiceOut(**InvoiceOut.of(li.invoice).model_dump(), stuck=li.stuck, age_seconds=li.age_seconds)
            for li in listed
        ]
        return cls(count=len(items), invoices=items)


class CrmInvoiceOut(BaseModel):
    invoice_id: str
    state: InvoiceState
    created: bool


class CrmWebhookOut(BaseModel):
    status: Literal["issued", "exists", "accepted", "ignored"]
    invoices: list[CrmInvoiceOut]
    checks: int
    ignored: list[str]


class ProblemError(BaseModel):
    loc: list[str]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details: every 4xx and 5xx answer (`application/problem+json`)."""

    type: str = Field(description="https://paybridge.dev/problems/<slug>")
    title: str
    status: int
    detail: str
    errors: list[ProblemError] | None = Field(default=None, description="422 validation-error: each invalid field")
    correlation_id: str | None = Field(default=None, description="500: quote it to the operator")


PROBLEM_DESCRIPTIONS = {
    400: "bad request: unreadable body (not UTF-8, not JSON, nested too deep) or malformed content",
    401: "unauthorized: unknown tenant, missing or wrong key, or a bad signature/token (the same answer for all)",
    403: "forbidden: the tenant's key does not carry the scope this route needs (`ops` for a person's levers)",
    404: "not found (also: a path parameter with characters the route does not match)",
    409: "conflict",
    413: "the body is over the route's limit",
    415: "a content type the route does not read",
    422: "invalid request: the problem lists each invalid field",
    500: "unexpected error: the problem carries a correlation id and nothing internal",
    502: "the payment provider or the CRM refused the call",
    503: "the payment provider or the CRM is unavailable: retry later",
}


def answers(ok: dict[int, tuple[str, Any, str | tuple[str, ...]]], *problems: int) -> dict[int, Any]:
    """The OpenAPI `responses` of a route: its successes `{status: (description, model or None, media type)}` and
    its problem statuses, each with the Problem schema as `application/problem+json`."""
    documented: dict[int, Any] = {}
    for status, (description, model, media) in ok.items():
        content = {"model": model} if model is not None else {"schema": {"type": "string"}}
        medias = (media,) if isinstance(media, str) else media
        documented[status] = {"description": description, "content": {m: content for m in medias}}
    for status in sorted({*problems, 401, 404, 422, 500}):  # 404: also a path the route cannot match
        documented[status] = {
            "description": PROBLEM_DESCRIPTIONS[status],
            "content": {"application/problem+json": {"model": Problem}},
        }
    return documented


class DriftReportsOut(BaseModel):
    """The tenant's latest drift checks, newest first (kept 30 days)."""

    reports: list[DriftReport]
