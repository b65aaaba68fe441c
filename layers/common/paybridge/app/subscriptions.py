"""Recurring payments, driven by the same invoice lifecycle.

- `subscribe`: the subscription and its first invoice (`<plan>/1`), paid by the customer through a normal link that
  asks the PSP to save the payment method; the paid notification's saved method activates the subscription.
- `run_due` (the schedule): for each subscription with something due — a notice `notice_hours` before a charge (once
  per period), a charge (a new invoice `<plan>/<period>` or `<plan>/<period>.<attempt>` carrying the saved method:
  the lifecycle charges it instead of publishing a link), and the charge's outcome (paid → next period; failed →
  the dunning schedule; after the last retry → blocked, and the CRM is told to block access).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from paybridge.adapters.outbox import CrmOutbox
from paybridge.app.changes import Actor, utc_now
from paybridge.app.issuing import IssueResult, Issuing
from paybridge.domain.deal_sync import DealOp, DealUpdate
from paybridge.domain.errors import SubscriptionNotFound
from paybridge.domain.invoice import Customer, InvoiceState, NewInvoice, invoice_id_for
from paybridge.domain.money import format_money
from paybridge.domain.subscriptions import (
    Period,
    Subscription,
    cancel,
    charge_failed,
    charged,
    first_paid,
    pause,
    resume,
    subscription_id_for,
)
from paybridge.storage.errors import SubscriptionConflict
from paybridge.storage.repository import InvoiceRepository
from paybridge.storage.subscriptions import DynamoSubscriptionStore
from paybridge.tenants import TenantConfig, TenantDirectory

if TYPE_CHECKING:
    from paybridge.adapters.notify import MessageSender
    from paybridge.app.publishing import DomainEvents
    from paybridge.domain.domain_events import DomainEvent

logger = logging.getLogger(__name__)
SubscriptionLever = Literal["cancel", "pause", "resume"]
CHECK_AGAIN = timedelta(minutes=1)


@dataclass
class Subscriptions:
    tenants: TenantDirectory
    repo: InvoiceRepository
    issuing: Issuing
    outbox: CrmOutbox
    store: DynamoSubscriptionStore
    senders: Callable[[TenantConfig, str], MessageSender]
    clock: Callable[[], datetime] = utc_now
    #: `subscription.charged` / `subscription.blocked`, written in the subscription's own transaction (the
    #: transactional outbox), then published.
    events: DomainEvents | None = None

    # -- start -----------------------------------------------------------------------------------------------------

    def subscribe(
        self,
        tenant_id: str,
        deal_id: str,
        plan: str,
        amount: int,
        period: Period,
        customer: Customer,
        currency: str | None = None,
        description: str = "",
    ) -> tuple[Subscription, IssueResult, bool]:
        tenant = self.tenants.get(tenant_id)
        now = self.clock()
        sub = Subscription(
            subscription_id=subscription_id_for(tenant_id, deal_id, plan),
            tenant_id=tenant_id,
            deal_id=deal_id,
            plan=plan,
            amount=amount,
            currency=currency or tenant.currency,
            period=period,
            customer=customer,
            description=description,
            started_at=now,
        )
        # The first invoice is checked before the subscription is written: a refused one writes nothing, so a
        # subscription never exists without its first invoice (a retry completes what a crash interrupted)
        self.issuing.prepare(tenant_id, self._request(sub, sub.invoice_number(1), method=None), lifetime_given=False)
        stored, created = self.store.create(sub)
        first = self._issue(tenant, stored, stored.invoice_number(1), method=None)
        return stored, first, created

    def _issue(self, tenant: TenantConfig, sub: Subscription, number: str, method: str | None) -> IssueResult:
        return self.issuing.issue_invoice(tenant.tenant_id, self._request(sub, number, method), lifetime_given=False)

    @staticmethod
    def _request(sub: Subscription, number: str, method: str | None) -> NewInvoice:
        return NewInvoice(
            deal_id=sub.deal_id,
            number=number,
            amount=sub.amount,
            currency=sub.currency,
            description=(sub.description or f"Подписка {sub.plan}")[:250],
            customer=sub.customer,
            subscription_id=sub.subscription_id,
            charge_method=method,
        )

    def get(self, tenant_id: str, subscription_id: str) -> Subscription:
        sub = self.store.get(tenant_id, subscription_id)
        if sub is None:
            raise SubscriptionNotFound(subscription_id)
        return sub

    def method_saved(self, tenant: TenantConfig, invoice_number: str, subscription_id: str, method: str) -> None:
        """The first invoice was paid and the PSP saved the method: charges start next period."""
        sub = self.store.get(tenant.tenant_id, subscription_id)
        if sub is None or sub.state != "awaiting_first_payment" or invoice_number != sub.invoice_number(1):
            return
        active = first_paid(sub, method)
        self._save(tenant, sub, active)

    def _due_at(self, tenant: TenantConfig, sub: Subscription) -> datetime | None:
        if sub.state in ("blocked", "cancelled", "awaiting_first_payment", "paused") or sub.next_charge_at is None:
            return None
        if sub.state == "active" and sub.noticed_period < sub.period_index:
            notice = sub.next_charge_at - timedelta(hours=tenant.subscriptions.notice_hours)
            return min(notice, sub.next_charge_at)
        return sub.next_charge_at

    def _save(
        self,
        tenant: TenantConfig,
        old: Subscription,
        new: Subscription,
        due: datetime | None = None,
        announce: DomainEvent | None = None,
    ) -> None:
        batch = self.events.batch(announce.id, [announce]) if announce is not None and self.events else None
        self.store.save(new, old.version, due if due is not None else self._due_at(tenant, new), outbox=batch)
        if batch is not None and self.events is not None:
            self.events.deliver(batch)

    # -- a person's (or the CRM's) levers ------------------------------------------------------------------------------

    def change(
        self, tenant_id: str, subscription_id: str, lever: SubscriptionLever, actor: Actor
    ) -> tuple[Subscription, bool]:
        """Cancel, pause or resume (idempotent: the subscription already so changes nothing); the deal is told, with
        who and why. Answers the subscription and whether it changed."""
        tenant = self.tenants.get(tenant_id)
        for _ in range(5):
            sub = self.get(tenant_id, subscription_id)
            if lever == "cancel":
                new = cancel(sub, self.clock())
            elif lever == "pause":
                new = pause(sub)  # InvalidTransition: 409
            else:
                new = resume(sub, self.clock())
            if new is sub:
                return sub, False
            try:
                self._save(tenant, sub, new)
            except SubscriptionConflict:
                continue  # the schedule moved it meanwhile: decide again on what it is now
            logger.info("subscription %s: %s by %s (%s)", subscription_id, lever, actor.who, actor.why)
            self._tell_deal(tenant, new, lever, actor)
            return new, True
        raise SubscriptionConflict(subscription_id)

    def _tell_deal(self, tenant: TenantConfig, sub: Subscription, lever: SubscriptionLever, actor: Actor) -> None:
        done = {"cancel": "отменена", "pause": "приостановлена", "resume": "возобновлена"}[lever]
        why = f": {actor.why}" if actor.why else ""
        text = f"PayBridge: подписка «{sub.plan}» {done} ({actor.who}{why})."
        self.outbox.publish(
            DealUpdate(
                tenant_id=sub.tenant_id,
                deal_id=sub.deal_id,
                invoice_id=invoice_id_for(sub.tenant_id, sub.deal_id, sub.invoice_number(1)),
                version=sub.version,
                event=f"subscription_{lever}:{sub.subscription_id}",
                ops=(DealOp(kind="comment", text=text),),
            )
        )

    # -- the schedule ------------------------------------------------------------------------------------------------

    def run_due(self) -> list[str]:
        """What happened, one line per subscription touched."""
        now = self.clock()
        done = []
        for sub in self.store.due(now):
            try:
                outcome = self._step(sub, now)
            except SubscriptionConflict:
                continue  # an overlapping run moved it
            if outcome:
                done.append(f"{sub.subscription_id}: {outcome}")
        return done

    def _attempt_number(self, sub: Subscription) -> str:
        base = sub.invoice_number()
        return base if sub.failed_attempts == 0 else f"{base}.{sub.failed_attempts}"

    def _step(self, sub: Subscription, now: datetime) -> str | None:
        tenant = self.tenants.get(sub.tenant_id)
        if sub.next_charge_at is None or sub.method is None:
            return None
        attempt_id = invoice_id_for(sub.tenant_id, sub.deal_id, self._attempt_number(sub))
        attempt = self.repo.get(sub.tenant_id, attempt_id)
        if attempt is not None:  # a charge is under way: its outcome decides
            if attempt.state is InvoiceState.PAID:
                event = self._event("subscription.charged", sub, now, invoice_id=attempt.invoice_id)
                self._save(tenant, sub, charged(sub), announce=event)
                return f"period {sub.period_index} paid"
            if attempt.state is InvoiceState.FAILED:
                after = charge_failed(sub, now, tenant.subscriptions.dunning_hours)
                blocked = after.state == "blocked"
                event = self._event("subscription.blocked", after, now, attempt.invoice_id) if blocked else None
                self._save(tenant, sub, after, announce=event)
                if blocked:
                    self._block(tenant, after)
                    return "blocked after the last retry"
                return f"charge failed, retry at {after.next_charge_at:%Y-%m-%d %H:%M}"
            self._save(tenant, sub, sub, now + CHECK_AGAIN)
            return None
        if now < sub.next_charge_at:
            if sub.noticed_period < sub.period_index:
                self._notice(tenant, sub)
                noticed = sub.model_copy(update={"noticed_period": sub.period_index, "version": sub.version + 1})
                self._save(tenant, sub, noticed)
                return f"notice for period {sub.period_index}"
            return None
        # Charge: the attempt's invoice carries the saved method; its lifecycle charges it
        self._save(tenant, sub, sub.model_copy(update={"version": sub.version + 1}), now + CHECK_AGAIN)
        self._issue(tenant, sub, self._attempt_number(sub), method=sub.method)
        return f"charging period {sub.period_index} (attempt {sub.failed_attempts + 1})"

    def _event(
        self,
        kind: Literal["subscription.charged", "subscription.blocked"],
        sub: Subscription,
        now: datetime,
        invoice_id: str,
    ) -> DomainEvent | None:
        if self.events is None:
            return None
        from paybridge.domain.domain_events import subscription_event

        return subscription_event(
            kind,
            sub.tenant_id,
            sub.subscription_id,
            sub.period_index,
            now,
            deal_id=sub.deal_id,
            plan=sub.plan,
            amount=sub.amount,
            currency=sub.currency,
            state=sub.state,
            failed_attempts=sub.failed_attempts,
            invoice_id=invoice_id,
        )

    def _notice(self, tenant: TenantConfig, sub: Subscription) -> None:
        if tenant.reminders is None or sub.next_charge_at is None:
            return
        when = sub.next_charge_at.strftime("%d.%m.%Y")
        text = (
            f"{when} по подписке «{sub.plan}» будет списано {format_money(sub.amount, sub.currency)} "
            "с сохранённой карты."
        )
        for channel in tenant.reminders.channels:
            to = sub.customer.email if channel == "email" else sub.customer.phone
            if to:
                try:
                    self.senders(tenant, channel).send(to, f"Списание по подписке {sub.plan}", text, sub.deal_id)
                except Exception:  # a notice is a courtesy: its failure must not stop the charge
                    logger.warning("subscription notice for %s by %s failed", sub.subscription_id, channel)

    def _block(self, tenant: TenantConfig, sub: Subscription) -> None:
        text = (
            f"PayBridge: подписка «{sub.plan}» заблокирована — списание {format_money(sub.amount, sub.currency)} "
            f"не прошло после {sub.failed_attempts} попыток. Закройте доступ клиенту или свяжитесь с ним."
        )
        stage = tenant.stages.subscription_blocked or tenant.stages.failed
        self.outbox.publish(
            DealUpdate(
                tenant_id=sub.tenant_id,
                deal_id=sub.deal_id,
                invoice_id=invoice_id_for(sub.tenant_id, sub.deal_id, sub.invoice_number(1)),
                version=sub.version,
                event=f"subscription_blocked:{sub.subscription_id}",
                ops=(
                    DealOp(kind="set_stage", stage=stage),
                    DealOp(kind="comment", text=text),
                    DealOp(kind="notify_manager", text=text),
                ),
            )
        )

    def mrr(self) -> dict[str, float]:
        """Monthly recurring revenue of active subscriptions, per currency, in minor units."""
        totals: dict[str, float] = {}
        for sub in self.store.due(None):
            if sub.state in ("active", "past_due"):
                totals[sub.currency] = totals.get(sub.currency, 0.0) + sub.monthly_amount
        return totals
