"""Personal data kept no longer than needed.

- `sweep` (RetentionFunction, daily): for each tenant with a retention period, the customer's name, e-mail, phone
  and INN are erased from every closed invoice issued longer ago than that (`CustomerErased`, applied through
  `InvoiceChanges.apply`: audited as `retention`, the money facts, numbers and history untouched).
- `erase_person` (`POST /v1/{tenant}/customers/erase`, ops scope): one person's request — every closed invoice whose
  customer has the given e-mail, phone or INN is erased now, audited with who and why; open invoices keep the data
  they need to be paid and receipted, and are named in the answer (the retention or a later request erases them
  once closed). A lever: idempotent by its `Idempotency-Key`.

The same period covers the other two places a person's data lives: a cancelled or blocked subscription's customer
(counted from its close; an active or paused one keeps what its notices and receipts need), and a bank line's payer
(name, INN, account; once the line is done — applied, resolved or dismissed — counted from its recording; a line
waiting for a person keeps it). A person's request erases both too: their closed subscriptions, and the done lines
paid from their INN.

Nothing read by reports or reconciliation is touched: amounts, receipts, refunds, states, numbers and deals stay;
a closed invoice is no longer matched against bank lines, so its payer's INN is not needed there; a done bank line
is found again by the fingerprint of the line as the bank sends it, not by what is stored."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ConfigDict

from paybridge.app.changes import Actor, InvoiceChanges
from paybridge.app.errors import LeverInvalid
from paybridge.app.levers import Commit, LeverOutcome, LeverRequest, LeverResult, LeverRunner
from paybridge.domain.events import CustomerErased
from paybridge.domain.invoice import OPEN_STATES, Customer, Invoice
from paybridge.domain.model import Model
from paybridge.domain.subscriptions import Subscription, erase_customer
from paybridge.storage.bank import DynamoBankStore
from paybridge.storage.errors import SubscriptionConflict
from paybridge.storage.retention import DynamoRetentionIndex
from paybridge.storage.subscriptions import DynamoSubscriptionStore
from paybridge.tenants import TenantDirectory

logger = logging.getLogger(__name__)

#: Invoices one sweep erases per tenant (the next day goes on).
SWEEP_LIMIT = 2000
OPEN_LISTED = 500


class Person(Model):
    """Who asks to be forgotten: at least one of e-mail, phone, INN (matched exactly; e-mail case-insensitively)."""

    model_config = ConfigDict(frozen=True)
    email: str | None = None
    phone: str | None = None
    inn: str | None = None

    def matches(self, customer: Customer) -> bool:
        return bool(
            (self.email and customer.email and customer.email.casefold() == self.email.casefold())
            or (self.phone and customer.phone == self.phone)
            or (self.inn and customer.inn == self.inn)
        )

    @property
    def reference(self) -> str:
        """Names the request in the audit and logs without the data itself."""
        canonical = f"{(self.email or '').casefold()}|{self.phone or ''}|{self.inn or ''}"
        return "person:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Retention:
    tenants: TenantDirectory
    index: DynamoRetentionIndex
    changes: InvoiceChanges
    runner: LeverRunner
    subscriptions: DynamoSubscriptionStore | None = None
    bank: DynamoBankStore | None = None
    clock: Callable[[], datetime] = utc_now

    def sweep(self) -> dict[str, dict[str, int]]:
        """Erase what each tenant's retention period says is due; answers per tenant the invoices, subscriptions and
        bank lines erased."""
        now = self.clock()
        done: dict[str, dict[str, int]] = {}
        for tenant_id in self.tenants.tenant_ids():
            tenant = self.tenants.get(tenant_id)
            if tenant.retention is None:
                continue
            days = tenant.retention.customer_data_days
            cutoff = (now - timedelta(days=days)).isoformat()
            actor = Actor("retention", f"customer data kept {days} days")
            count = 0
            for invoice in self.index.closed_with_data(tenant_id, created_before=cutoff, limit=SWEEP_LIMIT):
                try:
                    change = self.changes.apply(
                        tenant_id, invoice.invoice_id, CustomerErased(key=f"retention:{days}d"), actor=actor
                    )
                except Exception:  # one invoice never stops the sweep (e.g. reissued meanwhile: open again)
                    logger.exception("retention of %s failed", invoice.invoice_id)
                    continue
                count += int(change.changed)
            subs = self.subscriptions.closed_with_data(tenant_id, cutoff, SWEEP_LIMIT) if self.subscriptions else []
            lines = self.bank.with_payer_data(tenant_id, cutoff, SWEEP_LIMIT) if self.bank else []
            done[tenant_id] = {
                "invoices": count,
                "subscriptions": sum(self._erase_subscription(sub, now) for sub in subs),
                "bank_lines": sum(self._erase_line(tenant_id, fingerprint, now) for fingerprint in lines),
            }
            if any(done[tenant_id].values()):
                logger.info("retention of %s (%d days): %s erased", tenant_id, days, done[tenant_id])
        return done

    def _erase_subscription(self, sub: Subscription, now: datetime) -> bool:
        assert self.subscriptions is not None
        erased = erase_customer(sub, now)
        if erased is sub:
            return False
        try:
            self.subscriptions.save(erased, sub.version, due=None)
        except SubscriptionConflict:  # changed meanwhile: the next sweep decides on what it is then
            return False
        return True

    def _erase_line(self, tenant_id: str, fingerprint: str, now: datetime) -> bool:
        assert self.bank is not None
        try:
            return self.bank.erase_payer(tenant_id, fingerprint, now)
        except Exception:  # one line never stops the sweep
            logger.exception("retention of bank line %s failed", fingerprint)
            return False

    def erase_person(self, request: LeverRequest, person: Person) -> LeverResult:
        tenant_id = request.tenant_id
        self.tenants.get(tenant_id)
        if not (person.email or person.phone or person.inn):
            raise LeverInvalid("name the person by email, phone or inn")

        def lever(commit: Commit) -> LeverOutcome:
            closed = [i for i in self.index.closed_with_data(tenant_id, limit=100_000) if person.matches(i.customer)]
            still_open = self._open_of(tenant_id, person)
            subs = [
                sub
                for sub in (self.subscriptions.closed_with_data(tenant_id, limit=100_000) if self.subscriptions else [])
                if person.matches(sub.customer)
            ]
            lines = self._lines_paid_by(tenant_id, person)
            commit()
            erased: list[Invoice] = []
            for invoice in closed:
                change = self.changes.apply(
                    tenant_id,
                    invoice.invoice_id,
                    CustomerErased(key=f"request:{request.key}"),
                    actor=request.actor,
                )
                erased.append(change.invoice)
            now = self.clock()
            subs_erased = sum(self._erase_subscription(sub, now) for sub in subs)
            lines_erased = sum(self._erase_line(tenant_id, fingerprint, now) for fingerprint in lines)
            open_ids = ", ".join(i.invoice_id for i in still_open)
            detail = (
                f"{person.reference}: {len(erased)} invoice(s), {subs_erased} subscription(s),"
                f" {lines_erased} bank line(s) erased"
            )
            if still_open:
                detail += f"; kept while open: {open_ids}"
            logger.info(
                "erasure %s for %s: %d erased, %d open", request.key, person.reference, len(erased), len(still_open)
            )
            return LeverOutcome(
                lever="customer_erase",
                key=request.key,
                actor=request.actor.who,
                reason=request.actor.why,
                target=person.reference,
                detail=detail,
                invoices=tuple(erased),
            )

        return self.runner.run(request, lever)

    def _lines_paid_by(self, tenant_id: str, person: Person) -> list[str]:
        """The tenant's bank lines holding payer data whose payer's INN is the person's (a bank line names no
        e-mail or phone)."""
        if self.bank is None or not person.inn:
            return []
        found = []
        for fingerprint in self.bank.with_payer_data(tenant_id, limit=100_000):
            record = self.bank.get_line(tenant_id, fingerprint)
            if record is not None and record.line.payer_inn == person.inn:
                found.append(fingerprint)
        return found

    def _open_of(self, tenant_id: str, person: Person) -> list[Invoice]:
        found: list[Invoice] = []
        for state in OPEN_STATES:
            found += [
                i
                for i in self.changes.repo.list_by_state(tenant_id, state.value, limit=OPEN_LISTED)
                if person.matches(i.customer)
            ]
        return found
