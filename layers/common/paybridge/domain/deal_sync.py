"""What a deal must show after a lifecycle step: an ordered list of writes, planned here once for every CRM.

The plan is pure: the invoice, the tenant's stage for its state, and the step's event go in; the writes come out.
Delivering them (in order per deal, batched, within the CRM's rate limit) is the outbox's job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag

from paybridge.domain import messages
from paybridge.domain.customer_profile import MoneyFact, ProfileWrite, facts_of
from paybridge.domain.invoice import Customer, Invoice, InvoiceState
from paybridge.domain.model import Model

DealOpKind = Literal["set_stage", "comment", "notify_manager", "send_to_customer", "customer_profile"]


class DealOp(Model):
    """One write to a deal. `set_stage` may carry the payment link (written into the tenant's link field)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: DealOpKind
    stage: str | None = None
    payment_url: str | None = None
    text: str | None = None
    customer: Customer | None = None
    #: `customer_profile`: the invoice's money facts, as planned (see `domain/customer_profile.py`)…
    facts: tuple[MoneyFact, ...] = ()
    #: …and what the outbox consumer resolved them to (the entity, the entries not shown yet, the totals): the
    #: adapter writes only this; an op left unresolved (no contact or company on the deal) writes nothing.
    profile: ProfileWrite | None = None


class DealUpdate(Model):
    """One outbox message: the writes one lifecycle step asks of one deal, applied in this order."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["update"] = "update"
    tenant_id: str
    deal_id: str
    invoice_id: str
    version: int = Field(ge=0)  # the invoice version that produced it
    event: str = ""
    ops: tuple[DealOp, ...] = Field(min_length=1)

    @property
    def update_id(self) -> str:
        """Stable across retries of the step that produced it: the outbox's deduplication id. A person's re-sync
        carries its own key (`resync:<key>`): the same key is one update whatever version the invoice is at, so
        concurrent repeats of the request enqueue one write."""
        if self.event.startswith(f"{RESYNC_EVENT}:"):
            return f"{self.invoice_id}:{self.event}"[:128]
        return f"{self.invoice_id}:v{self.version}:{self.event or 'sync'}"[:128]

    @property
    def group(self) -> str:
        """Order is kept per deal."""
        return f"{self.tenant_id}:{self.deal_id}"[:128]


class DealCheck(Model):
    """One outbox message: "this deal changed — if it is now in `when_stage`, issue its invoice". A CRM event that
    carries only the deal id (Bitrix24's ONCRMDEALUPDATE, which our own writes raise too) becomes a check, so the
    deal reads of many events share one batched, rate-limited request instead of one request each."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["check"] = "check"
    tenant_id: str
    deal_id: str
    when_stage: str
    check_id: str = Field(min_length=1, max_length=100)  # unique per event: checks are idempotent, never deduped

    @property
    def update_id(self) -> str:
        return f"check:{self.check_id}"

    @property
    def group(self) -> str:
        return f"{self.tenant_id}:{self.deal_id}"[:128]


def _kind(value: object) -> str:
    """Messages written before checks existed carry no `kind`: they are updates."""
    if isinstance(value, dict):
        return str(value.get("kind", "update"))
    return str(getattr(value, "kind", "update"))


OutboxMessage = Annotated[
    Annotated[DealUpdate, Tag("update")] | Annotated[DealCheck, Tag("check")], Discriminator(_kind)
]


#: The event of a person's re-sync (`resync:<key>`): the deal is written again as the invoice stands.
RESYNC_EVENT = "resync"

_CLOSING_TEXT: dict[InvoiceState, Callable[[Invoice], str]] = {
    InvoiceState.ISSUED: messages.link_published,
    InvoiceState.PARTIALLY_PAID: messages.partially_paid,
    InvoiceState.PAID: messages.paid,
    InvoiceState.EXPIRED: messages.expired,
    InvoiceState.CANCELLED: messages.cancelled,
    InvoiceState.FAILED: messages.failed,
    InvoiceState.REFUNDED: messages.refunded,
    InvoiceState.PARTIALLY_REFUNDED: messages.refunded,
}
#: States a person must act on: the responsible manager is told, not only the timeline.
_MANAGER_STATES = frozenset({InvoiceState.PARTIALLY_PAID, InvoiceState.EXPIRED, InvoiceState.FAILED})


def plan_deal_ops(invoice: Invoice, stage: str, event: str = "") -> tuple[DealOp, ...]:
    """The writes that make the deal reflect the invoice after `event`: the stage (from the tenant's mapping), the
    link, a timeline entry, the client and the manager told where the state asks for it. Empty: nothing to show."""
    state = invoice.state
    ops: list[DealOp] = []
    if event == RESYNC_EVENT or event.startswith(f"{RESYNC_EVENT}:"):
        link = invoice.payment_url if state in (InvoiceState.AWAITING_PAYMENT, InvoiceState.PARTIALLY_PAID) else None
        return (
            DealOp(kind="set_stage", stage=stage, payment_url=link or None),
            DealOp(kind="comment", text=messages.resynced(invoice) + _part_note(invoice)),
        )
    if event == "paid_outside":
        ops.append(DealOp(kind="comment", text=messages.paid_outside(invoice)))
    if event == "refund_failed":
        text = messages.refund_failed(invoice)
        return (DealOp(kind="comment", text=text), DealOp(kind="notify_manager", text=text))
    if state is InvoiceState.AWAITING_PAYMENT:
        if event == "payment_declined":
            ops.append(DealOp(kind="comment", text=messages.declined(invoice)))
        elif event == "payment_created":
            ops.append(DealOp(kind="set_stage", stage=stage, payment_url=invoice.payment_url))
            ops.append(DealOp(kind="comment", text=messages.link_published(invoice) + _part_note(invoice)))
            if invoice.payment_url and (invoice.customer.email or invoice.customer.phone):
                ops.append(
                    DealOp(kind="send_to_customer", customer=invoice.customer, text=messages.link_for_customer(invoice))
                )
        return tuple(ops)  # anything else while awaiting payment is a repeat: nothing new to show
    text = _CLOSING_TEXT[state](invoice) + _part_note(invoice)
    ops += [DealOp(kind="set_stage", stage=stage), DealOp(kind="comment", text=text)]
    if state in _MANAGER_STATES:
        ops.append(DealOp(kind="notify_manager", text=text))
    if invoice.flags:
        ops.append(DealOp(kind="notify_manager", text=messages.flagged(invoice)))
    return tuple(ops)


def _part_note(invoice: Invoice) -> str:
    part = invoice.part
    return f" Этап {part.index} из {part.count}: {part.name}." if part is not None else ""


def deal_update(invoice: Invoice, stage: str, event: str = "", customer_profile: bool = False) -> DealUpdate | None:
    """The deal's update; with `customer_profile` (the tenant's opt-in), an update of an invoice holding money also
    carries its facts for the customer's profile (counted there once per fact, whichever update carries it)."""
    ops = plan_deal_ops(invoice, stage, event)
    if not ops:
        return None
    facts = facts_of(invoice) if customer_profile else ()
    if facts:
        ops = (*ops, DealOp(kind="customer_profile", facts=facts))
    return DealUpdate(
        tenant_id=invoice.tenant_id,
        deal_id=invoice.deal_id,
        invoice_id=invoice.invoice_id,
        version=invoice.version,
        event=event,
        ops=ops,
    )
