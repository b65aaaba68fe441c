"""Silence is not a fact: on the local stack, against each provider's fake, a payment whose notification is lost is
found by asking the provider — at the deadline (never refunded by a cancel), by the re-check sweep (the clock moved
by the test) or by `POST …/recheck` — and a notification that still arrives later counts once."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from paybridge.app.rechecks import RecheckSweep
from paybridge.domain.rechecks import AFTER_PUBLISH
from paybridge.wiring import get_recheck_sweep
from tests.conftest import Api, Sandbox, poll


@dataclass(frozen=True)
class Provider:
    tenant: str
    fake: str
    pay: str  # the fake's control path that makes the payer pay ({pid})
    currency: str = "RUB"
    lifetime: int | None = None

    def refunded(self, stack: Any, payment_id: str) -> int:
        """Kopecks the fake gave back for this payment (a cancel of a paid T-Bank payment is a refund)."""
        fake = stack.fakes[self.fake]
        if self.fake == "tbank":
            return int(fake.payments[payment_id].refunded)
        if self.fake == "yookassa":
            return sum(1 for r in fake.refunds.values() if r.get("payment_id") == payment_id)
        intent = fake.sessions[payment_id].get("payment_intent")
        return sum(int(r["amount"]) for r in fake.refunds.values() if r.get("payment_intent") == intent)

    def status(self, stack: Any, payment_id: str) -> str:
        fake = stack.fakes[self.fake]
        if self.fake == "tbank":
            return str(fake.payments[payment_id].status)
        if self.fake == "yookassa":
            return str(fake.payments[payment_id]["status"])
        session = fake.sessions[payment_id]
        return f"{session['status']}/{session['payment_status']}"


PROVIDERS = [
    Provider("tbank-shop", "tbank", "/fake/tbank/_control/payments/{pid}/pay"),
    Provider("yookassa-shop", "yookassa", "/fake/yookassa/_control/payments/{pid}/succeed"),
    Provider("stripe-shop", "stripe", "/fake/stripe/_control/sessions/{pid}/complete", "EUR", 3600),
]
IDS = [p.fake for p in PROVIDERS]


def awaiting(http: httpx.Client, provider: Provider, amount: int) -> tuple[Api, Sandbox, dict[str, Any], str]:
    api = Api(http, tenant=provider.tenant)
    deals = Sandbox(http, tenant=provider.tenant, crm_token=f"sandbox-crm-token-{provider.tenant}")
    deal = deals.new_deal(amount=amount, currency=provider.currency)
    extra: dict[str, Any] = {"customer": {"email": "c@example.com"}, "currency": provider.currency}
    if provider.lifetime:
        extra["lifetime_seconds"] = provider.lifetime
    invoice = api.issue_awaiting(deal["id"], amount=amount, **extra)
    return api, deals, invoice, str(deal["id"])


def pay_silently(http: httpx.Client, provider: Provider, invoice: dict[str, Any]) -> None:
    """The payer pays; the provider's notification is lost on the way."""
    assert http.post(f"/fake/{provider.fake}/_control/faults", json={"lose_notification": 1}).status_code == 200
    assert http.post(provider.pay.format(pid=invoice["payment_id"])).status_code == 200


def lost_deliveries(http: httpx.Client, provider: Provider, payment_id: str) -> int:
    found = http.get(f"/fake/{provider.fake}/_control/deliveries").json()
    return sum(1 for d in found if d["lost"] and payment_id in d["body"])


def sweep_at(moment: datetime) -> RecheckSweep:
    """The deployed sweep, its clock moved by the test."""
    sweep = get_recheck_sweep()
    return RecheckSweep(sweep.tenants, sweep.repo, sweep.store, sweep.checks, sweep.throttle, lambda: moment)


@pytest.mark.parametrize("provider", PROVIDERS, ids=IDS)
def test_a_link_paid_before_its_deadline_with_the_notification_lost_ends_paid_and_nothing_is_refunded(
    stack: Any, http: httpx.Client, provider: Provider
) -> None:
    api, deals, invoice, deal_id = awaiting(http, provider, 90_000)
    pay_silently(http, provider, invoice)
    assert lost_deliveries(http, provider, invoice["payment_id"]) == 1
    assert api.get(invoice["invoice_id"])["state"] == "awaiting_payment"  # nobody told us

    # The deadline: the expiry asks the provider first
    started = time.monotonic()
    assert stack.aws.reach_deadline(provider.tenant, invoice["invoice_id"])
    paid = api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid", timeout=20)
    deals.wait_deal(deal_id, lambda d: d["stage"] == "PAID")
    seconds = time.monotonic() - started

    assert paid["paid"] == 90_000 and "paid_after_close" not in paid["flags"]
    assert provider.refunded(stack, invoice["payment_id"]) == 0  # T-Bank's Cancel on CONFIRMED would refund it all
    assert "REFUNDED" not in provider.status(stack, invoice["payment_id"])
    (entry,) = [h for h in paid["history"] if h["event"] == "money_received"]
    assert entry["actor"] == "expiry"
    assert seconds < 15


@pytest.mark.parametrize("provider", PROVIDERS, ids=IDS)
def test_the_sweep_finds_a_silent_payment_and_the_late_notification_counts_once(
    stack: Any, http: httpx.Client, provider: Provider
) -> None:
    api, deals, invoice, deal_id = awaiting(http, provider, 55_000)
    pay_silently(http, provider, invoice)

    # Ten minutes after the link was published (the clock moved): the sweep's first check asks the provider
    moment = datetime.now(UTC) + AFTER_PUBLISH[0] + timedelta(seconds=5)
    started = time.monotonic()
    summary = sweep_at(moment).run()
    assert invoice["invoice_id"] in summary.paid
    deals.wait_deal(deal_id, lambda d: d["stage"] == "PAID")
    seconds = time.monotonic() - started
    paid = api.get(invoice["invoice_id"])
    assert paid["state"] == "paid" and paid["paid"] == 55_000
    assert [h["actor"] for h in paid["history"] if h["event"] == "money_received"] == ["recheck"]
    assert seconds < 10

    # The provider's notification arrives after all (resent): it changes nothing and is acknowledged
    fake = stack.fakes[provider.fake]
    (lost,) = [d for d in fake.deliveries if d.lost and invoice["payment_id"] in d.body.decode()]
    answer = http.post(lost.url, content=lost.body, headers=lost.headers)
    assert answer.status_code == 200
    after = api.get(invoice["invoice_id"])
    assert after["paid"] == 55_000
    assert [h["event"] for h in after["history"]].count("money_received") == 1
    # …and the sweep has nothing more to ask about it
    assert invoice["invoice_id"] not in sweep_at(moment + timedelta(hours=2)).run().paid


def test_recheck_asks_the_provider_now(stack: Any, http: httpx.Client) -> None:
    provider = PROVIDERS[0]
    api, deals, invoice, deal_id = awaiting(http, provider, 12_300)
    # Nothing paid yet: the invoice stands as it was
    asked = http.post(f"/v1/{provider.tenant}/invoices/{invoice['invoice_id']}/recheck", headers=api.headers)
    assert asked.status_code == 200 and asked.json()["state"] == "awaiting_payment"
    pay_silently(http, provider, invoice)
    started = time.monotonic()
    asked = http.post(f"/v1/{provider.tenant}/invoices/{invoice['invoice_id']}/recheck", headers=api.headers)
    assert asked.status_code == 200 and asked.json()["state"] == "paid" and asked.json()["paid"] == 12_300
    deals.wait_deal(deal_id, lambda d: d["stage"] == "PAID")
    assert time.monotonic() - started < 10
    # A wrong key asks nothing
    assert http.post(f"/v1/{provider.tenant}/invoices/{invoice['invoice_id']}/recheck").status_code == 401


def test_a_provider_down_at_the_deadline_is_never_cancelled_blind_and_the_expiry_decides_once_it_is_back(
    stack: Any, http: httpx.Client
) -> None:
    provider = PROVIDERS[0]
    api, deals, invoice, deal_id = awaiting(http, provider, 77_000)
    pay_silently(http, provider, invoice)
    http.post("/fake/tbank/_control/faults", json={"unavailable": 1})  # the next request (GetState) answers 503

    assert stack.aws.reach_deadline(provider.tenant, invoice["invoice_id"])
    # The expiry could not ask: it waits (a minute; the test moves the clock again) and never cancels
    poll(
        "expiry deferred",
        lambda: stack.aws.entered_states(f"{invoice['invoice_id']}-expiry"),
        lambda states: "AskAgainLater" in states,
        15,
    )
    assert api.get(invoice["invoice_id"])["state"] == "awaiting_payment"
    assert provider.status(stack, invoice["payment_id"]) == "CONFIRMED"
    # The provider is back at the next deadline: the money is found, nothing is refunded
    assert stack.aws.reach_deadline(provider.tenant, invoice["invoice_id"])
    assert api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid", timeout=20)["paid"] == 77_000
    deals.wait_deal(deal_id, lambda d: d["stage"] == "PAID")
    assert provider.refunded(stack, invoice["payment_id"]) == 0


def test_an_unpaid_link_expires_and_only_then_is_cancelled_at_the_provider(stack: Any, http: httpx.Client) -> None:
    provider = PROVIDERS[0]
    api, deals, invoice, deal_id = awaiting(http, provider, 5_000)
    assert stack.aws.reach_deadline(provider.tenant, invoice["invoice_id"])
    assert api.wait(invoice["invoice_id"], lambda i: i["state"] == "expired", timeout=20)["paid"] == 0
    deals.wait_deal(deal_id, lambda d: d["stage"] == "EXPIRED")
    assert provider.status(stack, invoice["payment_id"]) == "CANCELED"
