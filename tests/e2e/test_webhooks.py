"""Webhooks end to end on the local stack: a company's receiver (here, in the test) verifies every delivery with the
Standard Webhooks reference library, answers 500 once and sees the retry with the same `webhook-id`; each domain
event of a payment is published once even when the provider repeats its notification; the delivery log, a replay,
and the API's refusals."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.conftest import Api, Sandbox, payment_id_of, poll


@dataclass
class Received:
    webhook_id: str
    type: str
    subject: str
    at: float
    status: int
    verified: bool


@dataclass
class Receiver:
    """A company's webhook receiver: verifies the signature, answers 500 to the first attempt of each message."""

    secret: str = ""
    fail_first: bool = True
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
            verified = True
        except Exception:
            payload, verified = json.loads(body or b"{}"), False
        with self.lock:
            seen = any(r.webhook_id == request.headers.get("webhook-id") for r in self.received)
            status = 500 if (self.fail_first and not seen) or not verified else 200
            self.received.append(
                Received(
                    request.headers.get("webhook-id", ""),
                    payload.get("type", ""),
                    payload.get("subject", ""),
                    time.monotonic(),
                    status,
                    verified,
                )
            )
        return Response("nope" if status == 500 else "ok", status=status)(environ, start_response)

    def of(self, subject: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.subject == subject]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}/paybridge"
    server.shutdown()
    server.server_close()


@pytest.fixture
def endpoint(api: Api, receiver: tuple[Receiver, str]) -> Iterator[dict[str, Any]]:
    app, url = receiver
    created = api.http.post(
        f"/v1/{api.tenant}/webhooks",
        json={"url": url, "event_types": ["invoice.link_published", "payment.received", "invoice.paid"]},
        headers=api.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    app.secret = body["secret"]
    yield body
    assert api.http.delete(f"/v1/{api.tenant}/webhooks/{body['endpoint_id']}", headers=api.headers).status_code == 204


def published_for(http: httpx.Client, subject: str) -> list[dict[str, Any]]:
    return [e for e in http.get("/local/events").json()["events"] if e["subject"] == subject]


def test_signed_deliveries_retried_after_a_500_and_each_event_published_once(
    stack: Any, sandbox: Sandbox, api: Api, endpoint: dict[str, Any], receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    # Given a registered endpoint: its secret was answered once, and is never listed again
    assert endpoint["secret"].startswith("whsec_") and endpoint["state"] == "enabled"
    listed = api.http.get(f"/v1/{api.tenant}/webhooks", headers=api.headers).json()["webhooks"]
    assert any(w["endpoint_id"] == endpoint["endpoint_id"] for w in listed)
    assert all("secret" not in w for w in listed)
    again = api.http.post(
        f"/v1/{api.tenant}/webhooks", json={"url": url, "event_types": ["invoice.paid"]}, headers=api.headers
    )
    assert again.status_code == 409 and "secret" not in again.text
    # When a client pays an invoice, and the provider sends its notification twice more (the same event, resent)
    deal = sandbox.new_deal(amount=50_000)
    invoice = api.issue_awaiting(deal["id"], amount=50_000)
    invoice_id = invoice["invoice_id"]
    assert sandbox.pay(payment_id_of(invoice), "pay").status_code == 200
    api.wait(invoice_id, lambda i: i["state"] == "paid")
    from devstack.sandbox_psp import sign

    notification = next(d for d in reversed(stack.psp.deliveries) if d.payment_id == payment_id_of(invoice))
    for _ in range(2):
        repeat = httpx.post(
            notification.url,
            content=notification.body,
            headers={
                "Content-Type": "application/json",
                "X-Sandbox-Signature": sign(notification.secret, notification.body),
            },
        )
        assert repeat.status_code == 200
    # Then the receiver got every message verified: first a 500, then the retry with the same webhook-id
    got = poll(
        "deliveries",
        lambda: {"r": app.of(invoice_id)},
        lambda v: {r.type for r in v["r"] if r.status == 200} >= {"payment.received", "invoice.paid"},
        timeout=30,
    )["r"]
    assert all(r.verified for r in got)
    for kind in ("payment.received", "invoice.paid"):
        attempts = [r for r in got if r.type == kind]
        assert [r.status for r in attempts][:2] == [500, 200]
        assert attempts[0].webhook_id == attempts[1].webhook_id
        assert attempts[1].at - attempts[0].at >= 4.5  # the schedule's first delay: 5 s (ChangeMessageVisibility)
    # And each event of the payment was published exactly once on the bus
    events = published_for(api.http, invoice_id)
    counts = {kind: sum(e["type"] == kind for e in events) for kind in {e["type"] for e in events}}
    assert counts == {"invoice.issued": 1, "invoice.link_published": 1, "payment.received": 1, "invoice.paid": 1}
    paid = next(e for e in events if e["type"] == "payment.received")
    assert paid["data"]["method"] == "card" and paid["data"]["received"] == 50_000
    # The delivery log: the failed attempt (with its next try) and the delivered one
    log = api.http.get(f"/v1/{api.tenant}/webhooks/{endpoint['endpoint_id']}/deliveries", headers=api.headers).json()[
        "deliveries"
    ]
    mine = [line for line in log if line["event_id"] == paid["id"]]
    assert sorted((line["attempt"], line["outcome"], line["status_code"]) for line in mine) == [
        (1, "failed", 500),
        (2, "delivered", 200),
    ]
    assert next(line for line in mine if line["attempt"] == 1)["next_attempt_at"] is not None
    # A replay sends the same message again, under the same webhook-id
    app.fail_first = False
    replay = api.http.post(
        f"/v1/{api.tenant}/webhooks/{endpoint['endpoint_id']}/replay",
        json={"event_ids": [paid["id"]]},
        headers=api.headers,
    )
    assert replay.status_code == 202 and replay.json() == {"queued": 1}
    poll(
        "the replay",
        lambda: {"n": sum(r.webhook_id == paid["id"] and r.status == 200 for r in app.of(invoice_id))},
        lambda v: v["n"] == 2,
        timeout=15,
    )


def test_the_webhooks_api_refuses_bad_input_with_problems(api: Api) -> None:
    base = f"/v1/{api.tenant}/webhooks"
    cases = [
        ({"url": "http://example.com/hook", "event_types": ["invoice.paid"]}, 422),  # not https
        ({"url": "https://10.1.2.3/hook", "event_types": ["invoice.paid"]}, 422),  # a private address
        ({"url": "https://example.com/hook", "event_types": ["invoice.nope"]}, 422),
        ({"url": "https://example.com/hook", "event_types": []}, 422),
        ({"url": "https://example.com/hook"}, 422),
    ]
    for body, status in cases:
        answer = api.http.post(base, json=body, headers=api.headers)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert (
        api.http.post(base, json={"url": "https://example.com/h", "event_types": ["invoice.paid"]}).status_code == 401
    )
    missing = api.http.get(f"{base}/ep_{'a' * 26}", headers=api.headers)
    assert missing.status_code == 404 and missing.json()["type"].endswith("/webhook-not-found")
    assert api.http.delete(f"{base}/ep_{'a' * 26}", headers=api.headers).status_code == 404
    bad_replay = api.http.post(f"{base}/ep_{'a' * 26}/replay", json={}, headers=api.headers)
    assert bad_replay.status_code == 422
