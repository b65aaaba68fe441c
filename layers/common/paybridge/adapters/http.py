"""One place for how we speak HTTP to the outside: explicit timeouts, transport retries on connect errors only
(safe for any method), and error mapping to our adapter errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paybridge.adapters.errors import AdapterError

if TYPE_CHECKING:  # httpx is imported when a client is made: a handler that builds no adapter never loads it
    import httpx

#: seconds: the whole request, and the connection
TIMEOUT = (10.0, 3.0)


def make_client(base_url: str, headers: dict[str, str] | None = None, transport: Any = None) -> httpx.Client:
    import httpx

    return httpx.Client(
        base_url=base_url,
        headers=headers or {},
        timeout=httpx.Timeout(TIMEOUT[0], connect=TIMEOUT[1]),
        transport=transport or httpx.HTTPTransport(retries=2),
    )


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
