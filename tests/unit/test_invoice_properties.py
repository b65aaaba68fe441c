"""Properties of the invoice lifecycle over random sequences of events (hypothesis).

A sequence is applied in order; an event that raises `InvalidTransition` is "rejected" and leaves the invoice as it
was. Refs are drawn from small sets so that repeats (redeliveries) happen often."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from paybridge.domain.errors import InvalidTransition, InvoiceConflict
from paybridge.domain.events import (
    Close,
    InvoiceEvent,
    MoneyReceived,
    PaymentCreated,
    PaymentDeclined,
    RefundAccepted,
    RefundConfirmed,
    RefundFailed,
    RefundRequested,
    apply,
)
from paybridge.domain.invoice import OPEN_STATES, Closure, Invoice, InvoiceState, NewInvoice, new_invoice

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PAID_LIKE = frozenset({InvoiceState.PAID, InvoiceState.PARTIALLY_REFUNDED, InvoiceState.REFUNDED})
SETTINGS = settings(max_examples=200, deadline=None)

MONEY_REFS = ["op-1", "op-2", "op-3", "op-4"]
REFUND_REFS = ["r-1", "r-2", "r-3"]
DECLINE_REFS = ["d-1", "d-2"]
PAYMENT_IDS = ["pay-1", "pay-2"]
REFUND_KEYS = ["k-1", "k-2", "k-3"]

# Amounts around a 100 000 invoice so that partial, exact and over-payments all occur.
amounts = st.one_of(st.sampled_from([1, 25_000, 50_000, 100_000]), st.integers(min_value=1, max_value=150_000))

money_events = st.builds(
    MoneyReceived,
    ref=st.sampled_from(MONEY_REFS),
    amount=amounts,
    expected_amount=st.one_of(st.none(), st.just(100_000)),
)
events = st.one_of(
    money_events,
    st.builds(PaymentDeclined, ref=st.sampled_from(DECLINE_REFS), reason=st.sampled_from(["", "no funds"])),
    st.builds(Close, closure=st.sampled_from(list(Closure)), reason=st.just("test")),
    st.builds(RefundConfirmed, ref=st.sampled_from(REFUND_REFS), amount=amounts),
    st.builds(
        PaymentCreated,
        payment_id=st.sampled_from(PAYMENT_IDS),
        payment_url=st.just("https://psp.test/pay"),
    ),
)
#: Refunds asked through PayBridge: reserve, then accepted / confirmed / failed by the provider.
refund_request_events = st.one_of(
    st.builds(RefundRequested, key=st.sampled_from(REFUND_KEYS), amount=amounts),
    st.builds(RefundAccepted, key=st.sampled_from(REFUND_KEYS), ref=st.sampled_from(REFUND_REFS)),
    st.builds(
        RefundConfirmed,
        ref=st.sampled_from(REFUND_REFS),
        amount=amounts,
        request_key=st.sampled_from(REFUND_KEYS),
    ),
    st.builds(RefundFailed, key=st.sampled_from(REFUND_KEYS), reason=st.just("refused")),
)
sequences = st.lists(st.one_of(events, refund_request_events), max_size=25)
invoice_amounts = st.one_of(st.just(100_000), st.integers(min_value=1, max_value=200_000))


def fresh(amount: int = 100_000) -> Invoice:
    return new_invoice("demo", NewInvoice(deal_id="D-1", number="N-1", amount=amount), "sandbox", AT)


@dataclass(frozen=True)
class Step:
    event: InvoiceEvent
    before: Invoice
    after: Invoice
    outcome: str  # "changed" | "no-op" | "rejected"


def replay(invoice: Invoice, sequence: list[InvoiceEvent]) -> tuple[Invoice, list[Step]]:
    steps: list[Step] = []
    for event in sequence:
        try:
            result = apply(invoice, event, AT)
        except (InvalidTransition, InvoiceConflict):
            steps.append(Step(event, invoice, invoice, "rejected"))
            continue
        steps.append(Step(event, invoice, result.invoice, "changed" if result.changed else "no-op"))
        invoice = result.invoice
    return invoice, steps


def money_facts(invoice: Invoice) -> tuple[object, ...]:
    return (invoice.receipts, invoice.refunds, invoice.paid, invoice.refunded)


@SETTINGS
@given(amount=invoice_amounts, sequence=sequences)
def test_money_invariants_hold_after_every_step(amount: int, sequence: list[InvoiceEvent]) -> None:
    _, steps = replay(fresh(amount), sequence)
    for step in steps:
        invoice = step.after
        assert invoice.paid >= 0
        assert invoice.refunded >= 0
        assert invoice.refunded <= invoice.paid, step
        assert invoice.outstanding == max(invoice.amount - invoice.paid, 0)
        assert invoice.amount == amount


@SETTINGS
@given(amount=invoice_amounts, sequence=sequences)
def test_version_counts_changes_and_audit_matches_states(amount: int, sequence: list[InvoiceEvent]) -> None:
    start = fresh(amount)
    final, steps = replay(start, sequence)
    for step in steps:
        if step.outcome == "changed":
            assert step.after.version == step.before.version + 1
            result = apply(step.before, step.event, AT)
            assert result.audit is not None
            assert result.audit.event == step.event.kind
            assert result.audit.from_state is step.before.state
            assert result.audit.to_state is step.after.state
        else:
            # a no-op or a rejection leaves the invoice exactly as it was
            assert step.after == step.before
    assert final.version == start.version + sum(s.outcome == "changed" for s in steps)


@SETTINGS
@given(amount=invoice_amounts, sequence=sequences)
def test_facts_only_grow(amount: int, sequence: list[InvoiceEvent]) -> None:
    _, steps = replay(fresh(amount), sequence)
    for step in steps:
        before, after = step.before, step.after
        assert before.receipts.items() <= after.receipts.items()
        assert before.refunds.items() <= after.refunds.items()
        assert before.declines.items() <= after.declines.items()
        assert set(before.flags) <= set(after.flags)
        if before.closed_as is not None:
            assert after.closed_as is before.closed_as
        if before.payment_id is not None:
            assert after.payment_id == before.payment_id


@SETTINGS
@given(amount=invoice_amounts, sequence=sequences)
def test_paid_never_goes_back(amount: int, sequence: list[InvoiceEvent]) -> None:
    _, steps = replay(fresh(amount), sequence)
    reached_paid = False
    for step in steps:
        state = step.after.state
        if reached_paid:
            assert state in PAID_LIKE, f"{step.event!r} moved a paid invoice to {state}"
            assert state not in OPEN_STATES
            if isinstance(step.event, Close):
                assert step.outcome != "changed", "a paid invoice cannot be closed"
        reached_paid = reached_paid or state in PAID_LIKE


@SETTINGS
@given(amount=invoice_amounts, sequence=sequences)
def test_final_states_are_absorbing(amount: int, sequence: list[InvoiceEvent]) -> None:
    _, steps = replay(fresh(amount), sequence)
    closed = False
    for step in steps:
        if closed:
            assert step.after.state not in OPEN_STATES
        closed = closed or step.after.state not in OPEN_STATES


@SETTINGS
@given(amount=invoice_amounts, sequence=sequences)
def test_replaying_accepted_events_changes_nothing(amount: int, sequence: list[InvoiceEvent]) -> None:
    # Every event that changed the invoice is a no-op when delivered again to the final invoice.
    final, steps = replay(fresh(amount), sequence)
    for step in steps:
        if step.outcome == "changed":
            result = apply(final, step.event, AT)
            assert not result.changed, step.event
            assert result.invoice == final


@SETTINGS
@given(amount=invoice_amounts, sequence=sequences)
def test_replaying_the_whole_sequence_gives_the_same_money_facts(amount: int, sequence: list[InvoiceEvent]) -> None:
    once, steps = replay(fresh(amount), sequence)
    twice, _ = replay(once, sequence)
    assert twice.receipts == once.receipts
    assert twice.paid == once.paid
    assert twice.closed_as == once.closed_as
    assert twice.payment_id == once.payment_id
    assert twice.declines == once.declines
    refund_rejected = any(
        step.outcome == "rejected"
        and isinstance(step.event, RefundConfirmed | RefundRequested | RefundAccepted | RefundFailed)
        for step in steps
    )
    if refund_rejected:
        # A refund rejected because its money had not arrived yet is accepted when redelivered (that is what the
        # 409 asks of the sender; a refund asked for too early may be asked again, and a confirmation seen before
        # its request is linked to it on redelivery); anything recorded once stays.
        assert once.refunds.items() <= twice.refunds.items()
    else:
        assert money_facts(twice) == money_facts(once)
        assert twice.state is once.state
        assert twice.flags == once.flags
        assert twice.version == once.version
    # Redelivery reaches a fixed point: two passes suffice for provider events; a chain of refund events that each
    # waited for the one before (money → request → accepted) needs one pass per link, never more.
    current, passes = twice, 2
    while True:
        again, again_steps = replay(current, sequence)
        if not any(s.outcome == "changed" for s in again_steps):
            assert again == current
            break
        passes += 1
        assert refund_rejected and passes <= len(sequence) + 1, "redelivery never settles"
        current = again


def test_a_refund_before_its_money_is_kept_and_applied_when_the_money_arrives() -> None:
    # Given a refund notification that overtakes the payment it refunds
    sequence: list[InvoiceEvent] = [
        RefundConfirmed(ref="r-1", amount=100),
        MoneyReceived(ref="op-1", amount=100_000),
    ]
    # When the sequence is applied once
    once, steps = replay(fresh(), sequence)
    # Then the refund is kept at once (not refused), waits for its payment, and counts once the payment is known
    assert [s.outcome for s in steps] == ["changed", "changed"]
    assert steps[0].after.refunds == {"r-1": 100}
    assert steps[0].after.refunded == 0 and steps[0].after.refund_awaiting_payment == 100
    assert steps[0].after.state is InvoiceState.ISSUED
    assert once.refunded == 100 and once.refund_awaiting_payment == 0
    assert once.state is InvoiceState.PARTIALLY_REFUNDED
    # And it ends exactly as the natural order does
    natural, _ = replay(fresh(), list(reversed(sequence)))
    assert (natural.state, natural.flags, natural.refunds, natural.receipts) == (
        once.state,
        once.flags,
        once.refunds,
        once.receipts,
    )


def test_partial_then_refund_then_rest_raises_no_false_paid_after_close() -> None:
    # Given a half payment, a refund of it, then the other half (issue 13: a false `paid_after_close`)
    sequence: list[InvoiceEvent] = [
        MoneyReceived(ref="op-1", amount=50_000),
        RefundConfirmed(ref="r-1", amount=50_000),
        MoneyReceived(ref="op-2", amount=50_000),
    ]
    final, _ = replay(fresh(), sequence)
    # Then no flag: a refund does not close an invoice
    assert final.flags == ()
    assert final.state is InvoiceState.PARTIALLY_REFUNDED


# ---------------------------------------------------------------------------------------------------------------
# Order-insensitivity of money
# ---------------------------------------------------------------------------------------------------------------

START_STATES = {
    "issued": [],
    "awaiting": [PaymentCreated(payment_id="pay-1", payment_url="https://psp.test/pay")],
    "expired": [
        PaymentCreated(payment_id="pay-1", payment_url="https://psp.test/pay"),
        Close(closure=Closure.EXPIRED),
    ],
    "cancelled": [Close(closure=Closure.CANCELLED)],
}


@st.composite
def money_permutations(draw: st.DrawFn) -> tuple[list[MoneyReceived], list[MoneyReceived], list[MoneyReceived]]:
    """A multiset of money events (a ref always carries the same amount, as a provider's redelivery does) and two
    permutations of it."""
    per_ref = {
        ref: (draw(amounts), draw(st.one_of(st.none(), st.just(100_000))))
        for ref in draw(st.lists(st.sampled_from(MONEY_REFS), min_size=1, max_size=4, unique=True))
    }
    refs = draw(st.lists(st.sampled_from(sorted(per_ref)), min_size=1, max_size=10))
    base = [MoneyReceived(ref=r, amount=per_ref[r][0], expected_amount=per_ref[r][1]) for r in refs]
    return base, draw(st.permutations(base)), draw(st.permutations(base))


@SETTINGS
@given(
    amount=invoice_amounts,
    start=st.sampled_from(sorted(START_STATES)),
    money=money_permutations(),
)
def test_money_in_any_order_ends_the_same(
    amount: int, start: str, money: tuple[list[MoneyReceived], list[MoneyReceived], list[MoneyReceived]]
) -> None:
    origin, _ = replay(fresh(amount), list(START_STATES[start]))
    results = [replay(origin, list(order)) for order in money]
    finals = [final for final, _ in results]
    first = finals[0]
    distinct_refs = {event.ref for event in money[0]}
    assert first.paid == sum(event.amount for event in {e.ref: e for e in money[0]}.values())
    assert first.version == origin.version + len(distinct_refs)
    for final, steps in results:
        assert not any(s.outcome == "rejected" for s in steps)
        assert final.paid == first.paid
        assert final.receipts == first.receipts
        assert final.state is first.state
        assert final.flags == first.flags
        assert final.version == first.version


@SETTINGS
@given(amount=invoice_amounts, sequence=sequences)
def test_a_refund_request_never_goes_back(amount: int, sequence: list[InvoiceEvent]) -> None:
    # pending → succeeded | failed; a succeeded request stays succeeded; a failed one changes only when the provider
    # confirms that refund after all (the money moved: that fact wins); the amount never changes
    _, steps = replay(fresh(amount), sequence)
    for step in steps:
        for key, before in step.before.refund_requests.items():
            after = step.after.refund_requests[key]
            assert after.amount == before.amount
            if before.status == "succeeded":
                assert after.status == "succeeded", step
            if before.status == "failed" and after.status != "failed":
                assert after.status == "succeeded" and isinstance(step.event, RefundConfirmed), step


@SETTINGS
@given(
    amount=invoice_amounts,
    payments=st.lists(money_events, max_size=4),
    refunds=st.lists(
        st.one_of(
            st.builds(RefundRequested, key=st.sampled_from(REFUND_KEYS), amount=amounts),
            st.builds(RefundFailed, key=st.sampled_from(REFUND_KEYS)),
        ),
        max_size=12,
    ),
)
def test_reserved_refunds_never_exceed_what_was_paid(
    amount: int, payments: list[InvoiceEvent], refunds: list[InvoiceEvent]
) -> None:
    # Every refund asked through PayBridge is reserved first, so confirmed + still pending never exceeds paid
    invoice, _ = replay(fresh(amount), [PaymentCreated(payment_id="pay-1", payment_url="https://psp.test/pay")])
    invoice, _ = replay(invoice, payments)
    invoice, steps = replay(invoice, refunds)
    confirmations: list[InvoiceEvent] = [
        RefundConfirmed(ref=f"re-{key}", amount=request.amount, request_key=key)
        for key, request in invoice.refund_requests.items()
        if request.status == "pending"
    ]
    invoice, confirmed = replay(invoice, confirmations)
    assert all(step.outcome == "changed" for step in confirmed)
    for step in steps:
        assert step.after.refunded + step.after.refund_pending <= step.after.paid
    assert invoice.refunded <= invoice.paid and invoice.refund_pending == 0


# ---------------------------------------------------------------------------------------------------------------
# Order-insensitivity of payment parts, refunds and closures together
# ---------------------------------------------------------------------------------------------------------------


@st.composite
def provider_facts(draw: st.DrawFn, with_closure: bool) -> list[InvoiceEvent]:
    """Payment parts, refunds of them (never more than the parts: a provider refunds only what it took), redeliveries,
    and optionally one closure — one multiset of facts, to be applied in several orders."""
    parts = {ref: draw(amounts) for ref in draw(st.lists(st.sampled_from(MONEY_REFS), min_size=1, unique=True))}
    budget = sum(parts.values())
    refunds: dict[str, int] = {}
    for ref in draw(st.lists(st.sampled_from(REFUND_REFS), unique=True)):
        if budget == 0:
            break
        refunds[ref] = draw(st.integers(min_value=1, max_value=budget))
        budget -= refunds[ref]
    facts: list[InvoiceEvent] = [MoneyReceived(ref=r, amount=a) for r, a in parts.items()]
    facts += [RefundConfirmed(ref=r, amount=a) for r, a in refunds.items()]
    facts += draw(st.lists(st.sampled_from(list(facts)), max_size=3))  # redeliveries
    if with_closure:
        facts.append(Close(closure=draw(st.sampled_from([Closure.EXPIRED, Closure.CANCELLED]))))
    return facts


def _outcome(final: Invoice) -> tuple[object, ...]:
    return (final.state, final.flags, final.receipts, final.refunds, final.paid, final.refunded, final.closed_as)


@SETTINGS
@given(
    amount=invoice_amounts,
    start=st.sampled_from(sorted(START_STATES)),
    data=st.data(),
)
def test_payment_parts_and_refunds_in_any_order_end_in_the_same_state_and_flags(
    amount: int, start: str, data: st.DataObject
) -> None:
    # Given an invoice (open, expired or cancelled) and a set of provider facts: parts and refunds of them
    origin, _ = replay(fresh(amount), list(START_STATES[start]))
    facts = data.draw(provider_facts(with_closure=False))
    orders = [facts, *(data.draw(st.permutations(facts)) for _ in range(3))]
    # When they arrive in different orders
    results = [replay(origin, list(order)) for order in orders]
    # Then nothing is refused, and every order ends in the same state, flags and money facts
    for final, steps in results:
        assert not [s for s in steps if s.outcome == "rejected"], steps
        assert _outcome(final) == _outcome(results[0][0])
        assert final.refund_awaiting_payment == 0  # every refund's payment arrived
        assert final.refunded <= final.paid


@SETTINGS
@given(amount=invoice_amounts, data=st.data())
def test_with_a_closure_in_the_mix_only_the_timing_flag_depends_on_the_order(amount: int, data: st.DataObject) -> None:
    # Given an awaiting invoice, provider facts and one closure (expiry or cancel), in several orders
    origin, _ = replay(fresh(amount), list(START_STATES["awaiting"]))
    facts = data.draw(provider_facts(with_closure=True))
    orders = [facts, *(data.draw(st.permutations(facts)) for _ in range(3))]
    finals = []
    for order in orders:
        final, steps = replay(origin, list(order))
        finals.append(final)
        # Then the money facts are the same in every order (no money fact is ever refused) …
        assert [s for s in steps if s.outcome == "rejected"] == [
            s for s in steps if s.outcome == "rejected" and isinstance(s.event, Close)
        ]
        assert (final.receipts, final.refunds, final.paid, final.refunded) == (
            finals[0].receipts,
            finals[0].refunds,
            finals[0].paid,
            finals[0].refunded,
        )
        # … `paid_after_close` says exactly whether money was recorded after an accepted closure …
        closed_at = next(
            (i for i, s in enumerate(steps) if isinstance(s.event, Close) and s.outcome == "changed"), None
        )
        late = closed_at is not None and any(
            s.outcome == "changed" and isinstance(s.event, MoneyReceived) for s in steps[closed_at + 1 :]
        )
        assert ("paid_after_close" in final.flags) is late
        # … and the other flags do not depend on the order at all
        assert set(final.flags) - {"paid_after_close"} == set(finals[0].flags) - {"paid_after_close"}
    # And orders in which the closure was decided alike end in the same state
    by_closure: dict[object, set[InvoiceState]] = {}
    for final in finals:
        by_closure.setdefault(final.closed_as, set()).add(final.state)
    assert all(len(states) == 1 for states in by_closure.values()), by_closure
