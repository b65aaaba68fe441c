"""Where a stage's tenants live: the local tenants file (`--stage local`, what the local stack reads) or a deployed
stage's table (`paybridge-<stage>`, template.yaml). Both are read and written as the tenant's JSON; every write is
validated first and conditional on what was read, so a concurrent change is refused rather than lost."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from paybridge.tenants import TenantConfig, validate_tenant

LOCAL = "local"
DEFAULT_LOCAL_FILE = Path(__file__).resolve().parents[2] / "config" / "tenants.local.json"
#: What `${PAYBRIDGE_LOCAL_URL}` means when a local file is checked outside the running stack.
LOCAL_URL = f"http://127.0.0.1:{os.environ.get('PAYBRIDGE_PORT', '3000')}"


class CliError(Exception):
    """Bad input or a refused change: the message is for the person at the terminal; nothing was written."""


class Conflict(CliError):
    pass


def resolve_placeholders(item: Any) -> Any:
    """`${NAME}` in a local file → the environment's NAME (`PAYBRIDGE_LOCAL_URL` defaults to the local stack's)."""
    text = json.dumps(item)
    env = {"PAYBRIDGE_LOCAL_URL": os.environ.get("PAYBRIDGE_LOCAL_URL", LOCAL_URL), **os.environ}
    for name, value in env.items():
        text = text.replace("${" + name + "}", value)
    return json.loads(text)


def parse(item: dict[str, Any], where: str, local: bool) -> TenantConfig:
    tenant, problems = validate_tenant(resolve_placeholders(item) if local else item, where)
    if tenant is None:
        raise CliError("\n".join(problems))
    return tenant


class TenantStore(Protocol):
    stage: str

    def ids(self) -> list[str]: ...

    def read(self, tenant_id: str) -> dict[str, Any] | None:
        """The tenant's JSON as stored (None: no such tenant)."""
        ...

    def write(self, item: dict[str, Any], expected: dict[str, Any] | None) -> None:
        """Store the (validated) item; with `expected`, only if the stored one is still that (`Conflict`)."""
        ...


class LocalFileStore:
    """The local tenants file: items are kept as written (placeholders like `${PAYBRIDGE_LOCAL_URL}` included); a
    write replaces the file atomically. The running local stack reads a changed file at its next request."""

    stage = LOCAL

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or os.environ.get("PAYBRIDGE_TENANTS") or DEFAULT_LOCAL_FILE)

    def _load(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"{self.path}: {exc}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("tenants"), list):
            raise CliError(f"{self.path}: expected an object with a 'tenants' list")
        return raw

    def ids(self) -> list[str]:
        return [str(t.get("tenant_id")) for t in self._load()["tenants"] if isinstance(t, dict)]

    def read(self, tenant_id: str) -> dict[str, Any] | None:
        found = [t for t in self._load()["tenants"] if isinstance(t, dict) and t.get("tenant_id") == tenant_id]
        return found[0] if found else None

    def write(self, item: dict[str, Any], expected: dict[str, Any] | None) -> None:
        raw = self._load()
        tenants: list[Any] = raw["tenants"]
        index = next((i for i, t in enumerate(tenants) if t.get("tenant_id") == item["tenant_id"]), None)
        current = tenants[index] if index is not None else None
        if expected is not None and current != expected:
            raise Conflict(f"{self.path}: tenant {item['tenant_id']} changed meanwhile; run the command again")
        if index is None:
            tenants.append(item)
        else:
            tenants[index] = item
        text = json.dumps(raw, ensure_ascii=False, indent=2) + "\n"
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, self.path)


class StageStore:
    """A deployed stage's tenant items (`pk=TENANT#<id>`, `sk=CONFIG`) through `storage.tenants`."""

    def __init__(self, stage: str, table: str | None = None, client: Any = None) -> None:
        from paybridge.storage.tenants import DynamoTenantDirectory

        self.stage = stage
        self.table = table or f"paybridge-{stage}"
        self._directory = DynamoTenantDirectory(self.table, client)
        self._seen: dict[str, str] = {}  # tenant → its config as read: a change is written only over that

    def _call(self, what: str, action: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return action()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise Conflict(f"{self.table}: the tenant changed meanwhile; run the command again") from None
            if code == "ResourceNotFoundException":
                raise CliError(
                    f"no table {self.table}: is stage {self.stage!r} deployed (make deploy STAGE=…)?"
                ) from None
            raise CliError(f"{self.table}: {what}: {exc}") from None
        except BotoCoreError as exc:
            raise CliError(f"{self.table}: {what}: {exc}") from None

    def ids(self) -> list[str]:
        return list(self._call("list", self._directory.tenant_ids))

    def unindexed_ids(self) -> list[str]:
        return list(self._call("scan", self._directory.unindexed_ids))

    def read(self, tenant_id: str) -> dict[str, Any] | None:
        stored = self._call("read", lambda: self._directory.config_json(tenant_id))
        if stored is None:
            return None
        self._seen[tenant_id] = stored
        return dict(json.loads(stored))

    def write(self, item: dict[str, Any], expected: dict[str, Any] | None) -> None:
        tenant = parse(item, "tenant", local=False)
        old = self._seen.get(tenant.tenant_id) if expected is not None else None
        if expected is not None and old is None:
            raise CliError(f"tenant {tenant.tenant_id}: read it before changing it")  # pragma: no cover - a bug
        self._call("write", lambda: self._directory.put(tenant, if_config=old))


def open_store(stage: str, file: str | None = None, table: str | None = None) -> TenantStore:
    return LocalFileStore(file) if stage == LOCAL else StageStore(stage, table)
