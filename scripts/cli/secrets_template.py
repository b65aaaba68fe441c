"""`paybridge secrets template TENANT`: the Secrets Manager secrets a tenant needs on a stage, derived from its
settings models (`adapters.settings.secret_fields`: every `SecretRef` field of the PSP, CRM, bank source and reminder
senders it chose, optional ones marked), with the name, the tag the functions' policies ask for, what the secret
string holds, the command that creates it, and the tenant's JSON with each secret referenced by that name."""

from __future__ import annotations

import copy
from typing import Any

from paybridge.adapters.settings import secret_fields
from paybridge.tenants import TenantConfig
from scripts.cli.checks import secret_name

#: The `paybridge-use` tag each part's secrets carry: template.yaml lets each function read only its tags.
TAGS = {"psp": "psp", "crm": "crm", "bank": "bank", "reminders": "notify"}


def template(tenant: TenantConfig, item: dict[str, Any], stage: str) -> dict[str, Any]:
    secrets: list[dict[str, Any]] = []
    config = copy.deepcopy(item)
    for field in secret_fields(tenant):
        named = field.ref.secret_name if field.ref is not None and field.ref.secret_name else None
        name = named or secret_name(stage, tenant.tenant_id, field.path)
        tag = TAGS.get(field.path.split(".", 1)[0], "psp")
        secrets.append(
            {
                "config_path": field.path,
                "secret_name": name,
                "tags": {"paybridge-use": tag},
                "required": field.required or field.ref is not None,
                "secret_string": f"plain text, not JSON: {field.description}",
                "create": (
                    f"aws secretsmanager create-secret --name {name} --tags Key=paybridge-use,Value={tag} "
                    "--secret-string file:///dev/stdin"
                ),
                "rotate": f"aws secretsmanager put-secret-value --secret-id {name} --secret-string file:///dev/stdin",
            }
        )
        if field.ref is not None:
            _set(config, field.path, {"secret_name": name})
    return {"tenant": tenant.tenant_id, "stage": stage, "secrets": secrets, "config": config}


def _set(item: dict[str, Any], path: str, value: Any) -> None:
    node = item
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
