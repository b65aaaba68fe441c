"""The local stack's HTTP server: werkzeug's threaded dev server, with keep-alive connections.

werkzeug's server closes every connection (`Connection: close`): `http.server` cannot tell where a request body the
application left unread ends, so werkzeug drains whatever is on the socket after each response, which would eat the
next request of a kept connection. Here the body (its `Content-Length`) is read before the application runs and
handed to it as `wsgi.input`; the drain then reads that (already empty) copy, never the socket, and the connection
stays open as at API Gateway, a PSP or a CRM. A chunked request body keeps werkzeug's behaviour (closed after the
response); our clients send lengths.

Why: every request inside the local stack (a PSP's notification, a CRM call from a consumer, a fake portal's
outbound webhook, a benchmark's client) paid a TCP connect, a new server thread, a selector and a close — with 200
payments at once about a quarter of the stack's CPU (py-spy). A connection still gets its own thread (a handler
may call back into this server, e.g. a CRM webhook whose handler reads the deal from the sandbox CRM: a fixed pool of
workers could deadlock), kept while the connection is: `IDLE_SECONDS` without a request closes it.
"""

from __future__ import annotations

import contextlib
import io
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

#: an idle kept connection is closed after this (its client's pool expires its idle connections sooner: 5-30 s)
IDLE_SECONDS = 60.0


class KeepAliveHandler(WSGIRequestHandler):
    timeout = IDLE_SECONDS  # socketserver: the connection's timeout, so an idle one ends its thread

    def run_wsgi(self) -> None:
        declared = self.headers.get("Content-Length") or "0"
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or not declared.isdigit():
            self.close_connection = True  # werkzeug's own path (dechunked, or its answer to a bad length), closed
            super().run_wsgi()
            return
        socket_file, length = self.rfile, int(declared)
        self.rfile = io.BytesIO(socket_file.read(length) if length else b"")
        try:
            super().run_wsgi()
        finally:
            self.rfile = socket_file

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and not self.close_connection:
            return  # werkzeug's "always close": the body was read whole, the connection can serve the next request
        super().send_header(keyword, value)


def make_keepalive_server(host: str, port: int, app: Any) -> BaseWSGIServer:
    """`werkzeug.serving.make_server(host, port, app, threaded=True)` with `KeepAliveHandler`."""
    return make_server(host, port, app, threaded=True, request_handler=KeepAliveHandler)


class ClientPool:
    """httpx clients for a sandbox's outbound requests (a PSP's notifications, a CRM's webhooks), lent one per request
    in flight and kept for the next: a provider sends each notification on a connection of its own, from machines of
    its own. One client shared by every sender thread made the sandbox the bottleneck it is not: httpcore's pool
    looks through every connection for every queued request each time one is queued or released (O(connections x
    waiting) per request: with 200 notifications at once ~10 % of the stack's CPU, profiled), and holds more than 100
    at once in a queue of its own — so the later notifications of a burst waited inside the sandbox, timed as the
    stack's latency. Each client holds one connection (kept alive); they share one TLS context (building one costs
    ~25 ms of CPU)."""

    def __init__(self, timeout: httpx.Timeout) -> None:
        self._timeout = timeout
        self._tls = ssl.create_default_context()
        self._idle: list[httpx.Client] = []  # list.pop / list.append are atomic: no lock needed

    @contextlib.contextmanager
    def client(self) -> Iterator[httpx.Client]:
        try:
            client = self._idle.pop()
        except IndexError:
            client = httpx.Client(timeout=self._timeout, verify=self._tls, limits=httpx.Limits(max_connections=1))
        try:
            yield client
        finally:
            self._idle.append(client)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        with self.client() as client:
            return client.post(url, **kwargs)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
