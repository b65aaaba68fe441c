"""Domain events onto an EventBridge bus (`PutEvents`): `Source` = `paybridge`, `DetailType` = the event's type
(`invoice.paid`), `Detail` = the event's envelope (its `id` is the one consumers dedupe by — EventBridge delivers at
least once), `Resources` empty, `Time` = when it happened. At most 10 entries per call; an entry EventBridge did not
take (`FailedEntryCount`) fails the whole put, and the caller's outbox batch is published again (same ids)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from paybridge.domain.domain_events import SOURCE, DomainEvent

#: PutEvents takes at most 10 entries, and at most 256 KB in all.
MAX_ENTRIES = 10


class EventsNotPublished(Exception):
    """EventBridge refused some entries (throttled, internal): the batch is published again."""


class EventBridgeBus:
    def __init__(self, bus_name: str, client: Any = None) -> None:
        self._bus, self._client = bus_name, client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # lazy: keeps cold starts small

            self._client = boto3.client("events")
        return self._client

    def entry(self, event: DomainEvent) -> dict[str, Any]:
        return {
            "Source": SOURCE,
            "DetailType": event.type,
            "Detail": json.dumps(event.envelope(), ensure_ascii=False),
            "EventBusName": self._bus,
            "Time": event.occurred_at,
        }

    def put(self, events: Sequence[DomainEvent]) -> None:
        for start in range(0, len(events), MAX_ENTRIES):
            chunk = events[start : start + MAX_ENTRIES]
            answer = self.client.put_events(Entries=[self.entry(e) for e in chunk])
            if answer.get("FailedEntryCount"):
                codes = sorted({e.get("ErrorCode", "?") for e in answer.get("Entries", []) if e.get("ErrorCode")})
                raise EventsNotPublished(f"{answer['FailedEntryCount']} of {len(chunk)} events refused: {codes}")
