"""A local fake of a Bitrix24 portal's REST API, for the end-to-end tests, the local stack and `make bench-crm`.

What it enforces, as Bitrix24 does:
- access: an incoming webhook (`/rest/<user_id>/<secret>/<method>.json`) or an OAuth access token (`/rest/<method>.json`
  with `auth=<token>`; tokens expire; `GET /oauth/token/?grant_type=refresh_token…` rotates the pair, and a refresh
  token works once);
- the leaky bucket per portal: `limit_per_second` (2) draining a bucket of `burst` (50); a request that would overflow
  it is answered 503 `QUERY_LIMIT_EXCEEDED` and does nothing;
- `batch {halt, cmd}` (≤ 50 commands, `$result[key][FIELD]` substitution, `result` / `result_error`);
- `crm.deal.get`, `crm.contact.get`, `crm.deal.update` (which raises ONCRMDEALUPDATE at the application's handler
  when it bound that event — the echo PayBridge must ignore), `crm.timeline.comment.add` (deal, contact, company),
  `crm.contact.update` / `crm.company.update` (UF_CRM_ fields; money as `1500.00|RUB`), `im.notify.system.add`;
- outbound events and robot calls, form-encoded with `auth[application_token]` and `auth[domain]`;
- `event.get`, `event.bind`, `bizproc.robot.list`, `bizproc.robot.add` for an application (OAuth) only, as on
  Bitrix24 (`WRONG_AUTH_TYPE` through an incoming webhook); the local stack binds each tenant's handler at start.

Control (tests, benchmark): `POST /_control/deals` (create a deal, with `contact`), `GET /_control/deals/<id>` (the
deal with its timeline, notifications and write log), `POST /_control/deals/<id>/stage {"stage_id"}` (a manager moves
it: fires ONCRMDEALUPDATE), `POST /_control/deals/<id>/robot` (our robot runs on it),
`GET /_control/{contacts,companies}/<id>` (its fields and timeline), `POST /_control/outage {"seconds"}` (503 for a
while), `GET /_control/stats`, faults via `/_control/faults`.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from devstack.fakes.base import FakeApp
from devstack.web import json_response
from paybridge.adapters.crm.bitrix24 import Bitrix24RobotTrigger, Bitrix24Settings, Bitrix24WebhookAuth
from paybridge.tenants import TenantConfig

#: The entities `crm.timeline.comment.add` takes besides deals (payments on the customer's profile).
ENTITY_TYPES = frozenset({"contact", "company"})
_RESULT_REF = re.compile(r"\$result\[([^\]]+)\]\[([^\]]+)\]")
_WEBHOOK_PATH = re.compile(r"/rest/(\d+)/([^/]+)/?$")


class BitrixError(Exception):
    def __init__(self, code: str, description: str, status: int = 400):
        super().__init__(description)
        self.code, self.description, self.status = code, description, status


@dataclass
class Portal:
    domain: str
    application_token: str
    handler_url: str
    robot_code: str | None
    #: Events the application bound (event.bind): a stage trigger binds ONCRMDEALUPDATE; a robot binds nothing.
    bound_events: frozenset[str] = frozenset()
    webhook: tuple[str, str] | None = None  # (user id, secret)
    client_secret: str | None = None
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: dict[str, float] = field(default_factory=dict)  # token → expires at
    level: float = 0.0
    drained_at: float = field(default_factory=time.monotonic)
    outage_until: float = 0.0
    requests: int = 0
    calls: int = 0
    rejected_by_limit: int = 0
    rejected_by_outage: int = 0
    calls_by_method: dict[str, int] = field(default_factory=dict)
    #: When the bucket first filled (the end of the first burst: from then on requests go at the drain rate), and
    #: when the request that filled it had been applied (the steady state's start: what completes later was limited).
    full_at: float | None = None
    filled_done_at: float | None = None
    #: Each admitted request as it was applied: (time.monotonic(), how many calls it made).
    applied: list[tuple[float, int]] = field(default_factory=list)


def parse_php_query(query: str) -> dict[str, Any]:
    """`fields[STAGE_ID]=WON&id=1` → `{"fields": {"STAGE_ID": "WON"}, "id": "1"}` (PHP's nesting)."""
    result: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if parts:
            node[parts[-1]] = value
    return result


class FakeBitrix24(FakeApp):
    rules = (
        Rule("/rest/<int:user>/<secret>/<method>.json", methods=["GET", "POST"], endpoint="webhook_call"),
        Rule("/rest/<method>.json", methods=["GET", "POST"], endpoint="oauth_call"),
        Rule("/oauth/token/", methods=["GET", "POST"], endpoint="token"),
        Rule("/_control/deals", methods=["POST"], endpoint="create_deal"),
        Rule("/_control/deals/<int:deal_id>", methods=["GET"], endpoint="read_deal"),
        Rule("/_control/deals/<int:deal_id>/stage", methods=["POST"], endpoint="move_deal"),
        Rule("/_control/deals/<int:deal_id>/robot", methods=["POST"], endpoint="run_robot"),
        Rule("/_control/<any(contacts, companies):kind>/<int:entity_id>", methods=["GET"], endpoint="read_entity"),
        Rule("/_control/outage", methods=["POST"], endpoint="outage"),
        Rule("/_control/stats", methods=["GET"], endpoint="stats"),
    )
    limit_per_second = 2.0
    burst = 50
    access_token_seconds = 3600

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.portals: dict[str, Portal] = {}
        self.deals: dict[int, dict[str, Any]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.companies: dict[int, dict[str, Any]] = {}
        self.entity_portal: dict[int, str] = {}  # contact or company → its portal
        self.deal_portal: dict[int, str] = {}
        self.timeline: dict[int, list[dict[str, Any]]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.writes: dict[int, list[str]] = {}  # deal → "stage:X" / "comment:…" in the order applied
        self.written_at: dict[int, float] = {}  # deal → when its last write was applied (time.monotonic)
        self._ids = itertools.count(1)
        self._app_call = True

    # -- setup -------------------------------------------------------------------------------------------------------

    def add_merchant(self, tenant: TenantConfig, secrets_: dict[str, str], notification_url: str) -> None:
        settings = tenant.crm
        assert isinstance(settings, Bitrix24Settings)
        robot = settings.trigger.code if isinstance(settings.trigger, Bitrix24RobotTrigger) else None
        portal = Portal(
            domain=settings.portal,
            application_token=secrets_["application_token"],
            handler_url=notification_url,
            robot_code=robot,
            bound_events=frozenset() if robot else frozenset({"ONCRMDEALUPDATE"}),
        )
        if isinstance(settings.auth, Bitrix24WebhookAuth):
            match = _WEBHOOK_PATH.search(urllib.parse.urlparse(secrets_["url"]).path)
            assert match, f"not an incoming-webhook URL: {secrets_['url']}"
            portal.webhook = (match.group(1), match.group(2))
        else:
            portal.client_secret = secrets_["client_secret"]
            if "initial_refresh_token" in secrets_:
                portal.refresh_tokens.add(secrets_["initial_refresh_token"])
        self.portals[settings.portal] = portal

    # -- the REST door -------------------------------------------------------------------------------------------------

    def on_webhook_call(self, request: Request, user: int, secret: str, method: str) -> Response:
        portal = next((p for p in self.portals.values() if p.webhook == (str(user), secret)), None)
        if portal is None:
            return _error(BitrixError("INVALID_CREDENTIALS", "Invalid request credentials", 401))
        return self._rest(portal, method, _params(request), app=False)

    def on_oauth_call(self, request: Request, method: str) -> Response:
        params = _params(request)
        token = str(params.pop("auth", "") or request.args.get("auth", ""))
        now = time.time()
        for portal in self.portals.values():
            expires = portal.access_tokens.get(token)
            if expires is not None:
                if expires < now:
                    return _error(BitrixError("expired_token", "The access token provided has expired.", 401))
                return self._rest(portal, method, params)
        return _error(BitrixError("invalid_token", "The access token provided is invalid.", 401))

    def on_token(self, request: Request) -> Response:
        args = {**request.args, **request.form}
        with self.lock:
            for portal in self.portals.values():
                if portal.client_secret is None or args.get("client_secret") != portal.client_secret:
                    continue
                refresh = args.get("refresh_token", "")
                if args.get("grant_type") != "refresh_token" or refresh not in portal.refresh_tokens:
                    return json_response({"error": "invalid_grant", "error_description": "Invalid refresh token"}, 400)
                portal.refresh_tokens.discard(refresh)  # single use
                access, new_refresh = secrets.token_hex(16), secrets.token_hex(16)
                portal.refresh_tokens.add(new_refresh)
                portal.access_tokens[access] = time.time() + self.access_token_seconds
                return json_response(
                    {
                        "access_token": access,
                        "refresh_token": new_refresh,
                        "expires_in": self.access_token_seconds,
                        "domain": portal.domain,
                        "client_endpoint": f"{self.base_url}/rest/",
                        "server_endpoint": "https://oauth.bitrix.info/rest/",
                        "member_id": portal.domain,
                        "status": "L",
                    }
                )
        return json_response({"error": "invalid_client", "error_description": "Invalid client"}, 401)

    def _admit(self, portal: Portal) -> BitrixError | None:
        """The portal's leaky bucket: each request adds one; it drains at `limit_per_second`."""
        now = time.monotonic()
        portal.requests += 1
        if now < portal.outage_until or self.fault("unavailable"):
            portal.rejected_by_outage += 1
            return BitrixError("INTERNAL_SERVER_ERROR", "Portal is temporarily unavailable", 503)
        portal.level = max(0.0, portal.level - (now - portal.drained_at) * self.limit_per_second)
        portal.drained_at = now
        if portal.level + 1 > self.burst:
            portal.rejected_by_limit += 1
            return BitrixError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503)
        portal.level += 1
        if portal.full_at is None and portal.level + 1 > self.burst:
            portal.full_at = now
        return None

    def _rest(self, portal: Portal, method: str, params: dict[str, Any], app: bool = True) -> Response:
        with self.lock:
            self._app_call = app  # event.bind and bizproc.robot.* are for applications only
            was_full, calls_before = portal.full_at is not None, portal.calls
            refused = self._admit(portal)
            if refused is not None:
                return _error(refused)
            try:
                if method == "batch":
                    result: Any = self._batch(portal, params)
                else:
                    result = self._method(portal, method, params)
            except BitrixError as exc:
                return _error(exc)
            finally:
                portal.applied.append((time.monotonic(), portal.calls - calls_before))
                if not was_full and portal.full_at is not None:
                    portal.filled_done_at = portal.applied[-1][0]
            return json_response({"result": result, "time": {"start": time.time(), "duration": 0.001}})

    def _batch(self, portal: Portal, params: dict[str, Any]) -> dict[str, Any]:
        commands = params.get("cmd") or {}
        if not isinstance(commands, dict) or len(commands) > 50:
            raise BitrixError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
        halt = str(params.get("halt", "0")) not in ("0", "false", "")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, command in commands.items():
            method, _, query = str(command).partition("?")
            query = _RESULT_REF.sub(lambda m: urllib.parse.quote(str(_ref(results, m.group(1), m.group(2)))), query)
            try:
                results[key] = self._method(portal, method, parse_php_query(query))
            except BitrixError as exc:
                errors[key] = {"error": exc.code, "error_description": exc.description}
                if halt:
                    break
        return {"result": results, "result_error": errors, "result_total": {}, "result_next": {}, "result_time": {}}

    def _method(self, portal: Portal, method: str, params: dict[str, Any]) -> Any:
        portal.calls += 1
        portal.calls_by_method[method] = portal.calls_by_method.get(method, 0) + 1
        match method:
            case "crm.deal.get":
                return dict(self._deal(portal, params.get("id")))
            case "crm.contact.get":
                contact = self.contacts.get(_int(params.get("id")))
                if contact is None:
                    raise BitrixError("NOT_FOUND", "Not found")
                return dict(contact)
            case "crm.deal.update":
                deal = self._deal(portal, params.get("id"))
                fields = _update_fields(params, deal)
                deal.update(fields)
                if "STAGE_ID" in fields:
                    self.writes.setdefault(int(deal["ID"]), []).append(f"stage:{fields['STAGE_ID']}")
                    self.written_at[int(deal["ID"])] = time.monotonic()
                self._event(portal, "ONCRMDEALUPDATE", int(deal["ID"]))
                return True
            case "crm.timeline.comment.add" if (params.get("fields") or {}).get("ENTITY_TYPE") in ENTITY_TYPES:
                fields = params["fields"]
                entity = self._entity(portal, fields["ENTITY_TYPE"], fields.get("ENTITY_ID"))
                comment_id = next(self._ids)
                entity.setdefault("_timeline", []).append(
                    {"ID": comment_id, "COMMENT": fields.get("COMMENT", ""), "CREATED": time.time()}
                )
                return comment_id
            case "crm.contact.update" | "crm.company.update":
                entity = self._entity(portal, method.split(".")[1], params.get("id"))
                fields = _update_fields(params, entity)
                money = [f for f, v in fields.items() if f.startswith("UF_CRM_") and "|" in str(v)]
                for name in money:  # a money user field is "<amount>|<currency>"
                    amount, _, currency = str(fields[name]).partition("|")
                    if not re.fullmatch(r"-?\d+(\.\d{1,2})?", amount) or not re.fullmatch(r"[A-Z]{3}", currency):
                        raise BitrixError("ERROR_CORE", f"{name}: not a money value")
                entity.update(fields)
                return True
            case "crm.timeline.comment.add":
                fields = params.get("fields") or {}
                if not isinstance(fields, dict) or fields.get("ENTITY_TYPE") != "deal":
                    raise BitrixError("ERROR_CORE", "ENTITY_TYPE must be deal, contact or company")
                deal = self._deal(portal, fields.get("ENTITY_ID"))
                comment_id = next(self._ids)
                entry = {"ID": comment_id, "COMMENT": fields.get("COMMENT", ""), "CREATED": time.time()}
                self.timeline.setdefault(int(deal["ID"]), []).append(entry)
                self.writes.setdefault(int(deal["ID"]), []).append(f"comment:{entry['COMMENT']}")
                self.written_at[int(deal["ID"])] = time.monotonic()
                return comment_id
            case "event.get" | "event.bind" | "bizproc.robot.list" | "bizproc.robot.add" if not self._app_call:
                raise BitrixError("WRONG_AUTH_TYPE", "Current authorization type is denied for this method", 401)
            case "event.get":
                return [
                    {"event": event, "handler": portal.handler_url, "auth_type": "0", "offline": 0}
                    for event in sorted(portal.bound_events)
                ]
            case "event.bind":
                event, handler = str(params.get("event", "")).upper(), str(params.get("handler", ""))
                if not event or not handler.startswith(("http://", "https://")):
                    raise BitrixError("ERROR_ARGUMENT", "event and handler are required")
                portal.bound_events, portal.handler_url = portal.bound_events | {event}, handler
                return True
            case "bizproc.robot.list":
                return [portal.robot_code] if portal.robot_code else []
            case "bizproc.robot.add":
                code, handler = str(params.get("CODE", "")), str(params.get("HANDLER", ""))
                if not re.fullmatch(r"[A-Za-z0-9._-]+", code) or not handler or not params.get("NAME"):
                    raise BitrixError("ERROR_ACTIVITY_VALIDATION_FAILURE", "CODE, HANDLER and NAME are required")
                if code == portal.robot_code:
                    raise BitrixError("ERROR_ACTIVITY_ALREADY_INSTALLED", "Activity or Robot already installed!")
                portal.robot_code, portal.handler_url = code, handler
                return True
            case "im.notify.system.add":
                if not str(params.get("USER_ID", "")).isdigit():
                    raise BitrixError("USER_ID_EMPTY", "User ID can't be empty")
                notification_id = next(self._ids)
                self.notifications.append(
                    {"ID": notification_id, "USER_ID": int(params["USER_ID"]), "MESSAGE": params.get("MESSAGE", "")}
                )
                return notification_id
        raise BitrixError("ERROR_METHOD_NOT_FOUND", f"Method not found: {method}", 404)

    def _entity(self, portal: Portal, kind: str, entity_id: Any) -> dict[str, Any]:
        store = self.contacts if kind == "contact" else self.companies
        entity = store.get(_int(entity_id))
        if entity is None or self.entity_portal.get(_int(entity_id)) not in (None, portal.domain):
            raise BitrixError("NOT_FOUND", "Not found")
        return entity

    def _deal(self, portal: Portal, deal_id: Any) -> dict[str, Any]:
        deal = self.deals.get(_int(deal_id))
        if deal is None or self.deal_portal.get(int(deal["ID"])) != portal.domain:
            raise BitrixError("NOT_FOUND", "Not found")
        return deal

    # -- outbound: events and robots ---------------------------------------------------------------------------------

    def _auth_fields(self, portal: Portal) -> dict[str, str]:
        return {
            "auth[domain]": portal.domain,
            "auth[client_endpoint]": f"{self.base_url}/rest/",
            "auth[server_endpoint]": "https://oauth.bitrix.info/rest/",
            "auth[member_id]": portal.domain,
            "auth[application_token]": portal.application_token,
        }

    def _event(self, portal: Portal, event: str, deal_id: int) -> None:
        if event not in portal.bound_events:
            return
        form = {"event": event, "event_handler_id": "7", "data[FIELDS][ID]": str(deal_id), "ts": str(int(time.time()))}
        self._post_form(portal, {**form, **self._auth_fields(portal)})

    def _post_form(self, portal: Portal, form: dict[str, str]) -> None:
        body = urllib.parse.urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        self.deliver(portal.handler_url, body, headers, accepted=lambda r: r.status_code == 200)

    # -- control -------------------------------------------------------------------------------------------------------

    def on_create_deal(self, request: Request) -> Response:
        data = request.get_json(force=True)
        deal_id = self.add_deal(
            data["portal"],
            data["amount"],
            title=data.get("title"),
            currency=data.get("currency", "RUB"),
            stage_id=data.get("stage_id", "NEW"),
            contact=data.get("contact"),
            assigned_by_id=int(data.get("assigned_by_id", 1)),
            fields=data.get("fields"),
            company=data.get("company"),
        )
        with self.lock:
            return json_response(self._view(deal_id), 201)

    def add_deal(
        self,
        portal_domain: str,
        amount: int,
        *,
        title: str | None = None,
        currency: str = "RUB",
        stage_id: str = "NEW",
        contact: dict[str, Any] | None = None,
        assigned_by_id: int = 1,
        fields: dict[str, Any] | None = None,
        company: dict[str, Any] | None = None,
    ) -> int:
        portal = self.portals[portal_domain]
        with self.lock:
            deal_id = next(self._ids)
            contact_id = company_id = 0
            if company:
                company_id = next(self._ids)
                self.companies[company_id] = {"ID": str(company_id), "TITLE": company.get("title", "")}
                self.entity_portal[company_id] = portal.domain
            if contact and contact.get("id"):  # an existing contact of the portal
                contact_id = int(contact["id"])
            elif contact:
                contact_id = next(self._ids)
                self.entity_portal[contact_id] = portal.domain
                self.contacts[contact_id] = {
                    "ID": str(contact_id),
                    "NAME": contact.get("name", ""),
                    "LAST_NAME": "",
                    "EMAIL": [{"ID": "1", "VALUE": contact["email"], "VALUE_TYPE": "WORK", "TYPE_ID": "EMAIL"}]
                    if contact.get("email")
                    else [],
                    "PHONE": [{"ID": "2", "VALUE": contact["phone"], "VALUE_TYPE": "WORK", "TYPE_ID": "PHONE"}]
                    if contact.get("phone")
                    else [],
                }
            self.deals[deal_id] = {
                "ID": str(deal_id),
                "TITLE": title or f"Сделка #{deal_id}",
                "OPPORTUNITY": f"{amount // 100}.{amount % 100:02d}",
                "CURRENCY_ID": currency,
                "STAGE_ID": stage_id,
                "CONTACT_ID": str(contact_id) if contact_id else None,
                "COMPANY_ID": str(company_id),
                "ASSIGNED_BY_ID": str(assigned_by_id),
                **(fields or {}),
            }
            self.deal_portal[deal_id] = portal.domain
            return deal_id

    def _view(self, deal_id: int) -> dict[str, Any]:
        return {
            "deal": self.deals[deal_id],
            "timeline": self.timeline.get(deal_id, []),
            "writes": self.writes.get(deal_id, []),
        }

    def on_read_deal(self, request: Request, deal_id: int) -> Response:
        with self.lock:
            if deal_id not in self.deals:
                return json_response({"error": "not found"}, 404)
            return json_response(self._view(deal_id))

    def on_read_entity(self, request: Request, kind: str, entity_id: int) -> Response:
        """A contact or company with its timeline (`timeline`) and fields."""
        with self.lock:
            entity = (self.contacts if kind == "contacts" else self.companies).get(entity_id)
            if entity is None:
                return json_response({"error": "not found"}, 404)
            public = {k: v for k, v in entity.items() if not k.startswith("_")}
            return json_response({"entity": public, "timeline": entity.get("_timeline", [])})

    def on_move_deal(self, request: Request, deal_id: int) -> Response:
        with self.lock:
            deal = self.deals[deal_id]
            deal["STAGE_ID"] = request.get_json(force=True)["stage_id"]
            self._event(self.portals[self.deal_portal[deal_id]], "ONCRMDEALUPDATE", deal_id)
            return json_response(self._view(deal_id))

    def on_run_robot(self, request: Request, deal_id: int) -> Response:
        portal = self.portals[self.deal_portal[deal_id]]
        form = {
            "workflow_id": secrets.token_hex(8),
            "code": (request.get_json(silent=True) or {}).get("code") or portal.robot_code or "",
            "document_id[0]": "crm",
            "document_id[1]": "CCrmDocumentDeal",
            "document_id[2]": f"DEAL_{deal_id}",
            "document_type[0]": "crm",
            "document_type[1]": "CCrmDocumentDeal",
            "document_type[2]": "DEAL",
            "event_token": secrets.token_hex(12),
            "ts": str(int(time.time())),
            **self._auth_fields(portal),
        }
        self._post_form(portal, form)
        return json_response({"sent": True})

    def on_outage(self, request: Request) -> Response:
        seconds = float(request.get_json(force=True)["seconds"])
        with self.lock:
            until = time.monotonic() + seconds
            for portal in self.portals.values():
                portal.outage_until = until
        return json_response({"unavailable_for": seconds})

    def on_stats(self, request: Request) -> Response:
        with self.lock:
            return json_response(
                {
                    domain: {
                        "requests": p.requests,
                        "calls": p.calls,
                        "rejected_by_limit": p.rejected_by_limit,
                        "rejected_by_outage": p.rejected_by_outage,
                        "calls_by_method": dict(p.calls_by_method),
                    }
                    for domain, p in self.portals.items()
                }
            )


def _params(request: Request) -> dict[str, Any]:
    if request.is_json:
        data = request.get_json(silent=True)
        return dict(data) if isinstance(data, dict) else {}
    return parse_php_query(request.get_data(as_text=True) or request.query_string.decode())


def _ref(results: dict[str, Any], key: str, field_name: str) -> Any:
    value = results.get(key)
    if isinstance(value, dict):
        return value.get(field_name, "")
    return ""


def _update_fields(params: dict[str, Any], entity: dict[str, Any]) -> dict[str, Any]:
    """The `fields` of a `crm.*.update` call: an object naming the entity's own fields or `UF_CRM_*` user fields."""
    fields = params.get("fields") or {}
    if not isinstance(fields, dict):
        raise BitrixError("ERROR_CORE", "fields must be an object")
    unknown = [f for f in fields if f not in entity and not f.startswith("UF_CRM_")]
    if unknown:
        raise BitrixError("ERROR_CORE", f"Unknown fields: {', '.join(unknown)}")
    return fields


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


def _error(exc: BitrixError) -> Response:
    return Response(
        json.dumps({"error": exc.code, "error_description": exc.description}),
        status=exc.status,
        mimetype="application/json",
    )


#: What the local stack serves for tenants whose settings name `bitrix24` (see devstack/fakes/__init__.py).
FAKE = FakeBitrix24
