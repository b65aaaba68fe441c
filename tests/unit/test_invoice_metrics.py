"""Metrics are counted where a change is applied: every paying path raises the same metrics, with the provider and
the method as dimensions and the tenant as a property (issue 12)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from paybridge.app.changes import Actor, InvoiceChanges
from paybridge.app.issuing import Issuing
from paybridge.app.metrics import RecordingMetrics
from paybridge.domain import messages
from paybridge.domain.events import Close, InvoiceEvent, MoneyReceived, PaidOutside, PaymentCreated
from paybridge.domain.invoice import Closure, InvoiceState, NewInvoice
from paybridge.http.models import InvoiceOut
from paybridge.observability import EmfInvoiceMetrics
from tests.unit.test_safe_expiry import CLOCK
from tests.unit.test_services_races import MemoryRepo, NoLifecycle, Tenants

PAID_METRICS = ["MoneyReceived", "MoneyReceivedAmount", "InvoicesPaid", "TimeToPay", "InvoicesPaidByIssueTime"]


def setup(metrics: RecordingMetrics) -> tuple[InvoiceChanges, str]:
    repo: Any = MemoryRepo()
    lifecycle: Any = NoLifecycle()
    later = CLOCK + timedelta(minutes=5)
    changes = InvoiceChanges(repo, lifecycle, lambda: later, metrics=metrics)
    issuing = Issuing(
        Tenants(), repo, lifecycle, lambda _t: _Psp(), lambda _t: None, None, lambda: CLOCK, metrics=metrics
    )  # type: ignore[arg-type]
    issued = issuing.issue_invoice("acme", NewInvoice(deal_id="7", number="7", amount=90_000, lifetime_seconds=60))
    changes.apply("acme", issued.invoice.invoice_id, PaymentCreated(payment_id="p1", payment_url="https://pay/p1"))
    return changes, issued.invoice.invoice_id


class _Psp:
    name = "sandbox"
    min_lifetime_seconds = 1
    max_lifetime_seconds = 10**7
    supports_partial_payments = True


PATHS: dict[str, tuple[InvoiceEvent, str]] = {
    "psp_notification": (MoneyReceived(ref="sandbox:op1", amount=90_000, method="card"), "card"),
    "recheck": (MoneyReceived(ref="sandbox:op1", amount=90_000, method="sbp"), "sbp"),
    "bank_line": (MoneyReceived(ref="bank:f1", amount=90_000, method="bank_transfer"), "bank_transfer"),
    "manual_lever": (PaidOutside(key="k1", amount=90_000, method="cash"), "manual"),
    "subscription_charge": (MoneyReceived(ref="charge:p1", amount=90_000, method="saved_method"), "saved_method"),
}


@pytest.fixture(autouse=True)
def _metrics_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs with `POWERTOOLS_METRICS_DISABLED` (tests/conftest.py); these read the EMF lines."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_paying_path_counts_the_same_metrics_with_provider_and_method(path: str) -> None:
    metrics = RecordingMetrics()
    changes, invoice_id = setup(metrics)
    assert metrics.names() == ["InvoicesIssued"]
    event, method = PATHS[path]
    change = changes.apply("acme", invoice_id, event, actor=Actor("ops:anna", "test"))
    assert change.invoice.state is InvoiceState.PAID
    paying = metrics.recorded[1:]
    assert [r.name for r in paying] == PAID_METRICS
    assert {(r.provider, r.method, r.tenant_id) for r in paying} == {("sandbox", method, "acme")}
    assert paying[1].value == 90_000 and paying[3].value == 300.0 and paying[3].unit == "Seconds"
    assert change.invoice.paid_by_method == {method: 90_000}
    assert InvoiceOut.of(change.invoice).paid_by_method == {method: 90_000}
    # a repeat changes nothing and counts nothing
    changes.apply("acme", invoice_id, event)
    assert len(metrics.recorded) == 1 + len(PAID_METRICS)


class _Both:
    """Records and prints (CloudWatch EMF on stdout) each metric."""

    def __init__(self) -> None:
        self.recording, self.emf = RecordingMetrics(), EmfInvoiceMetrics()

    def record(self, *args: Any, **kwargs: Any) -> None:
        self.recording.record(*args, **kwargs)
        self.emf.record(*args, **kwargs)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_paying_path_prints_the_same_emf_records(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    both = _Both()
    changes, invoice_id = setup(both.recording)
    changes.metrics = both
    capsys.readouterr()
    event, method = PATHS[path]
    changes.apply("acme", invoice_id, event)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = [r["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for r in printed]
    assert names == PAID_METRICS
    for record in printed:
        assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"], ["service", "provider", "method"]]
        assert (record["provider"], record["method"], record["tenant"]) == ("sandbox", method, "acme")
    by_name = dict(zip(names, printed, strict=True))
    assert by_name["TimeToPay"]["TimeToPay"] == 300.0
    # the cohort count is stamped with the invoice's issue time, the others with now
    assert by_name["InvoicesPaidByIssueTime"]["_aws"]["Timestamp"] == int(CLOCK.timestamp() * 1000)
    assert by_name["InvoicesPaid"]["_aws"]["Timestamp"] > int(CLOCK.timestamp() * 1000)


def test_a_part_payment_a_closure_and_the_timeline_name_the_method() -> None:
    metrics = RecordingMetrics()
    changes, invoice_id = setup(metrics)
    part = changes.apply("acme", invoice_id, MoneyReceived(ref="sandbox:a", amount=30_000, method="sbp")).invoice
    assert metrics.names()[-1] == "InvoicesPartiallyPaid"
    assert "получено через СБП" in messages.partially_paid(part)
    paid = changes.apply("acme", invoice_id, MoneyReceived(ref="bank:b", amount=60_000, method="bank_transfer"))
    assert "оплачен через СБП и банковским переводом" in messages.paid(paid.invoice)
    metrics2 = RecordingMetrics()
    changes2, other = setup(metrics2)
    changes2.apply("acme", other, Close(closure=Closure.EXPIRED, reason="link expired"))
    assert metrics2.names() == ["InvoicesIssued", "InvoicesExpired"]


def test_the_emf_record_has_provider_and_method_dimensions_and_the_tenant_as_a_property(
    capsys: pytest.CaptureFixture[str],
) -> None:
    EmfInvoiceMetrics().record("InvoicesPaid", 1, "Count", tenant_id="acme", provider="sandbox", method="card")
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "PayBridge"
    assert directive["Dimensions"] == [["service"], ["service", "provider", "method"]]
    assert directive["Metrics"] == [{"Name": "InvoicesPaid", "Unit": "Count"}]
    assert record["InvoicesPaid"] == 1 and record["tenant"] == "acme"
    assert (record["provider"], record["method"]) == ("sandbox", "card")
    assert all("tenant" not in dims for dims in directive["Dimensions"])


def test_with_metrics_disabled_the_emf_record_is_not_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    EmfInvoiceMetrics().record("InvoicesPaid", 1, "Count", tenant_id="acme", provider="sandbox", method="card")
    assert capsys.readouterr().out == ""
