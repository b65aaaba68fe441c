"""The building blocks every adapter's settings are made of: secret references, URLs, CRM auth and rate limits, and
the base each kind of adapter settings derives from (its tag field names the registry entry)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from paybridge.domain.model import Model

SecretValue = Annotated[str, Field(min_length=8)]
HttpUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]
PaymentMethodKind = Literal["card", "sbp"]


class SecretRef(Model):
    """A secret given inline (local stack only) or by the name of a Secrets Manager secret (deployed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: SecretValue | None = None
    secret_name: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.value is None) == (self.secret_name is None):
            raise ValueError("give exactly one of 'value' (local only) or 'secret_name' (Secrets Manager)")
        return self


class AdapterSettings(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PspSettingsBase(AdapterSettings):
    """A payment provider's settings; `provider` is its registry name. The link lifetimes the provider accepts are
    the settings' own (the adapter, the tenant check and the tenant's default lifetime read them here)."""

    provider: str
    #: The shortest link lifetime the provider accepts, in seconds.
    min_lifetime_seconds: ClassVar[int] = 60
    #: The longest.
    max_lifetime_seconds: ClassVar[int] = 90 * 24 * 3600

    def webhook_steps(self, url: str, secret_names: dict[str, str]) -> list[str]:
        """What a person does in the provider's cabinet so that its notifications reach `url` (none: the URL travels
        with each payment). `secret_names`: config path → the secret it is kept in (`paybridge secrets template`)."""
        return []


class ProfileFields(Model):
    """Which of the entity's fields receive the totals (each optional): in the CRM's own names — Bitrix24 `UF_CRM_…`
    user fields of the contact / company, amoCRM custom field ids, the sandbox CRM's field names."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: What the entity paid, net of refunds (Bitrix24: a "money" field, written `1500.00|RUB`; amoCRM: numeric).
    total_paid: str | None = None
    #: When the last payment was recorded (Bitrix24: a date/time field, ISO 8601; amoCRM: a date field, unix time).
    last_payment_date: str | None = None
    #: The last payment's amount (like `total_paid`).
    last_payment_amount: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _ids_as_text(cls, data: Any) -> Any:
        """amoCRM field ids may be given as numbers."""
        if isinstance(data, dict):
            return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in data.items()}
        return data

    def named(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump().items() if value}


class CustomerProfileSettings(Model):
    """Payments on the customer's profile (opt-in): each payment and refund of a deal's invoice also gets a timeline
    entry on the deal's main contact (or its company), and the entity's fields in `contact_fields` /
    `company_fields` show its totals. See README "Payments on the customer's profile"."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    #: Where the entries go; the other entity is used when the deal has none of this one.
    entity: Literal["contact", "company"] = "contact"
    contact_fields: ProfileFields = Field(default_factory=ProfileFields)
    company_fields: ProfileFields = Field(default_factory=ProfileFields)
    #: Also accepted: `fields`, for the preferred `entity`'s fields.
    fields: ProfileFields | None = None

    @model_validator(mode="after")
    def _fields_of_entity(self) -> CustomerProfileSettings:
        if self.fields is not None:
            target = "contact_fields" if self.entity == "contact" else "company_fields"
            if getattr(self, target).named():
                raise ValueError(f"give the {self.entity}'s fields once: 'fields' or '{target}'")
            object.__setattr__(self, target, self.fields)
            object.__setattr__(self, "fields", None)
        return self

    def fields_of(self, entity: str) -> dict[str, str]:
        return (self.contact_fields if entity == "contact" else self.company_fields).named()


class CrmSettingsBase(AdapterSettings):
    """A CRM's settings; `kind` is its registry name."""

    kind: str
    #: Payments on the customer's profile (None: off).
    customer_profile: CustomerProfileSettings | None = None
    #: The pattern a profile field name must match in this CRM (checked at load).
    profile_field_pattern: ClassVar[str] = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
    profile_field_hint: ClassVar[str] = "a field name"
    #: Whether a tenant of this CRM must name every stage itself (a real CRM's stages are the portal's own; the
    #: defaults, NEW, PAID…, are only the sandbox CRM's). `paybridge tenants check` enforces it.
    needs_stage_names: ClassVar[bool] = True

    def webhook_steps(self, url: str, secret_names: dict[str, str]) -> list[str]:
        """What a person does in the CRM so that its events reach `url`, when the CRM has no API for it (see the
        adapter's `register_webhooks`)."""
        return []

    def stage_problems(self, stages: dict[str, str | None]) -> list[str]:
        """Stage names this CRM cannot hold (the tenant's `stages` mapping is checked against them at load)."""
        return []

    @model_validator(mode="after")
    def _profile_field_names(self) -> CrmSettingsBase:
        import re

        profile = self.customer_profile
        if profile is None:
            return self
        for entity in ("contact", "company"):
            for name, value in profile.fields_of(entity).items():
                if not re.fullmatch(self.profile_field_pattern, value):
                    raise ValueError(
                        f"customer_profile.{entity}_fields.{name}: {value!r} is not {self.profile_field_hint}"
                    )
        return self

    @property
    def profile_enabled(self) -> bool:
        return self.customer_profile is not None and self.customer_profile.enabled


class BankSourceSettingsBase(AdapterSettings):
    """A bank statement source's settings; `kind` is its registry name."""

    kind: str

    def webhook_steps(self, url: str, secret_names: dict[str, str]) -> list[str]:
        """What a person does at the bank so that its push reaches `url` (none: statements are only polled)."""
        return []


class SenderSettingsBase(AdapterSettings):
    """A message sender's settings (a reminder channel); `kind` is its registry name."""

    kind: str


class CrmRateLimitSettings(Model):
    """The CRM account's request budget: a leaky bucket of `per_second` requests holding up to `burst`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    per_second: float = Field(gt=0, le=100)
    burst: int = Field(ge=1, le=1000)


class OAuthAppAuth(Model):
    """An OAuth 2 app (Bitrix24 local/market app, amoCRM integration). The first refresh token (from installing the
    app) seeds the token store; every refresh then stores the new single-use pair atomically."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["oauth"]
    client_id: str = Field(min_length=1, max_length=200)
    client_secret: SecretRef = Field(description="the OAuth app's client secret")
    initial_refresh_token: SecretRef | None = Field(
        default=None, description="the refresh token from installing the app (seeds the token store once)"
    )
    #: Bitrix24: https://oauth.bitrix.info/oauth/token/; amoCRM: <base_url>/oauth2/access_token (the default).
    token_url: HttpUrl | None = None
    #: amoCRM requires the integration's redirect URI on every refresh.
    redirect_uri: HttpUrl | None = None


class LongLivedTokenAuth(Model):
    """amoCRM private integrations: a long-lived token (up to 5 years), sent as a Bearer token."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["long_lived"]
    token: SecretRef = Field(description="the private integration's long-lived token")


@dataclass(frozen=True)
class SecretField:
    """A secret a tenant's configuration holds or may hold: where (`psp.secret_key`), what it is, whether it is set."""

    path: str
    ref: SecretRef | None
    required: bool
    description: str


def secret_fields(model: BaseModel, prefix: str = "") -> Iterator[SecretField]:
    """Every `SecretRef` field of a settings model, nested ones (`auth.client_secret`, `channels.email.token`)
    included — unset optional ones too, so that a template can offer them. Derived from the models themselves: a new
    adapter's secrets are found without a list to keep."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if isinstance(value, SecretRef) or (value is None and _may_hold_a_secret(info.annotation)):
            what = info.description or f"{type(model).__name__}.{name}"
            yield SecretField(path, value, info.is_required(), what)
        elif isinstance(value, BaseModel):
            yield from secret_fields(value, f"{path}.")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    yield from secret_fields(item, f"{path}.{key}.")


def _may_hold_a_secret(annotation: Any) -> bool:
    return annotation is SecretRef or SecretRef in get_args(annotation)
