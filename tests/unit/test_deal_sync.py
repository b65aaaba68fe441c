"""What a deal must show after each lifecycle step (paybridge.domain.deal_sync): planned once for every CRM."""

from __future__ import annotations

from paybridge.domain.deal_sync import DealOp, deal_update, plan_deal_ops
from paybridge.domain.events import Close, MoneyReceived, PaymentDeclined
from paybridge.domain.invoice import Closure, Customer
from tests.unit.test_invoice_domain import awaiting, run


def kinds(ops: tuple[DealOp, ...]) -> list[str]:
    return [op.kind for op in ops]


def test_link_published_sets_the_stage_with_the_link_comments_and_tells_the_client() -> None:
    invoice = awaiting().model_copy(update={"customer": Customer(email="a@example.com")})
    ops = plan_deal_ops(invoice, "AWAITING", "payment_created")
    assert kinds(ops) == ["set_stage", "comment", "send_to_customer"]
    assert ops[0].stage == "AWAITING" and ops[0].payment_url == invoice.payment_url
    assert invoice.payment_url in (ops[2].text or "") and ops[2].customer == Customer(email="a@example.com")


def test_without_a_contact_the_client_is_not_messaged() -> None:
    assert kinds(plan_deal_ops(awaiting(), "AWAITING", "payment_created")) == ["set_stage", "comment"]


def test_a_repeat_while_awaiting_shows_nothing_and_makes_no_update() -> None:
    assert plan_deal_ops(awaiting(), "AWAITING", "") == ()
    assert deal_update(awaiting(), "AWAITING", "resumed") is None


def test_a_declined_card_is_a_comment_only() -> None:
    invoice = run(awaiting(), PaymentDeclined(ref="op-1", reason="insufficient funds"))
    ops = plan_deal_ops(invoice, "AWAITING", "payment_declined")
    assert kinds(ops) == ["comment"] and "отклонена" in (ops[0].text or "")


def test_paid_moves_the_stage_and_comments_without_bothering_the_manager() -> None:
    paid = run(awaiting(), MoneyReceived(ref="op-1", amount=100_000))
    ops = plan_deal_ops(paid, "WON", "money_received")
    assert kinds(ops) == ["set_stage", "comment"] and ops[0].stage == "WON" and ops[0].payment_url is None


def test_partial_payment_and_expiry_tell_the_manager() -> None:
    partial = run(awaiting(), MoneyReceived(ref="op-1", amount=40_000))
    assert kinds(plan_deal_ops(partial, "PARTIAL", "money_received")) == ["set_stage", "comment", "notify_manager"]
    expired = run(awaiting(), Close(closure=Closure.EXPIRED, reason="link expired"))
    assert kinds(plan_deal_ops(expired, "EXPIRED", "expired")) == ["set_stage", "comment", "notify_manager"]


def test_an_overpayment_flag_adds_a_manager_notice() -> None:
    overpaid = run(awaiting(), MoneyReceived(ref="op-1", amount=150_000))
    ops = plan_deal_ops(overpaid, "WON", "money_received")
    assert kinds(ops) == ["set_stage", "comment", "notify_manager"]


def test_a_failed_refund_is_told_without_moving_the_stage() -> None:
    paid = run(awaiting(), MoneyReceived(ref="op-1", amount=100_000))
    assert kinds(plan_deal_ops(paid, "WON", "refund_failed")) == ["comment", "notify_manager"]


def test_the_update_id_is_stable_per_invoice_version_and_event_and_orders_per_deal() -> None:
    paid = run(awaiting(), MoneyReceived(ref="op-1", amount=100_000))
    first, again = deal_update(paid, "WON", "money_received"), deal_update(paid, "WON", "money_received")
    assert first is not None and again is not None
    assert first.update_id == again.update_id == f"{paid.invoice_id}:v{paid.version}:money_received"
    assert first.group == "demo:D-42"
    refund_failed = deal_update(paid, "WON", "refund_failed")
    assert refund_failed is not None and refund_failed.update_id != first.update_id
