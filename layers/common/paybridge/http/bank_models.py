"""Response models of the bank routes (statement uploads, the review list)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, Field


class BankDecisionOut(BaseModel):
    fingerprint: str
    kind: str
    reason: str
    numbers_found: list[str]
    allocations: list[dict[str, Any]]


class BankSummaryOut(BaseModel):
    """What an uploaded statement led to."""

    documents: int = Field(description="payment documents in the file")
    skipped: int = Field(description="documents that are not incoming payments to the tenant's accounts")
    lines: int = Field(description="incoming payments to the tenant's accounts")
    duplicates: int = Field(description="lines seen before (polled, pushed or uploaded): counted once")
    applied: int = Field(description="lines that paid invoices")
    needs_a_person: int = Field(description="lines with no invoice or an ambiguous one: on the review list")
    decisions: dict[str, int]
    records: list[BankDecisionOut]

    @classmethod
    def of(cls, summary: Any, documents: int, skipped: int) -> BankSummaryOut:
        return cls(
            documents=documents,
            skipped=skipped,
            lines=summary.lines,
            duplicates=summary.duplicates,
            applied=summary.applied,
            needs_a_person=summary.needs_a_person,
            decisions=dict(summary.decisions),
            records=[_decision(d) for d in summary.records],
        )


class BankReviewItem(BaseModel):
    value_date: str
    amount: int
    currency: str
    payer_name: str
    payer_inn: str | None
    purpose: str
    decision: BankDecisionOut
    recorded_at: str


class BankReviewOut(BaseModel):
    lines: list[BankReviewItem]

    @classmethod
    def of(cls, records: Any) -> BankReviewOut:
        return cls(
            lines=[
                BankReviewItem(
                    value_date=r.line.value_date.isoformat(),
                    amount=r.line.amount,
                    currency=r.line.currency,
                    payer_name=r.line.payer_name,
                    payer_inn=r.line.payer_inn,
                    purpose=r.line.purpose,
                    decision=_decision(r.decision),
                    recorded_at=r.recorded_at,
                )
                for r in records
            ]
        )


def _decision(decision: Any) -> BankDecisionOut:
    return BankDecisionOut(
        fingerprint=decision.fingerprint,
        kind=decision.kind,
        reason=decision.reason,
        numbers_found=list(decision.numbers_found),
        allocations=[asdict(a) for a in decision.allocations],
    )
