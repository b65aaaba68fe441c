"""When reminders are due and what they say (paybridge.domain.reminders)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from paybridge.domain.reminders import Reminder, due_now, render, schedule
from tests.unit.test_invoice_domain import awaiting

QUIET = (time(21, 0), time(9, 0))
T0 = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


def keys(reminders: list[Reminder]) -> list[str]:
    return [r.key for r in reminders]


def test_offsets_after_publishing_and_before_expiry_in_time_order() -> None:
    plan = schedule(T0, T0 + timedelta(days=3), (120, 1440), (180,), "Europe/Moscow", None)
    assert keys(plan) == ["after:120", "after:1440", "before:180"]
    assert [r.due_at for r in plan] == [T0 + timedelta(hours=2), T0 + timedelta(days=1), T0 + timedelta(hours=69)]


def test_a_reminder_due_in_quiet_hours_waits_for_their_end_in_the_tenants_zone() -> None:
    evening = datetime(2026, 11, 24, 17, 30, tzinfo=UTC)  # 20:30 in Moscow: +2 h = 22:30, quiet
    plan = schedule(evening, evening + timedelta(days=3), (120,), (), "Europe/Moscow", QUIET)
    assert plan[0].due_at == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)  # 09:00 Moscow the next morning
    # The same moment is 05:30 in Vladivostok (quiet: 09:00 local) and 19:30 in London (not quiet)
    far_east = schedule(evening, evening + timedelta(days=3), (120,), (), "Asia/Vladivostok", QUIET)
    assert far_east[0].due_at == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    london = schedule(evening, evening + timedelta(days=3), (120,), (), "Europe/London", QUIET)
    assert london[0].due_at == evening + timedelta(hours=2)


def test_reminders_at_or_after_expiry_are_dropped() -> None:
    plan = schedule(T0, T0 + timedelta(hours=3), (120, 1440), (60, 600), "Europe/Moscow", None)
    assert keys(plan) == ["after:120", "before:60"]


def test_only_the_latest_overdue_reminder_is_sent_and_sent_ones_never_again() -> None:
    plan = schedule(T0, T0 + timedelta(days=3), (120, 1440), (180,), "Europe/Moscow", None)
    current, following = due_now(plan, frozenset(), T0 + timedelta(days=2))
    assert current is not None and current.key == "after:1440" and following is not None
    assert following.key == "before:180"
    # after:1440 sent: the older after:120 is never sent late
    assert due_now(plan, frozenset({"after:1440"}), T0 + timedelta(days=2))[0] is None
    nothing, _ = due_now(plan, frozenset({"after:120", "after:1440"}), T0 + timedelta(days=2))
    assert nothing is None


def test_the_text_has_the_link_amounts_and_due_time_in_the_tenants_language_and_zone() -> None:
    invoice = awaiting()
    subject, text = render(invoice, "ru", "Europe/Moscow")
    assert subject == f"Напоминание об оплате счёта № {invoice.number}"
    assert invoice.payment_url in text and "1 000.00 RUB" in text
    local_due = invoice.expires_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Moscow"))
    assert f"{local_due:%d.%m.%Y %H:%M}" in text
    subject_en, text_en = render(invoice, "en", "Europe/Moscow")
    assert subject_en.startswith("Payment reminder") and "Still to pay: 1 000.00 RUB" in text_en
    custom = render(invoice, "ru", "UTC", "Счёт {number}: {outstanding}, {link}")[1]
    assert custom == f"Счёт {invoice.number}: 1 000.00 RUB, {invoice.payment_url}"
