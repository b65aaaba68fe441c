"""Signed webhooks to a company's own systems (Standard Webhooks, see `domain/webhooks.py`).

- `create` / `list` / `delete`: a tenant's endpoints (a URL and the event types it takes); the secret is answered
  once, when the endpoint is created.
- `fan_out` (WebhookFanoutFunction, fed by an EventBridge rule through an SQS queue): each event becomes one message
  per endpoint that takes its type — recorded once (a conditional put, so EventBridge's at-least-once delivery sends
  one message) and queued on the delivery queue.
- `deliver` (WebhookDeliveryFunction, the delivery queue's consumer): one signed POST per attempt, every attempt in
  the delivery log. A failed attempt is retried by SQS itself: the message's visibility is set to the next delay of
  the schedule (ChangeMessageVisibility, at most 12 h each) and it is reported failed, so it comes back then; after
  the eighth attempt (~27.6 h) it is given up. An endpoint that keeps failing for a day is disabled and the manager
  told (a note on the deal of the event, through the CRM outbox).
- `replay`: messages of an endpoint queued again (the same `webhook-id`: receivers dedupe by it)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import ConfigDict

from paybridge.adapters.outbox import CrmOutbox
from paybridge.app.errors import WebhookInvalid, WebhookNotFound
from paybridge.domain.deal_sync import DealOp, DealUpdate
from paybridge.domain.domain_events import EventType
from paybridge.domain.model import Model
from paybridge.domain.webhooks import (
    ATTEMPTS,
    SECRET_PREFIX,
    DeliveryAttempt,
    WebhookEndpoint,
    after_failure,
    after_success,
    headers,
    next_delay,
)
from paybridge.storage.errors import ConcurrentModification
from paybridge.storage.webhooks import DynamoWebhookStore
from paybridge.tenants import TenantDirectory

logger = logging.getLogger(__name__)

MAX_ENDPOINTS = 20
MAX_REPLAY = 500


class DeliveryMessage(Model):
    """One message on the delivery queue: which event, to which endpoint."""

    model_config = ConfigDict(frozen=True)
    tenant_id: str
    endpoint_id: str
    event_id: str
    replay: int = 0


class DeliveryQueue(Protocol):
    def send(self, messages: Sequence[DeliveryMessage]) -> None: ...

    def delay(self, receipt_handle: str, seconds: int) -> None: ...


class WebhookPoster(Protocol):
    def post(self, url: str, headers: dict[str, str], body: str) -> int:
        """POST and answer the status code; raise OSError-like errors (`WebhookUnreachable`) when none came."""
        ...


class WebhookUnreachable(Exception):
    """No HTTP answer (connection refused, timeout, TLS)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def endpoint_id_for(tenant_id: str, url: str) -> str:
    """One endpoint per URL and tenant: a repeated create names the same endpoint (409, the secret is not shown)."""
    digest = hashlib.sha256(f"{tenant_id}\x1f{url}".encode()).digest()
    return "ep_" + base64.b32encode(digest).decode("ascii").lower()[:26]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def check_url(url: str, allow_local: bool) -> None:
    """https only, to a public host (no loopback, private or link-local address); the local stack may use http to
    127.0.0.1/localhost."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise WebhookInvalid("the URL needs a host")
    if parts.username or parts.password:
        raise WebhookInvalid("the URL must not carry credentials")
    local = host in ("localhost", "127.0.0.1", "::1")
    if allow_local and local and parts.scheme in ("http", "https"):
        return
    if parts.scheme != "https":
        raise WebhookInvalid("webhook URLs must be https")
    if local or host.endswith(".localhost") or host.endswith(".internal"):
        raise WebhookInvalid("webhook URLs must name a public host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address.is_global:
        raise WebhookInvalid("webhook URLs must name a public host")


@dataclass
class Webhooks:
    tenants: TenantDirectory
    store: DynamoWebhookStore
    queue: DeliveryQueue
    poster: WebhookPoster
    crm_outbox: CrmOutbox
    clock: Callable[[], datetime] = utc_now
    allow_local_urls: bool = False

    # -- endpoints -----------------------------------------------------------------------------------------------------

    def create(
        self, tenant_id: str, url: str, event_types: Sequence[EventType], description: str = ""
    ) -> WebhookEndpoint:
        self.tenants.get(tenant_id)
        check_url(url, self.allow_local_urls)
        if not event_types:
            raise WebhookInvalid("name at least one event type")
        if len(self.store.endpoints(tenant_id)) >= MAX_ENDPOINTS:
            raise WebhookInvalid(f"a tenant may have at most {MAX_ENDPOINTS} webhook endpoints")
        endpoint = WebhookEndpoint(
            endpoint_id=endpoint_id_for(tenant_id, url),
            tenant_id=tenant_id,
            url=url,
            event_types=tuple(dict.fromkeys(event_types)),
            description=description,
            secret=new_secret(),
            created_at=self.clock(),
        )
        self.store.add_endpoint(endpoint)  # WebhookExists: 409
        logger.info("webhook endpoint %s created for %s", endpoint.endpoint_id, tenant_id)
        return endpoint

    def endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        self.tenants.get(tenant_id)
        return sorted(self.store.endpoints(tenant_id), key=lambda e: e.created_at)

    def get(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
        self.tenants.get(tenant_id)
        endpoint = self.store.get_endpoint(tenant_id, endpoint_id)
        if endpoint is None:
            raise WebhookNotFound(endpoint_id)
        return endpoint

    def delete(self, tenant_id: str, endpoint_id: str) -> None:
        self.tenants.get(tenant_id)
        if not self.store.delete_endpoint(tenant_id, endpoint_id):
            raise WebhookNotFound(endpoint_id)

    def deliveries(self, tenant_id: str, endpoint_id: str, limit: int = 100) -> list[DeliveryAttempt]:
        self.get(tenant_id, endpoint_id)
        return self.store.deliveries(tenant_id, endpoint_id, limit)

    def replay(
        self,
        tenant_id: str,
        endpoint_id: str,
        event_ids: Sequence[str] = (),
        since: datetime | None = None,
        only_failed: bool = True,
    ) -> int:
        """Queue messages of the endpoint again: the named events, or those since `since` (only the failed ones,
        unless `only_failed` is false). A disabled endpoint is enabled again by a replay. Answers how many."""
        endpoint = self.get(tenant_id, endpoint_id)
        if bool(event_ids) == (since is not None):
            raise WebhookInvalid("name either event_ids or since")
        if event_ids:
            messages = [self.store.get_message(tenant_id, endpoint_id, e) for e in event_ids]
            missing = [e for e, m in zip(event_ids, messages, strict=True) if m is None]
            if missing:
                raise WebhookInvalid(f"no message of this endpoint for {', '.join(missing[:5])}")
            found = [m for m in messages if m is not None]
        else:
            assert since is not None
            if since < self.clock() - timedelta(days=30):
                raise WebhookInvalid("messages are kept 30 days: replay at most 30 days back")
            statuses = ("failed",) if only_failed else ("queued", "delivered", "failed")
            found = self.store.messages_since(tenant_id, endpoint_id, since, statuses, MAX_REPLAY)
        if endpoint.state == "disabled":
            enabled = endpoint.model_copy(
                update={
                    "state": "enabled",
                    "disabled_reason": "",
                    "consecutive_failures": 0,
                    "failing_since": None,
                    "version": endpoint.version + 1,
                }
            )
            self.store.save_endpoint(enabled, endpoint.version)
        stamp = int(self.clock().timestamp())
        self.queue.send(
            [
                DeliveryMessage(tenant_id=tenant_id, endpoint_id=endpoint_id, event_id=m["sk"], replay=stamp)
                for m in found
            ]
        )
        for message in found:
            self.store.set_message_status(tenant_id, endpoint_id, message["sk"], "queued")
        return len(found)

    # -- fan-out -------------------------------------------------------------------------------------------------------

    def fan_out(
        self, events: Sequence[dict[str, Any]], endpoints: dict[str, list[WebhookEndpoint]] | None = None
    ) -> int:
        """Events as EventBridge delivers them (`detail` is the envelope): one message per interested endpoint.
        `endpoints`, each tenant's endpoints as read for an earlier event of the same batch (filled here): one read
        per tenant per batch, not one per event."""
        by_tenant: dict[str, list[WebhookEndpoint]] = {} if endpoints is None else endpoints
        queued: list[DeliveryMessage] = []
        for event in events:
            envelope = event.get("detail", event)
            tenant_id, event_id, kind = envelope["tenant_id"], envelope["id"], envelope["type"]
            if tenant_id not in by_tenant:
                by_tenant[tenant_id] = self.store.endpoints(tenant_id)
            body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
            for endpoint in by_tenant[tenant_id]:
                if not endpoint.wants(kind):
                    continue
                if self.store.add_message(tenant_id, endpoint.endpoint_id, event_id, kind, body, self.clock()):
                    queued.append(
                        DeliveryMessage(tenant_id=tenant_id, endpoint_id=endpoint.endpoint_id, event_id=event_id)
                    )
        try:
            self.queue.send(queued)
        except Exception:  # the event comes back (the batch item fails): its messages are recorded again then
            for message in queued:
                self.store.forget_message(message.tenant_id, message.endpoint_id, message.event_id)
            raise
        return len(queued)

    # -- delivery ------------------------------------------------------------------------------------------------------

    def deliver(self, message: DeliveryMessage, attempt: int, receipt_handle: str) -> bool:
        """One attempt. True: done (delivered, given up, or nothing to send) — delete the message; False: it comes
        back after the schedule's next delay (its visibility was set here)."""
        tenant_id, endpoint_id, event_id = message.tenant_id, message.endpoint_id, message.event_id
        endpoint = self.store.get_endpoint(tenant_id, endpoint_id)
        stored = self.store.get_message(tenant_id, endpoint_id, event_id)
        now = self.clock()
        if endpoint is None or stored is None or endpoint.state != "enabled":
            reason = "endpoint deleted" if endpoint is None else ("no message" if stored is None else "disabled")
            if endpoint is not None:
                self._log(tenant_id, endpoint_id, event_id, "", attempt, now, "skipped", error=reason)
            return True
        body, kind = stored["body"], stored.get("event_type", "")
        started = time.monotonic()
        status: int | None = None
        error = ""
        try:
            status = self.poster.post(
                endpoint.url, headers(endpoint.secret, event_id, int(now.timestamp()), body), body
            )
        except WebhookUnreachable as exc:
            error = str(exc)[:300]
        took = int((time.monotonic() - started) * 1000)
        if status is not None and 200 <= status < 300:
            self._log(tenant_id, endpoint_id, event_id, kind, attempt, now, "delivered", status, took)
            self.store.set_message_status(tenant_id, endpoint_id, event_id, "delivered")
            if endpoint.consecutive_failures:
                self._update(endpoint, after_success)
            return True
        delay = next_delay(attempt)
        outcome = "failed" if delay is not None else "gave_up"
        retry_at = now + timedelta(seconds=delay) if delay is not None else None
        self._log(tenant_id, endpoint_id, event_id, kind, attempt, now, outcome, status, took, error, retry_at)
        updated = self._update(endpoint, lambda e: after_failure(e, now))
        if updated is not None and updated.state == "disabled" and endpoint.state == "enabled":
            self._tell_manager(updated, stored)
        if delay is None:
            self.store.set_message_status(tenant_id, endpoint_id, event_id, "failed")
            return True
        self.queue.delay(receipt_handle, delay)
        return False

    def _update(
        self, endpoint: WebhookEndpoint, change: Callable[[WebhookEndpoint], WebhookEndpoint]
    ) -> WebhookEndpoint | None:
        current: WebhookEndpoint | None = endpoint
        for _ in range(5):
            if current is None:
                return None
            new = change(current)
            try:
                self.store.save_endpoint(new, current.version)
                return new
            except ConcurrentModification:
                current = self.store.get_endpoint(endpoint.tenant_id, endpoint.endpoint_id)
        return None

    def _log(
        self,
        tenant_id: str,
        endpoint_id: str,
        event_id: str,
        kind: str,
        attempt: int,
        at: datetime,
        outcome: Any,
        status: int | None = None,
        took: int = 0,
        error: str = "",
        retry_at: datetime | None = None,
    ) -> None:
        line = DeliveryAttempt(
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=kind,
            attempt=attempt,
            at=at,
            outcome=outcome,
            status_code=status,
            duration_ms=took,
            error=error,
            next_attempt_at=retry_at,
        )
        self.store.log(tenant_id, line)
        logger.info(
            "webhook %s %s attempt %d/%d: %s %s", endpoint_id, event_id, attempt, ATTEMPTS, outcome, status or error
        )

    def _tell_manager(self, endpoint: WebhookEndpoint, stored: dict[str, str]) -> None:
        """The endpoint was disabled: a note to the manager of the deal whose event failed last (the CRM outbox)."""
        logger.warning("webhook endpoint %s disabled: %s", endpoint.endpoint_id, endpoint.disabled_reason)
        try:
            envelope = json.loads(stored["body"])
        except (KeyError, ValueError):
            return
        deal_id = (envelope.get("data") or {}).get("deal_id")
        invoice_id = (envelope.get("data") or {}).get("invoice_id")
        if not deal_id or not invoice_id:
            return
        text = (
            f"PayBridge: вебхук {endpoint.url} отключён — {endpoint.consecutive_failures} неудачных доставок подряд "
            f"за сутки. Проверьте приёмник и повторите доставку (POST /v1/{endpoint.tenant_id}/webhooks/"
            f"{endpoint.endpoint_id}/replay)."
        )
        self.crm_outbox.publish(
            DealUpdate(
                tenant_id=endpoint.tenant_id,
                deal_id=deal_id,
                invoice_id=invoice_id,
                version=int((envelope.get("data") or {}).get("version") or 0),
                event=f"webhook_disabled:{endpoint.endpoint_id}",
                ops=(DealOp(kind="notify_manager", text=text),),
            )
        )
