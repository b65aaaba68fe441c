"""The local fakes pay out as the providers describe it — the day's payments less the fee and the refunds, one
transfer, each operation once — and PayBridge's matcher settles those payouts: T-Bank by the agreed rate (its API
tells no fee), YooKassa exactly (`income_amount`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.test import Client

from devstack.fakes.tbank import FakeTBank, Payment
from devstack.fakes.yookassa import FakeYooKassa
from paybridge.domain.bank import StatementLine
from paybridge.domain.settlement import AcquiringSettings, ProviderOperation, match_settlement, recognise

NOW = datetime.now(UTC)


def today() -> date:
    """The fakes' day (Moscow), asked when a test runs: taken once at import, a suite that crossed Moscow's midnight
    asked yesterday's payouts of payments made today."""
    return datetime.now(ZoneInfo("Europe/Moscow")).date()


def statement_line(payout: dict[str, Any], document: str, day: str) -> StatementLine:
    return StatementLine(
        source="1c_file",
        account="40702810500000054321",
        value_date=date.fromisoformat(day),
        amount=payout["amount"],
        purpose=payout["purpose"],
        payer_name=payout["payer_name"],
        payer_inn=payout["payer_inn"],
        payer_account=payout["payer_account"],
        document_number=document,
    )


def test_the_tbank_fake_pays_out_the_day_less_its_fee_and_refunds_and_the_rate_matches_it() -> None:
    fake = FakeTBank("http://fake")
    client = Client(fake)
    day = today().isoformat()  # before the payments: they are made on it
    for pid, amount in (("4100000001", 150_000), ("4100000002", 99_990), ("4100000003", 20_000)):
        fake.payments[pid] = Payment(pid, "Shop", f"o{pid}", amount, None, None, "O")
        assert client.post(f"/_control/payments/{pid}/pay", json={}).status_code == 200
    fake._cancel({"PaymentId": "4100000001", "Amount": 50_000})  # a partial refund the same day
    payout = client.post("/_control/payout", json={"terminal": "Shop", "date": day}).get_json()
    assert payout["payer_inn"] == "7710140679" and "эквайринга" in payout["purpose"]
    assert payout["amount"] == (150_000 - 3_735) + (99_990 - 2_490) + (20_000 - 498) - 50_000
    again = client.post("/_control/payout", json={"terminal": "Shop", "date": day}).get_json()
    assert again["amount"] == 0 and again["payments"] == []  # each operation is paid out once

    source = AcquiringSettings(provider="tbank", fee_percent="2.49")
    line = statement_line(payout, "1", day)
    assert recognise(line, [source]) is source
    operations = [
        ProviderOperation(
            provider="tbank",
            ref=f"tbank:{p}",
            kind="payment",
            invoice_id=f"inv_{p}",
            amount=a,
            method="card",
            recorded_at=NOW,
        )
        for p, a in (("4100000001", 150_000), ("4100000002", 99_990), ("4100000003", 20_000))
    ] + [
        ProviderOperation(
            provider="tbank",
            ref="tbank:refund:4100000001:r",
            kind="refund",
            invoice_id="inv_4100000001",
            amount=50_000,
            recorded_at=NOW,
        )
    ]
    match = match_settlement(line, source, operations)
    assert not match.flagged and match.difference == 0 and match.fees == 6_723 and match.basis == "estimate"


def test_the_yookassa_fake_gives_income_amount_and_its_payout_matches_exactly() -> None:
    fake = FakeYooKassa("http://fake")
    fake.shops["506752"] = ("secret", "http://nowhere")
    day = today().isoformat()  # before the payments: they are made on it
    fake.deliver = lambda *args, **kwargs: None  # type: ignore[method-assign]
    client = Client(fake)
    ids = []
    for amount in (1_200_000, 450_000):
        pid = f"p{amount}"
        fake.payments[pid] = {
            "id": pid,
            "status": "pending",
            "amount": {"value": f"{amount / 100:.2f}", "currency": "RUB"},
        }
        fake.owner[pid] = "506752"
        paid = client.post(f"/_control/payments/{pid}/succeed", json={"method": "sbp"}).get_json()
        assert paid["payment_method"]["type"] == "sbp" and "income_amount" in paid
        ids.append(pid)
    assert fake.payments["p1200000"]["income_amount"]["value"] == "11580.00"  # less 3.5 %
    payout = client.post("/_control/payout", json={"shop_id": "506752", "date": day}).get_json()
    assert payout["payer_inn"] == "7750005725" and payout["amount"] == 1_158_000 + 434_250

    source = AcquiringSettings(provider="yookassa", fee_percent="2.0")  # the tenant's rate is off: the net wins
    operations = [
        ProviderOperation(
            provider="yookassa",
            ref=f"yookassa:{pid}",
            kind="payment",
            invoice_id=f"inv_{pid}",
            amount=a,
            method="sbp",
            recorded_at=NOW,
            net=n,
        )
        for pid, a, n in (("p1200000", 1_200_000, 1_158_000), ("p450000", 450_000, 434_250))
    ]
    line = statement_line(payout, "2", day)
    assert recognise(line, [source]) is source
    match = match_settlement(line, source, operations)
    assert not match.flagged and match.basis == "exact" and match.fees == 57_750
