"""The acquiring scenario: card and SBP payments at YooKassa (the local fake), a refund, and YooKassa's payouts on
the company's T-Bank business statement (the local fake of the bank), reconciled three ways.

1. Five invoices are paid at YooKassa — three by card, two through SBP — and one is partly refunded.
2. YooKassa pays out the first three payments less its fee and the refund (`/_control/payout`, as its documentation
   describes a payout): the bank shows the line and sends its webhook; PayBridge classifies it as a settlement and
   matches it exactly (YooKassa's `income_amount` per payment). The day's 1C file with the same line counts it once.
3. The next payout leaves one payment out: the line is flagged for a person, naming that payment; the payment comes
   in the payout after, and is settled then.
4. The month's reconciliation report (`GET /v1/{tenant}/reconciliation`). Ends with one JSON line."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from devstack.demo import DemoFailed, run_on_local_stack, wait_for
from devstack.fakes.yookassa import moscow_day

TENANT = "acquiring-shop"
API_KEY = "demo-api-key"
OPS_KEY = "demo-ops-key"
CRM_TOKEN = "sandbox-crm-token-acquiring-shop"
ACCOUNT = "40702810500000054321"
SHOP = "506752"
MSK = ZoneInfo("Europe/Moscow")


class Shop:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.day: str | None = None  # the Moscow day of the last payment captured
        self.crm = f"/sandbox/crm/{TENANT}/api"
        self.crm_auth = {"Authorization": f"Bearer {CRM_TOKEN}"}
        self.api = {"x-api-key": API_KEY}

    def invoice(self, number: str, amount: int) -> dict[str, Any]:
        deal = self.http.post(f"{self.crm}/deals", headers=self.crm_auth, json={"title": number, "amount": amount})
        created = self.http.post(
            f"/v1/{TENANT}/invoices",
            headers=self.api,
            json={"deal_id": str(deal.json()["id"]), "number": number, "amount": amount},
        )
        if created.status_code != 201:
            raise DemoFailed(f"could not issue {number}: {created.text}")
        invoice_id = created.json()["invoice_id"]
        return dict(wait_for(f"{number} to await payment", lambda: self._awaiting(invoice_id)))

    def _awaiting(self, invoice_id: str) -> dict[str, Any] | None:
        invoice = self.get(invoice_id)
        return invoice if invoice["state"] == "awaiting_payment" and invoice["payment_id"] else None

    def get(self, invoice_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/{TENANT}/invoices/{invoice_id}", headers=self.api).json())

    def pay(self, invoice: dict[str, Any], method: str) -> dict[str, Any]:
        paid = self.http.post(
            f"/fake/yookassa/_control/payments/{invoice['payment_id']}/succeed", json={"method": method}
        )
        if paid.status_code != 200:
            raise DemoFailed(f"YooKassa did not take the payment: {paid.text}")
        captured = moscow_day(paid.json()["captured_at"])
        self.day = captured.isoformat() if captured else None  # its payout's day (not "today": midnight may pass)
        return dict(wait_for("the payment to be recorded", lambda: self._paid(invoice["invoice_id"])))

    def _paid(self, invoice_id: str) -> dict[str, Any] | None:
        invoice = self.get(invoice_id)
        return invoice if invoice["paid"] else None

    def refund(self, invoice: dict[str, Any], amount: int) -> None:
        answer = self.http.post(
            f"/v1/{TENANT}/invoices/{invoice['invoice_id']}/refunds",
            headers={**self.api, "Idempotency-Key": f"refund-{uuid.uuid4().hex[:12]}"},
            json={"amount": amount, "reason": "a returned item"},
        )
        if answer.status_code not in (200, 201) or answer.json()["status"] != "succeeded":
            raise DemoFailed(f"refund failed: {answer.text}")

    def payout(self, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """The payout of the day the last payment was captured (today before any)."""
        day = self.day or datetime.now(MSK).date().isoformat()
        answer = self.http.post(
            "/fake/yookassa/_control/payout", json={"shop_id": SHOP, "date": day, "exclude": list(exclude)}
        )
        return dict(answer.json())

    def to_the_bank(self, payout: dict[str, Any], document: str) -> dict[str, Any]:
        operation = self.http.post(
            "/fake/tbank_business/_control/operations",
            json={
                "account": ACCOUNT,
                "amount": payout["amount"],
                "purpose": payout["purpose"],
                "payer_name": payout["payer_name"],
                "payer_inn": payout["payer_inn"],
                "payer_account": payout["payer_account"],
                "document_number": document,
                "notify": True,
            },
        )
        return dict(operation.json())

    def upload(self, payout: dict[str, Any], document: str) -> dict[str, Any]:
        answer = self.http.post(
            f"/bank/{TENANT}/statements",
            headers={**self.api, "content-type": "application/octet-stream"},
            content=statement_1c(payout, document),
        )
        return dict(answer.json())

    def review(self) -> list[dict[str, Any]]:
        return list(self.http.get(f"/bank/{TENANT}/review", headers=self.api).json()["lines"])

    def report(self, month: str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/{TENANT}/reconciliation", params={"month": month}, headers=self.api).json())


def statement_1c(payout: dict[str, Any], document: str) -> bytes:
    """The day's 1CClientBankExchange file with the payout line, as the company's bank client exports it."""
    today = f"{datetime.now(MSK):%d.%m.%Y}"
    rubles = f"{payout['amount'] // 100}.{payout['amount'] % 100:02d}"
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
        f"Сумма={rubles}",
        f"ПлательщикСчет={payout['payer_account']}",
        f"Плательщик={payout['payer_name']}",
        f"ПлательщикИНН={payout['payer_inn']}",
        f"ПолучательСчет={ACCOUNT}",
        "Получатель=ООО Эквайринг Шоп",
        f"ДатаПоступило={today}",
        f"НазначениеПлатежа={payout['purpose']}",
        "КонецДокумента",
        "КонецФайла",
    ]
    return "\r\n".join(lines).encode("cp1251")


def run_settlement_demo(base_url: str, out: Callable[[str], None] = print) -> dict[str, Any]:
    http = httpx.Client(base_url=base_url, timeout=30)
    shop = Shop(http)
    started = time.monotonic()

    def step(text: str) -> None:
        out(f"[{time.monotonic() - started:7.3f}s] {text}")

    stamp = f"{time.strftime('%H%M%S')}{uuid.uuid4().hex[:4]}"
    counter = iter(range(1, 100))

    def paid(method: str, amount: int) -> dict[str, Any]:
        invoice = shop.invoice(f"ЭК-{stamp}-{next(counter)}", amount)
        return shop.pay(invoice, "sbp" if method == "sbp" else "bank_card")

    morning = [paid("card", 1_200_000), paid("sbp", 450_000), paid("card", 800_000)]
    step("3 payments at YooKassa: card 12 000.00, SBP 4 500.00, card 8 000.00 RUB")
    shop.refund(morning[0], 200_000)
    step("2 000.00 RUB refunded on the first one")

    # payout 1: the day's payments less YooKassa's fee and the refund, through the bank's API (webhook) and in 1C
    payout = shop.payout()
    shop.to_the_bank(payout, f"{stamp}1")
    step(f"YooKassa pays out {payout['amount'] / 100:.2f} RUB: «{payout['purpose']}»")
    settled = wait_for("the payout's payments to be settled", lambda: _settled(shop, morning), timeout=30)
    fees = [t["fee"] for i in settled for t in i["money_trail"] if t["kind"] == "payment"]
    basis = settled[0]["money_trail"][0]["fee_basis"]
    step(
        f"bank webhook → statement read → a settlement, matched: fees {', '.join(f'{f / 100:.2f}' for f in fees)}"
        f" RUB ({basis}: YooKassa's income_amount)"
    )
    upload = shop.upload(payout, f"{stamp}1")
    step(f"the day's 1C file uploaded: {upload['duplicates']} of {upload['lines']} already counted")

    # payout 2 leaves one payment out (the provider's mistake): flagged, naming it; the others are settled
    later = [paid("card", 300_000), paid("sbp", 150_000), paid("card", 500_000)]
    missing = later[1]
    short = shop.payout(exclude=(missing["payment_id"],))
    short_upload = shop.upload(short, f"{stamp}2")
    flagged = short_upload["records"][0]
    step(f"3 more payments; the next payout {short['amount'] / 100:.2f} RUB is short: {flagged['reason']}")
    review = [line for line in shop.review() if line["decision"]["kind"] == "settlement"]
    # payout 3 brings it
    late = shop.payout()
    late_upload = shop.upload(late, f"{stamp}3")
    step(f"the payout after brings it ({late['amount'] / 100:.2f} RUB): {late_upload['records'][0]['reason']}")

    month = f"{datetime.now(MSK):%Y-%m}"
    report = shop.report(month)
    final = shop.get(missing["invoice_id"])
    return {
        "tenant": TENANT,
        "month": month,
        "payout_kinds": sorted({flagged["kind"], late_upload["records"][0]["kind"]}),
        "first_payout_matched": all(t["stage"] == "settled" for i in settled for t in i["money_trail"]),
        "upload_duplicates": upload["duplicates"],
        "short_payout_flagged": flagged["kind"] == "settlement" and missing["payment_id"] in flagged["reason"],
        "review_lines": len(review),
        "late_payment_settled": final["money_trail"][0]["stage"] == "settled",
        "report_totals": report["totals"],
        "seconds_total": round(time.monotonic() - started, 3),
    }


def _settled(shop: Shop, invoices: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    now = [shop.get(i["invoice_id"]) for i in invoices]
    ok = all(i["money_trail"] and all(t["stage"] == "settled" for t in i["money_trail"]) for i in now)
    return now if ok else None


def main(argv: list[str]) -> int:
    return run_on_local_stack(
        run_settlement_demo,
        lambda s: s["first_payout_matched"] and s["short_payout_flagged"] and s["late_payment_settled"],
    )
