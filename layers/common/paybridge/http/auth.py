"""Who is calling: the one place an API key is checked. It runs before the body is read (see `http.entry`), and an
unknown tenant, a missing key and a wrong key all get the same 401 — the answer does not tell which tenants exist.
Scope checks (integration vs ops keys) belong here too."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from paybridge.http.problems import UNAUTHORIZED_DETAIL, Unauthorized
from paybridge.tenants import TenantConfig, TenantNotFound

API_KEY_HEADER = "x-api-key"
#: Compared against when the tenant is unknown, so that an unknown tenant costs the same as a wrong key.
_NO_TENANT_DIGEST = hashlib.sha256(b"no such tenant").hexdigest()


def authenticate(tenant_id: str, api_key: str | None) -> TenantConfig:
    """The tenant whose API key this is; `Unauthorized` (always the same 401) otherwise."""
    from paybridge.wiring import get_tenants

    try:
        config: TenantConfig | None = get_tenants().get(tenant_id)
    except TenantNotFound:
        config = None
    if config is None:
        digest = hashlib.sha256((api_key or "").encode()).hexdigest()
        hmac.compare_digest(digest, _NO_TENANT_DIGEST)
        raise Unauthorized(UNAUTHORIZED_DETAIL)
    if not config.accepts_api_key(api_key):
        raise Unauthorized(UNAUTHORIZED_DETAIL)
    return config


def api_key_of(headers: Mapping[str, str] | None) -> str | None:
    for name, value in (headers or {}).items():
        if name.lower() == API_KEY_HEADER:
            return value
    return None
