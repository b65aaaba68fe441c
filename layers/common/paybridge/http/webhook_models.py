"""Request and response models of the webhook endpoints' API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from paybridge.domain.domain_events import EventType
from paybridge.domain.webhooks import DeliveryAttempt, EndpointState, WebhookEndpoint
from paybridge.http.api_model import ApiModel

EventId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\w.:-]+$")]


class CreateWebhookBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, description="https URL of your receiver (public host)")
    event_types: list[EventType] = Field(min_length=1, max_length=20, description="The event types it takes")
    description: str = Field(default="", max_length=200)


class WebhookOut(ApiModel):
    endpoint_id: str
    url: str
    event_types: list[EventType]
    description: str
    state: EndpointState
    disabled_reason: str
    consecutive_failures: int
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookOut:
        return cls(
            endpoint_id=endpoint.endpoint_id,
            url=endpoint.url,
            event_types=list(endpoint.event_types),
            description=endpoint.description,
            state=endpoint.state,
            disabled_reason=endpoint.disabled_reason,
            consecutive_failures=endpoint.consecutive_failures,
            created_at=endpoint.created_at,
        )


class CreatedWebhookOut(WebhookOut):
    secret: str = Field(description="`whsec_…`: shown this once; verify each delivery's `webhook-signature` with it")

    @classmethod
    def created(cls, endpoint: WebhookEndpoint) -> CreatedWebhookOut:
        return cls(**WebhookOut.of(endpoint).model_dump(), secret=endpoint.secret)


class WebhookListOut(ApiModel):
    webhooks: list[WebhookOut]


class DeliveriesOut(ApiModel):
    deliveries: list[DeliveryAttempt] = Field(description="Newest first: one line per attempt")


class ReplayBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    event_ids: list[EventId] = Field(default_factory=list, max_length=100)
    since: datetime | None = Field(default=None, description="Replay the messages created since (with a timezone)")
    only_failed: bool = Field(default=True, description="With `since`: only the messages that were given up")

    @model_validator(mode="after")
    def _one_of(self) -> ReplayBody:
        if bool(self.event_ids) == (self.since is not None):
            raise ValueError("name either event_ids or since")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since needs a timezone (e.g. 2026-12-01T10:00:00Z)")
        return self


class ReplayOut(ApiModel):
    queued: int
