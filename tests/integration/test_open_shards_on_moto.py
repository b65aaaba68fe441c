"""The sharded open-invoice index on moto's table (made from template.yaml): writes spread over the shards, the
stuck-invoice read finds invoices in every shard and in the legacy `OPEN` partition, earliest due first, at most
`limit`; the backfill moves legacy items to their shard once and touches nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paybridge.domain.invoice import AuditEntry, InvoiceState, NewInvoice, new_invoice
from paybridge.storage.dynamodb import DynamoInvoiceRepository
from paybridge.storage.table import OPEN_PK, OPEN_SHARDS, invoice_pk, open_pk
from scripts.backfill_open_shards import backfill
from tests.conftest import new_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def repo(moto_aws: Any) -> Iterator[DynamoInvoiceRepository]:
    client, table = new_table(moto_aws, "shards")
    yield DynamoInvoiceRepository(table, client=client)
    client.delete_table(TableName=table)


def issue(repo: DynamoInvoiceRepository, n: int, lifetime: int) -> str:
    """An open invoice issued at T0, due `lifetime` seconds later."""
    invoice = new_invoice(
        "acme", NewInvoice(deal_id=f"D-{n}", number=f"N-{n}", amount=100, lifetime_seconds=lifetime), "sandbox", T0
    )
    audit = AuditEntry(at=T0, event="issued", from_state=InvoiceState.ISSUED, to_state=InvoiceState.ISSUED)
    repo.create(invoice, audit)
    return invoice.invoice_id


def index_key(repo: DynamoInvoiceRepository, invoice_id: str) -> dict[str, Any]:
    key = {"pk": {"S": invoice_pk("acme", invoice_id)}, "sk": {"S": "INVOICE"}}
    return dict(repo.client.get_item(TableName=repo._table, Key=key, ConsistentRead=True)["Item"])


def make_legacy(repo: DynamoInvoiceRepository, invoice_id: str) -> None:
    """The invoice as a release before sharding wrote it."""
    key = {"pk": {"S": invoice_pk("acme", invoice_id)}, "sk": {"S": "INVOICE"}}
    repo.client.update_item(
        TableName=repo._table,
        Key=key,
        UpdateExpression="SET gsi2pk = :o",
        ExpressionAttributeValues={":o": {"S": "OPEN"}},
    )


@pytest.mark.parametrize("workers", [1, 8])
def test_the_sweep_reads_every_shard_and_the_legacy_partition_earliest_due_first(
    repo: DynamoInvoiceRepository, workers: int
) -> None:
    repo.open_read_workers = workers
    # invoice n is due at T0 + 1000 - n seconds: the last issued is due first
    ids = [issue(repo, n, 1_000 - n) for n in range(120)]
    shards = {open_pk(i) for i in ids}
    assert shards == {f"OPEN#{k}" for k in range(OPEN_SHARDS)}  # every shard holds some
    assert all(index_key(repo, i)["gsi2pk"]["S"] == open_pk(i) for i in ids)
    legacy = ids[::10]
    for invoice_id in legacy:
        make_legacy(repo, invoice_id)

    everything = repo.open_invoices_due_before((T0 + timedelta(days=1)).isoformat(), limit=500)
    assert {i.invoice_id for i in everything} == set(ids)
    assert [i.invoice_id for i in everything] == list(reversed(ids))  # by due time, across shards and legacy
    assert set(legacy) <= {i.invoice_id for i in everything}

    first = repo.open_invoices_due_before((T0 + timedelta(days=1)).isoformat(), limit=25)
    assert [i.invoice_id for i in first] == list(reversed(ids))[:25]

    # only those due before the time: n > 900 is due before T0 + 100 s
    due = repo.open_invoices_due_before((T0 + timedelta(seconds=100)).isoformat(), limit=500)
    assert [i.invoice_id for i in due] == list(reversed(ids[901:]))


def test_the_backfill_moves_legacy_items_to_their_shard_once_and_nothing_else(repo: DynamoInvoiceRepository) -> None:
    ids = [issue(repo, n, 1_000 + n) for n in range(40)]
    for invoice_id in ids[:30]:
        make_legacy(repo, invoice_id)
    before = {i: index_key(repo, i) for i in ids}

    assert backfill(repo.client, repo._table, dry_run=True) == {"legacy": 30, "moved": 0, "skipped": 0}
    assert backfill(repo.client, repo._table) == {"legacy": 30, "moved": 30, "skipped": 0}

    for invoice_id in ids:
        after = index_key(repo, invoice_id)
        assert after["gsi2pk"] == {"S": open_pk(invoice_id)}
        assert {k: v for k, v in after.items() if k != "gsi2pk"} == {
            k: v for k, v in before[invoice_id].items() if k != "gsi2pk"
        }
    assert backfill(repo.client, repo._table) == {"legacy": 0, "moved": 0, "skipped": 0}  # idempotent
    found = repo.open_invoices_due_before((T0 + timedelta(days=1)).isoformat(), limit=500)
    assert [i.invoice_id for i in found] == ids


def test_the_legacy_key_is_the_unsharded_one() -> None:
    assert OPEN_PK == "OPEN" and not open_pk("x").endswith("#") and open_pk("x").startswith("OPEN#")
