"""The CRM interface every CRM adapter implements, and the values that cross it.

Reads (`get_deal`) happen where they are needed (an inbound webhook). Every write goes through the outbox: the
lifecycle plans the writes one step asks of one deal (`DealUpdate`, an ordered list of `DealOp`s), the outbox queue
keeps them in order per deal, and the consumer hands a batch of updates to `apply`, which sends them in as few
requests as the CRM allows and reports per update whether it landed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import ConfigDict, Field

from paybridge.domain.deal_sync import DealOp as DealOp  # planned by the domain, delivered by the adapters
from paybridge.domain.deal_sync import DealUpdate as DealUpdate
from paybridge.domain.invoice import Customer
from paybridge.domain.model import Model


class Deal(Model):
    model_config = ConfigDict(frozen=True)
    deal_id: str
    title: str = ""
    amount: int | None = None  # minor units
    currency: str | None = None
    stage: str | None = None
    customer: Customer = Field(default_factory=Customer)
    invoice_number: str | None = None
    manager_id: str | None = None  # the responsible user, where the CRM has one
    #: The deal's main contact and its company in the CRM (ids only), where it has them.
    contact_id: str | None = None
    company_id: str | None = None
    #: The deal's custom fields as text (Bitrix24 `UF_CRM_*`, amoCRM field ids), for triggers that read one.
    fields: dict[str, str] = Field(default_factory=dict)


class IssueInvoiceCommand(Model):
    """An inbound CRM call asking us to issue an invoice for a deal."""

    model_config = ConfigDict(frozen=True)
    deal_id: str
    number: str | None = None
    #: Only when the deal, as read, is in this stage (events that carry only the deal id; also the echo guard).
    when_stage: str | None = None


class DealMoved(Model):
    """An inbound call saying a deal moved or a robot ran on it: what the tenant's CRM action triggers (a refund, a
    new link, a subscription lever) are matched against (`app/crm_actions.py`)."""

    model_config = ConfigDict(frozen=True)
    deal_id: str
    #: The stage (amoCRM: status id) the deal is in now; None when the call does not say (the deal is read).
    stage: str | None = None
    #: A robot's code (Bitrix24), and what makes this run of it unique (its `event_token`).
    robot: str | None = None
    run_id: str | None = None
    #: The robot's parameters (`properties[...]`), e.g. an amount.
    properties: dict[str, str] = Field(default_factory=dict)


class CrmWebhook(Model):
    """A verified inbound call: the invoices it asks for (one per deal), and why the rest was ignored."""

    model_config = ConfigDict(frozen=True)
    commands: tuple[IssueInvoiceCommand, ...] = ()
    ignored: tuple[str, ...] = ()
    #: Deals that moved (or had a robot run): matched against the tenant's CRM action triggers.
    moves: tuple[DealMoved, ...] = ()


@dataclass(frozen=True)
class UpdateOutcome:
    """How one update fared. `transient` failures are retried later (in order); permanent ones are parked."""

    ok: bool
    transient: bool = False
    detail: str = ""

    @classmethod
    def done(cls) -> UpdateOutcome:
        return cls(ok=True)

    @classmethod
    def retry(cls, detail: str) -> UpdateOutcome:
        return cls(ok=False, transient=True, detail=detail)

    @classmethod
    def park(cls, detail: str) -> UpdateOutcome:
        return cls(ok=False, transient=False, detail=detail)


def undecided_wait(outcomes: Sequence[UpdateOutcome | None], why: str = "not sent") -> list[UpdateOutcome]:
    """A batched `apply`'s outcomes, each update not decided yet (its request failed as a whole, or was never sent)
    retried with `why`: what earlier requests wrote stays done, nothing is dropped."""
    return [o if o is not None else UpdateOutcome.retry(why) for o in outcomes]


@dataclass(frozen=True)
class RateLimit:
    """The CRM's request budget per account: a leaky bucket of `per_second`, holding up to `burst`."""

    per_second: float
    burst: int


#: Called before every request to the CRM with the account's key and limit; blocks until the request may go (or
#: raises CrmUnavailable when it would wait too long). Chosen by configuration: a DynamoDB token bucket shared by all
#: consumers when deployed and on the local stack, a no-op in unit tests.
Throttle = Callable[[str, RateLimit], None]


def no_throttle(account: str, limit: RateLimit) -> None:
    return None


class Crm(Protocol):
    name: str
    #: Requests the CRM allows per account (see `Throttle`).
    rate_limit: RateLimit

    def get_deal(self, deal_id: str) -> Deal: ...

    def get_deals(self, deal_ids: Sequence[str]) -> dict[str, Deal]:
        """Read several deals in as few requests as the CRM allows (their stages at least; the customer may be left
        out — `get_deal` reads a deal whole); a deal that does not exist is left out."""
        ...

    def apply(self, updates: Sequence[DealUpdate]) -> list[UpdateOutcome]:
        """Send the updates (batched where the CRM allows it); one outcome per update, in order. Raise
        CrmUnavailable when nothing could be sent (the whole batch is retried)."""
        ...

    def parse_webhook(self, headers: dict[str, str], body: bytes, query: dict[str, str]) -> CrmWebhook:
        """Verify (token) and parse; raise InvalidSignature / MalformedNotification."""
        ...
