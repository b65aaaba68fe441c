"""The local stack's meter counts as AWS bills: DynamoDB item sizes and units, index writes, Step Functions
transitions with retries (devstack/meter.py; `make cost` prints what it counted)."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.meter import Index, Meter, billed_transitions, item_size, read_units, value_size, write_units


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"S": "abc"}, 3),
        ({"S": "Счёт"}, 8),  # UTF-8 bytes, not characters
        ({"N": "12345"}, 4),  # 1 byte per two significant digits, rounded up, + 1
        ({"N": "-100.50"}, 3),  # leading/trailing zeros trimmed: "1005"
        ({"BOOL": True}, 1),
        ({"NULL": True}, 1),
        ({"L": [{"S": "ab"}, {"N": "1"}]}, 3 + (2 + 1) + (2 + 1)),
        ({"M": {"k": {"S": "v"}}}, 3 + 1 + 1 + 1),
    ],
)
def test_value_sizes_follow_dynamodbs_rules(value: dict[str, Any], size: int) -> None:
    assert value_size(value) == size


def test_units_round_up_per_kb_written_and_per_4_kb_read() -> None:
    assert item_size({"pk": {"S": "x" * 10}}) == 12
    assert (write_units(0), write_units(1024), write_units(1025)) == (1, 1, 2)
    assert (read_units(4096, True), read_units(4097, True), read_units(4097, False)) == (1.0, 2.0, 1.0)


def test_an_index_write_costs_a_put_a_delete_or_both_when_its_key_moves() -> None:
    meter = Meter(indexes=(Index("OpenByDue", ("gsi2pk", "gsi2sk"), "KEYS_ONLY"),))
    base = {"pk": {"S": "INV#1"}, "sk": {"S": "INVOICE"}, "doc": {"S": "x" * 3000}}
    open_item = {**base, "gsi2pk": {"S": "OPEN#1"}, "gsi2sk": {"S": "2026-01-01"}}
    moved = {**open_item, "gsi2sk": {"S": "2026-01-02"}}
    assert meter._index_writes(None, base) == 0  # not in the index
    assert meter._index_writes(None, open_item) == 1  # a put (keys only: well under 1 KB)
    assert meter._index_writes(open_item, {**open_item, "doc": {"S": "y"}}) == 0  # nothing projected changed
    assert meter._index_writes(open_item, moved) == 2  # a delete and a put
    assert meter._index_writes(open_item, base) == 1  # left the index: a delete


def _history(*kinds: str) -> list[dict[str, Any]]:
    return [{"type": kind} for kind in kinds]


def test_billed_transitions_are_the_states_entered_and_every_retry() -> None:
    paid = _history(
        "ExecutionStarted",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskFailed",
        "TaskScheduled",  # the retry
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    )
    assert billed_transitions(paid) == 3
    assert billed_transitions(_history("ExecutionStarted", "TaskStateEntered", "TaskScheduled")) == 1
