"""Deal delivery: what the CRM outbox consumer does with a batch — deal updates written to their CRMs, deal checks
read (and an invoice issued for each deal in its trigger stage) — apart from Lambda.

- Each record is one `DealUpdate` (writes) or `DealCheck` (a deal to read: does it ask for an invoice?); a body that
  is neither is parked at once (it will never parse).
- The batch is delivered through `DealDelivery.deliver` (batched per CRM, within its rate limit).
- A transient failure is retried after a growing delay (5 s, 10 s, … up to 5 min: the message's visibility); since a
  FIFO group must stay in order, every later record of the same deal in the batch is retried with it.
- A permanent failure is parked on the dead-letter queue with its reason (alarm; `make redrive-crm` sends parked
  updates back once the cause is fixed) and does not hold up the deal's later updates.
- Top-up: Lambda hands a FIFO consumer at most 10 records, while one CRM request can carry far more (Bitrix24: 50
  calls, about 25 updates). When a batch is full, the consumer pulls up to `TOP_UP` more waiting updates itself, so
  each rate-limited request carries as many updates as it can; it deletes (or delays) those itself.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from pydantic import TypeAdapter, ValidationError

from paybridge.adapters.crm.base import Crm, DealMoved, UpdateOutcome
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, ProviderUnavailable
from paybridge.adapters.outbox import OutboxControl, OutboxRecord
from paybridge.app.errors import DealNotInvoiceable, LifetimeOutOfRange
from paybridge.app.issuing import Issuing
from paybridge.domain.customer_profile import MoneyFact, ProfileEntity, ProfileWrite, choose_entity
from paybridge.domain.deal_sync import DealCheck, DealOp, DealUpdate, OutboxMessage
from paybridge.domain.errors import InvoiceConflict, ReceiptError
from paybridge.domain.model import DEFERRED
from paybridge.tenants import TenantConfig, TenantDirectory, TenantNotFound

if TYPE_CHECKING:
    from paybridge.app.crm_actions import CrmActions
    from paybridge.storage.customer_profiles import Counted

logger = logging.getLogger(__name__)
_MESSAGE: TypeAdapter[DealUpdate | DealCheck] = TypeAdapter(OutboxMessage, config=DEFERRED)

FIRST_DELAY_SECONDS = 5
MAX_DELAY_SECONDS = 300
#: Lambda's FIFO batch is 10; with a full batch, pull this many more (one CRM request holds ~25 two-call updates).
FULL_BATCH = 10
TOP_UP = 15


@dataclass
class BatchResult:
    retry: list[str] = field(default_factory=list)  # message ids, for `batchItemFailures`
    delivered: int = 0
    parked: int = 0


def retry_delay(receive_count: int, jitter: Callable[[], float] = random.random) -> int:
    base = min(FIRST_DELAY_SECONDS * 2 ** max(receive_count - 1, 0), MAX_DELAY_SECONDS)
    return int(base * (0.8 + 0.4 * jitter()))


def process_batch(
    records: Sequence[OutboxRecord],
    deliver: Callable[[Sequence[DealUpdate | DealCheck]], list[UpdateOutcome]],
    control: OutboxControl,
    top_up: int = TOP_UP,
) -> BatchResult:
    result = BatchResult()
    if len(records) >= FULL_BATCH and top_up > 0:
        records = [*records, *control.pull(top_up)]
    parsed: list[tuple[OutboxRecord, DealUpdate | DealCheck]] = []
    for record in records:
        try:
            parsed.append((record, _MESSAGE.validate_json(record.body)))
        except ValidationError as exc:
            logger.error("outbox message %s is not an update or a check: %s", record.message_id, exc)
            control.park(record.body, record.group, f"not a DealUpdate: {exc.errors()[0]['msg']}")
            result.parked += 1
            if record.pulled:
                control.delete([record.receipt_handle])
    outcomes = deliver([update for _, update in parsed]) if parsed else []
    held: set[str] = set()  # groups with a retried record: their later records wait too (FIFO order)
    done_pulled: list[str] = []
    for (record, update), outcome in zip(parsed, outcomes, strict=True):
        if record.group in held or (not outcome.ok and outcome.transient):
            held.add(record.group)
            delay = retry_delay(record.receive_count)
            logger.warning(
                "CRM update %s retried in %s s: %s", update.update_id, delay, outcome.detail or "earlier one waits"
            )
            control.delay(record.receipt_handle, delay)
            if not record.pulled:
                result.retry.append(record.message_id)
            continue
        if not outcome.ok:
            logger.error("CRM update %s parked: %s", update.update_id, outcome.detail)
            control.park(record.body, record.group, outcome.detail)
            result.parked += 1
        else:
            result.delivered += 1
        if record.pulled:
            done_pulled.append(record.receipt_handle)
    if done_pulled:
        control.delete(done_pulled)
    return result


_M = TypeVar("_M", DealUpdate, DealCheck)


class EchoLedger(Protocol):
    """Our deal writes whose change event will come back to us (paybridge.storage.crm_state.DynamoEchoLedger)."""

    def expect(self, tenant_id: str, counts: dict[str, int]) -> None:
        """Before sending: this many writes per deal will each raise one change event at us."""
        ...

    def cancel(self, tenant_id: str, counts: dict[str, int]) -> None:
        """They were not sent after all."""
        ...

    def take(self, tenant_id: str, deal_id: str) -> bool:
        """A change event of the deal arrived: True (one fewer expected) when it is the echo of our write."""
        ...


class ProfileLedger(Protocol):
    """Payments on the customer's profile, counted once per fact (paybridge.storage.customer_profiles)."""

    def entity_of(self, tenant_id: str, deal_id: str) -> ProfileEntity | None:
        """The entity resolved for the deal before (None: not yet)."""
        ...

    def remember(self, tenant_id: str, deal_id: str, entity: ProfileEntity) -> None: ...

    def count(self, tenant_id: str, entity: ProfileEntity, facts: Sequence[MoneyFact]) -> Counted | None:
        """Count the facts not counted yet; the totals and the entries not shown yet (None: nothing to show)."""
        ...

    def shown(self, tenant_id: str, entity: ProfileEntity, fact_ids: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class _Shown:
    """What one update's profile op will show (marked as shown once the CRM took the update)."""

    entity: ProfileEntity
    fact_ids: tuple[str, ...]


@dataclass
class DealDelivery:
    tenants: TenantDirectory
    crms: Callable[[TenantConfig], Crm]
    issuing: Issuing
    #: Remembers our writes, so that their echoes are known without reading the deal (CRMs whose change events
    #: carry only the deal id: Bitrix24 with a stage trigger). None: every echo is read.
    echoes: EchoLedger | None = None
    #: The CRM action triggers (`app/crm_actions.py`), matched on each deal a check reads.
    crm_actions: Callable[[], CrmActions] | None = None
    #: Payments on the customer's profile (None: the `customer_profile` ops of updates write nothing).
    profiles: ProfileLedger | None = None

    def deliver(self, messages: Sequence[DealUpdate | DealCheck]) -> list[UpdateOutcome]:
        """A batch from the outbox: updates go to their CRMs (`deliver_updates`), checks read their deals
        (`check_deals`). One outcome per message, in order."""
        outcomes: list[UpdateOutcome | None] = [None] * len(messages)
        updates = [(i, m) for i, m in enumerate(messages) if isinstance(m, DealUpdate)]
        checks = [(i, m) for i, m in enumerate(messages) if isinstance(m, DealCheck)]
        if updates:
            for (i, _), outcome in zip(updates, self.deliver_updates([m for _, m in updates]), strict=True):
                outcomes[i] = outcome
        if checks:
            for (i, _), outcome in zip(checks, self.check_deals([m for _, m in checks]), strict=True):
                outcomes[i] = outcome
        return [o if o is not None else UpdateOutcome.retry("no outcome") for o in outcomes]

    def deliver_updates(self, updates: Sequence[DealUpdate]) -> list[UpdateOutcome]:
        """Send outbox updates to their CRMs: one `apply` (batched by the adapter) per tenant, order kept. One outcome
        per update, in order."""

        def apply(crm: Crm, tenant: TenantConfig, mine: Sequence[DealUpdate]) -> list[UpdateOutcome]:
            shown: list[_Shown | None] = []
            if any(op.kind == "customer_profile" for update in mine for op in update.ops):
                mine, shown = self.resolve_profiles(crm, tenant, mine)
            counts: dict[str, int] = {}
            echo_counts = getattr(crm, "echo_counts", None)
            if self.echoes is not None and echo_counts is not None:
                counts = echo_counts(mine)
                if counts:
                    self.echoes.expect(tenant.tenant_id, counts)  # before sending: the echo may beat the answer
            outcomes = crm.apply(mine)
            if counts and self.echoes is not None:
                unsent = {u.deal_id for u, o in zip(mine, outcomes, strict=True) if not o.ok and o.transient}
                if unsent:
                    self.echoes.cancel(tenant.tenant_id, {d: n for d, n in counts.items() if d in unsent})
            if self.profiles is not None:
                for marked, outcome in zip(shown, outcomes, strict=False):
                    if marked is not None and outcome.ok:
                        self.profiles.shown(tenant.tenant_id, marked.entity, marked.fact_ids)
            return outcomes

        return self._per_tenant(updates, apply)

    def resolve_profiles(
        self, crm: Crm, tenant: TenantConfig, updates: Sequence[DealUpdate]
    ) -> tuple[list[DealUpdate], list[_Shown | None]]:
        """Each update's `customer_profile` op, resolved: the deal's entity (remembered in the ledger; the deals not
        resolved yet are read in one batched `get_deals`), its facts counted once, and the op replaced by what the
        CRM is to write (the entries not shown yet, the totals). An op with nothing to show — every fact shown
        before, no contact or company on the deal, the tenant's feature off — is dropped."""
        settings = tenant.crm.customer_profile
        ledger = self.profiles
        entities: dict[str, ProfileEntity | None] = {}
        wanted = {u.deal_id for u in updates if any(op.kind == "customer_profile" for op in u.ops)}
        if settings is not None and settings.enabled and ledger is not None:
            entities = {deal_id: ledger.entity_of(tenant.tenant_id, deal_id) for deal_id in sorted(wanted)}
            unknown = [deal_id for deal_id, entity in entities.items() if entity is None]
            if unknown:
                deals = crm.get_deals(unknown)  # CrmUnavailable: the tenant's batch is retried
                for deal_id in unknown:
                    deal = deals.get(deal_id)
                    entity = choose_entity(settings.entity, deal.contact_id, deal.company_id) if deal else None
                    entities[deal_id] = entity
                    if entity is not None:
                        ledger.remember(tenant.tenant_id, deal_id, entity)
                    else:
                        logger.info("deal %s has no contact or company: its payments stay off any profile", deal_id)
        resolved: list[DealUpdate] = []
        shown: list[_Shown | None] = []
        in_batch: set[str] = set()  # facts an earlier update of this batch shows already
        for update in updates:
            entity = entities.get(update.deal_id)
            ops: list[DealOp] = []
            marked: _Shown | None = None
            for op in update.ops:
                if op.kind != "customer_profile":
                    ops.append(op)
                    continue
                if entity is None or ledger is None or op.profile is not None:
                    continue
                facts = [fact for fact in op.facts if fact.fact_id not in in_batch]
                counted = ledger.count(tenant.tenant_id, entity, facts) if facts else None
                if counted is None or counted.currency is None:
                    continue
                fact_ids = tuple(fact_id for fact_id, _ in counted.entries)
                in_batch.update(fact_ids)
                totals = counted.totals
                profile = ProfileWrite(
                    entity=entity,
                    entries=tuple(text for _, text in counted.entries),
                    currency=counted.currency,
                    total_paid=totals.total_paid.get(counted.currency, 0),
                    last_payment_at=totals.last_payment_at,
                    last_payment_amount=totals.last_payment_amount,
                    last_payment_currency=totals.last_payment_currency,
                )
                ops.append(DealOp(kind="customer_profile", profile=profile))
                marked = _Shown(entity, fact_ids)
            resolved.append(update.model_copy(update={"ops": tuple(ops)}) if ops else update)
            shown.append(marked)
        return resolved, shown

    def check_deals(self, checks: Sequence[DealCheck]) -> list[UpdateOutcome]:
        """Read the deals (batched by the adapter) and issue an invoice for each that is in its trigger stage. A
        deal in another stage (our own write's echo, another edit) asks nothing; issuing is idempotent, so a check
        seen twice issues once."""

        def check(crm: Crm, tenant: TenantConfig, mine: Sequence[DealCheck]) -> list[UpdateOutcome]:
            deals = crm.get_deals(sorted({c.deal_id for c in mine}))  # CrmUnavailable: all retried
            outcomes = []
            for item in mine:
                deal = deals.get(item.deal_id)
                if deal is not None and tenant.crm_actions and self.crm_actions is not None:
                    try:  # the tenant's CRM action triggers on the stage read (a refund, a new link): keyed, once
                        moved = DealMoved(deal_id=deal.deal_id, stage=deal.stage)
                        self.crm_actions().handle(tenant, crm, [moved], skip=set(), deal=deal)
                    except (CrmUnavailable, ProviderUnavailable) as exc:
                        outcomes.append(UpdateOutcome.retry(f"deal {deal.deal_id}: {exc}"))
                        continue
                if deal is None or deal.stage != item.when_stage:
                    where = "gone" if deal is None else f"in stage {deal.stage}"
                    logger.info("deal %s is %s, not %s: nothing to issue", item.deal_id, where, item.when_stage)
                    outcomes.append(UpdateOutcome.done())
                    continue
                try:
                    self.issuing.issue_for_deal(tenant, crm.get_deal(deal.deal_id))  # whole, with the customer
                except (DealNotInvoiceable, InvoiceConflict, ReceiptError, LifetimeOutOfRange, CrmRejected) as exc:
                    outcomes.append(UpdateOutcome.park(f"deal {deal.deal_id}: {exc}"))
                except CrmUnavailable as exc:
                    outcomes.append(UpdateOutcome.retry(f"deal {deal.deal_id}: {exc}"))
                else:
                    outcomes.append(UpdateOutcome.done())
            return outcomes

        return self._per_tenant(checks, check)

    def _per_tenant(
        self, messages: Sequence[_M], run: Callable[[Crm, TenantConfig, Sequence[_M]], list[UpdateOutcome]]
    ) -> list[UpdateOutcome]:
        outcomes: list[UpdateOutcome | None] = [None] * len(messages)
        by_tenant: dict[str, list[int]] = {}
        for index, message in enumerate(messages):
            by_tenant.setdefault(message.tenant_id, []).append(index)
        for tenant_id, indexes in by_tenant.items():
            try:
                tenant = self.tenants.get(tenant_id)
                results = run(self.crms(tenant), tenant, [messages[i] for i in indexes])
            except TenantNotFound:
                results = [UpdateOutcome.park(f"tenant {tenant_id} is not configured")] * len(indexes)
            except (CrmUnavailable, CrmRejected) as exc:  # the adapter could not start (a secret) or read at all
                results = [UpdateOutcome.retry(str(exc))] * len(indexes)
            for index, result in zip(indexes, results, strict=True):
                outcomes[index] = result
        return [o if o is not None else UpdateOutcome.retry("no outcome") for o in outcomes]
