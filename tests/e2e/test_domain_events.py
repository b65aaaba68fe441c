"""Domain events beyond invoices, on the local stack's bus: a subscription's charged periods and its block, a bank
line that needs a person (uploaded twice), a drift check's findings — each published exactly once, and every
payload fits its schema."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from paybridge.app.subscriptions import Subscriptions
from paybridge.domain.event_schemas import validate
from paybridge.storage.subscriptions import DynamoSubscriptionStore
from paybridge.wiring import get_domain_events, get_issuing, get_outbox, get_repo, get_tenants
from tests.conftest import Api, Sandbox, payment_id_of, poll
from tests.e2e.test_bank_transfers import incoming, statement_1c, upload
from tests.integration.test_subscriptions_on_moto import Recorder, settle, start


def published(stack: Any, **match: str) -> list[dict[str, Any]]:
    events = stack.events_published()["events"]
    return [e for e in events if all(e.get(k) == v or e["data"].get(k) == v for k, v in match.items())]


@pytest.fixture
def clock() -> list[datetime]:
    return [datetime.now(UTC)]


@pytest.fixture
def subs(stack: Any, clock: list[datetime]) -> Subscriptions:
    store = DynamoSubscriptionStore(stack.aws.table_name)
    return Subscriptions(
        get_tenants(),
        get_repo(),
        get_issuing(),
        get_outbox(),
        store,
        lambda _t, _c: Recorder(),
        lambda: clock[0],
        events=get_domain_events(),
    )


def test_a_charged_period_and_a_blocked_subscription_are_published_once(
    stack: Any, subs: Subscriptions, clock: list[datetime], sandbox: Sandbox, api: Api, unique: Any
) -> None:
    plan = unique("ev")
    sub, _ = start(subs, sandbox, api, plan)
    # Period 2 charged; the schedule runs again and again afterwards
    clock[0] = sub.next_charge_at + timedelta(minutes=1)
    subs.run_due()
    clock[0] += timedelta(minutes=1)
    subs.run_due()
    settle(subs, api, sub, f"{plan}/2", "paid")
    clock[0] += timedelta(minutes=2)
    for _ in range(3):
        subs.run_due()
    charged = poll(
        "subscription.charged",
        lambda: {"e": published(stack, type="subscription.charged", subject=sub.subscription_id)},
        lambda v: len(v["e"]) >= 1,
        10,
    )["e"]
    assert [(e["data"]["period"], e["data"]["amount"]) for e in charged] == [(2, 99_000)]
    # Then every charge declines until the subscription is blocked
    sandbox.http.post("/sandbox/psp/api/faults", json={"charge_decline": 10})
    current = subs.get("demo", sub.subscription_id)
    clock[0] = (current.next_charge_at or clock[0]) + timedelta(minutes=1)
    for attempt in range(6):
        for _ in range(3):
            if any("charging" in line for line in subs.run_due()):
                break
            clock[0] += timedelta(minutes=1)
        number = f"{plan}/3" if attempt == 0 else f"{plan}/3.{attempt}"
        settle(subs, api, sub, number, "failed")
        clock[0] += timedelta(minutes=2)
        subs.run_due()
        current = subs.get("demo", sub.subscription_id)
        if current.state == "blocked":
            break
        clock[0] = (current.next_charge_at or clock[0]) + timedelta(minutes=1)
    sandbox.http.post("/sandbox/psp/api/faults", json={"charge_decline": 0})
    assert current.state == "blocked"
    subs.run_due()
    blocked = published(stack, type="subscription.blocked", subject=sub.subscription_id)
    assert len(blocked) == 1 and blocked[0]["data"]["state"] == "blocked"
    assert len(published(stack, type="subscription.charged", subject=sub.subscription_id)) == 1
    for event in charged + blocked:
        validate(event)


def test_a_bank_line_for_a_person_is_published_once_also_when_the_statement_comes_again(
    stack: Any, http: httpx.Client, unique: Any
) -> None:
    kopecks = 100_000 + int(time.time() * 1000) % 9_000_000  # no other test's line has this amount
    purpose = f"Оплата без номера счёта {unique('x')}"
    data = statement_1c([incoming(unique("9"), f"{kopecks // 100}.{kopecks % 100:02d}", purpose)])
    for _ in range(2):
        assert upload(http, data).status_code == 200
    mine = [
        e
        for e in published(stack, type="bank.line_needs_review")
        if e["data"]["amount"] == kopecks and e["tenant_id"] == "bank-shop"
    ]
    assert len(mine) == 1 and mine[0]["data"]["decision"] == "unmatched"
    validate(mine[0])


def test_a_drift_check_that_finds_something_publishes_drift_found(
    stack: Any, http: httpx.Client, sandbox: Sandbox, api: Api
) -> None:
    deal = sandbox.new_deal(amount=33_000)
    invoice = api.issue_awaiting(deal["id"], amount=33_000)
    assert sandbox.pay(payment_id_of(invoice), "pay").status_code == 200
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    moved = http.patch(f"{sandbox.crm}/deals/{deal['id']}", json={"stage": "WON"}, headers=sandbox.auth)
    assert moved.status_code == 200
    report = http.post("/v1/demo/drift", headers={"x-api-key": "demo-ops-key", "x-actor": "anna"}).json()
    found = [
        e
        for e in published(stack, type="drift.found")
        if any(f["invoice_id"] == invoice["invoice_id"] for f in e["data"]["findings"])
    ]
    assert len(found) == 1 and found[0]["data"]["found"] == report["found"]
    validate(found[0])
