"""The CRM's shared state on moto's DynamoDB: the OAuth token store (versioned pair + refresh lease) and the
per-account rate limiter (a token bucket item). A table of its own per test, not the local stack's: when the
session's stack is running, its mock is the outer one and keeps its data, so each test creates and drops its table."""

from __future__ import annotations

import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from paybridge.adapters.crm.base import RateLimit
from paybridge.adapters.crm.oauth import OAuthSession, TokenPair
from paybridge.adapters.errors import CrmRejected, CrmUnavailable
from paybridge.storage.crm_state import DynamoRateLimiter, DynamoTokenStore

T0 = 1_700_000_000.0


@dataclass(frozen=True)
class Db:
    client: Any
    table: str

    def item(self, pk: str, sk: str) -> dict[str, Any]:
        return dict(self.client.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})["Item"])


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> Iterator[Db]:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-central-1")
        table = f"paybridge-crm-state-{uuid.uuid4().hex[:8]}"
        client.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Db(client, table)
        client.delete_table(TableName=table)


class Counting:
    """A DynamoDB client that records the name of each call it passes on."""

    def __init__(self, client: Any, pause: float = 0.0) -> None:
        self._client, self._pause = client, pause
        self.exceptions = client.exceptions
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)

        def counted(**kwargs: Any) -> Any:
            self.calls.append(name)
            if self._pause:
                time.sleep(self._pause)
            return call(**kwargs)

        return counted


def pair(n: int, expires_at: int | None = None) -> TokenPair:
    return TokenPair(
        access_token=f"access-{n}",
        refresh_token=f"refresh-{n}",
        expires_at=int(time.time()) + 3600 if expires_at is None else expires_at,
    )


# -- token store ---------------------------------------------------------------------------------------------------


def test_seed_stores_the_first_pair_once(db: Db) -> None:
    store = DynamoTokenStore(db.table, client=db.client)

    assert store.load("acme") is None
    assert store.seed("acme", pair(1)) is True
    assert store.seed("acme", pair(2)) is False

    stored = store.load("acme")
    assert stored is not None
    assert stored.pair == pair(1, stored.pair.expires_at) and stored.version == 1 and stored.lease_until == 0.0
    assert db.item("OAUTH#acme", "TOKENS")["version"] == {"N": "1"}


def test_lease_is_refused_while_live_and_on_a_wrong_version(db: Db) -> None:
    store = DynamoTokenStore(db.table, client=db.client)
    store.seed("acme", pair(1))

    assert store.lease("acme", version=2, owner="a", until=T0 + 30, now=T0) is False  # wrong version
    assert store.lease("missing", version=1, owner="a", until=T0 + 30, now=T0) is False  # no item (none created)
    assert store.load("missing") is None

    assert store.lease("acme", version=1, owner="a", until=T0 + 30.5, now=T0) is True
    stored = store.load("acme")
    assert stored is not None and stored.lease_until == 30.5 + T0 and stored.version == 1
    assert db.item("OAUTH#acme", "TOKENS")["lease_owner"] == {"S": "a"}

    assert store.lease("acme", version=1, owner="b", until=T0 + 40, now=T0 + 10) is False  # still live
    assert store.lease("acme", version=1, owner="b", until=T0 + 61, now=T0 + 31) is True  # expired: taken over
    assert db.item("OAUTH#acme", "TOKENS")["lease_owner"] == {"S": "b"}


def test_save_writes_the_next_version_and_releases_the_lease(db: Db) -> None:
    store = DynamoTokenStore(db.table, client=db.client)
    store.seed("acme", pair(1))
    assert store.lease("acme", version=1, owner="a", until=T0 + 30, now=T0)

    assert store.save("acme", pair(2, 123), expected_version=2) is False  # wrong version: nothing written
    assert store.save("missing", pair(2, 123), expected_version=1) is False
    assert store.load("missing") is None
    assert store.save("acme", pair(2, 123), expected_version=1) is True
    assert store.save("acme", pair(3, 456), expected_version=1) is False  # a stale refresh cannot overwrite

    stored = store.load("acme")
    assert stored is not None
    assert stored.pair == pair(2, 123) and stored.version == 2 and stored.lease_until == 0.0
    item = db.item("OAUTH#acme", "TOKENS")
    assert "lease_until" not in item and "lease_owner" not in item
    assert store.lease("acme", version=2, owner="b", until=T0 + 30, now=T0) is True  # free again, at the new version


def test_concurrent_sessions_refresh_a_single_use_token_exactly_once(db: Db) -> None:
    from devstack.aws import LocalAws

    LocalAws._patch_dynamodb()  # moto's in-memory tables are not thread-safe; DynamoDB requests are atomic

    store = DynamoTokenStore(db.table, client=db.client)
    store.seed("acme", pair(1, expires_at=int(time.time()) - 10))  # expired
    used: set[str] = set()
    calls: list[str] = []
    guard = threading.Lock()

    def refresh(refresh_token: str) -> TokenPair:
        with guard:
            calls.append(refresh_token)
            if refresh_token in used:
                raise CrmRejected(f"refresh token {refresh_token} was already used")
            used.add(refresh_token)
        time.sleep(0.3)  # the CRM is slow: the others find the lease taken
        return pair(2)

    threads = 8
    barrier = threading.Barrier(threads)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        session = OAuthSession(store, "acme", refresh, clock=time.time)  # one per "process": its own lease owner
        barrier.wait()
        try:
            token = session.access_token()
        except BaseException as exc:
            with guard:
                errors.append(exc)
        else:
            with guard:
                results.append(token)

    pool = [threading.Thread(target=worker, name=f"session-{n}") for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)

    assert errors == []
    assert calls == ["refresh-1"]
    assert results == ["access-2"] * threads
    stored = store.load("acme")
    assert stored is not None
    assert stored.pair.refresh_token == "refresh-2" and stored.version == 2 and stored.lease_until == 0.0


# -- rate limiter --------------------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


def limiter(db: Db, fake: FakeTime, max_wait: float = 10.0) -> DynamoRateLimiter:
    return DynamoRateLimiter(db.table, client=db.client, clock=fake.clock, sleep=fake.sleep, max_wait_seconds=max_wait)


def test_the_burst_goes_at_once_then_per_second(db: Db) -> None:
    fake = FakeTime()
    throttle = limiter(db, fake)
    limit = RateLimit(per_second=2, burst=50)

    for _ in range(50):
        throttle("acme", limit)
    assert fake.slept == [] and fake.now == T0

    for _ in range(10):
        throttle("acme", limit)
    assert sum(fake.slept) == pytest.approx(5.0)
    assert fake.now - T0 == pytest.approx(5.0)
    assert all(s == pytest.approx(0.5) or s < 1e-6 for s in fake.slept)  # one token each; float dust at most


def test_the_bucket_item_refills_between_calls(db: Db) -> None:
    fake = FakeTime()
    throttle = limiter(db, fake)
    limit = RateLimit(per_second=2, burst=3)
    for _ in range(3):
        throttle("acme", limit)

    fake.now += 60  # idle: back to full, not to 120 tokens
    for _ in range(3):
        throttle("acme", limit)
    assert fake.slept == []
    throttle("acme", limit)
    assert sum(fake.slept) == pytest.approx(0.5)

    item = db.item("RATE#acme", "BUCKET")
    assert float(item["at"]["N"]) == pytest.approx(T0 + 60.5) and float(item["tokens"]["N"]) == pytest.approx(0.0)


def test_a_wait_over_the_maximum_raises_crm_unavailable(db: Db) -> None:
    fake = FakeTime()
    throttle = limiter(db, fake, max_wait=3.0)
    limit = RateLimit(per_second=0.25, burst=1)  # one request per 4 s

    throttle("acme", limit)
    with pytest.raises(CrmUnavailable, match="rate limit of acme"):
        throttle("acme", limit)
    assert fake.slept == []  # refused up front, nothing waited for nothing

    fake.now += 1.5  # 2.5 s to go: within the 3 s
    throttle("acme", limit)
    assert sum(fake.slept) == pytest.approx(2.5)


def test_accounts_have_their_own_buckets(db: Db) -> None:
    fake = FakeTime()
    throttle = limiter(db, fake)
    limit = RateLimit(per_second=1, burst=2)

    for account in ("acme", "globex", "acme", "globex"):
        throttle(account, limit)
    assert fake.slept == []

    throttle("acme", limit)
    assert sum(fake.slept) == pytest.approx(1.0)
    throttle("initech", limit)
    assert sum(fake.slept) == pytest.approx(1.0)


def test_a_lost_race_is_retried_at_once(db: Db) -> None:
    """Another consumer takes a token between our view of the bucket and our write: our conditional write fails and
    returns the item as it is now, and we take from that at once — no read."""
    fake = FakeTime()
    limit = RateLimit(per_second=1, burst=5)
    other = limiter(db, fake)
    other("acme", limit)  # the item exists
    interfering = {"left": 2}

    class Racing:
        def __init__(self, client: Any) -> None:
            self._client = client
            self.exceptions = client.exceptions
            self.reads = self.writes = 0

        def get_item(self, **kwargs: Any) -> Any:
            self.reads += 1
            return self._client.get_item(**kwargs)

        def update_item(self, **kwargs: Any) -> Any:
            self.writes += 1
            if interfering["left"]:
                interfering["left"] -= 1
                other("acme", limit)  # same instant: only `tokens` changes
            return self._client.update_item(**kwargs)

    racing = Racing(db.client)
    throttle = DynamoRateLimiter(db.table, client=racing, clock=fake.clock, sleep=fake.sleep)  # type: ignore[arg-type]

    throttle("acme", limit)

    assert racing.reads == 1 and racing.writes == 3 and fake.slept == []
    item = db.item("RATE#acme", "BUCKET")
    assert float(item["tokens"]["N"]) == pytest.approx(1.0)  # 5 - 1 (first) - 2 (interfering) - 1 (ours): none lost

    throttle("acme", limit)  # nobody else took one: one write, no read
    assert racing.reads == 1 and racing.writes == 4
    assert float(db.item("RATE#acme", "BUCKET")["tokens"]["N"]) == pytest.approx(0.0)


def test_a_stale_view_is_corrected_by_the_failed_write(db: Db) -> None:
    """Our view of the bucket is from our last take; others emptied it since: the failed write tells us, and we wait
    for the next token as the stored bucket says, not as our view did."""
    fake = FakeTime()
    limit = RateLimit(per_second=2, burst=3)
    ours, other = limiter(db, fake), limiter(db, fake)
    ours("acme", limit)  # ours sees 2 left
    other("acme", limit)
    other("acme", limit)  # 0 left
    ours("acme", limit)
    assert sum(fake.slept) == pytest.approx(0.5)
    assert float(db.item("RATE#acme", "BUCKET")["tokens"]["N"]) == pytest.approx(0.0)


def test_a_first_take_racing_another_first_take_is_retried(db: Db) -> None:
    fake = FakeTime()
    limit = RateLimit(per_second=1, burst=5)
    other = limiter(db, fake)
    done = {"once": False}

    class Racing:
        def __init__(self, client: Any) -> None:
            self._client = client
            self.exceptions = client.exceptions

        def get_item(self, **kwargs: Any) -> Any:
            response = self._client.get_item(**kwargs)
            if not done["once"]:
                done["once"] = True
                other("acme", limit)  # creates the item after we saw none
            return response

        def put_item(self, **kwargs: Any) -> Any:
            return self._client.put_item(**kwargs)

        def update_item(self, **kwargs: Any) -> Any:
            return self._client.update_item(**kwargs)

    DynamoRateLimiter(db.table, client=Racing(db.client), clock=fake.clock, sleep=fake.sleep)("acme", limit)  # type: ignore[arg-type]

    item = db.item("RATE#acme", "BUCKET")
    assert float(item["tokens"]["N"]) == pytest.approx(3.0)


def test_concurrent_takers_share_one_bucket(db: Db) -> None:
    """Real threads, real conditional writes: 4 consumers (a limiter each, as in 4 execution environments) x 10
    takes from a bucket of 20 at a (fake, frozen) instant -> exactly 20 go through without waiting, the rest would
    have to wait and are refused (max wait 0). Each request yields the GIL before it goes, so that the threads
    interleave between their view of the bucket and their write (otherwise a thread mostly runs both in one
    slice)."""
    from devstack.aws import LocalAws

    LocalAws._patch_dynamodb()

    class Yielding:
        def __init__(self, client: Any) -> None:
            self._client = client
            self.exceptions = client.exceptions

        def __getattr__(self, name: str) -> Any:
            call = getattr(self._client, name)

            def yielding(**kwargs: Any) -> Any:
                time.sleep(0.001)
                return call(**kwargs)

            return yielding

    fake = FakeTime()
    limit = RateLimit(per_second=1, burst=20)
    granted: list[str] = []
    refused: list[str] = []
    guard = threading.Lock()
    barrier = threading.Barrier(4)

    # made here, not on the threads: botocore makes a client's exception classes on first use, and two threads at
    # once can each make their own (the one raised is then not the one caught)
    limiters = [
        DynamoRateLimiter(
            db.table,
            client=Yielding(db.client),  # type: ignore[arg-type]
            clock=fake.clock,
            sleep=fake.sleep,
            max_wait_seconds=0.0,
        )
        for _ in range(4)
    ]

    def worker(throttle: DynamoRateLimiter) -> None:
        barrier.wait()
        for _ in range(10):
            try:
                throttle("acme", limit)
            except CrmUnavailable:
                outcome = refused
            else:
                outcome = granted
            with guard:
                outcome.append(uuid.uuid4().hex)

    pool = [threading.Thread(target=worker, args=(throttle,)) for throttle in limiters]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)

    assert len(granted) == 20 and len(refused) == 20
    assert float(db.item("RATE#acme", "BUCKET")["tokens"]["N"]) == pytest.approx(0.0)


def test_one_processs_threads_take_one_at_a_time(db: Db) -> None:
    """One limiter (one process) shared by 4 threads: they never race each other at the table — one write per
    take, one read in all."""
    from devstack.aws import LocalAws

    LocalAws._patch_dynamodb()

    fake, counting = FakeTime(), Counting(db.client, pause=0.001)  # yield the GIL between the view and the write
    throttle = DynamoRateLimiter(db.table, client=counting, clock=fake.clock, sleep=fake.sleep)  # type: ignore[arg-type]
    limit = RateLimit(per_second=1, burst=40)
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        for _ in range(10):
            throttle("acme", limit)

    pool = [threading.Thread(target=worker) for _ in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)

    assert sorted(set(counting.calls)) == ["get_item", "put_item", "update_item"]
    assert counting.calls.count("get_item") == 1 and len(counting.calls) == 41  # 1 read, 1 put, 39 updates
    assert float(db.item("RATE#acme", "BUCKET")["tokens"]["N"]) == pytest.approx(0.0) and fake.slept == []


class TestEchoLedger:
    """Our deal writes remembered until their change events come back (no deal read for an echo)."""

    def test_each_expected_echo_is_taken_once(self, db: Db) -> None:
        from paybridge.storage.crm_state import DynamoEchoLedger

        now = [1_000.0]
        ledger = DynamoEchoLedger(db.table, db.client, clock=lambda: now[0], window_seconds=60)
        # Given two writes to deal 7 about to be sent
        ledger.expect("acme", {"7": 2})
        # When three change events of deal 7 arrive, Then the first two are our echoes, the third is not
        assert [ledger.take("acme", "7") for _ in range(3)] == [True, True, False]
        assert not ledger.take("acme", "8")  # nothing was written to deal 8
        assert not ledger.take("other", "7")  # nor to another tenant's deal 7

    def test_an_echo_that_never_came_does_not_swallow_later_events(self, db: Db) -> None:
        from paybridge.storage.crm_state import DynamoEchoLedger

        now = [1_000.0]
        ledger = DynamoEchoLedger(db.table, db.client, clock=lambda: now[0], window_seconds=60)
        ledger.expect("acme", {"7": 1})
        now[0] += 61  # the window passed: the CRM lost that event
        assert not ledger.take("acme", "7")
        ledger.expect("acme", {"7": 1})  # a stale count starts again from the new one
        assert [ledger.take("acme", "7") for _ in range(2)] == [True, False]

    def test_a_full_request_is_expected_in_two_requests_keeping_counts_in_their_window(self, db: Db) -> None:
        from paybridge.storage.crm_state import DynamoEchoLedger

        now = [1_000.0]
        ledger = DynamoEchoLedger(db.table, db.client, clock=lambda: now[0], window_seconds=60)
        # Given deals 0-2 with an echo still pending from a write 30 s ago, and deals 3-4 with one the CRM never sent
        ledger.expect("acme", {"3": 2, "4": 1})
        now[0] += 30
        ledger.expect("acme", {"0": 1, "1": 1, "2": 1})
        now[0] += 31  # deals 3-4's window passed, deals 0-2's did not
        # When a CRM request writes 30 deals (two stage writes to deal 5)
        counting = Counting(db.client)
        batched = DynamoEchoLedger(db.table, counting, clock=lambda: now[0], window_seconds=60)  # type: ignore[arg-type]
        batched.expect("acme", {str(d): 2 if d == 5 else 1 for d in range(30)} | {"99": 0})
        # Then one read and two batch writes (25 + 2 new counts) and one exact sum for each of deals 0-2
        assert counting.calls == ["batch_get_item", "batch_write_item", "batch_write_item"] + ["update_item"] * 3
        # and every deal's echoes are taken exactly as many times as they will come
        taken = {d: 0 for d in [*map(str, range(30)), "99"]}
        for deal_id in taken:
            while ledger.take("acme", deal_id):
                taken[deal_id] += 1
        assert taken == {str(d): 2 if d in (0, 1, 2, 5) else 1 for d in range(30)} | {"99": 0}
        assert int(db.item("ECHO#acme#3", "ECHO")["until"]["N"]) == int(now[0]) + 60  # a new window, and its TTL
        assert int(db.item("ECHO#acme#3", "ECHO")["ttl"]["N"]) == int(now[0]) + 60 + 3600

    def test_two_deals_are_expected_one_request_each(self, db: Db) -> None:
        from paybridge.storage.crm_state import DynamoEchoLedger

        counting = Counting(db.client)
        DynamoEchoLedger(db.table, counting).expect("acme", {"7": 1, "8": 1})  # type: ignore[arg-type]
        assert counting.calls == ["update_item", "update_item"]

    def test_writes_not_sent_expect_no_echo(self, db: Db) -> None:
        from paybridge.storage.crm_state import DynamoEchoLedger

        ledger = DynamoEchoLedger(db.table, db.client)
        ledger.expect("acme", {"7": 1, "9": 1})
        ledger.cancel("acme", {"7": 1})
        assert not ledger.take("acme", "7")
        assert ledger.take("acme", "9")


class TestEchoesAndAManager:
    """Through `Issuing.issue_from_crm` (the webhook's service) with the real Bitrix24 adapter and the ledger on
    moto: our echo needs no read, and a manager's change in the same window is still read."""

    def issuing(self, db: Db, published: list[Any]) -> Any:
        from paybridge.adapters.crm.bitrix24 import Bitrix24, Bitrix24Settings
        from paybridge.app.issuing import Issuing
        from paybridge.storage.crm_state import DynamoEchoLedger
        from paybridge.tenants import TenantConfig

        settings = Bitrix24Settings.model_validate(
            {
                "kind": "bitrix24",
                "portal": "shop.bitrix24.ru",
                "auth": {"kind": "webhook", "url": {"value": "https://shop.bitrix24.ru/rest/1/x/"}},
                "application_token": {"value": "app-token"},
                "trigger": {"kind": "stage", "stage_id": "PREPAYMENT_INVOICE"},
            }
        )
        tenant = TenantConfig.model_validate(
            {
                "tenant_id": "shop",
                "name": "Shop",
                "api_keys_sha256": ["0" * 64],
                "psp": {"provider": "sandbox", "base_url": "https://psp.test", "secret": {"value": "sandbox-secret"}},
                "crm": settings.model_dump(mode="json"),
                "stages": {"issued": "NEW", "awaiting_payment": "UC_AWAITING", "paid": "WON"},
            }
        )
        crm = Bitrix24(settings, "app-token", "https://shop.bitrix24.ru/rest/1/x/")

        class Tenants:
            def get(self, tenant_id: str) -> TenantConfig:
                assert tenant_id == "shop"
                return tenant

        class Outbox:
            def publish(self, message: Any) -> None:
                published.append(message)

        self.ledger = DynamoEchoLedger(db.table, db.client)
        return Issuing(Tenants(), None, None, None, lambda _t: crm, Outbox(), echoes=self.ledger)  # type: ignore[arg-type]

    @staticmethod
    def event(deal_id: str) -> bytes:
        form = {
            "event": "ONCRMDEALUPDATE",
            "data[FIELDS][ID]": deal_id,
            "auth[application_token]": "app-token",
            "auth[domain]": "shop.bitrix24.ru",
        }
        return urllib.parse.urlencode(form).encode()

    def test_our_echo_is_known_and_a_managers_change_in_the_same_window_is_read(self, db: Db) -> None:
        published: list[Any] = []
        issuing = self.issuing(db, published)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        # Given our consumer about to write deal 7's stage once (one echo expected)
        self.ledger.expect("shop", {"7": 1})
        # When two change events of deal 7 arrive (our write's and a manager's move, in either order)
        first = issuing.issue_from_crm("shop", "bitrix24", headers, self.event("7"))
        second = issuing.issue_from_crm("shop", "bitrix24", headers, self.event("7"))
        # Then one is taken as our echo (no read) and the other becomes a check that reads the deal: what the
        # manager did is seen whichever event came first (the check reads the deal as it is now)
        assert (first.echoes, second.echoes) == (1, 0)
        assert (first.checks, second.checks) == (0, 1)
        assert [(m.deal_id, m.when_stage) for m in published] == [("7", "PREPAYMENT_INVOICE")]
        # and with nothing of ours pending, every event of another deal is read
        third = issuing.issue_from_crm("shop", "bitrix24", headers, self.event("8"))
        assert (third.echoes, third.checks) == (0, 1)
