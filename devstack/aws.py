"""AWS in-process on moto: the table and the state machine built from `template.yaml`, Step Functions executing the
real ASL, and its Lambda tasks dispatched to the in-process handlers by function name."""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.template import Template, load_template

REGION = "eu-central-1"
ACCOUNT = "123456789012"
STATE_MACHINE_NAME = "paybridge-local-payment-lifecycle"

log = logging.getLogger("devstack.aws")


@dataclass
class LambdaContext:
    """What Powertools reads from a Lambda context."""

    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        return function_arn(self.function_name)

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def function_arn(logical_id: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"


class LocalAws:
    """Starts moto, creates the stack's resources, and runs handlers in this process."""

    def __init__(self, template: Template | None = None, table_name: str = "paybridge-local"):
        self.template = template or load_template()
        self.table_name = table_name
        self.functions = self.template.functions()
        self.invocations: list[tuple[str, float]] = []
        self._mock: Any = None
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self._lock = threading.Lock()
        self._invocation_lock = threading.RLock()
        self.state_machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STATE_MACHINE_NAME}"

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    def start(self) -> LocalAws:
        os.environ.update(
            {
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "TABLE_NAME": self.table_name,
                "STATE_MACHINE_ARN": self.state_machine_arn,
                "STAGE": "local",
                "POWERTOOLS_SERVICE_NAME": "paybridge",
                "POWERTOOLS_METRICS_NAMESPACE": "PayBridge",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_DEV": os.environ.get("POWERTOOLS_DEV", "false"),
            }
        )
        from moto import mock_aws

        self._mock = mock_aws(
            config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
        )
        self._mock.start()
        self._patch_lambda()
        self._patch_dynamodb()
        self._create_resources()
        return self

    def stop(self) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    def _create_resources(self) -> None:
        import boto3

        boto3.client("dynamodb").create_table(TableName=self.table_name, **self.template.table())
        arns = {logical_id: function_arn(logical_id) for logical_id in self.functions}
        boto3.client("stepfunctions").create_state_machine(
            name=STATE_MACHINE_NAME,
            definition=self.template.state_machine(arns),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/paybridge-local-states",
            type="STANDARD",
        )

    @staticmethod
    def _patch_dynamodb() -> None:
        """DynamoDB executes each request atomically; moto's in-memory backend is not thread-safe (a transaction
        deep-copies tables another thread is writing). One lock per request restores DynamoDB's atomicity, so
        concurrency tests exercise our conditional writes, not moto's dictionaries."""
        from moto.dynamodb.responses import DynamoHandler

        if getattr(DynamoHandler.call_action, "_paybridge_locked", False):
            return
        original = DynamoHandler.call_action
        lock = threading.RLock()

        def call_action(handler: Any) -> Any:
            with lock:
                return original(handler)

        call_action._paybridge_locked = True  # type: ignore[attr-defined]
        DynamoHandler.call_action = call_action  # type: ignore[method-assign]

    def _patch_lambda(self) -> None:
        from moto.awslambda_simple.models import LambdaSimpleBackend

        stack = self

        def invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> bytes:
            name = function_name.rsplit(":", 1)[-1]
            event = json.loads(body) if body else {}
            try:
                result = stack.invoke(name, event)
            except Exception as exc:  # the Lambda runtime's view of an unhandled error
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(
                    {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "stackTrace": traceback.format_exception(exc)[-3:],
                    }
                ).encode()
            return json.dumps(result).encode()

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]

    # -- handlers ----------------------------------------------------------------------------------------------------

    def handler(self, logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
        with self._lock:
            if logical_id not in self._handlers:
                definition = self.functions[logical_id]
                module = importlib.import_module(definition.module)
                self._handlers[logical_id] = getattr(module, definition.handler)
            return self._handlers[logical_id]

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Run one invocation. Like a single Lambda execution environment, one invocation runs at a time: the
        handlers' module-level Powertools objects (logger keys, metric sets) are not meant to be shared between
        threads. Concurrency against DynamoDB is tested on the services directly (tests/integration)."""
        handler = self.handler(logical_id)
        context = LambdaContext(function_name=logical_id, aws_request_id=str(uuid.uuid4()))
        with self._invocation_lock:
            return handler(event, context)

    # -- inspection (tests, demo) ------------------------------------------------------------------------------------

    def execution_arn(self, invoice_id: str) -> str:
        return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{STATE_MACHINE_NAME}:{invoice_id}"

    def execution(self, invoice_id: str) -> dict[str, Any]:
        import boto3

        return dict(boto3.client("stepfunctions").describe_execution(executionArn=self.execution_arn(invoice_id)))

    def history(self, invoice_id: str) -> list[dict[str, Any]]:
        import boto3

        client = boto3.client("stepfunctions")
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": self.execution_arn(invoice_id), "maxResults": 1000}
        while True:
            page = client.get_execution_history(**kwargs)
            events.extend(dict(e) for e in page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def entered_states(self, invoice_id: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"] for e in self.history(invoice_id) if "stateEnteredEventDetails" in e
        ]
