"""The sandbox CRM: deals with stages and a timeline, spoken to over HTTP like a real CRM.

Wire format (the server is `devstack/sandbox_crm.py`):
- REST with `Authorization: Bearer <token>`: `GET {base}/api/deals/{id}` → `{id, title, amount, currency, stage,
  contact{id, name, email, phone}, company{id, name}?, invoice_number}`; `PATCH {base}/api/deals/{id}` `{stage?,
  payment_url?}`;
  `POST {base}/api/deals/{id}/timeline` `{text}`; `POST {base}/api/deals/{id}/notifications` `{text}` (to the
  responsible manager); `POST {base}/api/messages` `{deal_id, to_email, to_phone, text}` (to the client).
- Contacts and companies (a deal's `contact.id`, `company.id`): `GET {base}/api/contacts/{id}` → `{id, name, email,
  phone, fields, timeline}`, `POST {base}/api/contacts/{id}/timeline` `{text}`, `PATCH {base}/api/contacts/{id}`
  `{fields}`; the same under `/api/companies/` (payments on the customer's profile).
- Batch: `POST {base}/api/batch {"requests": [{"method", "path", "body"?, "group"?}, …]}`, up to 50 of the requests
  above (paths from `/api/`), one request of the budget → `{"responses": [{"status", "body"}, …]}` in order; a
  request whose group already failed is not applied (424).
- Outbound webhook, Bitrix24-like, form-encoded: `event=ONCRMDEALISSUEINVOICE`, `data[FIELDS][ID]=<deal>`,
  `data[FIELDS][INVOICE_NUMBER]=<optional>`, `ts`, `auth[application_token]=<token>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import hmac
from collections.abc import Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs

from pydantic import Field

from paybridge.adapters.crm.base import (
    CrmWebhook,
    Deal,
    DealOp,
    DealUpdate,
    IssueInvoiceCommand,
    RateLimit,
    Throttle,
    UpdateOutcome,
    no_throttle,
    undecided_wait,
)
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, InvalidSignature, MalformedNotification
from paybridge.adapters.http import make_client, send
from paybridge.adapters.registry import CRMS, AdapterContext
from paybridge.adapters.settings import (
    CrmSettingsBase,
    CustomerProfileSettings,
    SecretRef,
)
from paybridge.domain.customer_profile import ProfileWrite
from paybridge.domain.invoice import Customer


class SandboxCrmSettings(CrmSettingsBase):
    kind: Literal["sandbox"] = "sandbox"
    #: The sandbox CRM's stages are the defaults (NEW, AWAITING_PAYMENT, PAID…).
    needs_stage_names: ClassVar[bool] = False
    base_url: str = Field(pattern=r"^https?://")
    token: SecretRef = Field(description="the sandbox CRM's API token")


ISSUE_EVENT = "ONCRMDEALISSUEINVOICE"
_ENTITY_PATH = {"contact": "contacts", "company": "companies"}


#: One request the sandbox CRM's API takes (alone, or as one of a batch): method, path under the portal, JSON body.
Call = tuple[str, str, dict[str, Any] | None]

#: Requests in one `POST /api/batch` (the server's cap).
MAX_BATCH = 50


class SandboxCrm:
    """Writes go in `POST /api/batch` requests of up to 50 calls, a deal's calls in its group: the CRM applies them
    in order and stops a deal at its first failure (its later calls answer 424), as a deal's updates must."""

    name = "sandbox"
    rate_limit = RateLimit(per_second=50, burst=100)

    def __init__(
        self,
        base_url: str,
        token: str,
        transport: Any = None,
        throttle: Throttle = no_throttle,
        profile: CustomerProfileSettings | None = None,
    ):
        self._token = token
        self._profile = profile
        self._account = base_url.rstrip("/")
        self._throttle = throttle
        self._http = make_client(base_url.rstrip("/"), {"Authorization": f"Bearer {token}"}, transport)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self._throttle(self._account, self.rate_limit)
        return send(self._http, method, url, transient=CrmUnavailable, permanent=CrmRejected, **kwargs)

    def _one(self, call: Call) -> httpx.Response:
        method, path, body = call
        return self._send(method, path, json=body) if body is not None else self._send(method, path)

    def batch(self, calls: Sequence[Call], groups: Sequence[str | None] | None = None) -> list[tuple[int, Any]]:
        """One `POST /api/batch`: each call's (status, body), in order. The request failing as a whole raises
        CrmUnavailable (down, over the limit, an answer that is not the batch's) or CrmRejected (refused)."""
        requests = [
            {"method": method, "path": path, **({"body": body} if body is not None else {}), "group": group}
            for (method, path, body), group in zip(calls, groups or [None] * len(calls), strict=True)
        ]
        try:
            answers = self._send("POST", "/api/batch", json={"requests": requests}).json()["responses"]
            parsed = [(int(a["status"]), a.get("body")) for a in answers]
        except (ValueError, KeyError, TypeError) as exc:
            raise CrmUnavailable(f"the CRM's batch answer is malformed: {exc!r}") from None
        if len(parsed) != len(calls):
            raise CrmUnavailable(f"the CRM answered {len(parsed)} of {len(calls)} batched calls")
        return parsed

    def apply(self, updates: Sequence[DealUpdate]) -> list[UpdateOutcome]:
        """The updates' calls packed in order into batches of up to 50, an update never split between two unless it
        alone is bigger (then its pieces go one batch each, stopping at the first failure). A deal's failed call
        stops the deal: its later updates wait (retried), the failed one is retried (429, 5xx) or parked (other
        4xx). A batch failing as a whole makes its updates and every later one wait."""
        outcomes: list[UpdateOutcome | None] = [None] * len(updates)
        stopped: dict[str, str] = {}  # deal → why its later updates wait
        chunk: list[tuple[int, Call]] = []

        def flush(unfinished: int | None = None) -> None:
            if not chunk:
                return
            answers = self.batch([call for _, call in chunk], [updates[i].deal_id for i, _ in chunk])
            for (index, (method, path, _)), (status, body) in zip(chunk, answers, strict=True):
                if status < 400 or outcomes[index] is not None:
                    continue
                deal_id = updates[index].deal_id
                detail = f"{method} {path}: HTTP {status} {_error_of(body)}"
                if status == 424:
                    outcomes[index] = UpdateOutcome.retry(f"an earlier update of deal {deal_id} failed")
                elif status == 429 or status >= 500:
                    outcomes[index] = UpdateOutcome.retry(detail)
                else:
                    outcomes[index] = UpdateOutcome.park(detail)
                stopped.setdefault(deal_id, detail)
            for index, _ in chunk:
                if outcomes[index] is None and index != unfinished:
                    outcomes[index] = UpdateOutcome.done()
            chunk.clear()

        try:
            for index, update in enumerate(updates):
                calls = [call for op in update.ops for call in self._calls_of(update.deal_id, op)]
                if update.deal_id not in stopped and calls and len(chunk) + len(calls) > MAX_BATCH:
                    flush()
                if update.deal_id in stopped:
                    outcomes[index] = UpdateOutcome.retry(f"an earlier update of deal {update.deal_id} failed")
                    continue
                while len(calls) > MAX_BATCH and outcomes[index] is None:  # bigger than a batch: piece by piece
                    chunk.extend((index, call) for call in calls[:MAX_BATCH])
                    calls = calls[MAX_BATCH:]
                    flush(unfinished=index)
                if outcomes[index] is not None:
                    continue
                if not calls:
                    outcomes[index] = UpdateOutcome.done()
                    continue
                chunk.extend((index, call) for call in calls)
            flush()
        except (CrmUnavailable, CrmRejected) as exc:
            # The batch failed as a whole (down, over the limit, refused: a dead token). What earlier batches wrote
            # stays done; this one's updates and the later ones wait — retried (and parked by the queue's redrive
            # policy if it lasts), never dropped.
            return undecided_wait(outcomes, str(exc))
        return undecided_wait(outcomes)

    def _calls_of(self, deal_id: str, op: DealOp) -> list[Call]:
        match op.kind:
            case "set_stage":
                return _stage_calls(deal_id, op.stage, op.payment_url)
            case "comment":
                return [_timeline_call(deal_id, op.text or "")]
            case "notify_manager":
                return [_notify_call(deal_id, op.text or "")]
            case "send_to_customer":
                return [_message_call(deal_id, op.customer or Customer(), op.text or "")]
            case "customer_profile":
                return self._profile_calls(op.profile) if op.profile is not None else []
        return []

    def _profile_calls(self, profile: ProfileWrite) -> list[Call]:
        """One `POST /api/{contacts|companies}/{id}/timeline {text}` per entry, then `PATCH /api/{…}/{id} {fields}`
        with the mapped fields (money `{amount, currency}` in minor units, the date ISO 8601)."""
        path = f"/api/{_ENTITY_PATH[profile.entity.kind]}/{profile.entity.entity_id}"
        calls: list[Call] = [("POST", f"{path}/timeline", {"text": text}) for text in profile.entries]
        names = self._profile.fields_of(profile.entity.kind) if self._profile is not None else {}
        fields: dict[str, Any] = {}
        if "total_paid" in names:
            fields[names["total_paid"]] = {"amount": profile.total_paid, "currency": profile.currency}
        if "last_payment_date" in names and profile.last_payment_at is not None:
            fields[names["last_payment_date"]] = profile.last_payment_at.isoformat(timespec="seconds")
        if "last_payment_amount" in names and profile.last_payment_amount is not None:
            currency = profile.last_payment_currency or profile.currency
            fields[names["last_payment_amount"]] = {"amount": profile.last_payment_amount, "currency": currency}
        if fields:
            calls.append(("PATCH", path, {"fields": fields}))
        return calls

    def write_profile(self, profile: ProfileWrite) -> None:
        for call in self._profile_calls(profile):
            self._one(call)

    def get_deal(self, deal_id: str) -> Deal:
        return _deal_of(self._send("GET", f"/api/deals/{deal_id}").json())

    def get_deals(self, deal_ids: Sequence[str]) -> dict[str, Deal]:
        """Batches of up to 50 `GET /api/deals/{id}`; a deal the CRM does not know (or refuses) is left out."""
        deals: dict[str, Deal] = {}
        for start in range(0, len(deal_ids), MAX_BATCH):
            calls: list[Call] = [("GET", f"/api/deals/{d}", None) for d in deal_ids[start : start + MAX_BATCH]]
            for (_, path, _), (status, body) in zip(calls, self.batch(calls), strict=True):
                if status == 429 or status >= 500:
                    raise CrmUnavailable(f"GET {path}: HTTP {status} {_error_of(body)}")
                if status < 400:
                    deal = _deal_of(body)
                    deals[deal.deal_id] = deal
        return deals

    def update_deal(self, deal_id: str, *, stage: str | None = None, payment_url: str | None = None) -> None:
        for call in _stage_calls(deal_id, stage, payment_url):
            self._one(call)

    def add_timeline(self, deal_id: str, text: str) -> None:
        self._one(_timeline_call(deal_id, text))

    def notify_manager(self, deal_id: str, text: str) -> None:
        self._one(_notify_call(deal_id, text))

    def send_to_customer(self, deal_id: str, customer: Customer, text: str) -> None:
        self._one(_message_call(deal_id, customer, text))

    def parse_webhook(self, headers: dict[str, str], body: bytes, query: dict[str, str]) -> CrmWebhook:
        try:
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), strict_parsing=True).items()}
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedNotification(f"not a form-encoded body: {exc}") from None
        token = form.get("auth[application_token]", "")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            raise InvalidSignature("auth[application_token] does not match")
        event = form.get("event")
        if not event:
            raise MalformedNotification("missing field: event")
        if event != ISSUE_EVENT:
            return CrmWebhook(ignored=(f"event {event} is not an invoice request",))
        deal_id = form.get("data[FIELDS][ID]", "").strip()
        if not deal_id:
            raise MalformedNotification("missing field: data[FIELDS][ID]")
        number = form.get("data[FIELDS][INVOICE_NUMBER]") or None
        return CrmWebhook(commands=(IssueInvoiceCommand(deal_id=deal_id, number=number),))


def _stage_calls(deal_id: str, stage: str | None, payment_url: str | None) -> list[Call]:
    fields = {k: v for k, v in {"stage": stage, "payment_url": payment_url}.items() if v is not None}
    return [("PATCH", f"/api/deals/{deal_id}", fields)] if fields else []


def _timeline_call(deal_id: str, text: str) -> Call:
    return "POST", f"/api/deals/{deal_id}/timeline", {"text": text}


def _notify_call(deal_id: str, text: str) -> Call:
    return "POST", f"/api/deals/{deal_id}/notifications", {"text": text}


def _message_call(deal_id: str, customer: Customer, text: str) -> Call:
    body = {"deal_id": deal_id, "to_email": customer.email, "to_phone": customer.phone, "text": text}
    return "POST", "/api/messages", body


def _deal_of(data: dict[str, Any]) -> Deal:
    contact = data.get("contact") or {}
    return Deal(
        deal_id=str(data["id"]),
        title=data.get("title", ""),
        amount=data.get("amount"),
        currency=data.get("currency"),
        stage=data.get("stage"),
        customer=Customer(name=contact.get("name"), email=contact.get("email"), phone=contact.get("phone")),
        invoice_number=data.get("invoice_number"),
        contact_id=str(contact["id"]) if contact.get("id") else None,
        company_id=str((data.get("company") or {}).get("id") or "") or None,
    )


def _error_of(body: Any) -> str:
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _build(settings: SandboxCrmSettings, context: AdapterContext) -> SandboxCrm:
    return SandboxCrm(
        settings.base_url, context.secret(settings.token), throttle=context.throttle, profile=settings.customer_profile
    )


CRMS.register("sandbox", SandboxCrmSettings, _build)
