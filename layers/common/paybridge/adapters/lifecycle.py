"""The lifecycle engine: AWS Step Functions (standard workflow). An execution runs only while there is work: creating
the payment (one per invoice attempt, named by the invoice id), and expiring it at its deadline (named
`<execution>-expiry`). Between the two the invoice waits in DynamoDB, not in an open execution (see README)."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


class LifecycleEngine(Protocol):
    def start(self, tenant_id: str, invoice_id: str, name: str | None = None) -> None:
        """Start the invoice's lifecycle (named `name`, by default the invoice id: a reissued link's attempt has its
        own); starting it again is a no-op."""
        ...

    def expire(self, tenant_id: str, invoice_id: str, name: str) -> bool:
        """Start the expiry of an invoice whose deadline is reached (named `name`: once per attempt). False when it
        was started before."""
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

    def expire(self, tenant_id: str, invoice_id: str, name: str) -> bool:
        document = {"tenant_id": tenant_id, "invoice_id": invoice_id, "expiry_attempt": 0}
        try:
            self.client.start_execution(stateMachineArn=self._arn, name=name[:80], input=json.dumps(document))
        except self.client.exceptions.ExecutionAlreadyExists:
            return False
        return True
