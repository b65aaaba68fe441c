"""The scripted scenario: a deal in the sandbox CRM gets an invoice, the link is paid at the sandbox PSP, and the
deal turns "Paid" with the payment in its timeline. Prints each step with its elapsed time and ends with one JSON
line summarising the outcome."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

TENANT = "demo"
API_KEY = "demo-api-key"
CRM_TOKEN = "sandbox-crm-token-demo"


class DemoFailed(Exception):
    pass


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise DemoFailed(f"timed out after {timeout}s waiting for {what}")


def run_demo(base_url: str, out: Callable[[str], None] = print, tenant: str = TENANT) -> dict[str, Any]:
    http = httpx.Client(base_url=base_url, timeout=30)
    crm = f"/sandbox/crm/{tenant}/api"
    crm_auth = {"Authorization": f"Bearer {CRM_TOKEN}"}
    started = time.monotonic()

    def step(text: str) -> None:
        out(f"[{time.monotonic() - started:7.3f}s] {text}")

    def deal_now(deal_id: str) -> dict[str, Any]:
        return dict(http.get(f"{crm}/deals/{deal_id}", headers=crm_auth).json())

    health = http.get("/health")
    if health.status_code != 200:
        raise DemoFailed(f"local stack not healthy at {base_url}: HTTP {health.status_code}")
    step(f"local stack is up at {base_url}")

    deal = http.post(
        f"{crm}/deals",
        headers=crm_auth,
        json={
            "title": "Демо: поставка оборудования",
            "amount": 12_345_600,
            "contact": {"name": "ООО Ромашка", "email": "buyer@example.com"},
        },
    ).json()
    step(f"sandbox CRM: deal #{deal['id']} '{deal['title']}' for 123 456.00 RUB, stage {deal['stage']}")

    issued = http.post(f"{crm}/deals/{deal['id']}/issue").json()
    if issued["webhook_status"] != 200:
        raise DemoFailed(f"the CRM webhook was answered {issued}")
    invoice_id = issued["answer"]["invoices"][0]["invoice_id"]
    step(f"manager clicked 'Issue invoice' -> CRM webhook -> invoice {invoice_id}")

    published = wait_for("the payment link in the deal", lambda: deal_now(deal["id"]).get("payment_url"))
    step(f"deal moved to {deal_now(deal['id'])['stage']}, payment link {published}")

    again = http.post(f"{crm}/deals/{deal['id']}/issue").json()
    same = again["answer"]["invoices"][0]["invoice_id"] == invoice_id
    step(f"repeated click -> {again['answer']['status']} (same invoice: {same})")

    payment_id = published.rsplit("/", 1)[-1]
    paid = http.post(f"/sandbox/psp/api/payments/{payment_id}/simulate", json={"action": "pay"}).json()
    step(f"client paid at the sandbox PSP checkout: payment {payment_id} {paid['status']}")

    def paid_in_timeline() -> dict[str, Any] | None:
        now = deal_now(deal["id"])
        ok = now["stage"] == "PAID" and any("оплачен" in entry["text"] for entry in now["timeline"])
        return now if ok else None

    final = wait_for("the deal to become PAID with the payment in its timeline", paid_in_timeline)
    step(f"deal stage is {final['stage']}; timeline: {final['timeline'][-1]['text']}")

    invoice = http.get(f"/v1/{tenant}/invoices/{invoice_id}", headers={"x-api-key": API_KEY}).json()
    step(f"API: invoice {invoice['state']}, paid {invoice['paid']} of {invoice['amount']} {invoice['currency']}")

    delivery = next(d for d in http.get("/sandbox/psp/api/deliveries").json() if d["event_id"] == paid["event_id"])
    stage_at = next(h["at"] for h in final["stage_history"] if h["stage"] == "PAID")
    summary = {
        "invoice_id": invoice_id,
        "final_state": invoice["state"],
        "deal_stage": final["stage"],
        "seconds_to_crm": round(stage_at - delivery["first_sent_at"], 3),
        "seconds_total": round(time.monotonic() - started, 3),
    }
    return summary


def run_on_local_stack(scenario: Callable[[str], dict[str, Any]], passed: Callable[[dict[str, Any]], bool]) -> int:
    """Run a scripted scenario against the local stack (starting one in this process if nothing answers), print its
    one-line JSON summary, and exit 0 when `passed(summary)`."""
    import os

    base_url = os.environ.get("PAYBRIDGE_URL") or f"http://127.0.0.1:{os.environ.get('PAYBRIDGE_PORT', '3000')}"
    stack = None
    try:
        httpx.get(f"{base_url}/health", timeout=1)
    except httpx.HTTPError:
        from devstack.stack import LocalStack

        print(f"no local stack at {base_url}: starting one in this process")
        stack = LocalStack(port=int(base_url.rsplit(":", 1)[-1])).start()
        base_url = stack.url
    try:
        summary = scenario(base_url)
    except DemoFailed as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if stack is not None:
            stack.stop()
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if passed(summary) else 1


def main(argv: list[str]) -> int:
    return run_on_local_stack(run_demo, lambda s: s["final_state"] == "paid" and s["deal_stage"] == "PAID")
