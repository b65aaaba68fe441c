"""Logger, Tracer and Metrics, created once and shared by every function."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

from paybridge import redaction

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="PayBridge")
# Secrets, API keys, tokens, e-mails and phones are masked in every line: ours, Powertools' and the HTTP client's
redaction.install(logging.getLogger(logger.name))
