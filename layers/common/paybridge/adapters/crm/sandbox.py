"""The sandbox CRM: deals with stages and a timeline, spoken to over HTTP like a real CRM.

Wire format (the server is `devstack/sandbox_crm.py`):
- REST with `Authorization: Bearer <token>`: `GET {base}/api/deals/{id}` → `{id, title, amount, currency, stage,
  contact{name, email, phone}, invoice_number}`; `PATCH {base}/api/deals/{id}` `{stage?, payment_url?}`;
  `POST {base}/api/deals/{id}/timeline` `{text}`; `POST {base}/api/deals/{id}/notifications` `{text}` (to the
  responsible manager); `POST {base}/api/messages` `{deal_id, to_email, to_phone, text}` (to the client).
- Outbound webhook, Bitrix24-like, form-encoded: `event=ONCRMDEALISSUEINVOICE`, `data[FIELDS][ID]=<deal>`,
  `data[FIELDS][INVOICE_NUMBER]=<optional>`, `ts`, `auth[application_token]=<token>`.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs

import httpx

from paybridge.adapters.crm.base import CrmWebhookIgnored, Deal, IssueInvoiceCommand
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, InvalidSignature, MalformedNotification
from paybridge.adapters.http import make_client, send
from paybridge.domain.invoice import Customer

ISSUE_EVENT = "ONCRMDEALISSUEINVOICE"


class SandboxCrm:
    name = "sandbox"

    def __init__(self, base_url: str, token: str, transport: Any = None):
        self._token = token
        self._http = make_client(base_url.rstrip("/"), {"Authorization": f"Bearer {token}"}, transport)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return send(self._http, method, url, transient=CrmUnavailable, permanent=CrmRejected, **kwargs)

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
        )

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

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> IssueInvoiceCommand | CrmWebhookIgnored:
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
            return CrmWebhookIgnored(reason=f"event {event} is not an invoice request")
        deal_id = form.get("data[FIELDS][ID]", "").strip()
        if not deal_id:
            raise MalformedNotification("missing field: data[FIELDS][ID]")
        return IssueInvoiceCommand(deal_id=deal_id, number=form.get("data[FIELDS][INVOICE_NUMBER]") or None)
