"""Request and response models of a person's levers (ops scope): manual payments, reissues, re-syncs, bank lines,
the invoice list and drift."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from paybridge.app.drift import DriftReport
from paybridge.domain.invoice import (
    InvoiceId,
    ManualMethod,
)
from paybridge.http.api_model import ApiModel
from paybridge.http.models import InvoiceOut, StrictMinorUnits

Reason = Annotated[
    str,
    Field(min_length=3, max_length=500, description="Why: written into the invoice's audit history with who"),
]


class ManualPaymentBody(ApiModel):
    """Money received outside PayBridge (cash, a transfer to another account)."""

    model_config = ConfigDict(extra="forbid")
    amount: StrictMinorUnits
    method: ManualMethod
    reference: str = Field(default="", max_length=200, description="e.g. the cash receipt or the payment order")
    reason: Reason


class ReissueBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason
    lifetime_seconds: int | None = Field(
        default=None, ge=1, le=90 * 24 * 3600, description="The new link's lifetime; defaults to the tenant's"
    )


class ResyncBody(ApiModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class AssignmentIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    invoice_id: InvoiceId
    amount: StrictMinorUnits


class DismissIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class ResolveBody(ApiModel):
    """Either `assign` the line's money to invoices (with a `reason`), or `dismiss` the line with its reason."""

    model_config = ConfigDict(extra="forbid")
    assign: list[AssignmentIn] | None = Field(default=None, min_length=1, max_length=20)
    reason: Reason | None = None
    dismiss: DismissIn | None = None

    @model_validator(mode="after")
    def _one_decision(self) -> ResolveBody:
        if (self.assign is None) == (self.dismiss is None):
            raise ValueError("give either `assign` (with `reason`) or `dismiss`")
        if self.assign is not None and self.reason is None:
            raise ValueError("`assign` needs a `reason`")
        if self.dismiss is not None and self.reason is not None:
            raise ValueError("a dismissal's reason goes in `dismiss.reason`")
        return self

    @property
    def why(self) -> str:
        return self.dismiss.reason if self.dismiss is not None else str(self.reason)


class LeverOut(ApiModel):
    lever: str
    idempotency_key: str
    actor: str = Field(description="`ops:<name>` from the X-Actor header")
    reason: str
    target: str = Field(description="the invoice, deal or bank line the lever acted on")
    detail: str
    replayed: bool = Field(description="true: the answer of an earlier request with this Idempotency-Key")
    invoices: list[InvoiceOut]

    @classmethod
    def of(cls, result: Any) -> LeverOut:
        outcome = result.outcome
        return cls(
            lever=outcome.lever,
            idempotency_key=outcome.key,
            actor=outcome.actor,
            reason=outcome.reason,
            target=outcome.target,
            detail=outcome.detail,
            replayed=result.replayed,
            invoices=[InvoiceOut.of(i) for i in outcome.invoices],
        )


class ListedInvoiceOut(InvoiceOut):
    stuck: bool = Field(description="still waiting for money past its link's deadline")
    age_seconds: int


class InvoiceListOut(ApiModel):
    count: int
    invoices: list[ListedInvoiceOut]

    @classmethod
    def of(cls, listed: Any) -> InvoiceListOut:
        items = [
            ListedInvoiceOut(**InvoiceOut.of(li.invoice).model_dump(), stuck=li.stuck, age_seconds=li.age_seconds)
            for li in listed
        ]
        return cls(count=len(items), invoices=items)


class DriftReportsOut(ApiModel):
    """The tenant's latest drift checks, newest first (kept 30 days)."""

    reports: list[DriftReport]
