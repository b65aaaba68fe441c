"""A person's levers without the network: the domain events (a payment made elsewhere, a reissued link, a re-synced
deal), the idempotency runner, the reissue's safety with the old payment, the re-sync's deal plan and the list's
order (stuck first)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paybridge.adapters.psp.base import MoneyFact
from paybridge.app.changes import Actor
from paybridge.app.invoices import Invoices
from paybridge.app.levers import LeverOutcome, LeverRequest, LeverRunner
from paybridge.app.reissues import Reissues
from paybridge.domain.deal_sync import plan_deal_ops
from paybridge.domain.errors import InvalidTransition, InvoiceConflict
from paybridge.domain.events import Close, DealResynced, MoneyReceived, PaidOutside, PaymentCreated, Reissued, apply
from paybridge.domain.invoice import Closure, Invoice, InvoiceState, NewInvoice, new_invoice
from paybridge.storage.errors import IdempotencyKeyReused
from paybridge.storage.lever_keys import LeverKey
from tests.unit.test_safe_expiry import CLOCK, AskedPsp, Setup
from tests.unit.test_services_races import Tenants

LATER = CLOCK + timedelta(days=1)


def awaiting(amount: int = 90_000) -> Invoice:
    invoice = new_invoice("acme", NewInvoice(deal_id="7", number="7", amount=amount), "sandbox", CLOCK)
    return apply(invoice, PaymentCreated(payment_id="pay_1", payment_url="http://psp/pay_1"), CLOCK).invoice


def closed(closure: Closure = Closure.EXPIRED) -> Invoice:
    """Expired or cancelled with its link out; failed before a payment could be made."""
    start = (
        awaiting()
        if closure is not Closure.FAILED
        else new_invoice("acme", NewInvoice(deal_id="7", number="7", amount=90_000), "sandbox", CLOCK)
    )
    return apply(start, Close(closure=closure, reason="closed"), CLOCK).invoice


# -- a payment made elsewhere -------------------------------------------------------------------------------------


def test_a_payment_made_elsewhere_is_a_money_fact_keyed_by_the_persons_key() -> None:
    cash = PaidOutside(key="k1", amount=30_000, method="cash", reference="ПКО 17")
    first = apply(awaiting(), cash, CLOCK)
    assert first.changed and first.invoice.receipts == {"manual:k1": 30_000}
    assert first.invoice.state is InvoiceState.PARTIALLY_PAID
    assert first.audit is not None and first.audit.detail == "cash ПКО 17" and first.audit.ref == "manual:k1"
    # the same key again: nothing; the same key for other money: a conflict
    assert not apply(first.invoice, cash, CLOCK).changed
    with pytest.raises(InvoiceConflict):
        apply(first.invoice, cash.model_copy(update={"amount": 30_001}), CLOCK)
    # never more than is outstanding
    with pytest.raises(InvalidTransition, match="outstanding"):
        apply(first.invoice, PaidOutside(key="k2", amount=60_001, method="other"), CLOCK)
    rest = apply(first.invoice, PaidOutside(key="k2", amount=60_000, method="bank_transfer"), CLOCK).invoice
    assert rest.state is InvoiceState.PAID and rest.flags == ()


def test_cash_recorded_after_the_link_expired_pays_the_invoice_and_is_flagged() -> None:
    paid = apply(closed(), PaidOutside(key="k", amount=90_000, method="cash"), CLOCK).invoice
    assert paid.state is InvoiceState.PAID and "paid_after_close" in paid.flags


# -- a reissued link ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("closure", list(Closure))
def test_a_closed_invoice_without_money_is_reissued_as_a_new_attempt(closure: Closure) -> None:
    before = closed(closure)
    assert (before.attempt, before.order_id, before.execution_name) == (1, before.invoice_id, before.invoice_id)
    result = apply(before, Reissued(key="r1", expires_at=LATER), CLOCK)
    after = result.invoice
    assert after.state is InvoiceState.ISSUED and after.closed_as is None and after.payment_id is None
    old = () if closure is Closure.FAILED else ("pay_1",)
    assert after.expires_at == LATER and after.previous_payment_ids == old
    assert (after.attempt, after.order_id, after.execution_name) == (
        2,
        f"{before.invoice_id}-2",
        f"{before.invoice_id}-a2",
    )
    assert len(after.order_id) <= 36  # T-Bank's OrderId
    assert result.audit is not None and result.audit.ref == (old[0] if old else None)
    assert f"attempt 2 (was {closure.value})" in result.audit.detail
    # the same key again: nothing; the new attempt's payment is accepted
    assert not apply(after, Reissued(key="r1", expires_at=LATER), CLOCK).changed
    created = apply(after, PaymentCreated(payment_id="pay_2", payment_url="http://psp/pay_2"), CLOCK).invoice
    assert created.state is InvoiceState.AWAITING_PAYMENT


def test_only_a_closed_invoice_that_holds_no_money_is_reissued() -> None:
    with pytest.raises(InvalidTransition, match="awaiting_payment"):
        apply(awaiting(), Reissued(key="r", expires_at=LATER), CLOCK)
    partly = apply(awaiting(), MoneyReceived(ref="psp:1", amount=10_000), CLOCK).invoice
    expired_with_money = apply(partly, Close(closure=Closure.EXPIRED), CLOCK).invoice
    with pytest.raises(InvalidTransition, match="was received"):
        apply(expired_with_money, Reissued(key="r", expires_at=LATER), CLOCK)
    with pytest.raises(InvalidTransition, match="future"):
        apply(closed(), Reissued(key="r", expires_at=CLOCK), CLOCK)
    charge = closed(Closure.FAILED).model_copy(update={"charge_method": "sm_1"})
    with pytest.raises(InvalidTransition, match="subscription"):
        apply(charge, Reissued(key="r", expires_at=LATER), CLOCK)


def test_a_resync_changes_no_fact_only_the_version_and_the_audit() -> None:
    before = awaiting()
    result = apply(before, DealResynced(key="s1"), CLOCK)
    assert result.changed and result.invoice == before.model_copy(update={"version": before.version + 1})
    assert result.audit is not None and result.audit.ref == "s1" and result.audit.event == "deal_resynced"


def test_a_resync_writes_the_stage_and_the_link_again_but_never_resends_the_link_to_the_client() -> None:
    invoice = awaiting().model_copy(update={"customer": {"email": "client@example.com"}})
    ops = plan_deal_ops(invoice, "AWAITING_PAYMENT", "resync:k1")
    assert [op.kind for op in ops] == ["set_stage", "comment"]
    assert ops[0].payment_url == "http://psp/pay_1" and "ожидает оплаты" in str(ops[1].text)
    paid_ops = plan_deal_ops(apply(invoice, MoneyReceived(ref="x", amount=90_000)).invoice, "PAID", "resync:k2")
    assert paid_ops[0].stage == "PAID" and paid_ops[0].payment_url is None and "оплачен" in str(paid_ops[1].text)


# -- the idempotency runner ---------------------------------------------------------------------------------------


class MemoryKeys:
    def __init__(self) -> None:
        self.keys: dict[str, LeverKey] = {}

    def get(self, tenant_id: str, key: str) -> LeverKey | None:
        return self.keys.get(key)

    def claim(self, tenant_id: str, key: str, fingerprint: str, lever: str, actor: str) -> LeverKey:
        known = self.keys.setdefault(key, LeverKey(key, fingerprint, lever, actor, None))
        if known.fingerprint != fingerprint:
            raise IdempotencyKeyReused(key)
        return known

    def complete(self, tenant_id: str, key: str, fingerprint: str, result: str) -> tuple[str, bool]:
        known = self.keys[key]
        if known.result is not None:
            return known.result, False
        self.keys[key] = replace(known, result=result)
        return result, True


def lever_request(key: str = "k1", body: dict[str, Any] | None = None) -> LeverRequest:
    actor = Actor("ops:anna", "client asked")
    return LeverRequest("acme", key, "reissue", "inv_1", body or {"reason": "client asked"}, actor)


def test_the_runner_does_a_keys_work_once_and_answers_its_first_outcome() -> None:
    runner, calls = LeverRunner(MemoryKeys()), []

    def lever(commit: Any) -> LeverOutcome:
        commit()
        calls.append(1)
        return LeverOutcome(
            lever="reissue", key="k1", actor="ops:anna", reason="r", target="inv_1", detail=str(len(calls))
        )

    first = runner.run(lever_request(), lever)
    again = runner.run(lever_request(), lever)
    assert (first.replayed, again.replayed, again.outcome) == (False, True, first.outcome) and calls == [1]
    with pytest.raises(IdempotencyKeyReused, match="another body"):
        runner.run(lever_request(body={"reason": "another"}), lever)
    assert calls == [1]


def test_a_lever_refused_before_commit_leaves_its_key_free() -> None:
    keys = MemoryKeys()
    runner = LeverRunner(keys)

    def refused(commit: Any) -> LeverOutcome:
        raise InvalidTransition("not now")

    with pytest.raises(InvalidTransition):
        runner.run(lever_request(body={"reason": "first try"}), refused)
    assert keys.keys == {}


# -- the reissue and the old payment ------------------------------------------------------------------------------


class Starts:
    def __init__(self) -> None:
        self.names: list[str | None] = []

    def start(self, tenant_id: str, invoice_id: str, name: str | None = None) -> None:
        self.names.append(name)

    def expire(self, tenant_id: str, invoice_id: str, name: str) -> bool:
        return False


def reissues(setup: Setup, starts: Starts) -> Reissues:
    providers: Any = lambda _tenant: setup.psp  # noqa: E731
    checks = setup.tasks.checks
    return Reissues(Tenants(), setup.changes, checks, providers, starts, LeverRunner(MemoryKeys()), lambda: CLOCK)  # type: ignore[arg-type]


def closed_at_provider(setup: Setup) -> str:
    """An invoice whose link was published, then cancelled here while the provider kept its payment."""
    invoice_id = setup.awaiting()
    setup.changes.apply("acme", invoice_id, Close(closure=Closure.CANCELLED))
    return invoice_id


def test_an_open_old_payment_is_cancelled_and_one_new_attempt_started() -> None:
    setup, starts = Setup(AskedPsp(phase="open")), Starts()
    invoice_id = closed_at_provider(setup)
    service = reissues(setup, starts)
    first = service.reissue(lever_request(), invoice_id, 3600)
    twin = service.reissue(lever_request(), invoice_id, 3600)
    assert not first.replayed and twin.replayed
    assert setup.psp.cancelled == ["pay_1"] and starts.names == [f"{invoice_id}-a2"]
    invoice = setup.repo.get("acme", invoice_id)
    assert invoice.attempt == 2 and invoice.expires_at == CLOCK + timedelta(seconds=3600)
    (entry,) = [a for a in setup.repo.audit if a.event == "reissued"]
    assert entry.actor == "ops:anna" and "client asked" in entry.detail


@pytest.mark.parametrize(
    ("psp", "says"),
    [
        (AskedPsp(phase="held", raw_status="AUTHORIZED"), "never releases a hold"),
        (AskedPsp(phase="in_progress", raw_status="3DS_CHECKING"), "paying the old link right now"),
        (AskedPsp(phase="paid", raw_status="CONFIRMED", receipts=(MoneyFact(ref="t:1", amount=90_000),)), "holds"),
    ],
)
def test_an_old_payment_that_holds_money_or_is_being_paid_is_never_cancelled_and_nothing_is_reissued(
    psp: AskedPsp, says: str
) -> None:
    setup, starts = Setup(psp), Starts()
    invoice_id = closed_at_provider(setup)
    with pytest.raises(InvalidTransition, match=says):
        reissues(setup, starts).reissue(lever_request(), invoice_id, 3600)
    invoice = setup.repo.get("acme", invoice_id)
    assert setup.psp.cancelled == [] and starts.names == [] and invoice.reissues == {}
    if psp.receipts:  # the money the provider held is recorded, as a notification would have
        assert invoice.state is InvoiceState.PAID and invoice.receipts == {"t:1": 90_000}


# -- the list -------------------------------------------------------------------------------------------------------


class ListingRepo:
    def __init__(self, invoices: list[Invoice]) -> None:
        self.invoices = invoices

    def list_by_state(
        self, tenant_id: str, state: str, created_before: str | None = None, limit: int = 100
    ) -> list[Invoice]:
        return [i for i in self.invoices if i.state.value == state]

    def list_by_deal(self, tenant_id: str, deal_id: str) -> list[Invoice]:
        return [i for i in self.invoices if i.deal_id == deal_id]


def test_the_list_puts_stuck_invoices_first_then_the_oldest() -> None:
    def made(deal: str, created: datetime, lifetime: int) -> Invoice:
        request = NewInvoice(deal_id=deal, number=deal, amount=100, lifetime_seconds=lifetime)
        return new_invoice("acme", request, "sandbox", created)

    now = datetime(2026, 3, 1, tzinfo=UTC)
    oldest = made("1", now - timedelta(days=5), 90 * 86400)
    stuck = made("2", now - timedelta(days=2), 3600)  # open a day past its deadline
    newest = made("3", now - timedelta(hours=1), 86400)
    paid = apply(made("4", now - timedelta(days=9), 86400), MoneyReceived(ref="x", amount=100)).invoice
    invoices = Invoices(Tenants(), ListingRepo([newest, paid, oldest, stuck]), None, None)  # type: ignore[arg-type]
    listed = invoices.list_invoices("acme", now=now)
    assert [li.invoice.deal_id for li in listed] == ["2", "4", "1", "3"]
    assert [li.stuck for li in listed] == [True, False, False, False]
    assert [li.invoice.deal_id for li in invoices.list_invoices("acme", [InvoiceState.ISSUED], 86400, now=now)] == [
        "2",
        "1",
    ]
    assert [li.invoice.deal_id for li in invoices.list_invoices("acme", deal_id="3", now=now)] == ["3"]
