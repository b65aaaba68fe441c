"""Payments on the customer's profile, as each CRM adapter writes them (respx stands in for the CRM): Bitrix24's
`crm.timeline.comment.add` on the contact / company and `crm.contact.update` with money fields `1500.00|RUB`, in the
same `batch` as the deal's writes; amoCRM's `POST /api/v4/contacts/notes` and `PATCH /api/v4/contacts` with
`custom_fields_values`; the sandbox CRM's contact timeline and fields; and the deal reads that name the entity."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from paybridge.adapters.crm.base import DealOp, DealUpdate
from paybridge.adapters.crm.sandbox import SandboxCrm
from paybridge.adapters.settings import CustomerProfileSettings
from paybridge.domain.customer_profile import ProfileEntity, ProfileWrite
from tests.unit import test_amocrm_contract as amo
from tests.unit import test_bitrix24_contract as b24

PAID_AT = datetime(2026, 12, 1, 11, 30, 5, tzinfo=UTC)
ENTRY = "PayBridge: оплата 1 500.00 RUB картой по счёту № 42. Всего оплачено: 3 000.50 RUB."


def profile(kind: str = "contact", entity_id: str = "7", entries: tuple[str, ...] = (ENTRY,)) -> DealOp:
    write = ProfileWrite(
        entity=ProfileEntity(kind=kind, entity_id=entity_id),  # type: ignore[arg-type]
        entries=entries,
        currency="RUB",
        total_paid=300_050,
        last_payment_at=PAID_AT,
        last_payment_amount=150_000,
        last_payment_currency="RUB",
    )
    return DealOp(kind="customer_profile", profile=write)


def unresolved() -> DealOp:
    return DealOp(kind="customer_profile")  # the consumer found nothing to show


# -- Bitrix24 ----------------------------------------------------------------------------------------------------

B24_PROFILE = {
    "contact_fields": {"total_paid": "UF_CRM_PB_TOTAL", "last_payment_date": "UF_CRM_PB_LAST_AT",
                       "last_payment_amount": "UF_CRM_PB_LAST_SUM"},
    "company_fields": {"total_paid": "UF_CRM_CO_TOTAL"},
}  # fmt: skip


class TestBitrix24:
    def test_entries_and_fields_go_in_the_deals_batch(self, respx_mock: respx.MockRouter) -> None:
        fake = b24.FakePortal()
        route = b24.mount(respx_mock, fake)
        adapter = b24.adapter(settings=b24.settings(customer_profile=B24_PROFILE))
        update = b24.update("42", b24.stage("C1:WON"), b24.comment("Счёт № 42 оплачен"), profile())
        assert [o.ok for o in adapter.apply([update])] == [True]
        assert route.call_count == 1  # one request for the deal and its contact
        calls = fake.calls(0)
        assert [method for method, _ in calls] == [
            "crm.deal.update",
            "crm.timeline.comment.add",
            "crm.timeline.comment.add",
            "crm.contact.update",
        ]
        assert calls[2][1] == {"fields[ENTITY_ID]": "7", "fields[ENTITY_TYPE]": "contact", "fields[COMMENT]": ENTRY}
        assert calls[3][1] == {
            "id": "7",
            "fields[UF_CRM_PB_TOTAL]": "3000.50|RUB",
            "fields[UF_CRM_PB_LAST_AT]": "2026-12-01T11:30:05+00:00",
            "fields[UF_CRM_PB_LAST_SUM]": "1500.00|RUB",
            "params[REGISTER_SONET_EVENT]": "N",
        }

    def test_a_company_gets_its_own_fields(self, respx_mock: respx.MockRouter) -> None:
        fake = b24.FakePortal()
        b24.mount(respx_mock, fake)
        adapter = b24.adapter(settings=b24.settings(customer_profile=B24_PROFILE))
        adapter.apply([b24.update("42", b24.comment("x"), profile("company", "15", entries=("a", "b")))])
        calls = fake.calls(0)
        assert [(m, p.get("fields[ENTITY_TYPE]"), p.get("fields[COMMENT]")) for m, p in calls[1:3]] == [
            ("crm.timeline.comment.add", "company", "a"),
            ("crm.timeline.comment.add", "company", "b"),
        ]
        assert calls[3] == (
            "crm.company.update",
            {"id": "15", "fields[UF_CRM_CO_TOTAL]": "3000.50|RUB", "params[REGISTER_SONET_EVENT]": "N"},
        )

    def test_no_fields_mapped_means_entries_only_and_unresolved_means_nothing(
        self, respx_mock: respx.MockRouter
    ) -> None:
        fake = b24.FakePortal()
        b24.mount(respx_mock, fake)
        adapter = b24.adapter(settings=b24.settings(customer_profile={"entity": "contact"}))
        adapter.apply([b24.update("42", b24.comment("x"), profile()), b24.update("43", b24.comment("y"), unresolved())])
        methods = [m for m, _ in fake.calls(0)]
        assert methods == ["crm.timeline.comment.add", "crm.timeline.comment.add", "crm.timeline.comment.add"]

    def test_a_refused_contact_write_parks_its_update_only(self, respx_mock: respx.MockRouter) -> None:
        refuse = {("crm.contact.update", "7"): {"error": "NOT_FOUND", "error_description": "Not found"}}
        fake = b24.FakePortal(refuse=refuse)
        b24.mount(respx_mock, fake)
        adapter = b24.adapter(settings=b24.settings(customer_profile=B24_PROFILE))
        outcomes = adapter.apply([b24.update("42", b24.comment("x"), profile()), b24.update("43", b24.comment("y"))])
        assert [(o.ok, o.transient) for o in outcomes] == [(False, False), (True, False)]
        assert "Not found" in outcomes[0].detail

    def test_a_deal_read_names_its_contact_and_company(self, respx_mock: respx.MockRouter) -> None:
        answer = {
            "d0": b24.deal_json("42", CONTACT_ID="7", COMPANY_ID="15"),
            "d1": b24.deal_json("43", CONTACT_ID=None),
        }
        respx_mock.post(f"{b24.HOOK}batch.json").mock(return_value=b24.batch_answer(answer))
        deals = b24.adapter().get_deals(["42", "43"])
        assert (deals["42"].contact_id, deals["42"].company_id) == ("7", "15")
        assert (deals["43"].contact_id, deals["43"].company_id) == (None, None)  # COMPANY_ID "0": none


# -- amoCRM ------------------------------------------------------------------------------------------------------

AMO_PROFILE = {
    "contact_fields": {"total_paid": 820101, "last_payment_date": 820102, "last_payment_amount": 820103},
    "company_fields": {"total_paid": 820201},
}


class TestAmoCrm:
    def test_notes_and_custom_fields_on_the_contact(self) -> None:
        with respx.mock(base_url=amo.BASE, assert_all_called=False) as api:
            routes = amo.routes(api)
            notes = api.post("/api/v4/contacts/notes").mock(return_value=amo.ok("notes", [1]))
            patch = api.patch("/api/v4/contacts").mock(return_value=amo.ok("contacts", [5]))
            adapter = amo.adapter(settings=amo.settings(customer_profile=AMO_PROFILE))
            update = amo.update("101", amo.stage(amo.PAID), amo.comment("Оплачено"), profile("contact", "5001"))
            assert [o.ok for o in adapter.apply([update])] == [True]
            assert amo.body(notes) == [{"entity_id": 5001, "note_type": "common", "params": {"text": ENTRY}}]
            assert amo.body(patch) == [
                {
                    "id": 5001,
                    "custom_fields_values": [
                        {"field_id": 820101, "values": [{"value": "3000.50"}]},
                        {"field_id": 820102, "values": [{"value": int(PAID_AT.timestamp())}]},
                        {"field_id": 820103, "values": [{"value": "1500.00"}]},
                    ],
                }
            ]
            assert routes["notes"].call_count == 1 and routes["patch"].call_count == 1  # the lead's own writes

    def test_two_updates_of_a_company_send_one_note_each_and_the_last_totals_once(self) -> None:
        with respx.mock(base_url=amo.BASE, assert_all_called=False) as api:
            amo.routes(api)
            notes = api.post("/api/v4/companies/notes").mock(return_value=amo.ok("notes", [1, 2]))
            patch = api.patch("/api/v4/companies").mock(return_value=amo.ok("companies", [9]))
            adapter = amo.adapter(settings=amo.settings(customer_profile=AMO_PROFILE))
            first = amo.update("101", amo.comment("a"), profile("company", "900", entries=("one",)))
            later = amo.update("101", amo.comment("b"), profile("company", "900", entries=("two",)), version=2)
            assert [o.ok for o in adapter.apply([first, later])] == [True, True]
            assert [n["params"]["text"] for n in amo.body(notes)] == ["one", "two"]
            assert amo.body(patch) == [
                {"id": 900, "custom_fields_values": [{"field_id": 820201, "values": [{"value": "3000.50"}]}]}
            ]
            assert notes.call_count == 1 and patch.call_count == 1

    def test_the_totals_go_before_the_notes_and_a_refusal_parks_the_update(self) -> None:
        with respx.mock(base_url=amo.BASE, assert_all_called=False) as api:
            routes = amo.routes(api)
            patch = api.patch("/api/v4/contacts").mock(return_value=amo.validation_errors("0"))
            notes = api.post("/api/v4/contacts/notes").mock(return_value=amo.ok("notes", []))
            adapter = amo.adapter(settings=amo.settings(customer_profile=AMO_PROFILE))
            outcomes = adapter.apply([amo.update("101", amo.comment("a"), profile("contact", "5001"))])
            assert not outcomes[0].ok and not outcomes[0].transient and "contact's totals" in outcomes[0].detail
            # an update with a failed item sends nothing more: neither its lead note nor its contact note
            assert patch.call_count == 1 and notes.call_count == 0 and routes["notes"].call_count == 0

    def test_a_failed_note_after_the_totals_retries_and_the_totals_repeat_harmlessly(self) -> None:
        with respx.mock(base_url=amo.BASE, assert_all_called=False) as api:
            amo.routes(api)
            patch = api.patch("/api/v4/contacts").mock(return_value=amo.ok("contacts", [5001]))
            api.post("/api/v4/contacts/notes").mock(return_value=httpx.Response(503))
            adapter = amo.adapter(settings=amo.settings(customer_profile=AMO_PROFILE))
            outcomes = adapter.apply([amo.update("101", amo.comment("a"), profile("contact", "5001"))])
            assert outcomes[0].transient and patch.call_count == 1

    def test_a_lead_read_names_its_main_contact_and_company(self) -> None:
        embedded = {
            "contacts": [{"id": 11, "is_main": False}, {"id": 12, "is_main": True}],
            "companies": [{"id": 900}],
        }
        with respx.mock(base_url=amo.BASE, assert_all_called=False) as api:
            api.get("/api/v4/leads/101").mock(
                return_value=httpx.Response(200, json=amo.lead_json(101, _embedded=embedded))
            )
            api.get("/api/v4/contacts/12").mock(return_value=httpx.Response(200, json={"id": 12, "name": "Иван"}))
            deal = amo.adapter().get_deal("101")
        assert (deal.contact_id, deal.company_id) == ("12", "900")


# -- the sandbox CRM ---------------------------------------------------------------------------------------------


class TestSandbox:
    def test_entries_and_fields_on_the_contact(self) -> None:
        settings = CustomerProfileSettings.model_validate(
            {"contact_fields": {"total_paid": "total", "last_payment_date": "last"}}
        )
        crm = SandboxCrm("https://crm.test/p", "sandbox-token-1", profile=settings)
        with respx.mock(base_url="https://crm.test/p", assert_all_called=True) as api:
            ok = [{"status": 201, "body": {"ok": True}}, {"status": 201, "body": {"ok": True}}, {"status": 200}]
            batch = api.post("/api/batch").mock(return_value=httpx.Response(200, json={"responses": ok}))
            update = DealUpdate(
                tenant_id="p",
                deal_id="42",
                invoice_id="inv_x",
                version=1,
                ops=(b24.comment("x"), profile("contact", "c1")),
            )
            assert [o.ok for o in crm.apply([update])] == [True]
        # one batch: the deal's comment, the contact's entry, then its fields — in the deal's group, in this order
        assert json.loads(batch.calls[0].request.content) == {
            "requests": [
                {"method": "POST", "path": "/api/deals/42/timeline", "body": {"text": "x"}, "group": "42"},
                {"method": "POST", "path": "/api/contacts/c1/timeline", "body": {"text": ENTRY}, "group": "42"},
                {
                    "method": "PATCH",
                    "path": "/api/contacts/c1",
                    "body": {
                        "fields": {"total": {"amount": 300_050, "currency": "RUB"}, "last": "2026-12-01T11:30:05+00:00"}
                    },
                    "group": "42",
                },
            ]
        }


@pytest.fixture
def respx_mock() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router


class TestAmoCrmReads:
    def test_leads_are_read_in_one_request_with_their_contact_and_company_ids(self) -> None:
        leads = [
            amo.lead_json(101, _embedded={"contacts": [{"id": 12, "is_main": True}], "companies": [{"id": 900}]}),
            amo.lead_json(102, _embedded={"contacts": [], "companies": []}),
        ]
        with respx.mock(base_url=amo.BASE, assert_all_called=True) as api:
            route = api.get("/api/v4/leads").mock(
                return_value=httpx.Response(200, json={"_embedded": {"leads": leads}})
            )
            deals = amo.adapter().get_deals(["101", "102", "103", "not-a-lead"])
        query = route.calls[0].request.url.params
        assert query.get_list("filter[id][]") == ["101", "102", "103"] and query["with"] == "contacts"
        assert route.call_count == 1
        assert {d: (deal.contact_id, deal.company_id, deal.stage) for d, deal in deals.items()} == {
            "101": ("12", "900", str(leads[0]["status_id"])),
            "102": (None, None, str(leads[1]["status_id"])),
        }

    def test_none_found_is_an_empty_answer(self) -> None:
        with respx.mock(base_url=amo.BASE, assert_all_called=True) as api:
            api.get("/api/v4/leads").mock(return_value=httpx.Response(204))
            assert amo.adapter().get_deals(["101"]) == {}
