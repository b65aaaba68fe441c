"""Errors of the storage layer: lost optimistic races and repeated provider events."""

from __future__ import annotations


class ConcurrentModification(Exception):
    """The invoice changed since it was read (version precondition failed): read again and re-apply."""


class DuplicateProviderEvent(Exception):
    """This provider event was recorded before: the delivery is a repeat."""


class SubscriptionConflict(Exception):
    """Changed by someone else since it was read; read again."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was used for another request (another lever, target or body): HTTP 409."""
