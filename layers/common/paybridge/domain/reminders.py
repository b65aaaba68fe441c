"""When to remind a client of an unpaid invoice, and what to say. Pure: times in, times out.

A reminder is identified by its offset (`after:120` — 120 minutes after the link was published; `before:180` —
180 minutes before it expires), so it is sent at most once whatever the schedule's overlaps and retries. A reminder
due in the tenant's quiet hours moves to their end; one that would then fall at or after the link's expiry, or
before the link was published, is dropped. Never after payment, cancellation or expiry: only invoices that still
wait for money get one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from paybridge.domain.invoice import Invoice, InvoiceState
from paybridge.domain.money import format_money

REMINDABLE = frozenset({InvoiceState.AWAITING_PAYMENT, InvoiceState.PARTIALLY_PAID})

TEMPLATES: dict[str, str] = {
    "ru": (
        "Напоминаем об оплате счёта № {number} на {amount}. Осталось оплатить {outstanding}. "
        "Оплатить: {link} (ссылка действует до {due})."
    ),
    "en": (
        "A reminder to pay invoice No. {number} for {amount}. Still to pay: {outstanding}. "
        "Pay here: {link} (the link is valid until {due})."
    ),
}
SUBJECTS: dict[str, str] = {"ru": "Напоминание об оплате счёта № {number}", "en": "Payment reminder: invoice {number}"}


@dataclass(frozen=True)
class Reminder:
    key: str
    due_at: datetime  # aware, UTC


def _out_of_quiet_hours(moment: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    local = moment.astimezone(zone)
    clock = local.time()
    quiet = (start <= clock or clock < end) if start > end else (start <= clock < end)
    if not quiet:
        return moment
    end_today = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if end_today <= local:
        end_today += timedelta(days=1)
    return end_today.astimezone(moment.tzinfo)


def schedule(
    published_at: datetime,
    expires_at: datetime,
    after_issue_minutes: tuple[int, ...],
    before_expiry_minutes: tuple[int, ...],
    timezone: str,
    quiet: tuple[time, time] | None,
) -> list[Reminder]:
    """Every reminder of an invoice, in time order, quiet hours applied."""
    zone = ZoneInfo(timezone)
    planned = [(f"after:{m}", published_at + timedelta(minutes=m)) for m in after_issue_minutes]
    planned += [(f"before:{m}", expires_at - timedelta(minutes=m)) for m in before_expiry_minutes]
    reminders = []
    for key, due in planned:
        if quiet is not None:
            due = _out_of_quiet_hours(due, zone, *quiet)
        if published_at < due < expires_at:
            reminders.append(Reminder(key, due))
    return sorted(reminders, key=lambda r: (r.due_at, r.key))


def due_now(reminders: list[Reminder], sent: frozenset[str], now: datetime) -> tuple[Reminder | None, Reminder | None]:
    """(the reminder to send now, the next one after it). Of several overdue ones only the latest is sent: a client
    is not sent three reminders at once after an outage."""
    latest_sent = max((r.due_at for r in reminders if r.key in sent), default=None)
    overdue = [
        r
        for r in reminders
        if r.due_at <= now and r.key not in sent and (latest_sent is None or r.due_at > latest_sent)
    ]
    later = [r for r in reminders if r.due_at > now and r.key not in sent]
    return (overdue[-1] if overdue else None), (later[0] if later else None)


def render(invoice: Invoice, language: str, timezone: str, override: str | None = None) -> tuple[str, str]:
    """(subject, text) in the tenant's language, with the link, the amounts and the due time in its time zone."""
    template = override or TEMPLATES.get(language, TEMPLATES["ru"])
    due = invoice.expires_at.astimezone(ZoneInfo(timezone)).strftime("%d.%m.%Y %H:%M")
    fields = {
        "number": invoice.number,
        "amount": format_money(invoice.amount, invoice.currency),
        "outstanding": format_money(invoice.outstanding, invoice.currency),
        "link": invoice.payment_url or "",
        "due": due,
    }
    subject = SUBJECTS.get(language, SUBJECTS["ru"]).format(**fields)
    return subject, template.format(**fields)
