"""Every error the domain raises, in one place. The HTTP layer maps each to an answer by class, never by text
(`http/problems.py`); the modules that raise them import them from here."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors the domain raises; handlers map them to answers by class, never by text."""


class InvalidTransition(DomainError):
    """The event is not allowed in the invoice's current state (HTTP 409)."""


class InvoiceConflict(DomainError):
    """The same tenant + deal + invoice number already names an invoice with other terms (HTTP 409)."""


class ReceiptError(ValueError):
    """The receipt data cannot make a valid 54-FZ receipt (HTTP 422 at the boundary)."""


class ScheduleError(ValueError):
    """The stages do not make up the total: 422."""


class StatementFormatError(ValueError):
    """The file is not a well-formed 1CClientBankExchange statement; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class BankNotConfigured(Exception):
    """The tenant has no bank settings, no statement source, or not this account: 404."""


class SubscriptionNotFound(Exception):
    pass
