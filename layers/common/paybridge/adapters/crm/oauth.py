"""OAuth 2 access for CRMs whose refresh tokens are single-use (amoCRM, Bitrix24 apps).

A refresh answers a new access token *and a new refresh token*; the old refresh token is dead from then on. Losing
the new pair means the integration must be re-installed by hand, so:
- the pair lives in one store item per account with a version; every write is conditional on the version read;
- only one caller refreshes at a time: it first takes a short lease on the item (conditional on the version and on
  no live lease); the others wait for the version to change and use the new pair;
- the new pair is written conditional on the version the refresh started from, so no concurrent write can replace
  it with an older one. The lease is only a guard against wasting the refresh token; correctness rests on the
  version.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ConfigDict

from paybridge.adapters.errors import CrmRejected, CrmUnavailable
from paybridge.domain.model import Model
from paybridge.redaction import register_secret

#: Refresh this long before the access token's expiry.
EARLY_SECONDS = 120
#: How long a refresh may hold the lease.
LEASE_SECONDS = 30


class TokenPair(Model):
    model_config = ConfigDict(frozen=True)
    access_token: str
    refresh_token: str
    expires_at: int  # epoch seconds

    def model_post_init(self, context: Any, /) -> None:
        register_secret(self.access_token)  # every pair we see, fetched or loaded, is masked in the logs
        register_secret(self.refresh_token)


class StoredTokens(Model):
    model_config = ConfigDict(frozen=True)
    pair: TokenPair
    version: int
    lease_until: float = 0.0


class TokenStore(Protocol):
    def load(self, key: str) -> StoredTokens | None: ...

    def seed(self, key: str, pair: TokenPair) -> bool:
        """Store the first pair unless one exists (version 1)."""
        ...

    def lease(self, key: str, version: int, owner: str, until: float, now: float) -> bool:
        """Take the refresh lease if the item is still at `version` and no lease is live."""
        ...

    def save(self, key: str, pair: TokenPair, expected_version: int) -> bool:
        """Write the new pair (version + 1, lease released) if the item is still at `expected_version`."""
        ...


class OAuthSession:
    """A valid access token for one CRM account, refreshed at most once at a time across every process."""

    def __init__(
        self,
        store: TokenStore,
        key: str,
        refresh: Callable[[str], TokenPair],
        initial: TokenPair | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        wait_seconds: float = 10.0,
    ):
        self._store, self._key, self._refresh, self._initial = store, key, refresh, initial
        self._clock, self._sleep, self._wait = clock, sleep, wait_seconds
        self._owner = uuid.uuid4().hex

    def access_token(self) -> str:
        deadline = self._clock() + self._wait
        while True:
            stored = self._current()
            now = self._clock()
            if stored.pair.expires_at - EARLY_SECONDS > now:
                return stored.pair.access_token
            if self._store.lease(self._key, stored.version, self._owner, now + LEASE_SECONDS, now):
                return self._refresh_from(stored)
            if self._clock() > deadline:
                raise CrmUnavailable(f"{self._key}: another process is refreshing the OAuth token; try again")
            self._sleep(0.2)

    def invalidate(self) -> str:
        """The CRM said 401 to a token we thought valid: refresh now (once across processes) and return the new one."""
        stored = self._current()
        now = self._clock()
        if self._store.lease(self._key, stored.version, self._owner, now + LEASE_SECONDS, now):
            return self._refresh_from(stored)
        return self.access_token()

    def _current(self) -> StoredTokens:
        stored = self._store.load(self._key)
        if stored is None:
            if self._initial is None:
                raise CrmRejected(f"{self._key}: no OAuth tokens stored; install the integration first")
            self._store.seed(self._key, self._initial)
            stored = self._store.load(self._key)
            if stored is None:  # pragma: no cover - the store just wrote it
                raise CrmUnavailable(f"{self._key}: the token store lost the first pair")
        return stored

    def _refresh_from(self, stored: StoredTokens) -> str:
        pair = self._refresh(stored.pair.refresh_token)  # CrmRejected: the refresh token is dead (re-install)
        if not self._store.save(self._key, pair, stored.version):  # pragma: no cover - only if the lease was broken
            raise CrmUnavailable(f"{self._key}: the token item moved during our refresh; the newer pair stands")
        return pair.access_token


class MemoryTokenStore:
    """The store's contract in memory (tests)."""

    def __init__(self) -> None:
        import threading

        self._items: dict[str, StoredTokens] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> StoredTokens | None:
        return self._items.get(key)

    def seed(self, key: str, pair: TokenPair) -> bool:
        with self._lock:
            if key in self._items:
                return False
            self._items[key] = StoredTokens(pair=pair, version=1)
            return True

    def lease(self, key: str, version: int, owner: str, until: float, now: float) -> bool:
        with self._lock:
            item = self._items.get(key)
            if item is None or item.version != version or item.lease_until > now:
                return False
            self._items[key] = item.model_copy(update={"lease_until": until})
            return True

    def save(self, key: str, pair: TokenPair, expected_version: int) -> bool:
        with self._lock:
            item = self._items.get(key)
            if item is None or item.version != expected_version:
                return False
            self._items[key] = StoredTokens(pair=pair, version=expected_version + 1)
            return True
