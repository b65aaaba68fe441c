"""Publishing domain events, exactly once per change, through a transactional outbox.

`InvoiceChanges.apply` (and `Issuing.commit`) derive a change's events (`domain/domain_events.py`) and write them as
one outbox batch *in the same transaction* as the change itself; after the write the batch is put on the bus and
deleted. A crash between the two leaves the batch in the outbox: the same change retried (a duplicate notification,
a retried task, which changes nothing) finds it and publishes it then, and the outbox sweep (`EventOutboxFunction`,
every minute) publishes any batch older than a minute. A batch may so be published twice (and EventBridge itself
delivers at least once): every event keeps the id derived from its change, and consumers dedupe by it.

Subscriptions (`subscription.charged`/`.blocked`), bank lines (`bank.line_needs_review`) and drift reports
(`drift.found`) do the same: their store writes the batch in the change's own transaction (`TableStore._write_one`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from paybridge.domain.domain_events import DomainEvent

logger = logging.getLogger(__name__)

#: An outbox batch this old is the sweep's to publish (younger ones are being published by their writer).
SWEEP_AFTER_SECONDS = 60


class EventBus(Protocol):
    def put(self, events: Sequence[DomainEvent]) -> None:
        """Publish every event or raise (a partial failure raises too: the batch is published again)."""
        ...


@dataclass(frozen=True)
class OutboxBatch:
    """The events of one change, stored under `key` (the change's identity) until published."""

    key: str
    events: tuple[DomainEvent, ...]
    created_at: datetime


class EventOutbox(Protocol):
    def get(self, key: str) -> OutboxBatch | None: ...

    def remove(self, key: str) -> None: ...

    def older_than(self, moment: datetime, limit: int = 100) -> list[OutboxBatch]: ...


class NoBus:
    def put(self, events: Sequence[DomainEvent]) -> None:
        return None


@dataclass
class RecordingBus:
    """A fake for tests: keeps what was published, in order."""

    published: list[DomainEvent] = field(default_factory=list)
    fail: bool = False

    def put(self, events: Sequence[DomainEvent]) -> None:
        if self.fail:
            raise ConnectionError("the bus is down")
        self.published.extend(events)

    def types(self) -> list[str]:
        return [e.type for e in self.published]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class DomainEvents:
    bus: EventBus
    outbox: EventOutbox
    clock: Callable[[], datetime] = utc_now

    def batch(self, key: str, events: Sequence[DomainEvent]) -> OutboxBatch | None:
        """The outbox batch of one change (None: the change announces nothing)."""
        if not events:
            return None
        return OutboxBatch(key=key, events=tuple(events), created_at=self.clock())

    def deliver(self, batch: OutboxBatch | None) -> None:
        """Put a stored batch on the bus and take it out of the outbox. A failure is logged, never raised: the change
        is written, and its batch waits in the outbox for a retry or the sweep."""
        if batch is None:
            return
        try:
            self.bus.put(batch.events)
        except Exception:
            logger.exception("events of %s not published yet (left in the outbox)", batch.key)
            return
        try:
            self.outbox.remove(batch.key)
        except Exception:  # published; the sweep publishes it again, with the same ids
            logger.exception("outbox batch %s not removed", batch.key)

    def recover(self, key: str) -> None:
        """A change found already applied (a retry): publish its batch if a crash left it in the outbox."""
        try:
            pending = self.outbox.get(key)
        except Exception:
            logger.exception("outbox batch %s not read", key)
            return
        self.deliver(pending)

    def sweep(self, limit: int = 100) -> int:
        """Publish what was left in the outbox (a crash or a failed PutEvents); returns the events published."""
        published = 0
        cutoff = datetime.fromtimestamp(self.clock().timestamp() - SWEEP_AFTER_SECONDS, UTC)
        for batch in self.outbox.older_than(cutoff, limit):
            self.bus.put(batch.events)  # raises: the schedule runs again
            self.outbox.remove(batch.key)
            published += len(batch.events)
        return published
