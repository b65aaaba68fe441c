"""Payments on the customer's profile: the facts of an invoice, the totals they make, the tenant's settings, and the
outbox consumer resolving an update's profile op — once per fact, whatever repeats."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from paybridge.adapters.crm.base import Deal, DealUpdate, RateLimit, UpdateOutcome
from paybridge.adapters.crm.bitrix24 import Bitrix24Settings
from paybridge.app.deal_delivery import DealDelivery
from paybridge.domain.customer_profile import MoneyFact, ProfileTotals, choose_entity, entry_text, facts_of
from paybridge.domain.deal_sync import deal_update
from paybridge.domain.invoice import Invoice
from paybridge.storage.customer_profiles import MemoryProfileLedger
from paybridge.tenants import TenantConfig, parse_tenants

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def invoice(**overrides: Any) -> Invoice:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "invoice_id": "inv_" + "a" * 26,
        "deal_id": "42",
        "number": "42",
        "amount": 150_000,
        "currency": "RUB",
        "provider": "sandbox",
        "created_at": NOW,
        "expires_at": NOW + timedelta(days=1),
        "version": 3,
    }
    return Invoice.model_validate({**fields, **overrides})


def fact(kind: str = "payment", ref: str = "p1", amount: int = 150_000, currency: str = "RUB", **kw: Any) -> MoneyFact:
    return MoneyFact.model_validate(
        {"kind": kind, "invoice_id": "inv_" + "a" * 26, "invoice_number": "42", "ref": ref, "amount": amount,
         "currency": currency, **kw}
    )  # fmt: skip


class TestFactsAndTotals:
    def test_an_invoice_holds_its_payments_then_its_refunds(self) -> None:
        paid = invoice(receipts={"p2": 50_000, "p1": 100_000}, receipt_methods={"p1": "card"}, refunds={"r1": 30_000})
        facts = facts_of(paid)
        assert [(f.kind, f.ref, f.amount, f.method) for f in facts] == [
            ("payment", "p1", 100_000, "card"),
            ("payment", "p2", 50_000, None),
            ("refund", "r1", 30_000, None),
        ]
        assert len({f.fact_id for f in facts}) == 3
        assert facts_of(invoice()) == ()

    def test_payments_add_refunds_subtract_per_currency(self) -> None:
        totals = ProfileTotals()
        totals = totals.count(fact(ref="p1", amount=150_000), NOW)
        totals = totals.count(fact(ref="p2", amount=2_500, currency="USD"), NOW + timedelta(minutes=1))
        totals = totals.count(fact("refund", ref="r1", amount=50_000), NOW + timedelta(minutes=2))
        assert totals.total_paid == {"RUB": 100_000, "USD": 2_500}
        # the last payment is the USD one: a refund is not a payment
        assert (totals.last_payment_amount, totals.last_payment_currency) == (2_500, "USD")
        assert totals.last_payment_at == NOW + timedelta(minutes=1)
        assert totals.version == 3

    def test_a_fact_counted_late_does_not_move_the_last_payment_back(self) -> None:
        totals = ProfileTotals().count(fact(ref="p2", amount=1_000), NOW)
        totals = totals.count(fact(ref="p1", amount=2_000), NOW - timedelta(hours=1))
        assert totals.last_payment_amount == 1_000 and totals.total_paid == {"RUB": 3_000}

    def test_the_entry_says_amount_method_invoice_and_total(self) -> None:
        totals = ProfileTotals(total_paid={"RUB": 300_000})
        text = entry_text(fact(method="sbp"), totals)
        assert text == "PayBridge: оплата 1 500.00 RUB через СБП по счёту № 42. Всего оплачено: 3 000.00 RUB."
        refund = entry_text(fact("refund", ref="r", amount=50_000), ProfileTotals(total_paid={"RUB": 100_000}))
        assert refund == "PayBridge: возврат 500.00 RUB по счёту № 42. Всего оплачено: 1 000.00 RUB."

    def test_the_preferred_entity_else_the_other(self) -> None:
        assert choose_entity("contact", "7", "9").model_dump() == {"kind": "contact", "entity_id": "7"}  # type: ignore[union-attr]
        assert choose_entity("contact", None, "9").model_dump() == {"kind": "company", "entity_id": "9"}  # type: ignore[union-attr]
        assert choose_entity("company", "7", "9").model_dump() == {"kind": "company", "entity_id": "9"}  # type: ignore[union-attr]
        assert choose_entity("company", None, None) is None


class TestPlan:
    def test_an_update_of_a_paid_invoice_carries_its_facts_only_when_the_tenant_opts_in(self) -> None:
        paid = invoice(receipts={"p1": 150_000}, receipt_methods={"p1": "card"})
        assert [op.kind for op in deal_update(paid, "PAID", "money_received").ops] == ["set_stage", "comment"]  # type: ignore[union-attr]
        update = deal_update(paid, "PAID", "money_received", customer_profile=True)
        assert update is not None and [op.kind for op in update.ops] == ["set_stage", "comment", "customer_profile"]
        assert update.ops[-1].facts == facts_of(paid)

    def test_no_money_no_profile_op(self) -> None:
        open_invoice = invoice(payment_id="pay_1", payment_url="https://pay.test/1")
        update = deal_update(open_invoice, "AWAITING", "payment_created", customer_profile=True)
        assert update is not None and "customer_profile" not in [op.kind for op in update.ops]


# -- settings ----------------------------------------------------------------------------------------------------


def bitrix(**profile: Any) -> dict[str, Any]:
    return {
        "kind": "bitrix24",
        "portal": "acme.bitrix24.ru",
        "auth": {"kind": "webhook", "url": {"value": "https://acme.bitrix24.ru/rest/1/secret123/"}},
        "application_token": {"value": "app-token-123"},
        "trigger": {"kind": "stage", "stage_id": "C1:NEW"},
        "customer_profile": profile,
    }


class TestSettings:
    def test_bitrix_fields_are_user_fields(self) -> None:
        ok = Bitrix24Settings.model_validate(bitrix(fields={"total_paid": "UF_CRM_TOTAL"}))
        assert ok.customer_profile is not None and ok.customer_profile.fields_of("contact") == {
            "total_paid": "UF_CRM_TOTAL"
        }
        with pytest.raises(ValidationError, match=r"customer_profile.contact_fields.total_paid: 'TITLE' is not"):
            Bitrix24Settings.model_validate(bitrix(contact_fields={"total_paid": "TITLE"}))

    def test_unknown_keys_and_entities_are_refused(self) -> None:
        with pytest.raises(ValidationError, match="entity"):
            Bitrix24Settings.model_validate(bitrix(entity="lead"))
        with pytest.raises(ValidationError, match="total_payd"):
            Bitrix24Settings.model_validate(bitrix(fields={"total_payd": "UF_CRM_X"}))
        with pytest.raises(ValidationError, match="once"):
            Bitrix24Settings.model_validate(
                bitrix(fields={"total_paid": "UF_CRM_X"}, contact_fields={"total_paid": "UF_CRM_Y"})
            )

    def test_amo_fields_are_field_ids(self, shipped: dict[str, Any]) -> None:
        amo = next(t for t in shipped["tenants"] if t["tenant_id"] == "amo-shop")
        amo["crm"]["customer_profile"] = {"contact_fields": {"total_paid": "UF_CRM_TOTAL"}}
        with pytest.raises(Exception, match="amoCRM custom field id"):
            parse_tenants({"tenants": [amo]}, "test")
        amo["crm"]["customer_profile"] = {"contact_fields": {"total_paid": 820101}}
        tenant = parse_tenants({"tenants": [amo]}, "test")["amo-shop"]
        assert tenant.crm.profile_enabled and tenant.crm.customer_profile.fields_of("contact") == {  # type: ignore[union-attr]
            "total_paid": "820101"
        }


@pytest.fixture
def shipped() -> dict[str, Any]:
    import json
    from pathlib import Path

    text = (Path(__file__).parents[2] / "config" / "tenants.local.json").read_text()
    return dict(json.loads(text.replace("${PAYBRIDGE_LOCAL_URL}", "http://127.0.0.1:3000")))


# -- the outbox consumer -----------------------------------------------------------------------------------------


class RecordingCrm:
    """A CRM that records what `apply` is asked to write, and the deal reads."""

    name = "recording"
    rate_limit = RateLimit(per_second=100, burst=100)

    def __init__(self, contacts: dict[str, str | None], fail: bool = False) -> None:
        self.contacts = contacts
        self.reads: list[list[str]] = []
        self.applied: list[DealUpdate] = []
        self.fail = fail

    def get_deal(self, deal_id: str) -> Deal:
        return Deal(deal_id=deal_id, contact_id=self.contacts.get(deal_id))

    def get_deals(self, deal_ids: Sequence[str]) -> dict[str, Deal]:
        self.reads.append(list(deal_ids))
        return {d: self.get_deal(d) for d in deal_ids}

    def apply(self, updates: Sequence[DealUpdate]) -> list[UpdateOutcome]:
        self.applied += updates
        return [UpdateOutcome.retry("down") if self.fail else UpdateOutcome.done() for _ in updates]

    def parse_webhook(self, headers: dict[str, str], body: bytes, query: dict[str, str]) -> Any:
        raise NotImplementedError

    def profiles(self) -> list[Any]:
        return [op.profile for u in self.applied for op in u.ops if op.kind == "customer_profile"]


class Tenants:
    def __init__(self, tenant: TenantConfig) -> None:
        self.tenant = tenant

    def get(self, tenant_id: str) -> TenantConfig:
        return self.tenant


@pytest.fixture
def tenant(shipped: dict[str, Any]) -> TenantConfig:
    profile_shop = next(t for t in shipped["tenants"] if t["tenant_id"] == "profile-shop")
    return parse_tenants({"tenants": [profile_shop]}, "test")["profile-shop"]


def delivery(tenant: TenantConfig, crm: RecordingCrm, ledger: MemoryProfileLedger) -> DealDelivery:
    return DealDelivery(Tenants(tenant), lambda _: crm, issuing=None, profiles=ledger)  # type: ignore[arg-type]


def paid_update(tenant: TenantConfig, deal: str = "42", **overrides: Any) -> DealUpdate:
    fields = {"tenant_id": tenant.tenant_id, "deal_id": deal, "receipts": {"p1": 150_000}}
    fields |= {"receipt_methods": {"p1": "card"}, **overrides}
    update = deal_update(invoice(**fields), "PAID", "money_received", customer_profile=True)
    assert update is not None
    return update


class TestDelivery:
    def test_a_payment_is_one_entry_and_the_totals_once_however_often_it_is_delivered(
        self, tenant: TenantConfig
    ) -> None:
        crm, ledger = RecordingCrm({"42": "c7"}), MemoryProfileLedger(clock=lambda: NOW)
        consumer = delivery(tenant, crm, ledger)
        update = paid_update(tenant)
        assert [o.ok for o in consumer.deliver([update])] == [True]
        consumer.deliver([update])  # the same message redelivered (a crash after the CRM took it, before its delete)
        consumer.deliver([update.model_copy(update={"event": "resync:k1"})])  # a re-sync of the same invoice
        profiles = crm.profiles()
        assert len(profiles) == 1  # only the first carried a profile write: nothing new after it
        assert profiles[0].entity.model_dump() == {"kind": "contact", "entity_id": "c7"}
        assert profiles[0].entries == (
            "PayBridge: оплата 1 500.00 RUB картой по счёту № 42. Всего оплачено: 1 500.00 RUB.",
        )
        assert (profiles[0].total_paid, profiles[0].currency, profiles[0].last_payment_at) == (150_000, "RUB", NOW)
        assert crm.reads == [["42"]]  # the deal's contact read once, then remembered

    def test_a_refund_subtracts_and_a_second_invoice_adds(self, tenant: TenantConfig) -> None:
        crm, ledger = RecordingCrm({"42": "c7", "43": "c7"}), MemoryProfileLedger(clock=lambda: NOW)
        consumer = delivery(tenant, crm, ledger)
        consumer.deliver([paid_update(tenant)])
        consumer.deliver([paid_update(tenant, refunds={"r1": 50_000})])
        second = paid_update(tenant, deal="43", invoice_id="inv_" + "b" * 26, number="43", receipts={"p9": 20_000})
        consumer.deliver([second])
        totals = [p.total_paid for p in crm.profiles()]
        assert totals == [150_000, 100_000, 120_000]
        assert crm.profiles()[1].entries == (
            "PayBridge: возврат 500.00 RUB по счёту № 42. Всего оплачено: 1 000.00 RUB.",
        )

    def test_an_entry_the_crm_did_not_take_is_sent_again_and_counted_once(self, tenant: TenantConfig) -> None:
        crm, ledger = RecordingCrm({"42": "c7"}, fail=True), MemoryProfileLedger(clock=lambda: NOW)
        consumer = delivery(tenant, crm, ledger)
        consumer.deliver([paid_update(tenant)])
        crm.fail = False
        consumer.deliver([paid_update(tenant)])
        first, again = crm.profiles()
        assert again == first and again.total_paid == 150_000  # the same entry, the same absolute total
        consumer.deliver([paid_update(tenant)])
        assert len(crm.profiles()) == 2  # shown: nothing more

    def test_two_updates_of_a_deal_in_one_batch_show_a_fact_once(self, tenant: TenantConfig) -> None:
        crm, ledger = RecordingCrm({"42": "c7"}), MemoryProfileLedger(clock=lambda: NOW)
        consumer = delivery(tenant, crm, ledger)
        first = paid_update(tenant)
        later = paid_update(tenant, refunds={"r1": 50_000}, version=4)
        consumer.deliver([first, later])
        assert [len(p.entries) for p in crm.profiles()] == [1, 1]
        assert crm.profiles()[1].total_paid == 100_000

    def test_a_deal_without_contact_or_company_writes_only_the_deal(self, tenant: TenantConfig) -> None:
        crm, ledger = RecordingCrm({"42": None}), MemoryProfileLedger(clock=lambda: NOW)
        assert [o.ok for o in delivery(tenant, crm, ledger).deliver([paid_update(tenant)])] == [True]
        assert crm.profiles() == [] and [op.kind for op in crm.applied[0].ops] == ["set_stage", "comment"]
        assert ledger.totals_by == {}

    def test_a_tenant_that_turned_it_off_writes_nothing_to_the_profile(self, tenant: TenantConfig) -> None:
        off = tenant.model_copy(update={"crm": tenant.crm.model_copy(update={"customer_profile": None})})
        crm, ledger = RecordingCrm({"42": "c7"}), MemoryProfileLedger(clock=lambda: NOW)
        delivery(off, crm, ledger).deliver([paid_update(tenant)])  # planned while it was on
        assert crm.profiles() == [] and crm.reads == [] and ledger.totals_by == {}
