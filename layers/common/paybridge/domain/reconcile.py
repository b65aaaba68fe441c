"""Bank reconciliation: which open invoice(s) a statement line pays, decided from the payment purpose.

Pure and linear: every line's purpose is scanned by a few precompiled regular expressions, each number found is
looked up in an index (a dict, or the by-number GSI behind the same protocol), so the cost is O(lines x numbers per
line) and never a scan of all invoices. Nothing is guessed: a line that names no known invoice, or that could be
read more than one way, is "unmatched" / "ambiguous" and goes to a person with a reason that says why.

Numbers are compared normalized (`normalize_number`): case-folded, without spaces or a leading "№"/"N", with the
Cyrillic letters that look like Latin ones folded to Latin, so "А-17" typed with a Latin "A" still matches.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol

from paybridge.domain.bank import (
    Allocation,
    Decision,
    DecisionKind,
    OpenInvoice,
    StatementLine,
    new_allocation,
    new_decision,
)
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
#: The default patterns, compiled as `compile_patterns` compiles them. When a pattern list ends with them (it always
#: does: `compile_patterns` puts the tenant's first), `find_numbers` tries each only where a match of it can begin:
#: each begins with its keyword ("сч…", "inv…", "инв-"; the look-behinds before it are zero-width), found with
#: `str.find` on the case-folded purpose (a fraction of the cost of a case-insensitive regex scan, and one pass for
#: all four), which finds exactly what its `finditer` finds: every character that the IGNORECASE flag lets match a
#: keyword letter case-folds to it (the dotless/dotted i aside, mapped first; checked over all of Unicode in
#: tests/unit/test_reconcile_fast_paths.py), and a purpose whose folding changes its length (so positions would
#: shift) is scanned by `finditer` itself. Checked against the plain scan by hypothesis (test_reconcile_fast_paths.py,
#: test_reconcile_oracle.py).
_DEFAULTS: tuple[re.Pattern[str], ...] = tuple(re.compile(pattern, re.IGNORECASE) for pattern in DEFAULT_PATTERNS)
_ONE, _SEVERAL, _INVOICE, _BARE = (pattern.match for pattern in _DEFAULTS)
#: The group `number` of each default pattern, by its index (its first group: tested); a match's span by index skips
#: the look-up of the name.
_NUMBER = 1
#: Each default pattern's keywords as they read case-folded (its match begins with one of them), by the pattern.
_DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = dict(
    zip(
        DEFAULT_PATTERNS,
        (("сч",), ("счетам", "счётам", "invoices"), ("inv",), ("inv-", "инв-", "сч-")),
        strict=True,
    )
)
_KEYWORDS = tuple(sorted({keyword for keywords in _DEFAULT_KEYWORDS.values() for keyword in keywords}))
_LEADING_SIGN = re.compile(r"^(?:№|#|no\.?(?=\d)|nr\.?(?=\d)|n(?=\d))+", re.IGNORECASE)
_SIGN_STARTS = frozenset("№#nN")
_LOOKALIKES = str.maketrans("АВЕКМНОРСТУХЁ", "ABEKMHOPCTYXE")


def normalize_number(text: str) -> str:
    """`"№ INV-2026-0042"` -> `"inv-2026-0042"`; `"N 77"` -> `"77"`; `"А-17"` (Cyrillic А) == `"A-17"` (Latin)."""
    return _normalize_compact("".join(text.split()))


def _normalize_compact(compact: str) -> str:
    """`normalize_number` of a text without whitespace (what the default patterns' numbers are: tested)."""
    if compact[:1] in _SIGN_STARTS:  # else the sign pattern cannot match (checked in the fast-path tests)
        compact = _LEADING_SIGN.sub("", compact)
    compact = compact.strip("-/.,;:")
    if compact.isascii():  # upper, the (non-ASCII) look-alikes and casefold leave ASCII as lower() does
        return compact.lower()
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
    return _numbers(purpose, *_plan(patterns))


def _plan(patterns: Sequence[re.Pattern[str]]) -> tuple[tuple[re.Pattern[str], ...], bool]:
    """The patterns to scan with `finditer`, and whether the defaults follow them (to be tried by keyword)."""
    count = len(patterns)
    if count >= 4 and tuple(patterns[count - 4 :]) == _DEFAULTS:
        return tuple(patterns[: count - 4]), True
    return tuple(patterns), False


def _numbers(
    purpose: str, plain: tuple[re.Pattern[str], ...], defaults: bool, folded: str | None = None
) -> tuple[str, ...]:
    """`find_numbers` with the patterns planned (by `_plan`, once per statement); `folded`: `purpose.casefold()`,
    if the caller has it."""
    spans: list[tuple[int, int]] = []
    for pattern in plain:
        _scan(pattern, purpose, spans)
    if defaults:
        _scan_defaults(purpose, spans, folded)
    normalize = normalize_number if plain else _normalize_compact  # the defaults' numbers hold no whitespace
    if not spans:
        return ()
    if len(spans) == 1:
        start, end = spans[0]
        number = normalize(purpose[start:end])
        return (number,) if number else ()
    spans.sort()
    numbers: dict[str, None] = {}
    for start, end in spans:
        number = normalize(purpose[start:end])
        if number:
            numbers.setdefault(number, None)
    return tuple(numbers)


def _scan(pattern: re.Pattern[str], purpose: str, spans: list[tuple[int, int]]) -> None:
    """Take the free numbers of every match of `pattern` (its `finditer`), and of its `more` list."""
    has_more = "more" in pattern.groupindex
    for match in pattern.finditer(purpose):
        start, end = match.span("number")
        if start < 0 or end <= start:
            continue
        if _free(spans, start, end):
            spans.append((start, end))
        if has_more and match.group("more"):
            _take_more(match, spans)


def _scan_defaults(purpose: str, spans: list[tuple[int, int]], folded: str | None = None) -> None:
    """`_scan` of each default pattern in turn, each tried only where one of its keywords starts."""
    if folded is None:
        folded = purpose.casefold()
    # "İ" and "ı" match "i" case-insensitively: folded to "i" first. "İ" folds to two characters (no character folds
    # to none), so a purpose whose folding keeps its length and holds no "ı" holds neither: one scan, not two.
    if len(folded) != len(purpose) or "\u0131" in purpose:
        if "\u0130" in purpose or "\u0131" in purpose:
            folded = purpose.replace("\u0130", "i").replace("\u0131", "i").casefold()
        if len(folded) != len(purpose):  # a character folded to several: positions would shift
            for pattern in _DEFAULTS:
                _scan(pattern, purpose, spans)
            return
    # The keywords share three stems: find those (one pass each), then which longer keywords start there: what
    # follows the stem, sliced once and compared (`str.startswith`, a call that parses its arguments into a tuple,
    # costs more than the slice; two of them did per stem). A stem that is not in the purpose (`in`: no call) is not
    # looked for. The first pattern ("сч…") is tried as its stems are found: it runs first, and finditer's next
    # search starts past a match.
    several: list[int] = []
    bare: list[int] = []
    after = 0
    at = folded.find("сч")
    while at >= 0:
        follows = folded[at + 2 : at + 6]
        if follows == "етам" or follows == "ётам":
            several.append(at)
        elif follows[:1] == "-":
            bare.append(at)
        if at >= after:
            match = _ONE(purpose, at)
            if match is not None:  # never empty (it holds the keyword); its number never is (it holds a digit)
                after = match.end()
                start, end = match.span(_NUMBER)
                if not spans or _free(spans, start, end):
                    spans.append((start, end))
        at = folded.find("сч", at + 2)
    invoice: list[int] = []
    if "inv" in folded:
        at = folded.find("inv")
        while at >= 0:
            follows = folded[at + 3 : at + 8]
            if follows[:1] == "-":
                # "inv-" (a bare number's prefix, "INV-2026-0042"): the English pattern cannot match there (its
                # keyword is "invoice", "inv." or "inv" before whitespace, and only "-" folds to "-": tested)
                bare.append(at)
            else:
                invoice.append(at)
                if follows == "oices":
                    several.append(at)
            at = folded.find("inv", at + 3)
    if "инв-" in folded:
        at = folded.find("инв-")
        while at >= 0:
            bare.append(at)
            at = folded.find("инв-", at + 4)
    if several:
        if len(several) > 1:
            several.sort()
        after = 0
        for at in several:
            if at >= after and (match := _SEVERAL(purpose, at)) is not None:
                after = match.end()
                start, end = match.span(_NUMBER)
                if _free(spans, start, end):
                    spans.append((start, end))
                if match.group("more"):
                    _take_more(match, spans)
    if invoice:
        after = 0
        for at in invoice:
            if at >= after and (match := _INVOICE(purpose, at)) is not None:
                after = match.end()
                start, end = match.span(_NUMBER)
                if _free(spans, start, end):
                    spans.append((start, end))
    if bare:
        if len(bare) > 1:
            bare.sort()
        after = 0
        for at in bare:
            # A bare number's match is its number: one starting inside a number already taken is never taken, and
            # (being the prefix, then digits, "-" and "/") holds no other keyword's start, so it need not be tried.
            if at < after or not _free(spans, at, at + 1):
                continue
            if (match := _BARE(purpose, at)) is not None:
                after = match.end()
                if _free(spans, at, after):
                    spans.append((at, after))


def _take_more(match: re.Match[str], spans: list[tuple[int, int]]) -> None:
    offset = match.start("more")
    for extra in _NUM_RE.finditer(match.group("more")):
        start, end = offset + extra.start(), offset + extra.end()
        if end > start and _free(spans, start, end):
            spans.append((start, end))


def _free(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) overlaps none of the spans taken (a loop: `all()` of a generator costs more here)."""
    for taken_start, taken_end in spans:  # noqa: SIM110
        if start < taken_end and end > taken_start:
            return False
    return True


class InvoiceIndex(Protocol):
    def by_number(self, number: str) -> Sequence[OpenInvoice]:
        """Open invoices whose normalized number is `number` (already normalized)."""
        ...


class _ByNumber(dict[str, tuple[OpenInvoice, ...]]):
    """Invoices by normalized number; no invoice for a number not in it (nothing is added by looking)."""

    def __missing__(self, number: str) -> tuple[OpenInvoice, ...]:
        return ()


class MemoryIndex:
    """An InvoiceIndex over invoices in memory: a dict by normalized number, of tuples (a tuple holds its items
    itself, a list in a block of its own: one memory access less per look-up, which counts at 100,000 invoices).
    `by_number` is the dict's own look-up (no Python call per line)."""

    by_number: Callable[[str], Sequence[OpenInvoice]]

    def __init__(self, invoices: Iterable[OpenInvoice]) -> None:
        by_number: dict[str, list[OpenInvoice]] = {}
        for invoice in invoices:
            by_number.setdefault(normalize_number(invoice.number), []).append(invoice)
        self._by_number = _ByNumber((number, tuple(invoices)) for number, invoices in by_number.items())
        self.by_number = self._by_number.__getitem__

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
    # The cyclic garbage collector is kept out of the way while the statement is matched: matching makes no
    # reference cycles (its decisions, allocations, tuples and strings are freed by reference counting alone), yet
    # every 700 new objects the collector would walk the young ones, and every so often all the decisions made so
    # far: a tenth of a 100,000-line statement's time, growing with the statement. It is switched back on (if it
    # was on) however the call ends; cycles made elsewhere meanwhile (none: a Lambda runs one call at a time) wait
    # for the next collection.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _reconcile(lines, index, patterns, seen)
    finally:
        if collecting:
            gc.enable()


def _reconcile(
    lines: Iterable[StatementLine],
    index: InvoiceIndex,
    patterns: Sequence[re.Pattern[str]],
    seen: Collection[str],
) -> list[Decision]:
    """`reconcile`, with the collector already off."""
    known: set[str] = set(seen)
    remaining: dict[str, int] = {}
    by_number = index.by_number
    plain, defaults = _plan(patterns)
    decisions: list[Decision] = []
    append, add = decisions.append, known.add
    for line in lines:
        purpose = line.purpose
        folded = purpose.casefold()
        fingerprint = line.fingerprint_folded(folded)
        if fingerprint in known:
            append(new_decision(fingerprint, "duplicate", "this line was already reconciled"))
            continue
        add(fingerprint)
        numbers = _numbers(purpose, plain, defaults, folded)
        if not numbers:
            append(new_decision(fingerprint, "unmatched", "no invoice number in the purpose"))
            continue
        candidates = None
        if len(numbers) == 1:
            # Most lines: one number, one open invoice with it, of the line's currency and not another payer's. What
            # `_decide` decides for it, without its call, lists and notes.
            candidates = by_number(numbers[0])
            if len(candidates) == 1:
                invoice = candidates[0]
                inn, payer_inn, currency = invoice.customer_inn, line.payer_inn, line.currency
                if invoice.currency == currency and not (inn and payer_inn and inn != payer_inn):
                    kind, reason, allocations = _pays_one(invoice, line.amount, currency, "", remaining)
                    append(new_decision(fingerprint, kind, reason, allocations, numbers))
                    continue
        kind, reason, allocations = _decide(line, numbers, by_number, remaining, candidates)
        append(new_decision(fingerprint, kind, reason, allocations, numbers))
    return decisions


_Outcome = tuple[DecisionKind, str, tuple[Allocation, ...]]


def _decide(
    line: StatementLine,
    numbers: tuple[str, ...],
    by_number: Callable[[str], Sequence[OpenInvoice]],
    remaining: dict[str, int],
    candidates: Sequence[OpenInvoice] | None = None,
) -> _Outcome:
    """What a line that names `numbers` pays, and why; `remaining` is updated with what it leaves owed.
    `candidates`: the invoices of a line's only number, if the caller looked them up (each number is looked up once:
    the index may be a GSI). `_reconcile` decides most lines, one number of one open invoice it may pay, itself."""
    currency, payer_inn, paid = line.currency, line.payer_inn, line.amount
    lookups: Iterable[tuple[str, Sequence[OpenInvoice]]]
    if candidates is not None:
        lookups = ((numbers[0], candidates),)
    else:
        lookups = ((number, by_number(number)) for number in numbers)  # lazily: an ambiguous number ends the look-ups
    matched: list[OpenInvoice] = []
    unknown: list[str] = []
    notes: list[str] = []
    for number, candidates in lookups:
        if not candidates:
            unknown.append(number)
            continue
        eligible: list[OpenInvoice] = []
        for invoice in candidates:
            if invoice.currency != currency:
                notes.append(f"invoice {invoice.number} is in {invoice.currency}, the line is in {currency}")
            elif invoice.customer_inn and payer_inn and invoice.customer_inn != payer_inn:
                notes.append(
                    f"payer INN {payer_inn} is not the invoice's customer "
                    f"(invoice {invoice.number}: INN {invoice.customer_inn})"
                )
            else:
                eligible.append(invoice)
        if len(eligible) > 1 and payer_inn:
            by_inn = [invoice for invoice in eligible if invoice.customer_inn == payer_inn]
            if len(by_inn) == 1:
                eligible = by_inn
        if len(eligible) > 1:
            ids = ", ".join(invoice.invoice_id for invoice in eligible)
            return (
                "ambiguous",
                f"{len(eligible)} open invoices share number {eligible[0].number} ({ids}) "
                "and the payer INN does not pick one",
                (),
            )
        if eligible and all(eligible[0].invoice_id != invoice.invoice_id for invoice in matched):
            matched.append(eligible[0])

    if unknown:
        notes.append(f"no open invoice numbered {', '.join(unknown)}")
    if not matched:
        return "unmatched", "; ".join(notes), ()
    suffix = f" ({'; '.join(notes)})" if notes else ""
    if len(matched) == 1:
        return _pays_one(matched[0], paid, currency, suffix, remaining)

    amount = format_money(paid, currency)
    lefts = [remaining.get(invoice.invoice_id, invoice.outstanding) for invoice in matched]
    parts = " + ".join(
        f"{invoice.number} ({format_money(left, invoice.currency)})"
        for invoice, left in zip(matched, lefts, strict=True)
    )
    total = format_money(sum(lefts), currency)
    if paid != sum(lefts):
        return "ambiguous", f"amounts do not add up: {amount} paid, invoices {parts} = {total}{suffix}", ()
    if not all(lefts):
        settled = ", ".join(invoice.number for invoice, left in zip(matched, lefts, strict=True) if not left)
        return "ambiguous", f"invoice {settled} has nothing outstanding; invoices {parts}{suffix}", ()
    for invoice in matched:
        remaining[invoice.invoice_id] = 0
    allocations = tuple(
        new_allocation(invoice.invoice_id, invoice.number, left) for invoice, left in zip(matched, lefts, strict=True)
    )
    return "split", f"{amount} pays invoices {parts} in full{suffix}", allocations


def _pays_one(invoice: OpenInvoice, paid: int, currency: str, suffix: str, remaining: dict[str, int]) -> _Outcome:
    """A line's money for the one invoice it names: in full, short or too much; `remaining` updated."""
    amount = format_money(paid, currency)
    invoice_id, number = invoice.invoice_id, invoice.number
    left = remaining.get(invoice_id, invoice.outstanding)
    remaining[invoice_id] = left - paid if left > paid else 0
    allocation = (new_allocation(invoice_id, number, paid),)
    if paid == left:
        return "paid", f"{amount} pays invoice {number} in full{suffix}", allocation
    owed = format_money(left, invoice.currency)
    if paid < left:
        short = format_money(left - paid, invoice.currency)
        return (
            "partially_paid",
            f"{amount} of {owed} outstanding on invoice {number}: {short} short{suffix}",
            allocation,
        )
    excess = format_money(paid - left, invoice.currency)
    reason = f"{amount} for invoice {number} with {owed} outstanding: {excess} too much{suffix}"
    return "overpaid", reason, allocation
