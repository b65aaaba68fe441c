"""Places where moto (5.2) spends CPU the service it emulates does not, made cheap without changing an answer.
Each is installed once per process by `LocalAws.start` (idempotent), found by profiling `make bench-latency`
(py-spy, 60 payments at once: the first three together ~35% of the samples, ~50% of the busy ones; then the CPU of
each AWS call, timed per call: the SQS counts, the response serialiser, the update expressions). Each is checked
against moto's own code in `tests/integration/test_moto_speedups.py`.

- `Table.query` builds its candidates from `Table.all_items()`, which sorts every item of the table (DynamoType
  comparisons) before the query filters them: O(n log n) in the table for each query, even for one partition. The
  query sorts its candidates itself afterwards — by the range key within a partition, by the index keys and the
  table keys for an index — a total order, so the input's order never shows. Here the query reads the partition
  (a table query) or the items unsorted (an index query), and an index query on string or binary keys only the
  items that hold its key values (moto's loop compared each item's attributes as `DynamoType`s, casting both
  sides: ~70 % of a `find_by_payment` query with 3,000 items); everything else is moto's own code.
- EventBridge's target input (`EventTemplateParser.parse`) builds a new JSONPath parser — ply's lexer and LALR
  tables — for every path of every target of every event; the parsed paths are cached (`jsonpath_ng.ext.parse`
  is pure).
- Nothing tells a poller that a queue has something for it: the local event-source pollers polled on a timer.
  `QUEUE_SIGNALS` counts each queue's changes (a message added or made visible again, a FIFO queue's message
  deleted: its group is free), so that an idle poller sleeps until its queue changes (Lambda's pollers long-poll)
  instead of asking again and again.
- SQS counts (`install_sqs_scans`), DynamoDB items in responses (`install_attribute_values`), a handler's method
  names (`install_method_names`), UpdateExpression parses (`install_update_expression_cache`), the update
  validators' maps (`install_traverser_maps`) and top-level SET/REMOVE updates (`install_simple_updates`): see each.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import defaultdict
from typing import Any

_QUERYING = threading.local()
_ALL = object()  # an index query: every item, unsorted


class _Match(tuple[tuple[str, str, Any], ...]):
    """An index query on string or binary hash keys: the items whose key attributes hold these values, unsorted
    (equal as moto's `DynamoType` compares them: the same type and, for S and B, the same value)."""

    def holds(self, item: Any) -> bool:
        attrs = item.attrs
        for name, kind, value in self:
            found = attrs.get(name)
            if found is None or found.type != kind or found.value != value:
                return False
        return True


def install_query() -> None:
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "_paybridge_unsorted", False):
        return
    original_query, original_all_items = Table.query, Table.all_items

    def all_items(self: Any) -> Any:
        scope = getattr(_QUERYING, "scope", None)
        if scope is None:  # a scan, an export...: moto's sorted list
            return original_all_items(self)
        if scope is _ALL or type(scope) is _Match:
            if self.range_key_attr:
                items = (item for partition in self.items.values() for item in partition.values())
            else:
                items = iter(self.items.values())
            if type(scope) is not _Match:
                return list(items)
            # moto's loop compares these again: it only sees fewer of the others
            if len(scope) == 1:  # one hash key (most index queries): `holds` inlined, the value compared first
                ((name, kind, value),) = scope
                return [
                    item
                    for item in items
                    if (found := item.attrs.get(name)) is not None and found.value == value and found.type == kind
                ]
            return [item for item in items if scope.holds(item)]
        partition = self.items.get(scope)
        if partition is None:
            return []
        return list(partition.values()) if self.range_key_attr else [partition]

    signature = inspect.signature(original_query)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs).arguments
        hash_key = bound.get("hash_key")
        outer = getattr(_QUERYING, "scope", None)
        conditions = bound.get("hash_key_conditions") or ()
        strings = len(conditions) > 0 and all(getattr(v, "type", None) in ("S", "B") for _, v in conditions)
        if bound.get("index_name") and strings:
            _QUERYING.scope = _Match(tuple((name, v.type, v.value) for name, v in conditions))
        else:
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


class _Generic(Exception):
    """A value the fast path does not take as it is: moto's own serializer handles the whole value."""


#: The AttributeValue members, by how moto's JSON serializer writes each (string, blob, list of either, a map or a
#: list of AttributeValues, or the value as it is).
_AS_STRING, _AS_BLOB = frozenset({"S", "N"}), frozenset({"B"})
_AS_STRINGS, _AS_BLOBS = frozenset({"SS", "NS"}), frozenset({"BS"})
#: What each patch below replaced, by patch: for the tests to compare moto's own code with.
ORIGINALS: dict[str, Any] = {}


def install_attribute_values() -> None:
    """moto 5.2 serialises every response by walking the operation's output shape, and for each member of each
    structure asks a value picker for up to four spellings of its name (camelCase, snake_case, aliases): a DynamoDB
    item's every attribute is an `AttributeValue` structure of ten members, so a GetItem of a 40-attribute invoice
    made ~400 picker calls (~27 % of a GetItem's CPU). Here an `AttributeValue` that is a plain dict of its own
    members (what moto's items give) is written as moto's serializer would write it — strings as they are, blobs
    base64, a map's `None` entries left out, a list's kept, members in the shape's order — and anything else (a
    value of another type, an unknown key, a response transformer registered) goes to moto's own code. Checked
    against moto's serializer for every member type, nested, in `tests/integration/test_moto_speedups.py`."""
    from moto.core.serialize import BaseJSONSerializer

    if "structure" in ORIGINALS:
        return
    original = BaseJSONSerializer._serialize_type_structure
    ORIGINALS["structure"] = original

    def attribute_value(self: Any, value: Any, shape: Any) -> dict[str, Any]:
        if type(value) is not dict:
            raise _Generic
        members = shape.members  # the shape's own order, looked up without building a set per value
        if not all(key in members for key in value):
            raise _Generic
        out: dict[str, Any] = {}
        for name in members:
            if name not in value or (v := value[name]) is None:
                continue
            if name in _AS_STRING:
                out[name] = _string(v)
            elif name in _AS_BLOB:
                out[name] = _blob(self, v)
            elif name in _AS_STRINGS:
                out[name] = [_string(x) for x in _listed(v)]
            elif name in _AS_BLOBS:
                out[name] = [_blob(self, x) for x in _listed(v)]
            elif name == "M":
                if type(v) is not dict:
                    raise _Generic
                out[name] = {k: attribute_value(self, x, shape) for k, x in v.items() if x is not None}
            elif name == "L":
                out[name] = [attribute_value(self, x, shape) if x is not None else None for x in _listed(v)]
            else:  # NULL, BOOL: booleans, written as they are
                out[name] = v
        return out

    def structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        picker = self._value_picker
        if key and shape.name == "AttributeValue" and not getattr(picker, "response_transformers", True):
            try:
                serialized[self.get_serialized_name(shape, key)] = attribute_value(self, value, shape)
                return
            except _Generic:
                pass
        original(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = structure  # type: ignore[method-assign]


def _string(value: Any) -> str:
    if type(value) is not str:
        raise _Generic
    return value


def _blob(serializer: Any, value: Any) -> str:
    if not isinstance(value, str | bytes):
        raise _Generic
    return str(serializer._base64(value))


def _listed(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _Generic
    return value


def install_method_names() -> None:
    """Each moto request asks `inspect.getmembers` for its handler class's methods (`BaseResponse.call_action`:
    does the class have one named like the action?) — ~9 % of a GetItem's CPU. The names are cached per class,
    keyed by the sizes of the class's MRO dictionaries, so that a method added later (a patch) is seen."""
    import moto.core.responses as responses

    if "method_names" in ORIGINALS:
        return
    original = responses.method_names_from_class
    ORIGINALS["method_names"] = original
    cache: dict[tuple[Any, ...], list[str]] = {}

    def method_names(clazz: Any) -> list[str]:
        names = cache.get((clazz, *(len(c.__dict__) for c in clazz.__mro__)))
        if names is None:
            names = original(clazz)  # (listing a class may add to its dictionary: the key is taken after)
            cache[(clazz, *(len(c.__dict__) for c in clazz.__mro__))] = names
        return names

    responses.method_names_from_class = method_names


def install_update_expression_cache() -> None:
    """moto parses each UpdateExpression twice per UpdateItem (the handler lists its placeholders, the backend
    validates and applies it; the same in a transaction), with a tokenizer and a recursive-descent parser: ~14 % of
    the PSP webhook's transaction. The parse depends on the string alone, and nothing changes the tree it returns
    (the handler only reads it; the backend's validator works on a deep copy), so each string is parsed once; a
    malformed one raises again each time (nothing is cached for it)."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    if "update_expression" in ORIGINALS:
        return
    original = UpdateExpressionParser.__dict__["make"].__func__
    ORIGINALS["update_expression"] = original

    @functools.lru_cache(maxsize=1024)
    def parsed(expression: str) -> Any:
        return original(UpdateExpressionParser, expression)

    def make(cls: Any, expression_str: str) -> Any:
        if cls is UpdateExpressionParser and type(expression_str) is str:
            return parsed(expression_str)
        return original(cls, expression_str)

    UpdateExpressionParser.make = classmethod(make)


def install_traverser_maps() -> None:
    """moto's update validation runs ten tree walkers over each UpdateExpression's tree (`DepthFirstTraverser`);
    at every node each walker rebuilds its processing map twice (a dict of bound methods: which node types it
    processes, and how). The map depends on the walker alone (no walker overrides the two accessors), so each
    walker builds it once."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]

    if "traverser" in ORIGINALS:
        return
    ORIGINALS["traverser"] = (DepthFirstTraverser.nodes_to_be_processed, DepthFirstTraverser.process)

    def processing_map(self: Any) -> dict[type, Any]:
        known = self.__dict__.get("_paybridge_map")
        if known is None:
            known = self.__dict__["_paybridge_map"] = self._processing_map()
        return known

    def nodes_to_be_processed(self: Any) -> tuple[type, ...]:
        known = self.__dict__.get("_paybridge_types")
        if known is None:
            known = self.__dict__["_paybridge_types"] = tuple(processing_map(self))
        return known

    def process(self: Any, node: Any) -> Any:
        for class_key, processor in processing_map(self).items():
            if isinstance(node, class_key):
                return processor(node)
        return None

    DepthFirstTraverser.nodes_to_be_processed = nodes_to_be_processed
    DepthFirstTraverser.process = process


def install_name_cache() -> None:
    """`camelcase_to_underscores` (a pure function of its string, a character-by-character loop) is called ~15 times
    per SQS message sent — `Queue.attributes` builds every attribute by its snake_case name, to read one — and by
    moto's request handling: ~20 % of a `PutEvents` with two queue targets. Each name is converted once, in every
    moto module that imported the function (those loaded by then: `LocalAws.start` has made its clients)."""
    import sys

    import moto.core.utils as utils

    original = ORIGINALS.setdefault("camelcase", utils.camelcase_to_underscores)
    cached = functools.lru_cache(maxsize=4096)(original)
    for name, module in list(sys.modules.items()):
        if (name == "moto" or name.startswith("moto.")) and getattr(
            module, "camelcase_to_underscores", None
        ) is original:
            module.camelcase_to_underscores = cached  # type: ignore[attr-defined]


def _simple_update(ast: Any) -> tuple[list[tuple[str, str]], list[str]] | None:
    """The actions of an UpdateExpression tree made only of top-level `SET name = :value` and `REMOVE name` (names
    bare or `#placeholder`), at most one clause of each: ([(name token, value placeholder)], [name token]) in order;
    None for any other tree (nested paths, functions, arithmetic, ADD, DELETE, two clauses of a kind)."""
    from moto.dynamodb.parsing import ast_nodes

    n: Any = ast_nodes  # untyped: its node classes are not known to mypy

    sets: list[tuple[str, str]] = []
    removes: list[str] = []
    clauses: set[type] = set()
    pending = [ast]
    while pending:
        node = pending.pop()
        kind = type(node)
        if kind is n.UpdateExpression:
            pending.extend(reversed(node.children))
        elif kind in (n.UpdateExpressionSetClause, n.UpdateExpressionRemoveClause):
            if kind in clauses:
                return None
            clauses.add(kind)
            pending.extend(reversed(node.children))
        elif kind in (n.UpdateExpressionSetActions, n.UpdateExpressionRemoveActions):
            pending.extend(reversed(node.children))
        elif kind in (n.UpdateExpressionSetAction, n.UpdateExpressionRemoveAction):
            path = node.children[0]
            if type(path) is not n.UpdateExpressionPath or len(path.children) != 1:
                return None
            name = path.children[0]
            if type(name) not in (n.ExpressionAttribute, n.ExpressionAttributeName) or len(name.children) != 1:
                return None
            token = name.children[0]
            if kind is n.UpdateExpressionRemoveAction:
                removes.append(token)
                continue
            value: Any = node.children[1] if len(node.children) == 2 else None
            if type(value) is not n.UpdateExpressionValue or len(value.children) != 1:
                return None
            placeholder = value.children[0]
            if type(placeholder) is not n.ExpressionAttributeValue:
                return None
            sets.append((token, placeholder.children[0]))
        else:
            return None
    return sets, removes


def install_simple_updates() -> None:
    """moto applies every UpdateExpression by deep-copying its parsed tree, walking the copy with ten validators
    (each a full walk: ~90 nodes for the PSP webhook's 8 SETs and 4 REMOVEs), deep-copying the item (kept only for
    a table with a stream) and recomputing the item's whole size at each attribute set: ~60 % of the webhook's
    transaction. Most of our updates are top-level `SET #name = :value` and `REMOVE name`; for those, when none of
    the validators could object, the attributes are set and removed directly, as moto's executor would:

    - the expression is parsed by moto (cached: `install_update_expression_cache`), so its syntax and reserved
      words are moto's checks; the condition is evaluated by moto's own code, as moto's `update_item` does;
    - every name placeholder and value placeholder is defined; no two actions name the same attribute; no action
      names a key attribute of the table; no SET gives an attribute that the table defines (a key of the table or
      of an index) an empty string or binary, or another type than its definition (the placeholder and the name it
      stands for are both checked: moto checks one or the other);
    - the item exists, the table has no stream, the request has no legacy `Expected`/`AttributeUpdates`, and the
      item's size plus the new values' stays within moto's 405,000-byte limit (so no set could fail half-way).

    Anything else, success or error, is moto's own `update_item`. Checked against it in
    `tests/integration/test_moto_speedups.py` (items and errors, over generated expressions and values)."""
    from moto.dynamodb.comparisons import create_condition_expression_parser
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

    if "update_item" in ORIGINALS:
        return
    original = ORIGINALS["update_item"] = DynamoDBBackend.update_item
    signature = inspect.signature(original)
    limit = 405_000  # moto's LimitedSizeDict
    reserved = frozenset(ReservedKeywords.get_reserved_keywords())

    def name_of(token: str, names: dict[str, str]) -> str | None:
        """The attribute a token names; None for an undefined placeholder or a bare reserved word (moto refuses)."""
        if token.startswith("#"):
            return names.get(token)
        return None if token.upper() in reserved else token

    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        expression = a["update_expression"]
        if not expression or a["attribute_updates"] or a["expected"]:
            return original(self, *args, **kwargs)
        table = self.get_table(a["table_name"])
        key = a["key"]
        if table.stream_shard is not None or table.hash_key_attr not in key:
            return original(self, *args, **kwargs)
        actions = _simple_update(UpdateExpressionParser.make(expression))
        if actions is None:
            return original(self, *args, **kwargs)
        names, values = a["expression_attribute_names"] or {}, a["expression_attribute_values"] or {}
        sets, removes = actions
        keys = set(table.table_key_attrs)
        defined = {d["AttributeName"]: d["AttributeType"] for d in table.attr}
        index_keys = set(table.attribute_keys) | set(defined)
        new_values: list[tuple[str, DynamoType]] = []
        for token, placeholder in sets:
            name = name_of(token, names)
            if name is None or placeholder not in values:
                return original(self, *args, **kwargs)
            value = DynamoType(values[placeholder])
            for checked in {token, name} & index_keys:
                wanted = defined.get(checked)
                if (wanted is not None and wanted != value.type) or (value.type in ("S", "B") and not value.value):
                    return original(self, *args, **kwargs)
            new_values.append((name, value))
        removed: list[str] = []
        for token in removes:
            name = name_of(token, names)
            if name is None:
                return original(self, *args, **kwargs)
            removed.append(name)
        resolved = [name for name, _ in new_values] + removed
        if len(set(resolved)) != len(resolved) or keys & set(resolved):
            return original(self, *args, **kwargs)
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
        item = table.get_item(hash_value, range_value)
        if item is None:
            return original(self, *args, **kwargs)
        attrs = item.attrs
        size = sum(bytesize(k) + v.size() for k, v in attrs.items())
        size += sum(bytesize(name) + value.size() for name, value in new_values)
        if size > limit:
            return original(self, *args, **kwargs)
        condition = create_condition_expression_parser(a["condition_expression"], names, values).parse()
        if not condition.expr(item):
            return original(self, *args, **kwargs)  # moto raises ConditionalCheckFailed, with the item if asked
        for name, value in new_values:
            dict.__setitem__(attrs, name, value)  # within the size limit: checked above for all of them at once
        for name in removed:
            attrs.pop(name, None)
        return item

    update_item.__wrapped__ = original  # type: ignore[attr-defined]
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
