"""amoCRM API v4 (`https://<subdomain>.amocrm.ru`), spoken with `Authorization: Bearer <token>` (an OAuth access
token, or the long-lived token of a private integration).

Wire format:
- `GET /api/v4/leads/{id}?with=contacts` → `{id, name, price, status_id, pipeline_id, responsible_user_id,
  custom_fields_values: [{field_id, values: [{value}]}] | null, _embedded: {contacts: [{id, is_main}]}}`; a lead
  that does not exist answers 204 (or 404). `price` is an integer number of whole currency units (×100 here); the
  lead carries no currency (the tenant's applies). The stage is `str(status_id)`.
- `GET /api/v4/contacts/{id}` → `{id, name, custom_fields_values: [{field_code: "EMAIL" | "PHONE", values:
  [{value, enum_code}]}]}`: the first e-mail and phone are the customer's.
- `GET /api/v4/leads?filter[id][]=…[&with=contacts]` → `{_embedded: {leads: [...]}}`, or 204 when none matched
  (`get_deals`, the responsible users of `notify_manager`).
- `PATCH /api/v4/leads` `[{id, status_id, pipeline_id, custom_fields_values: [{field_id, values: [{value}]}]}]`,
  `POST /api/v4/leads/notes` `[{entity_id, note_type: "common", params: {text}}]`, `POST /api/v4/tasks`
  `[{task_type_id: 1, text, complete_till, entity_id, entity_type: "leads", responsible_user_id}]`: batches, at most
  `CHUNK` items per request. A batch that fails validation answers 400 `{"validation-errors": [{request_id, errors:
  [{code, path, detail}]}], ...}`, `request_id` being the item's index in the array, and nothing of it is saved.
- Errors: 401 the token is not (or no longer) valid; 429 over the account's limit (about 7 requests/s — repeated
  excess gets the account blocked with 403); 5xx. `throttle` is called before every request.
- OAuth (`oauth_refresher`): `POST /oauth2/access_token {client_id, client_secret, grant_type: "refresh_token",
  refresh_token, redirect_uri}` → `{token_type, expires_in, access_token, refresh_token}`. The refresh token is
  single-use (see `oauth.OAuthSession`); a dead one answers 400/401 and the integration must be re-authorised.
- Webhooks are form-encoded and UNSIGNED: the URL registered in amoCRM carries `?token=<webhook_token>` (compared in
  constant time) and `account[subdomain]` must be the tenant's. Shapes: `leads[status][0][id]`,
  `leads[status][0][status_id]`, `leads[status][0][pipeline_id]`, `leads[status][0][old_status_id]`, …,
  `leads[update][0][id|status_id|pipeline_id|price|…]`, `leads[add][0][…]`, `account[id]`, `account[subdomain]`.

How `apply` delivers a batch of updates (in as few requests as possible):
1. one `PATCH /api/v4/leads` with one item per lead: the status of the lead's LAST `set_stage` op in the batch and the
   payment link of its last `set_stage` op that carries one (the state a sequential application would leave);
   then, for payments on the customer's profile (opt-in, `customer_profile`), one `PATCH /api/v4/contacts` (or
   `/companies`) `[{id, custom_fields_values: [{field_id, values: [{value}]}]}]` with each entity's totals (numeric
   fields `"1500.00"`, date fields unix time) — the absolute writes first, harmless to repeat;
2. one `POST /api/v4/leads/notes` with every `comment` op, in order, then one `POST /api/v4/contacts/notes` (or
   `/companies/notes`) `[{entity_id, note_type: "common", params: {text}}]` with every profile entry; the entity is
   the lead's `_embedded.contacts` main contact (`is_main`) or its `_embedded.companies` (read by `get_deals` once
   per lead, then remembered by PayBridge);
4. for `notify_manager` ops: one `GET /api/v4/leads?filter[id][]=…` (the responsible users), then one
   `POST /api/v4/tasks` with a task per op, due `task_due_hours` from now.
`send_to_customer` ops send nothing and count as done: amoCRM messages the client through its own Salesbot /
digital-pipeline automation on the awaiting-payment status, which reads the link field.

Outcomes, one per update:
- a 429 refused the request (nothing of it was applied): the same request is sent again after a second (amoCRM's
  window; `Retry-After` when it gives up to 5 s), at most `RATE_LIMIT_RESENDS` times, each after a token of the
  account's bucket — so the notes that landed before it are not sent again by a retry of their updates;
- a request that fails transiently (timeout, 5xx) → every update with an item in it that is not complete yet is
  retried; a 429 after those resends, a throttle that will not wait, or a token amoCRM keeps refusing (401 after one
  refresh, a dead refresh token) stops the batch: nothing more is sent and every update not complete yet is retried;
- a 400 with `validation-errors` → the updates whose items amoCRM names are parked; the rest of that request is sent
  again without them (amoCRM saved none of it). A 400 we cannot map, or another 4xx, parks every update in it;
- updates are all-or-nothing in order per lead: an update with a failed item sends nothing more in later steps, and
  every later update of the same lead in the batch is retried without being sent (even if the merged PATCH already
  carried its stage). Delivery is at least once: a retried update may repeat a note that had landed;
- everything else is done.

Echo guard: our own PATCH moving a lead to a mapped status makes amoCRM send a status webhook too; it is ignored
because that status is not the trigger status. (A stage mapping that sends leads back to the trigger status would
loop; the trigger status must not be one of the tenant's mapped stages.) `leads[add]` and other events are ignored:
only a lead that moves to (status event) or is edited while in (update event) the trigger status asks for an invoice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import hmac
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode

from pydantic import ConfigDict, Field

from paybridge.adapters.crm.base import (
    CrmWebhook,
    Deal,
    DealMoved,
    DealUpdate,
    IssueInvoiceCommand,
    RateLimit,
    Throttle,
    UpdateOutcome,
    no_throttle,
)
from paybridge.adapters.crm.oauth import TokenPair
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, InvalidSignature, MalformedNotification
from paybridge.adapters.http import make_client
from paybridge.adapters.registry import CRMS, AdapterContext
from paybridge.adapters.settings import (
    CrmRateLimitSettings,
    CrmSettingsBase,
    HttpUrl,
    LongLivedTokenAuth,
    OAuthAppAuth,
    SecretRef,
)
from paybridge.domain.customer_profile import ProfileWrite
from paybridge.domain.invoice import Customer
from paybridge.domain.model import Model
from paybridge.domain.money import to_decimal_string


class AmoCrmStatusTrigger(Model):
    """Issue an invoice when a lead moves to this status (webhook `leads[status]`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status_id: int = Field(gt=0)
    pipeline_id: int | None = Field(default=None, gt=0)


class AmoCrmSettings(CrmSettingsBase):
    """amoCRM API v4. Its webhooks are unsigned: the URL registered in amoCRM carries `?token=<webhook_token>`, and
    `account[subdomain]` must be the tenant's."""

    kind: Literal["amocrm"]
    profile_field_pattern: ClassVar[str] = r"^[1-9][0-9]{0,11}$"
    profile_field_hint: ClassVar[str] = "an amoCRM custom field id"
    base_url: HttpUrl = Field(description="https://<subdomain>.amocrm.ru")
    subdomain: str = Field(pattern=r"^[a-z0-9-]{1,63}$")
    auth: Annotated[OAuthAppAuth | LongLivedTokenAuth, Field(discriminator="kind")]
    webhook_token: SecretRef = Field(description="a random token of ours that amoCRM's webhook URL carries (?token=)")
    trigger: AmoCrmStatusTrigger
    #: The pipeline the mapped statuses belong to (PATCH needs it with `status_id`).
    pipeline_id: int = Field(gt=0)
    #: The lead's custom field (URL/text) that receives the payment link.
    link_field_id: int | None = Field(default=None, gt=0)
    #: A lead custom field holding the invoice number; the lead id is used when absent or empty.
    invoice_number_field_id: int | None = Field(default=None, gt=0)
    #: Tasks for the responsible manager are due this many hours after they are set.
    task_due_hours: int = Field(default=24, ge=1, le=720)
    #: amoCRM allows 7 requests in any second. A bucket admits up to `burst + per_second` in one second, so 7/s with a
    #: burst of 7 let 13 through after a pause (an outage's retries at once): amoCRM answered 429 to the later ones,
    #: and an update retried after its note had landed repeated the note. 6/s with a burst of 1 keeps every second at
    #: most 7, with a sixth of a second between requests to spare for jitter (`tests/unit/test_amocrm_contract.py`).
    rate_limit: CrmRateLimitSettings = Field(default_factory=lambda: CrmRateLimitSettings(per_second=6, burst=1))

    def stage_problems(self, stages: dict[str, str | None]) -> list[str]:
        wrong = [name for name, value in stages.items() if value is not None and not str(value).isdigit()]
        return [f"amoCRM stages are status ids (digits); not so for: {', '.join(wrong)}"] if wrong else []


logger = logging.getLogger(__name__)

#: Items per batch request (amoCRM accepts up to 250; it recommends 50).
CHUNK = 50
#: amoCRM's task type "Follow-up" (Связаться).
TASK_TYPE_FOLLOW_UP = 1
#: Webhook events that can ask for an invoice; the others are ignored.
TRIGGER_EVENTS = frozenset({"status", "update"})
#: A 400 naming bad items is answered by sending the rest again, at most this many times per request.
MAX_RESENDS = 3
#: A request refused with 429 (not applied) is sent again, after a wait, at most this many times.
RATE_LIMIT_RESENDS = 2

_LEAD_KEY = re.compile(r"^leads\[([a-z_]+)\]\[(\d+)\]\[([a-z_]+)\]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


class _Stop(Exception):
    """Sending more now would only make things worse (rate limit, authorisation): stop the batch."""


class _RateLimited(CrmUnavailable, _Stop):
    pass


class _AuthUnavailable(CrmUnavailable, _Stop):
    pass


class _AuthRejected(CrmRejected, _Stop):
    pass


class _NotFound(CrmRejected):
    pass


class _BadRequest(CrmRejected):
    def __init__(self, message: str, rejected: dict[int, str] | None):
        super().__init__(message)
        self.rejected = rejected  # item index → why, when amoCRM said which items


def _url(settings: AmoCrmSettings) -> str:
    return settings.base_url.rstrip("/")


def oauth_refresher(
    settings: AmoCrmSettings, client_secret: str, transport: Any = None, clock: Callable[[], float] = time.time
) -> Callable[[str], TokenPair]:
    """The `refresh` of an `OAuthSession` for this account: trade the single-use refresh token for a new pair."""
    auth = settings.auth
    if not isinstance(auth, OAuthAppAuth):
        raise TypeError(f"amoCRM {settings.subdomain}: oauth_refresher needs OAuth settings, not {auth.kind}")
    url = auth.token_url or f"{_url(settings)}/oauth2/access_token"
    http = make_client("", {}, transport)

    def refresh(refresh_token: str) -> TokenPair:
        body = {
            "client_id": auth.client_id,
            "client_secret": client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        }
        if auth.redirect_uri:
            body["redirect_uri"] = auth.redirect_uri
        import httpx  # lazy: see paybridge.adapters.http

        try:
            response = http.post(url, json=body)
        except httpx.TransportError as exc:
            raise CrmUnavailable(f"amoCRM {settings.subdomain}: token refresh: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise CrmUnavailable(
                f"amoCRM {settings.subdomain}: token refresh: HTTP {response.status_code}: {response.text[:200]}"
            )
        if response.status_code >= 400:
            raise CrmRejected(
                f"amoCRM {settings.subdomain}: the refresh token was refused (HTTP {response.status_code}: "
                f"{response.text[:200]}); the integration must be re-authorised in amoCRM"
            )
        try:
            data = response.json()
            return TokenPair(
                access_token=str(data["access_token"]),
                refresh_token=str(data["refresh_token"]),
                expires_at=int(clock()) + int(data["expires_in"]),
            )
        except (ValueError, KeyError, TypeError):
            raise CrmUnavailable(
                f"amoCRM {settings.subdomain}: token refresh: unexpected answer {response.text[:200]}"
            ) from None

    return refresh


@dataclass
class _Item:
    """One element of a batch request, carrying ops of the updates `owners` (indexes into the batch)."""

    body: dict[str, Any]
    owners: tuple[int, ...]
    lead: int


class _Batch:
    """The outcomes of one `apply` as they become known, and the per-lead order rules."""

    def __init__(self, updates: Sequence[DealUpdate]):
        self.updates = updates
        self.outcomes: list[UpdateOutcome | None] = [None] * len(updates)
        self.owed = [0] * len(updates)  # items of each update not yet sent
        self.stopped = False

    def live(self, item: _Item) -> bool:
        return not self.stopped and all(self.outcomes[i] is None for i in item.owners)

    def sent(self, item: _Item) -> None:
        for i in item.owners:
            self.owed[i] -= 1

    def fail(self, owners: Sequence[int], outcome: UpdateOutcome) -> None:
        """These updates failed; later updates of the same leads wait (retry) without being sent."""
        failed = [i for i in owners if self.outcomes[i] is None]
        for i in failed:
            self.outcomes[i] = outcome
        for i in failed:
            deal = self.updates[i].deal_id
            for j in range(i + 1, len(self.updates)):
                if self.updates[j].deal_id == deal and self.outcomes[j] is None:
                    self.outcomes[j] = UpdateOutcome.retry(f"an earlier update of lead {deal} failed")

    def stop(self, reason: str) -> None:
        """Send nothing more: every update not complete yet is retried (and the later ones of its lead)."""
        self.fail([i for i, owed in enumerate(self.owed) if owed > 0], UpdateOutcome.retry(f"not sent: {reason}"))
        self.stopped = True

    def result(self) -> list[UpdateOutcome]:
        return [o if o is not None else UpdateOutcome.done() for o in self.outcomes]


class AmoCrm:
    """amoCRM v4 for one account (see the module docstring for the wire format and the batching rules)."""

    name = "amocrm"

    def __init__(
        self,
        settings: AmoCrmSettings,
        access: Callable[[], str],
        webhook_token: str,
        throttle: Throttle = no_throttle,
        transport: Any = None,
        on_unauthorized: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._settings = settings
        self._access, self._on_unauthorized = access, on_unauthorized
        self._webhook_token = webhook_token
        self._throttle, self._clock, self._sleep = throttle, clock, sleep
        self.rate_limit = RateLimit(per_second=settings.rate_limit.per_second, burst=settings.rate_limit.burst)
        self._http = make_client(_url(settings), {"Accept": "application/json"}, transport)

    # -- HTTP ------------------------------------------------------------------------------------------------------

    def _token(self, refresh: bool) -> str:
        try:
            if refresh and self._on_unauthorized is not None:
                return self._on_unauthorized()
            return self._access()
        except CrmRejected as exc:
            raise _AuthRejected(str(exc)) from exc
        except CrmUnavailable as exc:
            raise _AuthUnavailable(str(exc)) from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request (throttled), sent again with a fresh token after a 401 (once) and after a wait when refused
        with 429 (`RATE_LIMIT_RESENDS` times: it was not applied); errors mapped to ours."""
        where = f"amoCRM {self._settings.subdomain}: {method} {path}"
        token = self._token(refresh=False)
        refreshed, resent = False, 0
        while True:
            try:
                self._throttle(self._settings.subdomain, self.rate_limit)
            except CrmUnavailable as exc:
                raise _RateLimited(f"{where}: {exc}") from exc
            import httpx  # lazy: see paybridge.adapters.http

            try:
                response = self._http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            except httpx.TransportError as exc:
                raise CrmUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
            status = response.status_code
            if status == 401 and not refreshed and self._on_unauthorized is not None:
                logger.info("%s: 401, refreshing the token once", where)
                token, refreshed = self._token(refresh=True), True
                continue
            if status == 429 and resent < RATE_LIMIT_RESENDS:
                resent += 1
                wait = _retry_after(response)
                logger.info("%s: 429, sending it again in %.1f s (%d of %d)", where, wait, resent, RATE_LIMIT_RESENDS)
                self._sleep(wait)
                continue
            if status < 400:
                return response
            text = f"{where}: HTTP {status}: {response.text[:300]}"
            if status == 401:
                raise _AuthRejected(f"{text} (the token is refused; re-authorise the integration)")
            if status == 429:
                raise _RateLimited(text)
            if status >= 500:
                raise CrmUnavailable(text)
            if status == 404:
                raise _NotFound(text)
            if status == 400:
                raise _BadRequest(text, _rejected_items(response))
            raise CrmRejected(text)

    # -- setup -----------------------------------------------------------------------------------------------------

    def register_webhooks(self, handler_url: str) -> list[str] | None:
        """Subscribe `handler_url?token=<webhook_token>` to lead status changes, once: `GET /api/v4/webhooks
        ?filter[destination]=…` (204 when there is none), then `POST /api/v4/webhooks {destination, settings:
        ["status_lead"]}`. The token stays out of what this answers."""
        destination = f"{handler_url}?{urlencode({'token': self._webhook_token})}"
        shown = f"{handler_url}?token=…"
        found = self._request("GET", "/api/v4/webhooks", params={"filter[destination]": destination})
        hooks = [] if found.status_code == 204 else (_json_object(found).get("_embedded") or {}).get("webhooks") or []
        for hook in hooks:
            if hook.get("destination") == destination and "status_lead" in (hook.get("settings") or []):
                return [f"webhook {shown} (status_lead): registered already"]
        self._request("POST", "/api/v4/webhooks", json={"destination": destination, "settings": ["status_lead"]})
        return [f"webhook {shown} (status_lead): registered (POST /api/v4/webhooks)"]

    # -- reads -----------------------------------------------------------------------------------------------------

    def get_deal(self, deal_id: str) -> Deal:
        """The lead with its main contact. Raises exactly CrmUnavailable / CrmRejected (the state machine and the
        problem mapping match on those class names, not on our private subclasses)."""
        try:
            return self._get_deal(deal_id)
        except CrmUnavailable as exc:
            if type(exc) is CrmUnavailable:
                raise
            raise CrmUnavailable(str(exc)) from exc
        except CrmRejected as exc:
            if type(exc) is CrmRejected:
                raise
            raise CrmRejected(str(exc)) from exc

    def get_deals(self, deal_ids: Sequence[str]) -> dict[str, Deal]:
        """Leads without their contacts' details (`get_deal` reads a lead whole): one `GET /api/v4/leads
        ?filter[id][]=…&with=contacts` per CHUNK leads (204: none of them) — the stage, the custom fields, the main
        contact's and the company's ids. A lead amoCRM does not return is left out."""
        try:
            return self._get_deals(deal_ids)
        except CrmUnavailable as exc:
            raise CrmUnavailable(str(exc)) from exc
        except CrmRejected as exc:
            raise CrmRejected(str(exc)) from exc

    def _get_deals(self, deal_ids: Sequence[str]) -> dict[str, Deal]:
        leads = [lead for lead in dict.fromkeys(_lead_id(d) for d in deal_ids) if lead is not None]
        deals: dict[str, Deal] = {}
        for start in range(0, len(leads), CHUNK):
            part = leads[start : start + CHUNK]
            params = [("filter[id][]", str(lead)) for lead in part] + [("with", "contacts"), ("limit", "250")]
            response = self._request("GET", "/api/v4/leads", params=params)
            if response.status_code == 204:
                continue
            for lead in (_json_object(response).get("_embedded") or {}).get("leads") or ():
                if isinstance(lead, dict) and isinstance(lead.get("id"), int):
                    deals[str(lead["id"])] = self._deal(lead, Customer())
        return deals

    def _get_deal(self, deal_id: str) -> Deal:
        lead_id = _lead_id(deal_id)
        if lead_id is None:
            raise CrmRejected(f"lead {deal_id!r} not found: not an amoCRM lead id")
        try:
            response = self._request("GET", f"/api/v4/leads/{lead_id}", params={"with": "contacts"})
        except _NotFound:
            raise CrmRejected(f"lead {lead_id} not found in amoCRM {self._settings.subdomain}") from None
        if response.status_code == 204:
            raise CrmRejected(f"lead {lead_id} not found in amoCRM {self._settings.subdomain}")
        lead = _json_object(response)
        return self._deal(lead, self._customer(lead), lead_id)

    def _deal(self, lead: dict[str, Any], customer: Customer, lead_id: int | None = None) -> Deal:
        price = lead.get("price")
        return Deal(
            deal_id=str(lead.get("id", lead_id)),
            title=str(lead.get("name") or ""),
            amount=_minor_units(price),
            currency=None,
            stage=_str_or_none(lead.get("status_id")),
            customer=customer,
            invoice_number=self._invoice_number(lead),
            manager_id=_str_or_none(lead.get("responsible_user_id")),
            contact_id=_embedded_id(lead, "contacts", main=True),
            company_id=_embedded_id(lead, "companies", main=False),
            fields={
                str(field["field_id"]): _first_value(field)
                for field in lead.get("custom_fields_values") or ()
                if isinstance(field, dict) and field.get("field_id") is not None
            },
        )

    def _invoice_number(self, lead: dict[str, Any]) -> str | None:
        field_id = self._settings.invoice_number_field_id
        if field_id is None:
            return None
        for field in lead.get("custom_fields_values") or ():
            if isinstance(field, dict) and field.get("field_id") == field_id:
                value = _first_value(field)
                return value or None
        return None

    def _customer(self, lead: dict[str, Any]) -> Customer:
        contacts = [c for c in ((lead.get("_embedded") or {}).get("contacts") or ()) if isinstance(c, dict)]
        if not contacts:
            return Customer()
        main = next((c for c in contacts if c.get("is_main")), contacts[0])
        try:
            response = self._request("GET", f"/api/v4/contacts/{int(main['id'])}")
        except _NotFound:
            response = None
        except (KeyError, TypeError, ValueError):
            return Customer()
        if response is None or response.status_code == 204:
            logger.warning("amoCRM %s: contact %s of lead %s is gone", self._settings.subdomain, main, lead.get("id"))
            return Customer()
        contact = _json_object(response)
        email = phone = None
        for field in contact.get("custom_fields_values") or ():
            if not isinstance(field, dict):
                continue
            if field.get("field_code") == "EMAIL" and email is None:
                email = _email(_first_value(field))
            elif field.get("field_code") == "PHONE" and phone is None:
                phone = _phone(_first_value(field))
        name = str(contact.get("name") or "").strip()[:200] or None
        return Customer(name=name, email=email, phone=phone)

    # -- writes ----------------------------------------------------------------------------------------------------

    def apply(self, updates: Sequence[DealUpdate]) -> list[UpdateOutcome]:
        batch = _Batch(updates)
        stages: dict[int, _Item] = {}  # lead → its PATCH item (the merged set_stage ops)
        notes: list[_Item] = []
        notices: list[tuple[int, int, str]] = []  # (update index, lead, text) for tasks
        profile_notes: dict[str, list[_Item]] = {"contact": [], "company": []}
        profile_patch: dict[tuple[str, int], _Item] = {}  # (entity kind, id) → its PATCH item (the last totals)
        for index, update in enumerate(updates):
            lead = _lead_id(update.deal_id)
            if lead is None:
                batch.fail([index], UpdateOutcome.park(f"{update.deal_id!r} is not an amoCRM lead id"))
                continue
            if any(op.kind == "set_stage" and op.stage is not None and _lead_id(op.stage) is None for op in update.ops):
                batch.fail([index], UpdateOutcome.park(f"lead {lead}: amoCRM stages are status ids (digits)"))
                continue
            for op in update.ops:
                if op.kind == "set_stage":
                    self._merge_stage(stages, lead, index, op.stage, op.payment_url)
                elif op.kind == "comment":
                    body = {"entity_id": lead, "note_type": "common", "params": {"text": op.text or ""}}
                    notes.append(_Item(body=body, owners=(index,), lead=lead))
                elif op.kind == "notify_manager":
                    notices.append((index, lead, op.text or ""))
                elif op.kind == "customer_profile":
                    if op.profile is not None:
                        self._profile_items(op.profile, index, lead, profile_notes, profile_patch)
                else:  # send_to_customer: amoCRM's own automation messages the client
                    logger.debug("amoCRM lead %s: send_to_customer is left to amoCRM's automation", lead)
        patch = [item for item in stages.values() if len(item.body) > 1]  # a stage op may change nothing here
        entity_patch = {kind: [i for (k, _), i in profile_patch.items() if k == kind] for kind in _ENTITY_PATH}
        profile_items = [*profile_notes["contact"], *profile_notes["company"], *profile_patch.values()]
        for item in [*patch, *notes, *profile_items]:
            for i in item.owners:
                batch.owed[i] += 1
        for index, _, _ in notices:
            batch.owed[index] += 1
        # The absolute writes (statuses, links, totals) first: repeated after a failure, they change nothing; the
        # notes after them, so that a failed write re-sends as few notes as possible
        self._send_items(batch, "PATCH", "/api/v4/leads", patch, "the status change")
        for kind, path in _ENTITY_PATH.items():
            self._send_items(batch, "PATCH", f"/api/v4/{path}", entity_patch[kind], f"the {kind}'s totals")
        self._send_items(batch, "POST", "/api/v4/leads/notes", notes, "the note")
        for kind, path in _ENTITY_PATH.items():
            self._send_items(batch, "POST", f"/api/v4/{path}/notes", profile_notes[kind], f"the {kind}'s note")
        self._send_tasks(batch, notices)
        return batch.result()

    def _profile_items(
        self,
        profile: ProfileWrite,
        index: int,
        lead: int,
        notes: dict[str, list[_Item]],
        patches: dict[tuple[str, int], _Item],
    ) -> None:
        """Payments on the customer's profile: a common note per entry on the contact / company, and its mapped
        custom fields (numeric: `"1500.00"`, date: unix time) — one PATCH item per entity, the last totals winning."""
        kind = profile.entity.kind
        entity_id = int(profile.entity.entity_id)
        for text in profile.entries:
            body = {"entity_id": entity_id, "note_type": "common", "params": {"text": text}}
            notes[kind].append(_Item(body=body, owners=(index,), lead=lead))
        settings = self._settings.customer_profile
        names = settings.fields_of(kind) if settings is not None else {}
        values: list[dict[str, Any]] = []
        if "total_paid" in names:
            values.append(_field(names["total_paid"], to_decimal_string(profile.total_paid)))
        if "last_payment_date" in names and profile.last_payment_at is not None:
            values.append(_field(names["last_payment_date"], int(profile.last_payment_at.timestamp())))
        if "last_payment_amount" in names and profile.last_payment_amount is not None:
            values.append(_field(names["last_payment_amount"], to_decimal_string(profile.last_payment_amount)))
        if not values:
            return
        known = patches.get((kind, entity_id))
        owners = known.owners if known is not None else ()
        if index not in owners:
            owners = (*owners, index)
        patches[(kind, entity_id)] = _Item(
            body={"id": entity_id, "custom_fields_values": values}, owners=owners, lead=lead
        )

    def _merge_stage(self, stages: dict[int, _Item], lead: int, index: int, stage: str | None, url: str | None) -> None:
        """Fold one set_stage op into the lead's PATCH item: the last status and the last link win."""
        item = stages.get(lead)
        if item is None:
            item = stages[lead] = _Item(body={"id": lead}, owners=(), lead=lead)
        if index not in item.owners:
            item.owners = (*item.owners, index)
        if stage is not None:
            item.body["status_id"] = int(stage)
            item.body["pipeline_id"] = self._settings.pipeline_id
        if url is not None and self._settings.link_field_id is not None:
            item.body["custom_fields_values"] = [{"field_id": self._settings.link_field_id, "values": [{"value": url}]}]

    def _send_items(self, batch: _Batch, method: str, path: str, items: list[_Item], what: str) -> None:
        queue = list(items)
        while queue:
            chunk: list[_Item] = []
            while queue and len(chunk) < CHUNK:
                item = queue.pop(0)
                if batch.live(item):
                    chunk.append(item)
            if not chunk:
                return
            self._send_chunk(batch, method, path, chunk, what)

    def _send_chunk(self, batch: _Batch, method: str, path: str, chunk: list[_Item], what: str) -> None:
        for _ in range(MAX_RESENDS + 1):
            try:
                self._request(method, path, json=[item.body for item in chunk])
            except _Stop as exc:
                batch.fail(_owners(chunk), UpdateOutcome.retry(str(exc)))
                batch.stop(str(exc))
                return
            except CrmUnavailable as exc:
                batch.fail(_owners(chunk), UpdateOutcome.retry(str(exc)))
                return
            except _BadRequest as exc:
                rejected = exc.rejected
                if not rejected or max(rejected) >= len(chunk):
                    batch.fail(_owners(chunk), UpdateOutcome.park(str(exc)))
                    return
                for position, why in sorted(rejected.items()):
                    lead = chunk[position].lead
                    batch.fail(
                        chunk[position].owners, UpdateOutcome.park(f"amoCRM refused {what} for lead {lead}: {why}")
                    )
                chunk = [item for position, item in enumerate(chunk) if position not in rejected and batch.live(item)]
                if not chunk:
                    return
                continue
            except CrmRejected as exc:
                batch.fail(_owners(chunk), UpdateOutcome.park(str(exc)))
                return
            for item in chunk:
                batch.sent(item)
            return
        batch.fail(_owners(chunk), UpdateOutcome.retry(f"amoCRM kept refusing items of {what}"))

    def _send_tasks(self, batch: _Batch, notices: list[tuple[int, int, str]]) -> None:
        live = [(i, lead, text) for i, lead, text in notices if batch.outcomes[i] is None and not batch.stopped]
        if not live:
            return
        managers = self._responsible_users(batch, live)
        due = int(self._clock()) + self._settings.task_due_hours * 3600
        tasks: list[_Item] = []
        for index, lead, text in live:
            if batch.outcomes[index] is not None or batch.stopped:
                continue
            if lead not in managers:
                batch.fail([index], UpdateOutcome.park(f"lead {lead} not found in amoCRM {self._settings.subdomain}"))
                continue
            body: dict[str, Any] = {
                "task_type_id": TASK_TYPE_FOLLOW_UP,
                "text": text,
                "complete_till": due,
                "entity_id": lead,
                "entity_type": "leads",
            }
            if managers[lead] is not None:
                body["responsible_user_id"] = managers[lead]
            tasks.append(_Item(body=body, owners=(index,), lead=lead))
        self._send_items(batch, "POST", "/api/v4/tasks", tasks, "the task")

    def _responsible_users(self, batch: _Batch, notices: list[tuple[int, int, str]]) -> dict[int, int | None]:
        """lead → its responsible user, for the leads of these notices (one GET per CHUNK leads)."""
        leads = list(dict.fromkeys(lead for _, lead, _ in notices))
        found: dict[int, int | None] = {}
        for start in range(0, len(leads), CHUNK):
            part = leads[start : start + CHUNK]
            owners = [i for i, lead, _ in notices if lead in part]
            if batch.stopped:
                return found
            params = [("filter[id][]", str(lead)) for lead in part] + [("limit", "250")]
            try:
                response = self._request("GET", "/api/v4/leads", params=params)
            except _Stop as exc:
                batch.fail(owners, UpdateOutcome.retry(str(exc)))
                batch.stop(str(exc))
                return found
            except CrmUnavailable as exc:
                batch.fail(owners, UpdateOutcome.retry(str(exc)))
                continue
            except CrmRejected as exc:
                batch.fail(owners, UpdateOutcome.park(str(exc)))
                continue
            if response.status_code == 204:
                continue
            try:
                data = _json_object(response)
            except CrmUnavailable as exc:
                batch.fail(owners, UpdateOutcome.retry(str(exc)))
                continue
            for lead in (data.get("_embedded") or {}).get("leads") or ():
                if isinstance(lead, dict) and isinstance(lead.get("id"), int):
                    user = lead.get("responsible_user_id")
                    found[lead["id"]] = user if isinstance(user, int) and user > 0 else None
        return found

    # -- webhooks --------------------------------------------------------------------------------------------------

    def parse_webhook(self, headers: dict[str, str], body: bytes, query: dict[str, str]) -> CrmWebhook:
        token = query.get("token") or ""
        if not self._webhook_token or not hmac.compare_digest(token.encode(), self._webhook_token.encode()):
            raise InvalidSignature("the webhook URL's token does not match")
        try:
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=True,
                errors="strict",
                max_num_fields=10_000,
            )
        except ValueError as exc:  # UnicodeDecodeError is a ValueError
            raise MalformedNotification(f"not a form-encoded body: {exc}") from None
        form: dict[str, str] = {}
        for key, value in pairs:
            form.setdefault(key, value)
        subdomain = form.get("account[subdomain]")
        if subdomain is None:
            raise MalformedNotification("missing field: account[subdomain]")
        if not hmac.compare_digest(subdomain.encode(), self._settings.subdomain.encode()):
            raise InvalidSignature(f"a webhook of account {subdomain!r}, not {self._settings.subdomain!r}")
        entries: dict[tuple[str, int], dict[str, str]] = {}
        for key, value in pairs:
            match = _LEAD_KEY.match(key)
            if match:
                event, position, field = match.group(1), int(match.group(2)), match.group(3)
                entries.setdefault((event, position), {}).setdefault(field, value)
        commands: dict[str, IssueInvoiceCommand] = {}
        ignored: list[str] = []
        moves = [
            DealMoved(deal_id=fields["id"], stage=fields.get("status_id") or None)
            for (event, _), fields in entries.items()
            if event == "status" and fields.get("id", "").isdigit()
        ]
        for (event, position), fields in entries.items():
            reason = self._trigger_mismatch(event, fields)
            if reason is None:
                lead = fields["id"]
                commands.setdefault(lead, IssueInvoiceCommand(deal_id=lead))
            else:
                ignored.append(f"leads[{event}][{position}]: {reason}")
        if not entries:
            ignored.append("no lead events")
        return CrmWebhook(commands=tuple(commands.values()), ignored=tuple(ignored), moves=tuple(moves))

    def _trigger_mismatch(self, event: str, fields: dict[str, str]) -> str | None:
        """None when this lead event asks for an invoice, else why not."""
        lead = fields.get("id", "")
        if not lead.isdigit():
            return f"no lead id ({lead!r})"
        if event not in TRIGGER_EVENTS:
            return f"lead {lead}: the {event} event does not ask for an invoice"
        trigger = self._settings.trigger
        status = fields.get("status_id", "")
        if status != str(trigger.status_id):
            return f"lead {lead}: status {status or '?'} is not the trigger status {trigger.status_id}"
        pipeline = fields.get("pipeline_id", "")
        if trigger.pipeline_id is not None and pipeline != str(trigger.pipeline_id):
            return f"lead {lead}: pipeline {pipeline or '?'} is not the trigger pipeline {trigger.pipeline_id}"
        return None


# -- helpers -------------------------------------------------------------------------------------------------------


#: The entities a payment goes to on the customer's profile, and their API paths.
_ENTITY_PATH = {"contact": "contacts", "company": "companies"}


def _field(field_id: str, value: str | int) -> dict[str, Any]:
    return {"field_id": int(field_id), "values": [{"value": value}]}


def _embedded_id(lead: dict[str, Any], name: str, main: bool) -> str | None:
    """The lead's main contact (`is_main`, else the first) or its company, from `_embedded`."""
    items = [c for c in ((lead.get("_embedded") or {}).get(name) or ()) if isinstance(c, dict) and c.get("id")]
    if not items:
        return None
    chosen = next((c for c in items if c.get("is_main")), items[0]) if main else items[0]
    return str(chosen["id"])


def _retry_after(response: httpx.Response) -> float:
    """How long to wait before sending a refused request again: `Retry-After` in seconds when amoCRM gives one of
    up to 5 s, else a second (its limit is per second)."""
    given = response.headers.get("Retry-After", "")
    try:
        seconds = float(given)
    except ValueError:
        return 1.0
    return seconds if 0 < seconds <= 5 else 1.0


def _owners(items: Sequence[_Item]) -> list[int]:
    return list(dict.fromkeys(i for item in items for i in item.owners))


def _lead_id(deal_id: str) -> int | None:
    text = deal_id.strip()
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def _rejected_items(response: httpx.Response) -> dict[int, str] | None:
    """Item index → why, from amoCRM's `validation-errors`; None when the answer does not say which items."""
    try:
        data = response.json()
    except ValueError:
        return None
    errors = data.get("validation-errors") if isinstance(data, dict) else None
    if not isinstance(errors, list) or not errors:
        return None
    rejected: dict[int, str] = {}
    for entry in errors:
        if not isinstance(entry, dict):
            return None
        request_id = str(entry.get("request_id", ""))
        if not request_id.isdigit():
            return None
        details = [
            f"{e.get('code', '?')} {e.get('path', '')}: {e.get('detail', '')}".strip()
            for e in entry.get("errors") or ()
            if isinstance(e, dict)
        ]
        rejected[int(request_id)] = "; ".join(details) or "rejected"
    return rejected


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise CrmUnavailable(f"amoCRM: unreadable answer {response.text[:200]}") from None
    if not isinstance(data, dict):
        raise CrmUnavailable(f"amoCRM: unexpected answer {response.text[:200]}")
    return data


def _first_value(field: dict[str, Any]) -> str:
    for value in field.get("values") or ():
        if isinstance(value, dict) and value.get("value") not in (None, ""):
            return str(value["value"]).strip()
    return ""


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _minor_units(price: Any) -> int | None:
    """amoCRM prices are whole currency units: 1500 → 150000."""
    if price is None or isinstance(price, bool):
        return None
    if isinstance(price, int):
        return price * 100
    if isinstance(price, float):
        return round(price * 100)
    text = str(price).strip()
    return int(text) * 100 if text.isdigit() else None


def _email(value: str) -> str | None:
    return value if value and len(value) <= 254 and _EMAIL.match(value) else None


def _phone(value: str) -> str | None:
    """amoCRM keeps phones as typed: `+7 (900) 123-45-67`, `89001234567`, … → E.164, or None."""
    digits = re.sub(r"\D", "", value)
    if not value.strip().startswith("+"):
        if len(digits) == 11 and digits[0] == "8":
            digits = "7" + digits[1:]
        elif len(digits) == 10 and digits[0] == "9":
            digits = "7" + digits
    candidate = "+" + digits
    return candidate if _E164.match(candidate) else None


def _build(settings: AmoCrmSettings, context: AdapterContext) -> AmoCrm:
    webhook_token = context.secret(settings.webhook_token)
    if isinstance(settings.auth, LongLivedTokenAuth):
        token = context.secret(settings.auth.token)
        return AmoCrm(settings, lambda: token, webhook_token, throttle=context.throttle)
    assert context.oauth_session is not None, "the wiring supplies OAuth sessions to CRMs"
    refresh = oauth_refresher(settings, context.secret(settings.auth.client_secret))
    session = context.oauth_session(f"{context.tenant_id}:amocrm", refresh, settings.auth)
    return AmoCrm(
        settings, session.access_token, webhook_token, throttle=context.throttle, on_unauthorized=session.invalidate
    )


CRMS.register("amocrm", AmoCrmSettings, _build)
