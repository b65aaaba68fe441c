"""Personal data retention on moto's table: the sweep erases name, e-mail, phone and INN from closed invoices past
the tenant's period — and nothing else (money facts, numbers, states, history and the ops lists stay); a person's
erasure request erases their closed invoices, audited, names the open ones, and answers a repeat the same."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from paybridge.app.changes import Actor, InvoiceChanges
from paybridge.app.levers import LeverRequest, LeverRunner
from paybridge.app.retention import Person, Retention
from paybridge.domain.events import Close, MoneyReceived
from paybridge.domain.invoice import AuditEntry, Closure, Customer, InvoiceState, NewInvoice, new_invoice
from paybridge.storage.dynamodb import DynamoInvoiceRepository
from paybridge.storage.lever_keys import DynamoLeverKeys
from paybridge.storage.retention import DynamoRetentionIndex
from tests.conftest import new_table

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ANNA = Customer(name="Анна Петрова", email="Anna@Example.com", phone="+79161234567", inn="771234567890")
BORIS = Customer(name="Борис", email="boris@example.com")


class NoLifecycle:
    def resume(self, token: str, state: Any) -> bool:
        return False

    def publish(self, state: Any, name: str) -> None:
        return None


class Tenants:
    def __init__(self, days: int | None) -> None:
        self.retention = SimpleNamespace(customer_data_days=days) if days else None

    def tenant_ids(self) -> list[str]:
        return ["acme"]

    def get(self, tenant_id: str) -> Any:
        return SimpleNamespace(tenant_id=tenant_id, retention=self.retention)


@dataclass
class World:
    repo: DynamoInvoiceRepository
    changes: InvoiceChanges
    retention: Retention
    index: DynamoRetentionIndex


@pytest.fixture
def world(moto_aws: Any) -> World:
    client, table = new_table(moto_aws, "retention")
    repo = DynamoInvoiceRepository(table, client=client)
    changes = InvoiceChanges(repo, NoLifecycle(), clock=lambda: NOW)  # type: ignore[arg-type]
    index = DynamoRetentionIndex(table, client=client)
    runner = LeverRunner(DynamoLeverKeys(table, client=client))
    retention = Retention(Tenants(30), index, changes, runner, clock=lambda: NOW)
    return World(repo, changes, retention, index)


def invoice(world: World, customer: Customer, days_ago: int, end: str) -> str:
    created = NOW - timedelta(days=days_ago)
    request = NewInvoice(deal_id=f"D-{uuid.uuid4().hex[:6]}", number=f"N-{days_ago}", amount=10_000, customer=customer)
    made = new_invoice("acme", request, "sandbox", created)
    audit = AuditEntry(at=created, event="issued", from_state=InvoiceState.ISSUED, to_state=InvoiceState.ISSUED)
    world.repo.create(made, audit)
    if end == "paid":
        world.changes.apply("acme", made.invoice_id, MoneyReceived(ref=f"op-{made.invoice_id}", amount=10_000))
    elif end == "expired":
        world.changes.apply("acme", made.invoice_id, Close(closure=Closure.EXPIRED))
    return made.invoice_id


def test_the_sweep_erases_exactly_the_closed_invoices_past_the_period(world: World) -> None:
    # Given invoices of the tenant (retention: 30 days)
    old_paid = invoice(world, ANNA, 40, "paid")
    old_expired = invoice(world, BORIS, 31, "expired")
    recent_paid = invoice(world, ANNA, 10, "paid")
    old_open = invoice(world, BORIS, 45, "open")
    nothing_held = invoice(world, Customer(), 50, "paid")
    before = {i: world.repo.get("acme", i) for i in (old_paid, old_expired, recent_paid, old_open, nothing_held)}
    # When the daily sweep runs (twice)
    assert world.retention.sweep() == {"acme": 2}
    assert world.retention.sweep() == {"acme": 0}
    # Then exactly the two closed invoices past the period lost their customer's data…
    after = {i: world.repo.get("acme", i) for i in before}
    for erased in (old_paid, old_expired):
        got, was = after[erased], before[erased]
        assert got is not None and was is not None
        assert got.customer == Customer() and got.customer_erased_at == NOW
        # …and kept every money fact, number and state
        assert (got.receipts, got.refunds, got.amount, got.number, got.deal_id, got.state) == (
            was.receipts,
            was.refunds,
            was.amount,
            was.number,
            was.deal_id,
            was.state,
        )
        history = world.repo.history("acme", erased)
        assert [h.event for h in history][-1] == "customer_erased" and history[-1].actor == "retention"
        assert "Анна" not in history[-1].detail and "email" in history[-1].detail
        assert history[0].event == "issued"  # the earlier history is kept
    for kept in (recent_paid, old_open, nothing_held):
        assert after[kept] == before[kept]
    # The ops list and the index of what is left to erase
    assert {i.invoice_id for i in world.repo.list_by_state("acme", "paid")} >= {old_paid, recent_paid}
    assert [i.invoice_id for i in world.index.closed_with_data("acme")] == [recent_paid]


def test_a_persons_request_erases_their_closed_invoices_audited_and_names_the_open_ones(world: World) -> None:
    paid = invoice(world, ANNA, 5, "paid")
    expired = invoice(world, ANNA, 3, "expired")
    still_open = invoice(world, ANNA, 1, "open")
    other = invoice(world, BORIS, 5, "paid")
    request = LeverRequest(
        tenant_id="acme",
        key="gdpr-17",
        lever="customer_erase",
        target=Person(email="anna@example.com").reference,
        body={"email": "anna@example.com"},
        actor=Actor("ops:dpo", "152-FZ request #17"),
    )
    result = world.retention.erase_person(request, Person(email="anna@example.com"))
    assert not result.replayed
    assert {i.invoice_id for i in result.outcome.invoices} == {paid, expired}
    assert still_open in result.outcome.detail and "anna" not in result.outcome.detail.lower()
    for erased in (paid, expired):
        got = world.repo.get("acme", erased)
        assert got is not None and got.customer == Customer()
        last = world.repo.history("acme", erased)[-1]
        assert (last.event, last.actor) == ("customer_erased", "ops:dpo") and "152-FZ request #17" in last.detail
    open_now, boris = world.repo.get("acme", still_open), world.repo.get("acme", other)
    assert open_now is not None and open_now.customer == ANNA
    assert boris is not None and boris.customer == BORIS
    # A repeat with the key answers the same, erasing nothing more
    again = world.retention.erase_person(request, Person(email="anna@example.com"))
    assert again.replayed and again.outcome == result.outcome
