"""A local fake of amoCRM API v4 for one or more accounts (subdomains), served under one base URL.

- Auth: `Authorization: Bearer <token>`; a token names its account. Long-lived tokens never expire; OAuth access
  tokens live 24 h and come from `POST /oauth2/access_token` (grant `refresh_token`), whose refresh tokens are
  single-use: presenting one a second time answers 401 `{"hint": "Token has been revoked"}`.
- Limits: 7 requests per second per account (a sliding 1 s window); over it, 429.
- API: `GET /api/v4/leads/<id>[?with=contacts]` (204 when unknown), `GET /api/v4/leads?filter[id][]=…` (204 when
  none), `PATCH /api/v4/leads`, `POST /api/v4/leads/notes`, `POST /api/v4/tasks`, `GET /api/v4/contacts/<id>`,
  `POST /api/v4/{contacts,companies}/notes`, `PATCH /api/v4/{contacts,companies}` (payments on the customer's
  profile; `GET /_control/{contacts,companies}/<id>` shows one with its notes and `fields` {field_id: value}).
  Batches are validated as a whole: one bad item answers 400 `{"validation-errors": [{request_id, errors: [{code,
  path, detail}]}]}` (request_id = the item's index) and saves nothing.
- Webhooks: a status change (through the API or the control endpoint) sends the form-encoded `leads[status][n][id |
  status_id | pipeline_id | old_status_id | old_pipeline_id]`, `account[id]`, `account[subdomain]` to the account's
  URL (ours + `?token=<webhook_token>`), repeated until it answers 200.

`GET /api/v4/webhooks?filter[destination]=…` (204 when none) and `POST /api/v4/webhooks {destination, settings}`
(a `status_lead` destination receives the status webhooks from then on); the stack registers each tenant's at start.

Control: `POST /_control/leads {name, price, status_id, pipeline_id?, responsible_user_id?, subdomain?, contact?:
{name, email, phone}, invoice_number?, fields?: {field_id: value}}` creates a lead (and its main contact);
`GET /_control/leads/<id>` reads it with its contact, notes, tasks and payment link;
`POST /_control/leads/<id>/status {"status_id": …, "pipeline_id"?}` moves it (and sends the webhook);
`POST /_control/outage {"seconds": N}` answers 503 to every API
and OAuth call for N seconds (0 ends it); fault `unauthorized` (through `POST /_control/faults`) answers the next
API call 401. `requests` counts the API and OAuth calls received (`requests_by_endpoint` per endpoint).
"""

from __future__ import annotations

import itertools
import json
import secrets as random_tokens
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from devstack.fakes.base import FakeApp
from devstack.web import json_response
from paybridge.adapters.crm.amocrm import AmoCrmSettings
from paybridge.adapters.settings import LongLivedTokenAuth, OAuthAppAuth
from paybridge.tenants import TenantConfig

#: Requests per second per account.
RATE_LIMIT = 7
ACCESS_TOKEN_SECONDS = 86_400
MAX_BATCH = 250


@dataclass
class Account:
    subdomain: str
    account_id: int
    webhook_url: str
    pipeline_id: int
    link_field_id: int | None = None
    invoice_number_field_id: int | None = None
    client_id: str | None = None
    client_secret: str | None = None
    redirect_uri: str | None = None
    recent: deque[float] = field(default_factory=deque)  # times of the requests in the last second
    #: `GET/POST /api/v4/webhooks`: the account's webhooks (the local stack registers the tenant's at start).
    webhooks: list[dict[str, Any]] = field(default_factory=list)


#: The routes, copied into each instance's map (a werkzeug Rule binds to one map only).
ROUTES = (
    Rule("/api/v4/leads", methods=["GET"], endpoint="leads"),
    Rule("/api/v4/leads", methods=["PATCH"], endpoint="patch_leads"),
    Rule("/api/v4/leads/notes", methods=["POST"], endpoint="notes"),
    Rule("/api/v4/leads/<int:lead_id>", methods=["GET"], endpoint="lead"),
    Rule("/api/v4/tasks", methods=["POST"], endpoint="tasks"),
    Rule("/api/v4/contacts/<int:contact_id>", methods=["GET"], endpoint="contact"),
    Rule("/api/v4/<any(contacts, companies):kind>/notes", methods=["POST"], endpoint="entity_notes"),
    Rule("/api/v4/<any(contacts, companies):kind>", methods=["PATCH"], endpoint="patch_entities"),
    Rule("/_control/<any(contacts, companies):kind>/<int:entity_id>", methods=["GET"], endpoint="control_entity"),
    Rule("/api/v4/webhooks", methods=["GET"], endpoint="webhooks"),
    Rule("/api/v4/webhooks", methods=["POST"], endpoint="add_webhook"),
    Rule("/oauth2/access_token", methods=["POST"], endpoint="token"),
    Rule("/_control/leads", methods=["POST"], endpoint="control_create"),
    Rule("/_control/leads/<int:lead_id>", methods=["GET"], endpoint="control_lead"),
    Rule("/_control/leads/<int:lead_id>/status", methods=["POST"], endpoint="control_status"),
    Rule("/_control/outage", methods=["POST"], endpoint="outage"),
)


class FakeAmoCrm(FakeApp):
    def __init__(self, base_url: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(base_url)
        for rule in ROUTES:
            self.url_map.add(rule.empty())
        self.clock = clock
        self.accounts: dict[str, Account] = {}
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token → (subdomain, expires at)
        self.refresh_tokens: dict[str, str] = {}  # live refresh token → subdomain
        self.revoked: set[str] = set()  # refresh tokens already used
        self.leads: dict[int, dict[str, Any]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.companies: dict[int, dict[str, Any]] = {}
        self.owner: dict[int, str] = {}  # lead or contact id → subdomain
        self.notes: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.outage_until = 0.0
        self.requests = 0
        self.requests_by_endpoint: Counter[str] = Counter()
        self._ids = itertools.count(31_000_001)

    def add_merchant(self, tenant: TenantConfig, secrets: dict[str, str], notification_url: str) -> None:
        crm = tenant.crm
        if not isinstance(crm, AmoCrmSettings):
            raise ValueError(f"tenant {tenant.tenant_id} does not use amoCRM")
        separator = "&" if "?" in notification_url else "?"
        account = Account(
            subdomain=crm.subdomain,
            account_id=29_000_000 + len(self.accounts) + 1,
            webhook_url=f"{notification_url}{separator}token={quote(secrets['webhook_token'], safe='')}",
            pipeline_id=crm.pipeline_id,
            link_field_id=crm.link_field_id,
            invoice_number_field_id=crm.invoice_number_field_id,
        )
        account.webhooks.append(_webhook(account, account.webhook_url, ["status_lead"], self.clock()))
        with self.lock:
            if isinstance(crm.auth, LongLivedTokenAuth):
                self.access_tokens[secrets["token"]] = (crm.subdomain, float("inf"))
            elif isinstance(crm.auth, OAuthAppAuth):
                account.client_id = crm.auth.client_id
                account.client_secret = secrets["client_secret"]
                account.redirect_uri = crm.auth.redirect_uri
                if secrets.get("initial_refresh_token"):
                    self.refresh_tokens[secrets["initial_refresh_token"]] = crm.subdomain
            self.accounts[crm.subdomain] = account

    # -- the gate every API call passes ----------------------------------------------------------------------------

    def _count(self, request: Request) -> None:
        with self.lock:
            self.requests += 1
            self.requests_by_endpoint[f"{request.method} {request.path}"] += 1

    def _gate(self, request: Request) -> Account | Response:
        """Count the call, then: outage → 503, bad token → 401, over the limit → 429; else the caller's account."""
        self._count(request)
        now = self.clock()
        with self.lock:
            if now < self.outage_until:
                return _problem(503, "Service Unavailable", "the fake is in an outage")
            if self.fault("unauthorized"):
                return _problem(401, "Unauthorized", "Токен доступа отозван (fault)")
            header = request.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
            subdomain, expires_at = self.access_tokens.get(token, ("", 0.0))
            if not subdomain or expires_at <= now or subdomain not in self.accounts:
                return _problem(401, "Unauthorized", "Неверный или истёкший токен доступа")
            account = self.accounts[subdomain]
            while account.recent and account.recent[0] <= now - 1.0:
                account.recent.popleft()
            if len(account.recent) >= RATE_LIMIT:
                return _problem(429, "Too Many Requests", f"more than {RATE_LIMIT} requests per second")
            account.recent.append(now)
            return account

    # -- OAuth -----------------------------------------------------------------------------------------------------

    def on_token(self, request: Request) -> Response:
        self._count(request)
        body = _body(request)
        with self.lock:
            if self.clock() < self.outage_until:
                return _problem(503, "Service Unavailable", "the fake is in an outage")
            if not isinstance(body, dict):
                return _oauth_error(400, "Invalid request", "a JSON object is expected")
            account = next((a for a in self.accounts.values() if a.client_id == body.get("client_id")), None)
            if account is None or body.get("client_secret") != account.client_secret:
                return _oauth_error(401, "Client authentication failed", "unknown client_id or wrong client_secret")
            if body.get("grant_type") != "refresh_token":
                return _oauth_error(400, "Unsupported grant type", "only refresh_token is supported by the fake")
            if account.redirect_uri and body.get("redirect_uri") != account.redirect_uri:
                return _oauth_error(400, "Invalid redirect_uri", "redirect_uri does not match the integration's")
            refresh = str(body.get("refresh_token", ""))
            if self.refresh_tokens.get(refresh) != account.subdomain:
                return _oauth_error(401, "Token has been revoked", "the refresh token is invalid or used")
            del self.refresh_tokens[refresh]
            self.revoked.add(refresh)
            access, new_refresh = f"fake-access-{random_tokens.token_hex(12)}", f"def{random_tokens.token_hex(24)}"
            self.access_tokens[access] = (account.subdomain, self.clock() + ACCESS_TOKEN_SECONDS)
            self.refresh_tokens[new_refresh] = account.subdomain
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_SECONDS,
                "access_token": access,
                "refresh_token": new_refresh,
            }
        )

    # -- reads -----------------------------------------------------------------------------------------------------

    def on_lead(self, request: Request, lead_id: int) -> Response:
        account = self._gate(request)
        if isinstance(account, Response):
            return account
        with self.lock:
            if self.owner.get(lead_id) != account.subdomain or lead_id not in self.leads:
                return Response(status=204)
            return json_response(self._lead_json(lead_id, "contacts" in request.args.get("with", "").split(",")))

    def on_leads(self, request: Request) -> Response:
        account = self._gate(request)
        if isinstance(account, Response):
            return account
        wanted = [int(v) for v in request.args.getlist("filter[id][]") if v.isdigit()]
        raw_limit = request.args.get("limit", "50")
        limit = min(int(raw_limit), 250) if raw_limit.isdigit() else 50
        with self.lock:
            ids = wanted or list(self.leads)
            found = [i for i in ids if i in self.leads and self.owner.get(i) == account.subdomain][:limit]
            if not found:
                return Response(status=204)
            embed_contacts = "contacts" in request.args.get("with", "").split(",")
            return json_response(
                {
                    "_page": 1,
                    "_links": {"self": {"href": f"{self.base_url}/api/v4/leads"}},
                    "_embedded": {"leads": [self._lead_json(i, embed_contacts) for i in found]},
                }
            )

    def on_contact(self, request: Request, contact_id: int) -> Response:
        account = self._gate(request)
        if isinstance(account, Response):
            return account
        with self.lock:
            if self.owner.get(contact_id) != account.subdomain or contact_id not in self.contacts:
                return Response(status=204)
            return json_response(self.contacts[contact_id])

    # -- webhooks (amoCRM API v4: GET /api/v4/webhooks?filter[destination]=…, POST {destination, settings}) ---------

    def on_webhooks(self, request: Request) -> Response:
        account = self._gate(request)
        if isinstance(account, Response):
            return account
        wanted = request.args.get("filter[destination]")
        with self.lock:
            hooks = [h for h in account.webhooks if wanted is None or h["destination"] == wanted]
        if not hooks:
            return Response(status=204)
        return json_response({"_total_items": len(hooks), "_embedded": {"webhooks": hooks}})

    def on_add_webhook(self, request: Request) -> Response:
        account = self._gate(request)
        if isinstance(account, Response):
            return account
        body = _body(request)
        destination = body.get("destination") if isinstance(body, dict) else None
        settings = body.get("settings") if isinstance(body, dict) else None
        if not isinstance(destination, str) or not destination.startswith(("http://", "https://")):
            return _problem(400, "Bad Request", "destination must be a URL")
        if not isinstance(settings, list) or not settings or not all(isinstance(e, str) for e in settings):
            return _problem(400, "Bad Request", "settings must be a list of event names")
        with self.lock:
            account.webhooks = [h for h in account.webhooks if h["destination"] != destination]
            hook = _webhook(account, destination, settings, self.clock())
            account.webhooks.append(hook)
            if "status_lead" in settings:
                account.webhook_url = destination  # status webhooks go there from now on
        return json_response(hook)

    # -- writes ----------------------------------------------------------------------------------------------------

    def _batch_write(
        self,
        request: Request,
        errors_of: Callable[[Account, dict[str, Any]], list[dict[str, str]]],
        write: Callable[[Account, int, dict[str, Any]], dict[str, Any]],
        path: str,
        key: str,
    ) -> tuple[Account | None, Response]:
        """A batch POST/PATCH as amoCRM takes it: auth and the account's limit, a JSON array, every bad item
        answered (and nothing saved), else each item written under the lock, answered in order."""
        account = self._gate(request)
        if isinstance(account, Response):
            return None, account
        items = _body(request)
        problem = _batch_problem(items)
        if problem is not None:
            return account, problem
        with self.lock:
            errors = _validation(items, lambda item: errors_of(account, item))
            if errors:
                return account, _validation_failed(errors)
            answer = [write(account, index, item) for index, item in enumerate(items)]
        return account, json_response({"_links": self._links(path), "_embedded": {key: answer}})

    def on_patch_leads(self, request: Request) -> Response:
        changed: list[tuple[dict[str, Any], int, int]] = []
        now = int(self.clock())

        def write(_account: Account, index: int, item: dict[str, Any]) -> dict[str, Any]:
            lead = self.leads[item["id"]]
            old = (lead["status_id"], lead["pipeline_id"])
            if "pipeline_id" in item:
                lead["pipeline_id"] = item["pipeline_id"]
            if "status_id" in item:
                lead["status_id"] = item["status_id"]
            for value in item.get("custom_fields_values") or ():
                _set_field(lead, value["field_id"], value["values"])
            lead["updated_at"] = now
            if (lead["status_id"], lead["pipeline_id"]) != old:
                changed.append((lead, *old))
            return {"id": lead["id"], "updated_at": now, "request_id": str(item.get("request_id", index))}

        account, response = self._batch_write(request, self._lead_errors, write, "/api/v4/leads", "leads")
        if changed and account is not None:
            self._send_status_webhook(account, changed)
        return response

    def on_notes(self, request: Request) -> Response:
        def write(account: Account, index: int, item: dict[str, Any]) -> dict[str, Any]:
            note = {
                "id": next(self._ids),
                "entity_id": item["entity_id"],
                "note_type": item["note_type"],
                "params": item["params"],
                "created_at": int(self.clock()),
                "account_id": account.account_id,
            }
            self.notes.append(note)
            return {"id": note["id"], "entity_id": note["entity_id"], "request_id": str(item.get("request_id", index))}

        return self._batch_write(request, self._note_errors, write, "/api/v4/leads/notes", "notes")[1]

    def _entities(self, kind: str) -> dict[int, dict[str, Any]]:
        return self.contacts if kind == "contacts" else self.companies

    def _entity_errors(self, kind: str) -> Callable[[Account, dict[str, Any]], list[dict[str, str]]]:
        def errors(account: Account, item: dict[str, Any]) -> list[dict[str, str]]:
            found = []
            entity_id = item.get("entity_id", item.get("id"))
            if not (_positive_int(entity_id) and entity_id in self._entities(kind)):
                found.append(_err("NotFound", "entity_id" if "entity_id" in item else "id", "Entity not found"))
            elif self.owner.get(entity_id) != account.subdomain:
                found.append(_err("NotFound", "id", "Entity not found"))
            return found

        return errors

    def on_entity_notes(self, request: Request, kind: str) -> Response:
        """`POST /api/v4/contacts/notes` (or companies): common notes on the entity."""

        def errors(account: Account, item: dict[str, Any]) -> list[dict[str, str]]:
            found = self._entity_errors(kind)(account, item)
            if item.get("note_type") != "common":
                found.append(_err("NotSupportedChoice", "note_type", "The value you selected is not a valid choice."))
            params = item.get("params")
            if not isinstance(params, dict) or not isinstance(params.get("text"), str) or not params["text"]:
                found.append(_err("NotBlank", "params.text", "This value should not be blank."))
            return found

        def write(account: Account, index: int, item: dict[str, Any]) -> dict[str, Any]:
            note = {
                "id": next(self._ids),
                "entity_id": item["entity_id"],
                "entity_type": kind,
                "note_type": item["note_type"],
                "params": item["params"],
                "created_at": int(self.clock()),
                "account_id": account.account_id,
            }
            self.notes.append(note)
            return {"id": note["id"], "entity_id": note["entity_id"], "request_id": str(item.get("request_id", index))}

        return self._batch_write(request, errors, write, f"/api/v4/{kind}/notes", "notes")[1]

    def on_patch_entities(self, request: Request, kind: str) -> Response:
        """`PATCH /api/v4/contacts` (or companies): their custom fields."""

        def errors(account: Account, item: dict[str, Any]) -> list[dict[str, str]]:
            return self._entity_errors(kind)(account, item) + _custom_fields_errors(item.get("custom_fields_values"))

        def write(account: Account, index: int, item: dict[str, Any]) -> dict[str, Any]:
            entity = self._entities(kind)[item["id"]]
            for value in item.get("custom_fields_values") or ():
                _set_field(entity, value["field_id"], value["values"])
            entity["updated_at"] = int(self.clock())
            return {"id": entity["id"], "updated_at": entity["updated_at"], "request_id": str(index)}

        return self._batch_write(request, errors, write, f"/api/v4/{kind}", kind)[1]

    def on_control_entity(self, request: Request, kind: str, entity_id: int) -> Response:
        with self.lock:
            entity = self._entities(kind).get(entity_id)
            if entity is None:
                return json_response({"error": f"no {kind} {entity_id}"}, 404)
            notes = [n for n in self.notes if n["entity_id"] == entity_id and n.get("entity_type") == kind]
            fields = {str(f["field_id"]): f["values"][0].get("value") for f in entity.get("custom_fields_values") or ()}
            return json_response({**entity, "notes": notes, "fields": fields})

    def on_tasks(self, request: Request) -> Response:
        def write(account: Account, index: int, item: dict[str, Any]) -> dict[str, Any]:
            task = {
                "id": next(self._ids),
                "task_type_id": item["task_type_id"],
                "text": item["text"],
                "complete_till": item["complete_till"],
                "entity_id": item.get("entity_id"),
                "entity_type": item.get("entity_type"),
                "responsible_user_id": item.get("responsible_user_id"),
                "is_completed": False,
                "account_id": account.account_id,
            }
            self.tasks.append(task)
            return {"id": task["id"], "request_id": str(item.get("request_id", index))}

        return self._batch_write(request, self._task_errors, write, "/api/v4/tasks", "tasks")[1]

    # -- validation (amoCRM answers every bad item of a batch, and saves nothing) ----------------------------------

    def _known_lead(self, account: Account, lead_id: Any) -> bool:
        return isinstance(lead_id, int) and lead_id in self.leads and self.owner.get(lead_id) == account.subdomain

    def _lead_errors(self, account: Account, item: dict[str, Any]) -> list[dict[str, str]]:
        errors = []
        if not self._known_lead(account, item.get("id")):
            errors.append(_err("NotFound", "id", "Entity not found"))
        for name in ("status_id", "pipeline_id"):
            if name in item and not _positive_int(item[name]):
                errors.append(_err("InvalidType", name, "This value should be of type int."))
        return errors + _custom_fields_errors(item.get("custom_fields_values"))

    def _note_errors(self, account: Account, item: dict[str, Any]) -> list[dict[str, str]]:
        errors = []
        if not self._known_lead(account, item.get("entity_id")):
            errors.append(_err("NotFound", "entity_id", "Entity not found"))
        if item.get("note_type") != "common":
            errors.append(_err("NotSupportedChoice", "note_type", "The value you selected is not a valid choice."))
        text = (item.get("params") or {}).get("text") if isinstance(item.get("params"), dict) else None
        if not isinstance(text, str) or not text:
            errors.append(_err("NotBlank", "params.text", "This value should not be blank."))
        return errors

    def _task_errors(self, account: Account, item: dict[str, Any]) -> list[dict[str, str]]:
        errors = []
        if not isinstance(item.get("text"), str) or not item["text"]:
            errors.append(_err("NotBlank", "text", "This value should not be blank."))
        if not _positive_int(item.get("complete_till")):
            errors.append(_err("InvalidType", "complete_till", "This value should be of type int."))
        if not _positive_int(item.get("task_type_id", 1)):
            errors.append(_err("InvalidType", "task_type_id", "This value should be of type int."))
        if "responsible_user_id" in item and not _positive_int(item["responsible_user_id"]):
            errors.append(_err("InvalidType", "responsible_user_id", "This value should be of type int."))
        if "entity_id" in item or "entity_type" in item:
            if item.get("entity_type") != "leads":
                errors.append(_err("NotSupportedChoice", "entity_type", "The fake knows leads only."))
            elif not self._known_lead(account, item.get("entity_id")):
                errors.append(_err("NotFound", "entity_id", "Entity not found"))
        return errors

    # -- control ---------------------------------------------------------------------------------------------------

    def on_control_create(self, request: Request) -> Response:
        data = request.get_json(silent=True) or {}
        with self.lock:
            subdomain = data.get("subdomain") or (next(iter(self.accounts)) if len(self.accounts) == 1 else None)
            account = self.accounts.get(subdomain or "")
            if account is None:
                return json_response({"error": "name the account: subdomain"}, 400)
            lead_id = self.create_lead(
                account,
                name=str(data.get("name", "Сделка")),
                price=int(data.get("price", 0)),
                status_id=int(data["status_id"]),
                pipeline_id=int(data.get("pipeline_id") or account.pipeline_id),
                responsible_user_id=int(data.get("responsible_user_id", 7_001)),
                contact=data.get("contact"),
                invoice_number=data.get("invoice_number"),
                company=data.get("company"),
            )
            for field_id, value in (data.get("fields") or {}).items():  # custom fields: {field_id: value}
                _set_field(self.leads[lead_id], int(field_id), [{"value": value}])
            return json_response(self._lead_json(lead_id, True), 201)

    def create_lead(
        self,
        account: Account,
        *,
        name: str,
        price: int,
        status_id: int,
        pipeline_id: int,
        responsible_user_id: int = 7_001,
        contact: dict[str, Any] | None = None,
        invoice_number: str | None = None,
        company: dict[str, Any] | None = None,
    ) -> int:
        now = int(self.clock())
        with self.lock:
            lead_id = next(self._ids)
            contacts = []
            if contact:
                contact_id = next(self._ids)
                fields = [
                    _multitext(field_id, code, str(contact[key]))
                    for field_id, code, key in ((501, "PHONE", "phone"), (502, "EMAIL", "email"))
                    if contact.get(key)
                ]
                self.contacts[contact_id] = {
                    "id": contact_id,
                    "name": contact.get("name", ""),
                    "first_name": contact.get("name", ""),
                    "last_name": "",
                    "responsible_user_id": responsible_user_id,
                    "created_at": now,
                    "updated_at": now,
                    "custom_fields_values": fields or None,
                    "account_id": account.account_id,
                    "_links": self._links(f"/api/v4/contacts/{contact_id}"),
                }
                self.owner[contact_id] = account.subdomain
                contacts.append(contact_id)
            companies = []
            if company:
                company_id = next(self._ids)
                self.companies[company_id] = {
                    "id": company_id,
                    "name": str(company.get("name", "")),
                    "custom_fields_values": None,
                    "account_id": account.account_id,
                    "_links": self._links(f"/api/v4/companies/{company_id}"),
                }
                self.owner[company_id] = account.subdomain
                companies.append(company_id)
            self.leads[lead_id] = {
                "id": lead_id,
                "name": name,
                "price": price,
                "responsible_user_id": responsible_user_id,
                "group_id": 0,
                "status_id": status_id,
                "pipeline_id": pipeline_id,
                "loss_reason_id": None,
                "created_by": 0,
                "updated_by": 0,
                "created_at": now,
                "updated_at": now,
                "closed_at": None,
                "closest_task_at": None,
                "is_deleted": False,
                "custom_fields_values": None,
                "score": None,
                "account_id": account.account_id,
                "_contacts": contacts,
                "_companies": companies,
            }
            self.owner[lead_id] = account.subdomain
            if invoice_number and account.invoice_number_field_id:
                _set_field(self.leads[lead_id], account.invoice_number_field_id, [{"value": invoice_number}])
            return lead_id

    def on_control_lead(self, request: Request, lead_id: int) -> Response:
        with self.lock:
            if lead_id not in self.leads:
                return json_response({"error": f"no lead {lead_id}"}, 404)
            lead = self._lead_json(lead_id, True)
            account = self.accounts[self.owner[lead_id]]
            contacts = [self.contacts[c] for c in self.leads[lead_id]["_contacts"]]
            return json_response(
                {
                    **lead,
                    "contact": contacts[0] if contacts else None,
                    "notes": [n for n in self.notes if n["entity_id"] == lead_id],
                    "tasks": [t for t in self.tasks if t["entity_id"] == lead_id],
                    "payment_link": _field(self.leads[lead_id], account.link_field_id),
                }
            )

    def on_control_status(self, request: Request, lead_id: int) -> Response:
        data = request.get_json(silent=True) or {}
        with self.lock:
            lead = self.leads.get(lead_id)
            if lead is None:
                return json_response({"error": f"no lead {lead_id}"}, 404)
            if not _positive_int(data.get("status_id")):
                return json_response({"error": "status_id (a positive integer) is required"}, 400)
            old = (lead["status_id"], lead["pipeline_id"])
            lead["status_id"] = data["status_id"]
            lead["pipeline_id"] = data.get("pipeline_id") or lead["pipeline_id"]
            lead["updated_at"] = int(self.clock())
            account = self.accounts[self.owner[lead_id]]
        self._send_status_webhook(account, [(lead, *old)])
        return json_response(self._lead_json(lead_id, True))

    def on_outage(self, request: Request) -> Response:
        seconds = float((request.get_json(silent=True) or {}).get("seconds", 0))
        with self.lock:
            self.outage_until = self.clock() + seconds if seconds > 0 else 0.0
        return json_response({"outage_until": self.outage_until})

    # -- webhooks --------------------------------------------------------------------------------------------------

    def status_webhook(self, account: Account, changed: list[tuple[dict[str, Any], int, int]]) -> bytes:
        form: list[tuple[str, str]] = []
        for n, (lead, old_status, old_pipeline) in enumerate(changed):
            prefix = f"leads[status][{n}]"
            form += [
                (f"{prefix}[id]", str(lead["id"])),
                (f"{prefix}[status_id]", str(lead["status_id"])),
                (f"{prefix}[pipeline_id]", str(lead["pipeline_id"])),
                (f"{prefix}[old_status_id]", str(old_status)),
                (f"{prefix}[old_pipeline_id]", str(old_pipeline)),
            ]
        form += [
            ("account[id]", str(account.account_id)),
            ("account[subdomain]", account.subdomain),
            ("account[_links][self]", f"https://{account.subdomain}.amocrm.ru"),
        ]
        return urlencode(form).encode()

    def _send_status_webhook(self, account: Account, changed: list[tuple[dict[str, Any], int, int]]) -> None:
        self.deliver(
            account.webhook_url,
            self.status_webhook(account, changed),
            {"Content-Type": "application/x-www-form-urlencoded"},
            accepted=lambda r: r.status_code == 200,
        )

    # -- rendering -------------------------------------------------------------------------------------------------

    def _links(self, path: str) -> dict[str, Any]:
        return {"self": {"href": f"{self.base_url}{path}"}}

    def _lead_json(self, lead_id: int, with_contacts: bool) -> dict[str, Any]:
        lead = self.leads[lead_id]
        embedded: dict[str, Any] = {
            "tags": [],
            "companies": [
                {"id": c, "_links": self._links(f"/api/v4/companies/{c}")} for c in lead.get("_companies", ())
            ],
        }
        if with_contacts:
            embedded["contacts"] = [
                {"id": c, "is_main": n == 0, "_links": self._links(f"/api/v4/contacts/{c}")}
                for n, c in enumerate(lead["_contacts"])
            ]
        public = {k: v for k, v in lead.items() if not k.startswith("_")}
        return {**public, "_links": self._links(f"/api/v4/leads/{lead_id}"), "_embedded": embedded}


# -- helpers -------------------------------------------------------------------------------------------------------


def _body(request: Request) -> Any:
    try:
        return json.loads(request.get_data() or b"null")
    except ValueError:
        return None


def _problem(status: int, title: str, detail: str) -> Response:
    return json_response(
        {"title": title, "type": f"https://httpstatus.es/{status}", "status": status, "detail": detail}, status
    )


def _oauth_error(status: int, hint: str, detail: str) -> Response:
    return json_response(
        {"hint": hint, "title": "Unauthorized" if status == 401 else "Bad Request", "status": status, "detail": detail},
        status,
    )


def _batch_problem(items: Any) -> Response | None:
    if not isinstance(items, list) or not items:
        return _problem(400, "Bad Request", "a non-empty JSON array is expected")
    if len(items) > MAX_BATCH:
        return _problem(400, "Bad Request", f"at most {MAX_BATCH} entities per request")
    return None


def _validation(items: list[Any], check: Callable[[dict[str, Any]], list[dict[str, str]]]) -> list[dict[str, Any]]:
    found = []
    for index, item in enumerate(items):
        errors = check(item) if isinstance(item, dict) else [_err("InvalidType", "", "an object is expected")]
        if errors:
            request_id = item.get("request_id", index) if isinstance(item, dict) else index
            found.append({"request_id": str(request_id), "errors": errors})
    return found


def _validation_failed(errors: list[dict[str, Any]]) -> Response:
    return json_response(
        {
            "validation-errors": errors,
            "title": "Bad Request",
            "type": "https://httpstatus.es/400",
            "status": 400,
            "detail": "Request validation failed",
        },
        400,
    )


def _err(code: str, path: str, detail: str) -> dict[str, str]:
    return {"code": code, "path": path, "detail": detail}


def _custom_fields_errors(cfv: Any) -> list[dict[str, str]]:
    """`custom_fields_values` of a lead, contact or company: an array of `{field_id, values: [{value}, ...]}`."""
    if cfv is None:
        return []
    if not isinstance(cfv, list):
        return [_err("InvalidType", "custom_fields_values", "This value should be of type array.")]
    return [
        _err("InvalidType", f"custom_fields_values.{n}", "field_id and values expected")
        for n, value in enumerate(cfv)
        if not (
            isinstance(value, dict)
            and _positive_int(value.get("field_id"))
            and isinstance(value.get("values"), list)
            and all(isinstance(v, dict) and "value" in v for v in value["values"])
        )
    ]


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _set_field(lead: dict[str, Any], field_id: int, values: list[dict[str, Any]]) -> None:
    fields = [f for f in (lead.get("custom_fields_values") or []) if f["field_id"] != field_id]
    fields.append({"field_id": field_id, "field_name": f"field {field_id}", "field_code": None, "values": values})
    lead["custom_fields_values"] = fields


def _multitext(field_id: int, code: str, value: str) -> dict[str, Any]:
    name = {"PHONE": "Телефон", "EMAIL": "Email"}[code]
    return {
        "field_id": field_id,
        "field_name": name,
        "field_code": code,
        "field_type": "multitext",
        "values": [{"value": value, "enum_id": 1, "enum_code": "WORK"}],
    }


def _field(lead: dict[str, Any], field_id: int | None) -> Any:
    for value in lead.get("custom_fields_values") or ():
        if value["field_id"] == field_id and value["values"]:
            return value["values"][0].get("value")
    return None


#: What the local stack serves for tenants whose settings name `amocrm` (see devstack/fakes/__init__.py).
FAKE = FakeAmoCrm


def _webhook(account: Account, destination: str, settings: list[str], now: float) -> dict[str, Any]:
    return {
        "id": len(account.webhooks) + 1,
        "destination": destination,
        "created_at": int(now),
        "updated_at": int(now),
        "account_id": account.account_id,
        "created_by": 0,
        "sort": 1,
        "disabled": False,
        "settings": list(settings),
    }
