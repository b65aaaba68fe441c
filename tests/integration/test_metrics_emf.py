"""The invoice metrics as the functions really print them (CloudWatch EMF on stdout): a PSP notification through its
handler and a bank transfer count the same metrics, with provider and method as dimensions and the tenant as a
property (issue 12)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from paybridge.domain.events import MoneyReceived
from paybridge.storage.repository import ProviderEventRecord
from paybridge.wiring import get_payment_events
from tests.conftest import Api, Sandbox, load_event
from tests.integration.test_lifecycle_on_moto import signed_notification


def emf_records(out: str, invoice_metric_names: set[str]) -> list[dict[str, Any]]:
    records = []
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        record = json.loads(line)
        names = {m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        if names & invoice_metric_names:
            records.append(record)
    return records


PAID = {"MoneyReceived", "MoneyReceivedAmount", "InvoicesPaid", "TimeToPay", "InvoicesPaidByIssueTime"}


@pytest.fixture(autouse=True)
def _metrics_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs with `POWERTOOLS_METRICS_DISABLED` (tests/conftest.py); these read the EMF lines."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


def paid_records(out: str) -> dict[str, dict[str, Any]]:
    return {r["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]: r for r in emf_records(out, PAID)}


def test_a_psp_notification_and_a_bank_transfer_print_the_same_metrics(
    stack: Any, sandbox: Sandbox, api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    deal = sandbox.new_deal(amount=100_000)
    invoice = api.issue_awaiting(deal["id"], amount=100_000)
    headers, body = signed_notification(invoice, 100_000)
    event = load_event("psp_webhook/sandbox_payment_succeeded")
    event["headers"] = {**event["headers"], **headers, "content-length": str(len(body))}
    event["body"] = body.decode()
    capsys.readouterr()
    response = stack.aws.invoke("PspWebhookFunction", event)
    assert response["statusCode"] == 200, response
    by_psp = paid_records(capsys.readouterr().out)

    other = api.issue_awaiting(sandbox.new_deal(amount=100_000)["id"], amount=100_000)
    money = MoneyReceived(ref="bank:emf-test", amount=100_000, method="bank_transfer")
    record = ProviderEventRecord(
        provider="bank",
        event_id=f"emf-test:{other['invoice_id']}",
        tenant_id="demo",
        invoice_id=other["invoice_id"],
        summary="bank line",
    )
    get_payment_events().apply_money("demo", other["invoice_id"], money, record)
    by_bank = paid_records(capsys.readouterr().out)

    assert set(by_psp) == set(by_bank) == PAID
    for records, method in ((by_psp, "card"), (by_bank, "bank_transfer")):
        for name, printed in records.items():
            directive = printed["_aws"]["CloudWatchMetrics"][0]
            assert directive["Namespace"] == "PayBridge"
            assert directive["Dimensions"] == [["service"], ["service", "provider", "method"]]
            assert (printed["provider"], printed["method"], printed["tenant"]) == ("sandbox", method, "demo")
            assert all("tenant" not in dims for dims in directive["Dimensions"]), name
    assert by_bank["MoneyReceivedAmount"]["MoneyReceivedAmount"] == 100_000
