"""The ops console of the local stack, as a person at it works: the invoices of a deal with their money facts, a
cash payment recorded, a cancelled invoice's link reissued, a deal re-synced, a drift check run, bank lines on the
review list assigned and dismissed — each by a button that calls the same API with the person's login, and answered
on the page. Bad input and a missing login are told on the page and pull nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.browser.conftest import fits_the_window, on_one_line, shot
from tests.conftest import Api, Sandbox
from tests.e2e.test_levers import in_review, review_line


def _apply(page: Any, reason: str) -> str:
    """Fill the open lever form's reason, apply it, and read what the page answers (a new answer, once the lists
    under it are reloaded)."""
    form = page.locator("#lever-row form")
    form.get_by_label("Reason").fill(reason)
    return _answer(page, lambda: form.get_by_role("button", name="Apply").click())


def _answer(page: Any, act: Callable[[], None]) -> str:
    before = int(page.locator("#status").get_attribute("data-seq") or 0)
    act()
    page.wait_for_function(
        f"() => +(document.getElementById('status').dataset.seq || 0) > {before} && document.body.dataset.busy !== '1'"
    )
    return str(page.get_by_role("status").inner_text())


def _show_deal(page: Any, deal_id: str) -> None:
    page.get_by_label("Deal").fill(deal_id)
    page.get_by_role("button", name="Show").click()
    page.locator("#invoice-rows tr[id^=inv-]").first.wait_for()


def test_invoice_levers_record_a_payment_reissue_and_resync(
    http: httpx.Client, sandbox: Sandbox, api: Api, page: Any
) -> None:
    deal = sandbox.new_deal(amount=200_000)
    invoice = api.issue_awaiting(deal["id"], amount=200_000)
    row = page.locator(f"#inv-{invoice['invoice_id']}")

    page.goto(f"{http.base_url}/ops/")
    assert page.get_by_label("Tenant").input_value() == "demo"
    assert page.get_by_label("Ops API key").input_value() == "demo-ops-key"
    page.wait_for_function("() => document.body.dataset.busy === '0'")  # loaded
    _show_deal(page, deal["id"])
    assert row.get_attribute("data-state") == "awaiting_payment"
    assert row.locator("td.amount").first.inner_text() == "2 000.00 RUB"
    shot(page, "ops-1-invoices")

    # Without a login nothing is pulled: the page says why
    row.get_by_role("button", name="Record payment…").click()
    form = page.locator("#lever-row form")
    assert form.get_by_label("Amount").input_value() == "2000.00"  # the outstanding amount
    assert "Type your login first" in _apply(page, "paid at the office")
    page.get_by_label("Your login (X-Actor)").fill("anna")
    form.get_by_label("Amount").fill("12,5x")
    assert "Amount: a positive number" in _apply(page, "paid at the office")
    assert api.get(invoice["invoice_id"])["paid"] == 0

    # A cash payment of 500.00 of the 2 000.00
    form.get_by_label("Amount").fill("500")
    form.get_by_label("Method").select_option("cash")
    form.get_by_label("Reference").fill("ПКО № 17")
    answer = _apply(page, "paid at the office")
    assert answer.startswith("Payment recorded:") and "by ops:anna" in answer, answer
    assert page.locator("#status").get_attribute("class") == "notice ok"
    assert api.get(invoice["invoice_id"])["paid"] == 50_000
    row.locator("text=recorded by hand").wait_for()  # how it was paid, in the Paid column
    assert row.get_attribute("data-state") == "partially_paid"
    assert "500.00 RUB" in row.locator("td.amount").nth(1).inner_text()
    assert row.locator("td.amount").nth(2).inner_text() == "1 500.00 RUB"
    assert on_one_line(page.locator("#invoices span.amount")) and fits_the_window(page)
    shot(page, "ops-2-payment-recorded")

    # Re-sync the deal
    row.get_by_role("button", name="Re-sync deal…").click()
    answer = _apply(page, "the manager moved the deal by hand")
    assert answer.startswith("Deal re-synced: 1 invoice(s) written to the deal again"), answer

    # A cancelled invoice of another deal gets a new link
    other = sandbox.new_deal(amount=30_000)
    cancelled = api.issue_awaiting(other["id"], amount=30_000)
    assert api.cancel(cancelled["invoice_id"], "wrong amount").status_code == 200
    _show_deal(page, other["id"])
    cancelled_row = page.locator(f"#inv-{cancelled['invoice_id']}")
    assert cancelled_row.get_attribute("data-state") == "cancelled"
    assert cancelled_row.get_by_role("button", name="Record payment…").count() == 1  # money may still come
    cancelled_row.get_by_role("button", name="Reissue link…").click()
    answer = _apply(page, "the client asked for a new link")
    assert answer.startswith("Link reissued: attempt 2"), answer
    api.wait(cancelled["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    shot(page, "ops-3-reissued")


def test_drift_check_and_bank_review_levers(http: httpx.Client, page: Any, unique: Callable[[str], str]) -> None:
    bank_api = Api(http, tenant="bank-shop")
    crm = Sandbox(http, tenant="bank-shop", crm_token="sandbox-crm-token-bank-shop")
    deal = crm.new_deal(amount=80_000)
    invoice = bank_api.issue_awaiting(deal["id"], amount=80_000)
    assign_fp, _ = review_line(http, 80_000, f"Оплата по договору {unique('d')}, без номера", unique("7"))
    dismiss_fp, _ = review_line(http, 12_345, f"Возврат займа {unique('z')}", unique("8"))

    page.goto(f"{http.base_url}/ops/")
    page.get_by_label("Your login (X-Actor)").fill("boris")
    page.get_by_label("Tenant").select_option("bank-shop")
    page.get_by_role("button", name="Load").click()
    page.wait_for_function("() => document.body.dataset.busy === '0'")
    line = page.locator(f"#line-{assign_fp}")
    line.wait_for()
    assert line.locator("td.amount").inner_text() == "800.00 RUB"
    shot(page, "ops-4-bank-review")

    # Drift: checked now, the report on top of the list
    answer = _answer(page, lambda: page.get_by_role("button", name="Check for drift now").click())
    assert answer.startswith("Drift check: ") and page.locator("#status.ok").is_visible(), answer
    assert "checked" in page.locator("#drift-list li.drift-report").first.inner_text()

    # Assign the 800.00 line to the invoice: it is paid and the line leaves the list
    line.get_by_role("button", name="Assign…").click()
    page.locator("#lever-row form").get_by_label("Invoice id").fill(invoice["invoice_id"])
    answer = _apply(page, "the client confirmed by phone")
    assert answer.startswith("Bank line decided:") and "by ops:boris" in answer, answer
    assert bank_api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")["paid"] == 80_000
    assert not in_review(http, assign_fp)
    line.wait_for(state="detached")

    # Dismiss the loan repayment
    page.locator(f"#line-{dismiss_fp}").get_by_role("button", name="Dismiss…").click()
    answer = _apply(page, "a loan repayment, not a sale")
    assert answer.startswith("Bank line decided:"), answer
    assert not in_review(http, dismiss_fp)
    page.locator(f"#line-{dismiss_fp}").wait_for(state="detached")
    assert fits_the_window(page)
    shot(page, "ops-5-bank-decided")
