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
    read_one_by_one,
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


class SandboxCrm:
    """No batch API: `apply` sends each write as its own request, in order, and stops a deal at its first failure."""

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

    def apply(self, updates: Sequence[DealUpdate]) -> list[UpdateOutcome]:
        outcomes: list[UpdateOutcome] = []
        stopped: dict[str, str] = {}  # deal → why its later updates wait
        for update in updates:
            if update.deal_id in stopped:
                outcomes.append(UpdateOutcome.retry(f"an earlier update of deal {update.deal_id} failed"))
                continue
            try:
                for op in update.ops:
                    self._apply_op(update.deal_id, op)
            except CrmUnavailable as exc:
                stopped[update.deal_id] = str(exc)
                outcomes.append(UpdateOutcome.retry(str(exc)))
            except CrmRejected as exc:
                stopped[update.deal_id] = str(exc)
                outcomes.append(UpdateOutcome.park(str(exc)))
            else:
                outcomes.append(UpdateOutcome.done())
        return outcomes

    def _apply_op(self, deal_id: str, op: DealOp) -> None:
        match op.kind:
            case "set_stage":
                self.update_deal(deal_id, stage=op.stage, payment_url=op.payment_url)
            case "comment":
                self.add_timeline(deal_id, op.text or "")
            case "notify_manager":
                self.notify_manager(deal_id, op.text or "")
            case "send_to_customer":
                self.send_to_customer(deal_id, op.customer or Customer(), op.text or "")
            case "customer_profile":
                if op.profile is not None:
                    self.write_profile(op.profile)

    def write_profile(self, profile: ProfileWrite) -> None:
        """One `POST /api/{contacts|companies}/{id}/timeline {text}` per entry, then `PATCH /api/{…}/{id} {fields}`
        with the mapped fields (money `{amount, currency}` in minor units, the date ISO 8601)."""
        path = f"/api/{_ENTITY_PATH[profile.entity.kind]}/{profile.entity.entity_id}"
        for text in profile.entries:
            self._send("POST", f"{path}/timeline", json={"text": text})
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
            self._send("PATCH", path, json={"fields": fields})

    def get_deal(self, deal_id: str) -> Deal:
        data = self._send("GET", f"/api/deals/{deal_id}").json()
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

    def get_deals(self, deal_ids: Sequence[str]) -> dict[str, Deal]:
        return read_one_by_one(self.get_deal, deal_ids)  # no batch API: one request each

    def update_deal(self, deal_id: str, *, stage: str | None = None, payment_url: str | None = None) -> None:
        fields = {k: v for k, v in {"stage": stage, "payment_url": payment_url}.items() if v is not None}
        if fields:
            self._send("PATCH", f"/api/deals/{deal_id}", json=fields)

    def add_timeline(self, deal_id: str, text: str) -> None:
        self._send("POST", f"/api/deals/{deal_id}/timeline", json={"text": text})

    def notify_manager(self, deal_id: str, text: str) -> None:
        self._send("POST", f"/api/deals/{deal_id}/notifications", json={"text": text})

    def send_to_customer(self, deal_id: str, customer: Customer, text: str) -> None:
        self._send(
            "POST",
            "/api/messages",
            json={"deal_id": deal_id, "to_email": customer.email, "to_phone": customer.phone, "text": text},
        )

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


def _build(settings: SandboxCrmSettings, context: AdapterContext) -> SandboxCrm:
    return SandboxCrm(
        settings.base_url, context.secret(settings.token), throttle=context.throttle, profile=settings.customer_profile
    )


CRMS.register("sandbox", SandboxCrmSettings, _build)
