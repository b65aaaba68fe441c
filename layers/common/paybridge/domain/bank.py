"""Bank transfers: what a statement line is, whichever source it came from, and what reconciliation decided.

A line is identified by a fingerprint built from what every source reports the same way (our account, the value
date, the amount, the payer's INN and account, the document number and the purpose) — not by the bank's operation
id alone, which T-Bank may change for operations made between 22:00 and 03:00. The same transfer read by the
poller, pushed by the bank's webhook and uploaded in a 1C file has one fingerprint and is counted once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, TypeAdapter, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from paybridge.domain.model import DEFERRED, Model
from paybridge.domain.money import Currency, PositiveMinorUnits
from paybridge.domain.settlement import SettlementMatch

LineSource = Literal["tbank_api", "tbank_webhook", "1c_file", "sandbox"]
Inn = str  # 10 digits (a company) or 12 (a person / sole trader); kept as given


def _norm(text: str | None) -> str:
    """Runs of whitespace as one space, trimmed, case-folded (what `re.sub(r"\\s+", " ", text.strip())` does: `\\s`
    and `str.split()` both split on `str.isspace()` characters — tested — at a fraction of the cost). A text of
    digits only (most document numbers) is returned as is: no digit is whitespace or changes when case-folded
    (tested over all of Unicode)."""
    if not text:
        return ""
    if text.isdigit():
        return text
    return _collapse(text.casefold())


def _collapse(text: str) -> str:
    """Runs of whitespace as one space, trimmed. Case-folding before or after it is the same (folding maps each
    whitespace character to itself and no other character to whitespace: tested over all of Unicode). A printable
    text (its only whitespace is " ": tested) with no double space and none at either end is returned as is."""
    if text.isprintable() and "  " not in text and text.strip(" ") == text:  # strip returns a text it keeps itself
        return text
    return " ".join(text.split())


#: `date.isoformat`, remembered: a statement has a few value dates over many lines (a tenth of a fingerprint's cost).
_isoformat: Callable[[date], str] = lru_cache(maxsize=1024)(date.isoformat)
_sha256 = hashlib.sha256


@pydantic_dataclass(frozen=True, slots=True, config=ConfigDict(**DEFERRED, extra="forbid"))
class StatementLine:
    """One incoming transfer to our account (debits and other accounts' lines never become one).

    A validated slotted dataclass, not a model (stored through `LINE_JSON`, as `Decision` through `DECISION_JSON`):
    a statement is read a line at a time by the matcher, and a model's `__dict__` and fields-set were most of a
    100,000-line statement's memory, each field read through the model's attribute hook."""

    source: LineSource
    account: Annotated[str, Field(pattern=r"^\d{20}$", description="our account the money came to")]
    value_date: date
    amount: PositiveMinorUnits
    currency: Currency = "RUB"
    purpose: Annotated[str, Field(max_length=1000)] = ""
    payer_name: Annotated[str, Field(max_length=500)] = ""
    payer_inn: Inn | None = None
    payer_account: str | None = None
    document_number: str | None = None
    operation_id: str | None = None  # the bank's id, for people reading the record; not the identity

    @field_validator("payer_inn", mode="before")
    @classmethod
    def _no_inn(cls, value: object) -> object:
        """Banks write `0` (or nothing) for a payer without an INN (a private person): that is no INN."""
        return None if value in (None, "", "0", "00") else value

    @property
    def has_payer_data(self) -> bool:
        return bool(self.payer_name or self.payer_inn or self.payer_account)

    def without_payer(self) -> StatementLine:
        """The line with the payer's name, INN and account erased (date, amount, purpose, document number stay).
        Its `fingerprint` is no longer the one it is stored under: only a done line is erased, and a done line is
        found by the fingerprint of the line as the bank sends it again."""
        return replace(self, payer_name="", payer_inn=None, payer_account=None)

    @property
    def fingerprint(self) -> str:
        return self.fingerprint_folded(self.purpose.casefold())

    def fingerprint_folded(self, folded_purpose: str) -> str:
        """`fingerprint`, given the purpose case-folded (reconciliation folds it once for the fingerprint and the
        number search)."""
        text = (
            f"{self.account}|{_isoformat(self.value_date)}|{self.amount}|{self.payer_inn or ''}|"
            f"{self.payer_account or ''}|{_norm(self.document_number)}|{_collapse(folded_purpose)}"
        )
        return _sha256(text.encode()).digest()[:16].hex()  # the first 32 hex digits, without the other 32


#: How a line is stored: `LINE_JSON.dump_json(line)`, read back (validated) with `LINE_JSON.validate_json(text)`.
LINE_JSON: TypeAdapter[StatementLine] = TypeAdapter(StatementLine)


@pydantic_dataclass(frozen=True, slots=True, config=DEFERRED)
class OpenInvoice:
    """What matching needs to know of an invoice that still waits for money. A validated slotted dataclass, not a
    model: the matcher reads it once per line, from an index of up to all open invoices — a model's `__dict__` and
    fields-set made each of them ~600 bytes in three blocks (~80 in one now), and each read of a field slower."""

    invoice_id: str
    number: str
    amount: PositiveMinorUnits
    outstanding: int = Field(ge=0)
    currency: Currency = "RUB"
    customer_inn: Inn | None = None


DecisionKind = Literal[
    "paid", "partially_paid", "overpaid", "split", "unmatched", "ambiguous", "duplicate", "ignored", "settlement"
]


@dataclass(frozen=True, slots=True)
class Allocation:
    """A share of a line's money for one invoice. A plain dataclass, as `Decision` (read and written through
    pydantic by `DECISION_JSON`): reconciliation makes one per line, and a model's per-instance bookkeeping (its
    `__dict__` and fields-set) was most of a 100,000-line statement's memory and time."""

    invoice_id: str
    number: str
    amount: PositiveMinorUnits


@dataclass(frozen=True, slots=True)
class Decision:
    """What reconciliation decided for one line, and why (recorded for people as is)."""

    __pydantic_config__: ClassVar[ConfigDict] = DEFERRED  # `DECISION_JSON` is built at its first use

    fingerprint: str
    kind: DecisionKind
    reason: str
    allocations: tuple[Allocation, ...] = ()
    numbers_found: tuple[str, ...] = ()
    #: For an acquirer's payout (`kind="settlement"`): the provider operations it pays out (domain/settlement.py).
    settlement: SettlementMatch | None = None

    @property
    def needs_a_person(self) -> bool:
        """No invoice or an ambiguous one; or a payout that does not add up (a person checks the difference)."""
        if self.kind == "settlement":
            return self.settlement is None or self.settlement.flagged
        return self.kind in ("unmatched", "ambiguous")


#: How a decision is stored: validated when read back (`validate_json`), as a model's fields would be.
DECISION_JSON: TypeAdapter[Decision] = TypeAdapter(Decision)

# Reconciliation makes a Decision and mostly an Allocation per line; a frozen dataclass's `__init__` sets each field
# through `object.__setattr__` (to get past its own `__setattr__`), most of what building one costs, and each slot's
# own `__set__` (a method wrapper: its arguments packed into a tuple and unpacked) is not much cheaper. These build an
# instance of a plain twin class with the same slots (so the same layout), fill it by ordinary attribute stores (the
# interpreter's cheapest: a store into the slot), then give it its class: Python allows `__class__` to change between
# classes of one layout (and checks it: a TypeError otherwise). The same objects, equal to the ones `__init__` makes
# (tested), at half the cost or less.
_new = object.__new__


class _AllocationTwin:
    __slots__ = Allocation.__slots__
    invoice_id: str
    number: str
    amount: int


class _DecisionTwin:
    __slots__ = Decision.__slots__
    fingerprint: str
    kind: DecisionKind
    reason: str
    allocations: tuple[Allocation, ...]
    numbers_found: tuple[str, ...]
    settlement: SettlementMatch | None


def new_allocation(invoice_id: str, number: str, amount: int) -> Allocation:
    """`Allocation(invoice_id, number, amount)`, faster (see above)."""
    allocation = _new(_AllocationTwin)
    allocation.invoice_id = invoice_id
    allocation.number = number
    allocation.amount = amount
    allocation.__class__ = Allocation  # type: ignore[assignment]
    return allocation  # type: ignore[return-value]


def new_decision(
    fingerprint: str,
    kind: DecisionKind,
    reason: str,
    allocations: tuple[Allocation, ...] = (),
    numbers_found: tuple[str, ...] = (),
) -> Decision:
    """`Decision(fingerprint, kind, reason, allocations, numbers_found)`, faster (see above)."""
    decision = _new(_DecisionTwin)
    decision.fingerprint = fingerprint
    decision.kind = kind
    decision.reason = reason
    decision.allocations = allocations
    decision.numbers_found = numbers_found
    decision.settlement = None
    decision.__class__ = Decision  # type: ignore[assignment]
    return decision  # type: ignore[return-value]


class Assignment(Model):
    """A person's share of a bank line for one invoice."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    invoice_id: str = Field(pattern=r"^inv_[a-z2-7]{26}$")
    amount: PositiveMinorUnits


class LineResolution(Model):
    """What a person decided for a line on the review list: its money assigned to invoices, or the line dismissed
    (not a payment of ours: a loan, a refund from a supplier …), with who and why. Recorded on the line once, under
    the person's idempotency key."""

    model_config = ConfigDict(frozen=True)
    key: str
    kind: Literal["resolved", "dismissed"]
    actor: str
    reason: str
    at: datetime
    assign: tuple[Assignment, ...] = ()
