"""Levers pulled from the CRM, where managers work: a deal entering a stage (Bitrix24 STAGE_ID, amoCRM status) or a
robot running on it (Bitrix24) refunds the deal's invoice or reissues its expired link, as the tenant's
`crm_actions` triggers say.

- refund: the deal's newest invoice with money left to refund — all of it, or the amount in the deal's
  `amount_field` (or the robot's `amount` property), in the CRM's money format (`1500.50`, `1500,50`, `1500.50|RUB`).
  Keyed by the trigger and the invoice (a robot: also by its run's `event_token`), so an event the CRM sends again,
  or a later update of a deal still in the stage, refunds nothing more; a robot run is one refund each. The refund
  then goes as any other (`Refunds`): reserved on the invoice, asked of the provider, the deal's stage and timeline
  follow.
- reissue: the deal's newest expired, cancelled or failed invoice without money gets a new link (`Reissues`, the
  same lever a person pulls, audited as `crm:<crm>`), once per attempt.
- subscription_cancel / _pause / _resume: the deal's subscriptions (`Subscriptions.change`, idempotent: a
  subscription already so is left as it is).

What cannot be done (nothing paid, a bad amount, money found on the old payment) is told to the deal's manager
(a timeline comment and a notice, through the CRM outbox) and answered in the webhook's `actions`, never a 4xx the
CRM would retry. A provider that is down is a 503: the CRM's retry completes the same keyed request."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from paybridge.adapters.crm.base import Crm, Deal, DealMoved
from paybridge.adapters.outbox import CrmOutbox
from paybridge.app.changes import Actor
from paybridge.app.errors import LeverInvalid
from paybridge.app.levers import LeverRequest
from paybridge.app.refunds import Refunds
from paybridge.app.reissues import Reissues
from paybridge.app.subscriptions import SubscriptionLever, Subscriptions
from paybridge.domain.deal_sync import DealOp, DealUpdate
from paybridge.domain.errors import InvalidTransition, InvoiceConflict, ReceiptError
from paybridge.domain.invoice import REISSUABLE, Invoice
from paybridge.storage.errors import IdempotencyKeyReused
from paybridge.storage.repository import InvoiceRepository
from paybridge.tenants import CrmActionTrigger, TenantConfig

logger = logging.getLogger(__name__)

_AMOUNT = re.compile(r"\d{1,12}(\.\d{1,2})?")
REFUSED = (InvalidTransition, InvoiceConflict, ReceiptError, LeverInvalid, IdempotencyKeyReused)


class AmountInvalid(ValueError):
    """The deal field (or robot property) does not hold an amount."""


def parse_amount(text: str) -> int | None:
    """Minor units of a CRM money value (`1500.50`, `1 500,50`, `1500.50|RUB`); None when empty."""
    value = text.split("|", 1)[0].replace("\u00a0", "").replace(" ", "").replace(",", ".").strip()
    if not value:
        return None
    if not _AMOUNT.fullmatch(value):
        raise AmountInvalid(f"{text!r} is not an amount (e.g. 1500.50)")
    minor = int(Decimal(value) * 100)
    if minor <= 0:
        raise AmountInvalid(f"{text!r} is not a positive amount")
    return minor


def _key(*parts: str | None) -> str:
    return "crm-" + hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()[:24]


@dataclass
class CrmActions:
    repo: InvoiceRepository
    refunds: Refunds
    reissues: Reissues
    outbox: CrmOutbox
    subscriptions: Subscriptions

    def handle(
        self, tenant: TenantConfig, crm: Crm, moves: Sequence[DealMoved], skip: set[str], deal: Deal | None = None
    ) -> list[str]:
        """Run the tenant's triggers that these moves match; one line per action taken or refused. A move whose stage
        the call did not name (Bitrix24's ONCRMDEALUPDATE) is matched when its deal is read, batched, by the CRM
        outbox's check (`DealDelivery.check_deals`, with `deal`)."""
        triggers = tenant.crm_actions
        if not triggers:
            return []
        by_stage = [t for t in triggers if t.stage is not None]
        outcomes: list[str] = []
        for move in moves:
            if move.deal_id in skip:  # the echo of our own write: the deal did not move
                continue
            if move.robot is not None:
                matched = [t for t in triggers if t.robot == move.robot]
                where = f"robot {move.robot}"
            else:
                if move.stage is None:  # Bitrix24 ONCRMDEALUPDATE: the deal is read in the outbox's batched check
                    continue
                matched = [t for t in by_stage if t.stage == move.stage]
                where = f"stage {move.stage}"
            for trigger in matched:
                outcomes.append(self._run(tenant, crm, trigger, move, deal, where))
        return outcomes

    def _run(
        self, tenant: TenantConfig, crm: Crm, trigger: CrmActionTrigger, move: DealMoved, deal: Deal | None, where: str
    ) -> str:
        invoices = sorted(self.repo.list_by_deal(tenant.tenant_id, move.deal_id), key=lambda i: i.created_at)
        try:
            if trigger.action == "refund":
                return self._refund(tenant, crm, trigger, move, deal, where, invoices)
            if trigger.action == "reissue":
                return self._reissue(tenant, crm, trigger, move, where, invoices)
            return self._subscriptions(tenant, crm, trigger, move, where, invoices)
        except (*REFUSED, AmountInvalid) as exc:
            target = invoices[-1] if invoices else None
            self._tell_manager(tenant, move.deal_id, target, trigger, where, str(exc))
            logger.info("crm action %s on deal %s refused: %s", trigger.action, move.deal_id, exc)
            return f"deal {move.deal_id}: {trigger.action} refused: {exc}"

    def _refund(
        self,
        tenant: TenantConfig,
        crm: Crm,
        trigger: CrmActionTrigger,
        move: DealMoved,
        deal: Deal | None,
        where: str,
        invoices: list[Invoice],
    ) -> str:
        keys = {i.invoice_id: _key("refund", trigger.stage, trigger.robot, i.invoice_id, move.run_id) for i in invoices}
        asked = [i for i in invoices if keys[i.invoice_id] in i.refund_requests]
        candidates = asked or [i for i in invoices if i.refundable > 0]
        if not candidates:
            raise InvalidTransition("the deal has no paid invoice with money left to refund")
        invoice = candidates[-1]
        text = move.properties.get("amount", "")
        if not text and trigger.amount_field is not None:
            deal = deal or crm.get_deal(move.deal_id)
            text = deal.fields.get(trigger.amount_field, "")
        amount = parse_amount(text)
        key = keys[invoice.invoice_id]
        view = self.refunds.refund_invoice(
            tenant.tenant_id, invoice.invoice_id, key, amount, reason=f"CRM {crm.name}: {where} (deal {move.deal_id})"
        )
        logger.info("crm refund %s of %s: %s", key, invoice.invoice_id, view.request.status)
        return f"deal {move.deal_id}: refund of {invoice.describe_amount(view.request.amount)} {view.request.status}"

    def _reissue(
        self,
        tenant: TenantConfig,
        crm: Crm,
        trigger: CrmActionTrigger,
        move: DealMoved,
        where: str,
        invoices: list[Invoice],
    ) -> str:
        closed = [i for i in invoices if i.closed_as in REISSUABLE and i.paid == 0 and i.charge_method is None]
        if not closed:
            raise InvalidTransition("the deal has no expired, cancelled or failed invoice without money to reissue")
        invoice = closed[-1]
        key = _key("reissue", trigger.stage, trigger.robot, invoice.invoice_id, str(invoice.attempt), move.run_id)
        request = LeverRequest(
            tenant_id=tenant.tenant_id,
            key=key,
            lever="reissue",
            target=invoice.invoice_id,
            body={"crm": crm.name, "trigger": trigger.model_dump(), "attempt": invoice.attempt},
            actor=Actor(f"crm:{crm.name}", f"deal {move.deal_id}: {where}"),
        )
        result = self.reissues.reissue(request, invoice.invoice_id)
        return f"deal {move.deal_id}: {invoice.number} reissued ({result.outcome.detail})"

    def _subscriptions(
        self,
        tenant: TenantConfig,
        crm: Crm,
        trigger: CrmActionTrigger,
        move: DealMoved,
        where: str,
        invoices: list[Invoice],
    ) -> str:
        ids = list(dict.fromkeys(i.subscription_id for i in invoices if i.subscription_id))
        if not ids:
            raise InvalidTransition("the deal has no subscription")
        lever: SubscriptionLever = trigger.action.removeprefix("subscription_")  # type: ignore[assignment]
        done = []
        for subscription_id in ids:
            sub, changed = self.subscriptions.change(
                tenant.tenant_id, subscription_id, lever, Actor(f"crm:{crm.name}", f"deal {move.deal_id}: {where}")
            )
            done.append(f"{sub.plan} {sub.state}" + ("" if changed else " (already)"))
        return f"deal {move.deal_id}: subscription {lever}: {', '.join(done)}"

    def _tell_manager(
        self,
        tenant: TenantConfig,
        deal_id: str,
        invoice: Invoice | None,
        trigger: CrmActionTrigger,
        where: str,
        why: str,
    ) -> None:
        if invoice is None:
            return  # no invoice of ours on the deal: nothing to write it under (logged and answered)
        what = {"refund": "возврат", "reissue": "новая ссылка на оплату"}.get(trigger.action, "действие с подпиской")
        text = f"PayBridge: {what} по сделке не выполнен(а) ({where}): {why}"
        self.outbox.publish(
            DealUpdate(
                tenant_id=tenant.tenant_id,
                deal_id=deal_id,
                invoice_id=invoice.invoice_id,
                version=invoice.version,
                event=f"crm_action_refused:{_key(trigger.action, where, why)}",
                ops=(DealOp(kind="comment", text=text), DealOp(kind="notify_manager", text=text)),
            )
        )
