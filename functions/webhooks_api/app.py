"""HTTP API of a company's webhook endpoints (its `integration` API key): create one (its `whsec_` secret answered
this once), list, read, delete, its delivery log, and replay of its messages."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.http.auth import authenticate
from paybridge.http.entry import RoutePolicy, resolve
from paybridge.http.problems import register_problem_handlers
from paybridge.http.resolver import APIGatewayHttpResolver, Header, Path, Query, Response
from paybridge.http.responses import answers
from paybridge.http.webhook_models import (
    CreatedWebhookOut,
    CreateWebhookBody,
    DeliveriesOut,
    ReplayBody,
    ReplayOut,
    WebhookListOut,
    WebhookOut,
)
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_webhooks

app = APIGatewayHttpResolver(enable_validation=True)
register_problem_handlers(app)

JSON = "application/json"
BODY_PROBLEMS = (400, 413, 415)
ROUTES = {
    "POST /v1/{tenant}/webhooks": RoutePolicy(api_key=True, body="json"),
    "GET /v1/{tenant}/webhooks": RoutePolicy(api_key=True, body="none"),
    "GET /v1/{tenant}/webhooks/{endpoint_id}": RoutePolicy(api_key=True, body="none"),
    "DELETE /v1/{tenant}/webhooks/{endpoint_id}": RoutePolicy(api_key=True, body="none"),
    "GET /v1/{tenant}/webhooks/{endpoint_id}/deliveries": RoutePolicy(api_key=True, body="none"),
    "POST /v1/{tenant}/webhooks/{endpoint_id}/replay": RoutePolicy(api_key=True, body="json"),
}

TenantPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$", description="Tenant slug")]
EndpointPath = Annotated[str, Path(pattern=r"^ep_[a-z2-7]{26}$", description="Webhook endpoint id")]
ApiKey = Annotated[str | None, Header(alias="x-api-key", description="The tenant's API key")]


@app.post(
    "/v1/<tenant>/webhooks",
    summary="Register a webhook endpoint: the secret (whsec_…) is answered this once",
    responses=answers({201: ("the endpoint, with its secret", CreatedWebhookOut, JSON)}, *BODY_PROBLEMS, 409),
)
def handle_create_webhook(
    tenant: TenantPath, body: CreateWebhookBody, api_key: ApiKey = None
) -> Response[CreatedWebhookOut]:
    authenticate(tenant, api_key, "integration")
    endpoint = get_webhooks().create(tenant, body.url, body.event_types, body.description)
    return Response(status_code=201, content_type=JSON, body=CreatedWebhookOut.created(endpoint))


@app.get(
    "/v1/<tenant>/webhooks",
    summary="The tenant's webhook endpoints (without their secrets)",
    responses=answers({200: ("the endpoints", WebhookListOut, JSON)}),
)
def handle_list_webhooks(tenant: TenantPath, api_key: ApiKey = None) -> WebhookListOut:
    authenticate(tenant, api_key, "integration")
    return WebhookListOut(webhooks=[WebhookOut.of(e) for e in get_webhooks().endpoints(tenant)])


@app.get(
    "/v1/<tenant>/webhooks/<endpoint_id>",
    summary="One webhook endpoint and whether it is enabled",
    responses=answers({200: ("the endpoint", WebhookOut, JSON)}),
)
def handle_get_webhook(tenant: TenantPath, endpoint_id: EndpointPath, api_key: ApiKey = None) -> WebhookOut:
    authenticate(tenant, api_key, "integration")
    return WebhookOut.of(get_webhooks().get(tenant, endpoint_id))


@app.delete(
    "/v1/<tenant>/webhooks/<endpoint_id>",
    summary="Delete a webhook endpoint (messages still queued for it are dropped)",
    responses=answers({204: ("deleted", None, JSON)}),
)
def handle_delete_webhook(tenant: TenantPath, endpoint_id: EndpointPath, api_key: ApiKey = None) -> Response[str]:
    authenticate(tenant, api_key, "integration")
    get_webhooks().delete(tenant, endpoint_id)
    return Response(status_code=204, content_type=JSON, body="")


@app.get(
    "/v1/<tenant>/webhooks/<endpoint_id>/deliveries",
    summary="The endpoint's delivery log: every attempt, newest first (kept 30 days)",
    responses=answers({200: ("the attempts", DeliveriesOut, JSON)}),
)
def handle_webhook_deliveries(
    tenant: TenantPath,
    endpoint_id: EndpointPath,
    api_key: ApiKey = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveriesOut:
    authenticate(tenant, api_key, "integration")
    return DeliveriesOut(deliveries=get_webhooks().deliveries(tenant, endpoint_id, limit))


@app.post(
    "/v1/<tenant>/webhooks/<endpoint_id>/replay",
    summary="Send messages again (the same webhook-id): the named events, or those since a time; enables the endpoint",
    responses=answers({202: ("how many messages were queued", ReplayOut, JSON)}, *BODY_PROBLEMS),
)
def handle_replay_webhook(
    tenant: TenantPath, endpoint_id: EndpointPath, body: ReplayBody, api_key: ApiKey = None
) -> Response[ReplayOut]:
    authenticate(tenant, api_key, "integration")
    queued = get_webhooks().replay(tenant, endpoint_id, body.event_ids, body.since, body.only_failed)
    return Response(status_code=202, content_type=JSON, body=ReplayOut(queued=queued))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context, ROUTES)
