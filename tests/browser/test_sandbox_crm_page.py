"""The sandbox CRM's page as a manager uses it: amounts on one line, long payment links wrapped inside the window,
"Issue invoice" answered on the page at once and the link appearing by itself, the client paying part and the rest
on the checkout page, the manager's notice about the short payment, and the paid deal saying how it was paid — with
no "Issue invoice" button left on it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.browser.conftest import fits_the_window, on_one_line, shot
from tests.conftest import Api, Sandbox

LONG_TITLE = "Поставка оборудования для склада № 7 — стеллажи, погрузчик, сканеры штрихкодов, монтаж и обучение"


def test_a_manager_issues_an_invoice_and_sees_the_deal_follow_the_money(
    http: httpx.Client, sandbox: Sandbox, api: Api, page: Any
) -> None:
    deal = sandbox.new_deal(amount=1_500_000_000, title=LONG_TITLE)  # 15 000 000.00 RUB
    row = page.locator(f"#deal-{deal['id']}")

    page.goto(f"{http.base_url}/sandbox/crm/demo/")
    assert row.locator("td.amount").inner_text() == "15 000 000.00 RUB"
    assert on_one_line(page.locator(".amount"))  # every amount, in the table and in the texts
    assert fits_the_window(page)
    shot(page, "crm-1-deals")

    # "Issue invoice": PayBridge's answer at once, then the link shows up without the manager reloading
    row.get_by_role("button", name="Issue invoice").click()
    feedback = page.get_by_role("status")
    assert f"Deal #{deal['id']}: PayBridge — invoice issued (inv_" in feedback.inner_text()
    shot(page, "crm-2-issued-feedback")
    link = row.locator("a.link")
    link.wait_for()  # the page refreshes itself until the link has arrived
    assert row.get_attribute("data-stage") == "AWAITING_PAYMENT"
    assert "PayBridge: выставлен счёт" in row.locator("ul.timeline li").first.inner_text()
    assert fits_the_window(page)  # the long link wraps instead of pushing the table out
    assert on_one_line(page.locator(".amount"))
    shot(page, "crm-3-link-arrived")

    # The client pays half on the checkout page: the deal is partly paid and the manager is told what is missing
    link.click()
    page.get_by_role("button", name="Pay part (7 500 000.00 RUB)").click()
    invoice_id = api.wait(
        _invoice_of(http, deal["id"]), lambda i: i["state"] == "partially_paid" and i["paid"] == 750_000_000
    )["invoice_id"]
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PARTIALLY_PAID" and bool(d["notifications"]))
    page.goto(f"{http.base_url}/sandbox/crm/demo/#deal-{deal['id']}")
    notice = row.locator("ul.notices li").first.inner_text()
    assert "получено картой 7 500 000.00 RUB из 15 000 000.00 RUB, не хватает 7 500 000.00 RUB" in notice
    assert row.get_by_role("button", name="Issue invoice").is_visible()  # money is still missing
    shot(page, "crm-4-part-paid-notice")

    # The rest: the deal is paid, says how, and has nothing left to issue
    page.goto(str(row.locator("a.link").get_attribute("href")))
    page.get_by_role("button", name="Pay 7 500 000.00 RUB").click()
    api.wait(invoice_id, lambda i: i["state"] == "paid")
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID" and len(d["timeline"]) >= 3)
    page.goto(f"{http.base_url}/sandbox/crm/demo/#deal-{deal['id']}")
    assert row.get_attribute("data-stage") == "PAID"
    assert "оплачен картой: 15 000 000.00 RUB" in row.locator("ul.timeline li").first.inner_text()
    assert row.get_by_role("button", name="Issue invoice").count() == 0
    assert row.locator(".badge.paid").inner_text() == "Paid"
    assert fits_the_window(page) and on_one_line(page.locator(".amount"))
    shot(page, "crm-5-paid")


def test_a_refused_issue_is_shown_to_the_manager(http: httpx.Client, sandbox: Sandbox, page: Any) -> None:
    """A deal PayBridge cannot invoice (no amount to bill): the manager reads why, on the page, at once."""
    deal = sandbox.new_deal(amount=0)
    page.goto(f"{http.base_url}/sandbox/crm/demo/")
    page.locator(f"#deal-{deal['id']}").get_by_role("button", name="Issue invoice").click()
    feedback = page.get_by_role("status")
    assert feedback.get_attribute("class") == "notice bad wrap"
    assert f"Deal #{deal['id']}: PayBridge refused (" in feedback.inner_text()
    shot(page, "crm-6-refused")


def _invoice_of(http: httpx.Client, deal_id: str) -> str:
    listed = http.get("/v1/demo/invoices", params={"deal_id": deal_id}, headers={"x-api-key": "demo-ops-key"})
    assert listed.status_code == 200, listed.text
    return str(listed.json()["invoices"][0]["invoice_id"])
