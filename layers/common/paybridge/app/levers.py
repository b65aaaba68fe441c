"""What every lever a person pulls shares: idempotency by the person's `Idempotency-Key`, who and why, and one
outcome that a repeat gets back.

`LeverRunner.run` keeps one rule for all of them:
1. a key already used for another request (another lever, target or body) is refused (409), nothing done;
2. a key whose request finished answers that request's outcome, nothing done again;
3. otherwise the lever validates everything it can, then calls `commit()` — the key is claimed for this request,
   the first write — and does its work, each step of which is itself keyed (a receipt `manual:<key>`, a reissue
   under the key, an event record per invoice), so a twin of the request running at the same moment, or a retry
   after a crash, completes the same work and never adds to it;
4. the first outcome stored under the key is the one every request with the key answers.
Bad input fails in step 3 before `commit()`, so it writes nothing and leaves the key free.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import ConfigDict

from paybridge.app.changes import Actor
from paybridge.domain.invoice import Invoice
from paybridge.domain.model import Model
from paybridge.storage.errors import IdempotencyKeyReused
from paybridge.storage.lever_keys import LeverKey

LeverName = Literal["manual_payment", "reissue", "deal_resync", "bank_resolve", "customer_erase"]


class LeverKeyStore(Protocol):
    def get(self, tenant_id: str, key: str) -> LeverKey | None: ...

    def claim(self, tenant_id: str, key: str, fingerprint: str, lever: str, actor: str) -> LeverKey: ...

    def complete(self, tenant_id: str, key: str, fingerprint: str, result: str) -> tuple[str, bool]: ...


@dataclass(frozen=True)
class LeverRequest:
    tenant_id: str
    key: str
    lever: LeverName
    #: What the lever acts on: an invoice id, a deal id, a bank line's fingerprint.
    target: str
    #: The request's body as given (its canonical JSON is part of the fingerprint).
    body: dict[str, Any]
    actor: Actor

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps([self.lever, self.target, self.body], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


class LeverOutcome(Model):
    """What a lever did, stored under its key and answered to every request with the key."""

    model_config = ConfigDict(frozen=True)
    lever: LeverName
    key: str
    actor: str
    reason: str
    target: str
    detail: str = ""
    invoices: tuple[Invoice, ...] = ()


@dataclass(frozen=True)
class LeverResult:
    outcome: LeverOutcome
    #: The outcome is an earlier request's (a repeat with the same key, or a twin that finished first).
    replayed: bool


Commit = Callable[[], None]


@dataclass
class LeverRunner:
    keys: LeverKeyStore

    def run(self, request: LeverRequest, lever: Callable[[Commit], LeverOutcome]) -> LeverResult:
        """Run `lever` once for the key: it validates, calls `commit()` before its first write, and does its work."""
        known = self.keys.get(request.tenant_id, request.key)
        if known is not None and known.fingerprint != request.fingerprint:
            raise IdempotencyKeyReused(_reused(request, known))
        if known is not None and known.result is not None:
            return LeverResult(LeverOutcome.model_validate_json(known.result), replayed=True)

        def commit() -> None:
            try:
                self.keys.claim(request.tenant_id, request.key, request.fingerprint, request.lever, request.actor.who)
            except IdempotencyKeyReused:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {request.key!r} was just used for another request; use a new key"
                ) from None

        try:
            outcome = lever(commit)
        except Exception:
            # A concurrent identical request (same key, same body) may have done the work between our read of the key
            # and our checks — then the checks see its effect ("already holds money from this line"). Its outcome is
            # ours: answer it, as a repeat would be answered.
            replay = self._outcome_of_concurrent(request)
            if replay is not None:
                return replay
            raise
        stored, first = self.keys.complete(
            request.tenant_id, request.key, request.fingerprint, outcome.model_dump_json()
        )
        return LeverResult(LeverOutcome.model_validate_json(stored), replayed=not first)

    def _outcome_of_concurrent(self, request: LeverRequest, wait_seconds: float = 10.0) -> LeverResult | None:
        deadline = time.monotonic() + wait_seconds
        while True:
            known = self.keys.get(request.tenant_id, request.key)
            if known is None or known.fingerprint != request.fingerprint:
                return None  # nobody else holds this key: the error is ours
            if known.result is not None:
                return LeverResult(LeverOutcome.model_validate_json(known.result), replayed=True)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


def _reused(request: LeverRequest, known: LeverKey) -> str:
    what = "another body" if known.lever == request.lever else f"the lever {known.lever}"
    return f"Idempotency-Key {request.key!r} was used by {known.actor} for {what}; use a new key for a new request"
