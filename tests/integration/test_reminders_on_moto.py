"""Reminders on moto's DynamoDB with the clock moved by the test: due from the index at the right moments, quiet
hours, never twice (overlapping runs), never after payment, a failed send due again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paybridge.adapters.notify import SandboxSenderSettings, SendFailed
from paybridge.adapters.settings import SecretRef
from paybridge.app.reminders import Reminders
from paybridge.storage.reminders import DynamoReminderStore
from paybridge.tenants import ReminderSettings, TenantConfig
from paybridge.wiring import get_repo, get_tenants
from tests.conftest import Api, Sandbox

SETTINGS = ReminderSettings(
    after_issue_minutes=(120, 1440),
    before_expiry_minutes=(180,),
    channels={
        "email": SandboxSenderSettings(kind="sandbox", base_url="http://unused", token=SecretRef(value="unused-1")),
        "sms": SandboxSenderSettings(kind="sandbox", base_url="http://unused", token=SecretRef(value="unused-1")),
    },
    timezone="Europe/Moscow",
)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = 0

    def send(self, to: str, subject: str, text: str, deal_id: str) -> None:
        if self.fail:
            self.fail -= 1
            raise SendFailed("SES throttled")
        self.sent.append((to, subject, text))


class Tenants:
    def __init__(self, tenant: TenantConfig) -> None:
        self.tenant = tenant

    def get(self, tenant_id: str) -> TenantConfig:
        return self.tenant

    def tenant_ids(self) -> list[str]:
        return [self.tenant.tenant_id]


@pytest.fixture
def setup(stack: Any, http: Any) -> tuple[Reminders, Recorder, Api, Sandbox, TenantConfig]:
    tenant = get_tenants().get("demo").model_copy(update={"reminders": SETTINGS})
    recorder = Recorder()
    reminders = Reminders(
        DynamoReminderStore(stack.aws.table_name), Tenants(tenant), get_repo(), lambda _t, _c: recorder
    )
    return reminders, recorder, Api(http), Sandbox(http), tenant


def issue(setup: Any, published: datetime, **customer: str) -> dict[str, Any]:
    reminders, _, api, sandbox, tenant = setup
    deal = sandbox.new_deal(amount=50_000)
    invoice = api.issue_awaiting(deal["id"], amount=50_000, customer=customer or {"email": "c@example.com"})
    stored = get_repo().get("demo", invoice["invoice_id"])
    assert stored is not None
    # The shipped demo tenant plans its reminders when the link is published (now): re-plan at the test's clock
    store = reminders.store
    assert isinstance(store, DynamoReminderStore)
    store.client.delete_item(TableName=store._table, Key=store._key("demo", stored.invoice_id))
    reminders.plan(tenant, stored, published)
    return invoice


def mine(sent: list[Any], invoice_id: str) -> list[str]:
    return [s.key for s in sent if s.invoice_id == invoice_id]


def test_reminders_come_at_their_offsets_once_each_and_never_after_payment(setup: Any, sandbox: Sandbox) -> None:
    reminders, recorder, api, _, _ = setup
    t0 = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 10:00 Moscow
    invoice = issue(setup, t0, email="c@example.com", phone="+79990001122")
    assert mine(reminders.send_due(t0 + timedelta(minutes=119)), invoice["invoice_id"]) == []
    assert mine(reminders.send_due(t0 + timedelta(minutes=121)), invoice["invoice_id"]) == ["after:120"]
    assert mine(reminders.send_due(t0 + timedelta(minutes=122)), invoice["invoice_id"]) == []  # never twice
    _to, _subject, text = recorder.sent[-1]
    assert invoice["payment_url"] in text and "500.00 RUB" in text
    assert {s[0] for s in recorder.sent[-2:]} == {"c@example.com", "+79990001122"}  # both channels
    # Paid: nothing more, ever
    payment_id = invoice["payment_url"].rsplit("/", 1)[-1]
    assert sandbox.pay(payment_id).status_code == 200
    api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")
    assert mine(reminders.send_due(t0 + timedelta(days=1, minutes=1)), invoice["invoice_id"]) == []
    assert mine(reminders.send_due(t0 + timedelta(days=2)), invoice["invoice_id"]) == []


def test_overlapping_schedule_runs_send_a_reminder_once(setup: Any) -> None:
    reminders, recorder, *_ = setup
    t0 = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    invoice = issue(setup, t0, email="o@example.com")
    at = t0 + timedelta(minutes=125)
    with ThreadPoolExecutor(max_workers=6) as pool:
        runs = list(pool.map(lambda _: reminders.send_due(at), range(6)))
    assert sum(len(mine(run, invoice["invoice_id"])) for run in runs) == 1
    assert [s for s in recorder.sent if s[0] == "o@example.com"] and len(
        [s for s in recorder.sent if s[0] == "o@example.com"]
    ) == 1


def test_quiet_hours_hold_a_reminder_until_morning(setup: Any) -> None:
    reminders, *_ = setup
    evening = datetime(2026, 11, 24, 17, 30, tzinfo=UTC)  # 20:30 Moscow: +2 h falls in quiet hours
    invoice = issue(setup, evening, email="q@example.com")
    assert mine(reminders.send_due(evening + timedelta(hours=3)), invoice["invoice_id"]) == []  # 23:30 Moscow
    morning = datetime(2026, 11, 25, 6, 1, tzinfo=UTC)  # 09:01 Moscow
    assert mine(reminders.send_due(morning), invoice["invoice_id"]) == ["after:120"]


def test_a_failed_send_stays_due_and_goes_out_on_the_next_run(setup: Any) -> None:
    reminders, recorder, *_ = setup
    t0 = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    invoice = issue(setup, t0, email="f@example.com")
    recorder.fail = 1
    assert mine(reminders.send_due(t0 + timedelta(minutes=121)), invoice["invoice_id"]) == []
    assert mine(reminders.send_due(t0 + timedelta(minutes=126)), invoice["invoice_id"]) == ["after:120"]


def test_a_cancelled_invoice_gets_no_reminder(setup: Any) -> None:
    reminders, _, api, *_ = setup
    t0 = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    invoice = issue(setup, t0, email="x@example.com")
    assert api.cancel(invoice["invoice_id"]).status_code == 200
    assert mine(reminders.send_due(t0 + timedelta(hours=3)), invoice["invoice_id"]) == []


def test_publishing_a_link_plans_the_first_reminder_in_the_index(stack: Any, http: Any) -> None:
    # The shipped demo tenant has reminders: the lifecycle's CreatePayment step indexed the invoice under after:120
    invoice = Api(http).issue_awaiting(Sandbox(http).new_deal(amount=10_000)["id"], amount=10_000)
    item = DynamoReminderStore(stack.aws.table_name).get("demo", invoice["invoice_id"])
    assert item is not None and item.due_key is not None and not item.sent
    due = datetime.fromisoformat(item.due_key.split("#")[0])
    # +2 h — or, when that falls in the tenant's quiet hours (21:00–09:00 Moscow), their end
    from datetime import time as clock
    from zoneinfo import ZoneInfo

    moscow = ZoneInfo("Europe/Moscow")
    plain = (item.published_at + timedelta(minutes=120)).astimezone(moscow)
    if plain.time() >= clock(21) or plain.time() < clock(9):
        day = plain.date() + timedelta(days=1 if plain.time() >= clock(21) else 0)
        expected = datetime.combine(day, clock(9), moscow)
    else:
        expected = plain
    assert abs(due - expected) <= timedelta(minutes=1), (due, expected)
