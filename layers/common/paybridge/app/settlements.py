"""Acquiring settlements: an acquirer's payout on the statement matched to the provider operations it pays out, each
operation's three-way status (recorded at the provider → settled to the bank → shown in the deal), and the
reconciliation report per month and provider.

`Banking` hands a recognised payout line here (`decide`, then — once its decision is recorded, the first decision for
a line being the one applied — `apply`). Applying marks each operation settled once (a conditional put: a payout
read by the poller, pushed by the webhook and uploaded in a 1C file settles it once), writes one line into the deal's
timeline when its money reaches the bank, and keeps the payout for the report. A payout that does not add up is a
review line (`Decision.needs_a_person`), with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from paybridge.adapters.errors import ProviderRejected, ProviderUnavailable
from paybridge.adapters.outbox import CrmOutbox
from paybridge.domain.bank import Decision, StatementLine
from paybridge.domain.deal_sync import DealOp, DealUpdate
from paybridge.domain.money import format_money
from paybridge.domain.settlement import (
    PROVIDER_DAY,
    AcquiringSettings,
    ProviderOperation,
    SettledItem,
    SettlementMatch,
    match_settlement,
)
from paybridge.storage.repository import InvoiceRepository
from paybridge.tenants import TenantConfig, TenantDirectory

if TYPE_CHECKING:
    from paybridge.adapters.psp.base import PaymentProvider
    from paybridge.storage.settlements import PayoutRecord, SettledMark

logger = logging.getLogger(__name__)

_METHOD = {"card": "картой", "sbp": "через СБП", "saved_method": "сохранённой картой"}
_PROVIDER = {"tbank": "Т-Банк", "yookassa": "ЮKassa", "sandbox": "sandbox", "stripe": "Stripe"}


class SettlementStore(Protocol):
    def operations(
        self, tenant_id: str, provider: str, since: datetime, until: datetime
    ) -> list[ProviderOperation]: ...

    def settled(self, tenant_id: str, refs: list[str]) -> dict[str, SettledMark]: ...

    def mark_settled(
        self, tenant_id: str, provider: str, item: SettledItem, fingerprint: str, value_date: date
    ) -> bool: ...

    def save_payout(self, tenant_id: str, line: StatementLine, match: SettlementMatch) -> None: ...

    def payouts(self, tenant_id: str, since: date, until: date) -> list[PayoutRecord]: ...


def acquiring_sources(tenant: TenantConfig) -> tuple[AcquiringSettings, ...]:
    """The tenant's acquiring sources: those configured, and — when its own PSP is T-Bank or YooKassa and not among
    them — that provider with its defaults, so its payouts are never taken for customers' payments (with no
    `fee_percent`, a provider without net amounts is flagged with the rate its payouts imply)."""
    if tenant.bank is None:
        return ()
    sources = tenant.bank.acquiring
    own = tenant.psp.provider
    if own in ("tbank", "yookassa") and all(source.provider != own for source in sources):
        sources = (*sources, AcquiringSettings(provider=own))
    return sources


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), PROVIDER_DAY).astimezone(UTC)


def add_working_days(day: date, days: int) -> date:
    """`day` + `days` working days (Saturdays and Sundays skipped; public holidays are not known here)."""
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


def month_bounds(month: str) -> tuple[date, date]:
    """`"2026-11"` → (1 Nov, 30 Nov); ValueError for anything else."""
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"month {month!r}: YYYY-MM") from None
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following - timedelta(days=1)


@dataclass
class Settlements:
    tenants: TenantDirectory
    repo: InvoiceRepository
    store: SettlementStore
    outbox: CrmOutbox
    providers: Callable[[TenantConfig], PaymentProvider]

    # -- a payout line ---------------------------------------------------------------------------------------------

    def decide(self, tenant: TenantConfig, line: StatementLine, source: AcquiringSettings) -> Decision:
        """What this payout pays out (nothing written): the unsettled operations of its window, each payment's net
        asked of the provider where its API gives one, matched by `match_settlement`."""
        since = _day_start(line.value_date - timedelta(days=source.lookback_days))
        until = _day_start(line.value_date + timedelta(days=1))
        operations = self.store.operations(tenant.tenant_id, source.provider, since, until)
        settled = self.store.settled(tenant.tenant_id, [op.ref for op in operations])
        candidates = self._with_net(tenant, source, [op for op in operations if op.ref not in settled])
        match = match_settlement(line, source, candidates)
        name = _PROVIDER.get(source.provider, source.provider)
        amount = format_money(line.amount, line.currency)
        if match.flagged:
            reason = f"{name} payout of {amount} does not add up: " + "; ".join(match.reasons)
        else:
            reason = (
                f"{name} payout of {amount} settles {sum(1 for i in match.items if i.kind == 'payment')} payment(s) "
                f"of {format_money(match.payments, line.currency)} less {format_money(match.refunds, line.currency)}"
                f" refunds and a fee of {format_money(match.fees, line.currency)} ({match.basis})"
            )
        return Decision(fingerprint=line.fingerprint, kind="settlement", reason=reason, settlement=match)

    def _with_net(
        self, tenant: TenantConfig, source: AcquiringSettings, operations: list[ProviderOperation]
    ) -> list[ProviderOperation]:
        """Ask the provider for each payment's amount after its fee, where it reports one (YooKassa's
        `income_amount`); a provider that cannot be asked leaves the estimate."""
        if not source.reports_net or tenant.psp.provider != source.provider:
            return operations
        provider = self.providers(tenant)
        out = []
        for op in operations:
            if op.kind == "payment" and op.net is None:
                try:
                    net = provider.get_payment(op.payment_id).net_amount
                except (ProviderUnavailable, ProviderRejected) as exc:
                    logger.warning("net of %s not known (%s): the fee is estimated", op.ref, exc)
                    net = None
                if net is not None and 0 <= net <= op.amount:
                    op = op.model_copy(update={"net": net})
            out.append(op)
        return out

    def apply(self, tenant: TenantConfig, line: StatementLine, decision: Decision) -> int:
        """Apply a recorded payout decision: each operation settled once, its deal told once, the payout kept.
        Returns how many operations this call settled."""
        match = decision.settlement
        if match is None:
            return 0
        newly = 0
        told: dict[str, list[SettledItem]] = {}
        for item in match.items:
            if self.store.mark_settled(tenant.tenant_id, match.provider, item, line.fingerprint, line.value_date):
                newly += 1
                if item.kind == "payment":
                    told.setdefault(item.invoice_id, []).append(item)
        self.store.save_payout(tenant.tenant_id, line, match)
        for invoice_id, items in told.items():
            self._tell_deal(tenant, line, match, invoice_id, items)
        return newly

    def _tell_deal(
        self,
        tenant: TenantConfig,
        line: StatementLine,
        match: SettlementMatch,
        invoice_id: str,
        items: list[SettledItem],
    ) -> None:
        invoice = self.repo.get(tenant.tenant_id, invoice_id)
        if invoice is None:
            return
        name = _PROVIDER.get(match.provider, match.provider)
        parts = []
        for item in items:
            how = _METHOD.get(item.method or "", "")
            fee = format_money(item.fee, invoice.currency)
            basis = "" if item.basis == "exact" else " по тарифу"
            parts.append(
                f"{format_money(item.amount, invoice.currency)}{' ' + how if how else ''} (комиссия {fee}{basis})"
            )
        text = (
            f"PayBridge: оплата по счёту № {invoice.number} поступила на расчётный счёт {line.value_date:%d.%m.%Y} "
            f"в выплате {name}: {', '.join(parts)}."
        )
        self.outbox.publish(
            DealUpdate(
                tenant_id=tenant.tenant_id,
                deal_id=invoice.deal_id,
                invoice_id=invoice.invoice_id,
                version=invoice.version,
                event=f"settled:{line.fingerprint[:16]}",
                ops=(DealOp(kind="comment", text=text),),
            )
        )

    # -- three-way status ------------------------------------------------------------------------------------------

    def trail(self, tenant_id: str, refs: list[str]) -> dict[str, SettledMark]:
        """Which of an invoice's provider money facts reached the bank, and when (the invoice API shows it)."""
        ours = [ref for ref in refs if ref.split(":", 1)[0] in _PROVIDER]
        return self.store.settled(tenant_id, ours) if ours else {}

    # -- the report ------------------------------------------------------------------------------------------------

    def report(self, tenant_id: str, month: str, today: date | None = None) -> dict[str, Any]:
        """Per provider for the month: what was recorded, settled, the fees, what is not settled after the
        provider's usual delay, and the payouts that did not add up."""
        first, last = month_bounds(month)
        tenant = self.tenants.get(tenant_id)
        sources = acquiring_sources(tenant)
        today = today or datetime.now(PROVIDER_DAY).date()
        payouts = self.store.payouts(tenant_id, first, last + timedelta(days=31))
        providers: list[dict[str, Any]] = []
        for source in sources:
            operations = self.store.operations(
                tenant_id, source.provider, _day_start(first), _day_start(last + timedelta(days=1))
            )
            operations = [op for op in operations if first <= op.day <= last]
            marks = self.store.settled(tenant_id, [op.ref for op in operations])
            payments = [op for op in operations if op.kind == "payment"]
            refunds = [op for op in operations if op.kind == "refund"]
            by_method: dict[str, int] = {}
            for op in payments:
                by_method[op.method or "unknown"] = by_method.get(op.method or "unknown", 0) + op.amount
            settled = [op for op in payments if op.ref in marks]
            unsettled: list[dict[str, Any]] = []
            waiting: list[dict[str, Any]] = []
            for op in payments:
                if op.ref in marks:
                    continue
                due = add_working_days(op.day, source.delay_days)
                entry = {
                    "ref": op.ref,
                    "invoice_id": op.invoice_id,
                    "amount": op.amount,
                    "method": op.method,
                    "recorded_on": op.day.isoformat(),
                    "due_by": due.isoformat(),
                }
                (unsettled if due < today else waiting).append(entry)
            own = [p for p in payouts if p.match.provider == source.provider]
            in_month = [p for p in own if first <= p.line.value_date <= last]
            differences = [
                {
                    "value_date": p.line.value_date.isoformat(),
                    "fingerprint": p.fingerprint,
                    "amount": p.line.amount,
                    "expected": p.match.expected,
                    "difference": p.match.difference,
                    "reasons": list(p.match.reasons),
                    "missing": list(p.match.missing),
                }
                for p in own
                if p.match.flagged
                and (first <= p.line.value_date <= last or any(first <= d <= last for d in p.match.covered_days))
            ]
            fees_exact = sum(marks[op.ref].fee for op in settled if marks[op.ref].basis == "exact")
            providers.append(
                {
                    "provider": source.provider,
                    "fee_percent": source.fee_percent,
                    "usual_delay_days": source.delay_days,
                    "recorded": {"count": len(payments), "amount": sum(op.amount for op in payments)},
                    "by_method": by_method,
                    "refunds": {"count": len(refunds), "amount": sum(op.amount for op in refunds)},
                    "settled": {"count": len(settled), "amount": sum(op.amount for op in settled)},
                    "fees": sum(marks[op.ref].fee for op in settled),
                    "fees_exact": fees_exact,
                    "payouts": {
                        "count": len(in_month),
                        "amount": sum(p.line.amount for p in in_month),
                        "fees": sum(p.match.fees for p in in_month),
                    },
                    "unsettled": unsettled,
                    "awaiting": waiting,
                    "differences": differences,
                }
            )
        totals = {
            "recorded": sum(p["recorded"]["amount"] for p in providers),
            "settled": sum(p["settled"]["amount"] for p in providers),
            "fees": sum(p["fees"] for p in providers),
            "unsettled": sum(sum(u["amount"] for u in p["unsettled"]) for p in providers),
            "differences": sum(len(p["differences"]) for p in providers),
        }
        return {
            "tenant_id": tenant_id,
            "month": month,
            "currency": tenant.currency,
            "as_of": today.isoformat(),
            "providers": providers,
            "totals": totals,
        }
