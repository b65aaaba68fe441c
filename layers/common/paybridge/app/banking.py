"""Bank transfers: statement lines in, decisions recorded, money applied through the same lifecycle as PSP payments.

Exactly once, whatever reads a line (the poller, the bank's webhook, a 1C upload, or several at once):
1. a line already recorded and applied is a duplicate;
2. otherwise the matcher decides, and the line is recorded with that decision (a conditional put: when two readers
   race, the first decision is the one both apply);
3. each allocation is applied as `MoneyReceived(ref="bank:<fingerprint>")` together with an event record
   `bank/<fingerprint>:<invoice>` in the invoice's own transaction — an allocation can land once only, even when a
   crash between 2 and 4 makes a later run apply the recorded decision again;
4. the line is marked applied.
Lines that need a person (no invoice, ambiguous) are recorded for review, counted in a metric with an alarm, and —
where candidate invoices exist — their deals get a timeline entry and a notice to the manager.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from paybridge.adapters.errors import InvalidSignature
from paybridge.adapters.outbox import CrmOutbox
from paybridge.adapters.registry import BANK_SOURCES, UnknownAdapter
from paybridge.app.payment_events import PaymentEvents
from paybridge.app.settlements import Settlements, acquiring_sources
from paybridge.domain.bank import Decision, LineResolution, OpenInvoice, StatementLine
from paybridge.domain.deal_sync import DealOp, DealUpdate
from paybridge.domain.errors import BankNotConfigured
from paybridge.domain.events import MoneyReceived
from paybridge.domain.invoice import InvoiceState
from paybridge.domain.money import format_money
from paybridge.domain.reconcile import compile_patterns, reconcile
from paybridge.domain.settlement import AcquiringSettings, recognise
from paybridge.domain.statement_1c import ParsedStatement, parse_1c
from paybridge.storage.bank import BankCursor, BankLineRecord
from paybridge.storage.errors import DuplicateProviderEvent
from paybridge.storage.repository import InvoiceRepository, ProviderEventRecord
from paybridge.tenants import BankSettings, TenantConfig, TenantDirectory

if TYPE_CHECKING:
    from paybridge.adapters.bank.base import BankSource
    from paybridge.app.publishing import DomainEvents, OutboxBatch
    from paybridge.domain.domain_events import DomainEvent

logger = logging.getLogger(__name__)

#: Each poll re-reads this much before the last window's end: an operation confirmed late keeps its earlier date.
OVERLAP = timedelta(minutes=60)
#: The first poll of an account reads this far back.
FIRST_LOOKBACK = timedelta(days=3)


class BankStore(Protocol):
    def get_line(self, tenant_id: str, fingerprint: str) -> BankLineRecord | None: ...

    def record_line(
        self, tenant_id: str, line: StatementLine, decision: Decision, outbox: OutboxBatch | None = None
    ) -> BankLineRecord: ...

    def mark_applied(self, tenant_id: str, fingerprint: str) -> None: ...

    def lines_for_review(self, tenant_id: str, limit: int = 100) -> list[BankLineRecord]: ...

    def claim_resolution(
        self, tenant_id: str, resolution: LineResolution, fingerprint: str
    ) -> BankLineRecord | None: ...

    def finish_resolution(self, tenant_id: str, fingerprint: str, resolution: LineResolution) -> None: ...

    def get_cursor(self, tenant_id: str, account: str) -> BankCursor | None: ...

    def save_cursor(self, tenant_id: str, account: str, cursor: BankCursor) -> None: ...


@dataclass
class ReconcileSummary:
    lines: int = 0
    duplicates: int = 0
    not_ours: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    needs_a_person: int = 0
    records: list[Decision] = field(default_factory=list)

    def add(self, other: ReconcileSummary) -> None:
        self.lines += other.lines
        self.duplicates += other.duplicates
        self.not_ours += other.not_ours
        self.applied += other.applied
        self.needs_a_person += other.needs_a_person
        for kind, count in other.decisions.items():
            self.decisions[kind] = self.decisions.get(kind, 0) + count
        self.records += other.records


def _names(segment: str, kind: str) -> bool:
    """Whether a route segment names the source `kind` (its registry name or an alias, e.g. the old `tbank`)."""
    try:
        return BANK_SOURCES.entry(segment).name == kind
    except UnknownAdapter:
        return False


class _RepoIndex:
    """The matcher's view of the tenant's invoices, read by number from the table (one query per number seen)."""

    def __init__(self, repo: InvoiceRepository, tenant_id: str):
        self._repo, self._tenant = repo, tenant_id
        self._cache: dict[str, list[OpenInvoice]] = {}

    def by_number(self, number: str) -> list[OpenInvoice]:
        if number not in self._cache:
            invoices = self._repo.find_by_number(self._tenant, number)
            self._cache[number] = [
                OpenInvoice(
                    invoice_id=i.invoice_id,
                    number=i.number,
                    amount=i.amount,
                    # a cancelled or failed invoice takes no money, nor one whose customer data (its INN) was erased
                    outstanding=0
                    if i.state in (InvoiceState.CANCELLED, InvoiceState.FAILED) or i.customer_erased_at is not None
                    else i.outstanding,
                    currency=i.currency,
                    customer_inn=i.customer.inn,
                )
                for i in invoices
            ]
        return self._cache[number]


@dataclass
class Banking:
    tenants: TenantDirectory
    repo: InvoiceRepository
    payments: PaymentEvents
    outbox: CrmOutbox
    store: BankStore
    sources: Callable[[TenantConfig], BankSource]
    #: Acquirers' payouts (`bank.acquiring`): recognised before matching, never taken for a customer's payment.
    settlements: Settlements | None = None
    #: `bank.line_needs_review`, written with the line's decision (the transactional outbox), then published.
    events: DomainEvents | None = None

    def _bank(self, tenant: TenantConfig) -> BankSettings:
        if tenant.bank is None:
            raise BankNotConfigured(f"tenant {tenant.tenant_id} has no bank settings")
        return tenant.bank

    # -- reconcile -------------------------------------------------------------------------------------------------

    def reconcile_lines(self, tenant_id: str, lines: Sequence[StatementLine]) -> ReconcileSummary:
        tenant = self.tenants.get(tenant_id)
        bank = self._bank(tenant)
        summary = ReconcileSummary(lines=len(lines))
        ours = [line for line in lines if line.account in bank.accounts]
        summary.not_ours = len(lines) - len(ours)
        sources = acquiring_sources(tenant) if self.settlements else ()
        payouts = [line for line in ours if recognise(line, sources)]
        if payouts:
            self._settle(tenant, payouts, sources, summary)
            settled = {line.fingerprint for line in payouts}
            ours = [line for line in ours if line.fingerprint not in settled]
        patterns = compile_patterns(bank.invoice_patterns)
        known = {line.fingerprint: self.store.get_line(tenant_id, line.fingerprint) for line in ours}
        applied = {fp for fp, record in known.items() if record is not None and record.done}
        decisions = reconcile(ours, _RepoIndex(self.repo, tenant_id), patterns, seen=applied)
        for line, decision in zip(ours, decisions, strict=True):
            if decision.kind == "duplicate":
                summary.duplicates += 1
                continue
            existing = known.get(line.fingerprint)
            record = existing if existing is not None else self._record(tenant, line, decision)
            if record.done:  # another reader (or a person) finished it meanwhile
                summary.duplicates += 1
                continue
            final = record.decision  # the first decision recorded for this line is the one applied
            summary.decisions[final.kind] = summary.decisions.get(final.kind, 0) + 1
            summary.records.append(final)
            self._apply(tenant, line, final)
            self.store.mark_applied(tenant_id, line.fingerprint)
            if final.needs_a_person:
                summary.needs_a_person += 1
                self._ask_a_person(tenant, line, final)
            else:
                summary.applied += 1
        return summary

    def _settle(
        self,
        tenant: TenantConfig,
        lines: Sequence[StatementLine],
        sources: Sequence[AcquiringSettings],
        summary: ReconcileSummary,
    ) -> None:
        """Acquirers' payouts: recorded once with what they pay out (the first decision for a line is the one
        applied, as for any line), applied, and a payout that does not add up is left for a person."""
        assert self.settlements is not None and tenant.bank is not None
        seen: set[str] = set()
        for line in lines:
            if line.fingerprint in seen:
                summary.duplicates += 1
                continue
            seen.add(line.fingerprint)
            record = self.store.get_line(tenant.tenant_id, line.fingerprint)
            if record is not None and record.done:
                summary.duplicates += 1
                continue
            if record is None:
                source = recognise(line, sources)
                assert source is not None
                decision = self.settlements.decide(tenant, line, source)
                record = self._record(tenant, line, decision)
                if record.done:
                    summary.duplicates += 1
                    continue
            final = record.decision
            summary.decisions[final.kind] = summary.decisions.get(final.kind, 0) + 1
            summary.records.append(final)
            if final.kind == "settlement":
                self.settlements.apply(tenant, line, final)
            else:  # recorded as something else before acquiring was configured: that decision stands
                self._apply(tenant, line, final)
            self.store.mark_applied(tenant.tenant_id, line.fingerprint)
            if final.needs_a_person:
                summary.needs_a_person += 1
                logger.warning("payout %s needs a person: %s", line.fingerprint, final.reason)
            else:
                summary.applied += 1

    def _record(self, tenant: TenantConfig, line: StatementLine, decision: Decision) -> BankLineRecord:
        """The line and its decision, stored once; a decision that needs a person is announced
        (`bank.line_needs_review`) in the same transaction, so exactly the stored decision is announced, once."""
        batch = None
        if decision.needs_a_person and self.events is not None:
            event = self._review_event(tenant, line, decision)
            batch = self.events.batch(event.id, [event])
        record = self.store.record_line(tenant.tenant_id, line, decision, outbox=batch)
        if record.fresh and batch is not None and self.events is not None:
            self.events.deliver(batch)
        return record

    @staticmethod
    def _review_event(tenant: TenantConfig, line: StatementLine, decision: Decision) -> DomainEvent:
        from datetime import UTC

        from paybridge.domain.domain_events import bank_line_needs_review

        return bank_line_needs_review(
            tenant.tenant_id,
            line.fingerprint,
            datetime.now(UTC),
            account=line.account,
            amount=line.amount,
            currency=line.currency,
            value_date=line.value_date.isoformat(),
            decision=decision.kind,
            reason=decision.reason,
            numbers_found=list(decision.numbers_found),
        )

    def _apply(self, tenant: TenantConfig, line: StatementLine, decision: Decision) -> None:
        for allocation in decision.allocations:
            event = MoneyReceived(ref=f"bank:{line.fingerprint}", amount=allocation.amount, method="bank_transfer")
            record = ProviderEventRecord(
                provider="bank",
                event_id=f"{line.fingerprint}:{allocation.invoice_id}",
                tenant_id=tenant.tenant_id,
                invoice_id=allocation.invoice_id,
                summary=f"{decision.kind} {allocation.amount}",
            )
            with contextlib.suppress(DuplicateProviderEvent):  # applied by an earlier run of this line
                self.payments.apply_money(tenant.tenant_id, allocation.invoice_id, event, record)

    def _ask_a_person(self, tenant: TenantConfig, line: StatementLine, decision: Decision) -> None:
        """Tell the managers of the candidate invoices' deals (no candidate: the review list and the alarm)."""
        text = (
            f"PayBridge: банковский перевод {format_money(line.amount, line.currency)} от {line.payer_name or '—'}"
            f" (ИНН {line.payer_inn or '—'}, {line.value_date:%d.%m.%Y}) не разнесён автоматически: {decision.reason}."
            f" Назначение: «{line.purpose[:300]}». Проверьте и разнесите вручную."
        )
        for number in decision.numbers_found:
            for invoice in self.repo.find_by_number(tenant.tenant_id, number):
                self.outbox.publish(
                    DealUpdate(
                        tenant_id=tenant.tenant_id,
                        deal_id=invoice.deal_id,
                        invoice_id=invoice.invoice_id,
                        version=invoice.version,
                        event=f"bank_review:{line.fingerprint[:16]}",
                        ops=(DealOp(kind="comment", text=text), DealOp(kind="notify_manager", text=text)),
                    )
                )
        logger.warning("bank line %s needs a person: %s", line.fingerprint, decision.reason)

    def review(self, tenant_id: str) -> list[BankLineRecord]:
        self._bank(self.tenants.get(tenant_id))
        return self.store.lines_for_review(tenant_id)

    def upload(self, tenant_id: str, data: bytes) -> tuple[ReconcileSummary, ParsedStatement]:
        """A 1CClientBankExchange file: its incoming payments to the tenant's accounts, reconciled. A malformed file is
        StatementFormatError (naming the line) before anything is written."""
        bank = self._bank(self.tenants.get(tenant_id))
        parsed = parse_1c(data, bank.accounts)
        return self.reconcile_lines(tenant_id, parsed.lines), parsed

    def accept_webhook(
        self,
        tenant_id: str,
        source_name: str,
        headers: dict[str, str],
        query: dict[str, str],
        body: bytes,
        now: datetime,
    ) -> ReconcileSummary:
        """A bank's push at `/bank/{tenant}/{source}`: the tenant's own source verifies it (InvalidSignature when the
        route names another source, or none is configured), and the body is only a hint of which account moved —
        that account's statement is read now."""
        tenant = self.tenants.get(tenant_id)
        source_settings = tenant.bank.source if tenant.bank else None
        if source_settings is None or not _names(source_name, source_settings.kind):
            raise InvalidSignature(f"tenant {tenant_id} takes no webhook from the bank source {source_name!r}")
        hint = self.sources(tenant).verify_webhook(headers, query, body)
        logger.info("bank webhook: operation %s on %s", hint.reference, hint.account)
        return self.poll(tenant_id, now, force=True, only_account=hint.account)

    # -- polling ---------------------------------------------------------------------------------------------------

    def poll(
        self, tenant_id: str, now: datetime, force: bool = False, only_account: str | None = None
    ) -> ReconcileSummary:
        """Read what is new on each of the tenant's accounts (resuming a window's pages where the last run
        stopped) and reconcile it. Without `force`, an account polled less than `poll_every_minutes` ago waits."""
        tenant = self.tenants.get(tenant_id)
        bank = self._bank(tenant)
        if bank.source is None:
            raise BankNotConfigured(f"tenant {tenant_id} has no statement source")
        source = self.sources(tenant)
        summary = ReconcileSummary()
        accounts = [a for a in bank.accounts if only_account in (None, a)]
        if only_account is not None and not accounts:
            raise BankNotConfigured(f"account {only_account} is not one of tenant {tenant_id}'s")
        for account in accounts:
            cursor = self.store.get_cursor(tenant_id, account)
            if cursor and not force and now - cursor.polled_at < timedelta(minutes=bank.poll_every_minutes):
                continue
            if cursor is None:
                window_from, window_to, page = now - FIRST_LOOKBACK, now, None
            elif cursor.cursor:  # the last run stopped between pages: finish that window first
                window_from, window_to, page = cursor.window_from, cursor.window_to, cursor.cursor
            else:
                window_from, window_to, page = cursor.window_to - OVERLAP, now, None
            while True:
                result = source.fetch(account, window_from, window_to, page)
                summary.add(self.reconcile_lines(tenant_id, result.lines))
                page = result.next_cursor
                self.store.save_cursor(tenant_id, account, BankCursor(window_from, window_to, page, now))
                if not page:
                    break
        return summary

    def poll_due(self, now: datetime) -> dict[str, ReconcileSummary]:
        """The schedule: every tenant with a statement source whose interval has passed."""
        done: dict[str, ReconcileSummary] = {}
        for tenant_id in self.tenants.tenant_ids():
            tenant = self.tenants.get(tenant_id)
            if tenant.bank is None or tenant.bank.source is None:
                continue
            try:
                done[tenant_id] = self.poll(tenant_id, now)
            except Exception:  # one tenant's bank being down must not stop the others
                logger.exception("bank poll of %s failed", tenant_id)
        return done
