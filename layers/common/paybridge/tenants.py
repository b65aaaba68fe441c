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
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from paybridge.adapters.registry import BANK_SOURCES, CRMS, PSPS, SENDERS
from paybridge.adapters.settings import (
    BankSourceSettingsBase,
    CrmSettingsBase,
    HttpUrl,
    PspSettingsBase,
    SecretRef,
    SenderSettingsBase,
)
from paybridge.domain.invoice import InvoiceState, TenantId
from paybridge.domain.model import Model
from paybridge.domain.receipt import FiscalSettings
from paybridge.domain.settlement import AcquiringSettings

__all__ = ["SecretRef", "TenantConfig", "TenantDirectory", "TenantNotFound", "parse_tenants"]

# Each adapter's settings come from its own module (paybridge/adapters/registry.py lists them); the tenant model
# accepts whichever is registered, told apart by the tag field. The union is made, and the adapter modules imported,
# when the model is built: the models holding one `defer_build` until their first validation, so that importing
# this module (every handler does) costs neither the adapters nor the tenant model's schema.
if TYPE_CHECKING:
    PspSettings = PspSettingsBase
    CrmSettings = CrmSettingsBase
    BankSourceSettings = BankSourceSettingsBase
    SenderSettings = SenderSettingsBase
else:
    PspSettings = Annotated[PspSettingsBase, PSPS.lazy_union()]
    CrmSettings = Annotated[CrmSettingsBase, CRMS.lazy_union()]
    BankSourceSettings = Annotated[BankSourceSettingsBase, BANK_SOURCES.lazy_union()]
    SenderSettings = Annotated[SenderSettingsBase, SENDERS.lazy_union()]


class TenantNotFound(Exception):
    pass


class TenantConfigError(Exception):
    """The tenant configuration is invalid; the message says where."""


AccountNumber = Annotated[str, Field(pattern=r"^\d{20}$", description="a Russian bank account number, 20 digits")]


class BankSettings(Model):
    """Bank transfers: which of our accounts count, where statements come from, how invoice numbers are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # holds a lazy union: built at its first validation
    accounts: tuple[AccountNumber, ...] = Field(min_length=1)
    source: BankSourceSettings | None = None
    #: How often the schedule reads new operations (the webhook is faster; polling catches what it missed).
    poll_every_minutes: int = Field(default=5, ge=1, le=1440)
    #: Extra regular expressions finding invoice numbers in a payment purpose; each has a group named `number`.
    invoice_patterns: tuple[str, ...] = ()
    #: The acquirers whose payouts reach these accounts: recognised as settlements, never as customer payments.
    acquiring: tuple[AcquiringSettings, ...] = ()

    @model_validator(mode="after")
    def _one_per_provider(self) -> BankSettings:
        providers = [source.provider for source in self.acquiring]
        if len(set(providers)) != len(providers):
            raise ValueError("acquiring: one entry per provider")
        return self

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


#: A tenant's local time unless its config says otherwise.
DEFAULT_TIMEZONE = "Europe/Moscow"


def _check_zone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name, e.g. Europe/Moscow)") from None


class QuietHours(Model):
    """No reminder is sent between `start` and `end` (the tenant's local time); one due then waits for `end`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: dt_time = dt_time(21, 0)
    end: dt_time = dt_time(9, 0)


class ReminderSettings(Model):
    """Payment reminders to the client while an invoice waits for money."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # holds a lazy union: built at its first validation
    after_issue_minutes: tuple[int, ...] = Field(default=(120, 1440), description="after the link is published")
    before_expiry_minutes: tuple[int, ...] = Field(default=(180,), description="before the link expires")
    channels: dict[ReminderChannel, SenderSettings] = Field(min_length=1)
    #: Quiet hours and due times are in this zone; the tenant's `timezone` when absent.
    timezone: str | None = None
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)
    language: Literal["ru", "en"] = "ru"
    #: Per language, a template overriding the shipped one: {number}, {amount}, {outstanding}, {link}, {due}.
    templates: dict[Literal["ru", "en"], str] = Field(default_factory=dict)

    @property
    def zone(self) -> str:
        return self.timezone or DEFAULT_TIMEZONE

    @model_validator(mode="after")
    def _valid(self) -> ReminderSettings:
        if self.timezone is not None:
            _check_zone(self.timezone)
        if any(m <= 0 for m in (*self.after_issue_minutes, *self.before_expiry_minutes)):
            raise ValueError("reminder offsets are positive numbers of minutes")
        for language, template in self.templates.items():
            try:
                template.format(number="", amount="", outstanding="", link="", due="")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"template {language!r}: unknown placeholder or bad braces ({exc})") from None
        return self


class SubscriptionSettings(Model):
    """Recurring payments: a notice before each charge, and the dunning schedule after a failed one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    notice_hours: int = Field(default=24, ge=0, le=720)
    #: Retry a failed charge after these many hours (one retry each); after the last failure, block.
    dunning_hours: tuple[int, ...] = Field(default=(24, 72, 168), min_length=1, max_length=10)


class RetentionSettings(Model):
    """Personal data kept no longer than needed: the customer's name, e-mail, phone and INN are erased from closed
    invoices this many days after the invoice was issued (money facts, numbers and the audit history stay)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    customer_data_days: int = Field(ge=1, le=3650)


CrmAction = Literal["refund", "reissue", "subscription_cancel", "subscription_pause", "subscription_resume"]


class CrmActionTrigger(Model):
    """A lever pulled from the CRM: when a deal enters `stage` (Bitrix24 STAGE_ID, amoCRM status id) or the robot
    `robot` runs on it (Bitrix24), PayBridge does `action` for the deal's invoice — a refund (all that is refundable,
    or the amount in the deal field `amount_field` / the robot's `amount` property), a new link for an expired,
    cancelled or failed invoice — or for the deal's subscriptions: cancel, pause, resume."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    action: CrmAction
    stage: str | None = Field(default=None, min_length=1, max_length=50)
    robot: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,50}$")
    amount_field: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _when(self) -> CrmActionTrigger:
        if (self.stage is None) == (self.robot is None):
            raise ValueError("a CRM action trigger names either a stage or a robot")
        if self.amount_field is not None and self.action != "refund":
            raise ValueError("amount_field is for refunds")
        return self


class StageMapping(Model):
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


DEFAULT_LINK_LIFETIME_SECONDS = 3 * 24 * 3600


def api_key_digest(api_key: str) -> str:
    """How an API key is kept: the SHA-256 hex of it (`api_keys_sha256`, `ops_api_keys_sha256`); the key itself is
    shown once when it is made (`paybridge keys new`) and never stored."""
    return hashlib.sha256(api_key.encode()).hexdigest()


#: What an API key may do: `integration` — issue, read, cancel, refund; `ops` — a person's levers and reports.
ApiScope = Literal["integration", "ops"]


class TenantConfig(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)  # built at the first tenant read
    tenant_id: TenantId
    name: str
    #: SHA-256 hex of each `integration` key: issue, read, cancel, refund (CRM scripts, site back-ends).
    api_keys_sha256: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(min_length=1)
    #: SHA-256 hex of each `ops` key: a person's levers (record a payment, reissue, re-sync, resolve a bank line)
    #: and the invoice list. A key listed in both has both scopes.
    ops_api_keys_sha256: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(default_factory=list)
    currency: str = Field(default="RUB", pattern=r"^[A-Z]{3}$")
    #: The company's local time (IANA name): report months, reminders' quiet hours.
    timezone: str = DEFAULT_TIMEZONE
    #: Where payers land after paying (T-Bank SuccessURL, YooKassa return_url, Stripe success_url).
    return_url: HttpUrl | None = None
    psp: PspSettings
    #: Default link lifetime: 3 days, or the provider's longest when that is shorter (Stripe Checkout: 24 h); it
    #: must be within the provider's limits (declared after `psp`, so that it is checked against them).
    link_lifetime_seconds: int = Field(default=DEFAULT_LINK_LIFETIME_SECONDS, ge=60, le=90 * 24 * 3600)
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
    #: Personal data retention (none: kept until an erasure request).
    retention: RetentionSettings | None = None
    #: Levers pulled from the CRM: a refund or a new link when a deal enters a stage or a robot runs.
    crm_actions: list[CrmActionTrigger] = Field(default_factory=list, max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _default_lifetime_fits_the_provider(cls, data: Any) -> Any:
        """Without a lifetime of its own, a tenant gets the default or its provider's longest, whichever is shorter
        (a Stripe tenant: 24 h, not 3 days that Stripe would refuse on every invoice)."""
        if isinstance(data, dict) and "link_lifetime_seconds" not in data:
            settings = _psp_settings_class(data.get("psp"))
            if settings is not None and settings.max_lifetime_seconds < DEFAULT_LINK_LIFETIME_SECONDS:
                data = {**data, "link_lifetime_seconds": settings.max_lifetime_seconds}
        return data

    @field_validator("link_lifetime_seconds")
    @classmethod
    def _lifetime_fits_the_provider(cls, lifetime: int, info: ValidationInfo) -> int:
        psp = info.data.get("psp")
        if isinstance(psp, PspSettingsBase):
            low, high = type(psp).min_lifetime_seconds, type(psp).max_lifetime_seconds
            if not low <= lifetime <= high:
                raise ValueError(f"{lifetime} s is outside what {psp.provider} accepts: {low} to {high} s")
        return lifetime

    @model_validator(mode="after")
    def _stages_fit_the_crm(self) -> TenantConfig:
        wrong = self.crm.stage_problems(self.stages.model_dump())
        if wrong:
            raise ValueError("; ".join(wrong))
        _check_zone(self.timezone)
        if self.reminders is not None and self.reminders.timezone is None:  # one zone unless told otherwise
            object.__setattr__(self, "reminders", self.reminders.model_copy(update={"timezone": self.timezone}))
        return self

    def accepts_api_key(self, api_key: str | None) -> bool:
        return "integration" in self.scopes_of(api_key)

    def scopes_of(self, api_key: str | None) -> frozenset[ApiScope]:
        """The scopes an API key carries for this tenant (none: not one of its keys)."""
        if not api_key:
            return frozenset()
        digest = api_key_digest(api_key)
        scopes: set[ApiScope] = set()
        if any(hmac.compare_digest(digest, known) for known in self.api_keys_sha256):
            scopes.add("integration")
        if any(hmac.compare_digest(digest, known) for known in self.ops_api_keys_sha256):
            scopes.add("ops")
        return frozenset(scopes)


def _psp_settings_class(psp: Any) -> type[PspSettingsBase] | None:
    from paybridge.adapters.registry import UnknownAdapter

    if not isinstance(psp, dict) or not isinstance(psp.get("provider"), str):
        return None  # the union's own validation says what is wrong
    try:
        settings = PSPS.entry(psp["provider"]).settings
    except UnknownAdapter:
        return None
    return settings if issubclass(settings, PspSettingsBase) else None


def parse_tenants(raw: Any, origin: str) -> dict[str, TenantConfig]:
    if not isinstance(raw, dict) or not isinstance(raw.get("tenants"), list):
        raise TenantConfigError(f"{origin}: expected an object with a 'tenants' list")
    tenants: dict[str, TenantConfig] = {}
    for index, item in enumerate(raw["tenants"]):
        tenant, problems = validate_tenant(item, f"tenants[{index}]")
        if tenant is None:
            raise TenantConfigError(f"{origin}: {'; '.join(problems)}")
        if tenant.tenant_id in tenants:
            raise TenantConfigError(f"{origin}: tenant {tenant.tenant_id!r} is defined twice")
        tenants[tenant.tenant_id] = tenant
    return tenants


def validate_tenant(item: Any, where: str) -> tuple[TenantConfig | None, list[str]]:
    """The tenant, or every problem of the item, each naming its field path as the file spells it (`where` first)."""
    try:
        return TenantConfig.model_validate(item), []
    except ValidationError as exc:
        problems = [
            f"{where}{'.' if e['loc'] else ''}{_where(e['loc'], item)}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        return None, problems


def _where(loc: tuple[int | str, ...], item: Any) -> str:
    """`psp.tbank.password` → `psp.password`, `crm.amocrm.auth.oauth.client_id` → `crm.auth.client_id`: pydantic
    names the member of each tagged union in the location; the file does not. A location part is such a tag when
    the object at that point has no key of that name but a value equal to it (its tag field)."""
    kept: list[str] = []
    here = item
    for part in loc:
        if isinstance(here, dict) and isinstance(part, str) and part not in here and part in here.values():
            continue  # the union member's tag, not a key of the file
        kept.append(str(part))
        if isinstance(here, dict):
            here = here.get(part)
        elif isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
            here = here[part]
        else:
            here = None
    return ".".join(kept)


class TenantDirectory(Protocol):
    def get(self, tenant_id: str) -> TenantConfig: ...

    def tenant_ids(self) -> list[str]: ...


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FileTenantDirectory:
    """Tenants from a JSON file; `${NAME}` in it is replaced by the environment variable NAME (e.g.
    `${PAYBRIDGE_LOCAL_URL}`, the local stack's base URL). A change to the file (a key added with `paybridge keys
    new --stage local`) is read at the next lookup; a file made invalid meanwhile keeps the tenants read before."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._mtime = _mtime(path)
        self._tenants = self._read()

    def _read(self) -> dict[str, TenantConfig]:
        try:
            text = _ENV_REFERENCE.sub(
                lambda m: os.environ.get(m.group(1), m.group(0)), Path(self._path).read_text(encoding="utf-8")
            )
            raw = json.loads(text)
        except (OSError, json.JSONDecodeError) as exc:
            raise TenantConfigError(f"{self._path}: {exc}") from None
        return parse_tenants(raw, self._path)

    def _fresh(self) -> dict[str, TenantConfig]:
        mtime = _mtime(self._path)
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self._tenants = self._read()
            except TenantConfigError as exc:
                import logging

                logging.getLogger(__name__).warning("kept the tenants read before: %s", exc)
        return self._tenants

    def tenant_ids(self) -> list[str]:
        return list(self._fresh())

    def get(self, tenant_id: str) -> TenantConfig:
        try:
            return self._fresh()[tenant_id]
        except KeyError:
            raise TenantNotFound(tenant_id) from None


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


@lru_cache(maxsize=8)
def load_file_directory(path: str) -> FileTenantDirectory:
    return FileTenantDirectory(path)
