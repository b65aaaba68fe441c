"""The invoice lifecycle (paybridge.domain.invoice): issue, derived state, and `apply` for every event type."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from paybridge.domain.errors import InvalidTransition
from paybridge.domain.events import Close, MoneyReceived, PaymentCreated, PaymentDeclined, RefundConfirmed, apply
from paybridge.domain.invoice import (
    FINAL_STATES,
    OPEN_STATES,
    Closure,
    Customer,
    Invoice,
    InvoiceState,
    NewInvoice,
    derive_state,
    invoice_id_for,
    new_invoice,
    same_terms,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
AMOUNT = 100_000  # 1 000.00 RUB

CREATED = PaymentCreated(payment_id="pay-1", payment_url="https://psp.test/pay/pay-1", qr_payload="qr://pay-1")


def issued(amount: int = AMOUNT, **request: object) -> Invoice:
    fields: dict[str, object] = {"deal_id": "D-42", "number": "INV-7", "amount": amount, **request}
    return new_invoice("demo", NewInvoice.model_validate(fields), "sandbox", NOW)


def run(invoice: Invoice, *events: object) -> Invoice:
    """Apply events in order, asserting each one changes the invoice."""
    for event in events:
        result = apply(invoice, event, LATER)  # type: ignore[arg-type]
        assert result.changed, f"{event!r} was expected to change the invoice"
        invoice = result.invoice
    return invoice


def awaiting(amount: int = AMOUNT) -> Invoice:
    return run(issued(amount), CREATED)


# ---------------------------------------------------------------------------------------------------------------
# new_invoice / invoice_id_for
# ---------------------------------------------------------------------------------------------------------------


class TestIssue:
    def test_invoice_id_is_deterministic_30_chars_and_valid(self) -> None:
        # Given the same tenant, deal and number
        # When the id is computed twice
        first = invoice_id_for("demo", "D-42", "INV-7")
        second = invoice_id_for("demo", "D-42", "INV-7")
        # Then it is the same 30-character id in the documented alphabet
        assert first == second
        assert len(first) == 30
        assert re.fullmatch(r"inv_[a-z2-7]{26}", first)

    @pytest.mark.parametrize(
        ("tenant", "deal", "number"),
        [("other", "D-42", "INV-7"), ("demo", "D-43", "INV-7"), ("demo", "D-42", "INV-8")],
    )
    def test_invoice_id_differs_by_tenant_deal_and_number(self, tenant: str, deal: str, number: str) -> None:
        # Given one key differs from the reference (demo, D-42, INV-7)
        # When both ids are computed
        # Then they differ
        assert invoice_id_for(tenant, deal, number) != invoice_id_for("demo", "D-42", "INV-7")

    def test_invoice_id_fields_are_separated_not_concatenated(self) -> None:
        # Given two keys whose plain concatenation is the same ("ab"+"c" vs "a"+"bc")
        # Then the ids still differ (a separator is hashed between the fields)
        assert invoice_id_for("demo", "ab", "c") != invoice_id_for("demo", "a", "bc")

    def test_new_invoice_copies_the_request_and_computes_expiry(self) -> None:
        # Given a request with a customer and a one-hour lifetime
        customer = Customer(name="Ivan", email="ivan@example.com", phone="+79001234567")
        request = NewInvoice(
            deal_id="D-42",
            number="INV-7",
            amount=150_050,
            currency="USD",
            description="Consulting",
            customer=customer,
            lifetime_seconds=3600,
        )
        # When the invoice is issued
        invoice = new_invoice("demo", request, "sandbox", NOW)
        # Then it holds the request's terms, a deterministic id and no facts yet
        assert invoice.tenant_id == "demo"
        assert invoice.invoice_id == invoice_id_for("demo", "D-42", "INV-7")
        assert (invoice.deal_id, invoice.number, invoice.amount, invoice.currency) == ("D-42", "INV-7", 150_050, "USD")
        assert invoice.description == "Consulting"
        assert invoice.customer == customer
        assert invoice.provider == "sandbox"
        assert invoice.created_at == NOW
        assert invoice.expires_at == NOW + timedelta(hours=1)
        assert invoice.version == 0
        assert (invoice.receipts, invoice.refunds, invoice.declines, invoice.flags) == ({}, {}, {}, ())
        assert invoice.payment_id is None
        assert invoice.closed_as is None
        assert invoice.state is InvoiceState.ISSUED
        assert invoice.describe_amount() == "1 500.50 USD"

    def test_new_invoice_defaults_to_rub_and_three_days(self) -> None:
        invoice = issued()
        assert invoice.currency == "RUB"
        assert invoice.expires_at - invoice.created_at == timedelta(days=3)

    @pytest.mark.parametrize(
        "fields",
        [
            {"amount": 0},
            {"amount": -1},
            {"currency": "rub"},
            {"lifetime_seconds": 0},
            {"lifetime_seconds": 90 * 24 * 3600 + 1},
            {"deal_id": "bad deal"},
            {"number": ""},
            {"unexpected": 1},
        ],
    )
    def test_new_invoice_request_rejects_bad_terms(self, fields: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            NewInvoice.model_validate({"deal_id": "D-42", "number": "INV-7", "amount": AMOUNT, **fields})

    def test_same_terms_compares_money_and_customer_only(self) -> None:
        invoice = issued()
        base = {"deal_id": "D-42", "number": "INV-7", "amount": AMOUNT}
        assert same_terms(invoice, NewInvoice.model_validate({**base, "description": "other text"}))
        assert not same_terms(invoice, NewInvoice.model_validate({**base, "amount": AMOUNT + 1}))
        assert not same_terms(invoice, NewInvoice.model_validate({**base, "currency": "EUR"}))
        assert not same_terms(
            invoice, NewInvoice.model_validate({**base, "customer": {"email": "someone@example.com"}})
        )


# ---------------------------------------------------------------------------------------------------------------
# derive_state
# ---------------------------------------------------------------------------------------------------------------


def with_facts(**facts: object) -> Invoice:
    return issued().model_copy(update=facts)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({}, InvoiceState.ISSUED),
        ({"payment_url": "https://psp.test/p"}, InvoiceState.AWAITING_PAYMENT),
        ({"payment_url": "https://psp.test/p", "receipts": {"a": 1}}, InvoiceState.PARTIALLY_PAID),
        ({"receipts": {"a": AMOUNT - 1}}, InvoiceState.PARTIALLY_PAID),
        ({"receipts": {"a": AMOUNT}}, InvoiceState.PAID),
        ({"receipts": {"a": AMOUNT - 1, "b": 1}}, InvoiceState.PAID),
        ({"receipts": {"a": AMOUNT * 2}}, InvoiceState.PAID),
        ({"receipts": {"a": AMOUNT}, "refunds": {"r": 1}}, InvoiceState.PARTIALLY_REFUNDED),
        ({"receipts": {"a": AMOUNT}, "refunds": {"r": AMOUNT}}, InvoiceState.REFUNDED),
        ({"receipts": {"a": 500}, "refunds": {"r": 200}}, InvoiceState.PARTIALLY_REFUNDED),
        ({"closed_as": Closure.EXPIRED}, InvoiceState.EXPIRED),
        ({"closed_as": Closure.CANCELLED, "payment_url": "https://psp.test/p"}, InvoiceState.CANCELLED),
        ({"closed_as": Closure.FAILED}, InvoiceState.FAILED),
        ({"closed_as": Closure.EXPIRED, "receipts": {"a": 10}}, InvoiceState.EXPIRED),
        ({"closed_as": Closure.CANCELLED, "receipts": {"a": AMOUNT}}, InvoiceState.PAID),
        ({"closed_as": Closure.EXPIRED, "receipts": {"a": AMOUNT}, "refunds": {"r": AMOUNT}}, InvoiceState.REFUNDED),
    ],
)
def test_derive_state(facts: dict[str, object], expected: InvoiceState) -> None:
    # Given an invoice with these facts
    invoice = with_facts(**facts)
    # When its state is derived
    # Then it is the expected one (and the property agrees with the function)
    assert derive_state(invoice) is expected
    assert invoice.state is expected
    assert invoice.is_open is (expected in OPEN_STATES)


def test_every_state_is_reachable_by_derive_state_table() -> None:
    # The table above covers every state, and open/final partition the states
    assert set(InvoiceState) == OPEN_STATES | FINAL_STATES
    assert not OPEN_STATES & FINAL_STATES
    assert {InvoiceState.ISSUED, InvoiceState.AWAITING_PAYMENT, InvoiceState.PARTIALLY_PAID} == OPEN_STATES


def test_money_properties() -> None:
    invoice = with_facts(receipts={"a": 30_000, "b": 20_000}, refunds={"r": 5_000})
    assert invoice.paid == 50_000
    assert invoice.refunded == 5_000
    assert invoice.outstanding == 50_000
    assert with_facts(receipts={"a": AMOUNT + 7}).outstanding == 0


# ---------------------------------------------------------------------------------------------------------------
# apply: PaymentCreated
# ---------------------------------------------------------------------------------------------------------------


class TestPaymentCreated:
    def test_issued_becomes_awaiting_payment(self) -> None:
        # Given an issued invoice
        invoice = issued()
        # When the PSP payment is created
        result = apply(invoice, CREATED, LATER)
        # Then the invoice awaits payment with the link, one version later, audited
        assert result.changed
        new = result.invoice
        assert new.state is InvoiceState.AWAITING_PAYMENT
        assert (new.payment_id, new.payment_url, new.qr_payload) == (
            "pay-1",
            "https://psp.test/pay/pay-1",
            "qr://pay-1",
        )
        assert new.version == invoice.version + 1
        assert result.audit is not None
        assert result.audit.event == "payment_created"
        assert result.audit.from_state is InvoiceState.ISSUED
        assert result.audit.to_state is InvoiceState.AWAITING_PAYMENT
        assert result.audit.ref == "pay-1"
        assert result.audit.at == LATER
        # and the input invoice is untouched (frozen, pure function)
        assert invoice.payment_id is None
        assert invoice.version == 0

    def test_repeat_is_a_no_op(self) -> None:
        # Given an invoice that already has this payment
        invoice = awaiting()
        # When the same PaymentCreated is applied again
        result = apply(invoice, CREATED, LATER)
        # Then nothing changes
        assert not result.changed
        assert result.audit is None
        assert result.invoice == invoice

    def test_other_payment_is_rejected(self) -> None:
        invoice = awaiting()
        with pytest.raises(InvalidTransition, match="already has payment pay-1"):
            apply(invoice, PaymentCreated(payment_id="pay-2", payment_url="https://psp.test/pay/pay-2"), LATER)

    @pytest.mark.parametrize("closure", list(Closure))
    def test_closed_invoice_gets_no_payment(self, closure: Closure) -> None:
        # Given an issued invoice closed without a payment
        invoice = run(issued(), Close(closure=closure))
        # When a payment is reported created
        # Then it is rejected
        with pytest.raises(InvalidTransition, match=closure.value):
            apply(invoice, CREATED, LATER)

    def test_audit_timestamp_defaults_to_now(self) -> None:
        before = datetime.now(UTC)
        result = apply(issued(), CREATED)
        assert result.audit is not None
        assert before <= result.audit.at <= datetime.now(UTC)


# ---------------------------------------------------------------------------------------------------------------
# apply: MoneyReceived
# ---------------------------------------------------------------------------------------------------------------


class TestMoneyReceived:
    def test_full_payment_makes_it_paid(self) -> None:
        # Given an invoice awaiting payment
        invoice = awaiting()
        # When the whole amount arrives
        result = apply(invoice, MoneyReceived(ref="op-1", amount=AMOUNT), LATER)
        # Then it is paid, with the receipt recorded and audited
        assert result.changed
        assert result.invoice.state is InvoiceState.PAID
        assert result.invoice.receipts == {"op-1": AMOUNT}
        assert result.invoice.paid == AMOUNT
        assert result.invoice.flags == ()
        assert result.invoice.version == invoice.version + 1
        assert result.audit is not None
        assert (result.audit.event, result.audit.from_state, result.audit.to_state) == (
            "money_received",
            InvoiceState.AWAITING_PAYMENT,
            InvoiceState.PAID,
        )
        assert (result.audit.amount, result.audit.ref) == (AMOUNT, "op-1")

    def test_part_then_rest(self) -> None:
        # Given an invoice awaiting payment
        invoice = awaiting()
        # When 40% arrives
        first = apply(invoice, MoneyReceived(ref="op-1", amount=40_000), LATER)
        # Then it is partially paid
        assert first.invoice.state is InvoiceState.PARTIALLY_PAID
        assert first.invoice.outstanding == 60_000
        assert first.audit is not None
        assert first.audit.to_state is InvoiceState.PARTIALLY_PAID
        # When the rest arrives
        second = apply(first.invoice, MoneyReceived(ref="op-2", amount=60_000), LATER)
        # Then it is paid, with both receipts
        assert second.invoice.state is InvoiceState.PAID
        assert second.invoice.receipts == {"op-1": 40_000, "op-2": 60_000}
        assert second.audit is not None
        assert (second.audit.from_state, second.audit.to_state) == (InvoiceState.PARTIALLY_PAID, InvoiceState.PAID)
        assert second.invoice.version == invoice.version + 2

    def test_repeat_ref_is_a_no_op_even_with_another_amount(self) -> None:
        # Given an invoice with a receipt op-1
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=40_000))
        # When op-1 is reported again (same or different amount)
        for amount in (40_000, 99_999):
            result = apply(invoice, MoneyReceived(ref="op-1", amount=amount), LATER)
            # Then nothing changes
            assert not result.changed
            assert result.audit is None
            assert result.invoice == invoice
            assert result.invoice.paid == 40_000

    def test_money_without_a_payment_link_counts(self) -> None:
        # Given an issued invoice (no PSP payment yet; e.g. a bank transfer)
        # When the whole amount arrives
        result = apply(issued(), MoneyReceived(ref="bank:1", amount=AMOUNT), LATER)
        # Then it is paid
        assert result.invoice.state is InvoiceState.PAID

    def test_overpayment_is_flagged(self) -> None:
        # Given an invoice awaiting payment
        # When more than the amount arrives
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT + 1))
        # Then it is paid and flagged overpaid
        assert invoice.state is InvoiceState.PAID
        assert invoice.flags == ("overpaid",)
        assert invoice.outstanding == 0

    def test_overpayment_by_a_second_receipt_is_flagged(self) -> None:
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT))
        assert invoice.flags == ()
        invoice = run(invoice, MoneyReceived(ref="op-2", amount=1))
        assert invoice.state is InvoiceState.PAID
        assert invoice.flags == ("overpaid",)
        assert invoice.paid == AMOUNT + 1

    def test_amount_mismatch_is_flagged(self) -> None:
        # Given a provider that must notify the invoice amount
        # When it notifies another amount
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT - 100, expected_amount=AMOUNT))
        # Then the money counts and the invoice is flagged
        assert invoice.state is InvoiceState.PARTIALLY_PAID
        assert invoice.flags == ("amount_mismatch",)

    def test_expected_amount_that_matches_is_not_flagged(self) -> None:
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT, expected_amount=AMOUNT))
        assert invoice.flags == ()

    @pytest.mark.parametrize("closure", [Closure.EXPIRED, Closure.CANCELLED])
    def test_money_after_close_is_kept_and_flagged(self, closure: Closure) -> None:
        # Given an invoice closed while awaiting payment
        invoice = run(awaiting(), Close(closure=closure))
        assert invoice.state.value == closure.value
        # When the whole amount arrives anyway
        result = apply(invoice, MoneyReceived(ref="op-late", amount=AMOUNT), LATER)
        # Then the money counts (paid), the closure stays recorded and a person is asked to look
        assert result.changed
        assert result.invoice.state is InvoiceState.PAID
        assert result.invoice.closed_as is closure
        assert result.invoice.flags == ("paid_after_close",)
        assert result.audit is not None
        assert (result.audit.from_state, result.audit.to_state) == (InvoiceState(closure.value), InvoiceState.PAID)

    def test_partial_money_after_close_keeps_the_closed_state(self) -> None:
        invoice = run(awaiting(), Close(closure=Closure.EXPIRED), MoneyReceived(ref="op-late", amount=10))
        assert invoice.state is InvoiceState.EXPIRED
        assert invoice.paid == 10
        assert invoice.flags == ("paid_after_close",)

    def test_money_after_a_refund_is_overpaid_but_not_after_close(self) -> None:
        # A refund does not close the invoice: money after it is flagged as in any other order (overpaid only)
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT), RefundConfirmed(ref="r-1", amount=AMOUNT))
        assert invoice.state is InvoiceState.REFUNDED
        invoice = run(invoice, MoneyReceived(ref="op-2", amount=AMOUNT))
        assert invoice.state is InvoiceState.PARTIALLY_REFUNDED
        assert invoice.flags == ("overpaid",)
        other_order = run(
            awaiting(),
            MoneyReceived(ref="op-1", amount=AMOUNT),
            MoneyReceived(ref="op-2", amount=AMOUNT),
            RefundConfirmed(ref="r-1", amount=AMOUNT),
        )
        assert (other_order.state, other_order.flags) == (invoice.state, invoice.flags)

    def test_flags_accumulate_sorted_and_unique(self) -> None:
        invoice = run(
            awaiting(),
            Close(closure=Closure.CANCELLED),
            MoneyReceived(ref="op-1", amount=AMOUNT + 5, expected_amount=AMOUNT),
            MoneyReceived(ref="op-2", amount=5, expected_amount=AMOUNT),
        )
        assert invoice.flags == ("amount_mismatch", "overpaid", "paid_after_close")

    def test_non_positive_money_is_not_an_event(self) -> None:
        with pytest.raises(ValidationError):
            MoneyReceived(ref="op-1", amount=0)
        with pytest.raises(ValidationError):
            MoneyReceived(ref="op-1", amount=-5)


# ---------------------------------------------------------------------------------------------------------------
# apply: PaymentDeclined
# ---------------------------------------------------------------------------------------------------------------


class TestPaymentDeclined:
    def test_decline_is_recorded_and_state_unchanged(self) -> None:
        # Given an invoice awaiting payment
        invoice = awaiting()
        # When an attempt is declined
        result = apply(invoice, PaymentDeclined(ref="att-1", reason="insufficient funds"), LATER)
        # Then the decline is recorded, the client can still pay
        assert result.changed
        assert result.invoice.declines == {"att-1": "insufficient funds"}
        assert result.invoice.state is InvoiceState.AWAITING_PAYMENT
        assert result.invoice.version == invoice.version + 1
        assert result.audit is not None
        assert (result.audit.event, result.audit.ref, result.audit.detail) == (
            "payment_declined",
            "att-1",
            "insufficient funds",
        )
        assert result.audit.from_state is result.audit.to_state is InvoiceState.AWAITING_PAYMENT

    def test_repeat_is_a_no_op(self) -> None:
        invoice = run(awaiting(), PaymentDeclined(ref="att-1"))
        result = apply(invoice, PaymentDeclined(ref="att-1", reason="again"), LATER)
        assert not result.changed
        assert result.invoice.declines == {"att-1": ""}

    def test_decline_after_partial_payment_is_recorded(self) -> None:
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=1))
        invoice = run(invoice, PaymentDeclined(ref="att-2"))
        assert invoice.state is InvoiceState.PARTIALLY_PAID
        assert "att-2" in invoice.declines

    @pytest.mark.parametrize(
        "events",
        [
            [MoneyReceived(ref="op-1", amount=AMOUNT)],
            [Close(closure=Closure.EXPIRED)],
            [Close(closure=Closure.CANCELLED)],
        ],
        ids=["paid", "expired", "cancelled"],
    )
    def test_decline_on_a_final_invoice_is_a_no_op(self, events: list[object]) -> None:
        invoice = run(awaiting(), *events)
        result = apply(invoice, PaymentDeclined(ref="att-late"), LATER)
        assert not result.changed
        assert result.invoice.declines == {}


# ---------------------------------------------------------------------------------------------------------------
# apply: Close
# ---------------------------------------------------------------------------------------------------------------


class TestClose:
    @pytest.mark.parametrize(
        ("start", "closure"),
        [
            ("issued", Closure.EXPIRED),
            ("awaiting", Closure.EXPIRED),
            ("issued", Closure.CANCELLED),
            ("awaiting", Closure.CANCELLED),
            ("issued", Closure.FAILED),
        ],
    )
    def test_allowed_closures(self, start: str, closure: Closure) -> None:
        # Given an open invoice
        invoice = issued() if start == "issued" else awaiting()
        before = invoice.state
        # When it is closed
        result = apply(invoice, Close(closure=closure, reason="because"), LATER)
        # Then it is in the closure's state with the reason, audited
        assert result.changed
        assert result.invoice.state is InvoiceState(closure.value)
        assert result.invoice.closed_as is closure
        assert result.invoice.close_reason == "because"
        assert result.invoice.version == invoice.version + 1
        assert result.audit is not None
        assert (result.audit.event, result.audit.detail) == ("close", "because")
        assert (result.audit.from_state, result.audit.to_state) == (before, InvoiceState(closure.value))

    def test_expiry_with_partial_money_keeps_the_money(self) -> None:
        # Given a partially paid invoice
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=10_000))
        # When its link expires
        result = apply(invoice, Close(closure=Closure.EXPIRED, reason="link expired"), LATER)
        # Then it is expired and still shows the money received
        assert result.changed
        assert result.invoice.state is InvoiceState.EXPIRED
        assert result.invoice.paid == 10_000
        assert result.audit is not None
        assert (result.audit.from_state, result.audit.to_state) == (InvoiceState.PARTIALLY_PAID, InvoiceState.EXPIRED)

    @pytest.mark.parametrize("closure", list(Closure))
    def test_same_closure_twice_is_a_no_op(self, closure: Closure) -> None:
        invoice = run(issued(), Close(closure=closure, reason="first"))
        result = apply(invoice, Close(closure=closure, reason="second"), LATER)
        assert not result.changed
        assert result.audit is None
        assert result.invoice.close_reason == "first"

    def test_expiry_loses_the_race_to_money(self) -> None:
        # Given an invoice paid just before its deadline
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT))
        # When the expiry arrives late
        result = apply(invoice, Close(closure=Closure.EXPIRED, reason="link expired"), LATER)
        # Then it is a no-op: the invoice stays paid, not closed
        assert not result.changed
        assert result.invoice is invoice
        assert result.invoice.state is InvoiceState.PAID
        assert result.invoice.closed_as is None

    def test_expiry_loses_the_race_to_a_cancel(self) -> None:
        invoice = run(awaiting(), Close(closure=Closure.CANCELLED))
        result = apply(invoice, Close(closure=Closure.EXPIRED), LATER)
        assert not result.changed
        assert result.invoice.state is InvoiceState.CANCELLED

    def test_expiry_after_a_refund_is_a_no_op(self) -> None:
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT), RefundConfirmed(ref="r-1", amount=1))
        assert not apply(invoice, Close(closure=Closure.EXPIRED), LATER).changed

    def test_cancel_after_partial_payment_is_rejected(self) -> None:
        # Given a partially paid invoice
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=1))
        # When someone tries to cancel it
        # Then it is rejected: money must be refunded, not cancelled
        with pytest.raises(InvalidTransition, match="partially_paid cannot be cancelled; refund it instead"):
            apply(invoice, Close(closure=Closure.CANCELLED), LATER)

    def test_cancel_after_payment_is_rejected(self) -> None:
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT))
        with pytest.raises(InvalidTransition, match="paid cannot be cancelled"):
            apply(invoice, Close(closure=Closure.CANCELLED), LATER)

    @pytest.mark.parametrize("first", [Closure.EXPIRED, Closure.FAILED])
    def test_cancel_after_another_closure_is_rejected(self, first: Closure) -> None:
        invoice = run(issued(), Close(closure=first))
        with pytest.raises(InvalidTransition, match=f"{first.value} cannot be cancelled"):
            apply(invoice, Close(closure=Closure.CANCELLED), LATER)

    def test_fail_after_payment_created_is_rejected(self) -> None:
        # Given an invoice whose payment exists at the PSP
        invoice = awaiting()
        # When the lifecycle tries to mark it failed
        # Then it is rejected
        with pytest.raises(InvalidTransition, match="awaiting_payment cannot fail"):
            apply(invoice, Close(closure=Closure.FAILED, reason="psp down"), LATER)

    @pytest.mark.parametrize("first", [Closure.EXPIRED, Closure.CANCELLED])
    def test_fail_after_another_closure_is_rejected(self, first: Closure) -> None:
        invoice = run(issued(), Close(closure=first))
        with pytest.raises(InvalidTransition, match="cannot fail"):
            apply(invoice, Close(closure=Closure.FAILED), LATER)

    def test_rejection_leaves_the_invoice_untouched(self) -> None:
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=1))
        snapshot = invoice.model_dump()
        with pytest.raises(InvalidTransition):
            apply(invoice, Close(closure=Closure.CANCELLED), LATER)
        assert invoice.model_dump() == snapshot


# ---------------------------------------------------------------------------------------------------------------
# apply: RefundConfirmed
# ---------------------------------------------------------------------------------------------------------------


class TestRefundConfirmed:
    def test_partial_then_full_refund(self) -> None:
        # Given a paid invoice
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT))
        # When part is refunded
        first = apply(invoice, RefundConfirmed(ref="r-1", amount=30_000), LATER)
        # Then it is partially refunded
        assert first.changed
        assert first.invoice.state is InvoiceState.PARTIALLY_REFUNDED
        assert first.invoice.refunds == {"r-1": 30_000}
        assert first.audit is not None
        assert (first.audit.event, first.audit.amount, first.audit.ref) == ("refund_confirmed", 30_000, "r-1")
        assert (first.audit.from_state, first.audit.to_state) == (InvoiceState.PAID, InvoiceState.PARTIALLY_REFUNDED)
        # When the rest is refunded
        second = apply(first.invoice, RefundConfirmed(ref="r-2", amount=70_000), LATER)
        # Then it is refunded
        assert second.invoice.state is InvoiceState.REFUNDED
        assert second.invoice.refunded == AMOUNT
        assert second.audit is not None
        assert (second.audit.from_state, second.audit.to_state) == (
            InvoiceState.PARTIALLY_REFUNDED,
            InvoiceState.REFUNDED,
        )

    def test_repeat_is_a_no_op(self) -> None:
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=AMOUNT), RefundConfirmed(ref="r-1", amount=1_000))
        result = apply(invoice, RefundConfirmed(ref="r-1", amount=1_000), LATER)
        assert not result.changed
        assert result.invoice.refunded == 1_000

    def test_refund_beyond_what_we_know_was_paid_waits_for_its_payment(self) -> None:
        # Given an invoice paid 40 000 with 30 000 refunded already
        invoice = run(awaiting(), MoneyReceived(ref="op-1", amount=40_000), RefundConfirmed(ref="r-1", amount=30_000))
        # When the provider confirms 10 000.01 more (a payment we have not heard of yet)
        invoice = run(invoice, RefundConfirmed(ref="r-2", amount=10_001))
        # Then the fact is kept; what counts as refunded is capped by what is known to be paid
        assert invoice.refunds == {"r-1": 30_000, "r-2": 10_001}
        assert (invoice.refunded, invoice.refund_awaiting_payment) == (40_000, 1)
        assert invoice.state is InvoiceState.REFUNDED and invoice.refundable == 0
        # And once the missing payment arrives, everything counts
        invoice = run(invoice, MoneyReceived(ref="op-2", amount=60_000))
        assert (invoice.paid, invoice.refunded, invoice.refund_awaiting_payment) == (100_000, 40_001, 0)
        assert invoice.state is InvoiceState.PARTIALLY_REFUNDED

    def test_refund_of_an_unpaid_invoice_is_kept_until_its_payment_arrives(self) -> None:
        invoice = run(awaiting(), RefundConfirmed(ref="r-1", amount=1))
        assert invoice.state is InvoiceState.AWAITING_PAYMENT
        assert (invoice.refunded, invoice.refund_awaiting_payment) == (0, 1)

    def test_refund_of_money_received_after_close(self) -> None:
        invoice = run(awaiting(), Close(closure=Closure.CANCELLED), MoneyReceived(ref="op-late", amount=AMOUNT))
        invoice = run(invoice, RefundConfirmed(ref="r-1", amount=AMOUNT))
        assert invoice.state is InvoiceState.REFUNDED
        assert invoice.closed_as is Closure.CANCELLED
