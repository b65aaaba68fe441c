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
from paybridge.domain.bank import Decision, StatementLine
from paybridge.domain.events import Close, MoneyReceived
from paybridge.domain.invoice import AuditEntry, Closure, Customer, InvoiceState, NewInvoice, new_invoice
from paybridge.domain.subscriptions import Subscription, cancel
from paybridge.storage.bank import DynamoBankStore
from paybridge.storage.dynamodb import DynamoInvoiceRepository
from paybridge.storage.lever_keys import DynamoLeverKeys
from paybridge.storage.retention import DynamoRetentionIndex
from paybridge.storage.subscriptions import DynamoSubscriptionStore
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
    subs: DynamoSubscriptionStore
    bank: DynamoBankStore


@pytest.fixture
def world(moto_aws: Any) -> World:
    client, table = new_table(moto_aws, "retention")
    repo = DynamoInvoiceRepository(table, client=client)
    changes = InvoiceChanges(repo, NoLifecycle(), clock=lambda: NOW)  # type: ignore[arg-type]
    index = DynamoRetentionIndex(table, client=client)
    runner = LeverRunner(DynamoLeverKeys(table, client=client))
    subs, bank = DynamoSubscriptionStore(table, client=client), DynamoBankStore(table, client=client)
    retention = Retention(Tenants(30), index, changes, runner, subscriptions=subs, bank=bank, clock=lambda: NOW)
    return World(repo, changes, retention, index, subs, bank)


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
    assert world.retention.sweep() == {"acme": {"invoices": 2, "subscriptions": 0, "bank_lines": 0}}
    assert world.retention.sweep() == {"acme": {"invoices": 0, "subscriptions": 0, "bank_lines": 0}}
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


def subscription(world: World, customer: Customer, plan: str, cancelled_days_ago: int | None) -> str:
    started = NOW - timedelta(days=400)
    sub = Subscription(
        subscription_id=f"sub_{plan}",
        tenant_id="acme",
        deal_id=f"D-{plan}",
        plan=plan,
        amount=99_000,
        customer=customer,
        started_at=started,
        state="active",
        next_charge_at=NOW + timedelta(days=3),
    )
    stored, _ = world.subs.create(sub)
    if cancelled_days_ago is not None:
        world.subs.save(cancel(stored, NOW - timedelta(days=cancelled_days_ago)), stored.version, due=None)
    return sub.subscription_id


def bank_line(world: World, payer_inn: str, days_ago: int, review: bool = False) -> StatementLine:
    line = StatementLine(
        source="1c_file",
        account="40702810900000000001",
        value_date=(NOW - timedelta(days=days_ago)).date(),
        amount=10_000 + days_ago,
        purpose=f"Оплата по счёту N-{days_ago}",
        payer_name="ИП Петрова Анна",
        payer_inn=payer_inn,
        payer_account="40802810400000000777",
    )
    kind = "unmatched" if review else "paid"
    world.bank.record_line("acme", line, Decision(fingerprint=line.fingerprint, kind=kind, reason="test"))
    world.bank.mark_applied("acme", line.fingerprint)
    return line


def _recorded(world: World, line: StatementLine, days_ago: int) -> None:
    """Back-date a line's recording (the sweep counts the period from it)."""
    when = (NOW - timedelta(days=days_ago)).isoformat()
    world.bank.client.update_item(
        TableName=world.bank._table,
        Key={"pk": {"S": f"BANK#acme#{line.fingerprint}"}, "sk": {"S": "LINE"}},
        UpdateExpression="SET recorded_at = :w, gsi6sk = :s",
        ExpressionAttributeValues={":w": {"S": when}, ":s": {"S": f"{when}#{line.fingerprint}"}},
    )


def test_the_sweep_erases_closed_subscriptions_and_done_bank_lines_past_the_period(world: World) -> None:
    old_cancelled = subscription(world, ANNA, "old", cancelled_days_ago=40)
    recent_cancelled = subscription(world, ANNA, "recent", cancelled_days_ago=5)
    active = subscription(world, ANNA, "active", cancelled_days_ago=None)
    old_done, old_review, recent = bank_line(world, ANNA.inn or "", 40), bank_line(world, "7700000001", 41, True), None
    recent = bank_line(world, ANNA.inn or "", 2)
    for line, days in ((old_done, 40), (old_review, 41), (recent, 2)):
        _recorded(world, line, days)
    assert world.retention.sweep() == {"acme": {"invoices": 0, "subscriptions": 1, "bank_lines": 1}}
    assert world.retention.sweep() == {"acme": {"invoices": 0, "subscriptions": 0, "bank_lines": 0}}
    # The subscription closed 40 days ago lost its customer; plan, money and periods stay
    erased = world.subs.get("acme", old_cancelled)
    assert erased is not None and erased.customer == Customer() and erased.customer_erased_at == NOW
    assert (erased.plan, erased.amount, erased.state, erased.deal_id) == ("old", 99_000, "cancelled", "D-old")
    for kept in (recent_cancelled, active):
        got = world.subs.get("acme", kept)
        assert got is not None and got.customer == ANNA
    # The done line past the period lost its payer; date, amount, purpose and its decision stay, and the line as the
    # bank sends it again is still found (done: never applied twice)
    record = world.bank.get_line("acme", old_done.fingerprint)
    assert record is not None and record.done
    assert (record.line.payer_name, record.line.payer_inn, record.line.payer_account) == ("", None, None)
    assert (record.line.amount, record.line.purpose, record.line.value_date) == (
        old_done.amount,
        old_done.purpose,
        old_done.value_date,
    )
    assert record.decision.kind == "paid"
    # The line waiting for a person, and the recent one, keep their payer
    for kept_line in (old_review, recent):
        got_line = world.bank.get_line("acme", kept_line.fingerprint)
        assert got_line is not None and got_line.line == kept_line
    assert world.bank.with_payer_data("acme") == [old_review.fingerprint, recent.fingerprint]


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


def test_a_persons_request_by_inn_erases_their_closed_subscriptions_and_the_bank_lines_they_paid(world: World) -> None:
    cancelled = subscription(world, ANNA, "gone", cancelled_days_ago=1)
    active = subscription(world, ANNA, "live", cancelled_days_ago=None)
    hers, someone_elses = bank_line(world, ANNA.inn or "", 1), bank_line(world, "7700000001", 2)
    request = LeverRequest(
        tenant_id="acme",
        key="gdpr-18",
        lever="customer_erase",
        target=Person(inn=ANNA.inn).reference,
        body={"inn": ANNA.inn},
        actor=Actor("ops:dpo", "152-FZ request #18"),
    )
    result = world.retention.erase_person(request, Person(inn=ANNA.inn))
    assert "0 invoice(s), 1 subscription(s), 1 bank line(s) erased" in result.outcome.detail
    gone, live = world.subs.get("acme", cancelled), world.subs.get("acme", active)
    assert gone is not None and gone.customer == Customer()
    assert live is not None and live.customer == ANNA  # active: its notices and receipts need it
    got_hers, got_other = (
        world.bank.get_line("acme", hers.fingerprint),
        world.bank.get_line("acme", someone_elses.fingerprint),
    )
    assert got_hers is not None and got_hers.line.payer_inn is None and got_hers.line.payer_name == ""
    assert got_other is not None and got_other.line == someone_elses


def test_the_backfill_puts_an_older_releases_closed_subscriptions_and_lines_in_the_retentions_reach(
    world: World,
) -> None:
    from scripts.backfill_retention_index import backfill

    cancelled = subscription(world, ANNA, "older", cancelled_days_ago=40)
    active = subscription(world, ANNA, "running", cancelled_days_ago=None)
    line = bank_line(world, ANNA.inn or "", 40)
    _recorded(world, line, 40)
    client, table = world.bank.client, world.bank._table
    # Given the items as an older release wrote them: no retention keys, no `closed_at`
    for key in (
        {"pk": {"S": f"SUB#acme#{cancelled}"}, "sk": {"S": "SUBSCRIPTION"}},
        {"pk": {"S": f"BANK#acme#{line.fingerprint}"}, "sk": {"S": "LINE"}},
    ):
        client.update_item(TableName=table, Key=key, UpdateExpression="REMOVE gsi6pk, gsi6sk")
    assert world.retention.sweep()["acme"] == {"invoices": 0, "subscriptions": 0, "bank_lines": 0}
    assert backfill(client, table, dry_run=True) == {"subscriptions": 1, "bank_lines": 1, "indexed": 0}

    assert backfill(client, table) == {"subscriptions": 1, "bank_lines": 1, "indexed": 2}
    assert backfill(client, table)["indexed"] == 0  # again: nothing
    assert world.retention.sweep()["acme"] == {"invoices": 0, "subscriptions": 1, "bank_lines": 1}
    running = world.subs.get("acme", active)
    assert running is not None and running.customer == ANNA
