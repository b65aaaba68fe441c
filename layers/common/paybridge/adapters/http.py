"""One place for how we speak HTTP to the outside: explicit timeouts, transport retries on connect errors only
(safe for any method), error mapping to our adapter errors, and one connection pool per process.

Adapters are built per invocation (per tenant, with that tenant's secrets), but what they speak through is not:
every client made here without a transport of its own shares the process's `SharedTransport`. So a warm Lambda
environment keeps its TLS connections to a provider across invocations (AWS's advice for Lambda: one TLS handshake
saved per call, ~50-150 ms to a provider across the internet), and builds one TLS context for its life — building
one loads the CA bundle, ~25 ms of CPU on the project's VM, which every adapter built per invocation used to pay."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from paybridge.adapters.errors import AdapterError

if TYPE_CHECKING:  # httpx is imported when a client is made: a handler that builds no adapter never loads it
    import httpx

#: seconds: the whole request, and the connection
TIMEOUT = (10.0, 3.0)
#: the shared pool: connections per process (Lambda runs one invocation at a time per environment; the local stack
#: runs many in one process) and how long an idle one is kept (providers' servers close theirs after 60-75 s)
MAX_CONNECTIONS, MAX_IDLE, IDLE_SECONDS = 200, 50, 30.0


def make_client(base_url: str, headers: dict[str, str] | None = None, transport: Any = None) -> httpx.Client:
    import httpx

    return httpx.Client(
        base_url=base_url,
        headers=headers or {},
        timeout=httpx.Timeout(TIMEOUT[0], connect=TIMEOUT[1]),
        transport=transport or shared_transport(),
    )


_BUILDING = threading.Lock()
_SHARED: list[httpx.BaseTransport] = []


def shared_transport() -> httpx.BaseTransport:
    """The process's one pool (thread-safe: httpcore locks it), behind a `close` that does nothing — one client
    closed (`with make_client(...)`) must not close every other's connections."""
    if not _SHARED:
        with _BUILDING:
            if not _SHARED:
                _SHARED.append(_build_shared())
    return _SHARED[0]


def _build_shared() -> httpx.BaseTransport:
    import httpx

    class SharedTransport(httpx.BaseTransport):
        def __init__(self) -> None:
            self._pool = httpx.HTTPTransport(
                retries=2,
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_IDLE, keepalive_expiry=IDLE_SECONDS
                ),
            )

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return self._pool.handle_request(request)

        def close(self) -> None:
            """The pool outlives any one client; the process's end closes its sockets."""

    return SharedTransport()


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    transient: type[AdapterError],
    permanent: type[AdapterError],
    **kwargs: Any,
) -> httpx.Response:
    """Send a request; raise `transient` on timeouts, connection errors, 429 and 5xx, `permanent` on other 4xx."""
    import httpx

    try:
        response = client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise transient(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise transient(f"{method} {url}: HTTP {response.status_code}: {response.text[:200]}")
    if response.status_code >= 400:
        raise permanent(f"{method} {url}: HTTP {response.status_code}: {response.text[:200]}")
    return response
