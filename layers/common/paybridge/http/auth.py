"""Who may call a route: the tenant's API keys and the scopes they carry (`integration`, `ops`).

Every route calls `require_scope` with the scope it needs: no key, or not one of the tenant's, is 401; a key of
the tenant's without that scope is 403 (problem JSON either way, nothing read or written)."""

from __future__ import annotations

from paybridge.http.problems import Forbidden, Unauthorized
from paybridge.tenants import ApiScope, TenantConfig


def require_scope(tenant: TenantConfig, api_key: str | None, *scopes: ApiScope) -> None:
    """Let the call through when the key carries one of `scopes`."""
    held = tenant.scopes_of(api_key)
    if not held:
        raise Unauthorized("missing or wrong X-Api-Key for this tenant")
    if not held.intersection(scopes):
        raise Forbidden(f"this API key may not do this: it needs the {' or '.join(scopes)} scope")
