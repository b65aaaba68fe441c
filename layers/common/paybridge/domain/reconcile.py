"""Bank reconciliation: which open invoice(s) a statement line pays, decided from the payment purpose.

Pure and linear: every line's purpose is scanned by a few precompiled regular expressions, each number found is
looked up in an index (a dict, or the by-number GSI behind the same protocol), so the cost is O(lines x numbers per
line) and never a scan of all invoices. Nothing is guessed: a line that names no known invoice, or that could be
read more than one way, is "unmatched" / "ambiguous" and goes to a person with a reason that says why.

Numbers are compared normalized (`normalize_number`): case-folded, without spaces or a leading "№"/"N", with the
Cyrillic letters that look like Latin ones folded to Latin, so "А-17" typed with a Latin "A" still matches.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import Protocol

from paybridge.domain.bank import Allocation, Decision, DecisionKind, OpenInvoice, StatementLine
from paybridge.domain.money import format_money

# An invoice number: an optional letter prefix ("INV-", "А-", "СЧ-"), then a digit, then letters/digits, with
# inner "-" or "/" ("2026-0042", "45/2"). It contains a digit, never spaces or dots (so "№ 123 от 01.11.2026" stops
# at "123", and so does "№123от01.11"), never ends on punctuation, and is not a run of 10+ digits (INNs, phones and
# account numbers are).
_NUM = (
    r"(?!\d{10})"
    r"(?:[A-ZА-ЯЁ]{1,10}-?)?\d(?:(?!от[\s\d.])[0-9A-ZА-ЯЁ])*(?:[-/][0-9A-ZА-ЯЁ]+)*"
    r"(?:(?=от[\s\d.])|(?!\w)(?![-/][0-9A-ZА-ЯЁ]))"
)
# Between the keyword and the number: spaces, dots, colons, and a number sign in any of its spellings.
_GAP = r"[\s.:]*(?:(?:№|#|No\.?|Nr\.?|N|номер|ном\.)[\s.:]*)?"
# "Оплата по счету от 12.10.2026 № 123": 1C often writes the date before the number.
_DATE_FIRST = r"(?:\s+от\s+\d{1,2}[./]\d{1,2}[./]\d{2,4}(?:\s*г\.?)?)?"
# "счет" not preceded by "р/", "расчетный ", "лицевому " and the like (a bank account, not an invoice).
_NOT_AN_ACCOUNT = (
    r"(?<![\w/])(?<!расчетный\s)(?<!расчётный\s)(?<!расчетному\s)(?<!расчётному\s)(?<!расч\.\s)"
    r"(?<!лицевой\s)(?<!лицевому\s)(?<!лиц\.\s)(?<!банковский\s)(?<!банковскому\s)(?<!корр\.\s)(?<!кор\.\s)"
)
# One more number in a list after "по счетам № 12, 13 и № 14" / "invoices 12 and 13".
_MORE = r"(?P<more>(?:\s*(?:,|;|&|\bи\b|\band\b)\s*(?:(?:№|#|N)\s*)?" + _NUM + r")*)"

DEFAULT_PATTERNS: tuple[str, ...] = (
    # Russian, one invoice: "по счету № 123", "по счёту №123", "сч.123", "сч. № 45/2", "по сч N 77",
    # "Счет-договор №15", "согласно счета 123", "Счёт на оплату № А-17", "по счету от 12.10.2026 № 5".
    _NOT_AN_ACCOUNT
    + r"(?:сч[её]т(?:у|а|ом|е)?|сч\.?)(?:\s*-\s*(?:договор|оферт)[а-яё]*)?(?![а-яё])(?:\s+на\s+оплату)?"
    + _DATE_FIRST
    + _GAP
    + r"(?P<number>"
    + _NUM
    + r")",
    # Russian / English, several invoices: "по счетам № 12, 13 и 14", "invoices 12 and 13".
    _NOT_AN_ACCOUNT + r"(?:сч[её]там|invoices)(?![а-яёa-z])" + _GAP + r"(?P<number>" + _NUM + r")" + _MORE,
    # English, one invoice: "invoice 123", "Invoice No. 123", "inv. 45/2", "invoice #INV-2026-0042".
    r"(?<!\w)(?:invoice|inv\.|inv(?=\s))(?![a-z])" + _DATE_FIRST + _GAP + r"(?P<number>" + _NUM + r")",
    # A bare invoice-looking token anywhere: "INV-2026-0042", "ИНВ-17", "СЧ-123".
    r"(?<![\w/-])(?P<number>(?:INV|ИНВ|СЧ)-\d+(?:[-/]\d+)*)(?!\w)(?![-/]\w)",
)

_NUM_RE = re.compile(_NUM, re.IGNORECASE)
_LEADING_SIGN = re.compile(r"^(?:№|#|no\.?(?=\d)|nr\.?(?=\d)|n(?=\d))+", re.IGNORECASE)
_LOOKALIKES = str.maketrans("АВЕКМНОРСТУХЁ", "ABEKMHOPCTYXE")


def normalize_number(text: str) -> str:
    """`"№ INV-2026-0042"` -> `"inv-2026-0042"`; `"N 77"` -> `"77"`; `"А-17"` (Cyrillic А) == `"A-17"` (Latin)."""
    compact = "".join(text.split())
    compact = _LEADING_SIGN.sub("", compact).strip("-/.,;:")
    return compact.upper().translate(_LOOKALIKES).casefold()


def compile_patterns(extra: Sequence[str] = ()) -> tuple[re.Pattern[str], ...]:
    """The tenant's patterns (BankSettings.invoice_patterns) first, then the defaults; all case-insensitive."""
    compiled = tuple(re.compile(pattern, re.IGNORECASE) for pattern in (*extra, *DEFAULT_PATTERNS))
    for pattern in compiled:
        if "number" not in pattern.groupindex:
            raise ValueError(f"invoice pattern {pattern.pattern!r} has no group named 'number'")
    return compiled


def find_numbers(purpose: str, patterns: Sequence[re.Pattern[str]]) -> tuple[str, ...]:
    """Invoice numbers in a payment purpose: normalized, unique, in order of appearance.

    Patterns are tried in order; a number whose text overlaps one already taken by an earlier pattern is skipped,
    so a tenant's pattern wins over the defaults on the same words. A pattern may have a group `more` holding a
    list of further numbers ("по счетам № 12, 13 и 14")."""
    spans: list[tuple[int, int]] = []
    for pattern in patterns:
        has_more = "more" in pattern.groupindex
        for match in pattern.finditer(purpose):
            start, end = match.span("number")
            if start < 0:
                continue
            _take(spans, start, end)
            if has_more and match.group("more"):
                offset = match.start("more")
                for extra in _NUM_RE.finditer(match.group("more")):
                    _take(spans, offset + extra.start(), offset + extra.end())
    spans.sort()
    numbers: dict[str, None] = {}
    for start, end in spans:
        number = normalize_number(purpose[start:end])
        if number:
            numbers.setdefault(number, None)
    return tuple(numbers)


def _take(spans: list[tuple[int, int]], start: int, end: int) -> None:
    if end > start and all(end <= s or start >= e for s, e in spans):
        spans.append((start, end))


class InvoiceIndex(Protocol):
    def by_number(self, number: str) -> Sequence[OpenInvoice]:
        """Open invoices whose normalized number is `number` (already normalized)."""
        ...


class MemoryIndex:
    """An InvoiceIndex over invoices in memory: a dict by normalized number."""

    def __init__(self, invoices: Iterable[OpenInvoice]) -> None:
        self._by_number: dict[str, list[OpenInvoice]] = {}
        for invoice in invoices:
            self._by_number.setdefault(normalize_number(invoice.number), []).append(invoice)

    def by_number(self, number: str) -> Sequence[OpenInvoice]:
        return self._by_number.get(number, ())

    def __len__(self) -> int:
        return sum(len(invoices) for invoices in self._by_number.values())


def reconcile(
    lines: Iterable[StatementLine],
    index: InvoiceIndex,
    patterns: Sequence[re.Pattern[str]],
    seen: Collection[str] = (),
) -> list[Decision]:
    """One decision per line, in order. `seen`: fingerprints of lines decided before (they become "duplicate").

    Invoices' outstanding amounts are tracked across the lines of one call, so a second line paying the same
    invoice sees what the first one left. For paid / partially_paid / overpaid / split the allocations add up to
    the line's amount exactly; every other kind has none."""
    known: set[str] = set(seen)
    remaining: dict[str, int] = {}
    return [_decide(line, index, patterns, known, remaining) for line in lines]


def _decide(
    line: StatementLine,
    index: InvoiceIndex,
    patterns: Sequence[re.Pattern[str]],
    known: set[str],
    remaining: dict[str, int],
) -> Decision:
    fingerprint = line.fingerprint
    if fingerprint in known:
        return Decision(fingerprint=fingerprint, kind="duplicate", reason="this line was already reconciled")
    known.add(fingerprint)
    amount = format_money(line.amount, line.currency)
    numbers = find_numbers(line.purpose, patterns)

    def decision(kind: DecisionKind, reason: str, allocations: tuple[Allocation, ...] = ()) -> Decision:
        return Decision(
            fingerprint=fingerprint, kind=kind, reason=reason, allocations=allocations, numbers_found=numbers
        )

    if not numbers:
        return decision("unmatched", "no invoice number in the purpose")

    matched: list[OpenInvoice] = []
    unknown: list[str] = []
    notes: list[str] = []
    for number in numbers:
        candidates = index.by_number(number)
        if not candidates:
            unknown.append(number)
            continue
        eligible: list[OpenInvoice] = []
        for invoice in candidates:
            if invoice.currency != line.currency:
                notes.append(f"invoice {invoice.number} is in {invoice.currency}, the line is in {line.currency}")
            elif invoice.customer_inn and line.payer_inn and invoice.customer_inn != line.payer_inn:
                notes.append(
                    f"payer INN {line.payer_inn} is not the invoice's customer "
                    f"(invoice {invoice.number}: INN {invoice.customer_inn})"
                )
            else:
                eligible.append(invoice)
        if len(eligible) > 1 and line.payer_inn:
            by_inn = [invoice for invoice in eligible if invoice.customer_inn == line.payer_inn]
            if len(by_inn) == 1:
                eligible = by_inn
        if len(eligible) > 1:
            ids = ", ".join(invoice.invoice_id for invoice in eligible)
            return decision(
                "ambiguous",
                f"{len(eligible)} open invoices share number {eligible[0].number} ({ids}) "
                "and the payer INN does not pick one",
            )
        if eligible and all(eligible[0].invoice_id != invoice.invoice_id for invoice in matched):
            matched.append(eligible[0])

    if unknown:
        notes.append(f"no open invoice numbered {', '.join(unknown)}")
    if not matched:
        return decision("unmatched", "; ".join(notes))
    suffix = f" ({'; '.join(notes)})" if notes else ""

    if len(matched) == 1:
        invoice = matched[0]
        left = remaining.get(invoice.invoice_id, invoice.outstanding)
        remaining[invoice.invoice_id] = max(left - line.amount, 0)
        allocation = (Allocation(invoice_id=invoice.invoice_id, number=invoice.number, amount=line.amount),)
        owed = format_money(left, invoice.currency)
        if line.amount == left:
            return decision("paid", f"{amount} pays invoice {invoice.number} in full{suffix}", allocation)
        if line.amount < left:
            short = format_money(left - line.amount, invoice.currency)
            reason = f"{amount} of {owed} outstanding on invoice {invoice.number}: {short} short{suffix}"
            return decision("partially_paid", reason, allocation)
        excess = format_money(line.amount - left, invoice.currency)
        reason = f"{amount} for invoice {invoice.number} with {owed} outstanding: {excess} too much{suffix}"
        return decision("overpaid", reason, allocation)

    lefts = [remaining.get(invoice.invoice_id, invoice.outstanding) for invoice in matched]
    parts = " + ".join(
        f"{invoice.number} ({format_money(left, invoice.currency)})"
        for invoice, left in zip(matched, lefts, strict=True)
    )
    total = format_money(sum(lefts), line.currency)
    if line.amount != sum(lefts):
        return decision("ambiguous", f"amounts do not add up: {amount} paid, invoices {parts} = {total}{suffix}")
    if not all(lefts):
        settled = ", ".join(invoice.number for invoice, left in zip(matched, lefts, strict=True) if not left)
        return decision("ambiguous", f"invoice {settled} has nothing outstanding; invoices {parts}{suffix}")
    for invoice in matched:
        remaining[invoice.invoice_id] = 0
    allocations = tuple(
        Allocation(invoice_id=invoice.invoice_id, number=invoice.number, amount=left)
        for invoice, left in zip(matched, lefts, strict=True)
    )
    return decision("split", f"{amount} pays invoices {parts} in full{suffix}", allocations)
