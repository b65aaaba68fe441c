"""The demo scenario with its domain events: a company's webhook receiver (here, in this process) is registered for
every event type, the payment scenario of `make demo` runs, the invoice is partly refunded and the provider's
notification is sent again (a duplicate); then the events published on the local bus for the invoice are counted
and the endpoint's delivery log is printed. Ends with one JSON line (`make demo-events`)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from devstack.demo import API_KEY, TENANT, DemoFailed, run_demo, run_on_local_stack, wait_for

ALL_TYPES = [
    "invoice.issued",
    "invoice.link_published",
    "payment.received",
    "invoice.paid",
    "invoice.partially_paid",
    "invoice.expired",
    "invoice.cancelled",
    "refund.succeeded",
    "subscription.charged",
    "subscription.blocked",
    "bank.line_needs_review",
    "drift.found",
]


class Receiver:
    """A company's receiver: verifies each delivery with the Standard Webhooks library, answers 204."""

    def __init__(self) -> None:
        self.secret = ""
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from standardwebhooks.webhooks import Webhook
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        try:
            payload = Webhook(self.secret).verify(request.get_data(), dict(request.headers))
        except Exception:
            return Response("bad signature", status=401)(environ, start_response)
        with self.lock:
            self.received.append(payload)
        return Response(status=204)(environ, start_response)


def run_events_demo(base_url: str, out: Callable[[str], None] = print) -> dict[str, Any]:
    from werkzeug.serving import make_server

    http = httpx.Client(base_url=base_url, timeout=30)
    headers = {"x-api-key": API_KEY}
    receiver = Receiver()
    server = make_server("127.0.0.1", 0, receiver, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/paybridge-events"
    created = http.post(f"/v1/{TENANT}/webhooks", json={"url": url, "event_types": ALL_TYPES}, headers=headers)
    if created.status_code != 201:
        raise DemoFailed(f"webhook endpoint not created: {created.status_code} {created.text}")
    endpoint = created.json()
    receiver.secret = endpoint["secret"]
    out(f"webhook endpoint {endpoint['endpoint_id']} -> {url} (secret {endpoint['secret'][:10]}…, shown once)")
    try:
        summary = run_demo(base_url, out)
        invoice_id = summary["invoice_id"]
        refund = http.post(
            f"/v1/{TENANT}/invoices/{invoice_id}/refunds",
            json={"amount": 1_000_000, "reason": "one item returned"},
            headers={**headers, "Idempotency-Key": f"demo-refund-{invoice_id}"},
        )
        if refund.status_code not in (200, 201):
            raise DemoFailed(f"refund refused: {refund.status_code} {refund.text}")
        out(f"partial refund of 10 000.00 RUB: {refund.json()['status']}")
        resent = _resend_payment_notification(http, invoice_id)
        out(f"the provider sent its payment notification again: answered {resent}")
        wanted = {"invoice.issued", "invoice.link_published", "payment.received", "invoice.paid", "refund.succeeded"}

        def delivered() -> list[dict[str, Any]] | None:
            with receiver.lock:
                mine = [e for e in receiver.received if e["subject"] == invoice_id]
            return mine if {e["type"] for e in mine} >= wanted else None

        got = wait_for("the webhook deliveries", delivered, timeout=20)
        time.sleep(1.0)  # a duplicate would arrive by now
        published = [e for e in http.get("/local/events").json()["events"] if e["subject"] == invoice_id]
        counts: dict[str, int] = {}
        for event in published:
            counts[event["type"]] = counts.get(event["type"], 0) + 1
        out("domain events published for the invoice: " + ", ".join(f"{k} ×{v}" for k, v in counts.items()))
        log = http.get(f"/v1/{TENANT}/webhooks/{endpoint['endpoint_id']}/deliveries", headers=headers).json()
        out("webhook delivery log (newest first):")
        for line in log["deliveries"]:
            if not line["event_id"].startswith(invoice_id):
                continue
            out(
                f"  {line['at'][11:23]}  attempt {line['attempt']}  {line['outcome']:<9}  HTTP {line['status_code']}"
                f"  {line['duration_ms']:>4} ms  {line['event_type']:<22} {line['event_id']}"
            )
        summary.update(
            events=counts,
            events_published=len(published),
            webhooks_received=len(got),
            webhooks_verified=len(got),
            duplicates=sum(v - 1 for v in counts.values()),
        )
        return summary
    finally:
        http.delete(f"/v1/{TENANT}/webhooks/{endpoint['endpoint_id']}", headers=headers)
        server.shutdown()


def _resend_payment_notification(http: httpx.Client, invoice_id: str) -> int:
    """The sandbox PSP's payment notification for the invoice, posted again as it was (a provider's duplicate)."""
    invoice = http.get(f"/v1/{TENANT}/invoices/{invoice_id}", headers={"x-api-key": API_KEY}).json()
    from paybridge.adapters.psp.sandbox import sign

    secret = "sandbox-psp-secret-demo"
    deliveries = http.get("/sandbox/psp/api/deliveries").json()
    sent = next(d for d in deliveries if d["payment_id"] == invoice["payment_id"] and d["type"] == "payment.succeeded")
    payment = http.get(f"/sandbox/psp/api/payments/{invoice['payment_id']}").json()
    operation = next(o for o in payment["operations"] if o["type"] == "payment.succeeded")
    body = json.dumps(
        {
            "event_id": sent["event_id"],
            "type": "payment.succeeded",
            "payment_id": invoice["payment_id"],
            "order_id": payment["order_id"],
            "operation_id": operation["id"],
            "amount": operation["amount"],
            "currency": invoice["currency"],
            "created": int(time.time()),
        }
    ).encode()
    answer = http.post(
        f"/psp/{TENANT}/sandbox",
        content=body,
        headers={"Content-Type": "application/json", "X-Sandbox-Signature": sign(secret, body)},
    )
    return answer.status_code


def main(argv: list[str]) -> int:
    return run_on_local_stack(run_events_demo, lambda s: s["deal_stage"] == "PAID" and s["duplicates"] == 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
