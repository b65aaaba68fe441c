"""Recurring payments on the local stack with the clock moved by the test: the first payment saves the method, a
notice before each charge, charges over several periods through the invoice lifecycle, one failed charge retried
on the dunning schedule, and a subscription blocked after its last retry with the CRM told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paybridge.app.subscriptions import Subscriptions
from paybridge.domain.invoice import Customer, invoice_id_for
from paybridge.storage.subscriptions import DynamoSubscriptionStore
from paybridge.wiring import get_issuing, get_outbox, get_repo, get_tenants
from tests.conftest import Api, Sandbox, poll


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, subject: str, text: str, deal_id: str) -> None:
        self.sent.append((to, text))


@pytest.fixture
def clock() -> list[datetime]:
    return [datetime.now(UTC)]


@pytest.fixture
def subs(stack: Any, clock: list[datetime]) -> tuple[Subscriptions, Recorder]:
    recorder = Recorder()
    store = DynamoSubscriptionStore(stack.aws.table_name)
    subs = Subscriptions(
        get_tenants(), get_repo(), get_issuing(), get_outbox(), store, lambda _t, _c: recorder, lambda: clock[0]
    )
    return subs, recorder


def start(subs: Subscriptions, sandbox: Sandbox, api: Api, plan: str) -> tuple[Any, str]:
    deal = sandbox.new_deal(amount=99_000)
    customer = Customer(email="sub@example.com", phone="+79990002233")
    sub, first, created = subs.subscribe("demo", str(deal["id"]), plan, 99_000, "month", customer)
    assert created and sub.state == "awaiting_first_payment"
    invoice = api.wait(first.invoice.invoice_id, lambda i: i["state"] == "awaiting_payment")
    assert sandbox.pay(invoice["payment_url"].rsplit("/", 1)[-1]).status_code == 200
    active = poll(
        "subscription active",
        lambda: {"s": subs.get("demo", sub.subscription_id)},
        lambda v: v["s"].state == "active",
        15,
    )["s"]
    assert active.method and active.period_index == 2
    return active, str(deal["id"])


def settle(subs: Subscriptions, api: Api, sub: Any, number: str, state: str) -> None:
    invoice_id = invoice_id_for("demo", sub.deal_id, number)
    api.wait(invoice_id, lambda i: i["state"] == state, timeout=20)


def test_a_subscription_over_three_periods_with_one_failed_charge(
    subs: tuple[Subscriptions, Recorder], clock: list[datetime], sandbox: Sandbox, api: Api, unique: Any
) -> None:
    service, recorder = subs
    plan = unique("pro")
    sub, _ = start(service, sandbox, api, plan)
    # A day before the charge: the notice, once
    clock[0] = sub.next_charge_at - timedelta(hours=23)
    assert any("notice for period 2" in line for line in service.run_due())
    assert service.run_due() == [] and any("будет списано 990.00 RUB" in t for _, t in recorder.sent)
    # The charge: a new invoice that carries the saved method; the lifecycle charges it
    clock[0] = sub.next_charge_at + timedelta(minutes=1)
    assert any("charging period 2" in line for line in service.run_due())
    settle(service, api, sub, f"{plan}/2", "paid")
    clock[0] += timedelta(minutes=2)
    assert any("period 2 paid" in line for line in service.run_due())
    third = service.get("demo", sub.subscription_id)
    assert third.period_index == 3 and third.next_charge_at is not None
    assert third.next_charge_at - sub.next_charge_at >= timedelta(days=28)  # one month on
    # Period 3: the bank declines once; the dunning schedule retries a day later and it goes through
    sandbox.http.post("/sandbox/psp/api/faults", json={"charge_decline": 1})
    clock[0] = third.next_charge_at + timedelta(minutes=1)
    service.run_due()  # notice and/or charge
    clock[0] += timedelta(minutes=1)
    service.run_due()
    settle(service, api, sub, f"{plan}/3", "failed")
    clock[0] += timedelta(minutes=2)
    assert any("charge failed, retry" in line for line in service.run_due())
    assert service.get("demo", sub.subscription_id).state == "past_due"
    clock[0] += timedelta(hours=24, minutes=1)
    assert any("charging period 3 (attempt 2)" in line for line in service.run_due())
    settle(service, api, sub, f"{plan}/3.1", "paid")
    clock[0] += timedelta(minutes=2)
    assert any("period 3 paid" in line for line in service.run_due())
    after = service.get("demo", sub.subscription_id)
    assert after.state == "active" and after.period_index == 4 and after.failed_attempts == 0
    assert service.mrr().get("RUB", 0) >= 99_000


def test_after_the_last_failed_retry_the_subscription_is_blocked_and_the_crm_told(
    subs: tuple[Subscriptions, Recorder], clock: list[datetime], sandbox: Sandbox, api: Api, unique: Any
) -> None:
    service, _ = subs
    plan = unique("basic")
    sub, deal_id = start(service, sandbox, api, plan)
    sandbox.http.post("/sandbox/psp/api/faults", json={"charge_decline": 10})
    clock[0] = sub.next_charge_at + timedelta(minutes=1)
    numbers = [f"{plan}/2", f"{plan}/2.1", f"{plan}/2.2", f"{plan}/2.3"]
    for number in numbers:
        for _ in range(3):  # notice (first time), then the charge
            lines = service.run_due()
            if any("charging" in line for line in lines):
                break
            clock[0] += timedelta(minutes=1)
        settle(service, api, sub, number, "failed")
        clock[0] += timedelta(minutes=2)
        outcome = service.run_due()
        current = service.get("demo", sub.subscription_id)
        if current.state == "blocked":
            assert any("blocked after the last retry" in line for line in outcome)
            break
        clock[0] = (current.next_charge_at or clock[0]) + timedelta(minutes=1)
    assert service.get("demo", sub.subscription_id).state == "blocked"
    sandbox.http.post("/sandbox/psp/api/faults", json={"charge_decline": 0})
    # the comment and the manager's notice are two writes (in this order): wait for the last
    blocked = sandbox.wait_deal(deal_id, lambda d: any("заблокирована" in n["text"] for n in d["notifications"]))
    assert blocked["stage"] == "FAILED" and any("заблокирована" in n["text"] for n in blocked["notifications"])
