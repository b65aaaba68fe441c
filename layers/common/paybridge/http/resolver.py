"""The Powertools HTTP resolver and parameter markers the HTTP handlers use, from their own modules (the package's
`__init__` is deferred by paybridge.http). Import these names from here, not from
`aws_lambda_powertools.event_handler`: in a handler that import sorts before ours and would load every resolver."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import APIGatewayHttpResolver, ApiGatewayResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

__all__ = ["APIGatewayHttpResolver", "ApiGatewayResolver", "Header", "Path", "Query", "Response"]
