"""Personal data kept no longer than needed.

- `sweep` (RetentionFunction, daily): for each tenant with a retention period, the customer's name, e-mail, phone
  and INN are erased from every closed invoice issued longer ago than that (`CustomerErased`, applied through
  `InvoiceChanges.apply`: audited as `retention`, the money facts, numbers and history untouched).
- `erase_person` (`POST /v1/{tenant}/customers/erase`, ops scope): one person's request — every closed invoice whose
  customer has the given e-mail, phone or INN is erased now, audited with who and why; open invoices keep the data
  they need to be paid and receipted, and are named in the answer (the retention or a later request erases them
  once closed). A lever: idempotent by its `Idempotency-Key`.

Nothing read by reports or reconciliation is touched: amounts, receipts, refunds, states, numbers and deals stay;
a closed invoice is no longer matched against bank lines, so its payer's INN is not needed there."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from paybridge.app.changes import Actor, InvoiceChanges
from paybridge.app.errors import LeverInvalid
from paybridge.app.levers import Commit, LeverOutcome, LeverRequest, LeverResult, LeverRunner
from paybridge.domain.events import CustomerErased
from paybridge.domain.invoice import OPEN_STATES, Customer, Invoice
from paybridge.storage.retention import DynamoRetentionIndex
from paybridge.tenants import TenantDirectory

logger = logging.getLogger(__name__)

#: Invoices one sweep erases per tenant (the next day goes on).
SWEEP_LIMIT = 2000
OPEN_LISTED = 500


class Person(BaseModel):
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
    clock: Callable[[], datetime] = utc_now

    def sweep(self) -> dict[str, int]:
        """Erase what each tenant's retention period says is due; answers the invoices erased per tenant."""
        now = self.clock()
        done: dict[str, int] = {}
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
            done[tenant_id] = count
        return done

    def erase_person(self, request: LeverRequest, person: Person) -> LeverResult:
        tenant_id = request.tenant_id
        self.tenants.get(tenant_id)
        if not (person.email or person.phone or person.inn):
            raise LeverInvalid("name the person by email, phone or inn")

        def lever(commit: Commit) -> LeverOutcome:
            closed = [i for i in self.index.closed_with_data(tenant_id, limit=100_000) if person.matches(i.customer)]
            still_open = self._open_of(tenant_id, person)
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
            open_ids = ", ".join(i.invoice_id for i in still_open)
            detail = f"{person.reference}: {len(erased)} invoice(s) erased"
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

    def _open_of(self, tenant_id: str, person: Person) -> list[Invoice]:
        found: list[Invoice] = []
        for state in OPEN_STATES:
            found += [
                i
                for i in self.changes.repo.list_by_state(tenant_id, state.value, limit=OPEN_LISTED)
                if person.matches(i.customer)
            ]
        return found
