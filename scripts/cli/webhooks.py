"""`paybridge webhooks register TENANT`: our URLs registered where the CRM has an API for it (Bitrix24 `event.bind` /
`bizproc.robot.add` for an application, amoCRM `POST /api/v4/webhooks`; see each adapter's `register_webhooks`), and
the exact steps for every cabinet without one (each settings model's `webhook_steps`: YooKassa, Stripe, a Bitrix24
incoming-webhook portal, the bank). Registering twice registers nothing new."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paybridge.tenants import TenantConfig
from scripts.cli.checks import secret_name


def urls(tenant: TenantConfig, api_url: str) -> dict[str, str]:
    """Where each of the tenant's providers must send its notifications (the template's generic routes)."""
    base, tid = api_url.rstrip("/"), tenant.tenant_id
    found = {"psp": f"{base}/psp/{tid}/{tenant.psp.provider}", "crm": f"{base}/crm/{tid}/{tenant.crm.kind}"}
    if tenant.bank is not None and tenant.bank.source is not None:
        found["bank"] = f"{base}/bank/{tid}/{tenant.bank.source.kind}"
    return found


def register(
    tenant: TenantConfig, api_url: str, stage: str, make_crm: Callable[[TenantConfig], Any]
) -> list[dict[str, Any]]:
    """One entry per part (crm, psp, bank): its URL, what was registered through an API, what a person must do."""
    from paybridge.adapters.settings import secret_fields

    names = {
        f.path: (f.ref.secret_name if f.ref is not None and f.ref.secret_name else None)
        or secret_name(stage, tenant.tenant_id, f.path)
        for f in secret_fields(tenant)
    }
    where = urls(tenant, api_url)
    crm_done: list[str] | None = None
    register_crm = getattr(make_crm(tenant), "register_webhooks", None)
    if register_crm is not None:
        crm_done = register_crm(where["crm"])
    entries = [
        _entry("crm", tenant.crm.kind, where["crm"], crm_done, tenant.crm.webhook_steps(where["crm"], names)),
        _entry("psp", tenant.psp.provider, where["psp"], None, tenant.psp.webhook_steps(where["psp"], names)),
    ]
    if tenant.bank is not None and tenant.bank.source is not None:
        source = tenant.bank.source
        entries.append(_entry("bank", source.kind, where["bank"], None, source.webhook_steps(where["bank"], names)))
    return entries


def _entry(part: str, name: str, url: str, done: list[str] | None, steps: list[str]) -> dict[str, Any]:
    if done is not None:
        return {"part": part, "name": name, "url": url, "registered": done, "steps": []}
    if not steps:
        steps = [f"nothing to register: {name} is given this URL by PayBridge itself (with each payment or at start)"]
    return {"part": part, "name": name, "url": url, "registered": [], "steps": steps}
