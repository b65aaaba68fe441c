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
