"""Connections: every adapter's client shares one pool per process (`paybridge.adapters.http`), and the local stack's
server keeps connections open (`devstack.serving`) — over a real loopback socket."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from werkzeug.wrappers import Request

from devstack.serving import ClientPool, make_keepalive_server
from paybridge.adapters import http as adapters_http


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, int, bytes]]]]:
    """A loopback server that records (path, client port, body read) per request; `/ignore` never reads its body."""
    seen: list[tuple[str, int, bytes]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        body = b"" if path == "/ignore" else Request(environ).get_data()  # as the local stack reads bodies
        seen.append((path, int(environ["REMOTE_PORT"]), body))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    httpd = make_keepalive_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_one_connection_serves_many_requests_with_bodies_read_or_not(server: Any) -> None:
    url, seen = server
    with httpx.Client(base_url=url) as client:
        answers = [
            client.post("/read", content=b"x" * 5000),
            client.post("/ignore", content=b"left unread by the app"),  # must not become the next request's line
            client.get("/read"),
            client.post("/read", json={"amount": 100_000}),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert all(a.headers.get("connection") != "close" for a in answers)
    assert [path for path, _, _ in seen] == ["/read", "/ignore", "/read", "/read"]
    assert seen[0][2] == b"x" * 5000 and seen[3][2] == b'{"amount":100000}'
    assert len({port for _, port, _ in seen}) == 1  # one TCP connection for all four


def test_a_chunked_body_is_read_and_its_connection_closed(server: Any) -> None:
    url, seen = server
    with httpx.Client(base_url=url) as client:
        first = client.post("/read", content=iter([b"one,", b"two"]))  # a generator: Transfer-Encoding: chunked
        second = client.get("/read")
    assert (first.status_code, first.headers.get("connection")) == (200, "close")
    assert seen[0][2] == b"one,two"
    assert second.status_code == 200 and seen[1][1] != seen[0][1]  # a new connection after the closed one


def test_adapters_share_one_pool_that_no_client_can_close(server: Any) -> None:
    url, seen = server
    first = adapters_http.make_client(url, {"Authorization": "Bearer tenant-a"})
    second = adapters_http.make_client(url, {"Authorization": "Bearer tenant-b"})
    assert first._transport is second._transport is adapters_http.shared_transport()
    first.get("/read")
    with adapters_http.make_client(url) as third:  # closing a client leaves the shared pool open
        third.get("/read")
    second.get("/read")
    assert len(seen) == 3 and len({port for _, port, _ in seen}) == 1  # one connection across the three clients


def test_a_client_with_its_own_transport_keeps_it() -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(204))
    client = adapters_http.make_client("https://psp.example", transport=mock)
    assert client._transport is mock
    assert client.get("/ping").status_code == 204


def test_a_bad_content_length_gets_werkzeugs_answer_and_a_closed_connection(server: Any) -> None:
    import socket
    from urllib.parse import urlsplit

    url, _ = server
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as raw:
        raw.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\nbody")
        answer = b""
        while chunk := raw.recv(4096):  # the server closes: recv returns b"" instead of waiting for a next request
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 ") and b"Connection: close" in answer


def test_a_sandbox_client_pool_lends_one_client_per_request_in_flight_and_keeps_them(server: Any) -> None:
    """The sandboxes' pool (`ClientPool`): concurrent requests never share a client (so no request waits in a
    shared client's queue), and a client lent again reuses its kept connection."""
    url, seen = server
    pool = ClientPool(httpx.Timeout(5.0))
    lent: list[httpx.Client] = []
    with pool.client() as first, pool.client() as second:  # two requests in flight at once
        lent += [first, second]
        assert first is not second
        first.get(f"{url}/read")
        second.get(f"{url}/read")
    again = [pool.post(f"{url}/read", content=b"a"), pool.post(f"{url}/read", content=b"b")]
    assert [answer.status_code for answer in again] == [200, 200]
    with pool.client() as reused:
        assert reused in lent  # kept, not made anew
    ports = [port for _, port, _ in seen]
    assert len(set(ports)) == 2  # the two clients' two connections served all four requests
    assert ports[2] in ports[:2] and ports[3] in ports[:2]
    pool.close()
    with pool.client() as fresh:
        assert fresh not in lent  # closed clients are not lent again
