"""The application services with in-memory fakes: the races the lifecycle must survive (no AWS, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from paybridge.adapters.psp.base import CreatedPayment, PaymentRequest
from paybridge.app.changes import InvoiceChanges
from paybridge.app.invoices import Invoices
from paybridge.app.issuing import Issuing
from paybridge.app.lifecycle_tasks import LifecycleTasks
from paybridge.app.payment_checks import PaymentChecks
from paybridge.domain.invoice import AuditEntry, Invoice, InvoiceState, NewInvoice
from paybridge.storage.errors import ConcurrentModification
from paybridge.storage.repository import Saved
from paybridge.tenants import parse_tenants

TENANT = parse_tenants(
    {
        "tenants": [
            {
                "tenant_id": "acme",
                "name": "Acme",
                "api_keys_sha256": ["0" * 64],
                "psp": {"provider": "sandbox", "base_url": "http://psp", "secret": {"value": "secret-123"}},
                "crm": {"kind": "sandbox", "base_url": "http://crm", "token": {"value": "token-123"}},
            }
        ]
    },
    "test",
)["acme"]


class MemoryRepo:
    def __init__(self) -> None:
        self.items: dict[str, Invoice] = {}
        self.audit: list[AuditEntry] = []
        self.token: str | None = None

    def create(self, invoice: Invoice, audit: AuditEntry) -> tuple[Invoice, bool]:
        if invoice.invoice_id in self.items:
            return self.items[invoice.invoice_id], False
        self.items[invoice.invoice_id] = invoice
        return invoice, True

    def get(self, tenant_id: str, invoice_id: str) -> Invoice | None:
        return self.items.get(invoice_id)

    def save(self, invoice: Invoice, expected_version: int, audit: Any, provider_event: Any = None) -> Saved:
        if self.items[invoice.invoice_id].version != expected_version:
            raise ConcurrentModification(invoice.invoice_id)
        self.items[invoice.invoice_id] = invoice
        if audit:
            self.audit.append(audit)
        return Saved(invoice=invoice, task_token=self.token)

    def history(self, tenant_id: str, invoice_id: str) -> list[AuditEntry]:
        return self.audit


class Tenants:
    def get(self, tenant_id: str) -> Any:
        return TENANT


class RacingPsp:
    """Creates the payment, and while it does, the invoice is cancelled by someone else."""

    name = "sandbox"
    min_lifetime_seconds = 1
    max_lifetime_seconds = 90 * 24 * 3600
    supports_partial_payments = False

    def __init__(self, services: Services) -> None:
        self.services = services
        self.cancelled: list[str] = []

    def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        self.services.invoices.cancel_invoice("acme", request.invoice_id, "client changed their mind")
        return CreatedPayment(payment_id="pay_1", payment_url="http://psp/pay/pay_1")

    def cancel_payment(self, payment_id: str) -> None:
        self.cancelled.append(payment_id)


class NoLifecycle:
    """The lifecycle engine and the deal publisher, doing nothing but record what the deal was told."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def start(self, tenant_id: str, invoice_id: str) -> None:
        pass

    def publish(self, invoice: Invoice, event: str = "") -> None:
        self.published.append((invoice.state.value, event))


class NoReminders:
    def link_published(self, tenant: Any, invoice: Invoice, at: datetime) -> None:
        pass


@dataclass
class Services:
    issuing: Issuing
    invoices: Invoices
    tasks: LifecycleTasks


@pytest.fixture
def services() -> Services:
    repo: Any = MemoryRepo()
    lifecycle, tenants = NoLifecycle(), Tenants()
    clock = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
    providers: Any = lambda tenant: psp  # noqa: E731
    changes = InvoiceChanges(repo, lifecycle, clock)  # type: ignore[arg-type]
    outbox: Any = None
    return Services(
        issuing=Issuing(tenants, repo, lifecycle, providers, lambda tenant: None, outbox, clock),  # type: ignore[arg-type,return-value]
        invoices=Invoices(tenants, repo, changes, providers),
        tasks=LifecycleTasks(
            tenants,  # type: ignore[arg-type]
            changes,
            providers,
            lifecycle,  # type: ignore[arg-type]
            (NoReminders(),),
            PaymentChecks(tenants, changes, providers),  # type: ignore[arg-type]
            clock=clock,
        ),
    )


psp: Any = None


def test_cancel_while_the_payment_is_being_created_withdraws_it_at_the_psp(services: Services) -> None:
    global psp
    psp = RacingPsp(services)
    issued = services.issuing.issue_invoice(
        "acme", NewInvoice(deal_id="7", number="7", amount=1000, lifetime_seconds=60)
    )

    document = services.tasks.create_payment("acme", issued.invoice.invoice_id).document()

    # Then the lifecycle ends cancelled, and the payment created meanwhile is cancelled at the PSP
    assert document["outcome"]["state"] == "cancelled" and document["outcome"]["final"] is True
    assert psp.cancelled == ["pay_1"]


def test_mark_failed_after_a_cancel_keeps_the_cancel(services: Services) -> None:
    issued = services.issuing.issue_invoice(
        "acme", NewInvoice(deal_id="8", number="8", amount=1000, lifetime_seconds=60)
    )
    services.invoices.cancel_invoice("acme", issued.invoice.invoice_id)
    document = services.tasks.mark_failed("acme", issued.invoice.invoice_id, "ProviderRejected").document()
    assert document["outcome"]["state"] == InvoiceState.CANCELLED.value


class CountingRepo(MemoryRepo):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, tenant_id: str, invoice_id: str) -> Invoice | None:
        self.reads += 1
        return super().get(tenant_id, invoice_id)


def _awaiting_payment(repo: CountingRepo) -> tuple[InvoiceChanges, Invoice]:
    from paybridge.domain.events import PaymentCreated

    clock = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
    changes = InvoiceChanges(repo, NoLifecycle(), clock)  # type: ignore[arg-type]
    provider: Any = RacingPsp(None)  # type: ignore[arg-type]  # its lifetimes; no payment is created here
    issuing = Issuing(Tenants(), repo, NoLifecycle(), lambda tenant: provider, lambda tenant: None, None, clock)  # type: ignore[arg-type]
    issued = issuing.issue_invoice("acme", NewInvoice(deal_id="9", number="9", amount=1000, lifetime_seconds=60))
    created = PaymentCreated(payment_id="pay_9", payment_url="https://psp/pay/9")
    return changes, changes.apply("acme", issued.invoice.invoice_id, created).invoice


def test_a_change_from_the_invoice_just_read_reads_it_no_second_time() -> None:
    from paybridge.domain.events import MoneyReceived

    repo = CountingRepo()
    changes, invoice = _awaiting_payment(repo)
    reads = repo.reads

    change = changes.apply("acme", invoice.invoice_id, MoneyReceived(ref="op1", amount=1000), read=invoice)

    assert change.changed and change.invoice.state == InvoiceState.PAID and repo.reads == reads


def test_a_change_from_a_stale_read_fails_its_write_and_reads_again() -> None:
    """What the caller read was changed meanwhile (here: cancelled): the first write's version check fails, the
    next attempt reads the invoice as it is and applies the event to that."""
    from paybridge.domain.events import Close, MoneyReceived
    from paybridge.domain.invoice import Closure

    repo = CountingRepo()
    changes, stale = _awaiting_payment(repo)
    changes.apply("acme", stale.invoice_id, Close(closure=Closure.CANCELLED))
    reads = repo.reads

    change = changes.apply("acme", stale.invoice_id, MoneyReceived(ref="op1", amount=1000), read=stale)

    assert repo.reads == reads + 1
    assert change.invoice.version == stale.version + 2  # on top of the cancel, not over it
    assert change.invoice.paid == 1000
