"""What the local stack did, counted as AWS bills it: Lambda invocations and GB-seconds, DynamoDB read and write
request units (computed from the items' sizes, as DynamoDB does), SQS requests, HTTP API requests and Step Functions
state transitions (from the executions' history). `make cost` reads it (scripts/cost.py).

DynamoDB's rules, from its developer guide ("Read/write capacity mode", "Item sizes"):
- a write is 1 WRU per KB (rounded up) of the larger of the item before and after it; a failed conditional write
  still costs its units; a transactional write costs twice; every global secondary index the write changes costs
  its own write (a put, a delete, or both when the index key changed) of the projected item's size;
- a strongly consistent read is 1 RRU per 4 KB (a Query: of all the items it read, summed, then rounded up), an
  eventually consistent one half of that; a transactional read twice;
- an item's size is the sum of its attributes' names and values (strings and binary by their bytes, a number
  ~1 byte per two significant digits + 1, booleans and nulls 1, lists and maps 3 bytes + 1 per element + their
  elements).

Every call is attributed to the function invocation it ran in (a thread runs one invocation at a time), so the
scheduled functions' share can be told apart from a request's.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KB = 1024


def value_size(value: dict[str, Any]) -> int:
    """The size of one DynamoDB-JSON attribute value in bytes."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = str(inner).lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(base64.b64decode(inner)) if isinstance(inner, str) else len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in inner)
    if kind == "BS":
        return sum(value_size({"B": b}) for b in inner)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    return float(units) if consistent else units / 2


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    include: tuple[str, ...] = ()


@dataclass
class Meter:
    """Counters, filled while `enabled`. Read them with `snapshot()`; `reset()` starts again."""

    enabled: bool = False
    table_keys: tuple[str, ...] = ("pk", "sk")
    indexes: tuple[Index, ...] = ()
    memory_mb: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)
    invocations: Counter[str] = field(default_factory=Counter)
    gb_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    wru: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    rru: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    dynamodb_requests: Counter[str] = field(default_factory=Counter)
    sqs_requests: Counter[str] = field(default_factory=Counter)
    sqs_empty_receives: int = 0
    api_requests: Counter[str] = field(default_factory=Counter)
    stepfunctions_requests: Counter[str] = field(default_factory=Counter)
    scheduler_requests: Counter[str] = field(default_factory=Counter)

    # -- setup -------------------------------------------------------------------------------------------------------

    def configure(self, table: dict[str, Any], memory_mb: dict[str, int]) -> None:
        self.table_keys = tuple(k["AttributeName"] for k in table["KeySchema"])
        indexes = []
        for gsi in table.get("GlobalSecondaryIndexes", []):
            projection = gsi.get("Projection", {})
            indexes.append(
                Index(
                    gsi["IndexName"],
                    tuple(k["AttributeName"] for k in gsi["KeySchema"]),
                    projection.get("ProjectionType", "ALL"),
                    tuple(projection.get("NonKeyAttributes", [])),
                )
            )
        self.indexes = tuple(indexes)
        self.memory_mb = dict(memory_mb)

    def reset(self) -> None:
        with self._lock:
            for counter in (
                self.invocations,
                self.dynamodb_requests,
                self.sqs_requests,
                self.api_requests,
                self.stepfunctions_requests,
                self.scheduler_requests,
            ):
                counter.clear()
            self.gb_seconds.clear()
            self.wru.clear()
            self.rru.clear()
            self.sqs_empty_receives = 0

    # -- attribution -------------------------------------------------------------------------------------------------

    @property
    def function(self) -> str:
        return getattr(self._local, "function", None) or "(outside a function)"

    def invocation(self, function: str, run: Callable[[], Any]) -> Any:
        """Run one invocation, attributing what it calls to `function`; counts it and its billed GB-seconds."""
        if not self.enabled:
            return run()
        outer = getattr(self._local, "function", None)
        self._local.function = function
        started = time.perf_counter()
        try:
            return run()
        finally:
            billed_ms = math.ceil((time.perf_counter() - started) * 1000)  # Lambda bills by the millisecond
            self._local.function = outer
            with self._lock:
                self.invocations[function] += 1
                self.gb_seconds[function] += billed_ms / 1000 * self.memory_mb.get(function, 128) / 1024

    def api_request(self, route: str) -> None:
        if self.enabled:
            with self._lock:
                self.api_requests[route] += 1

    # -- moto services -----------------------------------------------------------------------------------------------

    def observe(self, service: str, handler: Any, call: Callable[[Any], Any]) -> Any:
        """Around one moto request (inside that service's lock, so the item before and after are this call's)."""
        if not self.enabled:
            return call(handler)
        action = handler._get_action()
        if service == "dynamodb":
            return self._dynamodb(action, handler, call)
        result = call(handler)
        with self._lock:
            if service == "sqs":
                self._sqs(action, result)
            elif service == "stepfunctions":
                self.stepfunctions_requests[action] += 1
            elif service == "scheduler":
                self.scheduler_requests[action] += 1
        return result

    def _sqs(self, action: str, result: Any) -> None:
        if action == "ReceiveMessage":
            try:
                received = json.loads(result[2]).get("Messages", [])
            except (ValueError, TypeError, IndexError):
                received = [None]
            if not received:
                # an empty receive: Lambda's event source pollers make these whether or not invoices flow (a
                # fixed cost per queue, long-polling), so they are not an invoice's
                self.sqs_empty_receives += 1
                return
        self.sqs_requests[action] += 1

    # -- DynamoDB ----------------------------------------------------------------------------------------------------

    def _dynamodb(self, action: str, handler: Any, call: Callable[[Any], Any]) -> Any:
        try:
            body = json.loads(handler.raw_body or b"{}")
        except ValueError:
            body = {}
        backend = handler.dynamodb_backend
        writes: list[tuple[str, dict[str, Any], dict[str, Any] | None, int]] = []  # table, key, new item?, factor
        if action == "PutItem":
            writes.append((body["TableName"], self._key_of(body["Item"]), body["Item"], 1))
        elif action in ("UpdateItem", "DeleteItem"):
            writes.append((body["TableName"], body["Key"], None, 1))
        elif action == "TransactWriteItems":
            for entry in body["TransactItems"]:
                (kind, spec), *_ = entry.items()
                item = spec.get("Item")
                key = spec.get("Key") or self._key_of(item or {})
                writes.append((spec["TableName"], key, item if kind == "Put" else None, 2))
        elif action == "BatchWriteItem":
            for table, requests in body["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        writes.append((table, self._key_of(item), item, 1))
                    else:
                        writes.append((table, request["DeleteRequest"]["Key"], None, 1))
        before = [self._current(backend, table, key) for table, key, _, _ in writes]
        result = call(handler)
        function = self.function
        units = 0.0
        for (table, key, intended, factor), old in zip(writes, before, strict=True):
            new = self._current(backend, table, key)
            size = max(item_size(old), item_size(new), item_size(intended) if new is None and old is None else 0)
            units += write_units(size) * factor
            units += self._index_writes(old, new)
        reads = self._read_units(action, body, result) if not writes else 0.0
        with self._lock:
            self.dynamodb_requests[action] += 1
            self.wru[function] += units
            self.rru[function] += reads
        return result

    def _key_of(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: item[k] for k in self.table_keys if k in item}

    def _current(self, backend: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            found = backend.get_item(table, key)
        except Exception:  # a missing table or a bad key: the call itself will say so
            return None
        if found is None:
            return None
        return {name: value.to_json() for name, value in found.attrs.items()}

    def _index_writes(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> int:
        units = 0
        for index in self.indexes:
            old_in = old is not None and all(k in old for k in index.keys)
            new_in = new is not None and all(k in new for k in index.keys)
            old_p = self._projected(index, old) if old_in else None
            new_p = self._projected(index, new) if new_in else None
            if old_p is not None and new_p is not None:
                same_key = all(old_p[k] == new_p[k] for k in index.keys)
                if same_key:
                    units += write_units(item_size(new_p)) if old_p != new_p else 0
                else:
                    units += write_units(item_size(old_p)) + write_units(item_size(new_p))
            elif old_p is not None:
                units += write_units(item_size(old_p))
            elif new_p is not None:
                units += write_units(item_size(new_p))
        return units

    def _projected(self, index: Index, item: dict[str, Any] | None) -> dict[str, Any] | None:
        if item is None:
            return None
        if index.projection == "ALL":
            return item
        keep = set(self.table_keys) | set(index.keys) | (set(index.include) if index.projection == "INCLUDE" else set())
        return {k: v for k, v in item.items() if k in keep}

    def _read_units(self, action: str, body: dict[str, Any], result: Any) -> float:
        try:
            answer = json.loads(result[2])
        except (ValueError, TypeError, IndexError):
            return 0.0
        consistent = bool(body.get("ConsistentRead"))
        if action == "GetItem":
            return read_units(item_size(answer.get("Item")), consistent)
        if action == "BatchGetItem":
            consistent_by_table = {t: bool(spec.get("ConsistentRead")) for t, spec in body["RequestItems"].items()}
            return sum(
                read_units(item_size(item), consistent_by_table.get(table, False))
                for table, items in answer.get("Responses", {}).items()
                for item in items
            )
        if action == "TransactGetItems":
            return sum(2 * read_units(item_size(r.get("Item")), True) for r in answer.get("Responses", []))
        if action in ("Query", "Scan"):
            items = answer.get("Items", [])
            size = sum(item_size(item) for item in items)
            count, scanned = answer.get("Count", len(items)), answer.get("ScannedCount", len(items))
            if scanned > count and count:  # a filter dropped items it had read: they are billed too
                size = math.ceil(size * scanned / count)
            return read_units(size, consistent)
        return 0.0

    # -- reading -----------------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "invocations": dict(self.invocations),
                "gb_seconds": dict(self.gb_seconds),
                "wru": dict(self.wru),
                "rru": dict(self.rru),
                "dynamodb_requests": dict(self.dynamodb_requests),
                "sqs_requests": dict(self.sqs_requests),
                "sqs_empty_receives": self.sqs_empty_receives,
                "api_requests": dict(self.api_requests),
                "stepfunctions_requests": dict(self.stepfunctions_requests),
                "scheduler_requests": dict(self.scheduler_requests),
            }


#: The process's meter (moto's services are process-wide too); off unless a script turns it on.
METER = Meter()


def billed_transitions(history: list[dict[str, Any]]) -> int:
    """State transitions Step Functions bills for one execution: every state entered, and every retry of a task
    (a retry is billed as a transition: "Step Functions counts a state transition each time a step of your workflow
    is executed … including retries")."""
    entered = sum(1 for e in history if e["type"].endswith("StateEntered"))
    scheduled_in_state = 0
    retries = 0
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            scheduled_in_state = 0
        elif kind in ("TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"):
            scheduled_in_state += 1
            if scheduled_in_state > 1:
                retries += 1
    return entered + retries
