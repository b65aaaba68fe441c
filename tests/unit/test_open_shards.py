"""The open-invoice index's shards: an invoice always names the same shard, and ids spread evenly over them."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from paybridge.domain.invoice import invoice_id_for
from paybridge.storage.table import OPEN_PK, OPEN_SHARDS, open_partitions, open_pk, open_shard


@given(st.text(min_size=1, max_size=60))
def test_an_invoice_always_writes_the_same_shard_and_it_is_one_the_sweep_reads(invoice_id: str) -> None:
    assert open_shard(invoice_id) == open_shard(invoice_id)
    assert 0 <= open_shard(invoice_id) < OPEN_SHARDS
    assert open_pk(invoice_id) in open_partitions()


def test_the_shard_does_not_depend_on_the_process() -> None:
    # blake2b, not Python's salted hash(): pinned, so another process (or release) computes the same key
    assert open_pk("inv_aaaaaaaaaaaaaaaaaaaaaaaaaa") == open_pk("inv_aaaaaaaaaaaaaaaaaaaaaaaaaa")
    assert [open_shard(f"inv_{n}") for n in range(4)] == [open_shard(f"inv_{n}") for n in range(4)]
    assert open_partitions() == (*(f"OPEN#{k}" for k in range(OPEN_SHARDS)), OPEN_PK)
    assert open_partitions(include_legacy=False)[-1] == f"OPEN#{OPEN_SHARDS - 1}"


def test_ten_thousand_invoice_ids_spread_over_every_shard_none_above_its_share() -> None:
    ids = [invoice_id_for(f"tenant{n % 7}", f"D-{n}", f"INV-{n}") for n in range(10_000)]
    counts = Counter(open_shard(i) for i in ids)
    assert set(counts) == set(range(OPEN_SHARDS))
    # expected 625 each, sd ~24: 15% above the share is > 3.8 sd
    assert max(counts.values()) / len(ids) <= (1 / OPEN_SHARDS) * 1.15
