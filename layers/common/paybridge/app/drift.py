"""Drift: where the CRM deal, the invoice and the provider disagree, found by comparing them — per tenant, on a
schedule and on demand — and repaired where one side is simply behind:

- an invoice behind its provider (money the provider holds that no notification told us) gets the provider's fact
  (`PaymentChecks.recheck`);
- a deal behind its invoice (a lost write, or moved back by hand to a stage of ours) is written again through the
  CRM outbox, as the invoice stands (the re-sync plan);
- anything else — a deal moved on to a stage that is not ours, a provider reporting a payment refunded or closed
  that we still await — is reported for a person.
Deals are read in batches through the CRM adapter (its rate limit applies); provider reads are rate-limited like
the sweep's. Each run is kept (`GET /v1/{tenant}/drift`) and counted (`DriftFound`, `DriftRepaired`, alarmed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import ConfigDict, computed_field

from paybridge.adapters.crm.base import Crm, Throttle
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, ProviderRejected, ProviderUnavailable
from paybridge.app.changes import Actor, utc_now
from paybridge.app.payment_checks import PaymentChecks
from paybridge.app.rechecks import STATUS_READS
from paybridge.domain.invoice import Invoice, InvoiceState
from paybridge.domain.model import Model
from paybridge.storage.repository import InvoiceRepository
from paybridge.tenants import TenantConfig, TenantDirectory

if TYPE_CHECKING:
    from paybridge.app.publishing import DomainEvents, OutboxBatch

logger = logging.getLogger(__name__)

#: The invoices a run looks at: those still waiting (against their provider and their deal) and the newest of each
#: closed state (against their deal).
OPEN = (InvoiceState.AWAITING_PAYMENT, InvoiceState.PARTIALLY_PAID)
CLOSED = (
    InvoiceState.PAID,
    InvoiceState.PARTIALLY_REFUNDED,
    InvoiceState.REFUNDED,
    InvoiceState.EXPIRED,
    InvoiceState.CANCELLED,
    InvoiceState.FAILED,
)
PER_STATE = 200
DRIFT_EVENT = "resync:drift"

FindingKind = Literal["invoice_behind_provider", "deal_behind_invoice", "deal_moved_on", "provider_disagrees"]


class Finding(Model):
    model_config = ConfigDict(frozen=True)
    kind: FindingKind
    invoice_id: str
    deal_id: str
    detail: str
    repaired: bool


class DriftReport(Model):
    model_config = ConfigDict(frozen=True)
    tenant_id: str
    at: datetime
    invoices_checked: int
    deals_checked: int
    findings: tuple[Finding, ...]
    #: What could not be compared this run (a provider or the CRM unreachable): checked next time.
    skipped: tuple[str, ...] = ()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def found(self) -> int:
        return len(self.findings)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def repaired(self) -> int:
        return sum(f.repaired for f in self.findings)


class DriftStore(Protocol):
    def save(self, report: DriftReport, outbox: OutboxBatch | None = None) -> None: ...

    def latest(self, tenant_id: str, limit: int = 10) -> list[DriftReport]: ...


class DealStages(Protocol):
    """The stage an invoice maps its deal to, and writing the deal again (`LifecycleTasks`)."""

    def deal_stage(self, tenant: TenantConfig, invoice: Invoice) -> str: ...

    def sync_deal(self, tenant_id: str, invoice_id: str, event: str = "") -> object: ...


@dataclass
class DriftCheck:
    tenants: TenantDirectory
    repo: InvoiceRepository
    crms: Callable[[TenantConfig], Crm]
    checks: PaymentChecks
    deals: DealStages
    store: DriftStore
    throttle: Throttle
    clock: Callable[[], datetime] = utc_now
    #: `drift.found` once per check that found something (after its report is saved).
    events: DomainEvents | None = None

    def check(self, tenant_id: str, actor: Actor) -> DriftReport:
        tenant = self.tenants.get(tenant_id)
        findings: list[Finding] = []
        skipped: list[str] = []
        listed = self.repo.list_by_state
        waiting = [i for state in OPEN for i in listed(tenant_id, state.value, limit=PER_STATE)]
        closed = [i for state in CLOSED for i in listed(tenant_id, state.value, limit=PER_STATE, newest=True)]
        # 1. the invoice against its provider
        current: dict[str, Invoice] = {}
        learnt: set[str] = set()  # deals whose invoice just got the provider's fact: its lifecycle writes the deal
        for invoice in waiting:
            current[invoice.invoice_id] = invoice
            if invoice.payment_id is None:
                continue
            try:
                self.throttle(f"psp:{tenant_id}:{tenant.psp.provider}", STATUS_READS)
                asked = self.checks.recheck(tenant_id, invoice.invoice_id, actor)
            except (ProviderUnavailable, ProviderRejected, CrmUnavailable) as exc:
                skipped.append(f"invoice {invoice.invoice_id}: {exc}")
                continue
            current[invoice.invoice_id] = asked.invoice
            if asked.learnt:
                learnt.add(invoice.deal_id)
                findings.append(_finding("invoice_behind_provider", asked.invoice, asked.snapshot, repaired=True))
            elif asked.snapshot is not None and asked.snapshot.phase in ("paid", "closed") and asked.invoice.is_open:
                findings.append(_finding("provider_disagrees", asked.invoice, asked.snapshot, repaired=False))
        for invoice in closed:
            current.setdefault(invoice.invoice_id, invoice)
        # 2. the deal against its newest invoice
        newest: dict[str, Invoice] = {}
        for invoice in current.values():
            if invoice.deal_id not in newest or invoice.created_at > newest[invoice.deal_id].created_at:
                newest[invoice.deal_id] = invoice
        deals_checked = 0
        try:
            deals = self.crms(tenant).get_deals(sorted(set(newest) - learnt))
            deals_checked = len(deals)
        except (CrmUnavailable, CrmRejected) as exc:
            deals, skipped = {}, [*skipped, f"deals: {exc}"]
        ours = {str(v) for v in tenant.stages.model_dump().values() if v is not None}
        for deal_id, deal in deals.items():
            invoice = newest[deal_id]
            expected = self.deals.deal_stage(tenant, invoice)
            if deal.stage == expected:
                continue
            detail = f"deal in stage {deal.stage}, invoice {invoice.state.value} maps to {expected}"
            if deal.stage in ours:  # a stage of ours, not the one the invoice is in: the deal is behind
                self.deals.sync_deal(tenant_id, invoice.invoice_id, f"{DRIFT_EVENT}:{self.clock():%Y%m%dT%H%M}")
                findings.append(_deal_finding("deal_behind_invoice", invoice, detail, repaired=True))
            else:
                findings.append(_deal_finding("deal_moved_on", invoice, detail, repaired=False))
        report = DriftReport(
            tenant_id=tenant_id,
            at=self.clock(),
            invoices_checked=len(current),
            deals_checked=deals_checked,
            findings=tuple(findings),
            skipped=tuple(skipped),
        )
        batch = None
        if findings and self.events is not None:
            from paybridge.domain.domain_events import drift_found

            event = drift_found(
                tenant_id,
                report.at,
                [f.model_dump(mode="json") for f in findings],
                repaired=report.repaired,
                invoices_checked=report.invoices_checked,
                deals_checked=report.deals_checked,
            )
            batch = self.events.batch(event.id, [event])
        self.store.save(report, outbox=batch)  # the report and its `drift.found` in one transaction
        if batch is not None and self.events is not None:
            self.events.deliver(batch)
        if findings:
            logger.warning("drift in %s: %d found, %d repaired", tenant_id, report.found, report.repaired)
        return report

    def check_all(self, actor: Actor) -> list[DriftReport]:
        """The schedule: every tenant (one tenant's outage never stops the others)."""
        reports = []
        for tenant_id in self.tenants.tenant_ids():
            try:
                reports.append(self.check(tenant_id, actor))
            except Exception:
                logger.exception("drift check of %s failed", tenant_id)
        return reports

    def latest(self, tenant_id: str) -> list[DriftReport]:
        self.tenants.get(tenant_id)
        return self.store.latest(tenant_id)


def _deal_finding(kind: FindingKind, invoice: Invoice, detail: str, repaired: bool) -> Finding:
    return Finding(kind=kind, invoice_id=invoice.invoice_id, deal_id=invoice.deal_id, detail=detail, repaired=repaired)


def _finding(kind: FindingKind, invoice: Invoice, snapshot: object, repaired: bool) -> Finding:
    status = getattr(snapshot, "raw_status", "?")
    return Finding(
        kind=kind,
        invoice_id=invoice.invoice_id,
        deal_id=invoice.deal_id,
        detail=f"the provider reports {status}; the invoice is {invoice.state.value}",
        repaired=repaired,
    )
