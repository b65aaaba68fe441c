"""T-Bank, YooKassa and Stripe end to end: the lifecycle on the local stack against local fakes that speak each
provider's documented wire format (devstack/fakes), through the real adapters."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import Api, Sandbox, poll


def crm(http: httpx.Client, tenant: str) -> Sandbox:
    return Sandbox(http, tenant=tenant, crm_token=f"sandbox-crm-token-{tenant}")


def refund(api: Api, invoice_id: str, key: str, **body: Any) -> httpx.Response:
    headers = {**api.headers, "Idempotency-Key": key}
    return api.http.post(f"/v1/{api.tenant}/invoices/{invoice_id}/refunds", json=body, headers=headers)


def deliveries(http: httpx.Client, provider: str) -> list[dict[str, Any]]:
    return list(http.get(f"/fake/{provider}/_control/deliveries").json())


# -- T-Bank ----------------------------------------------------------------------------------------------------------

TBANK_ITEMS = [
    {"name": "Стул", "price": 60_000, "quantity": 2, "vat": "vat22", "payment_object": "commodity"},
    {"name": "Доставка", "price": 30_000, "quantity": 1, "vat": "none"},
]


def test_tbank_card_payment_with_receipt_then_partial_and_full_refund(
    stack: Any, http: httpx.Client, unique: Any
) -> None:
    api, deals = Api(http, tenant="tbank-shop"), crm(http, "tbank-shop")
    deal = deals.new_deal(amount=150_000)
    invoice = api.issue_awaiting(deal["id"], amount=150_000, items=TBANK_ITEMS, customer={"email": "c@example.com"})
    fake = stack.fakes["tbank"]
    init = [r for r in fake.requests if r["method"] == "Init" and r["OrderId"] == invoice["invoice_id"]][-1]
    assert init["Receipt"]["Taxation"] == "usn_income" and init["Receipt"]["Email"] == "c@example.com"
    assert [i["Amount"] for i in init["Receipt"]["Items"]] == [120_000, 30_000]
    assert init["NotificationURL"] == f"{stack.url}/psp/tbank-shop/tbank"
    # The client pays: T-Bank's signed notification makes the invoice paid and the deal PAID
    assert http.post(f"/fake/tbank/_control/payments/{invoice['payment_id']}/pay").status_code == 200
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    assert api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")["paid"] == 150_000
    # Refund the delivery line, then the rest
    first = refund(api, invoice["invoice_id"], unique("rf"), amount=30_000)
    assert first.status_code == 201 and first.json()["status"] == "succeeded", first.text
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "PARTIALLY_REFUNDED")
    cancel = [r for r in fake.requests if r["method"] == "Cancel"][-1]
    assert cancel["Amount"] == 30_000 and cancel["Receipt"]["Items"][0]["Name"] == "Доставка"
    assert refund(api, invoice["invoice_id"], unique("rf")).json()["amount"] == 120_000
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "REFUNDED")
    assert fake.payments[invoice["payment_id"]].refunded == 150_000
    # T-Bank's own refund notifications after the answers count nothing twice
    poll(
        "refund notifications",
        lambda: {"n": sum(d["delivered"] for d in deliveries(http, "tbank") if invoice["payment_id"] in d["body"])},
        lambda v: v["n"] >= 3,
        10,
    )
    assert api.get(invoice["invoice_id"])["refunded"] == 150_000


def test_tbank_sbp_gives_an_nspk_qr_payload(http: httpx.Client) -> None:
    api, deals = Api(http, tenant="tbank-sbp"), crm(http, "tbank-sbp")
    deal = deals.new_deal(amount=25_000)
    invoice = api.issue_awaiting(deal["id"], amount=25_000)
    assert invoice["qr_payload"].startswith("https://qr.nspk.ru/")
    http.post(f"/fake/tbank/_control/payments/{invoice['payment_id']}/pay")
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")


def test_tbank_forged_and_mismatched_notifications(stack: Any, http: httpx.Client) -> None:
    api, deals = Api(http, tenant="tbank-shop"), crm(http, "tbank-shop")
    deal = deals.new_deal(amount=40_000)
    invoice = api.issue_awaiting(deal["id"], amount=40_000, customer={"email": "c@example.com"})
    forged = {
        "TerminalKey": "TBankShopDEMO",
        "OrderId": invoice["invoice_id"],
        "Success": True,
        "Status": "CONFIRMED",
        "PaymentId": int(invoice["payment_id"]),
        "Amount": 40_000,
        "Token": "0" * 64,
    }
    answer = http.post("/psp/tbank-shop/tbank", content=json.dumps(forged))
    assert answer.status_code == 401
    assert api.get(invoice["invoice_id"])["state"] == "awaiting_payment"
    # The bank notifies another amount than the invoice's: recorded, flagged to the manager
    http.post(f"/fake/tbank/_control/payments/{invoice['payment_id']}/pay", json={"amount": 39_000})
    flagged = api.wait(invoice["invoice_id"], lambda i: "amount_mismatch" in i["flags"])
    assert flagged["paid"] == 39_000
    deals.wait_deal(deal["id"], lambda d: any("не совпала" in n["text"] for n in d["notifications"]))


def test_tbank_lost_init_answer_ends_with_one_payable_payment(stack: Any, http: httpx.Client) -> None:
    api, deals = Api(http, tenant="tbank-shop"), crm(http, "tbank-shop")
    http.post("/fake/tbank/_control/faults", json={"lose_next_init": 1})
    deal = deals.new_deal(amount=10_000)
    invoice = api.issue_awaiting(deal["id"], amount=10_000, customer={"email": "c@example.com"})
    mine = [p for p in stack.fakes["tbank"].payments.values() if p.order_id == invoice["invoice_id"]]
    assert sorted(p.status for p in mine) == ["CANCELED", "NEW"]
    assert [p.payment_id for p in mine if p.status == "NEW"] == [invoice["payment_id"]]


def test_a_receipt_tenant_refuses_an_invoice_without_contact(http: httpx.Client) -> None:
    api = Api(http, tenant="tbank-shop")
    answer = api.create(deal_id="x1", number="x1", amount=1_000)
    assert answer.status_code == 422 and answer.json()["type"].endswith("/receipt-invalid")
