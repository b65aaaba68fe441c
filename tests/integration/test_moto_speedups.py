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

    assert _answers(client, table) == expected
    assert sum(len(page) for page in expected[0]) == 8 and len(expected[0]) == 3  # paged: 3 + 3 + 2


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
