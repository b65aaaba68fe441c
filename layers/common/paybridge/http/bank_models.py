"""Response models of the bank routes (statement uploads, the review list)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import Field

from paybridge.http.api_model import ApiModel


class BankDecisionOut(ApiModel):
    fingerprint: str
    kind: str
    reason: str
    numbers_found: list[str]
    allocations: list[dict[str, Any]]
    settlement: dict[str, Any] | None = Field(
        default=None,
        description="an acquirer's payout (`kind: settlement`): provider, payments, refunds, expected, fees, "
        "difference, flagged, missing (refs), settled (the operations it pays out: ref, invoice_id, amount, fee)",
    )


class BankSummaryOut(ApiModel):
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


class BankReviewItem(ApiModel):
    value_date: str
    amount: int
    currency: str
    payer_name: str
    payer_inn: str | None
    purpose: str
    decision: BankDecisionOut
    recorded_at: str


class BankReviewOut(ApiModel):
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
        settlement=_settlement(decision.settlement),
    )


def _settlement(match: Any) -> dict[str, Any] | None:
    if match is None:
        return None
    return {
        "provider": match.provider,
        "payments": match.payments,
        "refunds": match.refunds,
        "expected": match.expected,
        "fees": match.fees,
        "fee_basis": match.basis,
        "difference": match.difference,
        "flagged": match.flagged,
        "missing": list(match.missing),
        "settled": [
            {"ref": i.ref, "invoice_id": i.invoice_id, "kind": i.kind, "amount": i.amount, "fee": i.fee}
            for i in match.items
        ],
    }


class ReconciliationOut(ApiModel):
    """`GET /v1/{tenant}/reconciliation?month=`: per acquiring provider, amounts in minor units — `recorded`
    (payments through the provider, by `by_method`), `refunds`, `settled` (of those, paid out to the bank), `fees`
    (per payment: exact where the provider gave its net, else estimated), `payouts` (the payout lines: their amount
    and the fee they actually kept), `unsettled` (past the provider's usual delay, not paid out), `awaiting` (not yet
    due), `differences` (payouts that do not add up, with the reason). `totals` sums them (`differences`: a count)."""

    tenant_id: str
    month: str
    currency: str
    as_of: str
    providers: list[dict[str, Any]]
    totals: dict[str, int]
