"""Tenant configuration: which PSP and CRM a company uses, its stage mapping, API keys and secrets references.

Validated once at load with clear errors. Sources: a JSON file (local stack, `PAYBRIDGE_TENANTS`) or the DynamoDB
table (`pk = TENANT#<id>`, `sk = CONFIG`, attribute `config` holding the same JSON)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from datetime import time as dt_time
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


class SandboxCrmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["sandbox"] = "sandbox"
    base_url: str = Field(pattern=r"^https?://")
    token: SecretRef


class CrmRateLimitSettings(BaseModel):
    """The CRM account's request budget: a leaky bucket of `per_second` requests holding up to `burst`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    per_second: float = Field(gt=0, le=100)
    burst: int = Field(ge=1, le=1000)


class Bitrix24WebhookAuth(BaseModel):
    """Writes through an incoming webhook: `https://<portal>/rest/<user_id>/<secret>/` (a secret: it grants access)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["webhook"]
    url: SecretRef


class OAuthAppAuth(BaseModel):
    """An OAuth 2 app (Bitrix24 local/market app, amoCRM integration). The first refresh token (from installing the
    app) seeds the token store; every refresh then stores the new single-use pair atomically."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["oauth"]
    client_id: str = Field(min_length=1, max_length=200)
    client_secret: SecretRef
    initial_refresh_token: SecretRef | None = None
    #: Bitrix24: https://oauth.bitrix.info/oauth/token/; amoCRM: <base_url>/oauth2/access_token (the default).
    token_url: HttpUrl | None = None
    #: amoCRM requires the integration's redirect URI on every refresh.
    redirect_uri: HttpUrl | None = None


class LongLivedTokenAuth(BaseModel):
    """amoCRM private integrations: a long-lived token (up to 5 years), sent as a Bearer token."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["long_lived"]
    token: SecretRef


class Bitrix24StageTrigger(BaseModel):
    """Issue an invoice when a deal enters this stage (ONCRMDEALUPDATE, the deal re-read with crm.deal.get)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["stage"]
    stage_id: str = Field(min_length=1, max_length=50)


class Bitrix24RobotTrigger(BaseModel):
    """Issue an invoice when our robot (bizproc.robot.add, this CODE) runs on a deal."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["robot"]
    code: str = Field(default="paybridge_issue_invoice", pattern=r"^[a-z0-9_]{1,50}$")


class Bitrix24Settings(BaseModel):
    """Bitrix24 REST. Inbound calls (events, robots) carry `auth[application_token]`, checked on every call."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["bitrix24"]
    portal: str = Field(pattern=r"^[a-z0-9.-]+(:[0-9]+)?$", description="the portal's domain, e.g. acme.bitrix24.ru")
    auth: Annotated[Bitrix24WebhookAuth | OAuthAppAuth, Field(discriminator="kind")]
    application_token: SecretRef
    trigger: Annotated[Bitrix24StageTrigger | Bitrix24RobotTrigger, Field(discriminator="kind")]
    #: OAuth apps: the REST base (the token answer's `client_endpoint`); default `https://<portal>/rest/`.
    rest_url: HttpUrl | None = None
    #: The deal's user field that receives the payment link (create it in the CRM: type string/URL).
    link_field: str | None = Field(default="UF_CRM_PAYBRIDGE_LINK", pattern=r"^UF_CRM_[A-Z0-9_]+$")
    #: A deal field holding the invoice number; the deal id is used when absent or empty.
    invoice_number_field: str | None = Field(default=None, pattern=r"^(UF_CRM_[A-Z0-9_]+|TITLE)$")
    rate_limit: CrmRateLimitSettings = CrmRateLimitSettings(per_second=2, burst=50)


class AmoCrmStatusTrigger(BaseModel):
    """Issue an invoice when a lead moves to this status (webhook `leads[status]`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status_id: int = Field(gt=0)
    pipeline_id: int | None = Field(default=None, gt=0)


class AmoCrmSettings(BaseModel):
    """amoCRM API v4. Its webhooks are unsigned: the URL registered in amoCRM carries `?token=<webhook_token>`, and
    `account[subdomain]` must be the tenant's."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["amocrm"]
    base_url: HttpUrl = Field(description="https://<subdomain>.amocrm.ru")
    subdomain: str = Field(pattern=r"^[a-z0-9-]{1,63}$")
    auth: Annotated[OAuthAppAuth | LongLivedTokenAuth, Field(discriminator="kind")]
    webhook_token: SecretRef
    trigger: AmoCrmStatusTrigger
    #: The pipeline the mapped statuses belong to (PATCH needs it with `status_id`).
    pipeline_id: int = Field(gt=0)
    #: The lead's custom field (URL/text) that receives the payment link.
    link_field_id: int | None = Field(default=None, gt=0)
    #: A lead custom field holding the invoice number; the lead id is used when absent or empty.
    invoice_number_field_id: int | None = Field(default=None, gt=0)
    #: Tasks for the responsible manager are due this many hours after they are set.
    task_due_hours: int = Field(default=24, ge=1, le=720)
    rate_limit: CrmRateLimitSettings = CrmRateLimitSettings(per_second=7, burst=7)


CrmSettings = Annotated[SandboxCrmSettings | Bitrix24Settings | AmoCrmSettings, Field(discriminator="kind")]


AccountNumber = Annotated[str, Field(pattern=r"^\d{20}$", description="a Russian bank account number, 20 digits")]


class TBankBusinessSettings(BaseModel):
    """T-Bank business API: the company's statement (`GET /api/v1/statement`, Bearer token), polled; and its
    `oper-feed-operation` webhook (registered with `POST /api/v1/webhook`) as the fast path."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["tbank_business"]
    base_url: HttpUrl = "https://business.tbank.ru/openapi/"
    token: SecretRef
    #: The webhook URL we register carries `?token=<webhook_token>` (the body is only a hint: we read the statement).
    webhook_token: SecretRef | None = None
    page_size: int = Field(default=100, ge=1, le=5000)


class BankSettings(BaseModel):
    """Bank transfers: which of our accounts count, where statements come from, how invoice numbers are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    accounts: tuple[AccountNumber, ...] = Field(min_length=1)
    source: TBankBusinessSettings | None = None
    #: How often the schedule reads new operations (the webhook is faster; polling catches what it missed).
    poll_every_minutes: int = Field(default=5, ge=1, le=1440)
    #: Extra regular expressions finding invoice numbers in a payment purpose; each has a group named `number`.
    invoice_patterns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _patterns_compile(self) -> BankSettings:
        for pattern in self.invoice_patterns:
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"invoice pattern {pattern!r} is not a regular expression: {exc}") from None
            if "number" not in compiled.groupindex:
                raise ValueError(f"invoice pattern {pattern!r} has no group named 'number'")
        return self


ReminderChannel = Literal["email", "sms", "messenger"]


class QuietHours(BaseModel):
    """No reminder is sent between `start` and `end` (the tenant's local time); one due then waits for `end`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: dt_time = dt_time(21, 0)
    end: dt_time = dt_time(9, 0)


class SesSenderSettings(BaseModel):
    """E-mail through Amazon SES v2 (the from address or its domain must be verified in SES)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["ses"]
    from_address: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    configuration_set: str | None = None


class SandboxSenderSettings(BaseModel):
    """The local sandbox: messages land in the sandbox CRM's client messages (any channel)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["sandbox"]
    base_url: HttpUrl
    token: SecretRef


SenderSettings = Annotated[SesSenderSettings | SandboxSenderSettings, Field(discriminator="kind")]


class ReminderSettings(BaseModel):
    """Payment reminders to the client while an invoice waits for money."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    after_issue_minutes: tuple[int, ...] = Field(default=(120, 1440), description="after the link is published")
    before_expiry_minutes: tuple[int, ...] = Field(default=(180,), description="before the link expires")
    channels: dict[ReminderChannel, SenderSettings] = Field(min_length=1)
    timezone: str = "Europe/Moscow"
    quiet_hours: QuietHours | None = QuietHours()
    language: Literal["ru", "en"] = "ru"
    #: Per language, a template overriding the shipped one: {number}, {amount}, {outstanding}, {link}, {due}.
    templates: dict[Literal["ru", "en"], str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid(self) -> ReminderSettings:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r} (use an IANA name, e.g. Europe/Moscow)") from None
        if any(m <= 0 for m in (*self.after_issue_minutes, *self.before_expiry_minutes)):
            raise ValueError("reminder offsets are positive numbers of minutes")
        for language, template in self.templates.items():
            try:
                template.format(number="", amount="", outstanding="", link="", due="")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"template {language!r}: unknown placeholder or bad braces ({exc})") from None
        return self


class SubscriptionSettings(BaseModel):
    """Recurring payments: a notice before each charge, and the dunning schedule after a failed one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    notice_hours: int = Field(default=24, ge=0, le=720)
    #: Retry a failed charge after these many hours (one retry each); after the last failure, block.
    dunning_hours: tuple[int, ...] = Field(default=(24, 72, 168), min_length=1, max_length=10)


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
    #: Staged payments: some parts paid, not all ("Advance paid"); defaults to `partially_paid`.
    advance_paid: str | None = None
    #: Recurring payments: the last retry of a charge failed — the CRM blocks access; defaults to `failed`.
    subscription_blocked: str | None = None

    def stage_for(self, state: InvoiceState) -> str:
        return str(getattr(self, state.value))

    def stage_for_schedule(self, kind: str) -> str:
        """The deal's stage for a staged payment as a whole (`paid`: every part; `advance_paid`: some)."""
        return self.paid if kind == "paid" else (self.advance_paid or self.partially_paid)


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
    #: Bank transfers: statement polling, the bank's webhook, 1C uploads.
    bank: BankSettings | None = None
    #: Payment reminders to the client (none when absent).
    reminders: ReminderSettings | None = None
    #: Recurring payments (subscriptions); the defaults apply when absent.
    subscriptions: SubscriptionSettings = Field(default_factory=SubscriptionSettings)

    @model_validator(mode="after")
    def _stages_fit_the_crm(self) -> TenantConfig:
        if isinstance(self.crm, AmoCrmSettings):
            stages = self.stages.model_dump()
            wrong = [name for name, value in stages.items() if value is not None and not str(value).isdigit()]
            if wrong:
                raise ValueError(f"amoCRM stages are status ids (digits); not so for: {', '.join(wrong)}")
        return self

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
            problems = "; ".join(
                f"tenants[{index}]{'.' if e['loc'] else ''}{_where(e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise TenantConfigError(f"{origin}: {problems}") from None
        if tenant.tenant_id in tenants:
            raise TenantConfigError(f"{origin}: tenant {tenant.tenant_id!r} is defined twice")
        tenants[tenant.tenant_id] = tenant
    return tenants


def _where(loc: tuple[int | str, ...]) -> str:
    """`psp.tbank.password` → `psp.password`, `crm.amocrm.auth.oauth.client_id` → `crm.auth.client_id`: pydantic
    names the member of each tagged union; the file does not."""
    parts = [str(p) for p in loc]
    if len(parts) > 2 and parts[0] == "psp" and parts[1] in _PSP_TAGS:
        del parts[1]
    if len(parts) > 2 and parts[0] == "crm" and parts[1] in _CRM_TAGS:
        del parts[1]
    kept = [p for i, p in enumerate(parts) if not (i >= 2 and parts[i - 1] in _NESTED_UNIONS and p in _AUTH_TAGS)]
    return ".".join(kept)


_PSP_TAGS = frozenset({"sandbox", "tbank", "yookassa", "stripe"})
_CRM_TAGS = frozenset({"sandbox", "bitrix24", "amocrm"})
_AUTH_TAGS = frozenset({"webhook", "oauth", "long_lived", "stage", "robot"})
_NESTED_UNIONS = frozenset({"auth", "trigger"})


class TenantDirectory(Protocol):
    def get(self, tenant_id: str) -> TenantConfig: ...

    def tenant_ids(self) -> list[str]: ...


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
