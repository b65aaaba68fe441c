"""The building blocks every adapter's settings are made of: secret references, URLs, CRM auth and rate limits, and
the base each kind of adapter settings derives from (its tag field names the registry entry)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

SecretValue = Annotated[str, Field(min_length=8)]
HttpUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]
PaymentMethodKind = Literal["card", "sbp"]


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


class AdapterSettings(BaseModel):
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


class CrmSettingsBase(AdapterSettings):
    """A CRM's settings; `kind` is its registry name."""

    kind: str
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


class BankSourceSettingsBase(AdapterSettings):
    """A bank statement source's settings; `kind` is its registry name."""

    kind: str

    def webhook_steps(self, url: str, secret_names: dict[str, str]) -> list[str]:
        """What a person does at the bank so that its push reaches `url` (none: statements are only polled)."""
        return []


class SenderSettingsBase(AdapterSettings):
    """A message sender's settings (a reminder channel); `kind` is its registry name."""

    kind: str


class CrmRateLimitSettings(BaseModel):
    """The CRM account's request budget: a leaky bucket of `per_second` requests holding up to `burst`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    per_second: float = Field(gt=0, le=100)
    burst: int = Field(ge=1, le=1000)


class OAuthAppAuth(BaseModel):
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


class LongLivedTokenAuth(BaseModel):
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
