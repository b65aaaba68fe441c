"""The lifecycle engine: AWS Step Functions (standard workflow), one execution per invoice named by its id."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


class LifecycleEngine(Protocol):
    def start(self, tenant_id: str, invoice_id: str, name: str | None = None) -> None:
        """Start the invoice's lifecycle (named `name`, by default the invoice id: a reissued link's attempt has its
        own); starting it again is a no-op."""
        ...

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        """Hand the waiting execution its outcome; False when the wait is already over (token used or timed out)."""
        ...

    def publish(self, document: dict[str, Any], name: str) -> None:
        """Publish a change of an invoice whose lifecycle is over (a short execution: deal sync only). `name` makes
        it idempotent: the same change published twice runs once."""
        ...


class StepFunctionsLifecycle:
    def __init__(self, state_machine_arn: str, client: SFNClient | None = None):
        self._arn = state_machine_arn
        self._client = client

    @property
    def client(self) -> SFNClient:
        if self._client is None:
            import boto3  # lazy: keeps cold starts small

            self._client = boto3.client("stepfunctions")
        return self._client

    def start(self, tenant_id: str, invoice_id: str, name: str | None = None) -> None:
        # The same invoice issued again: its lifecycle is already running (or done).
        with contextlib.suppress(self.client.exceptions.ExecutionAlreadyExists):
            self.client.start_execution(
                stateMachineArn=self._arn,
                name=name or invoice_id,
                input=json.dumps({"tenant_id": tenant_id, "invoice_id": invoice_id}),
            )

    def publish(self, document: dict[str, Any], name: str) -> None:
        with contextlib.suppress(self.client.exceptions.ExecutionAlreadyExists):
            self.client.start_execution(stateMachineArn=self._arn, name=name[:80], input=json.dumps(document))

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        errors = (
            self.client.exceptions.TaskTimedOut,
            self.client.exceptions.InvalidToken,
            self.client.exceptions.TaskDoesNotExist,
        )
        try:
            self.client.send_task_success(taskToken=task_token, output=json.dumps(output))
        except errors:
            return False
        return True
