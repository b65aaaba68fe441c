"""What the provider fakes share: routing, JSON answers, a deliveries log and notifications retried until the
merchant gives the answer the provider expects.

Faults every fake takes (`POST /_control/faults {"name": count}`): `lose_notification` — the next notifications are
never sent (logged as lost: only asking the provider's API tells the merchant); `unavailable` — the next API
requests answer 503, as a provider outage does."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from devstack.web import json_response

log = logging.getLogger("devstack.fakes")
RETRY_DELAYS = (0.5, 1, 2, 4, 8)
#: Notifications a fake sends at once (a provider's sender works through a queue): one thread per notification, as
#: before, meant thousands of threads at a burst (bench-crm's 6,000 echoes) queueing on one client's pool lock
#: (httpcore assigns queued requests to connections in a pass over all of them, under that lock), timing out and
#: retrying — a collapse the merchant's side never caused
SENDERS = 16


@dataclass
class Delivery:
    url: str
    body: bytes
    headers: dict[str, str]
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False
    lost: bool = False


class FakeApp:
    """A WSGI app: subclasses list `rules` (werkzeug Rules whose endpoint names an `on_<endpoint>` method)."""

    rules: ClassVar[tuple[Rule, ...]] = ()

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.url_map = Map(
            [
                *(rule.empty() for rule in self.rules),  # a Rule binds to one Map: copies, so fakes can coexist
                Rule("/_control/faults", methods=["POST"], endpoint="faults"),
                Rule("/_control/deliveries", methods=["GET"], endpoint="deliveries"),
            ]
        )
        self.lock = threading.RLock()
        self.faults: dict[str, int] = {}
        self.deliveries: list[Delivery] = []
        self._stopped = False
        limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
        self._http = httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0), limits=limits)
        self._senders = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix=f"{type(self).__name__}-send")

    def stop(self) -> None:
        self._stopped = True
        self._senders.shutdown(wait=False, cancel_futures=True)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            endpoint, args = self.url_map.bind_to_environ(environ).match()
            payer = request.path.startswith("/_control/") or endpoint in ("page", "page_action")
            if not payer and self.fault("unavailable"):
                response = json_response({"error": "fault: service unavailable"}, 503)
            else:
                response = getattr(self, f"on_{endpoint}")(request, **args)
        except HTTPException as exc:
            response = exc.get_response()
        return response(environ, start_response)

    def fault(self, name: str) -> bool:
        """Consume one occurrence of a fault switched on through `POST /_control/faults {"name": count}`."""
        with self.lock:
            if self.faults.get(name, 0) > 0:
                self.faults[name] -= 1
                return True
        return False

    def on_faults(self, request: Request) -> Response:
        with self.lock:
            self.faults.update({k: int(v) for k, v in (request.get_json(silent=True) or {}).items()})
            return json_response(self.faults)

    def on_deliveries(self, request: Request) -> Response:
        return json_response(
            [
                {
                    "url": d.url,
                    "body": d.body.decode(),
                    "attempts": d.attempts,
                    "delivered": d.delivered,
                    "lost": d.lost,
                }
                for d in self.deliveries
            ]
        )

    def deliver(
        self, url: str, body: bytes, headers: dict[str, str], accepted: Callable[[httpx.Response], bool]
    ) -> None:
        """POST `body` to `url` in the background until `accepted(response)`, with growing delays."""
        delivery = Delivery(url=url, body=body, headers=headers)
        self.deliveries.append(delivery)
        if self.fault("lose_notification"):
            delivery.lost = True
            return
        self._send(delivery, accepted, 0)

    def _send(self, delivery: Delivery, accepted: Callable[[httpx.Response], bool], attempt: int) -> None:
        if self._stopped:
            return
        try:
            self._senders.submit(self._attempt, delivery, accepted, attempt)
        except RuntimeError:  # stopped meanwhile (a retry's timer fired after `stop`)
            return

    def _attempt(self, delivery: Delivery, accepted: Callable[[httpx.Response], bool], attempt: int) -> None:
        if self._stopped:
            return
        try:
            response = self._http.post(delivery.url, content=delivery.body, headers=delivery.headers)
            delivery.attempts.append({"at": time.time(), "status": response.status_code, "body": response.text[:200]})
            ok = accepted(response)
        except httpx.HTTPError as exc:
            delivery.attempts.append({"at": time.time(), "status": None, "body": str(exc)[:200]})
            ok = False
        if ok:
            delivery.delivered = True
        elif attempt < len(RETRY_DELAYS):
            timer = threading.Timer(RETRY_DELAYS[attempt], self._send, args=(delivery, accepted, attempt + 1))
            timer.daemon = True
            timer.start()
