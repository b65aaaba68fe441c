"""A person's erasure request over HTTP on the local stack: an ops key, a lever (Idempotency-Key, X-Actor, reason);
their closed invoices lose name, e-mail, phone and INN, money and history stay; open ones are named and kept; an
integration key gets 403 and bad input a 4xx problem, writing nothing."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Api, Sandbox, payment_id_of

OPS = {"x-api-key": "demo-ops-key", "x-actor": "dpo"}


def test_a_persons_request_erases_their_closed_invoices_and_names_the_open_ones(
    http: httpx.Client, sandbox: Sandbox, api: Api, unique: Any
) -> None:
    email = f"{unique('p')}@example.com"
    customer = {"name": "Пётр Иванов", "email": email, "inn": "500100732259"}
    # real deals of the sandbox CRM (a deal it does not know would park our writes on the outbox's DLQ)
    first, second = sandbox.new_deal(amount=10_000), sandbox.new_deal(amount=5_000)
    paid = api.create(deal_id=first["id"], number=unique("N"), amount=10_000, customer=customer).json()
    paid = api.wait(paid["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    assert sandbox.pay(payment_id_of(paid)).status_code == 200
    api.wait(paid["invoice_id"], lambda i: i["state"] == "paid")
    still_open = api.create(deal_id=second["id"], number=unique("N"), amount=5_000, customer=customer).json()
    body = {"email": email.upper(), "reason": "152-FZ request #3"}

    refused = http.post("/v1/demo/customers/erase", json=body, headers={**api.headers, "idempotency-key": "e-1"})
    assert refused.status_code in (401, 403)
    bad = http.post("/v1/demo/customers/erase", json={"reason": "x"}, headers={**OPS, "idempotency-key": "e-2"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    key = unique("erase")
    answer = http.post("/v1/demo/customers/erase", json=body, headers={**OPS, "idempotency-key": key})
    assert answer.status_code == 200, answer.text
    outcome = answer.json()
    assert [i["invoice_id"] for i in outcome["invoices"]] == [paid["invoice_id"]]
    assert still_open["invoice_id"] in outcome["detail"] and email.lower() not in answer.text.lower()

    from paybridge.domain.invoice import Customer
    from paybridge.wiring import get_repo  # the API shows no customer data: read the stored invoice

    stored = get_repo().get("demo", paid["invoice_id"])
    assert stored is not None and stored.customer == Customer() and stored.customer_erased_at is not None
    erased = api.get(paid["invoice_id"])
    assert erased["paid"] == 10_000 and erased["state"] == "paid"
    last = erased["history"][-1]
    assert last["event"] == "customer_erased" and last["actor"] == "ops:dpo" and "152-FZ" in last["detail"]
    kept = get_repo().get("demo", still_open["invoice_id"])
    assert kept is not None and kept.customer.email == email
    again = http.post("/v1/demo/customers/erase", json=body, headers={**OPS, "idempotency-key": key})
    assert again.status_code == 200 and again.json()["replayed"] is True
