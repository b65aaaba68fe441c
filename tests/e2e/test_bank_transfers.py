"""Bank transfers end to end on the local stack: 1C statement uploads, the T-Bank business webhook (a hint: we read
the statement) and the poller against a local fake of the bank's API; the matched money goes through the same
lifecycle as a PSP payment and moves the deal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import Api, Sandbox, poll

TENANT = "bank-shop"
#: The bank's day (Moscow): what a 1C file and the statement API both call the value date
TODAY = datetime.now(ZoneInfo("Europe/Moscow")).strftime("%d.%m.%Y")
ACCOUNT = "40702810900000012345"
BANK = "/fake/tbank_business"


def statement_1c(documents: list[dict[str, str]], encoding: str = "cp1251") -> bytes:
    header = [
        "1CClientBankExchange",
        "ВерсияФормата=1.03",
        f"Кодировка={'Windows' if encoding == 'cp1251' else 'DOS'}",
        "Отправитель=Бухгалтерия предприятия",
        "Получатель=",
        "ДатаСоздания=24.11.2026",
        "ДатаНачала=23.11.2026",
        "ДатаКонца=24.11.2026",
        f"РасчСчет={ACCOUNT}",
        "СекцияРасчСчет",
        "ДатаНачала=23.11.2026",
        f"РасчСчет={ACCOUNT}",
        "НачальныйОстаток=0.00",
        "КонецРасчСчет",
    ]
    body: list[str] = []
    for doc in documents:
        body += ["СекцияДокумент=Платежное поручение", *(f"{k}={v}" for k, v in doc.items()), "КонецДокумента"]
    return "\r\n".join([*header, *body, "КонецФайла", ""]).encode(encoding)


def incoming(number: str, amount: str, purpose: str, inn: str = "7707083893", **extra: str) -> dict[str, str]:
    return {
        "Номер": number,
        "Дата": TODAY,
        "Сумма": amount,
        "ПлательщикСчет": "40702810400000000001",
        "Плательщик": "ООО Покупатель",
        "ПлательщикИНН": inn,
        "ПолучательСчет": ACCOUNT,
        "Получатель": "ООО Банк Шоп",
        "ДатаПоступило": TODAY,
        "НазначениеПлатежа": purpose,
        **extra,
    }


def upload(http: httpx.Client, data: bytes, api_key: str = "demo-api-key") -> httpx.Response:
    headers = {"x-api-key": api_key, "content-type": "application/octet-stream"}
    return http.post(f"/bank/{TENANT}/statements", content=data, headers=headers)


def transfer(amount: int, purpose: str, document_number: str, notify: bool = True) -> dict[str, Any]:
    """A confirmed incoming transfer as the fake bank's control API takes it."""
    return {
        "account": ACCOUNT,
        "amount": amount,
        "purpose": purpose,
        "payer_inn": "7707083893",
        "payer_account": "40702810400000000001",
        "payer_name": "ООО Покупатель",
        "document_number": document_number,
        "type": "Credit",
        "status": "Transaction",
        "notify": notify,
    }


@pytest.fixture
def shop(http: httpx.Client) -> tuple[Api, Sandbox]:
    return Api(http, tenant=TENANT), Sandbox(http, tenant=TENANT, crm_token="sandbox-crm-token-bank-shop")


def invoice_for(shop: tuple[Api, Sandbox], amount: int, number: str, **extra: Any) -> tuple[dict[str, Any], str]:
    api, crm = shop
    deal = crm.new_deal(amount=amount)
    created = api.create(deal_id=deal["id"], number=number, amount=amount, **extra)
    assert created.status_code == 201, created.text
    invoice = api.wait(created.json()["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    return invoice, str(deal["id"])


def test_a_1c_upload_pays_exact_partial_and_split_invoices_and_hands_the_rest_to_a_person(
    http: httpx.Client, shop: tuple[Api, Sandbox], unique: Any
) -> None:
    api, crm = shop
    n1, n2, n3, n4 = unique("INV-"), unique("СЧ-"), unique("A"), unique("B")
    exact, deal1 = invoice_for(shop, 1_500_000, n1)
    partial, deal2 = invoice_for(shop, 200_000, n2)
    split_a, _ = invoice_for(shop, 30_000, n3)
    split_b, _ = invoice_for(shop, 20_000, n4)
    data = statement_1c(
        [
            incoming("101", "15000.00", f"Оплата по счету № {n1} от 24.11.2026. НДС не облагается"),
            incoming("102", "1500,00", f"Оплата по счёту №{n2}, частичная оплата"),
            incoming("103", "500.00", f"Оплата по счетам № {n3} и № {n4}"),
            incoming("104", "999.99", "Оплата за услуги, без номера счёта"),
            {**incoming("105", "100.00", f"Оплата по счету № {n1}"), "ПолучательСчет": "40702810000000099999"},
        ]
    )
    answer = upload(http, data)
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert (summary["documents"], summary["skipped"], summary["lines"]) == (5, 1, 4)
    assert summary["decisions"] == {"paid": 1, "partially_paid": 1, "split": 1, "unmatched": 1}
    assert summary["applied"] == 3 and summary["needs_a_person"] == 1
    # The money went through the lifecycle: states, CRM stages, the manager told the shortfall
    assert api.wait(exact["invoice_id"], lambda i: i["state"] == "paid")["paid"] == 1_500_000
    assert api.wait(partial["invoice_id"], lambda i: i["state"] == "partially_paid")["paid"] == 150_000
    assert api.wait(split_a["invoice_id"], lambda i: i["state"] == "paid")["paid"] == 30_000
    assert api.wait(split_b["invoice_id"], lambda i: i["state"] == "paid")["paid"] == 20_000
    crm.wait_deal(deal1, lambda d: d["stage"] == "PAID")
    shortfall = crm.wait_deal(deal2, lambda d: d["stage"] == "PARTIALLY_PAID" and d["notifications"])
    assert "не хватает 500.00 RUB" in shortfall["notifications"][-1]["text"]
    # The unmatched line is on the review list with its reason
    review = http.get(f"/bank/{TENANT}/review", headers={"x-api-key": "demo-api-key"}).json()["lines"]
    assert any(r["amount"] == 99_999 and r["decision"]["kind"] == "unmatched" for r in review)
    # The same file again changes nothing
    again = upload(http, data).json()
    assert again["duplicates"] == 4 and again["applied"] == 0 and again["decisions"] == {}
    assert api.get(exact["invoice_id"])["paid"] == 1_500_000


def test_a_dos_encoded_upload_works_and_a_malformed_file_names_its_line_and_writes_nothing(
    http: httpx.Client, shop: tuple[Api, Sandbox], unique: Any
) -> None:
    api, _ = shop
    number = unique("D-")
    invoice, _ = invoice_for(shop, 70_000, number)
    good = statement_1c([incoming("201", "700.00", f"Оплата сч. {number}")], encoding="cp866")
    bad = good.replace("Сумма=700.00".encode("cp866"), "Сумма=семьсот".encode("cp866"))
    refused = upload(http, bad)
    assert refused.status_code == 400 and refused.json()["type"].endswith("/statement-invalid")
    assert refused.json()["detail"].startswith("line ")
    assert api.get(invoice["invoice_id"])["paid"] == 0
    assert upload(http, good).json()["decisions"] == {"paid": 1}
    assert api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")["paid"] == 70_000


def test_uploads_need_the_tenants_api_key(http: httpx.Client) -> None:
    answer = upload(http, statement_1c([]), api_key="wrong")
    assert answer.status_code == 401
    empty = upload(http, b"")
    assert empty.status_code == 400 and empty.json()["type"].endswith("/bad-request")


def test_the_banks_webhook_makes_us_read_the_statement_and_the_transfer_pays_in_seconds(
    http: httpx.Client, shop: tuple[Api, Sandbox], unique: Any
) -> None:
    api, crm = shop
    number = unique("W-")
    invoice, deal = invoice_for(shop, 123_400, number)
    operation = transfer(123_400, f"Оплата по счету {number} от 24.11.2026, в т.ч. НДС 20%", unique("9"))
    assert http.post(f"{BANK}/_control/operations", json=operation).status_code in (200, 201)
    assert api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid", timeout=20)["paid"] == 123_400
    crm.wait_deal(deal, lambda d: d["stage"] == "PAID")
    # The same transfer uploaded in a 1C file afterwards is counted once
    data = statement_1c([incoming(operation["document_number"], "1234.00", operation["purpose"])])
    assert upload(http, data).json()["duplicates"] == 1
    assert api.get(invoice["invoice_id"])["paid"] == 123_400


def test_a_webhook_without_our_token_is_401(http: httpx.Client) -> None:
    body = {"eventType": "oper-feed-operation", "accountNumber": ACCOUNT, "operationId": "x"}
    assert http.post(f"/bank/{TENANT}/tbank", json=body).status_code == 401
    assert http.post(f"/bank/{TENANT}/tbank?token=guess", json=body).status_code == 401


def test_the_webhook_route_names_the_source_and_the_old_tbank_url_keeps_working(
    http: httpx.Client, shop: tuple[Api, Sandbox], unique: Any
) -> None:
    api, _ = shop
    number = unique("L-")
    invoice, _ = invoice_for(shop, 55_500, number)
    # nobody pushes: the URLs below are the only news of it
    operation = transfer(55_500, f"Оплата по счету {number}", unique("8"), notify=False)
    assert http.post(f"{BANK}/_control/operations", json=operation).status_code in (200, 201)
    hint = {"eventType": "oper-feed-operation", "accountNumber": ACCOUNT, "operationId": "op-1"}
    # A source the tenant does not use is refused before the body is read, even with the right token
    other = http.post(f"/bank/{TENANT}/sberbank?token=bank-shop-webhook-token", json=hint)
    assert other.status_code == 401
    assert api.get(invoice["invoice_id"])["paid"] == 0
    # The URL registered at T-Bank before sources were pluggable still reaches the T-Bank business source
    legacy = http.post(f"/bank/{TENANT}/tbank?token=bank-shop-webhook-token", json=hint)
    assert legacy.status_code == 200 and legacy.text == "OK"
    assert api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid", timeout=20)["paid"] == 55_500
    # …and so does the source's own name
    again = http.post(f"/bank/{TENANT}/tbank_business?token=bank-shop-webhook-token", json=hint)
    assert again.status_code == 200 and again.text == "OK"
    assert api.get(invoice["invoice_id"])["paid"] == 55_500


def test_polling_reads_pages_from_the_cursor_and_only_confirmed_credits_count(
    stack: Any, http: httpx.Client, shop: tuple[Api, Sandbox], unique: Any
) -> None:
    from paybridge.wiring import get_banking

    api, _ = shop
    numbers = [unique("P-") for _ in range(3)]
    invoices = [invoice_for(shop, 10_000 * (i + 1), n)[0] for i, n in enumerate(numbers)]
    base = {"account": ACCOUNT, "payer_inn": "7707083893", "payer_name": "ООО П", "notify": False}
    for i, number in enumerate(numbers):
        op = {**base, "amount": 10_000 * (i + 1), "purpose": f"Оплата сч. № {number}", "document_number": f"{i}"}
        http.post(f"{BANK}/_control/operations", json={**op, "type": "Credit", "status": "Transaction"})
    # A debit and an unconfirmed credit naming the first invoice: neither is money in
    debit = {**base, "amount": 5_000, "purpose": f"Возврат по сч. {numbers[0]}", "document_number": "d1"}
    http.post(f"{BANK}/_control/operations", json={**debit, "type": "Debit", "status": "Transaction"})
    held = {**base, "amount": 7_000, "purpose": f"Оплата сч. {numbers[0]}", "document_number": "h1"}
    http.post(f"{BANK}/_control/operations", json={**held, "type": "Credit", "status": "Authorization"})
    # The schedule's function (forced here: the tenant polls every minute)
    summary = get_banking().poll(TENANT, datetime.now(UTC), force=True)
    assert summary.decisions.get("paid", 0) >= 3
    for invoice, amount in zip(invoices, (10_000, 20_000, 30_000), strict=True):
        assert api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")["paid"] == amount
    # Polling again reads from the stored cursor: nothing new is applied
    again = get_banking().poll(TENANT, datetime.now(UTC), force=True)
    assert again.applied == 0
    assert api.get(invoices[0]["invoice_id"])["paid"] == 10_000
    # The scheduled function runs the same code for every tenant that is due
    result = stack.aws.invoke("BankPollFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})
    assert TENANT in result
    poll("nothing left", lambda: {"n": api.get(invoices[1]["invoice_id"])["paid"]}, lambda v: v["n"] == 20_000, 5)


def test_the_bank_demo_scenario_pays_the_deal_within_seconds_and_counts_the_upload_once(stack: Any) -> None:
    from devstack.demo_bank import run_bank_demo

    summary = run_bank_demo(stack.url, out=lambda _line: None)
    assert summary["final_state"] == "paid" and summary["deal_stage"] == "PAID"
    assert summary["upload_duplicates"] == 1 and 0 < summary["seconds_to_crm"] < 10
