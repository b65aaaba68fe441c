"""Webhooks to a company's own systems, as the Standard Webhooks specification (standardwebhooks.com) defines them.

Each delivery is a POST of the event's JSON with three headers:
- `webhook-id`: the event's id (the same on every retry and replay: receivers dedupe by it);
- `webhook-timestamp`: seconds since the epoch when this attempt was signed (receivers refuse old ones);
- `webhook-signature`: `v1,<base64 of HMAC-SHA256 over "<id>.<timestamp>.<body>">`, keyed by the base64-decoded
  part of the endpoint's secret after `whsec_`.

Retries follow the specification's suggested schedule (immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h
and 10 h: eight attempts over ~27.6 h). An endpoint that keeps failing for at least a day is disabled (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from paybridge.domain.domain_events import EventType
from paybridge.domain.model import Model

SECRET_PREFIX = "whsec_"  # noqa: S105 - the specification's prefix, not a secret
#: Delays before the 2nd, 3rd, … attempt (seconds): the Standard Webhooks suggestion. 99,305 s in all (27.6 h).
RETRY_DELAYS: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
ATTEMPTS = len(RETRY_DELAYS) + 1
#: An endpoint is disabled when its deliveries have failed this many times in a row…
DISABLE_AFTER_FAILURES = 8
#: …and for at least this long (a short outage of a busy endpoint disables nothing).
DISABLE_AFTER = timedelta(hours=24)

EndpointId = Annotated[str, Field(pattern=r"^ep_[a-z2-7]{26}$", description="Webhook endpoint id")]
EndpointState = Literal["enabled", "disabled"]
Outcome = Literal["delivered", "failed", "gave_up", "skipped"]


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX) :])


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header's value for one attempt."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "user-agent": "PayBridge-Webhooks/1",
    }


class WebhookEndpoint(Model):
    """A company's receiver: its URL, the event types it takes, its secret (shown once, kept to sign)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    endpoint_id: EndpointId
    tenant_id: str
    url: str
    event_types: tuple[EventType, ...]
    description: str = ""
    secret: str
    created_at: datetime
    state: EndpointState = "enabled"
    disabled_reason: str = ""
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    version: int = 0

    def wants(self, event_type: str) -> bool:
        return self.state == "enabled" and event_type in self.event_types


def next_delay(attempt: int) -> int | None:
    """Seconds before attempt `attempt + 1` after attempt `attempt` (1-based) failed; None: it was the last."""
    return RETRY_DELAYS[attempt - 1] if 1 <= attempt <= len(RETRY_DELAYS) else None


def after_failure(endpoint: WebhookEndpoint, at: datetime) -> WebhookEndpoint:
    """The endpoint after one more failed attempt: disabled once it has failed long and often enough."""
    failures = endpoint.consecutive_failures + 1
    since = endpoint.failing_since or at
    update: dict[str, object] = {
        "consecutive_failures": failures,
        "failing_since": since,
        "version": endpoint.version + 1,
    }
    if endpoint.state == "enabled" and failures >= DISABLE_AFTER_FAILURES and at - since >= DISABLE_AFTER:
        update["state"] = "disabled"
        update["disabled_reason"] = f"{failures} failed deliveries in a row since {since.isoformat()}"
    return endpoint.model_copy(update=update)


def after_success(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return endpoint.model_copy(
        update={"consecutive_failures": 0, "failing_since": None, "version": endpoint.version + 1}
    )


class DeliveryAttempt(Model):
    """One line of an endpoint's delivery log."""

    model_config = ConfigDict(frozen=True)
    endpoint_id: str
    event_id: str
    event_type: str
    attempt: int
    at: datetime
    outcome: Outcome
    status_code: int | None = None
    duration_ms: int = 0
    error: str = ""
    next_attempt_at: datetime | None = None
