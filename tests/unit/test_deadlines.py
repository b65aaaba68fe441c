"""The deadline sweep starts each due invoice's expiry once per attempt (app/deadlines.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from paybridge.app.deadlines import Deadlines, expiry_name
from paybridge.domain.invoice import Invoice

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def invoice(number: str, expires_in: timedelta, reissues: dict[str, int] | None = None) -> Invoice:
    return Invoice.model_validate(
        {
            "tenant_id": "acme",
            "invoice_id": "inv_" + {"1": "b", "2": "c", "3": "d"}[number] * 26,
            "deal_id": number,
            "number": number,
            "amount": 1_000,
            "currency": "RUB",
            "provider": "sandbox",
            "created_at": NOW - timedelta(days=1),
            "expires_at": NOW + expires_in,
            "reissues": reissues or {},
        }
    )


class Repo:
    def __init__(self, *invoices: Invoice) -> None:
        self.invoices = invoices
        self.asked: list[tuple[str, int]] = []

    def open_invoices_due_before(self, iso_time: str, limit: int = 100) -> list[Invoice]:
        self.asked.append((iso_time, limit))
        return [i for i in self.invoices if i.expires_at.isoformat() < iso_time][:limit]


class Engine:
    def __init__(self) -> None:
        self.started: set[str] = set()

    def start(self, tenant_id: str, invoice_id: str, name: str | None = None) -> None:
        raise AssertionError("the sweep only expires")

    def expire(self, tenant_id: str, invoice_id: str, name: str) -> bool:
        if name in self.started:
            return False
        self.started.add(name)
        return True


def test_only_invoices_past_their_deadline_are_expired_and_a_second_run_starts_nothing() -> None:
    due, later = invoice("1", -timedelta(seconds=5)), invoice("2", timedelta(minutes=5))
    repo, engine = Repo(due, later), Engine()
    sweep = Deadlines(repo, engine, lambda: NOW)  # type: ignore[arg-type]

    first = sweep.run()
    assert (first.due, first.started) == (1, 1)
    assert engine.started == {f"{due.invoice_id}-expiry"}
    assert repo.asked == [(NOW.isoformat(), 500)]
    second = sweep.run()
    assert (second.due, second.started) == (1, 0)


def test_a_reissued_attempt_has_an_expiry_of_its_own() -> None:
    first, reissued = invoice("3", -timedelta(seconds=1)), invoice("3", -timedelta(seconds=1), {"key-1": 2})
    assert expiry_name(first) == f"{first.invoice_id}-expiry"
    assert expiry_name(reissued) == f"{first.invoice_id}-a2-expiry"
    engine: Any = Engine()
    sweep = Deadlines(Repo(first), engine, lambda: NOW)  # type: ignore[arg-type]
    assert sweep.expire(first) and sweep.expire(reissued) and not sweep.expire(first)
