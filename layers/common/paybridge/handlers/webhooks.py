"""What the webhook handlers share: verification runs on the raw body and headers (signatures are over the exact
bytes sent), and every rejected signature is counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.metrics import MetricUnit

from paybridge.adapters.errors import InvalidSignature
from paybridge.observability import metrics

T = TypeVar("T")


def verified(app: APIGatewayHttpResolver, call: Callable[[dict[str, str], bytes], T]) -> T:
    """Run `call(headers, body)` on the raw request (API Gateway base64-encodes form bodies; decoded here)."""
    event = app.current_event
    body = event.decoded_body.encode() if event.decoded_body else b""
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    try:
        return call(headers, body)
    except InvalidSignature:
        metrics.add_metric(name="SignatureFailures", unit=MetricUnit.Count, value=1)
        raise
