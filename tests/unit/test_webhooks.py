"""Webhook signing against the Standard Webhooks reference library, the retry schedule, disabling an endpoint that
keeps failing (and telling the manager), URL checks — the service with in-memory fakes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from paybridge.app.errors import WebhookInvalid
from paybridge.app.webhooks import DeliveryMessage, Webhooks, WebhookUnreachable, check_url, new_secret
from paybridge.domain.webhooks import ATTEMPTS, RETRY_DELAYS, DeliveryAttempt, WebhookEndpoint, headers, next_delay

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_signatures_verify_with_the_reference_library_and_tampering_fails() -> None:
    secret = new_secret()
    body = json.dumps({"id": "inv_x.v2.invoice.paid", "type": "invoice.paid", "data": {"amount": 100}})
    now = int(datetime.now(UTC).timestamp())
    signed = headers(secret, "inv_x.v2.invoice.paid", now, body)
    assert signed["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, signed)["type"] == "invoice.paid"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("100", "900"), signed)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, signed)
    with pytest.raises(WebhookVerificationError):  # the id is signed too
        Webhook(secret).verify(body, {**signed, "webhook-id": "another"})


def test_the_retry_schedule_spans_more_than_a_day() -> None:
    assert sum(RETRY_DELAYS) >= 24 * 3600 and max(RETRY_DELAYS) <= 43_200  # each step fits one visibility timeout
    assert [next_delay(n) for n in range(1, ATTEMPTS + 1)] == [*RETRY_DELAYS, None]


@pytest.mark.parametrize(
    ("url", "local", "ok"),
    [
        ("https://hooks.example.com/paybridge", False, True),
        ("http://hooks.example.com/paybridge", False, False),
        ("https://127.0.0.1/x", False, False),
        ("https://10.0.0.5/x", False, False),
        ("https://169.254.169.254/latest", False, False),
        ("https://[::1]/x", False, False),
        ("https://user:pw@hooks.example.com/x", False, False),
        ("https://metadata.internal/x", False, False),
        ("http://127.0.0.1:8080/x", True, True),
        ("http://10.0.0.5/x", True, False),
    ],
)
def test_webhook_urls_must_be_https_to_a_public_host(url: str, local: bool, ok: bool) -> None:
    if ok:
        check_url(url, local)
    else:
        with pytest.raises(WebhookInvalid):
            check_url(url, local)


@dataclass
class FakeStore:
    endpoint: WebhookEndpoint
    messages: dict[str, dict[str, str]] = field(default_factory=dict)
    log_lines: list[DeliveryAttempt] = field(default_factory=list)

    def get_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        return self.endpoint

    def save_endpoint(self, endpoint: WebhookEndpoint, expected_version: int) -> None:
        assert self.endpoint.version == expected_version
        self.endpoint = endpoint

    def get_message(self, tenant_id: str, endpoint_id: str, event_id: str) -> dict[str, str] | None:
        return self.messages.get(event_id)

    def set_message_status(self, tenant_id: str, endpoint_id: str, event_id: str, status: str) -> None:
        self.messages[event_id]["status"] = status

    def log(self, tenant_id: str, attempt: DeliveryAttempt) -> None:
        self.log_lines.append(attempt)


@dataclass
class FakeQueue:
    delays: list[int] = field(default_factory=list)

    def send(self, messages: Any) -> None:
        return None

    def delay(self, receipt_handle: str, seconds: int) -> None:
        self.delays.append(seconds)


@dataclass
class DownReceiver:
    calls: int = 0

    def post(self, url: str, headers: dict[str, str], body: str) -> int:
        self.calls += 1
        raise WebhookUnreachable("ConnectError: refused")


@dataclass
class CrmNotes:
    sent: list[Any] = field(default_factory=list)

    def publish(self, message: Any) -> None:
        self.sent.append(message)


def test_an_endpoint_down_for_a_day_is_disabled_after_the_schedule_and_the_manager_told() -> None:
    # Given an endpoint and one message of a paid invoice, and a receiver that never answers
    endpoint = WebhookEndpoint(
        endpoint_id="ep_" + "a" * 26,
        tenant_id="acme",
        url="https://hooks.example.com/x",
        event_types=("invoice.paid",),
        secret=new_secret(),
        created_at=T0,
    )
    body = json.dumps({"id": "e1", "type": "invoice.paid", "data": {"deal_id": "D-1", "invoice_id": "inv_1"}})
    store = FakeStore(endpoint, {"e1": {"sk": "e1", "body": body, "event_type": "invoice.paid", "status": "queued"}})
    queue, receiver, notes = FakeQueue(), DownReceiver(), CrmNotes()
    now = [T0]
    hooks = Webhooks(None, store, queue, receiver, notes, clock=lambda: now[0])  # type: ignore[arg-type]
    message = DeliveryMessage(tenant_id="acme", endpoint_id=endpoint.endpoint_id, event_id="e1")
    # When every attempt of the schedule fails, each one when SQS hands the message back
    outcomes = []
    for attempt in range(1, ATTEMPTS + 1):
        outcomes.append(hooks.deliver(message, attempt, f"rh-{attempt}"))
        if attempt <= len(RETRY_DELAYS):
            now[0] += timedelta(seconds=RETRY_DELAYS[attempt - 1])
    # Then it was retried on the schedule, given up after the eighth attempt, ~27.6 h later, and only then disabled
    assert outcomes == [False] * (ATTEMPTS - 1) + [True]
    assert queue.delays == list(RETRY_DELAYS) and receiver.calls == ATTEMPTS
    assert [line.outcome for line in store.log_lines] == ["failed"] * (ATTEMPTS - 1) + ["gave_up"]
    assert store.endpoint.state == "disabled" and store.messages["e1"]["status"] == "failed"
    assert len(notes.sent) == 1 and notes.sent[0].deal_id == "D-1"
    assert notes.sent[0].ops[0].kind == "notify_manager" and "отключён" in notes.sent[0].ops[0].text
    # And a disabled endpoint receives nothing more (the message is dropped, logged as skipped)
    assert hooks.deliver(message, 1, "rh-x") is True and receiver.calls == ATTEMPTS
    assert store.log_lines[-1].outcome == "skipped"


def test_a_short_outage_of_a_busy_endpoint_disables_nothing() -> None:
    endpoint = WebhookEndpoint(
        endpoint_id="ep_" + "b" * 26,
        tenant_id="acme",
        url="https://hooks.example.com/x",
        event_types=("invoice.paid",),
        secret=new_secret(),
        created_at=T0,
    )
    messages = {
        f"e{n}": {"sk": f"e{n}", "body": "{}", "event_type": "invoice.paid", "status": "queued"} for n in range(30)
    }
    store = FakeStore(endpoint, messages)
    hooks = Webhooks(None, store, FakeQueue(), DownReceiver(), CrmNotes(), clock=lambda: T0)  # type: ignore[arg-type]
    for n in range(30):  # thirty first attempts failing within one minute
        hooks.deliver(DeliveryMessage(tenant_id="acme", endpoint_id=endpoint.endpoint_id, event_id=f"e{n}"), 1, "rh")
    assert store.endpoint.state == "enabled" and store.endpoint.consecutive_failures == 30


@dataclass
class FanOutStore(FakeStore):
    reads: list[str] = field(default_factory=list)
    added: list[tuple[str, str]] = field(default_factory=list)

    def endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        self.reads.append(tenant_id)
        return [self.endpoint] if tenant_id == self.endpoint.tenant_id else []

    def add_message(self, tenant_id: str, endpoint_id: str, event_id: str, kind: str, body: str, at: Any) -> bool:
        self.added.append((tenant_id, event_id))
        return True


def test_a_batch_of_events_reads_each_tenants_endpoints_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.webhook_fanout import app

    endpoint = WebhookEndpoint(
        endpoint_id="ep_" + "b" * 26,
        tenant_id="acme",
        url="https://hooks.example.com/x",
        event_types=("invoice.paid", "payment.received"),
        secret=new_secret(),
        created_at=T0,
    )
    store = FanOutStore(endpoint)
    hooks = Webhooks(None, store, FakeQueue(), DownReceiver(), CrmNotes(), clock=lambda: T0)  # type: ignore[arg-type]
    monkeypatch.setattr(app, "get_webhooks", lambda: hooks)

    def record(k: int, tenant: str, kind: str) -> dict[str, Any]:
        envelope = {"id": f"e{k}", "type": kind, "tenant_id": tenant, "data": {}}
        return {"messageId": f"m{k}", "receiptHandle": f"rh{k}", "body": json.dumps({"detail": envelope})}

    records = [
        record(1, "acme", "payment.received"),
        record(2, "acme", "invoice.paid"),
        record(3, "other", "invoice.paid"),
        record(4, "acme", "invoice.expired"),  # not wanted by the endpoint
        {"messageId": "m5", "receiptHandle": "rh5", "body": "not json"},
        record(6, "acme", "invoice.paid"),
    ]
    from devstack.aws import LambdaContext

    answer = app.lambda_handler({"Records": records}, LambdaContext("WebhookFanoutFunction", "req-1"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m5"}]}  # the bad record alone comes back
    assert store.reads == ["acme", "other"]  # one read per tenant for the whole batch, not one per event
    assert store.added == [("acme", "e1"), ("acme", "e2"), ("acme", "e6")]
