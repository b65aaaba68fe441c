"""The bank-transfer scenario: an invoice in the sandbox CRM is paid by a plain bank transfer. The company's bank
(a local fake of the T-Bank business API) shows the operation and sends its `oper-feed-operation` webhook; PayBridge
reads the statement, finds the invoice number in the payment purpose and the deal turns "Paid". Then the same
transfer arrives again in an uploaded 1CClientBankExchange file and is counted once. Ends with one JSON line."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from devstack.demo import DemoFailed, run_on_local_stack, wait_for

TENANT = "bank-shop"
API_KEY = "demo-api-key"
CRM_TOKEN = "sandbox-crm-token-bank-shop"
ACCOUNT = "40702810900000012345"


def run_bank_demo(base_url: str, out: Any = print) -> dict[str, Any]:
    http = httpx.Client(base_url=base_url, timeout=30)
    crm, crm_auth, api = f"/sandbox/crm/{TENANT}/api", {"Authorization": f"Bearer {CRM_TOKEN}"}, {"x-api-key": API_KEY}
    started = time.monotonic()

    def step(text: str) -> None:
        out(f"[{time.monotonic() - started:7.3f}s] {text}")

    stamp = time.strftime("%H%M%S")
    deal = http.post(
        f"{crm}/deals", headers=crm_auth, json={"title": "Демо: оплата по счёту переводом", "amount": 4_870_000}
    ).json()
    number = f"ПБ-{stamp}"
    created = http.post(
        f"/v1/{TENANT}/invoices", headers=api, json={"deal_id": str(deal["id"]), "number": number, "amount": 4_870_000}
    )
    if created.status_code != 201:
        raise DemoFailed(f"could not issue the invoice: {created.text}")
    invoice_id = created.json()["invoice_id"]
    step(f"invoice № {number} for 48 700.00 RUB issued on deal #{deal['id']} ({invoice_id})")
    wait_for("the invoice to await payment", lambda: _invoice(http, invoice_id)["state"] == "awaiting_payment")

    purpose = f"Оплата по счету № {number} от {datetime.now(ZoneInfo('Europe/Moscow')):%d.%m.%Y}, НДС не облагается"
    operation = http.post(
        "/fake/tbank_business/_control/operations",
        json={
            "account": ACCOUNT,
            "amount": 4_870_000,
            "purpose": purpose,
            "payer_name": "ООО Ромашка",
            "payer_inn": "7707083893",
            "payer_account": "40702810400000000001",
            "document_number": stamp,
            "type": "Credit",
            "status": "Transaction",
            "notify": True,
        },
    ).json()
    sent = time.monotonic()
    step(f"the client's transfer lands on {ACCOUNT}: «{purpose}»; the bank sends its webhook")

    def paid_deal() -> dict[str, Any] | None:
        now = dict(http.get(f"{crm}/deals/{deal['id']}", headers=crm_auth).json())
        return now if now["stage"] == "PAID" else None

    final = wait_for("the deal to become PAID", paid_deal, timeout=30)
    seconds_to_crm = time.monotonic() - sent
    step(f"statement read, number found, deal stage {final['stage']} ({seconds_to_crm:.2f}s after the transfer)")

    statement = _file(number, purpose, stamp)
    upload = http.post(
        f"/bank/{TENANT}/statements",
        headers={**api, "content-type": "application/octet-stream"},
        content=statement,
    ).json()
    step(f"the accountant uploads the day's 1C statement: {upload['duplicates']} of {upload['lines']} already counted")
    invoice = _invoice(http, invoice_id)
    step(f"API: invoice {invoice['state']}, paid {invoice['paid']} of {invoice['amount']} {invoice['currency']}")
    return {
        "invoice_id": invoice_id,
        "operation_id": operation.get("operationId"),
        "final_state": invoice["state"],
        "deal_stage": final["stage"],
        "seconds_to_crm": round(seconds_to_crm, 3),
        "upload_duplicates": upload["duplicates"],
        "seconds_total": round(time.monotonic() - started, 3),
    }


def _invoice(http: httpx.Client, invoice_id: str) -> dict[str, Any]:
    return dict(http.get(f"/v1/{TENANT}/invoices/{invoice_id}", headers={"x-api-key": API_KEY}).json())


def _file(number: str, purpose: str, document: str) -> bytes:
    today = f"{datetime.now(ZoneInfo('Europe/Moscow')):%d.%m.%Y}"
    lines = [
        "1CClientBankExchange",
        "ВерсияФормата=1.03",
        "Кодировка=Windows",
        f"ДатаНачала={today}",
        f"ДатаКонца={today}",
        f"РасчСчет={ACCOUNT}",
        "СекцияДокумент=Платежное поручение",
        f"Номер={document}",
        f"Дата={today}",
        "Сумма=48700.00",
        "ПлательщикСчет=40702810400000000001",
        "Плательщик=ООО Ромашка",
        "ПлательщикИНН=7707083893",
        f"ПолучательСчет={ACCOUNT}",
        "Получатель=ООО Банк Шоп",
        f"ДатаПоступило={today}",
        f"НазначениеПлатежа={purpose}",
        "КонецДокумента",
        "КонецФайла",
    ]
    return "\r\n".join(lines).encode("cp1251")


def main(argv: list[str]) -> int:
    return run_on_local_stack(run_bank_demo, lambda s: s["deal_stage"] == "PAID" and s["upload_duplicates"] == 1)
