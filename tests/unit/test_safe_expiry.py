"""Safe expiry: at the deadline the provider is asked first; money there is recorded, never refunded by a cancel;
a payer paying right now or a provider that cannot be asked defers the decision; only an empty payment is cancelled."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from paybridge.adapters.errors import ProviderUnavailable
from paybridge.adapters.psp.base import CreatedPayment, MoneyFact, PaymentPhase, PaymentRequest, PaymentSnapshot
from paybridge.app.changes import InvoiceChanges
from paybridge.app.issuing import Issuing
from paybridge.app.lifecycle_tasks import LifecycleTasks, expiry_delay
from paybridge.app.payment_checks import PaymentChecks
from paybridge.domain.invoice import InvoiceState, NewInvoice
from tests.unit.test_services_races import MemoryRepo, NoLifecycle, NoReminders, Tenants

CLOCK = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class AskedPsp:
    """Answers `get_payment` as the test says; records cancels (a cancel of a paid payment would refund it)."""

    phase: PaymentPhase = "open"
    raw_status: str = "NEW"
    receipts: tuple[MoneyFact, ...] = ()
    down: bool = False
    partial: bool = False
    cancelled: list[str] = field(default_factory=list)
    asked: int = 0
    name: str = "sandbox"
    min_lifetime_seconds: int = 1
    max_lifetime_seconds: int = 10**7

    @property
    def supports_partial_payments(self) -> bool:
        return self.partial

    def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        return CreatedPayment(payment_id="pay_1", payment_url="http://psp/pay/pay_1")

    def get_payment(self, payment_id: str) -> PaymentSnapshot:
        self.asked += 1
        if self.down:
            raise ProviderUnavailable("GET /payments/pay_1: ConnectTimeout")
        paid = sum(r.amount for r in self.receipts)
        return PaymentSnapshot(
            payment_id=payment_id,
            raw_status=self.raw_status,
            kind="paid" if paid else "ignored",
            amount=90_000,
            paid_amount=paid,
            phase=self.phase,
            receipts=self.receipts,
        )

    def cancel_payment(self, payment_id: str) -> None:
        self.cancelled.append(payment_id)


class Setup:
    def __init__(self, psp: AskedPsp) -> None:
        self.psp = psp
        self.repo: Any = MemoryRepo()
        tenants, lifecycle = Tenants(), NoLifecycle()
        providers: Any = lambda _tenant: psp  # noqa: E731
        self.changes = InvoiceChanges(self.repo, lifecycle, lambda: CLOCK)  # type: ignore[arg-type]
        outbox: Any = None
        self.issuing = Issuing(tenants, self.repo, lifecycle, providers, lambda _t: None, outbox, lambda: CLOCK)  # type: ignore[arg-type,return-value]
        checks = PaymentChecks(tenants, self.changes, providers)  # type: ignore[arg-type]
        self.tasks = LifecycleTasks(
            tenants,  # type: ignore[arg-type]
            self.changes,
            providers,
            lifecycle,  # type: ignore[arg-type]
            (NoReminders(),),
            checks,
            clock=lambda: CLOCK,
        )

    def awaiting(self, lifetime: int = 60) -> str:
        issued = self.issuing.issue_invoice(
            "acme", NewInvoice(deal_id="7", number="7", amount=90_000, lifetime_seconds=lifetime)
        )
        self.tasks.create_payment("acme", issued.invoice.invoice_id)
        return issued.invoice.invoice_id


def test_a_payment_confirmed_before_the_deadline_whose_notification_was_lost_ends_paid_and_is_never_cancelled() -> None:
    setup = Setup(AskedPsp(phase="paid", raw_status="CONFIRMED", receipts=(MoneyFact(ref="tbank:1", amount=90_000),)))
    invoice_id = setup.awaiting()

    state = setup.tasks.expire_invoice("acme", invoice_id)

    assert state.outcome is not None and state.outcome.state is InvoiceState.PAID and state.outcome.final
    assert state.outcome.event == "money_received"
    assert setup.psp.cancelled == []  # T-Bank's Cancel on CONFIRMED would have refunded the client
    (entry,) = [a for a in setup.repo.audit if a.event == "money_received"]
    assert entry.actor == "expiry" and "CONFIRMED" in entry.detail and entry.ref == "tbank:1"


def test_an_empty_payment_is_expired_and_cancelled_once() -> None:
    setup = Setup(AskedPsp(phase="open", raw_status="NEW"))
    invoice_id = setup.awaiting()
    state = setup.tasks.expire_invoice("acme", invoice_id)
    assert state.outcome is not None and state.outcome.state is InvoiceState.EXPIRED
    assert setup.psp.cancelled == ["pay_1"]
    # The same step retried (a Lambda retry) asks nothing more and cancels nothing more
    again = setup.tasks.expire_invoice("acme", invoice_id)
    assert again.outcome is not None and again.outcome.state is InvoiceState.EXPIRED
    assert setup.psp.cancelled == ["pay_1"] and setup.psp.asked == 1


def test_a_held_two_stage_payment_is_not_released_and_the_reason_tells_the_manager() -> None:
    setup = Setup(AskedPsp(phase="held", raw_status="AUTHORIZED"))
    invoice_id = setup.awaiting()
    state = setup.tasks.expire_invoice("acme", invoice_id)
    assert state.outcome is not None and state.outcome.state is InvoiceState.EXPIRED
    assert setup.psp.cancelled == []
    invoice = setup.repo.get("acme", invoice_id)
    assert "удержан" in invoice.close_reason and "900.00 RUB" in invoice.close_reason


@pytest.mark.parametrize(
    ("psp", "event"),
    [
        (AskedPsp(down=True), "provider_unavailable"),
        (AskedPsp(phase="in_progress", raw_status="3DS_CHECKING"), "payment_in_progress"),
    ],
)
def test_a_provider_that_cannot_be_asked_or_a_payer_paying_now_defers_the_expiry(psp: AskedPsp, event: str) -> None:
    setup = Setup(psp)
    invoice_id = setup.awaiting()

    first = setup.tasks.expire_invoice("acme", invoice_id)
    third = setup.tasks.expire_invoice("acme", invoice_id, attempt=2)

    for state, attempt in ((first, 1), (third, 3)):
        assert state.outcome is not None and not state.outcome.final and state.outcome.event == event
        assert state.outcome.state is InvoiceState.AWAITING_PAYMENT and state.expiry_attempt == attempt
    assert (first.outcome.seconds_left, third.outcome.seconds_left) == (60, 240)  # type: ignore[union-attr]
    assert setup.psp.cancelled == []
    # Back (or done paying): the next attempt decides
    psp.down, psp.phase, psp.raw_status = False, "paid", "CONFIRMED"
    psp.receipts = (MoneyFact(ref="tbank:1", amount=90_000),)
    assert setup.tasks.expire_invoice("acme", invoice_id, attempt=3).outcome.state is InvoiceState.PAID  # type: ignore[union-attr]
    assert setup.psp.cancelled == []


def test_part_of_the_money_is_recorded_and_the_rest_expires_without_a_cancel() -> None:
    setup = Setup(AskedPsp(phase="paid", raw_status="partially_paid", partial=True))
    setup.psp.receipts = (MoneyFact(ref="sandbox:op_1", amount=30_000),)
    invoice_id = setup.awaiting()
    state = setup.tasks.expire_invoice("acme", invoice_id)
    invoice = setup.repo.get("acme", invoice_id)
    assert invoice.paid == 30_000 and invoice.state is InvoiceState.EXPIRED
    assert state.outcome is not None and state.outcome.state is InvoiceState.EXPIRED
    assert setup.psp.cancelled == []


def test_an_invoice_already_paid_is_not_asked_about() -> None:
    setup = Setup(AskedPsp())
    invoice_id = setup.awaiting()
    from paybridge.domain.events import MoneyReceived

    setup.changes.apply("acme", invoice_id, MoneyReceived(ref="sandbox:op_9", amount=90_000))
    state = setup.tasks.expire_invoice("acme", invoice_id)
    assert state.outcome is not None and state.outcome.state is InvoiceState.PAID
    assert setup.psp.asked == 0 and setup.psp.cancelled == []


def test_the_expiry_asks_again_after_growing_delays_up_to_an_hour() -> None:
    assert [expiry_delay(n) for n in range(8)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
