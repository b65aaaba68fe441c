"""Acquiring payouts: recognised by who sends them and what they say; matched to the recorded provider operations."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from paybridge.domain.bank import Decision, StatementLine
from paybridge.domain.settlement import (
    AcquiringSettings,
    ProviderOperation,
    days_named,
    match_settlement,
    recognise,
    stated_fee,
)

ACCOUNT = "40702810900000012345"
TBANK = AcquiringSettings(provider="tbank", fee_percent="2.5")
YOOKASSA = AcquiringSettings(provider="yookassa", fee_percent="3.5")


def line(amount: int, purpose: str, inn: str | None = "7710140679", day: date = date(2026, 11, 3)) -> StatementLine:
    return StatementLine(
        source="1c_file",
        account=ACCOUNT,
        value_date=day,
        amount=amount,
        purpose=purpose,
        payer_inn=inn,
        payer_account="30232810000000000001",
        document_number="77",
    )


def op(
    ref: str,
    amount: int,
    day: int,
    kind: str = "payment",
    method: str = "card",
    net: int | None = None,
    provider: str = "tbank",
) -> ProviderOperation:
    return ProviderOperation(
        provider=provider,
        ref=ref,
        kind=kind,
        invoice_id=f"inv_{ref[-4:]}",
        amount=amount,  # type: ignore[arg-type]
        method=method if kind == "payment" else None,
        recorded_at=datetime(2026, 11, day, 9, 0, tzinfo=UTC),
        net=net,
    )


def test_a_payout_is_recognised_by_the_sender_and_the_purpose() -> None:
    payout = line(100_000, "Перечисление средств по договору эквайринга № 123 за 02.11.2026, комиссия 25.00")
    assert recognise(payout, [YOOKASSA, TBANK]) is TBANK
    # the same INN paying interest is not a payout; a customer naming acquiring in the purpose is not either
    assert recognise(line(5_00, "Выплата процентов на остаток"), [TBANK]) is None
    assert recognise(line(100_000, "Оплата по договору эквайринга", inn="7707083893"), [TBANK]) is None
    yoo = line(50_000, "Перевод по договору № 506751 за 02.11.2026 по реестру № 20261102. ЮKassa", inn="7750005725")
    assert recognise(yoo, [TBANK, YOOKASSA]) is YOOKASSA


def test_settings_refuse_floats_and_bad_patterns() -> None:
    with pytest.raises(ValidationError, match="decimal string"):
        AcquiringSettings(provider="tbank", fee_percent="2,5")
    with pytest.raises(ValidationError, match="not a regular expression"):
        AcquiringSettings(provider="tbank", purpose_patterns=("(",))
    with pytest.raises(ValidationError, match="who sends the payout"):
        AcquiringSettings(provider="stripe")
    assert AcquiringSettings(provider="stripe", payer_accounts=("30232810000000000001",)).inns == ()


def test_purpose_days_and_stated_fee() -> None:
    assert days_named("… за 02.11.2026, комиссия 25.00", date(2026, 11, 3)) == (date(2026, 11, 2),)
    assert days_named("возмещение с 30.10 по 01.11", date(2026, 11, 3)) == (
        date(2026, 10, 30),
        date(2026, 10, 31),
        date(2026, 11, 1),
    )
    assert days_named("по договору № 5 от 01.11.2026", date(2026, 11, 3)) == ()
    assert stated_fee("комиссия: 1 234,50 руб.") == 123_450
    assert stated_fee("без комиссии") is None


def test_card_and_sbp_payments_less_a_refund_and_the_estimated_fee() -> None:
    ops = [
        op("tbank:1001", 100_000, 2),
        op("tbank:1002", 40_000, 2, method="sbp"),
        op("tbank:refund:1001:r1", 10_000, 2, kind="refund"),
    ]
    # 1 400.00 - 35.00 fee (2.5 %) - 100.00 refund = 1 265.00
    match = match_settlement(line(126_500, "Перечисление средств по договору эквайринга за 02.11.2026"), TBANK, ops)
    assert not match.flagged and match.difference == 0
    assert (match.payments, match.refunds, match.fees, match.basis) == (140_000, 10_000, 3_500, "estimate")
    assert {i.ref for i in match.items} == {o.ref for o in ops}


def test_the_exact_net_from_the_provider_wins_over_the_rate() -> None:
    ops = [op("yookassa:a1", 100_000, 2, net=96_400, provider="yookassa")]  # a 3.6 % fee, not the 3.5 % agreed
    match = match_settlement(line(96_400, "Перевод по договору ЮKassa", inn="7750005725"), YOOKASSA, ops)
    assert not match.flagged and match.fees == 3_600 and match.basis == "exact"


def test_a_payout_short_by_exactly_one_payment_names_it() -> None:
    ops = [op("tbank:1001", 100_000, 2), op("tbank:1002", 40_000, 2), op("tbank:1003", 20_000, 2)]
    expected_without_1002 = 100_000 - 2_500 + 20_000 - 500
    match = match_settlement(line(expected_without_1002, "Возмещение по операциям эквайринга"), TBANK, ops)
    assert match.flagged and match.missing == ("tbank:1002",)
    assert "payment tbank:1002" in match.reasons[0] and "is missing from this payout" in match.reasons[0]
    assert {i.ref for i in match.items} == {"tbank:1001", "tbank:1003"}  # 1002 stays unsettled
    decision = Decision(fingerprint="f", kind="settlement", reason="x", settlement=match)
    assert decision.needs_a_person


def test_the_newest_day_may_come_in_the_next_payout() -> None:
    ops = [op("tbank:1", 100_000, 1), op("tbank:2", 50_000, 2)]
    match = match_settlement(line(97_500, "эквайринг"), TBANK, ops)
    assert not match.flagged and [i.ref for i in match.items] == ["tbank:1"]


def test_an_unexpected_deduction_is_flagged_with_its_likely_reason() -> None:
    ops = [op("tbank:1", 100_000, 2)]
    match = match_settlement(line(90_000, "эквайринг"), TBANK, ops)
    assert match.flagged and match.difference == -7_500
    assert "a refund not in our records, or a fee above the agreed rate" in match.reasons[0]
    assert match.items == () and match.expected == 97_500  # nothing settled: a person decides
    nothing = match_settlement(line(90_000, "эквайринг"), TBANK, [])
    assert nothing.flagged and "no unsettled tbank payments" in nothing.reasons[0]


def test_a_stated_fee_that_disagrees_is_flagged() -> None:
    ops = [op("tbank:1", 100_000, 2)]
    match = match_settlement(line(97_500, "эквайринг, комиссия 10.00"), TBANK, ops)
    assert match.flagged and "states a fee of 10.00" in match.reasons[0]
    good = match_settlement(line(97_500, "эквайринг, комиссия 25.00"), TBANK, ops)
    assert not good.flagged and good.stated_fee == 2_500


def test_within_the_tolerance_rounding_is_matched() -> None:
    ops = [op("tbank:1", 33_333, 2), op("tbank:2", 33_333, 2)]
    match = match_settlement(line(65_000, "эквайринг"), TBANK, ops)  # 666.66 - 16.66 fee, off by one kopeck
    assert not match.flagged and match.fees == 1_666


def test_a_short_payout_expects_the_missing_payment_and_keeps_the_fee_of_the_rest() -> None:
    ops = [op("tbank:1001", 100_000, 2), op("tbank:1002", 40_000, 2), op("tbank:1003", 20_000, 2)]
    match = match_settlement(line(117_000, "эквайринг"), TBANK, ops)
    assert (match.expected, match.difference, match.fees) == (156_000, -39_000, 3_000)


def test_bank_settings_take_one_acquiring_source_per_provider() -> None:
    from paybridge.tenants import BankSettings

    settings = BankSettings(accounts=(ACCOUNT,), acquiring=({"provider": "yookassa", "fee_percent": "3.5"},))  # type: ignore[arg-type]
    assert settings.acquiring[0].inns == ("7750005725",) and settings.acquiring[0].delay_days == 1
    with pytest.raises(ValidationError, match="one entry per provider"):
        BankSettings(accounts=(ACCOUNT,), acquiring=({"provider": "tbank"}, {"provider": "tbank"}))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="fee_percent"):
        BankSettings(accounts=(ACCOUNT,), acquiring=({"provider": "tbank", "fee_percent": 2.5},))  # type: ignore[arg-type]


def test_the_ledger_indexes_provider_money_facts_only() -> None:
    from paybridge.domain.invoice import AuditEntry, Invoice, InvoiceState
    from paybridge.storage.settlements import _operation, ledger_keys

    invoice = Invoice.model_construct(
        tenant_id="t", invoice_id="inv_x", receipt_methods={"yookassa:p1": "sbp"}
    )  # only what ledger_keys reads

    def audit(event: str, ref: str, amount: int = 1_000) -> AuditEntry:
        return AuditEntry(
            at=datetime(2026, 11, 2, 9, tzinfo=UTC), event=event, from_state=InvoiceState.AWAITING_PAYMENT,
            to_state=InvoiceState.PAID, amount=amount, ref=ref,
        )  # fmt: skip

    keys = ledger_keys(invoice, audit("money_received", "yookassa:p1"))
    assert keys["gsi1pk"] == {"S": "ACQ#t#yookassa"}
    item = {"pk": {"S": "INV#t#inv_x"}, **keys}
    assert _operation("yookassa", item).model_dump(exclude={"recorded_at"}) == {
        "provider": "yookassa", "ref": "yookassa:p1", "kind": "payment", "invoice_id": "inv_x", "amount": 1_000,
        "method": "sbp", "net": None,
    }  # fmt: skip
    refund = ledger_keys(invoice, audit("refund_confirmed", "yookassa:refund:r1"))
    assert _operation("yookassa", {"pk": {"S": "INV#t#inv_x"}, **refund}).kind == "refund"
    assert ledger_keys(invoice, audit("money_received", "bank:abc")) == {}  # a bank transfer is no acquiring
    assert ledger_keys(invoice, audit("paid_outside", "manual:k")) == {}
    assert ledger_keys(invoice, audit("refund_requested", "key-1")) == {}


def test_without_a_fee_rate_the_flag_says_what_rate_the_payout_implies() -> None:
    unset = AcquiringSettings(provider="tbank")
    match = match_settlement(line(97_510, "эквайринг"), unset, [op("tbank:1", 100_000, 2)])
    assert match.flagged and "no fee_percent is set for tbank: this payout implies 2.49 %" in match.reasons[0]


def test_the_tenants_own_provider_is_recognised_without_configuration() -> None:
    from types import SimpleNamespace

    from paybridge.app.settlements import acquiring_sources
    from paybridge.tenants import BankSettings

    bank = BankSettings(accounts=(ACCOUNT,))
    tenant = SimpleNamespace(bank=bank, psp=SimpleNamespace(provider="tbank"))
    [implicit] = acquiring_sources(tenant)  # type: ignore[arg-type]
    assert implicit.provider == "tbank" and recognise(line(1_000, "Возмещение по операциям эквайринга"), [implicit])
    sandbox = SimpleNamespace(bank=bank, psp=SimpleNamespace(provider="sandbox"))
    assert acquiring_sources(sandbox) == ()  # type: ignore[arg-type]
