"""Builds the services from configuration, once per execution environment. Adapters are chosen by tenant config."""

from __future__ import annotations

from functools import lru_cache

from paybridge.adapters.crm.base import Crm
from paybridge.adapters.lifecycle import StepFunctionsLifecycle
from paybridge.adapters.psp.base import PaymentProvider
from paybridge.secrets import resolve_secret
from paybridge.services import Services
from paybridge.settings import get_settings
from paybridge.storage.dynamodb import DynamoInvoiceRepository, DynamoTenantDirectory
from paybridge.tenants import (
    SandboxPspSettings,
    StripeSettings,
    TBankSettings,
    TenantConfig,
    TenantDirectory,
    YooKassaSettings,
    load_file_directory,
)


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
    crm = tenant.crm
    if crm.kind == "sandbox":
        from paybridge.adapters.crm.sandbox import SandboxCrm

        return SandboxCrm(crm.base_url, resolve_secret(crm.token))
    raise ValueError(f"unknown CRM {crm.kind}")  # pragma: no cover


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
        public_base_url=settings.public_base_url,
    )


def reset() -> None:
    """Forget cached settings and services (tests, the local stack after a config change)."""
    from paybridge.tenants import load_file_directory as _loader

    get_settings.cache_clear()
    get_services.cache_clear()
    _loader.cache_clear()
