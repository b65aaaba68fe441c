"""Reads `template.yaml` - the one description of the stack - for the local stack and the tests: functions, HTTP
routes, schedules, the table's keys and indexes, and the state machine with its substitutions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation's short-form intrinsics (`!Ref X` -> {"Ref": "X"})."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway form: /v1/{tenant}/invoices
    function: str


@dataclass(frozen=True)
class Schedule:
    function: str
    seconds: int


@dataclass(frozen=True)
class QueueSource:
    """An SQS event source mapping: the function, its queue's logical id, the batch size."""

    function: str
    queue: str
    batch_size: int
    #: ScalingConfig.MaximumConcurrency: how many batches Lambda's poller hands the function at once.
    max_concurrency: int = 2


@dataclass(frozen=True)
class EventRule:
    """An EventBridge rule of a custom bus: its pattern, and the queues (logical ids) it sends to."""

    name: str
    bus: str
    pattern: dict[str, Any]
    queues: tuple[str, ...]


@dataclass(frozen=True)
class FunctionDef:
    logical_id: str
    module: str  # importable module path: functions.invoices_api.app
    handler: str  # attribute: lambda_handler
    environment: dict[str, Any] = field(default_factory=dict)
    #: ReservedConcurrentExecutions, when the template sets it: at most this many invocations at once.
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class Template:
    raw: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.raw["Resources"])

    def functions(self) -> dict[str, FunctionDef]:
        result = {}
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            props = resource["Properties"]
            code_uri = props["CodeUri"].strip("/").replace("/", ".")
            module_name, handler = props["Handler"].rsplit(".", 1)
            env = props.get("Environment", {}).get("Variables", {})
            reserved = props.get("ReservedConcurrentExecutions")
            result[logical_id] = FunctionDef(
                logical_id, f"{code_uri}.{module_name}", handler, env, int(reserved) if reserved is not None else None
            )
        return result

    def memory_mb(self) -> dict[str, int]:
        """Each function's MemorySize (its own, else the Globals'; Lambda's default 128)."""
        default = int(self.raw.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
        return {
            logical_id: int(resource["Properties"].get("MemorySize", default))
            for logical_id, resource in self.resources.items()
            if resource["Type"] == "AWS::Serverless::Function"
        }

    def global_environment(self) -> dict[str, Any]:
        return dict(self.raw.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))

    def routes(self) -> list[Route]:
        routes = []
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            for event in resource["Properties"].get("Events", {}).values():
                if event["Type"] == "HttpApi":
                    props = event["Properties"]
                    routes.append(Route(props["Method"].upper(), props["Path"], logical_id))
        return routes

    def schedules(self) -> list[Schedule]:
        schedules = []
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            for event in resource["Properties"].get("Events", {}).values():
                if event["Type"] in ("Schedule", "ScheduleV2"):
                    expression = event["Properties"].get("Schedule") or event["Properties"]["ScheduleExpression"]
                    schedules.append(Schedule(logical_id, rate_seconds(expression)))
        return schedules

    def queues(self, stage: str) -> dict[str, dict[str, Any]]:
        """create_queue arguments per SQS queue of the template (names with `${Stage}` filled in). Redrive policies
        name their target by logical id under `deadLetterTarget`; the caller resolves it to an ARN."""
        queues = {}
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::SQS::Queue":
                continue
            props = dict(resource["Properties"])
            name = props.pop("QueueName")
            name = str(name["Fn::Sub"] if isinstance(name, dict) else name).replace("${Stage}", stage)
            attributes = {
                key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
                for key in ("FifoQueue", "ContentBasedDeduplication", "VisibilityTimeout", "MessageRetentionPeriod")
                if key in props
            }
            if "RedrivePolicy" in props:
                policy = props["RedrivePolicy"]
                attributes["deadLetterTarget"] = policy["deadLetterTargetArn"]["Fn::GetAtt"][0]
                attributes["maxReceiveCount"] = str(policy["maxReceiveCount"])
            queues[logical_id] = {"QueueName": name, "Attributes": attributes}
        return queues

    def queue_sources(self) -> list[QueueSource]:
        sources = []
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            for event in resource["Properties"].get("Events", {}).values():
                if event["Type"] == "SQS":
                    props = event["Properties"]
                    queue = props["Queue"]["Fn::GetAtt"][0]
                    scaling = props.get("ScalingConfig", {}).get("MaximumConcurrency", 2)  # Lambda's minimum is 2
                    sources.append(QueueSource(logical_id, queue, int(props.get("BatchSize", 10)), int(scaling)))
        return sources

    def event_buses(self, stage: str) -> dict[str, str]:
        """The custom EventBridge buses: logical id → name (`${Stage}` filled in)."""
        buses = {}
        for logical_id, resource in self.resources.items():
            if resource["Type"] == "AWS::Events::EventBus":
                name = resource["Properties"]["Name"]
                buses[logical_id] = str(name["Fn::Sub"] if isinstance(name, dict) else name).replace("${Stage}", stage)
        return buses

    def event_rules(self) -> list[EventRule]:
        """Rules on a custom bus of the template whose targets are its SQS queues."""
        rules = []
        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::Events::Rule":
                continue
            props = resource["Properties"]
            bus = props.get("EventBusName")
            if not isinstance(bus, dict) or "Ref" not in bus:
                continue  # the default bus (AWS service events): nothing local publishes there
            queues = tuple(
                target["Arn"]["Fn::GetAtt"][0]
                for target in props.get("Targets", [])
                if isinstance(target.get("Arn"), dict) and "Fn::GetAtt" in target["Arn"]
            )
            rules.append(EventRule(logical_id, bus["Ref"], dict(props["EventPattern"]), queues))
        return rules

    def table(self) -> dict[str, Any]:
        """create_table arguments for the table, from the template's own key schema and indexes (no drift)."""
        props = self.resources["Table"]["Properties"]
        return {
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "GlobalSecondaryIndexes": props.get("GlobalSecondaryIndexes", []),
            "BillingMode": props["BillingMode"],
        }

    def state_machine(self, function_arn: dict[str, str]) -> str:
        """The ASL definition with its DefinitionSubstitutions applied (`${X}` -> value)."""
        props = self.resources["PaymentLifecycleStateMachine"]["Properties"]
        definition = (ROOT / props["DefinitionUri"]).read_text(encoding="utf-8")
        values = {}
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                values[key] = function_arn[value["Fn::GetAtt"][0]]
            else:
                values[key] = str(value)
        result = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], definition)
        json.loads(result)  # fail here, not inside the engine, when a substitution is missing
        return result


def rate_seconds(expression: str) -> int:
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise ValueError(f"only rate() schedules run locally: {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


@lru_cache(maxsize=1)
def load_template(path: str = str(TEMPLATE)) -> Template:
    with open(path, encoding="utf-8") as handle:
        return Template(yaml.load(handle, Loader=_CfnLoader))  # noqa: S506 - SafeLoader subclass
