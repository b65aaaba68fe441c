"""Tenant configuration: which PSP and CRM a company uses, its stage mapping, API keys and secrets references.

Validated once at load with clear errors. Sources: a JSON file (local stack, `PAYBRIDGE_TENANTS`) or the DynamoDB
table (`pk = TENANT#<id>`, `sk = CONFIG`, attribute `config` holding the same JSON)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from paybridge.domain.invoice import InvoiceState, TenantId
from paybridge.domain.receipt import FiscalSettings


class TenantNotFound(Exception):
    pass


class TenantConfigError(Exception):
    """The tenant configuration is invalid; the message says where."""


SecretValue = Annotated[str, Field(min_length=8)]


class SecretRef(BaseModel):
    """A secret given inline (local stack only) or by the name of a Secrets Manager secret (deployed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: SecretValue | None = None
    secret_name: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.value is None) == (self.secret_name is None):
            raise ValueError("give exactly one of 'value' (local only) or 'secret_name' (Secrets Manager)")
        return self


HttpUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]
PaymentMethodKind = Literal["card", "sbp"]


class SandboxPspSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: Literal["sandbox"] = "sandbox"
    base_url: HttpUrl
    secret: SecretRef
    method: PaymentMethodKind = "card"


class TBankSettings(BaseModel):
    """T-Bank internet acquiring (API v2). Test host: https://rest-api-test.tinkoff.ru/v2/."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: Literal["tbank"]
    base_url: HttpUrl = "https://securepay.tinkoff.ru/v2/"
    terminal_key: str = Field(min_length=1, max_length=20)
    password: SecretRef
    method: PaymentMethodKind = "card"
    #: `O` one-stage (money is taken at once), `T` two-stage (held: AUTHORIZED, then confirmed in T-Bank).
    pay_type: Literal["O", "T"] = "O"
    #: For SBP: `PAYLOAD` (a https://qr.nspk.ru/… link to render or open) or `IMAGE` (an SVG of the QR code).
    qr_data_type: Literal["PAYLOAD", "IMAGE"] = "PAYLOAD"


class YooKassaSettings(BaseModel):
    """YooKassa API v3 (test shops use the same host with a test secret key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: Literal["yookassa"]
    base_url: HttpUrl = "https://api.yookassa.ru/v3/"
    shop_id: str = Field(min_length=1, max_length=20, pattern=r"^\d+$")
    secret_key: SecretRef
    method: PaymentMethodKind = "card"
    #: Optional source-IP allow-list for notifications (CIDRs); the re-fetch of the object is the check that counts.
    notification_ips: tuple[str, ...] | None = None


class StripeSettings(BaseModel):
    """Stripe Checkout. Test mode: the same host with an `sk_test_…` key and the test endpoint's `whsec_…`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: Literal["stripe"]
    base_url: HttpUrl = "https://api.stripe.com"
    secret_key: SecretRef
    webhook_secret: SecretRef
    #: Stripe Checkout needs a URL to send the payer back to; defaults to the tenant's `return_url`.
    cancel_url: HttpUrl | None = None


PspSettings = Annotated[
    SandboxPspSettings | TBankSettings | YooKassaSettings | StripeSettings, Field(discriminator="provider")
]


class CrmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["sandbox"] = "sandbox"
    base_url: str = Field(pattern=r"^https?://")
    token: SecretRef


class StageMapping(BaseModel):
    """The CRM stage for every lifecycle state: defined once per tenant, every state must be mapped."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    issued: str = "NEW"
    awaiting_payment: str = "AWAITING_PAYMENT"
    partially_paid: str = "PARTIALLY_PAID"
    paid: str = "PAID"
    partially_refunded: str = "PARTIALLY_REFUNDED"
    refunded: str = "REFUNDED"
    expired: str = "EXPIRED"
    cancelled: str = "CANCELLED"
    failed: str = "FAILED"

    def stage_for(self, state: InvoiceState) -> str:
        return str(getattr(self, state.value))


class TenantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tenant_id: TenantId
    name: str
    api_keys_sha256: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(min_length=1)
    currency: str = Field(default="RUB", pattern=r"^[A-Z]{3}$")
    link_lifetime_seconds: int = Field(default=3 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    #: Where payers land after paying (T-Bank SuccessURL, YooKassa return_url, Stripe success_url).
    return_url: HttpUrl | None = None
    psp: PspSettings
    crm: CrmSettings
    stages: StageMapping = Field(default_factory=StageMapping)
    #: 54-FZ receipts: when set, every payment and refund carries a receipt (T-Bank, YooKassa).
    fiscal: FiscalSettings | None = None

    def accepts_api_key(self, api_key: str | None) -> bool:
        if not api_key:
            return False
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        return any(hmac.compare_digest(digest, known) for known in self.api_keys_sha256)


def parse_tenants(raw: Any, origin: str) -> dict[str, TenantConfig]:
    if not isinstance(raw, dict) or not isinstance(raw.get("tenants"), list):
        raise TenantConfigError(f"{origin}: expected an object with a 'tenants' list")
    tenants: dict[str, TenantConfig] = {}
    for index, item in enumerate(raw["tenants"]):
        try:
            tenant = TenantConfig.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(f"tenants[{index}].{_where(e['loc'])}: {e['msg']}" for e in exc.errors())
            raise TenantConfigError(f"{origin}: {problems}") from None
        if tenant.tenant_id in tenants:
            raise TenantConfigError(f"{origin}: tenant {tenant.tenant_id!r} is defined twice")
        tenants[tenant.tenant_id] = tenant
    return tenants


def _where(loc: tuple[int | str, ...]) -> str:
    """`psp.tbank.password` → `psp.password`: pydantic names the provider of the tagged union; the file does not."""
    parts = [str(p) for p in loc]
    if len(parts) > 2 and parts[0] == "psp" and parts[1] in _PSP_TAGS:
        del parts[1]
    return ".".join(parts)


_PSP_TAGS = frozenset({"sandbox", "tbank", "yookassa", "stripe"})


class TenantDirectory(Protocol):
    def get(self, tenant_id: str) -> TenantConfig: ...


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FileTenantDirectory:
    """Tenants from a JSON file; `${NAME}` in it is replaced by the environment variable NAME (e.g.
    `${PAYBRIDGE_LOCAL_URL}`, the local stack's base URL)."""

    def __init__(self, path: str) -> None:
        try:
            text = _ENV_REFERENCE.sub(
                lambda m: os.environ.get(m.group(1), m.group(0)), Path(path).read_text(encoding="utf-8")
            )
            raw = json.loads(text)
        except (OSError, json.JSONDecodeError) as exc:
            raise TenantConfigError(f"{path}: {exc}") from None
        self._tenants = parse_tenants(raw, path)

    def tenant_ids(self) -> list[str]:
        return list(self._tenants)

    def get(self, tenant_id: str) -> TenantConfig:
        try:
            return self._tenants[tenant_id]
        except KeyError:
            raise TenantNotFound(tenant_id) from None


@lru_cache(maxsize=8)
def load_file_directory(path: str) -> FileTenantDirectory:
    return FileTenantDirectory(path)
