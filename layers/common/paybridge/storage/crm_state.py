"""CRM state shared by every outbox consumer, in the same single table as the invoices. Every write is conditional.

Items
- OAuth tokens:   pk=OAUTH#<key>       sk=TOKENS   access_token, refresh_token, expires_at (N, epoch seconds),
                  version (N, 1 on the first pair, +1 per refresh), lease_until (N, epoch seconds, float) and
                  lease_owner while a refresh is in flight (see paybridge.adapters.crm.oauth)
- rate bucket:    pk=RATE#<account>    sk=BUCKET   tokens (N, float), at (N, epoch seconds, float): the account's
                  token bucket as of `at` (see paybridge.domain.ratelimit); absent = full
- echoes:         pk=ECHO#<tenant>#<deal>  sk=ECHO  pending (N: our deal writes whose change event has not come
                  back yet), until (N, epoch seconds: after it, nothing pending counts), ttl
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from paybridge.adapters.crm.base import RateLimit
from paybridge.adapters.crm.oauth import StoredTokens, TokenPair
from paybridge.adapters.errors import CrmUnavailable
from paybridge.domain.ratelimit import Bucket, take
from paybridge.storage.table import TableStore, _n, _s

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TOKENS_SK = "TOKENS"
BUCKET_SK = "BUCKET"
ECHO_SK = "ECHO"


def _f(value: float) -> dict[str, str]:
    """A float as a DynamoDB number: its shortest exact decimal, never in exponent notation."""
    return {"N": format(Decimal(repr(float(value))), "f")}


def _tokens_key(key: str) -> dict[str, Any]:
    return {"pk": _s(f"OAUTH#{key}"), "sk": _s(TOKENS_SK)}


def _bucket_key(account: str) -> dict[str, Any]:
    return {"pk": _s(f"RATE#{account}"), "sk": _s(BUCKET_SK)}


class DynamoTokenStore(TableStore):
    """`TokenStore` (paybridge.adapters.crm.oauth) on one item per account."""

    def load(self, key: str) -> StoredTokens | None:
        response = self.client.get_item(TableName=self._table, Key=_tokens_key(key), ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return None
        pair = TokenPair(
            access_token=item["access_token"]["S"],
            refresh_token=item["refresh_token"]["S"],
            expires_at=int(item["expires_at"]["N"]),
        )
        lease_until = float(item["lease_until"]["N"]) if "lease_until" in item else 0.0
        return StoredTokens(pair=pair, version=int(item["version"]["N"]), lease_until=lease_until)

    def seed(self, key: str, pair: TokenPair) -> bool:
        try:
            self.client.put_item(
                TableName=self._table,
                Item={
                    **_tokens_key(key),
                    "access_token": _s(pair.access_token),
                    "refresh_token": _s(pair.refresh_token),
                    "expires_at": _n(pair.expires_at),
                    "version": _n(1),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def lease(self, key: str, version: int, owner: str, until: float, now: float) -> bool:
        try:
            self.client.update_item(
                TableName=self._table,
                Key=_tokens_key(key),
                UpdateExpression="SET #lu = :until, #lo = :owner",
                ConditionExpression="#v = :v AND (attribute_not_exists(#lu) OR #lu < :now)",
                ExpressionAttributeNames={"#v": "version", "#lu": "lease_until", "#lo": "lease_owner"},
                ExpressionAttributeValues={
                    ":v": _n(version),
                    ":until": _f(until),
                    ":owner": _s(owner),
                    ":now": _f(now),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def save(self, key: str, pair: TokenPair, expected_version: int) -> bool:
        try:
            self.client.update_item(
                TableName=self._table,
                Key=_tokens_key(key),
                UpdateExpression="SET #at = :at, #rt = :rt, #exp = :exp, #v = :next REMOVE #lu, #lo",
                ConditionExpression="#v = :expected",
                ExpressionAttributeNames={
                    "#at": "access_token",
                    "#rt": "refresh_token",
                    "#exp": "expires_at",
                    "#v": "version",
                    "#lu": "lease_until",
                    "#lo": "lease_owner",
                },
                ExpressionAttributeValues={
                    ":at": _s(pair.access_token),
                    ":rt": _s(pair.refresh_token),
                    ":exp": _n(pair.expires_at),
                    ":next": _n(expected_version + 1),
                    ":expected": _n(expected_version),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


class DynamoRateLimiter(TableStore):
    """A `Throttle` (paybridge.adapters.crm.base) shared by every consumer: one token bucket item per account.

    Each take computes the bucket (paybridge.domain.ratelimit) from the item as this process last saw it and writes
    it back conditional on that: one request when nobody else took a token since. A lost race fails the condition,
    and the failed write returns the item as it is (`ReturnValuesOnConditionCheckFailure`), so the take is computed
    again from it at once, without a read. Only the process's first take of an account reads the item, and the
    process's takes go one at a time, so its threads (the local stack's consumers) never lose a race to each
    other. (A stale view is never too strict: the stored bucket only loses tokens to other takes, so the view has
    at least as many.)
    An empty bucket is waited out with `sleep`, up to `max_wait_seconds` in all; past that, CrmUnavailable (the
    work is retried later, the queue keeps it)."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait_seconds: float = 10.0,
    ):
        super().__init__(table_name, client)
        self._clock, self._sleep, self._max_wait = clock, sleep, max_wait_seconds
        #: account -> the bucket item as last written or seen by this process (None: there was none)
        self._seen: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def __call__(self, account: str, limit: RateLimit) -> None:
        started = self._clock()
        # The process's own takes go one at a time (its threads never race each other at the table: a lost race
        # costs a failed write); waiting here is waiting for the bucket, within the same maximum.
        if not self._lock.acquire(timeout=self._max_wait):
            raise CrmUnavailable(f"rate limit of {account}: other takes held the bucket over {self._max_wait:.1f}s")
        try:
            self._take(account, limit, started)
        finally:
            self._lock.release()

    def _take(self, account: str, limit: RateLimit, started: float) -> None:
        if account in self._seen:
            item = self._seen[account]
        else:
            response = self.client.get_item(TableName=self._table, Key=_bucket_key(account), ConsistentRead=True)
            item = response.get("Item")
        while True:
            old = Bucket(tokens=float(item["tokens"]["N"]), at=float(item["at"]["N"])) if item else None
            now = self._clock()
            new, wait = take(old, now, limit.per_second, limit.burst)
            if new is not None:
                written, item = self._write(account, new, item)
                self._seen[account] = item
                if written:
                    return
                if now - started > self._max_wait:  # pragma: no cover - endless contention
                    raise CrmUnavailable(f"rate limit of {account}: the bucket kept moving for {now - started:.1f}s")
                continue
            if now + wait - started > self._max_wait:
                raise CrmUnavailable(
                    f"rate limit of {account}: the next request may go in {wait:.1f}s, "
                    f"over the {self._max_wait:.1f}s we wait ({limit.per_second}/s, burst {limit.burst})"
                )
            self._sleep(wait)

    def _write(self, account: str, bucket: Bucket, read: dict[str, Any] | None) -> tuple[bool, dict[str, Any] | None]:
        """Store the bucket if the item is still what we `read`: (True, the item written), or (False, the item as
        the failed condition found it). A write either moves `at` forward or keeps it (same instant, or a clock
        behind the stored one) and takes a token, so (`at`, `tokens`) never comes back to a value it had: the
        condition on both, compared as the numbers read, catches every concurrent take."""
        written = {"tokens": _f(bucket.tokens), "at": _f(bucket.at)}
        try:
            if read is None:
                self.client.put_item(
                    TableName=self._table,
                    Item={**_bucket_key(account), **written},
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            else:
                self.client.update_item(
                    TableName=self._table,
                    Key=_bucket_key(account),
                    UpdateExpression="SET #t = :tokens, #at = :at",
                    ConditionExpression="#at = :old_at AND #t = :old_tokens",
                    ExpressionAttributeNames={"#t": "tokens", "#at": "at"},
                    ExpressionAttributeValues={
                        ":tokens": written["tokens"],
                        ":at": written["at"],
                        ":old_at": read["at"],
                        ":old_tokens": read["tokens"],
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            current: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            return False, dict(current) if current else None
        return True, {**_bucket_key(account), **written}


#: up to this many deals, `DynamoEchoLedger.expect` updates each (one request each); above, a read and a write for all
ONE_BY_ONE = 2


def _echo_key(tenant_id: str, deal_id: str) -> dict[str, Any]:
    return {"pk": _s(f"ECHO#{tenant_id}#{deal_id}"), "sk": _s(ECHO_SK)}


class DynamoEchoLedger(TableStore):
    """`EchoLedger` (paybridge.app.deal_delivery): what we wrote, remembered until its change event comes back.

    Before the consumer sends a deal write whose CRM raises a change event at us (Bitrix24's ONCRMDEALUPDATE, which
    carries only the deal id), it adds the number of such writes to the deal's `pending` count, good for
    `window_seconds`; each such event that arrives while something is pending takes one (a conditional decrement)
    and is known as our own echo — no deal read. An event with nothing pending (a manager's edit) is read as
    before. Two changes in one window (ours and a manager's) raise two events: one takes our count, the other is
    read, so a manager's move into the trigger stage is still seen — unless the CRM lost the event of our write."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        clock: Callable[[], float] = time.time,
        window_seconds: int = 120,
    ):
        super().__init__(table_name, client)
        self._clock, self._window = clock, window_seconds

    def expect(self, tenant_id: str, counts: dict[str, int]) -> None:
        """Add each deal's count of writes about to be sent. A few deals: one conditional update each. More (a full
        CRM request holds ~25): two requests for all — one consistent `BatchGetItem` tells which deals still have a
        count in its window (those get the conditional update, the exact sum), and one `BatchWriteItem` puts the
        others' new counts outright (no count, or one whose window passed: nothing of it is worth keeping, and
        nothing races the put — one consumer at a time writes a deal, its FIFO group, and a `take` of an expired
        count fails). Was one request per deal: 25 round trips before every CRM request."""
        wanted = {deal_id: count for deal_id, count in counts.items() if count > 0}
        now = int(self._clock())
        if len(wanted) <= ONE_BY_ONE:
            for deal_id, count in wanted.items():
                self._add(tenant_id, deal_id, count, now)
            return
        live = {
            item["pk"]["S"].removeprefix(f"ECHO#{tenant_id}#")
            for item in self._batch_get([_echo_key(tenant_id, deal_id) for deal_id in wanted])
            if int(item.get("until", {}).get("N", "0")) >= now
        }
        until, ttl = self._window_ends(now)
        self._batch_put(
            [
                {**_echo_key(tenant_id, deal_id), "pending": _n(count), "until": until, "ttl": ttl}
                for deal_id, count in wanted.items()
                if deal_id not in live
            ]
        )
        for deal_id in live:
            self._add(tenant_id, deal_id, wanted[deal_id], now)

    def _window_ends(self, now: int) -> tuple[dict[str, str], dict[str, str]]:
        """A count written now: until when it is good, and when the table may drop its item (TTL)."""
        return _n(now + self._window), _n(now + self._window + 3600)

    def _add(self, tenant_id: str, deal_id: str, count: int, now: int) -> None:
        names = {"#until": "until", "#ttl": "ttl"}
        until, ttl = self._window_ends(now)
        values = {":n": _n(count), ":until": until, ":ttl": ttl}
        try:  # a first count, or add to one still in its window: one request either way
            self.client.update_item(
                TableName=self._table,
                Key=_echo_key(tenant_id, deal_id),
                UpdateExpression="SET pending = if_not_exists(pending, :zero) + :n, #until = :until, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(pk) OR #until >= :now",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={**values, ":now": _n(now), ":zero": _n(0)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            # one whose window passed (an echo the CRM never sent): start again from this count.
            # One consumer at a time writes a deal (its FIFO group), so nothing races this.
            self.client.update_item(
                TableName=self._table,
                Key=_echo_key(tenant_id, deal_id),
                UpdateExpression="SET pending = :n, #until = :until, #ttl = :ttl",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def cancel(self, tenant_id: str, counts: dict[str, int]) -> None:
        """The writes were not sent after all (the request failed as a whole): no echo will come for them."""
        for deal_id, count in counts.items():
            try:
                self.client.update_item(
                    TableName=self._table,
                    Key=_echo_key(tenant_id, deal_id),
                    UpdateExpression="SET pending = pending - :n",
                    ConditionExpression="pending >= :n",
                    ExpressionAttributeValues={":n": _n(count)},
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                continue

    def take(self, tenant_id: str, deal_id: str) -> bool:
        """A change event of this deal arrived: True (and one fewer pending) when it is the echo of our write."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key=_echo_key(tenant_id, deal_id),
                UpdateExpression="SET pending = pending - :one",
                ConditionExpression="pending >= :one AND #until >= :now",
                ExpressionAttributeNames={"#until": "until"},
                ExpressionAttributeValues={":one": _n(1), ":now": _n(int(self._clock()))},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
