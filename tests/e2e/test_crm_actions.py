"""Levers pulled from the CRM (the tenant's `crm_actions`) against the local fakes of Bitrix24 and amoCRM: a refund
started by a Bitrix24 stage (the amount in a deal field), by an amoCRM status (all of it) and by a Bitrix24 robot;
each once, however often the CRM tells us; a new link for a cancelled invoice from a stage; a refund asked of a deal
with nothing paid is refused and the manager told."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import Api, Sandbox, payment_id_of, poll
from tests.e2e.test_crms import AMO_PAID, AMO_TRIGGER, BX, Amo, Bitrix, pay_link
from tests.e2e.test_crms import amo as amo  # the fixtures
from tests.e2e.test_crms import bitrix as bitrix

BX_REFUND, BX_RELINK = "UC_REFUND", "UC_RELINK"
AMO_REFUND = 61000090


def test_a_bitrix24_stage_refunds_the_amount_in_the_deal_field_once(
    http: httpx.Client, bitrix: Bitrix, sandbox: Sandbox, unique: Any
) -> None:
    # Given a paid deal whose refund field says 300.00
    number = unique("BXR-")
    deal = bitrix.new_deal(100_000, fields={"UF_CRM_INVOICE_NUMBER": number, "UF_CRM_REFUND_AMOUNT": "300.00"})
    bitrix.move(deal["ID"], "PREPAYMENT_INVOICE")
    link = bitrix.wait(deal["ID"], lambda v: v["deal"].get("UF_CRM_PAYBRIDGE_LINK"))["deal"]["UF_CRM_PAYBRIDGE_LINK"]
    pay_link(sandbox, link)
    bitrix.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "WON")
    # When the manager moves it to the refund stage — and the portal sends the event again, and moves it there twice
    bitrix.move(deal["ID"], BX_REFUND)
    refunded = bitrix.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "UC_PREFUND")
    assert any("возвращено 300.00 RUB" in t["COMMENT"] for t in refunded["timeline"])
    bitrix.move(deal["ID"], BX_REFUND)
    bitrix.move(deal["ID"], BX_REFUND)
    # Then 300.00 was refunded once, at the provider too
    api = Api(http, tenant="bitrix-shop")
    from paybridge.domain.invoice import invoice_id_for

    invoice_id = invoice_id_for("bitrix-shop", deal["ID"], number)
    invoice = api.wait(invoice_id, lambda i: i["state"] == "partially_refunded")
    time.sleep(1.5)  # the repeated events are answered by now
    again = api.get(invoice_id)
    assert invoice["refunded"] == 30_000 and again["refunded"] == 30_000
    payment = http.get(f"/sandbox/psp/api/payments/{again['payment_id']}").json()
    assert payment["refunded"] == 30_000
    history = [h for h in again["history"] if h["event"] == "refund_requested"]
    assert len(history) == 1 and "CRM bitrix24: stage UC_REFUND" in history[0]["detail"]


def test_an_amocrm_status_refunds_everything_once(amo: Amo, sandbox: Sandbox, http: httpx.Client, unique: Any) -> None:
    number = unique("AMR-")
    lead = amo.new_lead(1_200, number)
    amo.move(lead["id"], AMO_TRIGGER)
    pay_link(sandbox, amo.wait(lead["id"], lambda v: v["payment_link"])["payment_link"])
    amo.wait(lead["id"], lambda v: v["status_id"] == AMO_PAID)
    amo.move(lead["id"], AMO_REFUND)
    amo.move(lead["id"], AMO_REFUND)  # told twice
    amo.wait(  # the tenant's "refunded" status, then the note (two writes, in this order)
        lead["id"],
        lambda v: (
            v["status_id"] == 61000005 and any("возвращено 1 200.00 RUB" in n["params"]["text"] for n in v["notes"])
        ),
    )
    from paybridge.domain.invoice import invoice_id_for

    api = Api(http, tenant="amo-shop")
    invoice = api.wait(invoice_id_for("amo-shop", str(lead["id"]), number), lambda i: i["state"] == "refunded")
    assert invoice["refunded"] == 120_000
    assert len([h for h in invoice["history"] if h["event"] == "refund_requested"]) == 1
    # the webhook's answer names the action
    answers = [a for a in amo.answers(lead["id"]) if a["form"].get("leads[status][0][status_id]") == str(AMO_REFUND)]
    bodies = [a["attempts"][-1]["body"] for a in answers]  # the fake keeps the first 200 characters
    assert any('"actions":["deal ' in b and "refund of 1 200.00 RUB" in b for b in bodies)


def test_a_refund_asked_of_a_deal_with_nothing_paid_is_refused_and_the_manager_told(
    amo: Amo, sandbox: Sandbox, unique: Any
) -> None:
    lead = amo.new_lead(900, unique("AMN-"))
    amo.move(lead["id"], AMO_TRIGGER)
    amo.wait(lead["id"], lambda v: v["payment_link"])
    amo.move(lead["id"], AMO_REFUND)
    told = amo.wait(lead["id"], lambda v: any("возврат" in t["text"] for t in v["tasks"]))
    assert any("no paid invoice" in t["text"] for t in told["tasks"])


def test_a_bitrix24_stage_gives_a_cancelled_invoice_a_new_link(http: httpx.Client, bitrix: Bitrix, unique: Any) -> None:
    number = unique("BXL-")
    deal = bitrix.new_deal(70_000, number=number)
    bitrix.move(deal["ID"], "PREPAYMENT_INVOICE")
    first = bitrix.wait(deal["ID"], lambda v: v["deal"].get("UF_CRM_PAYBRIDGE_LINK"))["deal"]["UF_CRM_PAYBRIDGE_LINK"]
    from paybridge.domain.invoice import invoice_id_for

    api = Api(http, tenant="bitrix-shop")
    invoice_id = invoice_id_for("bitrix-shop", deal["ID"], number)
    assert api.cancel(invoice_id, "client asked").status_code == 200
    bitrix.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "LOSE")
    bitrix.move(deal["ID"], BX_RELINK)
    relinked = bitrix.wait(
        deal["ID"],
        lambda v: (
            v["deal"].get("UF_CRM_PAYBRIDGE_LINK") not in (None, first) and v["deal"]["STAGE_ID"] == "UC_AWAITING"
        ),
    )
    assert relinked["deal"]["UF_CRM_PAYBRIDGE_LINK"].startswith("http")
    invoice = api.wait(invoice_id, lambda i: i["state"] == "awaiting_payment")
    reissued = [h for h in invoice["history"] if h["event"] == "reissued"]
    assert len(reissued) == 1 and reissued[0]["actor"] == "crm:bitrix24"


def test_a_bitrix24_robot_run_refunds_its_amount_each_run(http: httpx.Client, sandbox: Sandbox) -> None:
    portal = "bitrix-app.bitrix24.ru"
    deal = http.post(f"{BX}/_control/deals", json={"portal": portal, "amount": 50_000}).json()["deal"]
    http.post(f"{BX}/_control/deals/{deal['ID']}/robot", json={})  # our issuing robot
    Bitrix(http, portal).wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "UC_AWAITING")
    api = Api(http, tenant="bitrix-app")
    from paybridge.domain.invoice import invoice_id_for

    invoice_id = invoice_id_for("bitrix-app", deal["ID"], deal["ID"])
    awaiting = api.wait(invoice_id, lambda i: i["state"] == "awaiting_payment", timeout=20)
    assert sandbox.pay(payment_id_of(awaiting)).status_code == 200
    api.wait(invoice_id, lambda i: i["state"] == "paid")
    # Two runs of the refund robot, each with its own amount: two refunds
    for amount in ("100.00", "150,00"):
        answer = _robot(http, deal["ID"], "paybridge_refund", amount)
        assert answer
    invoice = api.wait(invoice_id, lambda i: i["refunded"] == 25_000)
    assert invoice["state"] == "partially_refunded"


def _robot(http: httpx.Client, deal_id: str, code: str, amount: str) -> bool:
    """A robot run with a property, as Bitrix24 posts it (the fake's control sends the form without properties)."""
    import secrets
    import urllib.parse

    form = {
        "workflow_id": secrets.token_hex(8),
        "code": code,
        "document_id[0]": "crm",
        "document_id[1]": "CCrmDocumentDeal",
        "document_id[2]": f"DEAL_{deal_id}",
        "event_token": secrets.token_hex(12),
        "properties[amount]": amount,
        "auth[domain]": "bitrix-app.bitrix24.ru",
        "auth[application_token]": "bitrix-app-application-token",
    }
    answer = http.post(
        "/crm/bitrix-app/bitrix24",
        content=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200, answer.text
    return any("refund of" in line for line in answer.json()["actions"])


def subscribe(http: httpx.Client, sandbox: Sandbox, tenant: str, deal_id: str, plan: str) -> dict[str, Any]:
    """A subscription whose first invoice is paid (its method saved): active."""
    api = Api(http, tenant=tenant)
    body = {"deal_id": deal_id, "plan": plan, "amount": 49_000, "customer": {"email": "sub@example.com"}}
    created = http.post(f"/v1/{tenant}/subscriptions", json=body, headers=api.headers)
    assert created.status_code == 201, created.text
    sub = created.json()
    first = api.wait(sub["first_invoice"]["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    assert sandbox.pay(payment_id_of(first)).status_code == 200
    return poll(
        "active",
        lambda: http.get(f"/v1/{tenant}/subscriptions/{sub['subscription_id']}", headers=api.headers).json(),
        lambda s: s["state"] == "active",
        15,
    )


def test_subscription_levers_through_the_api_are_idempotent_and_refuse_what_cannot_be(
    http: httpx.Client, sandbox: Sandbox, unique: Any
) -> None:
    deal = sandbox.new_deal(amount=49_000)
    sub = subscribe(http, sandbox, "demo", str(deal["id"]), unique("plan"))
    base = f"/v1/demo/subscriptions/{sub['subscription_id']}"
    headers = {"x-api-key": "demo-api-key"}
    paused = http.post(f"{base}/pause", json={"reason": "client on holiday"}, headers=headers)
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    assert http.post(f"{base}/pause", json={}, headers=headers).json()["state"] == "paused"  # again: the same
    resumed = http.post(f"{base}/resume", json={}, headers=headers).json()
    assert resumed["state"] == "active" and resumed["next_charge_at"] == sub["next_charge_at"]
    assert http.post(f"{base}/cancel", json={"reason": "closed"}, headers=headers).json()["state"] == "cancelled"
    refused = http.post(f"{base}/pause", json={}, headers=headers)
    assert refused.status_code == 409 and refused.headers["content-type"].startswith("application/problem+json")
    assert http.post(f"{base}/resume", json={"nope": 1}, headers=headers).status_code == 422
    missing = http.post(f"/v1/demo/subscriptions/sub_{'a' * 26}/cancel", json={}, headers=headers)
    assert missing.status_code == 404
    sandbox.wait_deal(
        str(deal["id"]), lambda d: any("подписка" in t["text"] and "отменена" in t["text"] for t in d["timeline"])
    )


def test_an_amocrm_status_pauses_and_resumes_the_deals_subscription(
    http: httpx.Client, amo: Amo, sandbox: Sandbox, unique: Any
) -> None:
    lead = amo.new_lead(490, unique("AMS-"))
    sub = subscribe(http, sandbox, "amo-shop", str(lead["id"]), unique("amo"))
    url = f"/v1/amo-shop/subscriptions/{sub['subscription_id']}"

    def state() -> dict[str, Any]:
        return dict(http.get(url, headers={"x-api-key": "demo-api-key"}).json())

    amo.move(lead["id"], 61000092)
    poll("paused", state, lambda s: s["state"] == "paused", 15)
    amo.move(lead["id"], 61000093)
    poll("resumed", state, lambda s: s["state"] == "active", 15)
    amo.move(lead["id"], 61000094)
    poll("cancelled", state, lambda s: s["state"] == "cancelled", 15)
