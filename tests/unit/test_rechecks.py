"""The re-check sweep's schedule and rules (the store in memory; the provider scripted)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from paybridge.adapters.psp.base import MoneyFact
from paybridge.app.rechecks import RETRY_AFTER, RecheckSweep
from paybridge.domain.invoice import InvoiceState
from paybridge.domain.rechecks import BEFORE_EXPIRY, next_recheck, recheck_times
from paybridge.storage.rechecks import RecheckItem
from tests.unit.test_safe_expiry import CLOCK, AskedPsp, Setup
from tests.unit.test_services_races import Tenants

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_backoff_after_publishing_then_daily_then_just_before_the_deadline() -> None:
    times = recheck_times(T0, T0 + timedelta(days=3))
    offsets = [t - T0 for t in times]
    assert offsets == [
        timedelta(minutes=10),
        timedelta(hours=1),
        timedelta(hours=6),
        timedelta(hours=24),
        timedelta(hours=48),
        timedelta(days=3) - BEFORE_EXPIRY,
    ]
    # A one-hour link: 10 minutes in, and 5 minutes before its end
    assert [t - T0 for t in recheck_times(T0, T0 + timedelta(hours=1))] == [
        timedelta(minutes=10),
        timedelta(minutes=55),
    ]
    assert next_recheck(T0, T0 + timedelta(hours=1), 2) is None


@given(st.integers(min_value=6, max_value=90 * 24 * 60))
def test_checks_are_in_order_and_all_before_the_deadline(minutes: int) -> None:
    expires = T0 + timedelta(minutes=minutes)
    times = recheck_times(T0, expires)
    assert times == sorted(set(times)) and all(T0 < t < expires for t in times)
    assert times[-1] == expires - BEFORE_EXPIRY


@dataclass
class MemoryStore:
    items: dict[str, RecheckItem]

    def plan(self, tenant_id: str, invoice_id: str, published_at: datetime, first_due: datetime | None) -> None:
        self.items.setdefault(invoice_id, RecheckItem(tenant_id, invoice_id, published_at, 0, _key(first_due)))

    def due(self, now: datetime, limit: int = 200) -> list[RecheckItem]:
        return [i for i in self.items.values() if i.due_key is not None and i.due_key <= now.isoformat() + "~"]

    def claim(self, item: RecheckItem, next_due: datetime | None) -> bool:
        current = self.items[item.invoice_id]
        if current != item:
            return False
        self.items[item.invoice_id] = replace(item, step=item.step + 1, due_key=_key(next_due))
        return True

    def retry_at(self, item: RecheckItem, when: datetime) -> None:
        self.items[item.invoice_id] = replace(item, due_key=_key(when))

    def stop(self, item: RecheckItem) -> None:
        self.items[item.invoice_id] = replace(self.items[item.invoice_id], due_key=None)


def _key(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def sweep(setup: Setup, store: MemoryStore, at: datetime) -> RecheckSweep:
    throttled: list[str] = []
    return RecheckSweep(
        Tenants(),  # type: ignore[arg-type]
        setup.repo,
        store,
        setup.tasks.checks,
        lambda account, _limit: throttled.append(account),
        lambda: at,
    )


def planned(psp: AskedPsp) -> tuple[Setup, MemoryStore, str, Any]:
    setup, store = Setup(psp), MemoryStore({})
    invoice_id = setup.awaiting(lifetime=3 * 24 * 3600)
    invoice = setup.repo.get("acme", invoice_id)
    sweep(setup, store, CLOCK).link_published(Tenants().get("acme"), invoice, CLOCK)
    return setup, store, invoice_id, invoice


def test_nothing_is_asked_before_the_first_check_and_an_empty_payment_moves_to_the_next() -> None:
    setup, store, invoice_id, _ = planned(AskedPsp(phase="open"))
    assert sweep(setup, store, CLOCK + timedelta(minutes=9)).run().asked == 0
    summary = sweep(setup, store, CLOCK + timedelta(minutes=11)).run()
    assert (summary.asked, summary.learnt) == (1, 0)
    assert (
        store.items[invoice_id].step == 1
        and store.items[invoice_id].due_key == (CLOCK + timedelta(hours=1)).isoformat()
    )
    assert setup.psp.cancelled == []  # the sweep only asks; it never cancels


def test_money_found_pays_the_invoice_once_and_the_invoice_leaves_the_sweep() -> None:
    psp = AskedPsp(phase="paid", raw_status="CONFIRMED", receipts=(MoneyFact(ref="tbank:1", amount=90_000),))
    setup, store, invoice_id, _ = planned(psp)
    summary = sweep(setup, store, CLOCK + timedelta(minutes=11)).run()
    assert (summary.asked, summary.learnt, summary.paid) == (1, 1, [invoice_id])
    assert setup.repo.get("acme", invoice_id).state is InvoiceState.PAID
    assert store.items[invoice_id].due_key is None
    assert sweep(setup, store, CLOCK + timedelta(days=1)).run().asked == 0


def test_a_provider_that_cannot_be_asked_keeps_the_check_for_later() -> None:
    setup, store, invoice_id, _ = planned(AskedPsp(down=True))
    at = CLOCK + timedelta(minutes=11)
    summary = sweep(setup, store, at).run()
    assert (summary.asked, summary.deferred) == (0, 1)
    # the same check (number 0) again, later
    assert store.items[invoice_id].step == 0 and store.items[invoice_id].due_key == (at + RETRY_AFTER).isoformat()


def test_an_invoice_paid_meanwhile_is_not_asked_about() -> None:
    setup, store, invoice_id, _ = planned(AskedPsp())
    from paybridge.domain.events import MoneyReceived

    setup.changes.apply("acme", invoice_id, MoneyReceived(ref="sandbox:op_1", amount=90_000))
    summary = sweep(setup, store, CLOCK + timedelta(minutes=11)).run()
    assert (summary.asked, summary.done) == (0, 1) and setup.psp.asked == 0
