"""Errors adapters raise instead of httpx / botocore errors. The state machine matches on these class names."""


class AdapterError(Exception):
    pass


class ProviderUnavailable(AdapterError):
    """Transient: timeout, connection error, 5xx, 429. Retrying with the same idempotency key is safe."""


class ProviderRejected(AdapterError):
    """Permanent: the provider refused the request (4xx, business error). Retrying will not help."""


class InvalidSignature(AdapterError):
    """A notification whose signature (or token) does not verify: answered 401, nothing written."""


class MalformedNotification(AdapterError):
    """A notification that is not in the provider's documented shape: answered 400, nothing written."""


class CrmUnavailable(AdapterError):
    """Transient CRM failure (timeout, 5xx, rate limit)."""


class CrmRejected(AdapterError):
    """The CRM refused the call permanently (unknown deal, bad field)."""


class OutboxUnavailable(AdapterError):
    """The CRM outbox queue could not take a message (SQS unreachable or throttling): retrying is safe, the
    message's deduplication id makes a repeat enqueue nothing new."""
