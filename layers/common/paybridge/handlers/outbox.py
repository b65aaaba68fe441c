"""The CRM outbox consumer's rules, apart from Lambda: a batch of SQS FIFO records in, the records to retry out.

- Each record is one `DealUpdate`; a body that is not one is parked at once (it will never parse).
- The batch is delivered through `Services.deliver_deal_updates` (batched per CRM, within its rate limit).
- A transient failure is retried after a growing delay (5 s, 10 s, … up to 5 min: the message's visibility); since a
  FIFO group must stay in order, every later record of the same deal in the batch is retried with it.
- A permanent failure is parked on the dead-letter queue with its reason (alarm; `make redrive-crm` sends parked
  updates back once the cause is fixed) and does not hold up the deal's later updates.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from paybridge.adapters.crm.base import UpdateOutcome
from paybridge.adapters.outbox import OutboxControl
from paybridge.domain.deal_sync import DealUpdate

logger = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 5
MAX_DELAY_SECONDS = 300


@dataclass(frozen=True)
class OutboxRecord:
    message_id: str
    body: str
    group: str
    receive_count: int
    receipt_handle: str


@dataclass
class BatchResult:
    retry: list[str] = field(default_factory=list)  # message ids, for `batchItemFailures`
    delivered: int = 0
    parked: int = 0


def retry_delay(receive_count: int, jitter: Callable[[], float] = random.random) -> int:
    base = min(FIRST_DELAY_SECONDS * 2 ** max(receive_count - 1, 0), MAX_DELAY_SECONDS)
    return int(base * (0.8 + 0.4 * jitter()))


def process(
    records: Sequence[OutboxRecord],
    deliver: Callable[[Sequence[DealUpdate]], list[UpdateOutcome]],
    control: OutboxControl,
) -> BatchResult:
    result = BatchResult()
    parsed: list[tuple[OutboxRecord, DealUpdate]] = []
    for record in records:
        try:
            parsed.append((record, DealUpdate.model_validate_json(record.body)))
        except ValidationError as exc:
            logger.error("outbox message %s is not a DealUpdate: %s", record.message_id, exc)
            control.park(record.body, record.group, f"not a DealUpdate: {exc.errors()[0]['msg']}")
            result.parked += 1
    outcomes = deliver([update for _, update in parsed]) if parsed else []
    held: set[str] = set()  # groups with a retried record: their later records wait too (FIFO order)
    for (record, update), outcome in zip(parsed, outcomes, strict=True):
        if record.group in held or (not outcome.ok and outcome.transient):
            held.add(record.group)
            result.retry.append(record.message_id)
            delay = retry_delay(record.receive_count)
            logger.warning(
                "CRM update %s retried in %s s: %s", update.update_id, delay, outcome.detail or "earlier one waits"
            )
            control.delay(record.receipt_handle, delay)
        elif not outcome.ok:
            logger.error("CRM update %s parked: %s", update.update_id, outcome.detail)
            control.park(record.body, record.group, outcome.detail)
            result.parked += 1
        else:
            result.delivered += 1
    return result
