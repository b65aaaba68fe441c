"""Integration on moto: the functions, the table built from template.yaml and the real ASL executed by moto's Step
Functions, asserted through get_execution_history. The sandbox PSP and CRM stand in for the outside world."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from paybridge.adapters.psp.sandbox import sign
from paybridge.app.errors import InvoiceNotFound
from paybridge.wiring import get_payment_events, get_repo, get_tenants
from tests.conftest import PSP_SECRET, Api, Sandbox, load_event, sandbox_notification


def wait_execution(stack: Any, invoice_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (execution := stack.aws.execution(invoice_id))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            raise AssertionError(f"execution still running: {stack.aws.entered_states(invoice_id)}")
        time.sleep(0.05)
    return execution


def signed_notification(invoice: dict[str, Any], amount: int, kind: str = "payment.succeeded") -> tuple[dict, bytes]:
    body = sandbox_notification(invoice, kind, amount)
    return {"x-sandbox-signature": sign(PSP_SECRET, body)}, body


# -- the sample events, through their handlers ---------------------------------------------------------------------


def test_sample_create_invoice_event_starts_the_lifecycle(stack: Any, unique: Any) -> None:
    event = load_event("invoices_api/create_invoice")
    body = json.loads(event["body"])
    body["number"] = unique("INV-")
    event["body"] = json.dumps(body)

    response = stack.aws.invoke("InvoicesApiFunction", event)

    assert response["statusCode"] == 201, response
    invoice = json.loads(response["body"])
    assert invoice["amount"] == 1_500_000 and invoice["state"] == "issued"
    execution = wait_execution(stack, invoice["invoice_id"])
    # The execution creates the payment, publishes the link and ends: the invoice waits in DynamoDB
    assert execution["status"] == "SUCCEEDED"
    assert stack.aws.entered_states(invoice["invoice_id"]) == ["Start", "CreatePayment"]
    assert json.loads(execution["output"])["outcome"]["state"] == "awaiting_payment"
    # The same request again answers 200 with the same invoice, and starts nothing new
    again = stack.aws.invoke("InvoicesApiFunction", event)
    assert again["statusCode"] == 200 and json.loads(again["body"])["invoice_id"] == invoice["invoice_id"]


def test_sample_get_event_for_unknown_invoice_is_a_404_problem(stack: Any) -> None:
    response = stack.aws.invoke("InvoicesApiFunction", load_event("invoices_api/get_invoice"))
    assert response["statusCode"] == 404
    problem = json.loads(response["body"])
    assert set(problem) >= {"type", "title", "status", "detail"} and problem["status"] == 404


@pytest.mark.parametrize(
    ("body", "key", "status"),
    [
        ({"deal_id": "1", "number": "1", "amount": 100.5}, "demo-api-key", 422),  # money is never a float
        ({"deal_id": "1", "number": "1", "amount": -5}, "demo-api-key", 422),
        ({"deal_id": "1", "number": "1", "amount": 100, "currency": "rub"}, "demo-api-key", 422),
        ({"deal_id": "1", "number": "1", "amount": 100, "extra": 1}, "demo-api-key", 422),
        ({"deal_id": "1", "number": "1", "amount": 100}, "wrong-key", 401),
        ({"deal_id": "1", "number": "1", "amount": 100}, None, 401),
    ],
)
def test_bad_create_requests_get_problems_and_write_nothing(
    stack: Any, body: dict[str, Any], key: str | None, status: int
) -> None:
    event = load_event("invoices_api/create_invoice")
    event["body"] = json.dumps(body)
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "x-api-key"}
    if key:
        event["headers"]["x-api-key"] = key
    response = stack.aws.invoke("InvoicesApiFunction", event)
    assert response["statusCode"] == status, response
    assert json.loads(response["body"])["status"] == status
    assert get_repo().get("demo", "inv_" + "a" * 26) is None


def test_sample_refund_event_for_an_unknown_invoice_is_a_404_and_without_a_key_a_422(stack: Any) -> None:
    event = load_event("invoices_api/refund_invoice")
    response = stack.aws.invoke("InvoicesApiFunction", event)
    assert response["statusCode"] == 404 and json.loads(response["body"])["type"].endswith("/invoice-not-found")
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "idempotency-key"}
    response = stack.aws.invoke("InvoicesApiFunction", event)
    assert response["statusCode"] == 422 and "idempotency-key" in json.loads(response["body"])["detail"]


def test_sample_psp_event_with_a_forged_signature_is_401(stack: Any) -> None:
    response = stack.aws.invoke("PspWebhookFunction", load_event("psp_webhook/sandbox_payment_succeeded"))
    assert response["statusCode"] == 401


def test_sample_tbank_event_is_verified_then_refused_as_not_ours_and_tampered_is_401(stack: Any) -> None:
    event = load_event("psp_webhook/tbank_confirmed")
    # Signed with the local terminal password: the Token checks out, the payment is unknown to us
    response = stack.aws.invoke("PspWebhookFunction", event)
    assert response["statusCode"] == 404 and json.loads(response["body"])["type"].endswith("/unknown-payment")
    tampered = json.loads(event["body"]) | {"Amount": 1}
    response = stack.aws.invoke("PspWebhookFunction", {**event, "body": json.dumps(tampered)})
    assert response["statusCode"] == 401


def test_sample_yookassa_event_naming_a_payment_yookassa_never_made_is_401(stack: Any) -> None:
    # Unsigned by design: the object is re-fetched from the (local fake) API, which does not know it
    response = stack.aws.invoke("PspWebhookFunction", load_event("psp_webhook/yookassa_payment_succeeded"))
    assert response["statusCode"] == 401


def test_sample_stripe_event_is_genuinely_signed_but_stale(stack: Any) -> None:
    from paybridge.adapters.psp.stripe import verify

    event = load_event("psp_webhook/stripe_checkout_completed")
    signed_at = int(event["headers"]["stripe-signature"].split(",")[0].removeprefix("t="))
    verify("whsec_paybridge_local", event["body"].encode(), event["headers"]["stripe-signature"], now=signed_at + 60)
    response = stack.aws.invoke("PspWebhookFunction", event)
    assert response["statusCode"] == 401  # signed on 2026-11-23, far outside the 300 s tolerance


def test_sample_crm_event_issues_an_invoice_for_the_deal(stack: Any) -> None:
    response = stack.aws.invoke("CrmWebhookFunction", load_event("crm_webhook/sandbox_issue_invoice"))
    assert response["statusCode"] == 200
    answer = json.loads(response["body"])
    assert answer["status"] in ("issued", "exists") and answer["invoices"][0]["invoice_id"].startswith("inv_")


def test_crm_event_with_a_wrong_token_is_401_and_issues_nothing(stack: Any) -> None:
    event = load_event("crm_webhook/sandbox_issue_invoice")
    form = base64.b64decode(event["body"]).decode().replace("sandbox-crm-token-demo", "forged-token-123")
    event["body"] = base64.b64encode(form.encode()).decode()
    response = stack.aws.invoke("CrmWebhookFunction", event)
    assert response["statusCode"] == 401


@pytest.mark.parametrize("name", ["create_payment", "expire_invoice", "mark_failed"])
def test_sample_lifecycle_events_for_an_unknown_invoice_raise_a_named_error(stack: Any, name: str) -> None:
    event = load_event(f"lifecycle/{name}", invoice_id="inv_" + "b" * 26)
    with pytest.raises(InvoiceNotFound):
        stack.aws.invoke(
            {
                "create_payment": "CreatePaymentFunction",
                "expire_invoice": "ExpireInvoiceFunction",
                "mark_failed": "MarkFailedFunction",
            }[name],
            event,
        )


def test_stuck_invoice_sweep_runs_on_the_sample_schedule_event(stack: Any) -> None:
    result = stack.aws.invoke("StuckInvoicesFunction", load_event("schedule/stuck_invoices"))
    assert result == {"stuck": []}


# -- the lifecycle's hard cases ------------------------------------------------------------------------------------


def billed_transitions_of(stack: Any, invoice_id: str) -> tuple[int, dict[str, list[str]]]:
    """Step Functions' billed transitions over every execution of the invoice (every state entered, every retry),
    from their histories."""
    import boto3

    from devstack.meter import billed_transitions

    client = boto3.client("stepfunctions")
    names = [
        e["name"]
        for page in client.get_paginator("list_executions").paginate(stateMachineArn=stack.aws.state_machine_arn)
        for e in page["executions"]
        if e["name"].startswith(invoice_id)
    ]
    return sum(billed_transitions(stack.aws.history(n)) for n in names), {n: stack.aws.entered_states(n) for n in names}


def test_a_paid_invoice_takes_at_most_four_billed_transitions_and_its_deal_shows_every_step(
    stack: Any, sandbox: Sandbox, api: Api
) -> None:
    deal = sandbox.new_deal(amount=42_000)
    invoice = api.issue_awaiting(deal["id"], amount=42_000)
    wait_execution(stack, invoice["invoice_id"])
    # Paid in two parts, then refunded in part after its lifecycle is over
    for amount in (12_000, 30_000):
        headers, body = signed_notification(invoice, amount)
        get_payment_events().accept_psp_notification("demo", "sandbox", headers, body)
    paid = api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")
    assert paid["paid"] == 42_000
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    headers, body = signed_notification(invoice, 2_000, kind="refund.succeeded")
    get_payment_events().accept_psp_notification("demo", "sandbox", headers, body)
    api.wait(invoice["invoice_id"], lambda i: i["state"] == "partially_refunded")
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PARTIALLY_REFUNDED")

    transitions, executions = billed_transitions_of(stack, invoice["invoice_id"])
    assert executions == {invoice["invoice_id"]: ["Start", "CreatePayment"]}  # nothing waits, nothing republishes
    assert transitions <= 4
    stages = [h["stage"] for h in sandbox.deal(deal["id"])["stage_history"]]
    assert stages[-4:] == ["AWAITING_PAYMENT", "PARTIALLY_PAID", "PAID", "PARTIALLY_REFUNDED"]


def test_money_while_the_payment_is_being_created_ends_paid_and_the_deal_is_not_moved_back(
    stack: Any, sandbox: Sandbox, api: Api
) -> None:
    from paybridge.domain.invoice import invoice_id_for
    from paybridge.wiring import get_reminders

    deal = sandbox.new_deal(amount=42_000)
    target = invoice_id_for("demo", str(deal["id"]), f"R-{deal['id']}")
    # Given the money is notified right after the link is stored, before the creating task publishes it
    reminders = get_reminders()
    original = reminders.link_published
    paid_during_create = {}

    def then_paid(tenant: Any, invoice: Any, at: Any) -> None:
        original(tenant, invoice, at)
        if invoice.invoice_id == target and not paid_during_create:
            headers, body = signed_notification(invoice.model_dump(), invoice.amount)
            result = get_payment_events().accept_psp_notification("demo", "sandbox", headers, body)
            paid_during_create["state"] = result.invoice.state.value if result.invoice else None

    reminders.link_published = then_paid  # type: ignore[method-assign]
    try:
        created = api.create(deal_id=deal["id"], number=f"R-{deal['id']}", amount=42_000).json()
        execution = wait_execution(stack, created["invoice_id"])
    finally:
        reminders.link_published = original  # type: ignore[method-assign]
    # Then the invoice is paid, the deal is PAID and stays there: the older link update was never queued after it
    assert created["invoice_id"] == target and paid_during_create["state"] == "paid"
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["outcome"]["state"] == "paid"
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    time.sleep(1.0)  # the outbox has long drained: nothing older lands after
    settled = sandbox.deal(deal["id"])
    assert settled["stage"] == "PAID" and settled["stage_history"][-1]["stage"] == "PAID"
    assert api.get(created["invoice_id"])["state"] == "paid"


def test_an_outbox_that_cannot_take_the_link_is_retried_and_the_invoice_is_not_failed(
    stack: Any, sandbox: Sandbox, api: Api
) -> None:
    from paybridge.adapters.errors import OutboxUnavailable
    from paybridge.domain.invoice import invoice_id_for
    from paybridge.wiring import get_outbox

    outbox, failures = get_outbox(), {"left": 1}
    publish = outbox.publish
    deal = sandbox.new_deal(amount=14_000)
    ours = invoice_id_for("demo", str(deal["id"]), f"O-{deal['id']}")

    def flaky(message: Any) -> None:
        # only this invoice's write fails (an earlier test's lifecycle may still be publishing meanwhile)
        if failures["left"] and getattr(message, "invoice_id", None) == ours:
            failures["left"] -= 1
            raise OutboxUnavailable("CRM outbox: throttled")
        publish(message)

    outbox.publish = flaky  # type: ignore[method-assign]
    try:
        created = api.create(deal_id=deal["id"], number=f"O-{deal['id']}", amount=14_000).json()
        execution = wait_execution(stack, created["invoice_id"])
    finally:
        outbox.publish = publish  # type: ignore[method-assign]
    assert execution["status"] == "SUCCEEDED"
    errors = [
        e["taskFailedEventDetails"]["error"]
        for e in stack.aws.history(created["invoice_id"])
        if e["type"] == "TaskFailed"
    ]
    assert errors == ["OutboxUnavailable"]
    assert "MarkFailed" not in stack.aws.entered_states(created["invoice_id"])
    assert len(stack.psp.payments_for_order(created["invoice_id"])) == 1  # the retry made no second payment
    published = sandbox.wait_deal(deal["id"], lambda d: bool(d["payment_url"]))
    assert published["stage"] == "AWAITING_PAYMENT"


def test_transient_psp_failure_on_create_is_retried_and_makes_one_payment(
    stack: Any, sandbox: Sandbox, api: Api
) -> None:
    # Given the PSP creates the payment but its answer is lost (503) once
    sandbox.http.post("/sandbox/psp/api/faults", json={"create_error": 1})
    deal = sandbox.new_deal(amount=11_000)
    invoice = api.issue_awaiting(deal["id"], amount=11_000)
    # Then the retry (same idempotency key) got the same payment: exactly one at the PSP
    assert len(stack.psp.payments_for_order(invoice["invoice_id"])) == 1
    history = stack.aws.history(invoice["invoice_id"])
    failures = [e for e in history if e["type"] == "TaskFailed"]
    assert len(failures) == 1 and failures[0]["taskFailedEventDetails"]["error"] == "ProviderUnavailable"


def test_permanent_psp_refusal_fails_the_invoice_and_tells_the_manager(stack: Any, sandbox: Sandbox, api: Api) -> None:
    sandbox.http.post("/sandbox/psp/api/faults", json={"create_reject": 1})
    deal = sandbox.new_deal(amount=12_000)
    created = api.create(deal_id=deal["id"], number=f"F-{deal['id']}", amount=12_000).json()
    execution = wait_execution(stack, created["invoice_id"])
    assert execution["status"] == "SUCCEEDED"
    assert "MarkFailed" in stack.aws.entered_states(created["invoice_id"])
    # The outbox applies the stage, then the comment, then the notice: wait for all of them
    failed = sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "FAILED" and d["notifications"])
    assert "terminal is blocked" in failed["notifications"][-1]["text"]
    assert api.get(created["invoice_id"])["state"] == "failed"


def test_crm_outage_is_absorbed_by_the_outbox_and_the_link_lands_once(stack: Any, sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=13_000)
    outage_until = sandbox.http.post("/sandbox/crm/demo/api/faults", json={"unavailable_for": 2.5}).json()[
        "unavailable_until"
    ]
    created = api.create(deal_id=deal["id"], number=f"C-{deal['id']}", amount=13_000).json()
    # The lifecycle does not wait for the CRM: CreatePayment only puts the update on the outbox, and ends
    assert wait_execution(stack, created["invoice_id"])["status"] == "SUCCEEDED"
    assert not any(e["type"] == "TaskFailed" for e in stack.aws.history(created["invoice_id"]))
    # The outbox retries (5 s, 10 s …) until the CRM is back; the update lands once, whole
    published = sandbox.wait_deal(deal["id"], lambda d: bool(d["payment_url"]) and bool(d["timeline"]), timeout=30)
    assert published["stage"] == "AWAITING_PAYMENT"
    assert time.time() >= outage_until  # it landed only once the CRM was back
    assert [e["text"].startswith("PayBridge: выставлен счёт") for e in published["timeline"]] == [True]


# -- concurrency, on the services directly (real threads against moto's DynamoDB) -----------------------------------


def test_concurrent_duplicates_and_distinct_parts_count_exactly(sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=100_000)
    invoice = api.issue_awaiting(deal["id"], amount=100_000)
    services = get_payment_events()
    duplicate = signed_notification(invoice, 5_000)
    parts = [signed_notification(invoice, 5_000) for _ in range(19)]
    deliveries = [duplicate] * 30 + parts

    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(lambda d: services.accept_psp_notification("demo", "sandbox", *d), deliveries))

    assert all(r.acknowledgement.body == "OK" for r in results)
    assert sum(r.duplicate for r in results) == 29
    final = api.wait(invoice["invoice_id"], lambda i: i["paid"] == 100_000)
    assert final["state"] == "paid"
    assert [h["event"] for h in final["history"]].count("money_received") == 20


def test_openapi_document_is_current() -> None:
    from scripts.openapi import ROOT, generate

    assert (ROOT / "openapi.json").read_text(encoding="utf-8") == generate(), "openapi.json is stale: make openapi"


def test_table_in_moto_comes_from_the_template(stack: Any) -> None:
    import boto3

    from paybridge.storage import table as dynamodb  # the index names live with the table

    table = boto3.client("dynamodb").describe_table(TableName=stack.aws.table_name)["Table"]
    indexes = {i["IndexName"] for i in table["GlobalSecondaryIndexes"]}
    assert {dynamodb.GSI_BY_PAYMENT, dynamodb.GSI_OPEN_BY_DUE} <= indexes
    assert table["KeySchema"] == stack.aws.template.table()["KeySchema"]


def test_tenant_config_items_in_the_table_round_trip(stack: Any) -> None:
    from paybridge.storage.tenants import DynamoTenantDirectory
    from paybridge.tenants import TenantNotFound

    # Given the shipped demo tenant stored as a table item (the deployed source of tenants)
    directory = DynamoTenantDirectory(stack.aws.table_name)
    demo = get_tenants().get("demo")
    directory.put(demo)
    # Then a fresh directory reads back the same, validated config, and an unknown tenant is a TenantNotFound
    assert DynamoTenantDirectory(stack.aws.table_name).get("demo") == demo
    with pytest.raises(TenantNotFound):
        directory.get("nobody")
