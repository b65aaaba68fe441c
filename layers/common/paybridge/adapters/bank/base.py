"""The interface every bank statement source implements: pages of incoming transfers to one of our accounts, and
the bank's push, verified, as a hint to read them now."""

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


@dataclass(frozen=True)
class WebhookHint:
    """What a bank's push says, once verified: which account moved (None: read them all). Only a hint — the
    statement is read again, so nothing in a push is ever recorded as money."""

    account: str | None
    reference: str | None = None


class BankSource(Protocol):
    """A source of the company's statement: polled, and — where the bank pushes operations — its webhook. The
    source's registry name is the webhook route's last segment: `POST /bank/{tenant}/{source}`."""

    name: str

    def fetch(self, account: str, since: datetime, until: datetime, cursor: str | None) -> StatementPage:
        """One page of operations on `account` between `since` and `until` (aware datetimes), from `cursor` (None:
        the first page). Raises ProviderUnavailable on transient failures, ProviderRejected on permanent ones."""
        ...

    def verify_webhook(self, headers: dict[str, str], query: dict[str, str], body: bytes) -> WebhookHint:
        """Authenticate the bank's push first (InvalidSignature; also when this source has no webhook or none is
        configured), then parse it (MalformedNotification). Nothing is written either way."""
        ...
