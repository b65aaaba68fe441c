"""A person decides a bank line on the review list: assigns its money to one or more invoices (never more than the
line), or dismisses it with a reason. The decision is recorded on the line once (under the person's key), each
assignment lands once as the line's money fact on the invoice (`bank:<fingerprint>`, event record
`bank/<fingerprint>:<invoice>` — the same as the matcher's, so neither can count it twice), audited with who and why,
and the deal follows like after any payment; then the line leaves the review list. A dismissed line's candidate
deals (told earlier that it needed a person) are told it was dismissed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from paybridge.adapters.outbox import CrmOutbox
from paybridge.app.banking import BankStore
from paybridge.app.changes import InvoiceChanges, utc_now
from paybridge.app.errors import BankLineNotFound, LeverInvalid
from paybridge.app.levers import Commit, LeverOutcome, LeverRequest, LeverResult, LeverRunner
from paybridge.app.payment_events import PaymentEvents
from paybridge.domain.bank import Assignment, LineResolution
from paybridge.domain.deal_sync import DealOp, DealUpdate
from paybridge.domain.errors import BankNotConfigured, InvalidTransition
from paybridge.domain.events import MoneyReceived
from paybridge.domain.invoice import Invoice
from paybridge.domain.money import format_money
from paybridge.storage.bank import BankLineRecord
from paybridge.storage.errors import DuplicateProviderEvent
from paybridge.storage.repository import InvoiceRepository, ProviderEventRecord
from paybridge.tenants import TenantDirectory


@dataclass
class BankReview:
    tenants: TenantDirectory
    repo: InvoiceRepository
    changes: InvoiceChanges
    payments: PaymentEvents
    outbox: CrmOutbox
    store: BankStore
    runner: LeverRunner
    clock: Callable[[], datetime] = utc_now

    def resolve(
        self, request: LeverRequest, fingerprint: str, assign: Sequence[Assignment], dismiss: bool = False
    ) -> LeverResult:
        """`assign` the line's money to invoices, or (`dismiss`) take it off the review list as not ours to match."""
        tenant = self.tenants.get(request.tenant_id)
        if tenant.bank is None:
            raise BankNotConfigured(f"tenant {tenant.tenant_id} has no bank settings")

        def lever(commit: Commit) -> LeverOutcome:
            record = self.store.get_line(tenant.tenant_id, fingerprint)
            if record is None:
                raise BankLineNotFound(f"no bank line {fingerprint}")
            resolution = record.resolution
            if resolution is None:
                self._check(tenant.tenant_id, record, assign)
                resolution = LineResolution(
                    key=request.key,
                    kind="dismissed" if dismiss else "resolved",
                    actor=request.actor.who,
                    reason=request.actor.why,
                    at=self.clock(),
                    assign=tuple(assign),
                )
            elif resolution.key != request.key:
                raise InvalidTransition(
                    f"this line was {resolution.kind} by {resolution.actor} at {resolution.at:%Y-%m-%d %H:%M} UTC"
                )
            commit()
            claimed = self.store.claim_resolution(tenant.tenant_id, resolution, fingerprint)
            if claimed is None or claimed.resolution is None or claimed.resolution.key != request.key:
                other = claimed.resolution if claimed is not None else None
                by = f" by {other.actor}" if other is not None else ""
                raise InvalidTransition(f"another person decided this line just now{by}")
            resolution = claimed.resolution
            invoices = [self._assign(tenant.tenant_id, fingerprint, a, request) for a in resolution.assign]
            if resolution.kind == "dismissed":
                self._tell_candidates(tenant.tenant_id, claimed, resolution)
            self.store.finish_resolution(tenant.tenant_id, fingerprint, resolution)
            line = claimed.line
            total = sum(a.amount for a in resolution.assign)
            detail = (
                f"dismissed {format_money(line.amount, line.currency)}"
                if resolution.kind == "dismissed"
                else f"assigned {format_money(total, line.currency)} of {format_money(line.amount, line.currency)}"
                f" to {len(invoices)} invoice(s)"
            )
            return LeverOutcome(
                lever="bank_resolve",
                key=request.key,
                actor=request.actor.who,
                reason=request.actor.why,
                target=fingerprint,
                detail=detail,
                invoices=tuple(invoices),
            )

        return self.runner.run(request, lever)

    def _check(self, tenant_id: str, record: BankLineRecord, assign: Sequence[Assignment]) -> None:
        """Everything about the assignments, before anything is written."""
        line, decision = record.line, record.decision
        if not record.in_review:
            raise InvalidTransition(f"this line is not on the review list: it was matched ({decision.kind})")
        if decision.kind == "settlement" and assign:
            raise LeverInvalid(
                "this line is an acquirer's payout, not a customer's payment: its payments are already recorded; "
                "dismiss it with the reason once the difference is explained"
            )
        ids = [a.invoice_id for a in assign]
        if len(set(ids)) != len(ids):
            raise LeverInvalid("each invoice may appear once in `assign`")
        available = line.amount - sum(a.amount for a in decision.allocations)
        total = sum(a.amount for a in assign)
        if total > available:
            raise LeverInvalid(
                f"the assignments add up to {format_money(total, line.currency)}, more than the line's "
                f"{format_money(available, line.currency)}"
            )
        for assignment in assign:
            invoice = self.changes.get(tenant_id, assignment.invoice_id)  # InvoiceNotFound: 404
            if invoice.currency != line.currency:
                raise LeverInvalid(f"invoice {invoice.number} is in {invoice.currency}, the line in {line.currency}")
            if f"bank:{line.fingerprint}" in invoice.receipts:
                raise LeverInvalid(f"invoice {invoice.number} already holds money from this line")

    def _assign(self, tenant_id: str, fingerprint: str, assignment: Assignment, request: LeverRequest) -> Invoice:
        event = MoneyReceived(ref=f"bank:{fingerprint}", amount=assignment.amount, method="bank_transfer")
        record = ProviderEventRecord(
            provider="bank",
            event_id=f"{fingerprint}:{assignment.invoice_id}",
            tenant_id=tenant_id,
            invoice_id=assignment.invoice_id,
            summary=f"assigned by {request.actor.who} {assignment.amount}",
        )
        with contextlib.suppress(DuplicateProviderEvent):  # this resolution assigned it already (a twin, a retry)
            return self.payments.apply_money(
                tenant_id, assignment.invoice_id, event, record, actor=request.actor
            ).invoice
        return self.changes.get(tenant_id, assignment.invoice_id)

    def _tell_candidates(self, tenant_id: str, record: BankLineRecord, resolution: LineResolution) -> None:
        line = record.line
        text = (
            f"PayBridge: банковский перевод {format_money(line.amount, line.currency)} от {line.payer_name or '—'}"
            f" ({line.value_date:%d.%m.%Y}) отклонён {resolution.actor}: {resolution.reason}."
        )
        for number in record.decision.numbers_found:
            for invoice in self.repo.find_by_number(tenant_id, number):
                self.outbox.publish(
                    DealUpdate(
                        tenant_id=tenant_id,
                        deal_id=invoice.deal_id,
                        invoice_id=invoice.invoice_id,
                        version=invoice.version,
                        event=f"bank_dismissed:{line.fingerprint[:16]}",
                        ops=(DealOp(kind="comment", text=text),),
                    )
                )
