"""AWS in-process on moto: the table and the state machine built from `template.yaml`, Step Functions executing the
real ASL, and its Lambda tasks dispatched to the in-process handlers by function name."""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack import moto_speedups
from devstack.meter import METER
from devstack.template import Template, load_template

REGION = "eu-central-1"
#: Invocations of one function at once when the template reserves none (Lambda's bound is the account's
#: concurrency, 1,000 by default; one process on a laptop runs out of threads long before).
DEFAULT_CONCURRENCY = 64
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


def _fifo_dedup_window(sqs_models: Any) -> None:
    """SQS drops a FIFO message whose deduplication id was sent in the last 5 minutes — even when the first one was
    received and deleted meanwhile. moto only compares with the messages still in the queue, so a repeat sent after
    the first was consumed would be delivered again; remember each id for the whole interval, as SQS does."""
    if getattr(sqs_models.Queue.add_message, "_paybridge_dedup", False):
        return
    original = sqs_models.Queue.add_message
    window = sqs_models.DEDUPLICATION_TIME_IN_SECONDS

    def add_message(queue: Any, message: Any) -> None:
        dedup = message.deduplication_id if queue.fifo_queue else None
        if dedup is None:
            return original(queue, message)
        seen: dict[str, float] = queue.__dict__.setdefault("_paybridge_dedup_seen", {})
        now = time.time()
        for key in [k for k, at in seen.items() if now - at >= window]:
            del seen[key]
        if dedup in seen:
            return None
        seen[dedup] = now
        return original(queue, message)

    add_message._paybridge_dedup = True  # type: ignore[attr-defined]
    sqs_models.Queue.add_message = add_message


def _one_request_at_a_time(response_class: Any, service: str) -> None:
    """Serialise a moto service's request handling with one lock (idempotent: patched once per process); the meter
    (`devstack.meter`, off unless a script turns it on) sees each request inside it."""
    if getattr(response_class.call_action, "_paybridge_locked", False):
        return
    original = response_class.call_action
    lock = threading.RLock()

    def call_action(handler: Any) -> Any:
        with lock:
            return METER.observe(service, handler, original)

    call_action._paybridge_locked = True  # type: ignore[attr-defined]
    response_class.call_action = call_action


#: Executions whose current (or next) Wait state the test clock ends now (`LocalAws.reach_deadline`).
_WAKE: dict[str, threading.Event] = {}
_WAKE_LOCK = threading.Lock()


def _wake_event(execution_arn: str) -> threading.Event:
    with _WAKE_LOCK:
        return _WAKE.setdefault(execution_arn, threading.Event())


def _wake(execution_arn: str) -> None:
    _wake_event(execution_arn).set()


def _wakeable_waits() -> None:
    """A Wait state of the real ASL waits its seconds, as on AWS — unless the test clock moved past them
    (`reach_deadline` on a deferred expiry): then it ends now. Idempotent."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    if getattr(WaitFunction._wait_interval, "_paybridge_wakeable", False):
        return

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        execution = env.states.context_object.context_object_data["Execution"]["Id"]
        wake, until = _wake_event(execution), time.monotonic() + wait_seconds
        while env.is_running() and time.monotonic() < until:
            if wake.wait(min(0.05, max(0.0, until - time.monotonic()))):
                wake.clear()
                return

    wait_interval._paybridge_wakeable = True  # type: ignore[attr-defined]
    WaitFunction._wait_interval = wait_interval  # type: ignore[method-assign]


def _reuse_execution_clients() -> None:
    """moto's Step Functions interpreter makes a new boto3 client for every Lambda task (and service integration)
    it runs (`boto_client_for`): 10-70 ms of CPU each, on the interpreter's thread, several per execution — under
    200 executions at once that alone kept the process busy for many seconds. Clients are made once per (region,
    service) instead (botocore clients are thread-safe; the options moto gives them do not vary). Idempotent."""
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = getattr(boto_client.boto_client_for, "__wrapped__", boto_client.boto_client_for)
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # moto's own ignores `state_credentials` (fixed test keys): one client per region and service does too
        with lock:
            if (region, service) not in clients:
                clients[(region, service)] = original(region, service)
            return clients[(region, service)]

    boto_client_for.__wrapped__ = original  # type: ignore[attr-defined]
    boto_client.boto_client_for = boto_client_for
    # the modules that imported the name hold their own reference
    for name in _BOTO_CLIENT_USERS:
        module = importlib.import_module(name)
        if getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


_TASKS = "moto.stepfunctions.parser.asl.component.state.exec"
#: moto's modules that call `boto_client_for` (grep of moto 5.x): Lambda tasks, service integrations, Map's S3 I/O.
_BOTO_CLIENT_USERS = (
    f"{_TASKS}.state_task.lambda_eval_utils",
    f"{_TASKS}.state_task.service.state_task_service_unsupported",
    f"{_TASKS}.state_task.service.state_task_service_glue",
    f"{_TASKS}.state_map.result_writer.resource_eval.resource_eval_s3",
    f"{_TASKS}.state_map.item_reader.eval.resource_eval_s3",
)


def _per_invocation_metrics() -> None:
    """In Lambda each execution environment has its own module state; here the invocations share one process, so
    the shared Metrics object's EMF provider (paybridge.observability) keeps what it collects per thread: a thread
    runs one invocation at a time, so each invocation adds to and flushes only its own metrics (one invocation's
    flush could otherwise iterate a set another is adding to). It is one provider, set before the handlers are
    imported: a handler's `log_metrics` decorator is bound to it at import, on whichever thread. Idempotent."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    from paybridge.observability import metrics

    shared = metrics.provider
    if getattr(shared, "_paybridge_per_thread", False):
        return
    defaults = {name: str(value) for name, value in shared.default_dimensions.items()}

    class LocalEmf(AmazonCloudWatchEMFProvider):
        _paybridge_per_thread = True
        metric_set = _PerThreadSlot("metric_set", per_instance=True, default=dict)
        metadata_set = _PerThreadSlot("metadata_set", per_instance=True, default=dict)
        dimension_sets = _PerThreadSlot("dimension_sets", per_instance=True, default=list)
        dimension_set = _PerThreadSlot("dimension_set", per_instance=True, default=lambda: dict(defaults))

        def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
            """With metrics disabled (`POWERTOOLS_METRICS_DISABLED`, the benchmarks) Powertools keeps an
            invocation's values, and at 100 values of one metric prints them anyway: a thread's next invocation
            starts empty here, as a new one does on Lambda."""
            super().flush_metrics(raise_on_empty_metrics)
            self.clear_metrics()

    metrics.provider = LocalEmf(
        namespace=shared.namespace,
        service=shared.service,
        default_dimensions=dict(shared.default_dimensions),
        function_name=getattr(shared, "function_name", None),
    )


class _PerThreadSlot:
    """A data descriptor holding one value per thread (and per instance, for an instance attribute)."""

    def __init__(self, name: str, per_instance: bool = False, default: Callable[[], Any] | None = None) -> None:
        self.name, self.per_instance, self.default = name, per_instance, default
        self._local = threading.local()

    def _store(self) -> dict[int | None, Any]:
        store: dict[int | None, Any] | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = {}
        return store

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        key = id(obj) if self.per_instance and obj is not None else None
        store = self._store()
        if key not in store:
            if self.default is None:
                raise AttributeError(self.name)
            store[key] = self.default()
        return store[key]

    def __set__(self, obj: Any, value: Any) -> None:
        self._store()[id(obj) if self.per_instance and obj is not None else None] = value


def _per_invocation_routers() -> None:
    """Powertools' HTTP resolver keeps the request it is resolving in class attributes (`BaseRouter.current_event`,
    `lambda_context`) and in the resolver's `context` dict: one per process, which is one per execution environment
    on Lambda. Invocations here share the process, one per thread at a time, so those become per thread (a data
    descriptor each, and a metaclass that routes the class-level assignments to it). Idempotent."""
    from abc import ABCMeta

    from aws_lambda_powertools.event_handler import api_gateway

    base = api_gateway.BaseRouter
    if isinstance(base.__dict__.get("current_event"), _PerThreadSlot):
        return

    class PerThreadRouterMeta(ABCMeta):
        def __setattr__(cls, name: str, value: Any) -> None:
            slot = type.__getattribute__(cls, "__dict__").get(name)
            if isinstance(slot, _PerThreadSlot):
                slot.__set__(None, value)
            else:
                super().__setattr__(name, value)

    for name in ("current_event", "lambda_context"):
        type.__setattr__(base, name, _PerThreadSlot(name))
    type.__setattr__(base, "context", _PerThreadSlot("context", per_instance=True, default=dict))
    base.__class__ = PerThreadRouterMeta  # type: ignore[method-assign,assignment]


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
        # Each function runs its invocations concurrently, at most its reserved concurrency at once (as Lambda);
        # the Powertools state they share is made per thread (`_per_invocation_metrics`, `_per_invocation_routers`).
        self._slots = {
            logical_id: threading.BoundedSemaphore(definition.reserved_concurrency or DEFAULT_CONCURRENCY)
            for logical_id, definition in self.functions.items()
        }
        self.busy: dict[str, int] = dict.fromkeys(self.functions, 0)
        self.peak: dict[str, int] = dict.fromkeys(self.functions, 0)
        self.state_machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STATE_MACHINE_NAME}"
        self.queue_urls: dict[str, str] = {}
        self.queue_arns: dict[str, str] = {}
        self._sqs: Any = None

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
        self._patch_sqs()
        self._patch_stepfunctions()
        moto_speedups.install_jsonpath_cache()  # EventBridge's target input: each JSONPath parsed once
        moto_speedups.install_method_names()  # a handler class's method names listed once, not per request
        _per_invocation_metrics()
        _per_invocation_routers()
        self._create_resources()
        moto_speedups.install_name_cache()  # after the resources: the moto modules the stack uses are loaded
        METER.configure(self.template.table(), self.template.memory_mb())
        return self

    def stop(self) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    def _create_resources(self) -> None:
        import boto3

        boto3.client("dynamodb").create_table(TableName=self.table_name, **self.template.table())
        self._create_queues()
        self._create_event_buses()
        arns = {logical_id: function_arn(logical_id) for logical_id in self.functions}
        boto3.client("stepfunctions").create_state_machine(
            name=STATE_MACHINE_NAME,
            definition=self.template.state_machine(arns),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/paybridge-local-states",
            type="STANDARD",
        )

    def _create_queues(self) -> None:
        """The template's SQS queues (dead-letter targets first), and the functions' environment variables that
        `!Ref` them (queue URLs)."""
        import boto3

        sqs = boto3.client("sqs")
        queues = self.template.queues("local")
        for logical_id, spec in sorted(queues.items(), key=lambda item: "deadLetterTarget" in item[1]["Attributes"]):
            attributes = dict(spec["Attributes"])
            target = attributes.pop("deadLetterTarget", None)
            max_receive = attributes.pop("maxReceiveCount", None)
            if target is not None:
                policy = {"deadLetterTargetArn": self.queue_arns[target], "maxReceiveCount": max_receive}
                attributes["RedrivePolicy"] = json.dumps(policy)
            url = sqs.create_queue(QueueName=spec["QueueName"], Attributes=attributes)["QueueUrl"]
            self.queue_urls[logical_id] = url
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.queue_arns[logical_id] = arn
        for name, value in self.template.global_environment().items():
            if isinstance(value, dict) and value.get("Ref") in self.queue_urls:
                os.environ[name] = self.queue_urls[value["Ref"]]

    #: A local-only rule sends every domain event here too, so the local stack can show what was published.
    TAP_QUEUE = "paybridge-local-event-tap"

    def _create_event_buses(self) -> None:
        """The template's custom EventBridge buses and their rules to its SQS queues (moto delivers PutEvents to
        them), a local tap of every event, and the `EVENT_BUS_NAME`-like variables that `!Ref` a bus."""
        import boto3

        events, sqs = boto3.client("events"), boto3.client("sqs")
        buses = self.template.event_buses("local")
        for name in buses.values():
            events.create_event_bus(Name=name)
        tap_url = sqs.create_queue(QueueName=self.TAP_QUEUE)["QueueUrl"]
        self.queue_urls["_tap"] = tap_url
        self.queue_arns["_tap"] = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for rule in self.template.event_rules():
            events.put_rule(Name=rule.name, EventBusName=buses[rule.bus], EventPattern=json.dumps(rule.pattern))
            events.put_targets(
                Rule=rule.name,
                EventBusName=buses[rule.bus],
                Targets=[{"Id": q, "Arn": self.queue_arns[q]} for q in rule.queues],
            )
        for name in buses.values():
            events.put_rule(Name="local-tap", EventBusName=name, EventPattern=json.dumps({"source": ["paybridge"]}))
            events.put_targets(
                Rule="local-tap", EventBusName=name, Targets=[{"Id": "tap", "Arn": self.queue_arns["_tap"]}]
            )
        for variable, value in self.template.global_environment().items():
            if isinstance(value, dict) and value.get("Ref") in buses:
                os.environ[variable] = buses[value["Ref"]]

    def drain_event_tap(self) -> list[dict[str, Any]]:
        """Every domain event published since the last call (as EventBridge delivered it), oldest first."""
        import boto3

        sqs = boto3.client("sqs")
        url = self.queue_urls["_tap"]
        drained: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return drained
            drained += [json.loads(m["Body"]) for m in messages]
            entries: list[Any] = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)

    def poll_queue(self, function: str, queue: str, batch_size: int) -> int:
        """One turn of an SQS event source mapping (what Lambda's poller does): receive a batch, invoke the function
        with it, delete what it did not report as failed (`ReportBatchItemFailures`). Returns the batch's size."""
        sqs = self._sqs_client()
        url = self.queue_urls[queue]
        received = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not received:
            return 0
        event = {"Records": [self._sqs_record(dict(m), queue) for m in received]}
        try:
            answer = self.invoke(function, event) or {}
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        except Exception:  # the whole batch comes back after its visibility timeout, as on AWS
            log.exception("%s failed on a batch of %s", function, len(received))
            return len(received)
        done = [m for m in received if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        return len(received)

    @staticmethod
    def wake_pollers() -> None:
        """End every poller's wait now (the stack is stopping)."""
        moto_speedups.QUEUE_SIGNALS.wake_all()

    def queue_changes(self, queue: str) -> int:
        """How many times `queue` (a template logical id) changed so far; read it before a poll."""
        return moto_speedups.QUEUE_SIGNALS.changes(self._queue_name(queue))

    def wait_for_queue(self, queue: str, seen: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds for `queue` to change after `seen` (a message sent or made visible
        again, a FIFO group freed): what a long poll waits for. True when it did."""
        return moto_speedups.QUEUE_SIGNALS.wait(self._queue_name(queue), seen, timeout)

    def _queue_name(self, queue: str) -> str:
        return self.queue_urls[queue].rsplit("/", 1)[-1]

    def _sqs_client(self) -> Any:
        """One SQS client for every poller (botocore clients are thread-safe): making one costs 10-70 ms of CPU, and
        the pollers turn many times a second, so a client per turn kept a core busy doing nothing else."""
        if self._sqs is None:
            import boto3

            with self._lock:
                if self._sqs is None:
                    self._sqs = boto3.client("sqs")
        return self._sqs

    def _sqs_record(self, message: dict[str, Any], queue: str) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": None,
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": value.get("DataType", "String"),
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arns[queue],
            "awsRegion": REGION,
        }

    @staticmethod
    def _patch_sqs() -> None:
        """Like DynamoDB below: each SQS request atomic (the local poller and the functions call it from threads).
        And a fast clock for moto's SQS: it asks the time for every message on every call (through naive-datetime
        arithmetic, ~10 µs each), which made a queue of 10,000 messages cost seconds per receive."""
        import time as _time

        import moto.sqs.models as sqs_models
        from moto.sqs.responses import SQSResponse

        slow_millis, slow_seconds = sqs_models.unix_time_millis, sqs_models.unix_time

        def unix_time_millis(dt: Any = None) -> float:
            return _time.time() * 1000.0 if dt is None else float(slow_millis(dt))

        def unix_time(dt: Any = None) -> float:
            return _time.time() if dt is None else float(slow_seconds(dt))

        sqs_models.unix_time_millis = unix_time_millis
        sqs_models.unix_time = unix_time
        _one_request_at_a_time(SQSResponse, "sqs")
        _fifo_dedup_window(sqs_models)
        moto_speedups.install_queue_signals()  # idle pollers wait for their queue to change
        moto_speedups.install_sqs_scans()  # a queue's messages counted in one pass, not six times per send

    @staticmethod
    def _patch_dynamodb() -> None:
        """DynamoDB executes each request atomically; moto's in-memory backend is not thread-safe (a transaction
        deep-copies tables another thread is writing). One lock per request restores DynamoDB's atomicity, so
        concurrency tests exercise our conditional writes, not moto's dictionaries."""
        from moto.dynamodb.responses import DynamoHandler

        from devstack import moto_transactions

        _one_request_at_a_time(DynamoHandler, "dynamodb")
        moto_transactions.install()  # transactions back up the items they touch, not the whole table
        moto_speedups.install_query()  # a query does not sort the whole table first
        moto_speedups.install_attribute_values()  # an item's attributes serialised without the shape walk
        moto_speedups.install_update_expression_cache()  # each UpdateExpression parsed once, not twice per update
        moto_speedups.install_traverser_maps()  # the update validators build their processing maps once
        moto_speedups.install_simple_updates()  # top-level SET/REMOVE applied without the ten tree walks

    @staticmethod
    def _patch_stepfunctions() -> None:
        """Step Functions API calls one at a time (moto's backend keeps executions in plain dicts; invocations now
        call it from many threads). Executions themselves run in moto's own threads, outside this lock: a call only
        starts, signals or reads one, so nothing waits inside it."""
        from moto.stepfunctions.responses import StepFunctionResponse

        _one_request_at_a_time(StepFunctionResponse, "stepfunctions")
        _wakeable_waits()
        _reuse_execution_clients()

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
        """Run one invocation on the calling thread, concurrently with the function's others, at most its reserved
        concurrency at once (a caller over it waits, as Lambda's queue for asynchronous and event-source calls
        does). Each DynamoDB, SQS and Step Functions request stays atomic (one lock per moto service)."""
        handler = self.handler(logical_id)
        context = LambdaContext(function_name=logical_id, aws_request_id=str(uuid.uuid4()))
        with self._slots[logical_id]:
            with self._lock:
                self.busy[logical_id] += 1
                self.peak[logical_id] = max(self.peak[logical_id], self.busy[logical_id])
            try:
                return METER.invocation(logical_id, lambda: handler(event, context))
            finally:
                with self._lock:
                    self.busy[logical_id] -= 1

    # -- inspection (tests, demo) ------------------------------------------------------------------------------------

    def execution_arn(self, name: str) -> str:
        return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{STATE_MACHINE_NAME}:{name}"

    def execution(self, name: str) -> dict[str, Any]:
        import boto3

        return dict(boto3.client("stepfunctions").describe_execution(executionArn=self.execution_arn(name)))

    def history(self, name: str) -> list[dict[str, Any]]:
        import boto3

        client = boto3.client("stepfunctions")
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": self.execution_arn(name), "maxResults": 1000}
        while True:
            page = client.get_execution_history(**kwargs)
            events.extend(dict(e) for e in page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def reach_deadline(self, tenant_id: str, invoice_id: str) -> bool:
        """Move the clock to the invoice's deadline: what the deadline sweep does then, now — start the invoice's
        expiry; when it is already running (deferred, waiting to ask the provider again), its wait ends now. False
        when nothing was waiting (the invoice is closed or paid, or its expiry is over)."""
        import boto3

        from paybridge.app.deadlines import expiry_name
        from paybridge.storage.dynamodb import DynamoInvoiceRepository
        from paybridge.wiring import get_deadlines

        repo, deadline = DynamoInvoiceRepository(self.table_name), time.monotonic() + 10
        invoice = repo.get(tenant_id, invoice_id)
        # its lifecycle may still be creating the payment
        while (invoice is None or (invoice.is_open and invoice.payment_id is None)) and time.monotonic() < deadline:
            time.sleep(0.05)
            invoice = repo.get(tenant_id, invoice_id)
        if invoice is None or not invoice.is_open or invoice.closed_as is not None:
            return False
        arn = self.execution_arn(expiry_name(invoice))
        client = boto3.client("stepfunctions")
        try:
            status = client.describe_execution(executionArn=arn)["status"]
        except client.exceptions.ExecutionDoesNotExist:
            return get_deadlines().expire(invoice)
        if status != "RUNNING":
            return False
        _wake(arn)
        return True

    def entered_states(self, name: str) -> list[str]:
        """The states an execution entered, in order (`name`: the invoice id, or `<invoice id>-expiry`)."""
        return [e["stateEnteredEventDetails"]["name"] for e in self.history(name) if "stateEnteredEventDetails" in e]
