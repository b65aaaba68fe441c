"""Refunds.refund_invoice with in-memory fakes: what each provider answer does to the invoice, retries with the
same key after an outage, receipts for refunds, and the publish of a refund once the lifecycle is over."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from paybridge.adapters.errors import ProviderRejected, ProviderUnavailable
from paybridge.adapters.psp.base import RefundOrder, RefundResult
from paybridge.app.changes import InvoiceChanges
from paybridge.app.issuing import Issuing
from paybridge.app.refunds import Refunds
from paybridge.domain.errors import InvalidTransition, InvoiceConflict, ReceiptError
from paybridge.domain.events import MoneyReceived, PaymentCreated
from paybridge.domain.invoice import Invoice
from paybridge.domain.receipt import ReceiptItem
from paybridge.tenants import parse_tenants
from tests.unit.test_services_races import TENANT, MemoryRepo

FISCAL_TENANT = parse_tenants(
    {
        "tenants": [
            {
                **TENANT.model_dump(mode="json", exclude={"fiscal"}),
                "fiscal": {"taxation": "osn", "default_vat": "vat22"},
            }
        ]
    },
    "test",
)["acme"]
LINES = (
    ReceiptItem(name="Стул", price=60_000, vat="vat22", payment_object="commodity"),
    ReceiptItem(name="Доставка", price=40_000, vat="vat22"),
)


class ScriptedPsp:
    """Answers refunds as the test says; records what it was asked."""

    name = "sandbox"
    min_lifetime_seconds = 1
    max_lifetime_seconds = 10**7
    supports_partial_payments = False

    def __init__(self) -> None:
        self.answers: list[RefundResult | Exception] = []
        self.orders: list[RefundOrder] = []

    def refund(self, order: RefundOrder) -> RefundResult:
        self.orders.append(order)
        answer = (
            self.answers.pop(0)
            if self.answers
            else RefundResult(ref=f"re-{order.key}", status="succeeded", amount=order.amount)
        )
        if isinstance(answer, Exception):
            raise answer
        return answer


class RecordingLifecycle:
    """The lifecycle engine (starts nothing) and the deal publisher (records what the deal is told)."""

    def __init__(self) -> None:
        self.published: list[tuple[Invoice, str]] = []

    def start(self, tenant_id: str, invoice_id: str) -> None:
        pass

    def publish(self, invoice: Invoice, event: str = "") -> None:
        self.published.append((invoice, event))


class Setup:
    def __init__(self, tenant: Any = TENANT) -> None:
        self.repo = MemoryRepo()
        self.psp = ScriptedPsp()
        self.lifecycle = RecordingLifecycle()
        tenants = type("Tenants", (), {"get": lambda _self, _id: tenant})()
        clock = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
        self.changes = InvoiceChanges(self.repo, self.lifecycle, clock)  # type: ignore[arg-type]
        self.issuing = Issuing(
            tenants=tenants,
            repo=self.repo,  # type: ignore[arg-type]
            lifecycle=self.lifecycle,
            providers=lambda _tenant: self.psp,  # type: ignore[arg-type,return-value]
            crms=lambda _tenant: None,  # type: ignore[arg-type,return-value]
            outbox=None,  # type: ignore[arg-type]
            clock=clock,
        )
        self.services = Refunds(tenants, self.changes, lambda _tenant: self.psp)  # type: ignore[arg-type,return-value]

    def paid_invoice(self, amount: int = 100_000, items: tuple[ReceiptItem, ...] = ()) -> Invoice:
        from paybridge.domain.invoice import NewInvoice

        request = NewInvoice(
            deal_id="7", number="7", amount=amount, lifetime_seconds=60, items=items, customer={"email": "a@b.ru"}
        )
        invoice = self.issuing.issue_invoice("acme", request).invoice
        for event in (
            PaymentCreated(payment_id="pay-1", payment_url="http://psp/pay-1"),
            MoneyReceived(ref="op-1", amount=amount),
        ):
            invoice = self.changes.apply("acme", invoice.invoice_id, event).invoice
        return invoice

    def invoice(self, invoice_id: str) -> Invoice:
        found = self.repo.get("acme", invoice_id)
        assert found is not None
        return found


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_a_confirmed_refund_is_recorded_and_published_to_the_deal(setup: Setup) -> None:
    invoice = setup.paid_invoice()
    view = setup.services.refund_invoice("acme", invoice.invoice_id, "k1", 30_000, "returned")
    assert view.created and view.request.status == "succeeded" and view.request.provider_ref == "re-k1"
    after = setup.invoice(invoice.invoice_id)
    assert after.refunds == {"re-k1": 30_000} and after.state.value == "partially_refunded"
    (order,) = setup.psp.orders
    assert (order.key, order.amount, order.payment_id, order.payment_amount, order.reason) == (
        "k1",
        30_000,
        "pay-1",
        100_000,
        "returned",
    )
    # The lifecycle ended at "paid": the refund publishes itself to the deal (no execution runs for it)
    ((published, event),) = setup.lifecycle.published
    assert published.version == after.version and published.state.value == "partially_refunded"
    assert event == "refund_confirmed"


def test_a_refused_refund_frees_the_amount_and_tells_the_manager(setup: Setup) -> None:
    invoice = setup.paid_invoice()
    setup.psp.answers = [ProviderRejected("HTTP 400: not enough money on the terminal")]
    view = setup.services.refund_invoice("acme", invoice.invoice_id, "k1")
    assert view.request.status == "failed" and "not enough money" in view.request.detail
    after = setup.invoice(invoice.invoice_id)
    assert after.refunded == 0 and after.refundable == 100_000
    assert [event for _, event in setup.lifecycle.published] == ["refund_failed"]
    # The same key again returns the failure; a new key may try again
    assert setup.services.refund_invoice("acme", invoice.invoice_id, "k1").created is False
    assert setup.services.refund_invoice("acme", invoice.invoice_id, "k2").request.status == "succeeded"


def test_an_outage_keeps_the_amount_reserved_and_the_retry_with_the_same_key_finishes_it(setup: Setup) -> None:
    invoice = setup.paid_invoice()
    setup.psp.answers = [ProviderUnavailable("timeout")]
    with pytest.raises(ProviderUnavailable):
        setup.services.refund_invoice("acme", invoice.invoice_id, "k1", 60_000)
    reserved = setup.invoice(invoice.invoice_id)
    assert reserved.refund_requests["k1"].status == "pending" and reserved.refundable == 40_000
    with pytest.raises(InvalidTransition, match=r"exceeds the refundable 400\.00 RUB"):
        setup.services.refund_invoice("acme", invoice.invoice_id, "k2", 60_000)
    # The client retries with its key: the provider is asked again with the same key (it dedupes), once more
    view = setup.services.refund_invoice("acme", invoice.invoice_id, "k1")
    assert view.request.status == "succeeded"
    assert [o.key for o in setup.psp.orders] == ["k1", "k1"]
    assert setup.invoice(invoice.invoice_id).refunded == 60_000


def test_a_pending_answer_waits_for_the_providers_confirmation(setup: Setup) -> None:
    invoice = setup.paid_invoice()
    setup.psp.answers = [RefundResult(ref="re-9", status="pending", amount=100_000)]
    view = setup.services.refund_invoice("acme", invoice.invoice_id, "k1")
    assert (view.request.status, view.request.provider_ref) == ("pending", "re-9")
    assert setup.lifecycle.published == []
    # A repeat does not ask the provider again: it already took the request
    setup.services.refund_invoice("acme", invoice.invoice_id, "k1")
    assert len(setup.psp.orders) == 1


def test_the_same_key_with_another_amount_is_a_conflict(setup: Setup) -> None:
    invoice = setup.paid_invoice()
    setup.services.refund_invoice("acme", invoice.invoice_id, "k1", 10_000)
    with pytest.raises(InvoiceConflict, match=r"was used for 100\.00 RUB"):
        setup.services.refund_invoice("acme", invoice.invoice_id, "k1", 20_000)
    assert len(setup.psp.orders) == 1


def test_refund_receipts_carry_the_refunded_lines() -> None:
    setup = Setup(FISCAL_TENANT)
    invoice = setup.paid_invoice(items=LINES)
    setup.services.refund_invoice("acme", invoice.invoice_id, "k1", 40_000)  # the delivery line, whole
    receipt = setup.psp.orders[0].receipt
    assert receipt is not None and receipt.items == (LINES[1],) and receipt.total == 40_000
    assert (receipt.email, receipt.taxation) == ("a@b.ru", "osn")
    with pytest.raises(ReceiptError, match="give the refund's items"):
        setup.services.refund_invoice("acme", invoice.invoice_id, "k2", 10_000)
    custom = (ReceiptItem(name="Стул (скидка)", price=10_000, vat="vat22"),)
    setup.services.refund_invoice("acme", invoice.invoice_id, "k3", 10_000, items=custom)
    assert setup.psp.orders[-1].receipt is not None and setup.psp.orders[-1].receipt.items == custom
    assert setup.invoice(invoice.invoice_id).refunded == 50_000
