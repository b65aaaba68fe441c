"""The outbox consumer's rules (paybridge.app.deal_delivery): order per deal, retries with backoff, parking, top-up."""

from __future__ import annotations

import json
from collections.abc import Sequence

from paybridge.adapters.crm.base import UpdateOutcome
from paybridge.adapters.outbox import OutboxRecord
from paybridge.app.deal_delivery import process_batch, retry_delay
from paybridge.domain.deal_sync import DealOp, DealUpdate


def update(deal: str, version: int = 1, tenant: str = "t1") -> DealUpdate:
    return DealUpdate(
        tenant_id=tenant,
        deal_id=deal,
        invoice_id=f"inv_{deal}",
        version=version,
        event="money_received",
        ops=(DealOp(kind="set_stage", stage="WON"),),
    )


def record(n: int, u: DealUpdate, receive_count: int = 1, pulled: bool = False) -> OutboxRecord:
    return OutboxRecord(f"m{n}", u.model_dump_json(), u.group, receive_count, f"rh{n}", pulled)


class Control:
    def __init__(self, waiting: Sequence[OutboxRecord] = ()) -> None:
        self.delayed: dict[str, int] = {}
        self.parked: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.waiting = list(waiting)

    def delay(self, receipt_handle: str, seconds: int) -> None:
        self.delayed[receipt_handle] = seconds

    def park(self, body: str, group: str, reason: str) -> None:
        self.parked.append((group, reason))

    def pull(self, count: int) -> list[OutboxRecord]:
        taken, self.waiting = self.waiting[:count], self.waiting[count:]
        return taken

    def delete(self, receipt_handles: list[str]) -> None:
        self.deleted += receipt_handles


def deliver_with(outcomes: dict[str, UpdateOutcome]):  # type: ignore[no-untyped-def]
    seen: list[list[str]] = []

    def deliver(updates: Sequence[DealUpdate]) -> list[UpdateOutcome]:
        seen.append([u.update_id for u in updates])
        return [outcomes.get(u.update_id, UpdateOutcome.done()) for u in updates]

    return deliver, seen


def test_all_delivered_reports_nothing_to_retry() -> None:
    deliver, seen = deliver_with({})
    result = process_batch([record(1, update("a")), record(2, update("b"))], deliver, Control())
    assert result.retry == [] and result.delivered == 2 and len(seen) == 1


def test_a_transient_failure_holds_the_deals_later_updates_but_not_other_deals() -> None:
    a1, a2, b1 = update("a", 1), update("a", 2), update("b", 1)
    deliver, _ = deliver_with({a1.update_id: UpdateOutcome.retry("503")})
    control = Control()
    result = process_batch([record(1, a1, 3), record(2, a2), record(3, b1)], deliver, control)
    assert result.retry == ["m1", "m2"] and result.delivered == 1
    assert set(control.delayed) == {"rh1", "rh2"}
    assert 16 <= control.delayed["rh1"] <= 24  # third attempt: 20 s ± 20 %


def test_a_permanent_failure_is_parked_and_does_not_hold_the_deal() -> None:
    a1, a2 = update("a", 1), update("a", 2)
    deliver, _ = deliver_with({a1.update_id: UpdateOutcome.park("deal not found")})
    control = Control()
    result = process_batch([record(1, a1), record(2, a2)], deliver, control)
    assert result.retry == [] and result.parked == 1 and result.delivered == 1
    assert control.parked == [("t1:a", "deal not found")]


def test_a_body_that_is_not_an_update_is_parked_at_once() -> None:
    bad = OutboxRecord("m9", '{"hello": 1}', "t1:x", 1, "rh9")
    deliver, seen = deliver_with({})
    control = Control()
    result = process_batch([bad, record(1, update("a"))], deliver, control)
    assert result.parked == 1 and result.retry == [] and control.parked[0][0] == "t1:x"
    assert len(seen[0]) == 1


def test_a_full_batch_is_topped_up_and_pulled_records_are_deleted_or_delayed_by_the_consumer() -> None:
    batch = [record(n, update(f"d{n}")) for n in range(10)]
    failing = update("p1")
    waiting = [record(100, failing, pulled=True), record(101, update("p2"), pulled=True)]
    deliver, seen = deliver_with({failing.update_id: UpdateOutcome.retry("timeout")})
    control = Control(waiting)
    result = process_batch(batch, deliver, control)
    assert len(seen) == 1 and len(seen[0]) == 12  # one delivery, one CRM request's worth
    assert result.retry == []  # a pulled record is not the event source mapping's to retry
    assert control.delayed.keys() == {"rh100"} and control.deleted == ["rh101"]


def test_a_partial_batch_is_not_topped_up() -> None:
    deliver, seen = deliver_with({})
    control = Control([record(100, update("p1"), pulled=True)])
    process_batch([record(1, update("a"))], deliver, control)
    assert len(seen[0]) == 1 and control.waiting


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n, jitter=lambda: 0.5) for n in range(1, 10)]
    assert delays[:4] == [5, 10, 20, 40] and delays[-1] == 300 and delays == sorted(delays)


def test_checks_and_updates_share_the_batch_and_legacy_updates_without_kind_still_parse() -> None:
    from paybridge.domain.deal_sync import DealCheck

    check = DealCheck(tenant_id="t1", deal_id="a", when_stage="INVOICE", check_id="req-1:0")
    legacy = update("b").model_dump(mode="json")
    del legacy["kind"]  # written before checks existed
    records = [
        OutboxRecord("m1", check.model_dump_json(), check.group, 1, "rh1"),
        OutboxRecord("m2", json.dumps(legacy), "t1:b", 1, "rh2"),
    ]
    received: list[object] = []

    def deliver(messages: Sequence[object]) -> list[UpdateOutcome]:
        received.extend(messages)
        return [UpdateOutcome.done()] * len(messages)

    result = process_batch(records, deliver, Control())  # type: ignore[arg-type]
    assert result.delivered == 2 and [type(m).__name__ for m in received] == ["DealCheck", "DealUpdate"]
