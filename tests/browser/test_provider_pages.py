"""The payer's pages of the T-Bank, YooKassa and Stripe fakes and of the sandbox PSP, as a payer uses them: the
payment link opens a page showing what is asked, with Pay / Pay part / Decline; each button does what it says at
the provider, and PayBridge hears it (the invoice is paid, partly paid, or still waiting after a decline)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.browser.conftest import on_one_line, shot
from tests.conftest import Api, Sandbox

#: the tenant that uses the provider, the page's heading, the status a decline leaves at the provider
PROVIDERS = {
    "sandbox": ("demo", "Sandbox PSP — payment", "declined"),
    "tbank": ("tbank-shop", "T-Bank — payment", "REJECTED"),
    "yookassa": ("yookassa-shop", "YooKassa — payment", "canceled (insufficient_funds)"),
    "stripe": ("stripe-shop", "Stripe Checkout — payment", "open · unpaid"),
}
PAID_STATUS = {"sandbox": "succeeded", "tbank": "CONFIRMED", "yookassa": "succeeded", "stripe": "complete · paid"}


def _invoice(http: httpx.Client, tenant: str, amount: int) -> dict[str, Any]:
    """An invoice of the tenant (its deal in the sandbox CRM) with its payment link at the provider."""
    deal = Sandbox(http, tenant=tenant, crm_token=f"sandbox-crm-token-{tenant}").new_deal(amount=amount)
    customer = {"email": "payer@example.com"}  # the 54-FZ receipt goes to the payer
    return Api(http, tenant=tenant).issue_awaiting(deal["id"], amount=amount, lifetime_seconds=3600, customer=customer)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_the_payer_pays_on_the_providers_page_and_the_invoice_is_paid(
    provider: str, http: httpx.Client, page: Any
) -> None:
    tenant, heading, _ = PROVIDERS[provider]
    api = Api(http, tenant=tenant)
    invoice = _invoice(http, tenant, 123_456_789)

    currency = invoice["currency"]  # RUB at T-Bank and YooKassa; the Stripe shop sells in EUR

    page.goto(invoice["payment_url"])
    assert page.get_by_role("heading", level=1).inner_text() == heading
    assert f"Amount: 1 234 567.89 {currency}, paid: 0.00 {currency}" in page.locator(".box").inner_text()
    for name in (f"Pay 1 234 567.89 {currency}", f"Pay part (617 283.94 {currency})", "Decline"):
        assert page.get_by_role("button", name=name).is_visible(), name
    assert on_one_line(page.locator(".amount"))
    shot(page, f"{provider}-1-payment-page")

    page.get_by_role("button", name=f"Pay 1 234 567.89 {currency}").click()
    assert page.get_by_role("status").is_visible()
    assert page.locator("#status").inner_text() == PAID_STATUS[provider]
    assert page.get_by_role("button", name="Decline").count() == 0  # nothing left to pay
    shot(page, f"{provider}-2-paid")
    paid = api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")
    assert paid["paid"] == 123_456_789 and sum(paid["paid_by_method"].values()) == 123_456_789


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_pay_part_pays_half_and_the_invoice_waits_for_the_rest(provider: str, http: httpx.Client, page: Any) -> None:
    tenant, _, _ = PROVIDERS[provider]
    invoice = _invoice(http, tenant, 100_000)
    page.goto(invoice["payment_url"])
    page.get_by_role("button", name=f"Pay part (500.00 {invoice['currency']})").click()
    assert "half the amount" in page.get_by_role("status").inner_text()
    assert f"paid: 500.00 {invoice['currency']}" in page.locator(".box").inner_text()
    shot(page, f"{provider}-3-part-paid")
    part = Api(http, tenant=tenant).wait(invoice["invoice_id"], lambda i: i["state"] == "partially_paid")
    assert (part["paid"], part["outstanding"]) == (50_000, 50_000)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_decline_is_shown_to_the_payer_and_no_money_is_recorded(provider: str, http: httpx.Client, page: Any) -> None:
    tenant, _, declined = PROVIDERS[provider]
    invoice = _invoice(http, tenant, 70_000)
    page.goto(invoice["payment_url"])
    page.get_by_role("button", name="Decline").click()
    assert "declined" in page.get_by_role("status").inner_text().lower()
    assert page.locator("#status").inner_text() == declined
    shot(page, f"{provider}-4-declined")
    after = Api(http, tenant=tenant).get(invoice["invoice_id"])
    assert after["paid"] == 0
