"""Who is calling, and what they may do: the one place an API key is checked. It runs before the body is read (see
`http.entry`): an unknown tenant, a missing key and a wrong key all get the same 401 — the answer does not tell which
tenants exist; a key of the tenant's without the scope the route needs (`integration`, `ops`) gets 403."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from paybridge.http.problems import UNAUTHORIZED_DETAIL, Forbidden, Unauthorized
from paybridge.tenants import ApiScope, TenantConfig, TenantNotFound, api_key_digest

__all__ = ["API_KEY_HEADER", "api_key_digest", "api_key_of", "authenticate", "require_scope"]

API_KEY_HEADER = "x-api-key"
#: Compared against when the tenant is unknown, so that an unknown tenant costs the same as a wrong key.
_NO_TENANT_DIGEST = api_key_digest("no such tenant")


def authenticate(tenant_id: str, api_key: str | None, *scopes: ApiScope) -> TenantConfig:
    """The tenant whose API key this is (`Unauthorized`, always the same 401, otherwise); with `scopes`, the key
    must carry one of them (`Forbidden`, 403)."""
    from paybridge.wiring import get_tenants

    try:
        config: TenantConfig | None = get_tenants().get(tenant_id)
    except TenantNotFound:
        config = None
    if config is None:
        digest = api_key_digest(api_key or "")
        hmac.compare_digest(digest, _NO_TENANT_DIGEST)
        raise Unauthorized(UNAUTHORIZED_DETAIL)
    if scopes:
        require_scope(config, api_key, *scopes)
    elif not config.scopes_of(api_key):
        raise Unauthorized(UNAUTHORIZED_DETAIL)
    return config


def require_scope(tenant: TenantConfig, api_key: str | None, *scopes: ApiScope) -> None:
    """Let the call through when the key is the tenant's and carries one of `scopes`."""
    held = tenant.scopes_of(api_key)
    if not held:
        raise Unauthorized(UNAUTHORIZED_DETAIL)
    if not held.intersection(scopes):
        raise Forbidden(f"this API key may not do this: it needs the {' or '.join(scopes)} scope")


def api_key_of(headers: Mapping[str, str] | None) -> str | None:
    for name, value in (headers or {}).items():
        if name.lower() == API_KEY_HEADER:
            return value
    return None
