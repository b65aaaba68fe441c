"""Three places where moto (5.2) spends CPU the service it emulates does not, made cheap without changing an answer.
Each is installed once per process by `LocalAws.start` (idempotent), found by profiling `make bench-latency`
(py-spy, 60 payments at once: together ~35% of the samples, ~50% of the busy ones).

- `Table.query` builds its candidates from `Table.all_items()`, which sorts every item of the table (DynamoType
  comparisons) before the query filters them: O(n log n) in the table for each query, even for one partition. The
  query sorts its candidates itself afterwards — by the range key within a partition, by the index keys and the
  table keys for an index — a total order, so the input's order never shows. Here the query reads the partition
  (a table query) or the items unsorted (an index query); everything else is moto's own code.
- EventBridge's target input (`EventTemplateParser.parse`) builds a new JSONPath parser — ply's lexer and LALR
  tables — for every path of every target of every event; the parsed paths are cached (`jsonpath_ng.ext.parse`
  is pure).
- Nothing tells a poller that a queue has something for it: the local event-source pollers polled on a timer.
  `QUEUE_SIGNALS` counts each queue's changes (a message added or made visible again, a FIFO queue's message
  deleted: its group is free), so that an idle poller sleeps until its queue changes (Lambda's pollers long-poll)
  instead of asking again and again.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import defaultdict
from typing import Any

_QUERYING = threading.local()
_ALL = object()  # an index query: every item, unsorted


def install_query() -> None:
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "_paybridge_unsorted", False):
        return
    original_query, original_all_items = Table.query, Table.all_items

    def all_items(self: Any) -> Any:
        scope = getattr(_QUERYING, "scope", None)
        if scope is None:  # a scan, an export...: moto's sorted list
            return original_all_items(self)
        if scope is _ALL:
            if self.range_key_attr:
                return [item for partition in self.items.values() for item in partition.values()]
            return list(self.items.values())
        partition = self.items.get(scope)
        if partition is None:
            return []
        return list(partition.values()) if self.range_key_attr else [partition]

    signature = inspect.signature(original_query)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs).arguments
        hash_key = bound.get("hash_key")
        outer = getattr(_QUERYING, "scope", None)
        _QUERYING.scope = _ALL if bound.get("index_name") or hash_key is None else hash_key
        try:
            return original_query(self, *args, **kwargs)
        finally:
            _QUERYING.scope = outer

    all_items.__wrapped__ = original_all_items  # type: ignore[attr-defined]
    query.__wrapped__ = original_query  # type: ignore[attr-defined]
    query._paybridge_unsorted = True  # type: ignore[attr-defined]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]


def install_jsonpath_cache() -> None:
    import jsonpath_ng.ext

    if getattr(jsonpath_ng.ext.parse, "_paybridge_cached", False):
        return
    original = jsonpath_ng.ext.parse

    @functools.lru_cache(maxsize=512)
    def parse_cached(path: str) -> Any:
        return original(path)

    def parse(path: str, debug: bool | None = None) -> Any:
        return parse_cached(path) if not debug else original(path, debug)

    parse._paybridge_cached = True  # type: ignore[attr-defined]
    jsonpath_ng.ext.parse = parse


class QueueSignals:
    """A change counter per queue name, and a wait until it moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: defaultdict[str, int] = defaultdict(int)
        self._conditions: dict[str, threading.Condition] = {}

    def _condition(self, queue: str) -> threading.Condition:
        with self._lock:
            if queue not in self._conditions:
                self._conditions[queue] = threading.Condition()
            return self._conditions[queue]

    def changes(self, queue: str) -> int:
        return self._changes[queue]

    def changed(self, queue: str) -> None:
        condition = self._condition(queue)
        with condition:
            self._changes[queue] += 1
            condition.notify()  # one poller per change: the others would find nothing

    def wait(self, queue: str, seen: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a change after `seen` (`changes` read before the poll that found
        nothing, so a change in between is not missed). True when there was one."""
        condition = self._condition(queue)
        with condition:
            return condition.wait_for(lambda: self._changes[queue] != seen, timeout)

    def wake_all(self) -> None:
        with self._lock:
            conditions = list(self._conditions.items())
        for queue, condition in conditions:
            with condition:
                self._changes[queue] += 1
                condition.notify_all()


QUEUE_SIGNALS = QueueSignals()


def install_queue_signals() -> None:
    import moto.sqs.models as sqs_models

    queue_class, backend = sqs_models.Queue, sqs_models.SQSBackend
    if getattr(queue_class.add_message, "_paybridge_signals", False):
        return
    add_message, delete_message = queue_class.add_message, queue_class.delete_message
    change_visibility = backend.change_message_visibility

    @functools.wraps(add_message)  # keeps the dedup patch's mark (`_fifo_dedup_window`)
    def add(queue: Any, message: Any) -> None:
        try:
            add_message(queue, message)
        finally:
            QUEUE_SIGNALS.changed(queue.name)

    def delete(queue: Any, receipt_handle: str) -> None:
        delete_message(queue, receipt_handle)
        if queue.fifo_queue:  # the message's group may be free now; a standard queue has nothing new
            QUEUE_SIGNALS.changed(queue.name)

    def change(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        change_visibility(self, queue_name, receipt_handle, visibility_timeout)
        QUEUE_SIGNALS.changed(queue_name)

    add._paybridge_signals = True  # type: ignore[attr-defined]
    queue_class.add_message = add  # type: ignore[method-assign,assignment]
    queue_class.delete_message = delete  # type: ignore[method-assign,assignment]
    backend.change_message_visibility = change  # type: ignore[method-assign]


_QUEUE_COUNTS = (
    "messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
    "approximate_number_of_messages",
)
SQS_ORIGINALS: dict[tuple[type, str], Any] = {}


def install_sqs_scans() -> None:
    """moto's SQS recounts a queue's messages again and again: `Queue.attributes` (read six times per SendMessage
    and twice per received message, for one static setting each time) computes the three approximate counts, each a
    pass over every message asking the time twice per message through two properties; `Queue.messages` (every
    receive) the same. Here each count is one pass with one reading of the clock (the same predicates: visible is
    `now > visible_at`, delayed is `now < delayed_until`), and the retention check of a received message reads the
    queue's retention period itself instead of building every attribute twice. Same answers; from a queue of 2,000
    messages a receive of 10 took ~50 ms, now ~4 (`make bench-crm` holds 2,000, ARGS="--payments 6000" 6,000)."""
    import moto.sqs.models as sqs_models

    queue_class, backend = sqs_models.Queue, sqs_models.SQSBackend
    if getattr(queue_class.__dict__["messages"].fget, "_paybridge_fast", False):
        return
    #: what is replaced, for a test to compare with (`SQS_ORIGINALS[(owner, name)]`)
    SQS_ORIGINALS.update({(queue_class, name): queue_class.__dict__[name] for name in _QUEUE_COUNTS})
    SQS_ORIGINALS[(backend, "is_message_valid_based_on_retention_period")] = (
        backend.is_message_valid_based_on_retention_period
    )

    def now_ms() -> float:
        return float(sqs_models.unix_time_millis())  # the local stack's fast clock (`LocalAws._patch_sqs`)

    def messages(self: Any) -> list[Any]:
        now = now_ms()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def delayed(self: Any) -> int:
        now = now_ms()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self: Any) -> int:
        now = now_ms()
        return sum(1 for m in self._messages if not now > m.visible_at)

    def visible_count(self: Any) -> int:
        return len(messages(self))

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = self.get_queue(queue_name).message_retention_period
        return not retention_period + message.sent_timestamp / 1000 <= sqs_models.unix_time()

    messages._paybridge_fast = True  # type: ignore[attr-defined]
    queue_class.messages = property(messages)  # type: ignore[method-assign,assignment]
    queue_class.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[method-assign,assignment]
    queue_class.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[method-assign,assignment]
    queue_class.approximate_number_of_messages = property(visible_count)  # type: ignore[method-assign,assignment]
    backend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]
