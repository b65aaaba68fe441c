"""Every tenant shipped in config/tenants.local.json works out of the box: one invoice issued through the API with
the tenant's own defaults (its link lifetime, its currency), paid at its provider (the sandbox PSP or the local fake
of T-Bank, YooKassa, Stripe), and the deal in its CRM (the sandbox CRM, Bitrix24's or amoCRM's fake) moved to the
tenant's "paid" stage. A tenant added to the file is covered without touching this test."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Api, Sandbox, poll

TENANTS = json.loads((ROOT / "config" / "tenants.local.json").read_text(encoding="utf-8"))["tenants"]
CONTACT = {"name": "Анна", "email": "anna@example.com", "phone": "+79123456789"}


def new_deal(http: httpx.Client, tenant: dict[str, Any], amount: int) -> str:
    crm = tenant["crm"]
    if crm["kind"] == "sandbox":
        portal = crm["base_url"].rstrip("/").rsplit("/", 1)[-1]
        return str(Sandbox(http, tenant=portal, crm_token=crm["token"]["value"]).new_deal(amount=amount)["id"])
    if crm["kind"] == "bitrix24":
        body = {"portal": crm["portal"], "amount": amount, "contact": CONTACT}
        return str(http.post("/fake/bitrix24/_control/deals", json=body).json()["deal"]["ID"])
    if crm["kind"] == "amocrm":
        body = {"name": "Сделка", "price": amount // 100, "status_id": 61000000, "contact": CONTACT}
        return str(http.post("/fake/amocrm/_control/leads", json=body).json()["id"])
    raise AssertionError(f"no driver for the {crm['kind']} CRM: add one here")


def deal_stage(http: httpx.Client, tenant: dict[str, Any], deal_id: str) -> str:
    crm = tenant["crm"]
    if crm["kind"] == "sandbox":
        portal = crm["base_url"].rstrip("/").rsplit("/", 1)[-1]
        return str(Sandbox(http, tenant=portal, crm_token=crm["token"]["value"]).deal(deal_id)["stage"])
    if crm["kind"] == "bitrix24":
        return str(http.get(f"/fake/bitrix24/_control/deals/{deal_id}").json()["deal"]["STAGE_ID"])
    return str(http.get(f"/fake/amocrm/_control/leads/{deal_id}").json()["status_id"])


def pay(http: httpx.Client, provider: str, payment_id: str) -> httpx.Response:
    paths = {
        "sandbox": f"/sandbox/psp/api/payments/{payment_id}/simulate",
        "tbank": f"/fake/tbank/_control/payments/{payment_id}/pay",
        "yookassa": f"/fake/yookassa/_control/payments/{payment_id}/succeed",
        "stripe": f"/fake/stripe/_control/sessions/{payment_id}/complete",
    }
    body = {"action": "pay"} if provider == "sandbox" else None
    return http.post(paths[provider], json=body)


@pytest.mark.parametrize("tenant", TENANTS, ids=[t["tenant_id"] for t in TENANTS])
def test_each_shipped_tenant_issues_and_is_paid_with_its_own_defaults(
    http: httpx.Client, tenant: dict[str, Any]
) -> None:
    api = Api(http, tenant=tenant["tenant_id"])
    amount = 123_400  # whole rubles: amoCRM prices have no kopecks
    deal_id = new_deal(http, tenant, amount)
    items = [{"name": "Услуга", "price": amount, "quantity": 1, "vat": "none"}]
    created = api.create(deal_id=deal_id, number=f"T-{deal_id}", amount=amount, customer=CONTACT, items=items)
    assert created.status_code == 201, created.text  # no lifetime given: the tenant's default must suit its provider
    invoice = api.wait(created.json()["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    assert invoice["currency"] == tenant.get("currency", "RUB")

    answer = pay(http, tenant["psp"]["provider"], invoice["payment_id"])
    assert answer.status_code == 200, answer.text
    paid = api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid", timeout=20)
    assert paid["paid"] == amount
    paid_stage = tenant.get("stages", {}).get("paid", "PAID")
    poll("the deal's stage", lambda: {"s": deal_stage(http, tenant, deal_id)}, lambda v: v["s"] == paid_stage, 20)


def test_the_return_url_of_the_shipped_tenants_is_served(http: httpx.Client) -> None:
    """T-Bank, YooKassa and Stripe send the payer to the tenant's return_url; locally that page exists."""
    urls = {t["return_url"] for t in TENANTS if "return_url" in t}
    assert urls, "a shipped tenant has a return_url"
    for url in urls:
        answer = http.get(url.replace("${PAYBRIDGE_LOCAL_URL}", ""))
        assert answer.status_code == 200 and "text/html" in answer.headers["content-type"]
