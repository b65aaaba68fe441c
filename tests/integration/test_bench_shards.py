"""`make bench-shards` counts what it says: with the index sharded the open invoices' writes spread over the
shards; with one shard (the old design) the meter sees every write on one key."""

from __future__ import annotations

import pytest

from scripts.bench_shards import run


def test_the_open_invoices_writes_spread_over_the_shards() -> None:
    summary = run(64)
    assert summary["open_by_due_writes"] == 128  # each invoice enters the index once and leaves it once
    assert summary["legacy_writes"] == 0 and summary["open_by_due_shards"] >= 12
    assert summary["open_by_due_max_share"] < 0.25


def test_the_meter_sees_a_hot_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("paybridge.storage.table.OPEN_SHARDS", 1)
    summary = run(16)
    assert summary["open_by_due_shards"] == 1 and summary["open_by_due_max_share"] == 1.0
