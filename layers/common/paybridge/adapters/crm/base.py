"""The CRM interface every CRM adapter implements."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from paybridge.domain.invoice import Customer


class Deal(BaseModel):
    model_config = ConfigDict(frozen=True)
    deal_id: str
    title: str = ""
    amount: int | None = None
    currency: str | None = None
    stage: str | None = None
    customer: Customer = Customer()
    invoice_number: str | None = None


class IssueInvoiceCommand(BaseModel):
    """An inbound CRM call asking us to issue an invoice for a deal."""

    model_config = ConfigDict(frozen=True)
    deal_id: str
    number: str | None = None


class CrmWebhookIgnored(BaseModel):
    """A verified inbound call that asks nothing of us (another event, our own echo)."""

    model_config = ConfigDict(frozen=True)
    reason: str


class Crm(Protocol):
    name: str

    def get_deal(self, deal_id: str) -> Deal: ...

    def update_deal(self, deal_id: str, *, stage: str | None = None, payment_url: str | None = None) -> None: ...

    def add_timeline(self, deal_id: str, text: str) -> None: ...

    def notify_manager(self, deal_id: str, text: str) -> None: ...

    def send_to_customer(self, deal_id: str, customer: Customer, text: str) -> None: ...

    def parse_webhook(self, headers: dict[str, str], body: bytes) -> IssueInvoiceCommand | CrmWebhookIgnored:
        """Verify (token) and parse; raise InvalidSignature / MalformedNotification."""
        ...
