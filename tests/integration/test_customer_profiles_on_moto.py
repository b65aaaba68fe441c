"""Payments on the customer's profile on moto's table: a notification told twice is one timeline entry and counted
once; a refund subtracts; a redelivered outbox message writes the same absolute totals and no second entry; a
delivery that lost the race to count a fact finds it counted; the ledger holds CRM ids and money, no personal data.

The invoices are written by `InvoiceChanges.apply` (the one place), published by `DealPublisher` onto a capturing
outbox, and delivered by `DealDelivery` with the DynamoDB ledger to a recording CRM."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from paybridge.app.changes import InvoiceChanges
from paybridge.app.deal_delivery import DealDelivery
from paybridge.app.deal_publishing import DealPublisher
from paybridge.domain.customer_profile import MoneyFact, ProfileEntity
from paybridge.domain.deal_sync import DealCheck, DealUpdate
from paybridge.domain.events import MoneyReceived, RefundConfirmed
from paybridge.domain.invoice import AuditEntry, Customer, InvoiceState, NewInvoice, new_invoice
from paybridge.storage.customer_profiles import DynamoProfileLedger
from paybridge.storage.dynamodb import DynamoInvoiceRepository
from paybridge.storage.errors import DuplicateProviderEvent
from paybridge.storage.repository import ProviderEventRecord
from paybridge.tenants import TenantConfig
from tests.conftest import new_table
from tests.unit.test_customer_profile import RecordingCrm, Tenants, shipped  # noqa: F401 - the shipped fixture

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ANNA = Customer(name="Анна Петрова", email="anna@example.com", phone="+79161234567")


@dataclass
class Outbox:
    messages: list[DealUpdate | DealCheck] = field(default_factory=list)

    def publish(self, message: DealUpdate | DealCheck) -> None:
        if all(m.update_id != message.update_id for m in self.messages):  # SQS FIFO deduplicates by this id
            self.messages.append(message)


@dataclass
class World:
    tenant: TenantConfig
    repo: DynamoInvoiceRepository
    changes: InvoiceChanges
    outbox: Outbox
    ledger: DynamoProfileLedger
    crm: RecordingCrm
    delivery: DealDelivery
    client: Any
    table: str

    def invoice(self, deal: str, amount: int = 150_000) -> str:
        request = NewInvoice(deal_id=deal, number=f"N-{deal}", amount=amount, customer=ANNA)
        made = new_invoice(self.tenant.tenant_id, request, "sandbox", NOW)
        audit = AuditEntry(at=NOW, event="issued", from_state=InvoiceState.ISSUED, to_state=InvoiceState.ISSUED)
        self.repo.create(made, audit)
        return made.invoice_id

    def notify(self, invoice_id: str, ref: str, amount: int) -> None:
        """A PSP notification as `PaymentEvents` applies it: recorded once by its event id."""
        record = ProviderEventRecord("sandbox", f"evt-{ref}", self.tenant.tenant_id, invoice_id, "paid")
        with contextlib.suppress(DuplicateProviderEvent):  # a repeat: PaymentEvents answers it as a duplicate
            self.changes.apply(
                self.tenant.tenant_id,
                invoice_id,
                MoneyReceived(ref=ref, amount=amount, method="card"),
                record,
                announce="money_received",
            )

    def deliver(self) -> None:
        self.delivery.deliver(self.outbox.messages)


@pytest.fixture
def world(moto_aws: Any, shipped: dict[str, Any]) -> World:  # noqa: F811
    from paybridge.tenants import parse_tenants

    raw = next(t for t in shipped["tenants"] if t["tenant_id"] == "profile-shop")
    tenant = parse_tenants({"tenants": [raw]}, "test")["profile-shop"]
    client, table = new_table(moto_aws, "profiles")
    repo = DynamoInvoiceRepository(table, client=client)
    outbox = Outbox()
    tenants = Tenants(tenant)
    changes = InvoiceChanges(repo, DealPublisher(tenants, repo, outbox), clock=lambda: NOW)  # type: ignore[arg-type]
    ledger = DynamoProfileLedger(table, client=client, clock=lambda: NOW)
    crm = RecordingCrm({"d1": "c7", "d2": "c7", "d3": None})
    delivery = DealDelivery(tenants, lambda _: crm, issuing=None, profiles=ledger)  # type: ignore[arg-type]
    return World(tenant, repo, changes, outbox, ledger, crm, delivery, client, table)


CONTACT = ProfileEntity(kind="contact", entity_id="c7")


def test_a_notification_told_twice_is_one_entry_and_counted_once(world: World) -> None:
    invoice_id = world.invoice("d1")
    world.notify(invoice_id, "pay-1", 150_000)
    world.notify(invoice_id, "pay-1", 150_000)  # the PSP retries its notification
    world.deliver()
    world.deliver()  # the outbox redelivers the same message (a consumer crashed before deleting it)
    profiles = world.crm.profiles()
    assert len(profiles) == 1 and len(profiles[0].entries) == 1
    assert profiles[0].total_paid == 150_000 and profiles[0].last_payment_at == NOW
    assert world.ledger.totals(world.tenant.tenant_id, CONTACT).total_paid == {"RUB": 150_000}
    assert world.crm.reads == [["d1"]]


def test_a_refund_subtracts_and_another_deal_of_the_contact_adds(world: World) -> None:
    first, second = world.invoice("d1"), world.invoice("d2", amount=40_000)
    world.notify(first, "pay-1", 150_000)
    world.deliver()
    world.changes.apply(
        world.tenant.tenant_id, first, RefundConfirmed(ref="ref-1", amount=50_000), announce="refund_confirmed"
    )
    world.notify(second, "pay-2", 40_000)
    world.deliver()
    world.deliver()
    totals = [p.total_paid for p in world.crm.profiles()]
    assert totals == [150_000, 100_000, 140_000]
    entries = [e for p in world.crm.profiles() for e in p.entries]
    assert entries == [
        "PayBridge: оплата 1 500.00 RUB картой по счёту № N-d1. Всего оплачено: 1 500.00 RUB.",
        "PayBridge: возврат 500.00 RUB по счёту № N-d1. Всего оплачено: 1 000.00 RUB.",
        "PayBridge: оплата 400.00 RUB картой по счёту № N-d2. Всего оплачено: 1 400.00 RUB.",
    ]
    assert world.ledger.totals(world.tenant.tenant_id, CONTACT).total_paid == {"RUB": 140_000}


def test_a_delivery_that_lost_the_race_finds_the_fact_counted(world: World) -> None:
    fact = MoneyFact(
        kind="payment", invoice_id="inv_x", invoice_number="1", ref="p", amount=1_000, currency="RUB", method="sbp"
    )
    tenant_id = world.tenant.tenant_id
    counted = world.ledger.count(tenant_id, CONTACT, [fact])
    assert counted is not None and counted.totals.total_paid == {"RUB": 1_000}
    # another consumer read "not counted" just before: its conditional write fails and it takes the stored fact
    totals, stored = world.ledger._count_one(tenant_id, CONTACT, fact)
    assert totals is None and stored["text"]["S"] == counted.entries[0][1]
    assert world.ledger.totals(tenant_id, CONTACT).total_paid == {"RUB": 1_000}
    assert world.ledger.totals(tenant_id, CONTACT).version == 1


def test_a_deal_without_contact_writes_no_ledger_and_the_ledger_holds_no_personal_data(world: World) -> None:
    world.notify(world.invoice("d3"), "pay-3", 150_000)
    world.notify(world.invoice("d1"), "pay-1", 150_000)
    world.deliver()
    assert len(world.crm.profiles()) == 1
    items = world.client.scan(TableName=world.table)["Items"]
    ledger = [i for i in items if i["pk"]["S"].startswith("PROFILE#")]
    assert {i["sk"]["S"].split("#")[0] for i in ledger} == {"TOTALS", "FACT", "ENTITY"}
    text = repr(ledger)
    for personal in ("Анна", "anna@example.com", "+79161234567"):
        assert personal not in text
