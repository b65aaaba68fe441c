"""The owner's figures on a hand-made month: each number below is counted by hand from the invoices listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from paybridge.domain.events import Close, MoneyReceived, PaidOutside, PaymentCreated, RefundConfirmed, apply
from paybridge.domain.invoice import Closure, Invoice, invoice_id_for
from paybridge.domain.report import change, figures, month_bounds, month_of, parse_month, percentile, previous_month

START = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def invoice(n: int, amount: int, *events: tuple[object, timedelta], created: datetime = START) -> Invoice:
    current = Invoice(
        tenant_id="acme",
        invoice_id=invoice_id_for("acme", str(n), str(n)),
        deal_id=str(n),
        number=str(n),
        amount=amount,
        currency="RUB",
        provider="sandbox",
        created_at=created,
        expires_at=created + timedelta(days=3),
    )
    current = apply(current, PaymentCreated(payment_id=f"p{n}", payment_url=f"https://pay/{n}"), created).invoice
    for event, after in events:
        current = apply(current, event, created + after).invoice  # type: ignore[arg-type]
    return current


def month_of_invoices() -> list[Invoice]:
    return [
        # 1: card, paid after 60 s
        invoice(1, 10_000, (MoneyReceived(ref="s:1", amount=10_000, method="card"), timedelta(seconds=60))),
        # 2: SBP, paid after 600 s, then refunded 4,000 of it
        invoice(
            2,
            20_000,
            (MoneyReceived(ref="s:2", amount=20_000, method="sbp"), timedelta(seconds=600)),
            (RefundConfirmed(ref="r:2", amount=4_000), timedelta(hours=1)),
        ),
        # 3: two parts — SBP then a bank transfer; paid in full after 3,600 s
        invoice(
            3,
            30_000,
            (MoneyReceived(ref="s:3", amount=10_000, method="sbp"), timedelta(seconds=100)),
            (MoneyReceived(ref="b:3", amount=20_000, method="bank_transfer"), timedelta(seconds=3_600)),
        ),
        # 4: partly paid by bank transfer, still open
        invoice(4, 40_000, (MoneyReceived(ref="b:4", amount=15_000, method="bank_transfer"), timedelta(hours=2))),
        # 5: overpaid by card after 86,400 s
        invoice(5, 5_000, (MoneyReceived(ref="s:5", amount=6_000, method="card"), timedelta(days=1))),
        # 6: expired unpaid
        invoice(6, 7_000, (Close(closure=Closure.EXPIRED, reason="link expired"), timedelta(days=3))),
        # 7: paid outside (a person's lever) after 7,200 s
        invoice(7, 8_000, (PaidOutside(key="k7", amount=8_000, method="cash"), timedelta(seconds=7_200))),
        # 8: still waiting
        invoice(8, 9_000),
    ]


def test_the_figures_of_a_seeded_month_are_the_ones_counted_by_hand() -> None:
    month = figures("2024-03", month_of_invoices(), unmatched_bank_lines=2)
    assert month.issued == 8
    assert month.paid == 5  # 1, 2, 3, 5, 7 (2 stays paid although partly refunded)
    assert month.paid_share == 0.625
    assert (month.partially_paid, month.overpaid, month.expired, month.open) == (1, 1, 1, 1)
    # seconds to pay: 60, 600, 3600, 7200, 86400 → p50 the 3rd (3600), p90 the 5th (86400)
    assert (month.time_to_pay_p50_seconds, month.time_to_pay_p90_seconds) == (3_600, 86_400)
    assert month.methods == {"bank_transfer": 2, "card": 2, "manual": 1, "sbp": 2}
    assert month.method_share == {"bank_transfer": 0.2857, "card": 0.2857, "manual": 0.1429, "sbp": 0.2857}
    assert month.method_amount["bank_transfer"] == {"RUB": 35_000}
    assert month.issued_amount == {"RUB": 129_000}
    assert month.paid_amount == {"RUB": 10_000 + 20_000 + 30_000 + 15_000 + 6_000 + 8_000}
    assert (month.refunds.count, month.refunds.invoices, month.refunds.amount) == (1, 1, {"RUB": 4_000})
    assert month.refunds.share_of_paid == {"RUB": round(4_000 / 89_000, 4)}
    assert month.unmatched_bank_lines == 2


def test_each_figure_is_compared_with_the_previous_month() -> None:
    now = figures("2024-03", month_of_invoices())
    before = figures("2024-02", month_of_invoices()[:2])
    delta = change(now, before)
    assert delta["issued"] == 6 and delta["paid"] == 3
    assert delta["paid_share"] == round(0.625 - 1.0, 4)
    assert delta["time_to_pay_p50_seconds"] == 3_600 - 60  # p50 of (60, 600) is 60
    assert delta["refunds"] == 0
    empty = change(figures("2024-03", []), figures("2024-02", []))
    assert empty["time_to_pay_p50_seconds"] is None and empty["issued"] == 0


def test_months_are_the_tenants_local_months() -> None:
    start, end = month_bounds("2024-03", "Europe/Moscow")
    assert start == datetime(2024, 2, 29, 21, 0, tzinfo=UTC) and end == datetime(2024, 3, 31, 21, 0, tzinfo=UTC)
    assert month_bounds("2024-12", "UTC")[1] == datetime(2025, 1, 1, tzinfo=UTC)
    # 23:30 UTC on 31 March is already April in Moscow
    assert month_of(datetime(2024, 3, 31, 23, 30, tzinfo=UTC), "Europe/Moscow") == "2024-04"
    assert previous_month("2024-01") == "2023-12" and previous_month("2024-10") == "2024-09"
    for bad in ("2024-13", "2024-3", "24-03", "1999-12", "2024-00"):
        with pytest.raises(ValueError, match="month"):
            parse_month(bad)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.9) == 5
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5) == 5
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9
    assert percentile([10, 1, 7], 0.9) == 10
