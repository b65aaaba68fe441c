"""Reliability on the local stack: duplicates, forgeries, garbage and disorder never count money twice or wrongly."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from paybridge.adapters.psp.sandbox import sign
from tests.conftest import PSP_SECRET, Api, Sandbox, payment_id_of, sandbox_notification

pytestmark = pytest.mark.e2e


def deliver(http: httpx.Client, body: bytes, secret: str = PSP_SECRET, signature: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Sandbox-Signature": signature or sign(secret, body)}
    return http.post("/psp/demo/sandbox", content=body, headers=headers)


def test_fifty_concurrent_deliveries_of_one_notification_count_once(
    http: httpx.Client, sandbox: Sandbox, api: Api
) -> None:
    deal = sandbox.new_deal(amount=100_000)
    invoice = api.issue_awaiting(deal["id"], amount=100_000)
    body = sandbox_notification(invoice, amount=60_000)

    # When the same notification arrives 50 times at once
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: deliver(http, body), range(50)))

    # Then every delivery is acknowledged the way the provider expects, and the money is counted once
    assert [(a.status_code, a.text) for a in answers] == [(200, "OK")] * 50
    after = api.get(invoice["invoice_id"])
    assert after["paid"] == 60_000 and after["state"] == "partially_paid"
    assert [h["event"] for h in after["history"]].count("money_received") == 1


def test_bad_signature_is_rejected_and_changes_nothing(http: httpx.Client, sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=10_000)
    invoice = api.issue_awaiting(deal["id"], amount=10_000)
    before = api.get(invoice["invoice_id"])
    body = sandbox_notification(invoice)
    for response in (
        deliver(http, body, secret="not-the-merchant-secret"),
        deliver(http, body, signature=sign(PSP_SECRET, body, timestamp=int(time.time()) - 3600)),  # stale replay
        deliver(http, body.replace(b'"amount": 10000', b'"amount": 99999'), signature=sign(PSP_SECRET, body)),
        http.post("/psp/demo/sandbox", content=body, headers={"Content-Type": "application/json"}),
    ):
        assert response.status_code == 401, response.text
        problem = response.json()
        assert problem["status"] == 401 and problem["type"].endswith("/invalid-signature") and problem["detail"]
    assert api.get(invoice["invoice_id"]) == before
    # The genuine notification with the same event id is still accepted afterwards: nothing was recorded
    assert deliver(http, body).text == "OK"
    api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b"{}", b'{"event_id": "evt_1", "type": "payment.succeeded"}', b"[1, 2, 3]"],
    ids=["garbage", "empty-object", "missing-fields", "array"],
)
def test_malformed_bodies_get_400_and_change_nothing(
    http: httpx.Client, sandbox: Sandbox, api: Api, body: bytes
) -> None:
    deal = sandbox.new_deal(amount=10_000)
    invoice = api.issue_awaiting(deal["id"], amount=10_000)
    before = api.get(invoice["invoice_id"])
    response = deliver(http, body)  # correctly signed, badly shaped
    assert response.status_code == 400
    assert response.json()["type"].endswith("/malformed-notification")
    assert api.get(invoice["invoice_id"]) == before


def test_out_of_order_events_end_in_the_right_state(http: httpx.Client, sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=100_000)
    invoice = api.issue_awaiting(deal["id"], amount=100_000)
    second_part = sandbox_notification(invoice, amount=70_000)
    first_part = sandbox_notification(invoice, amount=30_000)
    late_decline = sandbox_notification(invoice, kind="payment.declined")

    # The second part arrives first, then an old decline, then the first part
    for body in (second_part, late_decline, first_part, second_part):
        assert deliver(http, body).text == "OK"

    final = api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")
    assert final["paid"] == 100_000
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    # A decline that arrives after payment changes nothing
    assert deliver(http, sandbox_notification(invoice, kind="payment.declined")).text == "OK"
    assert api.get(invoice["invoice_id"])["state"] == "paid"


def test_notification_for_unknown_payment_is_refused_so_the_provider_retries(http: httpx.Client) -> None:
    fake = {"invoice_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa", "amount": 100, "payment_url": "http://x/pay/pay_unknown"}
    response = deliver(http, sandbox_notification(fake))
    assert response.status_code == 404
    assert response.json()["type"].endswith("/unknown-payment")


def test_notification_we_do_not_answer_is_retried_by_the_sandbox_psp(
    stack: Any, http: httpx.Client, sandbox: Sandbox, api: Api
) -> None:
    deal = sandbox.new_deal(amount=10_000)
    invoice = api.issue_awaiting(deal["id"], amount=10_000)
    # Given the webhook route fails the first delivery (as a crashed handler would)
    original = stack.aws._handlers["PspWebhookFunction"]
    calls = {"n": 0}

    def flaky(event: dict[str, Any], context: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            return {"statusCode": 500, "body": "boom"}
        return original(event, context)

    stack.aws._handlers["PspWebhookFunction"] = flaky
    try:
        paid = sandbox.pay(payment_id_of(invoice)).json()
        api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid", timeout=30)
    finally:
        stack.aws._handlers["PspWebhookFunction"] = original

    def attempts() -> list[int]:
        log = http.get("/sandbox/psp/api/deliveries").json()
        return [a["status"] for d in log if d["event_id"] == paid["event_id"] for a in d["attempts"]]

    # the PSP logs its attempt once our answer reached it, a moment after the invoice is paid
    deadline = time.monotonic() + 10
    while len(attempts()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert attempts() == [500, 200]
