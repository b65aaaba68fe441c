"""The HTTP API of `template.yaml` served locally: each request becomes an API Gateway HTTP API (payload 2.0) event
for the function the template routes it to, and the function's answer becomes the HTTP response."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from devstack.meter import METER
from devstack.template import Route

TEXT_TYPES = ("application/json", "text/")


class Gateway:
    def __init__(self, routes: list[Route], invoke: Callable[[str, dict[str, Any]], Any]):
        self._invoke = invoke
        # API Gateway matches the most specific route first: a literal segment wins over a {parameter}
        ordered = sorted(routes, key=lambda r: [part.startswith("{") for part in r.path.strip("/").split("/")])
        self._routes = [(route, _compile(route.path)) for route in ordered]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self._routes:
            found = pattern.fullmatch(path)
            if found and route.method == method:
                return route, found.groupdict()
        return None

    def handle(self, request: Request) -> Response | None:
        matched = self.match(request.method, request.path)
        if matched is None:
            return None
        route, params = matched
        METER.api_request(f"{route.method} {route.path}")
        event = to_event(request, route, params)
        result = self._invoke(route.function, event)
        return to_response(result)


def _compile(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)))


def to_event(request: Request, route: Route, params: dict[str, str]) -> dict[str, Any]:
    raw = request.get_data()
    content_type = request.headers.get("Content-Type", "")
    is_text = content_type.startswith(TEXT_TYPES) or not raw
    if is_text:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            is_text = False  # like API Gateway: a body that is not UTF-8 text reaches Lambda base64-encoded
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": f"{route.method} {route.path}",
        "rawPath": request.path,
        "rawQueryString": request.query_string.decode(),
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "queryStringParameters": dict(request.args) or None,
        "pathParameters": params,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": request.host,
            "domainPrefix": "local",
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{route.method} {route.path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": raw.decode("utf-8") if is_text else base64.b64encode(raw).decode(),
        "isBase64Encoded": not is_text,
    }


def to_response(result: dict[str, Any]) -> Response:
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    response = Response(data, status=result.get("statusCode", 200))
    for key, value in (result.get("headers") or {}).items():
        response.headers[key] = value
    for key, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(key, value)
    return response
