"""devstack/moto_speedups.py: the cheaper query answers exactly what moto's own does (items, order, pages), and an
idle poller's wait ends on its queue's change and only then."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from tests.conftest import new_table


def _answers(client: Any, table: str) -> list[Any]:
    """Table and index queries, forwards, backwards, paged, with a range condition and a filter."""
    answers: list[Any] = []
    for kwargs in (
        {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#1"}}},
        {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":pk": {"S": "P#2"}, ":s": {"S": "B"}},
            "ScanIndexForward": False,
        },
        {
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "n > :n",
            "ExpressionAttributeValues": {":pk": {"S": "P#3"}, ":n": {"N": "4"}},
        },
        {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": {"S": "P#none"}}},
        {
            "IndexName": "ByPaymentId",
            "KeyConditionExpression": "gsi1pk = :g",
            "ExpressionAttributeValues": {":g": {"S": "G#1"}},
        },
        {
            "IndexName": "ByPaymentId",
            "KeyConditionExpression": "gsi1pk = :g",
            "ExpressionAttributeValues": {":g": {"S": "G#0"}},
            "ScanIndexForward": False,
        },
    ):
        pages, start = [], None
        while True:
            page = client.query(TableName=table, Limit=3, **kwargs, **({"ExclusiveStartKey": start} if start else {}))
            pages.append(page["Items"])
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        answers.append(pages)
    return answers


def test_the_cheaper_query_answers_as_motos_own(moto_aws: Any, monkeypatch: Any) -> None:
    from moto.dynamodb.models.table import Table

    from devstack import moto_speedups

    client, table = new_table(moto_aws, "speedups")
    items = [
        {
            "pk": {"S": f"P#{p}"},
            "sk": {"S": f"{'AB'[k % 2]}#{k:02d}"},
            "n": {"N": str(k)},
            "gsi1pk": {"S": f"G#{k % 2}"},
            "gsi1sk": {"S": f"{k % 3}"},  # ties in the index's range key: the table keys order them
        }
        for p in range(1, 4)
        for k in range(8)
    ]
    random.Random(7).shuffle(items)
    for item in items:
        client.put_item(TableName=table, Item=item)

    with monkeypatch.context() as unpatched:
        for name in ("query", "all_items"):
            original = getattr(Table, name)
            unpatched.setattr(Table, name, getattr(original, "__wrapped__", original))
        expected = _answers(client, table)
    moto_speedups.install_query()
    moto_speedups.install_query()  # idempotent
    assert Table.query._paybridge_unsorted  # type: ignore[attr-defined]

    seen: list[int] = []  # how many candidates each query's loop was given
    all_items = Table.all_items

    def counted(self: Any) -> Any:
        candidates = all_items(self)
        seen.append(len(candidates))
        return candidates

    monkeypatch.setattr(Table, "all_items", counted)
    assert _answers(client, table) == expected
    assert sum(len(page) for page in expected[0]) == 8 and len(expected[0]) == 3  # paged: 3 + 3 + 2
    assert len(items) == 24 and 12 in seen and 24 not in seen  # an index query saw only its key's 12 items


def test_an_idle_wait_ends_when_the_queue_changes_and_not_before() -> None:
    from devstack.moto_speedups import QueueSignals

    signals = QueueSignals()
    seen = signals.changes("q")
    started = time.monotonic()
    assert not signals.wait("q", seen, 0.05) and time.monotonic() - started >= 0.05  # nothing: the whole timeout

    signals.changed("other")
    assert not signals.wait("q", seen, 0.01)  # another queue's change is not ours

    signals.changed("q")  # a change between the poll and the wait is not missed
    assert signals.wait("q", seen, 5.0)

    seen = signals.changes("q")
    timer = threading.Timer(0.05, signals.changed, args=("q",))
    timer.start()
    started = time.monotonic()
    assert signals.wait("q", seen, 5.0) and time.monotonic() - started < 2.0
    timer.join()


def test_the_cheaper_queue_counts_answer_as_motos_own(moto_aws: Any, monkeypatch: Any) -> None:
    """Visible, in flight, delayed and deleted messages of a FIFO and a standard queue: every attribute and every
    receive the same with moto's own counting and with the one-pass one."""
    import moto.sqs.models as sqs_models

    from devstack import moto_speedups
    from devstack.aws import LocalAws

    LocalAws._patch_sqs()  # the local stack's clock and lock, and the counts under test
    moto_speedups.install_sqs_scans()  # idempotent
    assert sqs_models.Queue.__dict__["messages"].fget._paybridge_fast
    sqs = moto_aws.client("sqs")

    def scenario(prefix: str) -> list[Any]:
        seen: list[Any] = []
        for fifo in (True, False):
            name = f"{prefix}-{'f' if fifo else 's'}" + (".fifo" if fifo else "")
            attributes = {"VisibilityTimeout": "60"} | (
                {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
            )
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            for n in range(12):
                group = {"MessageGroupId": f"g{n % 4}"} if fifo else {"DelaySeconds": 30 if n % 5 == 0 else 0}
                sqs.send_message(QueueUrl=url, MessageBody=f"m{n}", **group)
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5)["Messages"]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
            again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            counts = {k: v for k, v in found.items() if k.startswith("Approximate")}
            seen.append(([m["Body"] for m in received], [m["Body"] for m in again], counts))
        return seen

    with monkeypatch.context() as unpatched:
        for (owner, name), original in moto_speedups.SQS_ORIGINALS.items():
            unpatched.setattr(owner, name, original)
        expected = scenario("own")
    assert scenario("fast") == expected
    (fifo_first, fifo_again, fifo_counts), (_, _, standard_counts) = expected
    # (what the scenario shows: FIFO groups in flight hold back the rest; delayed messages are neither visible nor
    # in flight; a deleted message is gone from every count)
    assert fifo_first == ["m0", "m1", "m2", "m3", "m4"] and fifo_again == []
    assert fifo_counts == {
        "ApproximateNumberOfMessages": "7",
        "ApproximateNumberOfMessagesDelayed": "0",
        "ApproximateNumberOfMessagesNotVisible": "4",
    }
    assert standard_counts == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesDelayed": "3",
        "ApproximateNumberOfMessagesNotVisible": "8",
    }


#: An item with every AttributeValue type, nested in maps and lists.
ITEM: dict[str, Any] = {
    "pk": {"S": "P#values"},
    "sk": {"S": "A"},
    "s": {"S": "строка"},
    "empty": {"S": ""},
    "n": {"N": "-12.50"},
    "b": {"B": b"\x00\x01bytes"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"y"]},
    "null": {"NULL": True},
    "yes": {"BOOL": True},
    "no": {"BOOL": False},
    "m": {"M": {"inner": {"S": "v"}, "deeper": {"M": {"l": {"L": [{"N": "1"}, {"M": {}}, {"L": []}]}}}}},
    "l": {"L": [{"S": "x"}, {"B": b"z"}, {"SS": ["q"]}, {"NULL": True}]},
}


def _serializer() -> Any:
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker
    from moto.core.utils import get_service_model

    model = get_service_model("dynamodb").operation_model("GetItem")
    return JSONSerializer(operation_model=model, value_picker=XFormedAttributePicker(response_transformers={}))


def test_attribute_values_are_serialised_as_motos_own(moto_aws: Any, monkeypatch: Any) -> None:
    from moto.core.serialize import AttributePicker, BaseJSONSerializer

    from devstack import moto_speedups

    moto_speedups.install_attribute_values()
    moto_speedups.install_attribute_values()  # idempotent
    client, table = new_table(moto_aws, "values")
    client.put_item(TableName=table, Item=ITEM)
    key = {"pk": ITEM["pk"], "sk": ITEM["sk"]}

    def answers() -> list[Any]:
        return [  # the update first: both rounds read the same item
            client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET extra = :e",
                ReturnValues="ALL_NEW",
                ExpressionAttributeValues={":e": {"M": {"k": {"L": [{"S": "v"}]}}}},
            )["Attributes"],
            client.get_item(TableName=table, Key=key)["Item"],
            client.query(
                TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": ITEM["pk"]}
            )["Items"],
            client.batch_get_item(RequestItems={table: {"Keys": [key]}})["Responses"][table],
        ]

    # values moto's items never hold, but a response might: None in a map (left out) or a list (kept), str blobs
    odd = {"Item": {"a": {"M": {"x": None, "y": {"S": "1"}}}, "b": {"L": [None, {"B": "c3Ry"}]}, "c": None}}
    calls = {"picker": 0}
    picker_call = AttributePicker.__call__

    def counted(self: Any, context: Any) -> Any:
        calls["picker"] += 1
        return picker_call(self, context)

    monkeypatch.setattr(AttributePicker, "__call__", counted)
    with monkeypatch.context() as unpatched:
        unpatched.setattr(BaseJSONSerializer, "_serialize_type_structure", moto_speedups.ORIGINALS["structure"])
        expected, expected_odd = answers(), _serializer().serialize(odd)
        generic_picks, calls["picker"] = calls["picker"], 0
    assert answers() == expected
    assert _serializer().serialize(odd) == expected_odd
    assert expected[1] == ITEM | {"extra": {"M": {"k": {"L": [{"S": "v"}]}}}}  # moto's own answer: the item as written
    assert calls["picker"] < generic_picks / 10  # the shape walk is skipped, not taken after all

    # not a plain AttributeValue (an unknown member, a value of another type): moto's own code, same answer
    for strange in ({"Item": {"a": {"X": "1"}}}, {"Item": {"a": {"S": 5}}}, {"Item": {"a": {"SS": ("a",)}}}):
        with monkeypatch.context() as unpatched:
            original = moto_speedups.ORIGINALS["structure"]
            unpatched.setattr(BaseJSONSerializer, "_serialize_type_structure", original)
            want = _serializer().serialize(strange)
        assert _serializer().serialize(strange) == want


def test_method_names_are_listed_once_per_class_and_see_a_new_method() -> None:
    import moto.core.responses as responses

    from devstack import moto_speedups

    moto_speedups.install_method_names()
    moto_speedups.install_method_names()  # idempotent

    class Handler(responses.BaseResponse):
        def first(self) -> None: ...

    names = responses.method_names_from_class(Handler)
    assert "first" in names and names == moto_speedups.ORIGINALS["method_names"](Handler)
    assert responses.method_names_from_class(Handler) is names  # cached
    Handler.second = lambda self: None  # type: ignore[attr-defined]
    assert "second" in responses.method_names_from_class(Handler)


def _updates(client: Any, table: str) -> list[Any]:
    """The same expressions with other values, again and again, a bad one twice: the items and errors seen."""
    seen: list[Any] = []
    expression = "SET #c = if_not_exists(#c, :z) + :n, tags = list_append(if_not_exists(tags, :e), :t) REMOVE gone"
    for k in range(4):
        key = {"pk": {"S": f"U#{k % 2}"}, "sk": {"S": "A"}}
        client.update_item(
            TableName=table, Key=key, UpdateExpression=expression, ConditionExpression="attribute_not_exists(#l)",
            ExpressionAttributeNames={"#c": "count", "#l": "locked"},
            ExpressionAttributeValues={":z": {"N": "0"}, ":n": {"N": str(k + 1)}, ":e": {"L": []},
                                       ":t": {"L": [{"S": f"t{k}"}]}},
        )  # fmt: skip
        client.update_item(TableName=table, Key=key, UpdateExpression="ADD seen :one, marks :m",
                           ExpressionAttributeValues={":one": {"N": "1"}, ":m": {"SS": [f"m{k}"]}})  # fmt: skip
        seen.append(client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"])
    for bad in ("SET a = :v SET b = :v", "SET a = :v, a = :v", "SET pk = :v", "SET = :v"):
        for _ in range(2):
            try:
                client.update_item(TableName=table, Key={"pk": {"S": "U#0"}, "sk": {"S": "A"}},
                                   UpdateExpression=bad, ExpressionAttributeValues={":v": {"S": "x"}})  # fmt: skip
            except client.exceptions.ClientError as exc:
                seen.append((bad, exc.response["Error"]["Code"], exc.response["Error"]["Message"]))
    return seen


def test_updates_apply_as_with_motos_own_parsing_and_walkers(moto_aws: Any, monkeypatch: Any) -> None:
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    from devstack import moto_speedups

    for install in (moto_speedups.install_update_expression_cache, moto_speedups.install_traverser_maps) * 2:
        install()  # idempotent
    originals = moto_speedups.ORIGINALS
    with monkeypatch.context() as unpatched:
        unpatched.setattr(UpdateExpressionParser, "make", classmethod(originals["update_expression"]))
        unpatched.setattr(DepthFirstTraverser, "nodes_to_be_processed", originals["traverser"][0])
        unpatched.setattr(DepthFirstTraverser, "process", originals["traverser"][1])
        client, table = new_table(moto_aws, "updates-moto")
        expected = _updates(client, table)
    client, table = new_table(moto_aws, "updates-fast")
    assert _updates(client, table) == expected
    assert expected[3]["count"] == {"N": "6"} and [t["S"] for t in expected[3]["tags"]["L"]] == ["t1", "t3"]
    assert len(expected) == 4 + 8  # every bad expression refused both times


def test_names_are_converted_once_and_the_same(moto_aws: Any) -> None:
    import moto.core.utils as utils
    import moto.sqs.models as sqs_models

    from devstack import moto_speedups

    moto_aws.client("sqs").create_queue(QueueName="names")  # moto's SQS modules loaded, as the stack has them
    moto_speedups.install_name_cache()
    moto_speedups.install_name_cache()  # idempotent: the cached one is not wrapped again
    original = moto_speedups.ORIGINALS["camelcase"]
    converted = sqs_models.camelcase_to_underscores
    assert converted is not original and utils.camelcase_to_underscores is converted
    for name in ("ApproximateNumberOfMessages", "FifoQueue", "KmsMasterKeyId", "theNewAttribute", "", "A", "SQS"):
        assert converted(name) == original(name)
    assert converted("VisibilityTimeout") == "visibility_timeout"


_TOKENS = {  # a name token as written in an expression -> the name it stands for (None: a placeholder not defined)
    **{name: name for name in ("a", "b", "c", "doc", "status", "pk", "sk", "gsi1pk", "gsi3pk")},
    "#a": "a", "#b": "b", "#x": "a", "#k": "pk", "#g": "gsi1pk", "#u": None,
}  # fmt: skip
_VALUES = {  # None: a value placeholder not defined
    ":s": {"S": "x"}, ":e": {"S": ""}, ":n": {"N": "5"}, ":m": {"M": {"q": {"S": "1"}}}, ":l": {"L": [{"N": "1"}]},
    ":b": {"B": b"\x01"}, ":eb": {"B": b""}, ":t": {"BOOL": True}, ":big": {"S": "x" * 380_000}, ":u": None,
}  # fmt: skip
_OTHER_SETS = ("a.q = :s", "a = if_not_exists(a, :n)", "c = c + :n", "b = a", "#b[0] = :s")


def _update_case(rng: random.Random) -> dict[str, Any]:
    """One UpdateItem request: mostly top-level SET/REMOVE of names and placeholders, defined or not, of keys or
    not, twice or not, with values of every kind (empty, big, of a key's type or not); sometimes another kind."""
    spellings = {"a": ("a", "#a", "#x"), "b": ("b", "#b"), "c": ("c",), "doc": ("doc",), "gsi1pk": ("gsi1pk", "#g")}
    count = rng.randint(1, 5)
    if rng.random() < 0.85:  # distinct names an update may set, so that most requests succeed
        tokens = [rng.choice(spellings[name]) for name in rng.sample(sorted(spellings), count)]
    else:  # any tokens: keys, undefined or reserved ones, the same attribute twice...
        tokens = [rng.choice(tuple(_TOKENS)) for _ in range(count)]

    def value() -> str:
        return rng.choice((":s", ":n", ":m", ":l", ":b", ":t") if rng.random() < 0.85 else tuple(_VALUES))

    split = rng.randint(0, count)
    sets = [rng.choice(_OTHER_SETS) if rng.random() < 0.05 else f"{t} = {value()}" for t in tokens[:split]]
    removes = tokens[split:]
    clauses = [f"SET {', '.join(sets)}"] if sets else []
    clauses += [f"REMOVE {', '.join(removes)}"] if removes else []
    if rng.random() < 0.05:
        clauses.append("ADD c :n" if rng.random() < 0.5 else "SET b = :s")
    rng.shuffle(clauses)
    condition = rng.choice((None,) * 12 + ("attribute_exists(pk)", "attribute_not_exists(pk)", "a = :s", "c = :n"))
    text = " ".join(clauses) + " " + (condition or "")
    request: dict[str, Any] = {
        "Key": {"pk": {"S": rng.choice(("P#1", "P#1", "P#1", "P#new"))}, "sk": {"S": "A"}},
        "UpdateExpression": " ".join(clauses) or "SET a = :s",
    }
    names = {t: n for t, n in _TOKENS.items() if t.startswith("#") and n and t in text}
    used = {v: value for v, value in _VALUES.items() if value is not None and v in text}
    if condition:
        request["ConditionExpression"] = condition
    if names:
        request["ExpressionAttributeNames"] = names
    if used or request["UpdateExpression"] == "SET a = :s":
        request["ExpressionAttributeValues"] = used or {":s": {"S": "x"}}
    return request


def _apply_updates(client: Any, table: str, cases: list[dict[str, Any]]) -> list[Any]:
    """Each case on a fresh copy of one item: the item after it, or the error it got."""
    seen: list[Any] = []
    start = {"pk": {"S": "P#1"}, "sk": {"S": "A"}, "a": {"S": "old"}, "gsi1pk": {"S": "G"}, "c": {"N": "1"},
             "doc": {"S": "y" * 30_000}}  # fmt: skip
    for case in cases:
        client.put_item(TableName=table, Item=start)
        client.delete_item(TableName=table, Key={"pk": {"S": "P#new"}, "sk": {"S": "A"}})
        try:
            client.update_item(TableName=table, **case)
            seen.append(client.get_item(TableName=table, Key=case["Key"], ConsistentRead=True).get("Item"))
        except client.exceptions.ClientError as exc:
            seen.append((exc.response["Error"]["Code"], exc.response["Error"]["Message"]))
        except Exception as exc:  # moto's own failures (a KeyError for an undefined #name) count too
            seen.append(("raised", type(exc).__name__, str(exc)))
    return seen


def test_simple_updates_apply_as_motos_own_update_item(moto_aws: Any, monkeypatch: Any) -> None:
    """Generated UpdateItem requests (`_update_case`), each applied by moto's own `update_item` and by the fast
    path's: the same item after each, or the same error; and the fast path taken for many of them."""
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    from devstack import moto_speedups

    for _ in range(2):
        moto_speedups.install_update_expression_cache()
        moto_speedups.install_simple_updates()  # idempotent
    rng = random.Random(20261202)
    cases = [_update_case(rng) for _ in range(400)]
    with monkeypatch.context() as unpatched:
        unpatched.setattr(DynamoDBBackend, "update_item", moto_speedups.ORIGINALS["update_item"])
        client, table = new_table(moto_aws, "simple-moto")
        expected = _apply_updates(client, table, cases)

    validated: list[int] = []
    validator = models.UpdateExpressionValidator

    class Counted(validator):  # type: ignore[misc, valid-type]
        def validate(self) -> Any:
            validated.append(1)
            return super().validate()

    monkeypatch.setattr(models, "UpdateExpressionValidator", Counted)
    client, table = new_table(moto_aws, "simple-fast")
    fast: list[bool] = []
    for case, want in zip(cases, expected, strict=True):
        before = len(validated)
        assert _apply_updates(client, table, [case]) == [want], case
        fast.append(len(validated) == before and not isinstance(want, tuple))
    errors = sum(isinstance(want, tuple) for want in expected)
    assert 40 <= errors <= 300, errors  # both outcomes are well represented
    assert sum(fast) >= 100, sum(fast)  # the fast path applied many of them (moto's the others)
