"""The contract between the payment lifecycle (statemachine/payment_lifecycle.asl.json) and its task functions.

Every task's input and output is one of these models; the ASL reads only fields they define (a test parses the ASL
and fails on any path these models do not have). The execution's state is a `LifecycleState`:

- `Start` reads `$.expiry_attempt` (present: an expiry, started by the deadline sweep; absent: a new invoice);
- `CreatePayment`, `MarkFailed` and `ExpireInvoice` take the state and return a new one (`OutputPath: $.Payload`);
- a failed `CreatePayment` adds `$.error` (ResultPath);
- after `ExpireInvoice`, `IsFinal` reads `$.outcome.final`; a deferred expiry waits `$.outcome.seconds_left`
  (`AskAgainLater`) and asks again with `expiry_attempt` one higher.

Nothing waits for money in the state machine: a change (a notification, a bank line, a cancel) publishes itself to
the deal (`InvoiceChanges.announce`).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from paybridge.domain.invoice import FINAL_STATES, Invoice, InvoiceState
from paybridge.domain.model import Model


class TaskError(Model):
    """What Step Functions puts in `ResultPath` when a task fails (`Error`: the exception's class name)."""

    Error: str | None = ""
    #: Step Functions sends null here when the error carries no cause (a timeout, a task failure without one).
    Cause: str | None = ""


class Outcome(Model):
    """The lifecycle's view of an invoice: the state machine chooses on `final` and waits `seconds_left`."""

    model_config = ConfigDict(extra="ignore")
    state: InvoiceState
    final: bool
    version: int
    paid: int
    amount: int
    seconds_left: int = Field(ge=1)
    event: str = ""

    @classmethod
    def of(cls, invoice: Invoice, now: datetime, event: str = "") -> Outcome:
        seconds_left = int((invoice.expires_at - now).total_seconds())
        return cls(
            state=invoice.state,
            final=invoice.state in FINAL_STATES,
            version=invoice.version,
            paid=invoice.paid,
            amount=invoice.amount,
            seconds_left=max(seconds_left, 1),
            event=event,
        )


class LifecycleState(Model):
    """The execution's state document: the input of every task, and their output."""

    model_config = ConfigDict(extra="ignore")
    tenant_id: str
    invoice_id: str
    outcome: Outcome | None = None
    error: TaskError | None = None
    #: How often the expiry was deferred (the provider could not be asked, or the payer was paying right then).
    expiry_attempt: int | None = Field(default=None, ge=0)

    @classmethod
    def of(cls, invoice: Invoice, now: datetime, event: str = "") -> LifecycleState:
        return cls(tenant_id=invoice.tenant_id, invoice_id=invoice.invoice_id, outcome=Outcome.of(invoice, now, event))

    @property
    def last_event(self) -> str:
        return self.outcome.event if self.outcome else ""

    def document(self) -> dict[str, object]:
        """The JSON the state machine carries (what a task returns)."""
        return self.model_dump(mode="json", exclude_none=True)
