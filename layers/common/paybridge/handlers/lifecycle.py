"""Input models of the state machine's task functions (the execution's state document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskError(BaseModel):
    Error: str = ""
    Cause: str = ""


class LifecycleInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tenant_id: str
    invoice_id: str
    outcome: dict[str, Any] | None = None
    error: TaskError | None = None

    @property
    def last_event(self) -> str:
        return str((self.outcome or {}).get("event", ""))


class AwaitInput(LifecycleInput):
    task_token: str = Field(min_length=1)

    @property
    def version_seen(self) -> int:
        return int((self.outcome or {}).get("version", 0))
