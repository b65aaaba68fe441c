"""The composition root: builds each application service from configuration, once per execution environment, with
only the collaborators it uses. Adapters are chosen by tenant configuration. Each handler asks for the one service
it calls; what a service does not need is never built (nor imported)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from paybridge.adapters.crm.base import Crm, Throttle
from paybridge.adapters.crm.oauth import OAuthSession, TokenPair
from paybridge.adapters.lifecycle import StepFunctionsLifecycle
from paybridge.adapters.outbox import SqsCrmOutbox
from paybridge.adapters.psp.base import PaymentProvider
from paybridge.adapters.registry import BANK_SOURCES, CRMS, PSPS, SENDERS, AdapterContext
from paybridge.adapters.settings import OAuthAppAuth
from paybridge.app.changes import InvoiceChanges
from paybridge.app.metrics import InvoiceMetrics
from paybridge.secrets import resolve_secret
from paybridge.settings import get_settings
from paybridge.storage.dynamodb import DynamoInvoiceRepository
from paybridge.storage.repository import InvoiceRepository
from paybridge.storage.tenants import DynamoTenantDirectory
from paybridge.tenants import TenantConfig, TenantDirectory, load_file_directory

if TYPE_CHECKING:
    from paybridge.adapters.bank.base import BankSource
    from paybridge.adapters.notify import MessageSender
    from paybridge.app.bank_review import BankReview
    from paybridge.app.banking import Banking
    from paybridge.app.crm_actions import CrmActions
    from paybridge.app.deadlines import Deadlines
    from paybridge.app.deal_delivery import DealDelivery
    from paybridge.app.deal_publishing import DealPublisher
    from paybridge.app.deal_resync import DealResync
    from paybridge.app.drift import DriftCheck
    from paybridge.app.invoices import Invoices
    from paybridge.app.issuing import Issuing
    from paybridge.app.levers import LeverRunner
    from paybridge.app.lifecycle_tasks import LifecycleTasks
    from paybridge.app.manual_payments import ManualPayments
    from paybridge.app.payment_checks import PaymentChecks
    from paybridge.app.payment_events import PaymentEvents
    from paybridge.app.publishing import DomainEvents
    from paybridge.app.rechecks import RecheckSweep
    from paybridge.app.refunds import Refunds
    from paybridge.app.reissues import Reissues
    from paybridge.app.reminders import Reminders
    from paybridge.app.reports import Reports
    from paybridge.app.retention import Retention
    from paybridge.app.settlements import Settlements
    from paybridge.app.subscriptions import Subscriptions
    from paybridge.app.webhooks import Webhooks
    from paybridge.storage.crm_state import DynamoEchoLedger
    from paybridge.storage.customer_profiles import DynamoProfileLedger


def make_provider(tenant: TenantConfig) -> PaymentProvider:
    """The tenant's PSP adapter, built by its registry entry (each provider's module registered itself), cached per
    tenant while its configuration is unchanged, as `make_crm`: building one makes an HTTP client, whose TLS context
    (the CA bundle loaded and parsed) cost 10-50 ms of CPU on every notification and every payment created."""
    cached = _providers.get(tenant.tenant_id)
    if cached is not None and cached[0] == tenant:
        return cached[1]
    provider = PSPS.build(tenant.psp, _context(tenant))
    _providers[tenant.tenant_id] = (tenant, provider)
    return provider


_providers: dict[str, tuple[TenantConfig, PaymentProvider]] = {}


def make_crm(tenant: TenantConfig) -> Crm:
    """The tenant's CRM adapter (cached per tenant while its configuration is unchanged: one HTTP client, one OAuth
    session per execution environment). Every request goes through the shared rate limiter."""
    cached = _crms.get(tenant.tenant_id)
    if cached is not None and cached[0] == tenant:
        return cached[1]
    crm = CRMS.build(tenant.crm, _context(tenant, throttle=get_throttle(), oauth_session=_oauth_session))
    _crms[tenant.tenant_id] = (tenant, crm)
    return crm


_crms: dict[str, tuple[TenantConfig, Crm]] = {}


def make_bank_source(tenant: TenantConfig) -> BankSource:
    bank = tenant.bank
    if bank is None or bank.source is None:
        raise ValueError(f"tenant {tenant.tenant_id} has no statement source")  # guarded by Banking.poll
    return BANK_SOURCES.build(bank.source, _context(tenant))


def make_sender(tenant: TenantConfig, channel: str) -> MessageSender:
    settings = tenant.reminders.channels.get(channel) if tenant.reminders else None  # type: ignore[call-overload]
    if settings is None:  # pragma: no cover - guarded: reminders go only to the tenant's channels
        raise ValueError(f"tenant {tenant.tenant_id} has no sender for {channel}")
    return SENDERS.build(settings, _context(tenant, channel=channel))


def _context(tenant: TenantConfig, **extra: Any) -> AdapterContext:
    return AdapterContext(tenant_id=tenant.tenant_id, secret=resolve_secret, **extra)


def _oauth_session(key: str, refresh: Callable[[str], TokenPair], auth: OAuthAppAuth) -> OAuthSession:
    from paybridge.storage.crm_state import DynamoTokenStore

    initial = None
    if auth.initial_refresh_token is not None:
        initial = TokenPair(access_token="", refresh_token=resolve_secret(auth.initial_refresh_token), expires_at=0)
    return OAuthSession(DynamoTokenStore(get_settings().table_name), key, refresh, initial)


@lru_cache(maxsize=1)
def get_throttle() -> Throttle:
    """Every CRM request of every function takes a token from the account's bucket in the table."""
    from paybridge.storage.crm_state import DynamoRateLimiter

    return DynamoRateLimiter(get_settings().table_name)


@lru_cache(maxsize=1)
def get_echo_ledger() -> DynamoEchoLedger:
    """Our CRM writes remembered until their change events come back (no deal read for an echo)."""
    from paybridge.storage.crm_state import DynamoEchoLedger

    return DynamoEchoLedger(get_settings().table_name)


@lru_cache(maxsize=1)
def get_outbox() -> SqsCrmOutbox:
    settings = get_settings()
    return SqsCrmOutbox(settings.crm_outbox_url, settings.crm_outbox_dlq_url)


def make_tenant_directory() -> TenantDirectory:
    settings = get_settings()
    if settings.tenants_source == "file":
        return load_file_directory(settings.tenants_file)
    return DynamoTenantDirectory(settings.table_name)


# -- shared collaborators ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def get_tenants() -> TenantDirectory:
    return make_tenant_directory()


@lru_cache(maxsize=1)
def get_repo() -> InvoiceRepository:
    settings = get_settings()
    return DynamoInvoiceRepository(settings.table_name, event_retention_days=settings.event_retention_days)


@lru_cache(maxsize=1)
def get_lifecycle() -> StepFunctionsLifecycle:
    return StepFunctionsLifecycle(get_settings().state_machine_arn)


@lru_cache(maxsize=1)
def get_deal_publisher() -> DealPublisher:
    from paybridge.app.deal_publishing import DealPublisher

    return DealPublisher(get_tenants(), get_repo(), get_outbox())


@lru_cache(maxsize=1)
def get_changes() -> InvoiceChanges:
    return InvoiceChanges(get_repo(), get_deal_publisher(), metrics=get_invoice_metrics(), events=get_domain_events())


@lru_cache(maxsize=1)
def get_invoice_metrics() -> InvoiceMetrics:
    from paybridge.observability import EmfInvoiceMetrics

    return EmfInvoiceMetrics()


# -- application services, one per job -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def get_issuing() -> Issuing:
    from paybridge.app.issuing import Issuing

    return Issuing(
        get_tenants(),
        get_repo(),
        get_lifecycle(),
        make_provider,
        make_crm,
        get_outbox(),
        echoes=get_echo_ledger(),
        metrics=get_invoice_metrics(),
        events=get_domain_events(),
        crm_actions=get_crm_actions,
        profiles=get_profile_ledger(),
    )


@lru_cache(maxsize=1)
def get_profile_ledger() -> DynamoProfileLedger:
    """Payments on the customer's profile (README): the ledger on the single table."""
    from paybridge.storage.customer_profiles import DynamoProfileLedger

    return DynamoProfileLedger(get_settings().table_name)


@lru_cache(maxsize=1)
def get_invoices() -> Invoices:
    from paybridge.app.invoices import Invoices

    return Invoices(get_tenants(), get_repo(), get_changes(), make_provider)


@lru_cache(maxsize=1)
def get_payment_events() -> PaymentEvents:
    from paybridge.app.payment_events import PaymentEvents

    return PaymentEvents(get_tenants(), get_repo(), get_changes(), make_provider, get_subscriptions())


@lru_cache(maxsize=1)
def get_refunds() -> Refunds:
    from paybridge.app.refunds import Refunds

    return Refunds(get_tenants(), get_changes(), make_provider)


@lru_cache(maxsize=1)
def get_lifecycle_tasks() -> LifecycleTasks:
    from paybridge.app.lifecycle_tasks import LifecycleTasks

    return LifecycleTasks(
        tenants=get_tenants(),
        changes=get_changes(),
        providers=make_provider,
        deals=get_deal_publisher(),
        published=(get_reminders(), get_recheck_sweep()),
        checks=get_payment_checks(),
        public_base_url=get_settings().public_base_url,
    )


@lru_cache(maxsize=1)
def get_deadlines() -> Deadlines:
    from paybridge.app.deadlines import Deadlines

    return Deadlines(get_repo(), get_lifecycle())


@lru_cache(maxsize=1)
def get_recheck_sweep() -> RecheckSweep:
    from paybridge.app.rechecks import RecheckSweep
    from paybridge.storage.rechecks import DynamoRecheckStore

    store = DynamoRecheckStore(get_settings().table_name)
    return RecheckSweep(get_tenants(), get_repo(), store, get_payment_checks(), get_throttle())


@lru_cache(maxsize=1)
def get_drift_check() -> DriftCheck:
    from paybridge.app.drift import DriftCheck
    from paybridge.storage.drift import DynamoDriftStore

    store = DynamoDriftStore(get_settings().table_name)
    return DriftCheck(
        get_tenants(),
        get_repo(),
        make_crm,
        get_payment_checks(),
        get_lifecycle_tasks(),
        store,
        get_throttle(),
        events=get_domain_events(),
    )


@lru_cache(maxsize=1)
def get_payment_checks() -> PaymentChecks:
    from paybridge.app.payment_checks import PaymentChecks

    return PaymentChecks(get_tenants(), get_changes(), make_provider)


@lru_cache(maxsize=1)
def get_deal_delivery() -> DealDelivery:
    from paybridge.app.deal_delivery import DealDelivery

    return DealDelivery(
        get_tenants(),
        make_crm,
        get_issuing(),
        echoes=get_echo_ledger(),
        crm_actions=get_crm_actions,
        profiles=get_profile_ledger(),
    )


@lru_cache(maxsize=1)
def get_banking() -> Banking:
    from paybridge.app.banking import Banking
    from paybridge.storage.bank import DynamoBankStore

    store = DynamoBankStore(get_settings().table_name)
    return Banking(
        get_tenants(),
        get_repo(),
        get_payment_events(),
        get_outbox(),
        store,
        make_bank_source,
        settlements=get_settlements(),
        events=get_domain_events(),
    )


@lru_cache(maxsize=1)
def get_settlements() -> Settlements:
    from paybridge.app.settlements import Settlements
    from paybridge.storage.settlements import DynamoSettlementStore

    store = DynamoSettlementStore(get_settings().table_name)
    return Settlements(get_tenants(), get_repo(), store, get_outbox(), make_provider)


@lru_cache(maxsize=1)
def get_reminders() -> Reminders:
    from paybridge.app.reminders import Reminders
    from paybridge.storage.reminders import DynamoReminderStore

    store = DynamoReminderStore(get_settings().table_name)
    return Reminders(store, get_tenants(), get_repo(), make_sender)


@lru_cache(maxsize=1)
def get_subscriptions() -> Subscriptions:
    from paybridge.app.subscriptions import Subscriptions
    from paybridge.storage.subscriptions import DynamoSubscriptionStore

    store = DynamoSubscriptionStore(get_settings().table_name)
    return Subscriptions(
        get_tenants(), get_repo(), get_issuing(), get_outbox(), store, make_sender, events=get_domain_events()
    )


# -- a person's levers (OpsApiFunction) ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def get_lever_runner() -> LeverRunner:
    from paybridge.app.levers import LeverRunner
    from paybridge.storage.lever_keys import DynamoLeverKeys

    return LeverRunner(DynamoLeverKeys(get_settings().table_name))


@lru_cache(maxsize=1)
def get_manual_payments() -> ManualPayments:
    from paybridge.app.manual_payments import ManualPayments

    return ManualPayments(get_tenants(), get_changes(), get_payment_checks(), make_provider, get_lever_runner())


@lru_cache(maxsize=1)
def get_reissues() -> Reissues:
    from paybridge.app.reissues import Reissues

    return Reissues(
        get_tenants(), get_changes(), get_payment_checks(), make_provider, get_lifecycle(), get_lever_runner()
    )


@lru_cache(maxsize=1)
def get_deal_resync() -> DealResync:
    from paybridge.app.deal_resync import DealResync

    return DealResync(get_tenants(), get_repo(), get_changes(), get_lifecycle_tasks(), get_lever_runner())


@lru_cache(maxsize=1)
def get_bank_review() -> BankReview:
    from paybridge.app.bank_review import BankReview
    from paybridge.storage.bank import DynamoBankStore

    store = DynamoBankStore(get_settings().table_name)
    return BankReview(
        get_tenants(), get_repo(), get_changes(), get_payment_events(), get_outbox(), store, get_lever_runner()
    )


@lru_cache(maxsize=1)
def get_reports() -> Reports:
    from paybridge.app.reports import Reports
    from paybridge.storage.bank import DynamoBankStore
    from paybridge.storage.invoice_queries import InvoiceQueries

    table = get_settings().table_name
    return Reports(get_tenants(), InvoiceQueries(table), DynamoBankStore(table))


# -- domain events, webhooks, retention ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def get_domain_events() -> DomainEvents | None:
    """The domain events' publisher (EventBridge through the outbox); None where no bus is configured."""
    settings = get_settings()
    if not settings.event_bus_name:
        return None
    from paybridge.adapters.eventbridge import EventBridgeBus
    from paybridge.app.publishing import DomainEvents
    from paybridge.storage.event_outbox import DynamoEventOutbox

    return DomainEvents(EventBridgeBus(settings.event_bus_name), DynamoEventOutbox(settings.table_name))


@lru_cache(maxsize=1)
def get_webhooks() -> Webhooks:
    from paybridge.adapters.webhook_delivery import HttpxPoster, SqsDeliveryQueue
    from paybridge.app.webhooks import Webhooks
    from paybridge.storage.webhooks import DynamoWebhookStore

    settings = get_settings()
    return Webhooks(
        get_tenants(),
        DynamoWebhookStore(settings.table_name),
        SqsDeliveryQueue(settings.webhook_delivery_url),
        HttpxPoster(),
        get_outbox(),
        allow_local_urls=settings.stage == "local",
    )


@lru_cache(maxsize=1)
def get_crm_actions() -> CrmActions:
    from paybridge.app.crm_actions import CrmActions

    return CrmActions(get_repo(), get_refunds(), get_reissues(), get_outbox(), get_subscriptions())


@lru_cache(maxsize=1)
def get_retention() -> Retention:
    from paybridge.app.retention import Retention
    from paybridge.storage.bank import DynamoBankStore
    from paybridge.storage.retention import DynamoRetentionIndex
    from paybridge.storage.subscriptions import DynamoSubscriptionStore

    table = get_settings().table_name
    return Retention(
        get_tenants(),
        DynamoRetentionIndex(table),
        get_changes(),
        get_lever_runner(),
        subscriptions=DynamoSubscriptionStore(table),
        bank=DynamoBankStore(table),
    )


_CACHED = (
    get_settings,
    get_throttle,
    get_outbox,
    get_echo_ledger,
    get_tenants,
    get_repo,
    get_lifecycle,
    get_deal_publisher,
    get_changes,
    get_deadlines,
    get_issuing,
    get_invoices,
    get_payment_events,
    get_refunds,
    get_lifecycle_tasks,
    get_payment_checks,
    get_recheck_sweep,
    get_drift_check,
    get_deal_delivery,
    get_banking,
    get_settlements,
    get_reminders,
    get_subscriptions,
    get_lever_runner,
    get_reports,
    get_manual_payments,
    get_reissues,
    get_deal_resync,
    get_bank_review,
    get_domain_events,
    get_webhooks,
    get_retention,
    get_crm_actions,
)


def reset() -> None:
    """Forget cached settings and services (tests, the local stack after a config change)."""
    from paybridge.tenants import load_file_directory as _loader

    for cached in _CACHED:
        cached.cache_clear()
    _crms.clear()
    _providers.clear()
    _loader.cache_clear()
