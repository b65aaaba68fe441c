"""Swagger UI for the API on the local stack, reached from the index page as a newcomer would: it renders the
repository's openapi.json (served without a CDN), lists the routes, and "Try it out" calls this very stack."""

from __future__ import annotations

from typing import Any

import httpx

from tests.browser.conftest import shot


def test_the_index_links_to_swagger_ui_which_documents_and_calls_the_api(http: httpx.Client, page: Any) -> None:
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(str(http.base_url)) else None)
    page.goto(f"{http.base_url}/")
    assert page.get_by_role("link", name="Ops console").is_visible()
    shot(page, "index")
    page.get_by_role("link", name="API reference (Swagger UI)").click()

    page.locator(".swagger-ui .info .title").wait_for()
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("PayBridge API")
    operation = page.locator(".opblock").filter(has_text="/v1/{tenant}/invoices/{invoice_id}/recheck")
    assert operation.count() == 1
    assert page.locator(".opblock").count() == sum(
        len(v) for v in httpx.get(f"{http.base_url}/openapi.json").json()["paths"].values()
    )
    shot(page, "swagger-1-routes", full_page=False)

    # Try it out: GET the drift list of `demo` with the ops key, against this stack
    drift = page.locator(".opblock-get").filter(has_text="/v1/{tenant}/drift")
    drift.locator(".opblock-summary").click()
    drift.get_by_role("button", name="Try it out").click()
    drift.locator("input[placeholder='tenant']").fill("demo")
    drift.locator("input[placeholder='x-api-key']").fill("demo-ops-key")
    drift.get_by_role("button", name="Execute").click()
    status = drift.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert '"reports"' in drift.locator(".responses-table.live-responses-table .microlight").first.inner_text()
    drift.locator(".live-responses-table").scroll_into_view_if_needed()
    shot(page, "swagger-2-try-it-out", full_page=False)
    assert outside == [], f"the page reached outside the stack: {outside}"
