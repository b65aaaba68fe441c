"""The local stack's metrics: each thread (one invocation at a time) flushes only its own, and with metrics
disabled (the benchmarks) nothing piles up to be printed at Powertools' 100-values limit."""

from __future__ import annotations

import threading

import pytest


def test_with_metrics_disabled_no_invocation_prints_what_earlier_ones_added(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    from devstack.aws import _per_invocation_metrics
    from paybridge.observability import metrics

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setattr(metrics, "provider", metrics.provider)  # put the shared provider back afterwards
    _per_invocation_metrics()

    def invocations() -> None:
        for _ in range(150):  # 150 invocations on one thread, each adding one value and flushing
            metrics.add_metric(name="WebhookMessagesQueued", unit=MetricUnit.Count, value=0)
            metrics.flush_metrics(raise_on_empty_metrics=True)

    thread = threading.Thread(target=invocations)
    thread.start()
    thread.join()
    assert "WebhookMessagesQueued" not in capsys.readouterr().out
