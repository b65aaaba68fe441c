"""The CRM outbox consumer's rules, apart from Lambda: a batch of SQS FIFO records in, the records to retry out.

- Each record is one `DealUpdate` (writes) or `DealCheck` (a deal to read: does it ask for an invoice?); a body that
  is neither is parked at once (it will never parse).
- The batch is delivered through `Services.deliver_deal_updates` (batched per CRM, within its rate limit).
- A transient failure is retried after a growing delay (5 s, 10 s, … up to 5 min: the message's visibility); since a
  FIFO group must stay in order, every later record of the same deal in the batch is retried with it.
- A permanent failure is parked on the dead-letter queue with its reason (alarm; `make redrive-crm` sends parked
  updates back once the cause is fixed) and does not hold up the deal's later updates.
- Top-up: Lambda hands a FIFO consumer at most 10 records, while one CRM request can carry far more (Bitrix24: 50
  calls, about 25 updates). When a batch is full, the consumer pulls up to `TOP_UP` more waiting updates itself, so
  each rate-limited request carries as many updates as it can; it deletes (or delays) those itself.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from paybridge.adapters.crm.base import UpdateOutcome
from paybridge.adapters.outbox import OutboxControl, OutboxRecord
from paybridge.domain.deal_sync import DealCheck, DealUpdate, OutboxMessage

logger = logging.getLogger(__name__)
_MESSAGE: TypeAdapter[DealUpdate | DealCheck] = TypeAdapter(OutboxMessage)

FIRST_DELAY_SECONDS = 5
MAX_DELAY_SECONDS = 300
#: Lambda's FIFO batch is 10; with a full batch, pull this many more (one CRM request holds ~25 two-call updates).
FULL_BATCH = 10
TOP_UP = 15


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
    deliver: Callable[[Sequence[DealUpdate | DealCheck]], list[UpdateOutcome]],
    control: OutboxControl,
    top_up: int = TOP_UP,
) -> BatchResult:
    result = BatchResult()
    if len(records) >= FULL_BATCH and top_up > 0:
        records = [*records, *control.pull(top_up)]
    parsed: list[tuple[OutboxRecord, DealUpdate | DealCheck]] = []
    for record in records:
        try:
            parsed.append((record, _MESSAGE.validate_json(record.body)))
        except ValidationError as exc:
            logger.error("outbox message %s is not an update or a check: %s", record.message_id, exc)
            control.park(record.body, record.group, f"not a DealUpdate: {exc.errors()[0]['msg']}")
            result.parked += 1
            if record.pulled:
                control.delete([record.receipt_handle])
    outcomes = deliver([update for _, update in parsed]) if parsed else []
    held: set[str] = set()  # groups with a retried record: their later records wait too (FIFO order)
    done_pulled: list[str] = []
    for (record, update), outcome in zip(parsed, outcomes, strict=True):
        if record.group in held or (not outcome.ok and outcome.transient):
            held.add(record.group)
            delay = retry_delay(record.receive_count)
            logger.warning(
                "CRM update %s retried in %s s: %s", update.update_id, delay, outcome.detail or "earlier one waits"
            )
            control.delay(record.receipt_handle, delay)
            if not record.pulled:
                result.retry.append(record.message_id)
            continue
        if not outcome.ok:
            logger.error("CRM update %s parked: %s", update.update_id, outcome.detail)
            control.park(record.body, record.group, outcome.detail)
            result.parked += 1
        else:
            result.delivered += 1
        if record.pulled:
            done_pulled.append(record.receipt_handle)
    if done_pulled:
        control.delete(done_pulled)
    return result
