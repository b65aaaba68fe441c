"""Payments on the customer's profile on the local stack (tenant `profile-shop`, sandbox PSP + sandbox CRM): the
contact of the deals gets one timeline entry per payment and refund — a notification told five times at once is one
entry — and its mapped fields show the total paid net of refunds and the last payment."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from paybridge.adapters.psp.sandbox import sign
from tests.conftest import Api, Sandbox, payment_id_of, poll, sandbox_notification

pytestmark = pytest.mark.e2e

TENANT = "profile-shop"
PSP_SECRET = "sandbox-psp-secret-profile"


@pytest.fixture
def shop(http: httpx.Client) -> tuple[Sandbox, Api]:
    return Sandbox(http, tenant=TENANT, crm_token="sandbox-crm-token-profile-shop"), Api(http, tenant=TENANT)


def contact(sandbox: Sandbox, contact_id: str) -> dict[str, Any]:
    response = sandbox.http.get(f"{sandbox.crm}/contacts/{contact_id}", headers=sandbox.auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_contact_shows_each_payment_once_and_the_total_net_of_refunds(
    http: httpx.Client, shop: tuple[Sandbox, Api], unique: Any
) -> None:
    sandbox, api = shop
    email = f"{unique('buyer')}@example.com"
    first = sandbox.new_deal(amount=100_000, contact={"name": "Покупатель", "email": email})
    second = sandbox.new_deal(amount=40_000, contact={"email": email})  # the same customer: the same contact
    contact_id = first["contact"]["id"]
    assert second["contact"]["id"] == contact_id

    # The first invoice's notification arrives five times at once (the PSP retrying)
    invoice = api.issue_awaiting(first["id"], amount=100_000)
    body = sandbox_notification(invoice, amount=100_000)
    headers = {"Content-Type": "application/json", "X-Sandbox-Signature": sign(PSP_SECRET, body)}
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda _: http.post(f"/psp/{TENANT}/sandbox", content=body, headers=headers), range(5)))
    assert {a.status_code for a in answers} == {200}
    sandbox.wait_deal(first["id"], lambda d: d["stage"] == "PAID")
    shown = poll("contact", lambda: contact(sandbox, contact_id), lambda c: c["timeline"] and c["fields"], 15)
    assert [t["text"] for t in shown["timeline"]] == [
        f"PayBridge: оплата 1 000.00 RUB картой по счёту № N-{first['id']}. Всего оплачено: 1 000.00 RUB."
    ]
    assert shown["fields"]["total_paid"] == {"amount": 100_000, "currency": "RUB"}

    # The second deal is paid at the checkout, then part of it is refunded
    other = api.issue_awaiting(second["id"], amount=40_000)
    assert sandbox.pay(payment_id_of(other), "pay").status_code == 200
    sandbox.wait_deal(second["id"], lambda d: d["stage"] == "PAID")
    refund = http.post(
        f"/v1/{TENANT}/invoices/{other['invoice_id']}/refunds",
        json={"amount": 30_000, "reason": "one item returned"},
        headers={**api.headers, "Idempotency-Key": unique("refund")},
    )
    assert refund.status_code == 201, refund.text
    final = poll("contact", lambda: contact(sandbox, contact_id), lambda c: len(c["timeline"]) >= 3, 20)
    time.sleep(1.5)  # anything late (a repeated refund notification) would land by now
    final = contact(sandbox, contact_id)
    texts = [t["text"] for t in final["timeline"]]
    assert len(texts) == 3, texts
    assert texts[1].startswith("PayBridge: оплата 400.00 RUB") and texts[1].endswith("Всего оплачено: 1 400.00 RUB.")
    assert texts[2] == (f"PayBridge: возврат 300.00 RUB по счёту № N-{second['id']}. Всего оплачено: 1 100.00 RUB.")
    assert final["fields"]["total_paid"] == {"amount": 110_000, "currency": "RUB"}
    assert final["fields"]["last_payment_amount"] == {"amount": 40_000, "currency": "RUB"}
    assert final["fields"]["last_payment_date"].endswith("+00:00")
    # The deals' own timelines are as before: the profile writes are the contact's
    assert not any("Всего оплачено" in t["text"] for t in sandbox.deal(first["id"])["timeline"])


# -- the real CRM adapters against their local fakes (tenants bitrix-app and amo-shop opt in) ------------------------


def test_bitrix24_contact_gets_the_entry_and_its_money_field(stack: Any, http: httpx.Client, sandbox: Sandbox) -> None:
    from paybridge.storage.customer_profiles import DynamoProfileLedger
    from tests.e2e.test_crms import BX, Bitrix, pay_link

    app = Bitrix(http, "bitrix-app.bitrix24.ru")
    deal = app.new_deal(99_900, company={"title": "ООО Ромашка"})
    http.post(f"{BX}/_control/deals/{deal['ID']}/robot", json={})
    published = app.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "UC_AWAITING" and v["timeline"])
    # The robot's deal read (issuing it) named the contact: remembered, so its payment needs no deal read later
    entity = DynamoProfileLedger(stack.aws.table_name).entity_of("bitrix-app", deal["ID"])
    assert entity is not None and (entity.kind, entity.entity_id) == ("contact", deal["CONTACT_ID"])
    pay_link(sandbox, published["deal"]["UF_CRM_PAYBRIDGE_LINK"])
    app.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "WON")

    def contact() -> dict[str, Any]:
        return dict(http.get(f"{BX}/_control/contacts/{deal['CONTACT_ID']}").json())

    shown = poll("bitrix24 contact", contact, lambda c: c["timeline"] and c["entity"].get("UF_CRM_PB_TOTAL_PAID"), 20)
    assert [t["COMMENT"] for t in shown["timeline"]] == [
        f"PayBridge: оплата 999.00 RUB картой по счёту № {deal['ID']}. Всего оплачено: 999.00 RUB."
    ]
    assert shown["entity"]["UF_CRM_PB_TOTAL_PAID"] == "999.00|RUB"
    assert shown["entity"]["UF_CRM_PB_LAST_PAYMENT"].endswith("+00:00")
    company = http.get(f"{BX}/_control/companies/{deal['COMPANY_ID']}").json()
    assert company["timeline"] == []  # the tenant chose the contact; the company is only the fallback


def test_amocrm_main_contact_gets_the_note_and_its_custom_fields(
    http: httpx.Client, sandbox: Sandbox, unique: Any
) -> None:
    from tests.e2e.test_crms import AMO, AMO_AWAITING, AMO_PAID, AMO_TRIGGER, Amo, pay_link

    amo = Amo(http)
    number = unique("AMOP-")
    lead = amo.new_lead(1_200, number)
    amo.move(lead["id"], AMO_TRIGGER)
    published = amo.wait(lead["id"], lambda v: v["status_id"] == AMO_AWAITING and v["notes"])
    pay_link(sandbox, published["payment_link"])
    amo.wait(lead["id"], lambda v: v["status_id"] == AMO_PAID)
    contact_id = published["_embedded"]["contacts"][0]["id"]

    def contact() -> dict[str, Any]:
        return dict(http.get(f"{AMO}/_control/contacts/{contact_id}").json())

    shown = poll("amoCRM contact", contact, lambda c: c["notes"] and c["fields"].get("820101"), 20)
    assert [n["params"]["text"] for n in shown["notes"]] == [
        f"PayBridge: оплата 1 200.00 RUB картой по счёту № {number}. Всего оплачено: 1 200.00 RUB."
    ]
    assert shown["notes"][0]["note_type"] == "common"
    assert shown["fields"]["820101"] == "1200.00" and isinstance(shown["fields"]["820102"], int)
