"""`paybridge tenants check`: everything a stage needs of a tenants file, each problem naming its field path.

The tenant model's own validation comes first (every field, the settings of the chosen PSP, CRM, bank source and
senders from their adapter modules, link lifetimes within the provider's limits — `PspSettingsBase`), then what a
deploy needs beyond a valid model:
- a real CRM's stage map names every state itself (`CrmSettingsBase.needs_stage_names`: the defaults NEW, PAID… are
  only the sandbox CRM's);
- a deployed stage: every secret by name (`secret_name`, under `paybridge/<stage>/`, which is all the functions may
  read — template.yaml), no inline `value`, no `${…}` placeholder left, no local URL;
- no tenant id twice."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from paybridge.adapters.settings import secret_fields
from paybridge.tenants import StageMapping, TenantConfig, validate_tenant
from scripts.cli.stores import LOCAL, CliError, resolve_placeholders

_LOCAL_URL = re.compile(r"^https?://(127\.0\.0\.1|localhost|0\.0\.0\.0)(:\d+)?(/|$)")
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
#: The stage map's states a tenant must name (the optional ones default to another state's stage).
REQUIRED_STAGES = tuple(name for name, info in StageMapping.model_fields.items() if info.default is not None)


def load_file(path: str) -> list[Any]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"{path}: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tenants"), list):
        raise CliError(f"{path}: expected an object with a 'tenants' list")
    return list(raw["tenants"])


def check_items(items: list[Any], stage: str) -> tuple[list[TenantConfig], list[str]]:
    """The valid tenants, and every problem of every item (not only the first)."""
    tenants: list[TenantConfig] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"tenants[{index}]"
        found = problems_of(item, where, stage)
        if isinstance(item, dict) and item.get("tenant_id") in seen:
            found.append(f"{where}.tenant_id: {item['tenant_id']!r} is defined twice")
        if isinstance(item, dict) and isinstance(item.get("tenant_id"), str):
            seen.add(item["tenant_id"])
        if found:
            problems += found
        else:
            tenant, _ = validate_tenant(resolve_placeholders(item) if stage == LOCAL else item, where)
            assert tenant is not None
            tenants.append(tenant)
    return tenants, problems


def problems_of(item: Any, where: str, stage: str) -> list[str]:
    problems: list[str] = []
    if stage != LOCAL:
        problems += [f"{where}.{path}: {text}" for path, text in _deployed_problems(item, stage)]
    tenant, invalid = validate_tenant(resolve_placeholders(item) if stage == LOCAL else item, where)
    if tenant is None:
        return problems + invalid
    if type(tenant.crm).needs_stage_names:
        given = item.get("stages") if isinstance(item.get("stages"), dict) else {}
        for state in REQUIRED_STAGES:
            if state not in given:
                problems.append(
                    f"{where}.stages.{state}: not set — a {tenant.crm.kind} tenant names the stage of every state "
                    f"(the default {getattr(StageMapping(), state)!r} is only the sandbox CRM's)"
                )
    if stage != LOCAL:
        for field in secret_fields(tenant):
            ref = field.ref
            if ref is not None and ref.value is not None:
                problems.append(
                    f"{where}.{field.path}: an inline secret; a deployed stage reads it from Secrets Manager — "
                    f'{{"secret_name": "{secret_name(stage, tenant.tenant_id, field.path)}"}} '
                    f"(paybridge secrets template {tenant.tenant_id})"
                )
            elif ref is not None and not str(ref.secret_name).startswith(f"paybridge/{stage}/"):
                problems.append(
                    f"{where}.{field.path}: secret {ref.secret_name!r} is outside paybridge/{stage}/, the only "
                    "secrets the functions may read"
                )
    return problems


def _deployed_problems(item: Any, stage: str, path: str = "") -> list[tuple[str, str]]:
    """Local leftovers anywhere in the item: `${…}` placeholders and URLs of this machine."""
    found: list[tuple[str, str]] = []
    if isinstance(item, dict):
        for key, value in item.items():
            found += _deployed_problems(value, stage, f"{path}.{key}" if path else str(key))
    elif isinstance(item, list):
        for index, value in enumerate(item):
            found += _deployed_problems(value, stage, f"{path}[{index}]")
    elif isinstance(item, str):
        if _PLACEHOLDER.search(item):
            found.append((path, f"{item!r} has a placeholder, which only the local stack fills in"))
        elif _LOCAL_URL.match(item):
            found.append((path, f"{item!r} is a URL of this machine, not reachable from stage {stage!r}"))
    return found


def secret_name(stage: str, tenant_id: str, path: str) -> str:
    """Where a tenant's secret is kept: `paybridge/<stage>/<tenant>/<field path>` (`psp/secret_key`)."""
    return f"paybridge/{stage}/{tenant_id}/{path.replace('.', '/')}"


def secret_problems(tenants: list[TenantConfig], stage: str, client: Any = None) -> list[str]:
    """`--verify-secrets`: each named secret exists in Secrets Manager and carries the `paybridge-use` tag the
    functions' policies ask for (template.yaml); only the secrets' metadata is read, never a value."""
    from botocore.exceptions import BotoCoreError, ClientError

    from scripts.cli.secrets_template import TAGS

    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    problems: list[str] = []
    for index, tenant in enumerate(tenants):
        for field in secret_fields(tenant):
            if field.ref is None or field.ref.secret_name is None:
                continue
            where, name = f"tenants[{index}].{field.path}", field.ref.secret_name
            tag = TAGS.get(field.path.split(".", 1)[0], "psp")
            try:
                described = client.describe_secret(SecretId=name)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ResourceNotFoundException":
                    problems.append(f"{where}: no secret {name!r} (paybridge secrets template {tenant.tenant_id})")
                else:
                    problems.append(f"{where}: secret {name!r}: {code}")
                continue
            except BotoCoreError as exc:
                raise CliError(f"Secrets Manager: {exc}") from None
            tags = {t.get("Key"): t.get("Value") for t in described.get("Tags", [])}
            if tags.get("paybridge-use") != tag:  # the policies compare the tag's value exactly
                problems.append(
                    f"{where}: secret {name!r} is not tagged paybridge-use={tag}, so the functions may not read it"
                )
    return problems
