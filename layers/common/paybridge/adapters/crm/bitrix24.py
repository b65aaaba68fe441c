"""Bitrix24 REST.

Wire format
- Calls: `POST <rest base><method>.json` with a JSON body. The rest base is the incoming-webhook URL
  (`https://<portal>/rest/<user_id>/<secret>/`) or, for an OAuth app, `https://<portal>/rest/` with `auth=<access
  token>` in the body. Answers: `{"result": …, "time": {…}}` or `{"error": CODE, "error_description": …}`; HTTP 503
  `QUERY_LIMIT_EXCEEDED` when the portal's leaky bucket (about 2 requests/s, 50 burst) is over; 401 `expired_token`
  when an OAuth access token has expired (refreshed once through the token store, then the call is repeated).
- `batch {halt: 0, cmd: {key: "method?query"}}` runs up to 50 calls in one request and answers
  `{"result": {"result": {key: …}, "result_error": {key: {error, error_description}}}}`; a later command may use an
  earlier one's answer as `$result[key][FIELD]`.
- Reads: `crm.deal.get {id}` (ID, TITLE, OPPORTUNITY "1500.00", CURRENCY_ID, STAGE_ID, CONTACT_ID, ASSIGNED_BY_ID,
  UF_CRM_…) and `crm.contact.get {id}` (NAME, LAST_NAME, EMAIL[{VALUE}], PHONE[{VALUE}]) in one batch request;
  checks read 50 deals per request without contacts.
- Payments on the customer's profile (opt-in, `customer_profile`): `crm.timeline.comment.add {fields{ENTITY_ID,
  ENTITY_TYPE: "contact" | "company", COMMENT}}` per payment or refund and `crm.contact.update` / `crm.company.update
  {id, fields{UF_CRM_…: "1500.00|RUB" (money), UF_CRM_…: ISO 8601 (date)}, params{REGISTER_SONET_EVENT: "N"}}`, in the
  same `batch` as the deal's writes; the entity is the deal's CONTACT_ID / COMPANY_ID (read once per deal by
  `get_deals`, then remembered by PayBridge).
- Writes: `crm.deal.update {id, fields{STAGE_ID, <link field>}, params{REGISTER_SONET_EVENT: "N"}}`,
  `crm.timeline.comment.add {fields{ENTITY_ID, ENTITY_TYPE: "deal", COMMENT}}`, `im.notify.system.add {USER_ID,
  MESSAGE}` to the deal's responsible user (read in the same batch: `USER_ID=$result[…][ASSIGNED_BY_ID]`). Client
  messages are sent by the portal's own automation on the awaiting-payment stage (a robot "send SMS/e-mail" that
  uses the link field), so `send_to_customer` writes nothing here.
- Inbound: form-encoded POSTs. Events (`event=ONCRMDEALUPDATE`, `data[FIELDS][ID]`) carry only the id: the deal is
  read with `crm.deal.get`. Robots (`code`, `document_id[2]=DEAL_<id>`, `event_token`) carry the deal in
  `document_id`. Every call carries `auth[application_token]` (checked, constant time) and `auth[domain]` (must be
  the tenant's portal).

Echoes: our own `crm.deal.update` raises ONCRMDEALUPDATE at us again. An update event only asks for an invoice when
the deal, as read, is in the trigger stage; we never move a deal into the trigger stage, and issuing is idempotent by
deal and number, so our writes cannot loop. The read is not made in the webhook: the event becomes a `DealCheck` on
the outbox, and the consumer reads up to 50 checked deals per request — so the echo of each of our writes costs 1/50
of a request, not one.

Batching and order: `apply` sends the updates in rounds — round k holds the k-th update of every deal in the batch
— each round in as few `batch` requests as the 50-call cap allows. A request that fails as a whole (503 over the
limit, 5xx, timeout) makes its round and every later round retry; an update one of whose calls Bitrix24 refused is
parked with the error (a refused call does not succeed on retry: unknown deal, stage or field, no access), and it
does not hold up the deal's later updates. A request refused as a whole (no access, a dead OAuth token) is retried
like an outage: the account is at fault, not the updates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import hmac
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote

from pydantic import ConfigDict, Field, ValidationError

from paybridge.adapters.crm.base import (
    CrmWebhook,
    Deal,
    DealMoved,
    DealOp,
    DealUpdate,
    IssueInvoiceCommand,
    RateLimit,
    Throttle,
    UpdateOutcome,
    no_throttle,
    undecided_wait,
)
from paybridge.adapters.crm.oauth import TokenPair
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, InvalidSignature, MalformedNotification
from paybridge.adapters.http import make_client, send
from paybridge.adapters.registry import CRMS, AdapterContext
from paybridge.adapters.settings import (
    CrmRateLimitSettings,
    CrmSettingsBase,
    HttpUrl,
    OAuthAppAuth,
    SecretRef,
)
from paybridge.domain.customer_profile import ProfileWrite
from paybridge.domain.invoice import Customer
from paybridge.domain.model import Model
from paybridge.domain.money import from_decimal_string, to_decimal_string


class Bitrix24WebhookAuth(Model):
    """Writes through an incoming webhook: `https://<portal>/rest/<user_id>/<secret>/` (a secret: it grants access)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["webhook"]
    url: SecretRef = Field(description="the incoming webhook URL, https://<portal>/rest/<user>/<secret>/")


class Bitrix24StageTrigger(Model):
    """Issue an invoice when a deal enters this stage (ONCRMDEALUPDATE, the deal re-read with crm.deal.get)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["stage"]
    stage_id: str = Field(min_length=1, max_length=50)


class Bitrix24RobotTrigger(Model):
    """Issue an invoice when our robot (bizproc.robot.add, this CODE) runs on a deal."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["robot"]
    code: str = Field(default="paybridge_issue_invoice", pattern=r"^[a-z0-9_]{1,50}$")


class Bitrix24Settings(CrmSettingsBase):
    """Bitrix24 REST. Inbound calls (events, robots) carry `auth[application_token]`, checked on every call."""

    kind: Literal["bitrix24"]
    profile_field_pattern: ClassVar[str] = r"^UF_CRM_[A-Z0-9_]{1,50}$"
    profile_field_hint: ClassVar[str] = "a Bitrix24 user field (UF_CRM_…)"
    portal: str = Field(pattern=r"^[a-z0-9.-]+(:[0-9]+)?$", description="the portal's domain, e.g. acme.bitrix24.ru")
    auth: Annotated[Bitrix24WebhookAuth | OAuthAppAuth, Field(discriminator="kind")]
    application_token: SecretRef = Field(
        description="the application token Bitrix24 sends with every event (auth[application_token])"
    )
    trigger: Annotated[Bitrix24StageTrigger | Bitrix24RobotTrigger, Field(discriminator="kind")]
    #: OAuth apps: the REST base (the token answer's `client_endpoint`); default `https://<portal>/rest/`.
    rest_url: HttpUrl | None = None
    #: The deal's user field that receives the payment link (create it in the CRM: type string/URL).
    link_field: str | None = Field(default="UF_CRM_PAYBRIDGE_LINK", pattern=r"^UF_CRM_[A-Z0-9_]+$")
    #: A deal field holding the invoice number; the deal id is used when absent or empty.
    invoice_number_field: str | None = Field(default=None, pattern=r"^(UF_CRM_[A-Z0-9_]+|TITLE)$")
    rate_limit: CrmRateLimitSettings = Field(default_factory=lambda: CrmRateLimitSettings(per_second=2, burst=50))
    #: Several pending updates of one deal sent as one: the last stage only (the stages in between are skipped, so
    #: the portal's automation on them does not run — enable where no robot depends on passing through a stage),
    #: every comment and notice kept. Off: each update is sent, a deal's k-th update in the k-th round.
    merge_updates: bool = False

    def webhook_steps(self, url: str, secret_names: dict[str, str]) -> list[str]:
        """An incoming-webhook portal (no app): event.bind and bizproc.robot.add work only for an application, so the
        outgoing webhook is made by hand."""
        if isinstance(self.trigger, Bitrix24RobotTrigger):
            return ["a robot trigger needs an OAuth application (auth.kind 'oauth'): bizproc.robot.add is app-only"]
        secret = secret_names.get("crm.application_token", "crm.application_token")
        return [
            f"Bitrix24 {self.portal} → Приложения → Разработчикам → Другое → Исходящий вебхук: "
            f"URL обработчика {url}, событие ONCRMDEALUPDATE (Обновление сделки); save",
            f"copy its Токен приложения (application token) into the secret {secret}",
        ]


logger = logging.getLogger(__name__)

MAX_BATCH_CALLS = 50
UPDATE_EVENTS = frozenset({"ONCRMDEALUPDATE", "ONCRMDEALADD"})
#: Errors of a whole request that a later retry can cure.
TRANSIENT_ERRORS = frozenset(
    {"QUERY_LIMIT_EXCEEDED", "OVERLOAD_LIMIT", "INTERNAL_SERVER_ERROR", "OPERATION_TIME_LIMIT"}
)
_ROBOT_DEAL = re.compile(r"^DEAL_([0-9]+)$")
_DEAL_ID = re.compile(r"^[0-9]+$")


def query_string(params: dict[str, Any], prefix: str = "") -> str:
    """PHP's http_build_query: nested dicts as `fields[STAGE_ID]=…`. Values starting with `$result[` are left as they
    are, so a batch command can use an earlier command's answer."""
    parts: list[str] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            parts.append(query_string(value, name))
        elif isinstance(value, str) and value.startswith("$result["):
            parts.append(f"{quote(name, safe='[]')}={value}")
        else:
            parts.append(f"{quote(name, safe='[]')}={quote(str(value), safe='')}")
    return "&".join(p for p in parts if p)


def _phone(value: str | None) -> str | None:
    digits = re.sub(r"\D", "", value or "")
    if len(digits) == 11 and digits[0] == "8":
        digits = "7" + digits[1:]
    return f"+{digits}" if 8 <= len(digits) <= 15 and digits[0] != "0" else None


def _entity_id(value: Any) -> str | None:
    """CONTACT_ID / COMPANY_ID: Bitrix24 answers null or "0" when the deal has none."""
    text = str(value or "").strip()
    return text if text.isdigit() and text != "0" else None


def _first(values: Any) -> str | None:
    if isinstance(values, list) and values and isinstance(values[0], dict):
        value = values[0].get("VALUE")
        return str(value) if value else None
    return None


def _customer(contact: dict[str, Any] | None) -> Customer:
    if not contact:
        return Customer()
    name = " ".join(str(contact.get(k) or "").strip() for k in ("NAME", "LAST_NAME")).strip() or None
    email, phone = _first(contact.get("EMAIL")), _phone(_first(contact.get("PHONE")))
    try:
        return Customer(name=name, email=email, phone=phone)
    except ValidationError:  # a malformed e-mail in the CRM: keep what is usable
        return Customer(name=name, phone=phone)


def oauth_refresher(
    token_url: str, client_id: str, client_secret: str, transport: Any = None, clock: Callable[[], float] | None = None
) -> Callable[[str], TokenPair]:
    """`GET https://oauth.bitrix.info/oauth/token/?grant_type=refresh_token&client_id&client_secret&refresh_token` →
    `{access_token, refresh_token, expires_in}`; the refresh token is single-use."""
    import time

    now = clock or time.time
    client = make_client(token_url, transport=transport)

    def refresh(refresh_token: str) -> TokenPair:
        params = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        try:
            answer = send(client, "GET", "", transient=CrmUnavailable, permanent=CrmRejected, params=params).json()
        except CrmRejected as exc:
            raise CrmRejected(f"Bitrix24 refused the refresh token; re-install the app: {exc}") from None
        return TokenPair(
            access_token=answer["access_token"],
            refresh_token=answer["refresh_token"],
            expires_at=int(now()) + int(answer.get("expires_in", 3600)),
        )

    return refresh


class Bitrix24:
    name = "bitrix24"

    def __init__(
        self,
        settings: Bitrix24Settings,
        application_token: str,
        rest_base: str,
        access: Callable[[], str] | None = None,
        on_unauthorized: Callable[[], str] | None = None,
        throttle: Throttle = no_throttle,
        transport: Any = None,
    ):
        """`rest_base`: the incoming-webhook URL, or the portal's `https://<portal>/rest/` with `access` giving an OAuth
        access token (and `on_unauthorized` a fresh one after a 401)."""
        self._settings = settings
        self._app_token = application_token
        self._access, self._on_unauthorized = access, on_unauthorized
        self._throttle = throttle
        self.rate_limit = RateLimit(settings.rate_limit.per_second, settings.rate_limit.burst)
        self._http = make_client(rest_base.rstrip("/") + "/", transport=transport)
        self.requests = 0

    # -- transport ---------------------------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """One REST call; its `result`. CrmUnavailable when it may succeed later, CrmRejected when it will not."""
        token = self._access() if self._access else None
        for attempt in (1, 2):
            self._throttle(self._settings.portal, self.rate_limit)
            self.requests += 1
            body = {**params, "auth": token} if token else params
            import httpx  # lazy: see paybridge.adapters.http

            try:
                response = self._http.post(f"{method}.json", json=body)
            except httpx.TransportError as exc:
                raise CrmUnavailable(f"Bitrix24 {method}: {type(exc).__name__}: {exc}") from exc
            answer = _json(response)
            error = str(answer.get("error", "")) if isinstance(answer, dict) else ""
            if response.status_code == 401 and attempt == 1 and self._on_unauthorized is not None:
                token = self._on_unauthorized()
                continue
            if response.status_code >= 500 or response.status_code == 429 or error in TRANSIENT_ERRORS:
                raise CrmUnavailable(f"Bitrix24 {method}: HTTP {response.status_code} {error}".strip())
            if response.status_code >= 400 or error:
                detail = answer.get("error_description", "") if isinstance(answer, dict) else response.text[:200]
                raise CrmRejected(f"Bitrix24 {method}: {error or response.status_code}: {detail}")
            return answer.get("result")
        raise CrmRejected(f"Bitrix24 {method}: the access token was refused after a refresh")  # pragma: no cover

    def batch(self, commands: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run up to 50 commands in one request: (results by key, errors by key)."""
        if len(commands) > MAX_BATCH_CALLS:
            raise ValueError(f"a batch holds at most {MAX_BATCH_CALLS} commands, not {len(commands)}")
        result = self.call("batch", {"halt": 0, "cmd": commands}) or {}
        results = result.get("result") or {}
        errors = result.get("result_error") or {}
        return (results if isinstance(results, dict) else {}), (errors if isinstance(errors, dict) else {})

    # -- setup -------------------------------------------------------------------------------------------------------

    def register_webhooks(self, handler_url: str) -> list[str] | None:
        """Point the portal's events (or robot) at `handler_url`, once: `event.get` then `event.bind {event:
        ONCRMDEALUPDATE, handler}` for a stage trigger, `bizproc.robot.list` then `bizproc.robot.add {CODE, HANDLER,
        AUTH_USER_ID, NAME, USE_SUBSCRIPTION: N}` for a robot. Both methods exist only for an application (OAuth):
        with an incoming webhook this answers None and the settings' `webhook_steps` say what to do by hand."""
        if self._access is None:
            return None
        trigger = self._settings.trigger
        if isinstance(trigger, Bitrix24RobotTrigger):
            installed = self.call("bizproc.robot.list", {}) or []
            if trigger.code in installed:
                return [f"robot {trigger.code}: installed already (its handler is kept)"]
            robot = {
                "CODE": trigger.code,
                "HANDLER": handler_url,
                "AUTH_USER_ID": 1,
                "NAME": {"ru": "PayBridge: выставить счёт", "en": "PayBridge: issue an invoice"},
                "USE_SUBSCRIPTION": "N",
            }
            self.call("bizproc.robot.add", robot)
            return [f"robot {trigger.code} → {handler_url}: added (bizproc.robot.add)"]
        bound = self.call("event.get", {}) or []
        for handler in bound if isinstance(bound, list) else []:
            if str(handler.get("event", "")).upper() in UPDATE_EVENTS and handler.get("handler") == handler_url:
                return [f"ONCRMDEALUPDATE → {handler_url}: bound already"]
        self.call("event.bind", {"event": "ONCRMDEALUPDATE", "handler": handler_url})
        return [f"ONCRMDEALUPDATE → {handler_url}: bound (event.bind)"]

    # -- reads -------------------------------------------------------------------------------------------------------

    def get_deal(self, deal_id: str) -> Deal:
        deals, errors = self._read([deal_id], with_contact=True)
        if deal_id not in deals:
            error = errors.get(deal_id) or {}
            raise CrmRejected(f"Bitrix24 deal {deal_id}: {error.get('error_description') or error or 'not found'}")
        return deals[deal_id]

    def get_deals(self, deal_ids: Sequence[str]) -> dict[str, Deal]:
        """Deals without their contacts (a check needs the stage; `get_deal` reads the contact of the few deals that
        get an invoice): 50 deals per request."""
        deals, errors = self._read(deal_ids, with_contact=False)
        for deal_id, error in errors.items():
            logger.info("Bitrix24 deal %s: %s", deal_id, error)
        return deals

    def _read(self, deal_ids: Sequence[str], with_contact: bool) -> tuple[dict[str, Deal], dict[str, dict[str, Any]]]:
        deals: dict[str, Deal] = {}
        errors: dict[str, dict[str, Any]] = {}
        per_request = MAX_BATCH_CALLS // 2 if with_contact else MAX_BATCH_CALLS
        for start in range(0, len(deal_ids), per_request):
            chunk = list(deal_ids[start : start + per_request])
            commands: dict[str, str] = {}
            for n, deal_id in enumerate(chunk):
                commands[f"d{n}"] = f"crm.deal.get?{query_string({'id': deal_id})}"
                if with_contact:
                    commands[f"c{n}"] = f"crm.contact.get?id=$result[d{n}][CONTACT_ID]"
            results, failed = self.batch(commands)
            for n, deal_id in enumerate(chunk):
                deal = results.get(f"d{n}")
                if not isinstance(deal, dict):
                    error = failed.get(f"d{n}")
                    errors[deal_id] = error if isinstance(error, dict) else {}
                    continue
                contact = results.get(f"c{n}")
                deals[deal_id] = self._deal(deal, contact if isinstance(contact, dict) else None)
        return deals, errors

    def _deal(self, deal: dict[str, Any], contact: dict[str, Any] | None) -> Deal:
        try:
            amount = from_decimal_string(str(deal.get("OPPORTUNITY") or "0"))
        except ValueError:
            amount = None
        number_field = self._settings.invoice_number_field
        number = str(deal.get(number_field) or "").strip() if number_field else ""
        return Deal(
            deal_id=str(deal["ID"]),
            title=str(deal.get("TITLE") or ""),
            amount=amount,
            currency=deal.get("CURRENCY_ID") or None,
            stage=deal.get("STAGE_ID"),
            customer=_customer(contact),
            invoice_number=number or None,
            manager_id=str(deal["ASSIGNED_BY_ID"]) if deal.get("ASSIGNED_BY_ID") else None,
            contact_id=_entity_id(deal.get("CONTACT_ID")),
            company_id=_entity_id(deal.get("COMPANY_ID")),
            fields={k: str(v) for k, v in deal.items() if k.startswith("UF_CRM_") and isinstance(v, str | int | float)},
        )

    # -- writes ------------------------------------------------------------------------------------------------------

    def _commands(self, key: str, deal_id: str, op: DealOp) -> list[tuple[str, str]]:
        match op.kind:
            case "set_stage":
                fields: dict[str, Any] = {"STAGE_ID": op.stage}
                if op.payment_url and self._settings.link_field:
                    fields[self._settings.link_field] = op.payment_url
                params = {"id": deal_id, "fields": fields, "params": {"REGISTER_SONET_EVENT": "N"}}
                return [(key, f"crm.deal.update?{query_string(params)}")]
            case "comment":
                comment = {"fields": {"ENTITY_ID": deal_id, "ENTITY_TYPE": "deal", "COMMENT": op.text or ""}}
                return [(key, f"crm.timeline.comment.add?{query_string(comment)}")]
            case "notify_manager":
                notify = {"USER_ID": f"$result[{key}d][ASSIGNED_BY_ID]", "MESSAGE": op.text or ""}
                return [
                    (f"{key}d", f"crm.deal.get?{query_string({'id': deal_id})}"),
                    (key, f"im.notify.system.add?{query_string(notify)}"),
                ]
            case "send_to_customer":
                logger.debug("deal %s: the portal's automation sends the link to the client", deal_id)
                return []
            case "customer_profile":
                return self._profile_commands(key, op.profile)
        return []  # pragma: no cover - DealOpKind is closed

    def _profile_commands(self, key: str, profile: ProfileWrite | None) -> list[tuple[str, str]]:
        """Payments on the customer's profile: one `crm.timeline.comment.add {ENTITY_TYPE: contact|company}` per
        entry, then one `crm.contact.update` / `crm.company.update` with the tenant's mapped UF_CRM_ fields (money
        fields as `1500.00|RUB`, the date as ISO 8601) — absolute values, so a repeat writes the same."""
        if profile is None:
            return []
        kind, entity_id = profile.entity.kind, profile.entity.entity_id
        commands: list[tuple[str, str]] = []
        for n, text in enumerate(profile.entries):
            comment = {"fields": {"ENTITY_ID": entity_id, "ENTITY_TYPE": kind, "COMMENT": text}}
            commands.append((f"{key}e{n}", f"crm.timeline.comment.add?{query_string(comment)}"))
        fields = self._profile_fields(profile)
        if fields:
            params = {"id": entity_id, "fields": fields, "params": {"REGISTER_SONET_EVENT": "N"}}
            commands.append((f"{key}f", f"crm.{kind}.update?{query_string(params)}"))
        return commands

    def _profile_fields(self, profile: ProfileWrite) -> dict[str, str]:
        settings = self._settings.customer_profile
        names = settings.fields_of(profile.entity.kind) if settings is not None else {}
        fields: dict[str, str] = {}
        if "total_paid" in names:
            fields[names["total_paid"]] = f"{to_decimal_string(profile.total_paid)}|{profile.currency}"
        if "last_payment_date" in names and profile.last_payment_at is not None:
            fields[names["last_payment_date"]] = profile.last_payment_at.isoformat(timespec="seconds")
        if "last_payment_amount" in names and profile.last_payment_amount is not None:
            currency = profile.last_payment_currency or profile.currency
            fields[names["last_payment_amount"]] = f"{to_decimal_string(profile.last_payment_amount)}|{currency}"
        return fields

    @property
    def echoes_writes(self) -> bool:
        """A stage trigger binds ONCRMDEALUPDATE, so each `crm.deal.update` we send comes back to us as an event."""
        return isinstance(self._settings.trigger, Bitrix24StageTrigger)

    def echo_counts(self, updates: Sequence[DealUpdate]) -> dict[str, int]:
        """How many change events `apply(updates)` will raise at us, per deal: one per `crm.deal.update` sent."""
        if not self.echoes_writes:
            return {}
        units = _units(updates, merge=self._settings.merge_updates)
        return {deal_id: n for deal_id, n in self._stage_writes(units).items() if n}

    @staticmethod
    def _stage_writes(units: list[_Unit]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for unit in units:
            counts[unit.deal_id] = counts.get(unit.deal_id, 0) + sum(op.kind == "set_stage" for _, op in unit.ops)
        return counts

    def apply(self, updates: Sequence[DealUpdate]) -> list[UpdateOutcome]:
        """The updates become units (`_units`: one per update in rounds — a deal's k-th update in the k-th round —
        or, with `merge_updates`, one per deal), packed in order into `batch` requests of up to 50 calls, a unit
        never split between two, a new round in a new request. A request that fails as a whole makes it and every
        later one wait (retried, in order)."""
        outcomes: list[UpdateOutcome | None] = [None] * len(updates)
        units = _units(updates, merge=self._settings.merge_updates)
        chunk: list[tuple[str, str]] = []
        owners: dict[str, tuple[int, ...]] = {}
        pending: list[_Unit] = []

        def flush() -> None:
            if not chunk:
                return
            _, errors = self.batch(dict(chunk))  # CrmUnavailable / CrmRejected: handled below
            failed: dict[int, list[str]] = {}
            for key, members in owners.items():
                error = errors.get(key)
                if isinstance(error, dict):
                    for index in members:
                        failed.setdefault(index, []).append(
                            f"{key}: {error.get('error_description') or error.get('error')}"
                        )
            for unit in pending:
                for index in unit.members:
                    reasons = failed.get(index)
                    outcomes[index] = UpdateOutcome.park("; ".join(reasons)) if reasons else UpdateOutcome.done()
            chunk.clear()
            owners.clear()
            pending.clear()

        try:
            for number, unit in enumerate(units):
                commands: list[tuple[str, str]] = []
                for n, (members, op) in enumerate(unit.ops):
                    made = self._commands(f"m{number}o{n}", unit.deal_id, op)
                    commands += made
                    owners.update({key: members for key, _ in made})
                if not commands:
                    for index in unit.members:
                        outcomes[index] = UpdateOutcome.done()
                    continue
                if len(chunk) + len(commands) > MAX_BATCH_CALLS or (pending and pending[-1].round != unit.round):
                    # `owners` already names this unit's keys: keep them for the next request
                    mine = {key: owners.pop(key) for key, _ in commands}
                    flush()
                    owners.update(mine)
                chunk.extend(commands)
                pending.append(unit)
            flush()
        except (CrmUnavailable, CrmRejected) as exc:
            # The whole request failed (over the limit, down, or refused as a whole: no access, a dead token).
            # What earlier requests wrote stays done; this request's updates and the later ones wait — an
            # account-wide refusal is not the updates' fault, so they are retried (and parked by the queue's redrive
            # policy if it lasts), never dropped.
            return undecided_wait(outcomes, str(exc))
        return undecided_wait(outcomes)

    # -- inbound -----------------------------------------------------------------------------------------------------

    def parse_webhook(self, headers: dict[str, str], body: bytes, query: dict[str, str]) -> CrmWebhook:
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedNotification(f"not a form-encoded body: {exc}") from None
        token = form.get("auth[application_token]", "")
        if not hmac.compare_digest(token.encode(), self._app_token.encode()):
            raise InvalidSignature("auth[application_token] does not match")
        domain = form.get("auth[domain]", "")
        if domain.lower() != self._settings.portal.lower():
            raise InvalidSignature(f"auth[domain] {domain!r} is not the tenant's portal")
        trigger = self._settings.trigger
        if "event_token" in form or "code" in form:  # a robot call
            code = form.get("code", "")
            match = _ROBOT_DEAL.match(form.get("document_id[2]", ""))
            if not isinstance(trigger, Bitrix24RobotTrigger) or code != trigger.code:
                if match is None or not code:
                    return CrmWebhook(ignored=(f"robot {code!r} is not ours",))
                properties = {
                    key[len("properties[") : -1]: value
                    for key, value in form.items()
                    if key.startswith("properties[") and key.endswith("]")
                }
                robot = DealMoved(
                    deal_id=match.group(1), robot=code, run_id=form.get("event_token") or None, properties=properties
                )
                return CrmWebhook(moves=(robot,), ignored=(f"robot {code!r} is not ours",))
            if match is None:
                raise MalformedNotification("a robot call without document_id[2]=DEAL_<id>")
            return CrmWebhook(commands=(IssueInvoiceCommand(deal_id=match.group(1)),))
        event = form.get("event", "").upper()
        if not event:
            raise MalformedNotification("missing field: event")
        if event not in UPDATE_EVENTS:
            return CrmWebhook(ignored=(f"event {event} does not ask for an invoice",))
        deal_id = form.get("data[FIELDS][ID]", "").strip()
        if not _DEAL_ID.match(deal_id):
            raise MalformedNotification("missing or bad field: data[FIELDS][ID]")
        moved = (DealMoved(deal_id=deal_id),)  # the event names no stage: a CRM action trigger reads the deal
        if not isinstance(trigger, Bitrix24StageTrigger):
            return CrmWebhook(ignored=(f"event {event} does not ask for an invoice",), moves=moved)
        return CrmWebhook(commands=(IssueInvoiceCommand(deal_id=deal_id, when_stage=trigger.stage_id),), moves=moved)


@dataclass(frozen=True)
class _Unit:
    """What one deal gets in one request: its updates' ops merged, each op with the updates it stands for."""

    deal_id: str
    members: tuple[int, ...]
    ops: tuple[tuple[tuple[int, ...], DealOp], ...]
    round: int = 0


def _rounds(updates: Sequence[DealUpdate], indexes: Sequence[int]) -> list[_Unit]:
    """One unit per update, a deal's k-th update in round k; sorted by round (stable: batch order within one)."""
    seen: dict[str, int] = {}
    units: list[_Unit] = []
    for index in indexes:
        update = updates[index]
        k = seen.get(update.deal_id, 0)
        seen[update.deal_id] = k + 1
        units.append(_Unit(update.deal_id, (index,), tuple(((index,), op) for op in update.ops), k))
    return sorted(units, key=lambda unit: unit.round)


def _units(updates: Sequence[DealUpdate], merge: bool) -> list[_Unit]:
    """Without `merge`: `_rounds`. With it, several pending updates of one deal become one, in the order of their
    first update: one `crm.deal.update`
    with the last stage asked (and the last payment link given) — the stages in between would be overwritten at
    once — at the place of the first stage write, then every other op in order (comments and notices are each
    kept). Its outcome is each member's: a refused stage write parks every update that asked for a stage. A deal
    whose merged ops would not fit one request keeps its updates apart (in order)."""
    if not merge:
        return _rounds(updates, range(len(updates)))
    by_deal: dict[str, list[int]] = {}
    for index, update in enumerate(updates):
        by_deal.setdefault(update.deal_id, []).append(index)
    units: list[_Unit] = []
    for deal_id, indexes in by_deal.items():
        merged: list[tuple[tuple[int, ...], DealOp]] = []
        stage_at: int | None = None
        for index in indexes:
            for op in updates[index].ops:
                if op.kind != "set_stage":
                    merged.append(((index,), op))
                    continue
                if stage_at is None:
                    stage_at = len(merged)
                    merged.append(((index,), op))
                    continue
                owners, earlier = merged[stage_at]
                link = op.payment_url or earlier.payment_url
                merged[stage_at] = ((*owners, index), op.model_copy(update={"payment_url": link}))
        calls = sum(_calls(op) for _, op in merged)
        if len(indexes) > 1 and calls > MAX_BATCH_CALLS:
            units += [_Unit(deal_id, (i,), tuple(((i,), op) for op in updates[i].ops)) for i in indexes]
            continue
        units.append(_Unit(deal_id, tuple(indexes), tuple(merged)))
    return units


def _calls(op: DealOp) -> int:
    """How many batch commands one op takes."""
    if op.kind == "notify_manager":
        return 2
    if op.kind == "send_to_customer":
        return 0
    if op.kind == "customer_profile":
        return len(op.profile.entries) + 1 if op.profile is not None else 0
    return 1


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _build(settings: Bitrix24Settings, context: AdapterContext) -> Bitrix24:
    app_token = context.secret(settings.application_token)
    if isinstance(settings.auth, Bitrix24WebhookAuth):
        return Bitrix24(settings, app_token, context.secret(settings.auth.url), throttle=context.throttle)
    auth = settings.auth
    assert context.oauth_session is not None, "the wiring supplies OAuth sessions to CRMs"
    refresh = oauth_refresher(
        auth.token_url or "https://oauth.bitrix.info/oauth/token/", auth.client_id, context.secret(auth.client_secret)
    )
    session = context.oauth_session(f"{context.tenant_id}:bitrix24", refresh, auth)
    return Bitrix24(
        settings,
        app_token,
        settings.rest_url or f"https://{settings.portal}/rest/",
        access=session.access_token,
        on_unauthorized=session.invalidate,
        throttle=context.throttle,
    )


CRMS.register("bitrix24", Bitrix24Settings, _build)
