"""Logger, Tracer and Metrics, created once and shared by every function.

The tracer costs nothing until it is used. Traces come from Lambda's active tracing (`Tracing: Active` in the
template: every invocation's segment, its initialisation and errors, and the service map through API Gateway, Step
Functions and Lambda), which needs no SDK in the function. Powertools' Tracer adds subsegments through the X-Ray
SDK (`aws_xray_sdk`), whose import is about half of a handler's cold start (and brings a botocore of its own), so it
is loaded only at a handler's first call, and only when tracing is on (`POWERTOOLS_TRACE_DISABLED` not set) and the
SDK is installed: the layer does not ship it; a deployment that wants subsegments adds `aws-xray-sdk` to the
layer's lock file.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from paybridge import redaction

if TYPE_CHECKING:
    from datetime import datetime

F = TypeVar("F", bound=Callable[..., Any])

_TRUE = ("1", "true", "yes", "on")


class LazyTracer:
    """The subset of Powertools' `Tracer` the functions use, resolved at first use: the real Tracer when tracing is
    on and `aws_xray_sdk` is importable, else nothing at all (the handler is called as it is)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._tracer: Any = None
        self._resolved = False

    @staticmethod
    def wanted() -> bool:
        if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in _TRUE:
            return False
        return importlib.util.find_spec("aws_xray_sdk") is not None

    @property
    def tracer(self) -> Any:
        """The Powertools Tracer, or None when tracing is off or the X-Ray SDK is not installed."""
        if not self._resolved:
            if self.wanted():
                from aws_lambda_powertools import Tracer

                self._tracer = Tracer(**self._options)
            self._resolved = True
        return self._tracer

    def capture_lambda_handler(
        self,
        lambda_handler: F | None = None,
        *,
        capture_response: bool | None = None,
        capture_error: bool | None = None,
    ) -> Any:
        if lambda_handler is None:
            return functools.partial(
                self.capture_lambda_handler, capture_response=capture_response, capture_error=capture_error
            )
        handler = lambda_handler
        wrapped: list[Callable[..., Any]] = []

        @functools.wraps(handler)
        def traced(event: Any, context: Any, **kwargs: Any) -> Any:
            if not wrapped:
                tracer = self.tracer
                wrapped.append(
                    handler
                    if tracer is None
                    else tracer.capture_lambda_handler(
                        handler, capture_response=capture_response, capture_error=capture_error
                    )
                )
            return wrapped[0](event, context, **kwargs)

        return traced

    def capture_method(self, method: F | None = None, *, capture_response: bool | None = None) -> Any:
        if method is None:
            return functools.partial(self.capture_method, capture_response=capture_response)
        target = method
        wrapped: list[Callable[..., Any]] = []

        @functools.wraps(target)
        def traced(*args: Any, **kwargs: Any) -> Any:
            if not wrapped:
                tracer = self.tracer
                wrapped.append(
                    target if tracer is None else tracer.capture_method(target, capture_response=capture_response)
                )
            return wrapped[0](*args, **kwargs)

        return traced

    def put_annotation(self, key: str, value: str | int | float | bool) -> None:
        if self.tracer is not None:
            self.tracer.put_annotation(key=key, value=value)

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        if self.tracer is not None:
            self.tracer.put_metadata(key=key, value=value, namespace=namespace)


logger = Logger()
tracer = LazyTracer()
metrics = Metrics(namespace="PayBridge")
# Secrets, API keys, tokens, e-mails and phones are masked in every line: ours, Powertools' and the HTTP client's
redaction.install(logging.getLogger(logger.name))


class EmfInvoiceMetrics:
    """`app.metrics.InvoiceMetrics` as CloudWatch EMF, one record per metric (flushed at once, so a metric counted by
    a schedule or a queue consumer is never lost with its invocation's batch). Each record carries two dimension
    sets: `service` (what the alarms and the dashboard read) and `service, provider, method`; the tenant is a
    property of the record, never a dimension."""

    def __init__(self, namespace: str = "PayBridge") -> None:
        self.namespace = namespace

    def record(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        tenant_id: str,
        provider: str,
        method: str,
        at: datetime | None = None,
    ) -> None:
        if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED, as for every other metric
            return
        service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "paybridge"
        document = {
            "_aws": {
                "Timestamp": int((at.timestamp() if at is not None else time.time()) * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [["service"], ["service", "provider", "method"]],
                        "Metrics": [{"Name": name, "Unit": unit}],
                    }
                ],
            },
            "service": service,
            "provider": provider,
            "method": method,
            "tenant": tenant_id,
            name: value,
        }
        print(json.dumps(document, separators=(",", ":")), flush=True)
