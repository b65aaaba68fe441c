"""The local stack's metrics: each thread (one invocation at a time) flushes only its own, through the decorator a
handler got when its module was imported (on whichever thread), and with metrics disabled (the benchmarks) nothing
piles up to be printed at Powertools' 100-values limit."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit


@pytest.fixture
def local_metrics(monkeypatch: pytest.MonkeyPatch) -> Any:
    from devstack.aws import _per_invocation_metrics
    from paybridge.observability import metrics

    monkeypatch.setattr(metrics, "provider", metrics.provider)  # the shared provider back afterwards
    _per_invocation_metrics()
    _per_invocation_metrics()  # idempotent
    return metrics


def _handler(metrics: Any, value: float) -> Callable[[dict[str, Any], Any], None]:
    @metrics.log_metrics(raise_on_empty_metrics=False)
    def handler(event: dict[str, Any], context: Any) -> None:
        metrics.add_metric(name="WebhookMessagesQueued", unit=MetricUnit.Count, value=value)

    return handler


def _on_threads(*targets: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_each_invocation_flushes_its_own_metrics_through_the_decorator_bound_at_import(
    local_metrics: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    handler = _handler(local_metrics, 1)  # decorated here, as a module imported on the main thread

    def invocations() -> None:
        for _ in range(5):
            handler({}, None)

    _on_threads(invocations, invocations)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "WebhookMessagesQueued" in line]
    assert [line["WebhookMessagesQueued"] for line in lines] == [[1.0]] * 10  # one value per invocation, none lost


def test_with_metrics_disabled_no_invocation_prints_what_earlier_ones_added(
    local_metrics: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    handler = _handler(local_metrics, 0)

    def invocations() -> None:
        for _ in range(150):  # 150 invocations on one thread, each adding one value
            handler({}, None)

    _on_threads(invocations)
    assert "WebhookMessagesQueued" not in capsys.readouterr().out
