"""Domain events on moto's table (made from template.yaml): one event per change, also under duplicate and
concurrent notifications; a change whose publish failed (a crash, the bus down) is published by its retry or by the
outbox sweep — with the same ids; the EventBridge adapter's PutEvents entries on moto's bus."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from paybridge.app.changes import InvoiceChanges
from paybridge.app.issuing import Issuing
from paybridge.app.publishing import DomainEvents, RecordingBus
from paybridge.domain.domain_events import EVENT_TYPES, DomainEvent
from paybridge.domain.events import Close, MoneyReceived, PaymentCreated, RefundConfirmed
from paybridge.domain.invoice import AuditEntry, Closure, InvoiceState, NewInvoice, new_invoice
from paybridge.storage.dynamodb import DynamoInvoiceRepository
from paybridge.storage.errors import DuplicateProviderEvent
from paybridge.storage.event_outbox import DynamoEventOutbox
from paybridge.storage.repository import ProviderEventRecord
from tests.conftest import new_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


class NoLifecycle:
    def start(self, tenant_id: str, invoice_id: str) -> None:
        return None

    def resume(self, token: str, state: Any) -> bool:
        return False

    def publish(self, state: Any, name: str) -> None:
        return None


@dataclass
class World:
    repo: DynamoInvoiceRepository
    outbox: DynamoEventOutbox
    bus: RecordingBus
    events: DomainEvents
    changes: InvoiceChanges
    client: Any
    now: list[datetime]


@pytest.fixture
def world(moto_aws: Any) -> World:
    client, table = new_table(moto_aws, "events")
    now = [T0]
    repo = DynamoInvoiceRepository(table, client=client)
    outbox = DynamoEventOutbox(table, client=client)
    bus = RecordingBus()
    events = DomainEvents(bus, outbox, clock=lambda: now[0])
    changes = InvoiceChanges(repo, NoLifecycle(), clock=lambda: now[0], events=events)  # type: ignore[arg-type]
    return World(repo, outbox, bus, events, changes, client, now)


def issue(world: World, amount: int = 100_000) -> str:
    invoice = new_invoice(
        "acme", NewInvoice(deal_id=f"D-{uuid.uuid4().hex[:6]}", number="N-1", amount=amount), "sandbox", T0
    )
    audit = AuditEntry(at=T0, event="issued", from_state=InvoiceState.ISSUED, to_state=InvoiceState.ISSUED)
    batch = world.events.batch(f"{invoice.invoice_id}.v0", [])
    world.repo.create(invoice, audit, outbox=batch)
    return invoice.invoice_id


def ids(bus: RecordingBus) -> list[str]:
    return [e.id for e in bus.published]


def test_a_payment_and_its_duplicates_publish_each_event_once(world: World) -> None:
    # Given an invoice with a payment link
    invoice_id = issue(world)
    world.changes.apply("acme", invoice_id, PaymentCreated(payment_id="p1", payment_url="https://pay/p1"))
    # When the provider's notification of the money comes three times, and twice more from eight threads at once
    paid = MoneyReceived(ref="op-1", amount=100_000, method="sbp")
    for _ in range(3):
        world.changes.apply("acme", invoice_id, paid)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: world.changes.apply("acme", invoice_id, paid), range(16)))
    # Then each event was published exactly once, with the method, and nothing is left in the outbox
    assert world.bus.types() == ["invoice.link_published", "payment.received", "invoice.paid"]
    assert len(set(ids(world.bus))) == 3
    received = world.bus.published[1]
    assert received.data["method"] == "sbp" and received.data["received"] == 100_000
    assert received.id == f"{invoice_id}.v2.payment.received.op-1"
    assert world.bus.published[2].data["paid_by_method"] == {"sbp": 100_000}
    assert world.outbox.older_than(T0 + timedelta(days=1)) == []


def test_partial_payment_refund_and_closures_each_announce_their_event(world: World) -> None:
    first, second = issue(world), issue(world)
    world.changes.apply("acme", first, MoneyReceived(ref="a", amount=40_000, method="card"))
    world.changes.apply("acme", first, MoneyReceived(ref="b", amount=60_000, method="card"))
    world.changes.apply("acme", first, RefundConfirmed(ref="r1", amount=10_000))
    world.changes.apply("acme", first, RefundConfirmed(ref="r1", amount=10_000))  # the provider repeats itself
    world.changes.apply("acme", second, Close(closure=Closure.EXPIRED))
    assert world.bus.types() == [
        "payment.received",
        "invoice.partially_paid",
        "payment.received",
        "invoice.paid",
        "refund.succeeded",
        "invoice.expired",
    ]


def test_a_publish_lost_after_the_write_is_completed_by_the_retry(world: World) -> None:
    # Given the bus is down when the payment is written (as if the function crashed after its write)
    invoice_id = issue(world)
    world.bus.fail = True
    paid = MoneyReceived(ref="op-9", amount=100_000, method="card")

    def record() -> ProviderEventRecord:
        return ProviderEventRecord("sandbox", "evt-9", "acme", invoice_id, "payment.succeeded")

    change = world.changes.apply("acme", invoice_id, paid, record())
    assert change.changed and world.bus.published == []
    # When the provider retries its notification (which changes nothing: a duplicate)
    world.bus.fail = False
    with pytest.raises(DuplicateProviderEvent):
        world.changes.apply("acme", invoice_id, paid, record())
    # Then the retry published the change's events, once
    assert world.bus.types() == ["payment.received", "invoice.paid"]
    with pytest.raises(DuplicateProviderEvent):
        world.changes.apply("acme", invoice_id, paid, record())
    world.changes.apply("acme", invoice_id, paid)
    assert world.bus.types() == ["payment.received", "invoice.paid"]


def test_the_sweep_publishes_what_no_retry_came_for(world: World) -> None:
    invoice_id = issue(world)
    world.bus.fail = True
    world.changes.apply("acme", invoice_id, Close(closure=Closure.CANCELLED, reason="client asked"))
    world.bus.fail = False
    # A young batch is its writer's: the sweep leaves it
    assert world.events.sweep() == 0
    world.now[0] = T0 + timedelta(minutes=2)
    assert world.events.sweep() == 1
    assert world.events.sweep() == 0
    assert world.bus.types() == ["invoice.cancelled"]
    assert world.bus.published[0].id == f"{invoice_id}.v1.invoice.cancelled"


def test_issuing_publishes_invoice_issued_once_also_when_repeated(world: World) -> None:
    class Provider:
        name = "sandbox"
        min_lifetime_seconds, max_lifetime_seconds = 60, 90 * 86400

    class Tenants:
        def get(self, tenant_id: str) -> Any:
            from types import SimpleNamespace

            return SimpleNamespace(tenant_id=tenant_id, fiscal=None, link_lifetime_seconds=3600)

    issuing = Issuing(
        Tenants(),  # type: ignore[arg-type]
        world.repo,
        NoLifecycle(),  # type: ignore[arg-type]
        lambda t: Provider(),  # type: ignore[arg-type,return-value]
        lambda t: None,  # type: ignore[arg-type,return-value]
        outbox=None,  # type: ignore[arg-type]
        clock=lambda: world.now[0],
        events=world.events,
    )
    request = NewInvoice(deal_id="D-9", number="N-9", amount=5_000)
    first = issuing.issue_invoice("acme", request)
    again = issuing.issue_invoice("acme", request)
    assert first.created and not again.created
    assert world.bus.types() == ["invoice.issued"]
    assert world.bus.published[0].data["amount"] == 5_000 and "customer" not in world.bus.published[0].data


def test_eventbridge_adapter_puts_each_event_on_the_bus_in_batches_of_ten() -> None:
    import boto3
    from moto import mock_aws

    from paybridge.adapters.eventbridge import EventBridgeBus

    with mock_aws():
        events = boto3.client("events", region_name="eu-central-1")
        sqs = boto3.client("sqs", region_name="eu-central-1")
        events.create_event_bus(Name="paybridge-test")
        url = sqs.create_queue(QueueName="tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name="paid", EventBusName="paybridge-test", EventPattern=json.dumps({"detail-type": ["invoice.paid"]})
        )
        events.put_targets(Rule="paid", EventBusName="paybridge-test", Targets=[{"Id": "q", "Arn": arn}])
        bus = EventBridgeBus("paybridge-test", client=events)
        batch = [
            DomainEvent(
                id=f"inv.v{n}.{'invoice.paid' if n % 4 == 0 else 'payment.received'}",
                type="invoice.paid" if n % 4 == 0 else "payment.received",
                tenant_id="acme",
                occurred_at=T0,
                subject="inv",
                data={"n": n},
            )
            for n in range(23)
        ]
        bus.put(batch)
        got: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            got += [json.loads(m["Body"]) for m in messages]
            for m in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        # the rule routed the 6 invoice.paid events only; each carries the envelope as its detail
        assert sorted(e["detail"]["data"]["n"] for e in got) == [0, 4, 8, 12, 16, 20]
        assert {e["source"] for e in got} == {"paybridge"} and {e["detail-type"] for e in got} == {"invoice.paid"}


def test_every_event_type_has_its_committed_versioned_schema() -> None:
    from scripts.event_schemas import rendered

    files = rendered()
    assert len(files) == len(EVENT_TYPES)
    for path, text in files.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run `make event-schemas`"


def test_the_events_published_fit_their_schemas(world: World) -> None:
    from paybridge.domain.event_schemas import validate

    invoice_id = issue(world)
    world.changes.apply("acme", invoice_id, PaymentCreated(payment_id="p1", payment_url="https://pay/p1"))
    world.changes.apply("acme", invoice_id, MoneyReceived(ref="a", amount=30_000))
    world.changes.apply("acme", invoice_id, MoneyReceived(ref="b", amount=70_000, method="card"))
    world.changes.apply("acme", invoice_id, RefundConfirmed(ref="r", amount=70_000))
    assert len(world.bus.published) == 6
    for event in world.bus.published:
        validate(event.envelope())
    with pytest.raises(ValueError, match="validation error"):
        validate({**world.bus.published[0].envelope(), "data": {"invoice_id": invoice_id}})


# -- the other changes' transactional outbox: subscriptions, bank lines, drift reports ------------------------------


def _outbox_keys(world: World) -> list[str]:
    return [b.key for b in world.outbox.older_than(T0 + timedelta(days=1))]


def test_a_subscription_change_and_its_event_are_one_transaction(world: World) -> None:
    from paybridge.domain.domain_events import subscription_event
    from paybridge.domain.subscriptions import Subscription, charged
    from paybridge.storage.errors import SubscriptionConflict
    from paybridge.storage.subscriptions import DynamoSubscriptionStore

    store = DynamoSubscriptionStore(world.repo._table, client=world.client)
    sub, _ = store.create(
        Subscription(subscription_id="sub_1", tenant_id="acme", deal_id="D-1", plan="pro", amount=99_000, started_at=T0)
    )
    event = subscription_event("subscription.charged", "acme", "sub_1", 2, T0, plan="pro")
    after = charged(sub)
    # A writer that read an older version changes nothing, and announces nothing
    with pytest.raises(SubscriptionConflict):
        store.save(after, expected_version=7, due=None, outbox=world.events.batch(event.id, [event]))
    assert _outbox_keys(world) == []
    # The writer whose version holds stores the change and its event together
    store.save(after, expected_version=sub.version, due=None, outbox=world.events.batch(event.id, [event]))
    assert store.get("acme", "sub_1") == after
    assert _outbox_keys(world) == [event.id]


def test_only_the_reader_whose_bank_line_decision_is_stored_announces_it(world: World) -> None:
    from datetime import date

    from paybridge.domain.bank import Decision, StatementLine
    from paybridge.domain.domain_events import bank_line_needs_review
    from paybridge.storage.bank import DynamoBankStore

    store = DynamoBankStore(world.repo._table, client=world.client)
    line = StatementLine(
        source="1c_file", account="40702810900000000001", value_date=date(2026, 1, 5), amount=5_000, purpose="?"
    )
    review = Decision(fingerprint=line.fingerprint, kind="unmatched", reason="no number")
    event = bank_line_needs_review("acme", line.fingerprint, T0, reason="no number")
    first = store.record_line("acme", line, review, outbox=world.events.batch(event.id, [event]))
    assert first.fresh and _outbox_keys(world) == [event.id]
    # A second reader of the same line (another poll, a file uploaded twice) finds the stored decision
    world.outbox.remove(event.id)
    second = store.record_line("acme", line, review, outbox=world.events.batch(event.id, [event]))
    assert not second.fresh and second.decision == first.decision
    assert _outbox_keys(world) == []


def test_a_drift_report_and_its_event_are_written_together(world: World) -> None:
    from paybridge.app.drift import DriftReport
    from paybridge.domain.domain_events import drift_found
    from paybridge.storage.drift import DynamoDriftStore

    store = DynamoDriftStore(world.repo._table, client=world.client)
    report = DriftReport(tenant_id="acme", at=T0, invoices_checked=3, deals_checked=3, findings=(), skipped=())
    event = drift_found("acme", T0, [])
    store.save(report, outbox=world.events.batch(event.id, [event]))
    assert store.latest("acme") == [report]
    assert _outbox_keys(world) == [event.id]
