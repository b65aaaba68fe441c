"""The interface every bank statement source implements: one page of incoming transfers to one of our accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from paybridge.domain.bank import StatementLine


@dataclass(frozen=True)
class StatementPage:
    #: The incoming, confirmed transfers on the page (debits, unconfirmed and foreign-currency operations dropped).
    lines: tuple[StatementLine, ...]
    #: Where the next page starts; None when this page is the last one.
    next_cursor: str | None
    #: How many operations the page held before filtering (a page of only debits has no lines but is not empty).
    seen: int


class BankSource(Protocol):
    name: str

    def fetch(self, account: str, since: datetime, until: datetime, cursor: str | None) -> StatementPage:
        """One page of operations on `account` between `since` and `until` (aware datetimes), from `cursor` (None:
        the first page). Raises ProviderUnavailable on transient failures, ProviderRejected on permanent ones."""
        ...
