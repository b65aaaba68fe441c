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


# -- YooKassa --------------------------------------------------------------------------------------------------------


def test_yookassa_payment_with_receipt_refunds_and_unsigned_notifications(
    stack: Any, http: httpx.Client, unique: Any
) -> None:
    api, deals = Api(http, tenant="yookassa-shop"), crm(http, "yookassa-shop")
    deal = deals.new_deal(amount=150_000)
    invoice = api.issue_awaiting(deal["id"], amount=150_000, items=TBANK_ITEMS, customer={"phone": "+79001234567"})
    fake = stack.fakes["yookassa"]
    sent = [r for r in fake.requests if r.get("metadata", {}).get("invoice_id") == invoice["invoice_id"]][-1]
    assert sent["receipt"]["customer"] == {"phone": "+79001234567"} and sent["receipt"]["tax_system_code"] == 2
    assert [i["vat_code"] for i in sent["receipt"]["items"]] == [11, 1]
    # A forged "succeeded" for the still-pending payment: the re-fetch says pending, so nothing changes
    forged = {
        "type": "notification",
        "event": "payment.succeeded",
        "object": {
            "id": invoice["payment_id"],
            "status": "succeeded",
            "amount": {"value": "1500.00", "currency": "RUB"},
        },
    }
    assert http.post("/psp/yookassa-shop/yookassa", json=forged).status_code == 200
    assert api.get(invoice["invoice_id"])["state"] == "awaiting_payment"
    unknown = {**forged, "object": {"id": "00000000-0000-0000-0000-000000000000"}}
    assert http.post("/psp/yookassa-shop/yookassa", json=unknown).status_code == 401
    # The payer pays; the real notification (and its repeat) count once
    assert http.post(f"/fake/yookassa/_control/payments/{invoice['payment_id']}/succeed").status_code == 200
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    assert http.post("/psp/yookassa-shop/yookassa", json=forged).status_code == 200
    assert api.get(invoice["invoice_id"])["paid"] == 150_000
    # Partial refund, then the rest; refund.succeeded notifications after the answers count nothing twice
    first = refund(api, invoice["invoice_id"], unique("rf"), amount=30_000)
    assert first.status_code == 201 and first.json()["status"] == "succeeded", first.text
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "PARTIALLY_REFUNDED")
    assert refund(api, invoice["invoice_id"], unique("rf")).json()["amount"] == 120_000
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "REFUNDED")
    mine = [r for r in fake.refunds.values() if r["payment_id"] == invoice["payment_id"]]
    assert sorted(r["amount"]["value"] for r in mine) == ["1200.00", "300.00"]
    assert all(r["receipt"] is not None for r in mine)
    poll(
        "refund notifications",
        lambda: {
            "n": sum(
                d["delivered"]
                for d in deliveries(http, "yookassa")
                if "refund.succeeded" in d["body"] and invoice["payment_id"] in d["body"]
            )
        },
        lambda v: v["n"] == 2,
        10,
    )
    assert api.get(invoice["invoice_id"])["refunded"] == 150_000


def test_yookassa_lost_create_answer_ends_with_one_payment(stack: Any, http: httpx.Client) -> None:
    api, deals = Api(http, tenant="yookassa-shop"), crm(http, "yookassa-shop")
    http.post("/fake/yookassa/_control/faults", json={"lose_next_create": 1})
    deal = deals.new_deal(amount=10_000)
    invoice = api.issue_awaiting(deal["id"], amount=10_000, customer={"email": "c@example.com"})
    mine = [
        p for p in stack.fakes["yookassa"].payments.values() if p["metadata"].get("invoice_id") == invoice["invoice_id"]
    ]
    # The first answer was a 500 ("result unknown"); the retry with the same Idempotence-Key got the same payment
    assert [p["id"] for p in mine] == [invoice["payment_id"]]


# -- Stripe ----------------------------------------------------------------------------------------------------------


def stripe_paid(
    stack: Any, http: httpx.Client, amount: int
) -> tuple[Api, Sandbox, dict[str, Any], dict[str, Any], str]:
    api, deals = Api(http, tenant="stripe-shop"), crm(http, "stripe-shop")
    deal = deals.new_deal(amount=amount, currency="EUR")
    invoice = api.issue_awaiting(deal["id"], amount=amount, currency="EUR", lifetime_seconds=3600)
    session = stack.fakes["stripe"].sessions[invoice["payment_id"]]
    assert session["client_reference_id"] == invoice["invoice_id"] and session["currency"] == "eur"
    completed = http.post(f"/fake/stripe/_control/sessions/{invoice['payment_id']}/complete").json()
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    return api, deals, deal, invoice, completed["event_id"]


def test_stripe_checkout_paid_duplicates_and_stale_events_never_move_it_back(stack: Any, http: httpx.Client) -> None:
    api, _, _, invoice, event_id = stripe_paid(stack, http, 4_990)
    assert api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")["paid"] == 4_990
    # The same event again, and an old "expired" for the session arriving late: nothing moves
    http.post(f"/fake/stripe/_control/resend/{event_id}")
    expired = {**stack.fakes["stripe"].sessions[invoice["payment_id"]], "status": "expired"}
    http.post("/fake/stripe/_control/send", json={"type": "checkout.session.expired", "object": expired})
    poll(
        "deliveries",
        lambda: {"n": sum(d["delivered"] for d in deliveries(http, "stripe") if invoice["payment_id"] in d["body"])},
        lambda v: v["n"] >= 3,
        10,
    )
    after = api.get(invoice["invoice_id"])
    assert after["state"] == "paid" and after["paid"] == 4_990
    assert [h["event"] for h in after["history"]].count("money_received") == 1


def test_stripe_partial_then_full_refund(stack: Any, http: httpx.Client, unique: Any) -> None:
    api, deals, deal, invoice, _ = stripe_paid(stack, http, 10_000)
    first = refund(api, invoice["invoice_id"], unique("rf"), amount=2_500)
    assert first.status_code == 201 and first.json()["status"] == "succeeded", first.text
    assert first.json()["provider_ref"].startswith("stripe:refund:re_")
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "PARTIALLY_REFUNDED")
    assert refund(api, invoice["invoice_id"], unique("rf")).json()["amount"] == 7_500
    deals.wait_deal(deal["id"], lambda d: d["stage"] == "REFUNDED")
    poll(
        "refund events",
        lambda: {
            "n": sum(
                d["delivered"]
                for d in deliveries(http, "stripe")
                if "refund.created" in d["body"] and invoice["invoice_id"] in d["body"]
            )
        },
        lambda v: v["n"] == 2,
        10,
    )
    assert api.get(invoice["invoice_id"])["refunded"] == 10_000


def test_stripe_forged_and_stale_signatures_are_refused(stack: Any, http: httpx.Client) -> None:
    from paybridge.adapters.psp.stripe import sign

    api, deals = Api(http, tenant="stripe-shop"), crm(http, "stripe-shop")
    deal = deals.new_deal(amount=3_000, currency="EUR")
    invoice = api.issue_awaiting(deal["id"], amount=3_000, currency="EUR", lifetime_seconds=3600)
    session = {
        **stack.fakes["stripe"].sessions[invoice["payment_id"]],
        "status": "complete",
        "payment_status": "paid",
        "payment_intent": "pi_forged",
    }
    body = json.dumps({"id": "evt_forged", "type": "checkout.session.completed", "data": {"object": session}}).encode()
    for header in (sign("whsec_wrong", body), sign("whsec_paybridge_local", body, 1_000_000_000)):
        answer = http.post("/psp/stripe-shop/stripe", content=body, headers={"Stripe-Signature": header})
        assert answer.status_code == 401
    assert api.get(invoice["invoice_id"])["state"] == "awaiting_payment"


def test_stripe_lifetime_outside_checkout_window_is_refused(http: httpx.Client) -> None:
    answer = Api(http, tenant="stripe-shop").create(deal_id="s1", number="s1", amount=1_000, lifetime_seconds=3 * 86400)
    assert answer.status_code == 422 and answer.json()["type"].endswith("/lifetime-out-of-range")


def test_stripe_lost_create_answer_ends_with_one_session(stack: Any, http: httpx.Client) -> None:
    api, deals = Api(http, tenant="stripe-shop"), crm(http, "stripe-shop")
    http.post("/fake/stripe/_control/faults", json={"lose_next_create": 1})
    deal = deals.new_deal(amount=2_000, currency="EUR")
    invoice = api.issue_awaiting(deal["id"], amount=2_000, currency="EUR", lifetime_seconds=3600)
    mine = [s for s in stack.fakes["stripe"].sessions.values() if s["client_reference_id"] == invoice["invoice_id"]]
    assert [s["id"] for s in mine] == [invoice["payment_id"]]
