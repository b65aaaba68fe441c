"""The local stack: moto AWS + the template's HTTP routes + the sandbox PSP and CRM + a timer for schedules, in one
process, served on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Request, Response

from devstack import fakes
from devstack.aws import LocalAws
from devstack.fakes import FakeProvider
from devstack.gateway import Gateway
from devstack.sandbox_crm import SandboxCrm
from devstack.sandbox_psp import SandboxPsp
from devstack.serving import make_keepalive_server
from devstack.template import ROOT
from devstack.web import json_response, page

DEFAULT_TENANTS = ROOT / "config" / "tenants.local.json"
#: Swagger UI's files as Powertools bundles them (`aws_lambda_powertools/event_handler/openapi/swagger_ui/`).
SWAGGER_ASSETS = {
    "swagger-ui-bundle.min.js": ("swagger-ui-bundle.min.js", "text/javascript"),
    "swagger-ui.min.css": ("swagger-ui.min.css", "text/css"),
}
log = logging.getLogger("devstack")
#: The longest an idle queue poller sleeps without its queue changing (what it can miss: a message whose delay or
#: visibility timeout ends).
IDLE_WAIT = 1.0


class LocalStack:
    def __init__(self, port: int = 3000, tenants_file: str | Path | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port = port
        self.tenants_file = str(tenants_file or os.environ.get("PAYBRIDGE_TENANTS") or DEFAULT_TENANTS)
        self.aws = LocalAws()
        self.server: BaseWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.psp: SandboxPsp | None = None
        self.crm: SandboxCrm | None = None
        self.gateway: Gateway | None = None
        self.fakes: dict[str, FakeProvider] = {}
        #: Queues (template logical ids) whose event source pollers are paused (`hold`): a benchmark lands its
        #: messages first, so that it measures the consumer, not how fast it can produce.
        self.held: set[str] = set()
        #: Every domain event published on the local bus (drained from its tap), oldest first.
        self.published: list[dict[str, Any]] = []
        self._published_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalStack:
        # Bind first (port 0 = any free port), so that every URL below is known.
        self.server = make_keepalive_server(self.host, self.port, self._wsgi)
        self.port = self.server.server_port
        os.environ["PAYBRIDGE_LOCAL_URL"] = self.url
        os.environ["PAYBRIDGE_TENANTS"] = self.tenants_file
        os.environ["PUBLIC_BASE_URL"] = self.url
        self.aws.start()
        from paybridge import wiring

        wiring.reset()
        self.psp = SandboxPsp(f"{self.url}/sandbox/psp")
        self.crm = SandboxCrm(f"{self.url}/sandbox/crm")
        self._add_portals()
        self._add_fakes()
        self.gateway = Gateway(self.aws.template.routes(), self.aws.invoke)
        self._spawn(self.server.serve_forever, "http")
        for schedule in self.aws.template.schedules():
            self._spawn(lambda s=schedule: self._every(s.seconds, s.function), f"schedule-{schedule.function}")
        for source in self.aws.template.queue_sources():  # Lambda's poller: up to MaximumConcurrency batches at once
            for n in range(source.max_concurrency):
                self._spawn(
                    lambda s=source: self._poll(s.function, s.queue, s.batch_size), f"sqs-{source.function}-{n}"
                )
        return self

    def _poll(self, function: str, queue: str, batch_size: int) -> None:
        """The SQS event source mapping: poll, invoke with a batch, delete what succeeded. A poller whose queue had
        less than a batch for it waits for the queue to change (a message sent or made visible again, a FIFO group
        freed), as Lambda's pollers long-poll, at most `IDLE_WAIT` seconds (a message whose delay or visibility
        timeout ends changes nothing); polling on a timer instead kept the SQS lock and the interpreter busy."""
        while not self._stop.is_set():
            if queue in self.held:
                self._stop.wait(0.05)
                continue
            seen = self.aws.queue_changes(queue)
            try:
                received = self.aws.poll_queue(function, queue, batch_size)
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("polling %s for %s failed", queue, function)
                received = 0
            if received < batch_size:  # nothing more was there: anything sent since (`seen`) ends the wait at once
                self.aws.wait_for_queue(queue, seen, IDLE_WAIT)

    def hold(self, queue: str) -> None:
        """Pause the pollers of `queue` (a template logical id, e.g. "CrmOutboxQueue") until `release`."""
        self.held.add(queue)

    def release(self, queue: str) -> None:
        self.held.discard(queue)

    def stop(self) -> None:
        self._stop.set()
        self.aws.wake_pollers()
        if self.psp:
            self.psp.stop()
        for fake in self.fakes.values():
            fake.stop()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        self.aws.stop()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _every(self, seconds: int, function: str) -> None:
        while not self._stop.wait(seconds):
            try:
                self.aws.invoke(function, {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
            except Exception:
                log.exception("scheduled %s failed", function)

    def _add_portals(self) -> None:
        from paybridge.adapters.crm.sandbox import SandboxCrmSettings
        from paybridge.secrets import resolve_secret
        from paybridge.tenants import load_file_directory

        directory = load_file_directory(self.tenants_file)
        assert self.crm is not None
        for tenant_id in directory.tenant_ids():
            tenant = directory.get(tenant_id)
            if isinstance(tenant.crm, SandboxCrmSettings):
                portal = tenant.crm.base_url.rstrip("/").rsplit("/", 1)[-1]
                self.crm.add_portal(portal, resolve_secret(tenant.crm.token), f"{self.url}/crm/{tenant_id}/sandbox")

    def _add_fakes(self) -> None:
        """Serve a fake of each real provider and CRM a local tenant uses, and register those tenants with it."""
        from paybridge.tenants import load_file_directory

        directory = load_file_directory(self.tenants_file)
        for tenant_id in directory.tenant_ids():
            tenant = directory.get(tenant_id)
            targets: list[tuple[str, Any, str]] = [
                (tenant.psp.provider, tenant.psp, f"{self.url}/psp/{tenant_id}/{tenant.psp.provider}")
            ]
            if tenant.crm.kind != "sandbox":
                targets.append((tenant.crm.kind, tenant.crm, f"{self.url}/crm/{tenant_id}/{tenant.crm.kind}"))
            if tenant.bank is not None and tenant.bank.source is not None:
                source = tenant.bank.source.kind
                targets.append((source, tenant.bank.source, f"{self.url}/bank/{tenant_id}/{source}"))
            for name, settings, our_url in targets:
                if name not in self.fakes:
                    fake = fakes.load(name, f"{self.url}/fake/{name}")
                    if fake is None:
                        continue
                    self.fakes[name] = fake
                self.fakes[name].add_merchant(tenant, _secrets_of(settings), our_url)

    # -- WSGI --------------------------------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        mounts: list[tuple[str, Any]] = [("/sandbox/psp", self.psp), ("/sandbox/crm", self.crm)]
        mounts += [(f"/fake/{name}", fake) for name, fake in self.fakes.items()]
        for prefix, app in mounts:
            if path.startswith(prefix + "/") and app is not None:
                environ = {**environ, "PATH_INFO": path[len(prefix) :], "SCRIPT_NAME": prefix}
                return app(environ, start_response)
        request = Request(environ)
        response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        if request.path in ("/ops", "/ops/"):  # the local ops console and the API reference: pages for people
            return self._ops()
        if request.path == "/openapi.json" or request.path.startswith("/docs"):
            return self._docs(request.path)
        if request.path == "/health":
            return json_response({"status": "ok", "stack": "local", "url": self.url})
        if request.path == "/":
            return self._index()
        if request.path.startswith("/_dev/webhooks/") and request.method == "POST":
            return self._register_webhooks(request.path.removeprefix("/_dev/webhooks/"), request)
        if request.path == "/thanks":  # the shipped tenants' return_url: where T-Bank, YooKassa, Stripe send payers
            return page("Спасибо, оплата принята", "<p>Платёж обработан провайдером. Эту вкладку можно закрыть.</p>")
        if request.path == "/local/events":  # the local bus's tap: what was published (not a route of the API)
            return json_response(self.events_published())
        assert self.gateway is not None
        try:
            response = self.gateway.handle(request)
        except Exception as exc:  # a crashed handler is a 502 at API Gateway too
            log.exception("handler crashed")
            return json_response({"message": "Internal Server Error", "error": type(exc).__name__}, 502)
        if response is None:
            return json_response({"message": "Not Found"}, 404)
        return response

    def _register_webhooks(self, tenant_id: str, request: Request) -> Response:
        """Dev only (`paybridge webhooks register T --stage local`): the tenant's CRM adapter lives here, with its
        OAuth session, so the registration runs here — the same code a deployed stage runs from the CLI."""
        from paybridge import wiring
        from paybridge.adapters.errors import AdapterError
        from paybridge.tenants import TenantNotFound
        from scripts.cli.webhooks import register

        body = request.get_json(silent=True)
        api_url = body.get("api_url") if isinstance(body, dict) else None
        if not isinstance(api_url, str) or not api_url.startswith(("http://", "https://")):
            return json_response({"error": "give {'api_url': 'http(s)://…'}"}, 400)
        try:
            tenant = wiring.get_tenants().get(tenant_id)
            entries = register(tenant, api_url, "dev", wiring.make_crm)
        except TenantNotFound:
            return json_response({"error": f"no tenant {tenant_id!r}"}, 404)
        except AdapterError as exc:
            return json_response({"error": f"the CRM refused: {exc}"}, 502)
        for entry in entries:  # a cabinet's steps are for the real provider; its local fake was told at start
            if entry["steps"] and entry["name"] in self.fakes and not entry["registered"]:
                entry["steps"] = [
                    f"locally nothing: the stack gave /fake/{entry['name']} this URL at start "
                    f"(deployed: {'; '.join(entry['steps'])})"
                ]
        return json_response({"entries": entries})

    def events_published(self) -> dict[str, Any]:
        """The domain events published so far: counts by type, and each event's envelope."""
        with self._published_lock:
            self.published += [e.get("detail", e) for e in self.aws.drain_event_tap()]
            events = list(self.published)
        counts: dict[str, int] = {}
        for event in events:
            counts[event["type"]] = counts.get(event["type"], 0) + 1
        return {"count": len(events), "counts": dict(sorted(counts.items())), "events": events}

    def _index(self) -> Response:
        assert self.crm is not None
        links = "".join(
            f'<li><a href="{self.url}/sandbox/crm/{name}/">Sandbox CRM — portal {name}</a></li>'
            for name in self.crm.portals
        )
        tools = (
            "<li><a href='/ops/'>Ops console</a>: invoices stuck first, drift, bank review, the levers</li>"
            "<li><a href='/docs/'>API reference (Swagger UI)</a> · <a href='/openapi.json'>openapi.json</a></li>"
            "<li><a href='/health'>health</a></li>"
        )
        return page("PayBridge local stack", f"<ul>{links}{tools}</ul>", lang="en")

    def _ops(self) -> Response:
        from devstack.ops_page import ops_page
        from paybridge.tenants import load_file_directory

        return ops_page(load_file_directory(self.tenants_file).tenant_ids())

    def _docs(self, path: str) -> Response:
        """Swagger UI for the API (`/docs/`) and the spec it reads (`/openapi.json`, the repository's own, pointed
        at this stack); the UI's assets are the ones Powertools bundles, served from the dev venv — no CDN."""
        from devstack.ops_page import swagger_page

        if path == "/openapi.json":
            spec = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
            spec["servers"] = [{"url": self.url, "description": "the local stack"}]
            return json_response(spec)
        if path in ("/docs", "/docs/"):
            return swagger_page()
        asset = SWAGGER_ASSETS.get(path.removeprefix("/docs/"))
        if asset is None:
            return json_response({"message": "Not Found"}, 404)
        from importlib import resources

        try:
            bundled = resources.files("aws_lambda_powertools.event_handler.openapi") / "swagger_ui"
            data = (bundled / asset[0]).read_bytes()
        except (FileNotFoundError, ModuleNotFoundError):
            return json_response({"message": "Swagger UI assets are not installed (the dev venv has them)"}, 404)
        return Response(data, mimetype=asset[1], headers={"Cache-Control": "max-age=3600"})


def _secrets_of(settings: Any) -> dict[str, str]:
    """The resolved secrets of a provider's or CRM's settings by field name, nested ones (`auth`) included."""
    from pydantic import BaseModel

    from paybridge.adapters.settings import SecretRef
    from paybridge.secrets import resolve_secret

    found: dict[str, str] = {}
    for name, value in settings:
        if isinstance(value, SecretRef):
            found[name] = resolve_secret(value)
        elif isinstance(value, BaseModel):
            found.update(_secrets_of(value))
    return found
