"""Adapters register themselves: the tenant model's unions and the wiring's lookups come from one registry per kind."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import TypeAdapter, ValidationError

from paybridge.adapters.registry import (
    ADAPTER_MODULES,
    BANK_SOURCES,
    CRMS,
    PSPS,
    SENDERS,
    AdapterContext,
    Registry,
    UnknownAdapter,
)
from paybridge.adapters.settings import PspSettingsBase, SecretRef
from paybridge.tenants import TenantConfig
from paybridge.wiring import make_provider


class AcmePaySettings(PspSettingsBase):
    provider: Literal["acmepay"]
    shop: str
    key: SecretRef


class AcmePay:
    def __init__(self, shop: str, key: str) -> None:
        self.shop, self.key = shop, key


def build_acmepay(settings: AcmePaySettings, context: AdapterContext) -> AcmePay:
    return AcmePay(settings.shop, context.secret(settings.key))


def test_a_new_provider_is_one_settings_model_and_one_factory() -> None:
    registry: Registry[Any] = Registry("payment provider", "provider")
    registry.register("acmepay", AcmePaySettings, build_acmepay)
    union: Any = TypeAdapter(registry.union())
    settings = union.validate_python({"provider": "acmepay", "shop": "s-1", "key": {"value": "k" * 8}})
    built = registry.build(settings, AdapterContext(tenant_id="t", secret=lambda ref: f"resolved:{ref.value}"))
    assert isinstance(built, AcmePay) and (built.shop, built.key) == ("s-1", "resolved:kkkkkkkk")
    assert registry.names() == ("acmepay",)


def test_a_name_is_registered_once_and_must_be_the_settings_tag() -> None:
    registry: Registry[Any] = Registry("payment provider", "provider", reserved=("review",))
    registry.register("acmepay", AcmePaySettings, build_acmepay)
    with pytest.raises(ValueError, match="registered already"):
        registry.register("acmepay", AcmePaySettings, build_acmepay)
    with pytest.raises(ValueError, match=r"must be Literal\['other'\]"):
        registry.register("other", AcmePaySettings, build_acmepay)
    with pytest.raises(ValueError, match="reserved"):
        registry.register("review", AcmePaySettings, build_acmepay)
    with pytest.raises(UnknownAdapter, match="no payment provider named 'nope'"):
        registry.entry("nope")


def test_the_shipped_adapters_are_all_registered_in_module_order() -> None:
    assert PSPS.names() and set(PSPS.names()) == {"sandbox", "tbank", "yookassa", "stripe"}
    assert set(CRMS.names()) == {"sandbox", "bitrix24", "amocrm"}
    assert set(BANK_SOURCES.names()) == {"tbank_business"}
    assert set(SENDERS.names()) == {"ses", "sandbox"}
    assert BANK_SOURCES.entry("tbank").name == "tbank_business"  # the old webhook URL's segment
    for name in ("statements", "review"):  # routes of their own under /bank/{tenant}/
        with pytest.raises(ValueError, match="reserved"):
            BANK_SOURCES.register(name, AcmePaySettings, build_acmepay)
    assert len(set(ADAPTER_MODULES)) == len(ADAPTER_MODULES)


def tenant(psp: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": "acme",
        "name": "Acme",
        "api_keys_sha256": ["0" * 64],
        "psp": psp,
        "crm": {"kind": "sandbox", "base_url": "http://crm", "token": {"value": "token-123"}},
    }


def test_the_tenant_model_takes_any_registered_provider_and_only_those() -> None:
    config = TenantConfig.model_validate(
        tenant({"provider": "yookassa", "shop_id": "123", "secret_key": {"value": "test_secret"}})
    )
    assert type(config.psp).__module__ == "paybridge.adapters.psp.yookassa"
    with pytest.raises(ValidationError, match="'sandbox', 'tbank', 'yookassa', 'stripe'"):
        TenantConfig.model_validate(tenant({"provider": "acmepay", "shop": "s"}))


def test_the_wiring_builds_the_tenants_provider_through_its_registry_entry() -> None:
    config = TenantConfig.model_validate(
        tenant({"provider": "sandbox", "base_url": "http://psp.test", "secret": {"value": "secret-123"}})
    )
    provider = make_provider(config)
    assert provider.name == "sandbox" and type(provider).__module__ == "paybridge.adapters.psp.sandbox"
