"""Builds the services from configuration, once per execution environment. Adapters are chosen by tenant config."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from paybridge.adapters.crm.base import Crm, Throttle
from paybridge.adapters.crm.oauth import OAuthSession, TokenPair
from paybridge.adapters.lifecycle import StepFunctionsLifecycle
from paybridge.adapters.outbox import SqsOutbox
from paybridge.adapters.psp.base import PaymentProvider
from paybridge.secrets import resolve_secret
from paybridge.services import Services
from paybridge.settings import get_settings
from paybridge.storage.dynamodb import DynamoInvoiceRepository, DynamoTenantDirectory
from paybridge.tenants import (
    AmoCrmSettings,
    Bitrix24Settings,
    Bitrix24WebhookAuth,
    LongLivedTokenAuth,
    OAuthAppAuth,
    SandboxCrmSettings,
    SandboxPspSettings,
    SandboxSenderSettings,
    SesSenderSettings,
    StripeSettings,
    TBankSettings,
    TenantConfig,
    TenantDirectory,
    YooKassaSettings,
    load_file_directory,
)

if TYPE_CHECKING:
    from paybridge.adapters.bank.base import BankSource
    from paybridge.adapters.notify import MessageSender
    from paybridge.banking import Banking
    from paybridge.reminders import Reminders
    from paybridge.subscriptions import Subscriptions


def make_provider(tenant: TenantConfig) -> PaymentProvider:
    """The tenant's PSP adapter; each provider's module is imported only by the tenants that use it."""
    psp = tenant.psp
    match psp:
        case SandboxPspSettings():
            from paybridge.adapters.psp.sandbox import SandboxPsp

            return SandboxPsp(psp.base_url, resolve_secret(psp.secret), psp.method)
        case TBankSettings():
            from paybridge.adapters.psp.tbank import TBankAcquiring

            return TBankAcquiring(psp, resolve_secret(psp.password))
        case YooKassaSettings():
            from paybridge.adapters.psp.yookassa import YooKassa

            return YooKassa(psp, resolve_secret(psp.secret_key))
        case StripeSettings():
            from paybridge.adapters.psp.stripe import StripeCheckout

            return StripeCheckout(psp, resolve_secret(psp.secret_key), resolve_secret(psp.webhook_secret))
    raise ValueError(f"unknown provider {psp.provider}")  # pragma: no cover - the config model forbids it


def make_crm(tenant: TenantConfig) -> Crm:
    """The tenant's CRM adapter (cached per tenant while its configuration is unchanged: one HTTP client, one OAuth
    session per execution environment). Every request goes through the shared rate limiter."""
    cached = _crms.get(tenant.tenant_id)
    if cached is not None and cached[0] == tenant:
        return cached[1]
    crm = _build_crm(tenant)
    _crms[tenant.tenant_id] = (tenant, crm)
    return crm


_crms: dict[str, tuple[TenantConfig, Crm]] = {}


def _build_crm(tenant: TenantConfig) -> Crm:
    settings = tenant.crm
    throttle = get_throttle()
    match settings:
        case SandboxCrmSettings():
            from paybridge.adapters.crm.sandbox import SandboxCrm

            return SandboxCrm(settings.base_url, resolve_secret(settings.token), throttle=throttle)
        case Bitrix24Settings():
            from paybridge.adapters.crm import bitrix24

            app_token = resolve_secret(settings.application_token)
            if isinstance(settings.auth, Bitrix24WebhookAuth):
                return bitrix24.Bitrix24(settings, app_token, resolve_secret(settings.auth.url), throttle=throttle)
            auth = settings.auth
            refresh = bitrix24.oauth_refresher(
                auth.token_url or "https://oauth.bitrix.info/oauth/token/",
                auth.client_id,
                resolve_secret(auth.client_secret),
            )
            session = _oauth_session(f"{tenant.tenant_id}:bitrix24", refresh, auth)
            return bitrix24.Bitrix24(
                settings,
                app_token,
                settings.rest_url or f"https://{settings.portal}/rest/",
                access=session.access_token,
                on_unauthorized=session.invalidate,
                throttle=throttle,
            )
        case AmoCrmSettings():
            from paybridge.adapters.crm import amocrm

            webhook_token = resolve_secret(settings.webhook_token)
            if isinstance(settings.auth, LongLivedTokenAuth):
                token = resolve_secret(settings.auth.token)
                return amocrm.AmoCrm(settings, lambda: token, webhook_token, throttle=throttle)
            refresh = amocrm.oauth_refresher(settings, resolve_secret(settings.auth.client_secret))
            session = _oauth_session(f"{tenant.tenant_id}:amocrm", refresh, settings.auth)
            return amocrm.AmoCrm(
                settings, session.access_token, webhook_token, throttle=throttle, on_unauthorized=session.invalidate
            )
    raise ValueError(f"unknown CRM {tenant.crm.kind}")  # pragma: no cover - the config model forbids it


def _oauth_session(key: str, refresh: Callable[[str], TokenPair], auth: OAuthAppAuth) -> OAuthSession:
    from paybridge.storage.crm_state import DynamoTokenStore

    initial = None
    if auth.initial_refresh_token is not None:
        initial = TokenPair(access_token="", refresh_token=resolve_secret(auth.initial_refresh_token), expires_at=0)
    return OAuthSession(DynamoTokenStore(get_settings().table_name), key, refresh, initial)


def make_bank_source(tenant: TenantConfig) -> BankSource:
    bank = tenant.bank
    if bank is None or bank.source is None:
        raise ValueError(f"tenant {tenant.tenant_id} has no statement source")  # guarded by Banking.poll
    from paybridge.adapters.bank.tbank_business import TBankBusiness

    return TBankBusiness(bank.source, resolve_secret(bank.source.token))


@lru_cache(maxsize=1)
def get_banking() -> Banking:
    from paybridge.banking import Banking
    from paybridge.storage.bank import DynamoBankStore

    return Banking(get_services(), DynamoBankStore(get_settings().table_name), make_bank_source)


def make_sender(tenant: TenantConfig, channel: str) -> MessageSender:
    from paybridge.adapters.notify import SandboxSender, SesEmailSender

    settings = tenant.reminders.channels[channel] if tenant.reminders else None  # type: ignore[index]
    match settings:
        case SesSenderSettings():
            return SesEmailSender(settings.from_address, settings.configuration_set)
        case SandboxSenderSettings():
            return SandboxSender(settings.base_url, resolve_secret(settings.token), channel)
    raise ValueError(f"tenant {tenant.tenant_id} has no sender for {channel}")  # pragma: no cover - guarded


@lru_cache(maxsize=1)
def get_reminders() -> Reminders:
    from paybridge.reminders import Reminders
    from paybridge.storage.reminders import DynamoReminderStore

    services = get_services()
    store = DynamoReminderStore(get_settings().table_name)
    return Reminders(store, services.tenants, services.repo, make_sender)


@lru_cache(maxsize=1)
def get_subscriptions() -> Subscriptions:
    from datetime import UTC, datetime

    from paybridge.storage.subscriptions import DynamoSubscriptionStore
    from paybridge.subscriptions import Subscriptions

    store = DynamoSubscriptionStore(get_settings().table_name)
    return Subscriptions(get_services(), store, make_sender, lambda: datetime.now(UTC))


@lru_cache(maxsize=1)
def get_throttle() -> Throttle:
    """Every CRM request of every function takes a token from the account's bucket in the table."""
    from paybridge.storage.crm_state import DynamoRateLimiter

    return DynamoRateLimiter(get_settings().table_name)


@lru_cache(maxsize=1)
def get_outbox() -> SqsOutbox:
    settings = get_settings()
    return SqsOutbox(settings.crm_outbox_url, settings.crm_outbox_dlq_url)


def make_tenant_directory() -> TenantDirectory:
    settings = get_settings()
    if settings.tenants_source == "file":
        return load_file_directory(settings.tenants_file)
    return DynamoTenantDirectory(settings.table_name)


@lru_cache(maxsize=1)
def get_services() -> Services:
    settings = get_settings()
    return Services(
        repo=DynamoInvoiceRepository(settings.table_name, event_retention_days=settings.event_retention_days),
        tenants=make_tenant_directory(),
        lifecycle=StepFunctionsLifecycle(settings.state_machine_arn),
        providers=make_provider,
        crms=make_crm,
        outbox=get_outbox(),
        on_link_published=lambda tenant, invoice, now: get_reminders().plan(tenant, invoice, now),
        on_method_saved=lambda tenant, invoice, method: get_subscriptions().method_saved(
            tenant, invoice.number, str(invoice.subscription_id), method
        ),
        public_base_url=settings.public_base_url,
    )


def reset() -> None:
    """Forget cached settings and services (tests, the local stack after a config change)."""
    from paybridge.tenants import load_file_directory as _loader

    get_settings.cache_clear()
    get_services.cache_clear()
    get_throttle.cache_clear()
    get_outbox.cache_clear()
    get_banking.cache_clear()
    get_reminders.cache_clear()
    get_subscriptions.cache_clear()
    _crms.clear()
    _loader.cache_clear()
