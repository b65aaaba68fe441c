"""The application layer's errors (the domain's are in `domain/errors.py`, the adapters' in `adapters/errors.py`,
storage's in `storage/errors.py`); each is mapped to an HTTP problem in `http/problems.py`."""

from __future__ import annotations

from paybridge.domain.errors import DomainError


class InvoiceNotFound(DomainError):
    pass


class RouteNotConfigured(DomainError):
    """The tenant does not use the provider, CRM or bank source named in the URL."""


class UnknownPayment(DomainError):
    """A verified notification for a payment we do not know (yet): the provider should retry."""


class DealNotInvoiceable(DomainError):
    """The CRM deal lacks what an invoice needs (an amount)."""


class LifetimeOutOfRange(DomainError):
    """The link lifetime is outside what the tenant's provider accepts (T-Bank ≥ 1 min, Stripe 30 min … 24 h)."""


class LeverInvalid(DomainError):
    """A person's lever asks for something that cannot be (an assignment beyond the bank line, in another currency,
    to the same invoice twice): HTTP 422, nothing written."""


class BankLineNotFound(DomainError):
    """No bank line with this fingerprint for the tenant: HTTP 404."""


class DealHasNoInvoices(DomainError):
    """No invoice was issued for this deal: HTTP 404."""


class WebhookNotFound(LookupError):
    """No such webhook endpoint for this tenant."""


class WebhookInvalid(ValueError):
    """A webhook endpoint or a replay that cannot be accepted (the URL, the event types, the window)."""


class WebhookExists(Exception):
    """An endpoint for this URL exists already (its secret is not shown again: delete it and create it anew)."""
