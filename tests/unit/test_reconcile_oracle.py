"""The faster matcher decides exactly what the one before it did (issue 14, goal 7).

The implementations replaced for speed are kept here, as they were, as the oracle — `find_numbers` (the keyword
starts found per pattern, then matched), `normalize_number`, the line fingerprint and its whitespace folding,
`format_money` and the per-line decision — and hypothesis checks the new ones against them on purposes built from
the fragments payers write (invoice numbers of every style, INNs, dates, amounts, Cyrillic words, account words,
number signs, punctuation, odd whitespace and the Unicode letters that fold to several), and on whole statements:
every decision's kind, reason, allocations and numbers, and every fingerprint, equal."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from paybridge.domain.bank import Allocation, Decision, DecisionKind, OpenInvoice, StatementLine, _norm
from paybridge.domain.money import format_money
from paybridge.domain.reconcile import (
    _LEADING_SIGN,
    _LOOKALIKES,
    _NUM_RE,
    _SIGN_STARTS,
    DEFAULT_PATTERNS,
    MemoryIndex,
    compile_patterns,
    find_numbers,
    normalize_number,
    reconcile,
)

# --- the oracle: the implementation before goal 7, verbatim but for names ------------------------------------------

_OLD_KEYWORDS: dict[str, tuple[str, ...]] = dict(
    zip(
        DEFAULT_PATTERNS,
        (("сч",), ("счетам", "счётам", "invoices"), ("inv",), ("inv-", "инв-", "сч-")),
        strict=True,
    )
)
_OLD_INDEX = {pattern: index for index, pattern in enumerate(DEFAULT_PATTERNS)}
_IGNORECASE = int(re.IGNORECASE)


def old_normalize_number(text: str) -> str:
    compact = "".join(text.split())
    if compact[:1] in _SIGN_STARTS:
        compact = _LEADING_SIGN.sub("", compact)
    compact = compact.strip("-/.,;:")
    return compact.upper().translate(_LOOKALIKES).casefold()


def old_find_numbers(purpose: str, patterns: Sequence[re.Pattern[str]]) -> tuple[str, ...]:
    spans: list[tuple[int, int]] = []
    starts: tuple[list[int], ...] | None = None
    for pattern in patterns:
        has_more = "more" in pattern.groupindex
        index = _OLD_INDEX.get(pattern.pattern) if pattern.flags & _IGNORECASE else None
        if index is None:
            matches: Iterable[re.Match[str]] = pattern.finditer(purpose)
        else:
            if starts is None:
                starts = _old_default_starts(purpose)
            if not starts[index]:
                continue
            matches = _old_finditer(pattern, purpose, starts[index])
        for match in matches:
            start, end = match.span("number")
            if start < 0 or end <= start:
                continue
            if not spans or all(end <= s or start >= e for s, e in spans):
                spans.append((start, end))
            if has_more and match.group("more"):
                offset = match.start("more")
                for extra in _NUM_RE.finditer(match.group("more")):
                    _old_take(spans, offset + extra.start(), offset + extra.end())
    if not spans:
        return ()
    if len(spans) == 1:
        number = old_normalize_number(purpose[spans[0][0] : spans[0][1]])
        return (number,) if number else ()
    spans.sort()
    numbers: dict[str, None] = {}
    for start, end in spans:
        number = old_normalize_number(purpose[start:end])
        if number:
            numbers.setdefault(number, None)
    return tuple(numbers)


def _old_default_starts(purpose: str) -> tuple[list[int], ...]:
    folded = purpose.replace("\u0130", "i").replace("\u0131", "i").casefold()
    if len(folded) != len(purpose):
        return tuple(
            sorted(m.start() for k in keywords for m in re.finditer(f"(?={re.escape(k)})", purpose, re.IGNORECASE))
            for keywords in _OLD_KEYWORDS.values()
        )
    own, several, invoice, bare = [], [], [], []
    at = folded.find("сч")
    while at >= 0:
        own.append(at)
        if folded.startswith(("счетам", "счётам"), at):
            several.append(at)
        if folded.startswith("сч-", at):
            bare.append(at)
        at = folded.find("сч", at + 2)
    at = folded.find("inv")
    while at >= 0:
        invoice.append(at)
        if folded.startswith("invoices", at):
            several.append(at)
        if folded.startswith("inv-", at):
            bare.append(at)
        at = folded.find("inv", at + 3)
    at = folded.find("инв-")
    while at >= 0:
        bare.append(at)
        at = folded.find("инв-", at + 4)
    if len(several) > 1:
        several.sort()
    if len(bare) > 1:
        bare.sort()
    return own, several, invoice, bare


def _old_finditer(pattern: re.Pattern[str], text: str, starts: list[int]) -> Iterator[re.Match[str]]:
    end = 0
    for start in starts:
        if start < end:
            continue
        match = pattern.match(text, start)
        if match is not None:
            end = max(match.end(), start + 1)
            yield match


def _old_take(spans: list[tuple[int, int]], start: int, end: int) -> None:
    if end > start and all(end <= s or start >= e for s, e in spans):
        spans.append((start, end))


def old_norm(text: str | None) -> str:
    return " ".join((text or "").split()).casefold()


def old_fingerprint(line: StatementLine) -> str:
    parts = (
        line.account,
        line.value_date.isoformat(),
        str(line.amount),
        line.payer_inn or "",
        line.payer_account or "",
        old_norm(line.document_number),
        old_norm(line.purpose),
    )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def old_format_money(amount: int, currency: str) -> str:
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 100)
    return f"{sign}{major:,}.{minor:02d} {currency}".replace(",", " ")


def old_reconcile(
    lines: Iterable[StatementLine],
    by_number: Callable[[str], Sequence[OpenInvoice]],
    patterns: Sequence[re.Pattern[str]],
    seen: Collection[str] = (),
) -> list[Decision]:
    known: set[str] = set(seen)
    remaining: dict[str, int] = {}
    decisions: list[Decision] = []
    for line in lines:
        fingerprint = old_fingerprint(line)
        if fingerprint in known:
            decisions.append(
                Decision(fingerprint=fingerprint, kind="duplicate", reason="this line was already reconciled")
            )
            continue
        known.add(fingerprint)
        numbers = old_find_numbers(line.purpose, patterns)
        if not numbers:
            decisions.append(
                Decision(fingerprint=fingerprint, kind="unmatched", reason="no invoice number in the purpose")
            )
            continue
        kind, reason, allocations = _old_decide(line, numbers, by_number, remaining)
        decisions.append(
            Decision(fingerprint=fingerprint, kind=kind, reason=reason, allocations=allocations, numbers_found=numbers)
        )
    return decisions


def _old_decide(
    line: StatementLine,
    numbers: tuple[str, ...],
    by_number: Callable[[str], Sequence[OpenInvoice]],
    remaining: dict[str, int],
) -> tuple[DecisionKind, str, tuple[Allocation, ...]]:
    currency, payer_inn, paid = line.currency, line.payer_inn, line.amount
    matched: list[OpenInvoice] = []
    unknown: list[str] = []
    notes: list[str] = []
    for number in numbers:
        candidates = by_number(number)
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
    amount = old_format_money(paid, currency)

    if len(matched) == 1:
        invoice = matched[0]
        invoice_id = invoice.invoice_id
        left = remaining.get(invoice_id, invoice.outstanding)
        remaining[invoice_id] = left - paid if left > paid else 0
        allocation = (Allocation(invoice_id=invoice_id, number=invoice.number, amount=paid),)
        if paid == left:
            return "paid", f"{amount} pays invoice {invoice.number} in full{suffix}", allocation
        owed = old_format_money(left, invoice.currency)
        if paid < left:
            short = old_format_money(left - paid, invoice.currency)
            reason = f"{amount} of {owed} outstanding on invoice {invoice.number}: {short} short{suffix}"
            return "partially_paid", reason, allocation
        excess = old_format_money(paid - left, invoice.currency)
        reason = f"{amount} for invoice {invoice.number} with {owed} outstanding: {excess} too much{suffix}"
        return "overpaid", reason, allocation

    lefts = [remaining.get(invoice.invoice_id, invoice.outstanding) for invoice in matched]
    parts = " + ".join(
        f"{invoice.number} ({old_format_money(left, invoice.currency)})"
        for invoice, left in zip(matched, lefts, strict=True)
    )
    total = old_format_money(sum(lefts), currency)
    if paid != sum(lefts):
        return "ambiguous", f"amounts do not add up: {amount} paid, invoices {parts} = {total}{suffix}", ()
    if not all(lefts):
        settled = ", ".join(invoice.number for invoice, left in zip(matched, lefts, strict=True) if not left)
        return "ambiguous", f"invoice {settled} has nothing outstanding; invoices {parts}{suffix}", ()
    for invoice in matched:
        remaining[invoice.invoice_id] = 0
    allocations = tuple(
        Allocation(invoice_id=invoice.invoice_id, number=invoice.number, amount=left)
        for invoice, left in zip(matched, lefts, strict=True)
    )
    return "split", f"{amount} pays invoices {parts} in full{suffix}", allocations


# --- realistic purposes ----------------------------------------------------------------------------------------------

DEFAULTS = compile_patterns()
TENANT = compile_patterns([r"заказ\s*(?P<number>Z-?\d+)", r"(?:сделк[аеи]|deal)\s*(?P<number>\d+(?:\s\d+)?)"])

NUMBERS = st.one_of(
    st.integers(0, 999_999).map(lambda n: f"INV-2026-{n:06d}"),
    st.integers(1, 99_999).map(lambda n: f"СЧ-{n}"),
    st.integers(1, 99_999).map(lambda n: f"ИНВ-{n}"),
    st.integers(1, 9_999_999).map(str),
    st.sampled_from(["А-17", "A-17", "45/2", "2026-0042", "Б-12/3", "ЗАК-7", "N77", "No5", "inv-3-4", "Z-17"]),
)
INNS = st.one_of(st.integers(10**9, 10**10 - 1).map(str), st.integers(10**11, 10**12 - 1).map(str))
DATES = st.tuples(
    st.sampled_from(["{:02d}.{:02d}.{}", "{}.{}.{}", "{:02d}/{:02d}/{}", "{:02d}.{:02d}.{} г."]),
    st.integers(1, 31),
    st.integers(1, 12),
    st.sampled_from([2025, 2026, 26]),
).map(lambda d: d[0].format(*d[1:]))
AMOUNT_TEXT = st.tuples(st.integers(0, 10**7), st.integers(0, 99), st.sampled_from([".", ",", "-"])).map(
    lambda a: f"{a[0]}{a[2]}{a[1]:02d}"
)
WORDS = st.sampled_from(
    [
        "Оплата", "оплата", "по", "счету", "счёту", "счета", "счет", "Счет", "СЧЕТУ", "сч.", "сч", "Сч", "счетам",
        "счётам", "Счет-договор", "счет-оферта", "Счёт на оплату", "согласно", "от", "за", "услуги", "товар",
        "октябрь", "НДС", "в т.ч.", "не облагается", "без НДС", "Сумма", "р/сч", "р/счет", "расчетный счет",
        "расчётному счету", "лицевому счету", "лиц. счет", "корр. счет", "банковский счет", "ИНН", "КПП", "БИК",
        "договор", "договору", "№", "N", "No.", "Nr.", "#", "номер", "ном.", "invoice", "Invoice No.", "INVOICE",
        "invoices", "inv.", "inv", "INV-", "ИНВ-", "СЧ-", "and", "и", "Payment for", "заказ", "сделка", "deal",
        "тел.", "+7 916 123-45-67", "г.", "руб.", "коп.", "İnv", "ınv", "Straße", "ß", "ſ", "K", "ﬀ",
    ]
)  # fmt: skip
PUNCTUATION = st.sampled_from([" ", " ", " ", "  ", ", ", ",", "; ", ":", ". ", ".", "-", "/", "(", ")", "«", "»",
                               '"', "\t", "\u00a0", "\n", " № ", "№", " N ", ""])  # fmt: skip
FRAGMENTS = st.one_of(WORDS, NUMBERS, INNS, DATES, AMOUNT_TEXT, PUNCTUATION)
PURPOSES = st.lists(FRAGMENTS, max_size=24).map("".join)
TEMPLATED = st.tuples(
    st.sampled_from(
        [
            "Оплата по счету № {0} от {2}. Сумма {3}, в т.ч. НДС (20%) {3}",
            "Оплата по счёту №{0} за услуги. НДС не облагается",
            "Оплата сч.{0} от {2}",
            "Оплата по сч N {0} от {2}, без НДС",
            "Оплата по Счет-договор №{0} за октябрь",
            "Оплата по счету от {2} № {0}. НДС не облагается",
            "Payment for invoice {0}, VAT included",
            "Счёт на оплату № {0}; ИНН {4}",
            "Оплата по счетам № {0}, {1}. НДС не облагается",
            "Оплата по счету № {0} и по счету № {1}",
            "Payment for invoices {0} and {1}",
            "{0} оплата за товар",
            "Перевод на р/сч {4} по счету {1}",
            "Оплата заказ {1} по счету № {0}",
        ]
    ),
    NUMBERS,
    NUMBERS,
    DATES,
    AMOUNT_TEXT,
    INNS,
).map(lambda t: t[0].format(*t[1:]))
ANY_PURPOSE = st.one_of(PURPOSES, TEMPLATED, st.tuples(TEMPLATED, PURPOSES).map(" ".join))


@settings(max_examples=1000, deadline=None)
@given(ANY_PURPOSE)
@example("Оплата по счету № INV-2026-000123 от 01.11.2026 и INV-2026-000124")
@example("сч. СЧ-12 СЧ-13 ИНВ-5 inv-7/8 по счетам 1, 2 и № 3 invoices 4 and 5")
@example("Straße ß, оплата по счёту № 17 и İNV-2026-5")
def test_find_numbers_finds_what_it_found_before(purpose: str) -> None:
    assert find_numbers(purpose, DEFAULTS) == old_find_numbers(purpose, DEFAULTS)
    assert find_numbers(purpose, TENANT) == old_find_numbers(purpose, TENANT)
    assert find_numbers(purpose, list(DEFAULTS)) == old_find_numbers(purpose, DEFAULTS)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(NUMBERS, st.lists(FRAGMENTS, max_size=4).map("".join), st.text(max_size=12)))
def test_normalize_number_is_the_old_one(text: str) -> None:
    assert normalize_number(text) == old_normalize_number(text)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(ANY_PURPOSE, st.text(max_size=30), st.none()))
def test_whitespace_folding_is_the_old_one(text: str | None) -> None:
    assert _norm(text) == old_norm(text)


@settings(max_examples=1000, deadline=None)
@given(st.integers(-(10**15), 10**15), st.sampled_from(["RUB", "USD", "EUR", "X,Y"]))
def test_format_money_is_the_old_one(amount: int, currency: str) -> None:
    assert format_money(amount, currency) == old_format_money(amount, currency)


def test_the_only_printable_whitespace_is_the_space() -> None:
    # `_norm`'s fast path: a printable text has no whitespace but " " (so split/join only collapses double spaces)
    assert [hex(c) for c in range(0x110000) if chr(c).isspace() and chr(c).isprintable()] == ["0x20"]


def test_case_folding_keeps_whitespace_where_it_is() -> None:
    # the fingerprint folds the purpose once, before collapsing its whitespace (the old one after): the same, as
    # folding maps each whitespace character to itself and no other character to (or with) whitespace
    moved = []
    for code in range(0x110000):
        char = chr(code)
        folded = char.casefold()
        if (folded != char) if char.isspace() else any(each.isspace() for each in folded):
            moved.append(hex(code))
    assert not moved


def test_a_default_number_holds_no_whitespace() -> None:
    # `find_numbers` normalizes the default patterns' numbers without splitting out whitespace: no character that
    # their number classes match (case-insensitively, as compiled) is whitespace
    classes = re.compile(r"[0-9A-ZА-ЯЁ/-]|\d", re.IGNORECASE).fullmatch
    assert not [hex(c) for c in range(0x110000) if classes(chr(c)) and chr(c).isspace()]


# --- whole statements -------------------------------------------------------------------------------------------------

ACCOUNT = "40702810900000012345"
INVOICE_NUMBERS = ["INV-2026-000001", "СЧ-2", "3", "А-4", "45/2", "INV-2026-000006"]
CUSTOMER_INNS = [None, None, "7707083893", "500100732259"]
Statement = tuple[list[StatementLine], list[OpenInvoice]]


@st.composite
def statements(draw: st.DrawFn) -> Statement:
    invoices = draw(
        st.lists(
            st.builds(
                OpenInvoice,
                invoice_id=st.text("abcdef", min_size=1, max_size=2).map(lambda s: f"inv_{s}"),
                number=st.sampled_from(INVOICE_NUMBERS),
                amount=st.just(1),
                outstanding=st.sampled_from([0, 100, 250, 1000, 123456789]),
                currency=st.sampled_from(["RUB", "RUB", "RUB", "EUR"]),
                customer_inn=st.sampled_from(CUSTOMER_INNS),
            ),
            max_size=8,
            unique_by=lambda invoice: invoice.invoice_id,
        )
    )
    named = st.sampled_from([*INVOICE_NUMBERS, "9", "А-4".replace("А", "A")])
    purpose = st.one_of(
        st.tuples(st.sampled_from(["Оплата по счету № {}", "сч.{}", "invoice {}", "{} оплата"]), named).map(
            lambda t: t[0].format(t[1])
        ),
        st.tuples(st.sampled_from(["по счетам {} и {}", "Оплата по счету № {}, по счету № {}"]), named, named).map(
            lambda t: t[0].format(t[1], t[2])
        ),
        ANY_PURPOSE,
    )
    lines = draw(
        st.lists(
            st.builds(
                StatementLine,
                source=st.just("1c_file"),
                account=st.just(ACCOUNT),
                value_date=st.just(date(2026, 11, 2)),
                amount=st.sampled_from([1, 100, 150, 250, 350, 1000, 1250, 123456789, 10**12]),
                currency=st.sampled_from(["RUB", "RUB", "RUB", "EUR"]),
                purpose=purpose,
                payer_inn=st.sampled_from(CUSTOMER_INNS),
                payer_account=st.sampled_from([None, "40702810000000000001"]),
                document_number=st.sampled_from([None, "1", "1", "2", " 3  a "]),  # repeats make duplicates
            ),
            max_size=12,
        )
    )
    return lines, invoices


@settings(max_examples=200, deadline=None)
@given(statements(), st.booleans())
def test_reconcile_decides_what_it_decided_before(statement: Statement, tenant: bool) -> None:
    lines, invoices = statement
    patterns = TENANT if tenant else DEFAULTS
    index = MemoryIndex(invoices)
    assert [line.fingerprint for line in lines] == [old_fingerprint(line) for line in lines]
    assert reconcile(lines, index, patterns) == old_reconcile(lines, index.by_number, patterns)
    seen = [old_fingerprint(line) for line in lines[::2]]
    assert reconcile(lines, index, patterns, seen) == old_reconcile(lines, index.by_number, patterns, seen)


def test_the_fast_constructors_make_what_the_dataclasses_make() -> None:
    from dataclasses import FrozenInstanceError, astuple, fields

    from paybridge.domain.bank import new_allocation, new_decision

    allocation = new_allocation("inv_a", "СЧ-1", 150)
    assert allocation == Allocation("inv_a", "СЧ-1", 150) and hash(allocation) == hash(Allocation("inv_a", "СЧ-1", 150))
    decision = new_decision("f" * 32, "paid", "why", (allocation,), ("сч-1",))
    assert astuple(decision) == astuple(Decision("f" * 32, "paid", "why", (allocation,), ("сч-1",)))
    unmatched = Decision(fingerprint="f" * 32, kind="unmatched", reason="none")
    assert new_decision("f" * 32, "unmatched", "none") == unmatched
    assert [field.name for field in fields(Decision)] == list(Decision.__slots__)  # the order the slots are set in
    assert [field.name for field in fields(Allocation)] == list(Allocation.__slots__)
    # built as a twin of the same slots, then given its class: of that class, as frozen, with no dict
    assert type(decision) is Decision and type(allocation) is Allocation
    for made, field in ((decision, "reason"), (allocation, "number")):
        assert not hasattr(made, "__dict__")
        with pytest.raises(FrozenInstanceError):
            setattr(made, field, "x")
    assert astuple(new_decision("f" * 32, "duplicate", "again")) == astuple(Decision("f" * 32, "duplicate", "again"))


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(ANY_PURPOSE, st.text(max_size=40), st.text(" \t\u00a0\n", max_size=4).map(lambda s: f"{s}сч 1{s}")),
    st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["", "1", " 3  a ", "٤٢", "Ab"])),
)
def test_the_fingerprint_is_the_old_one(purpose: str, document_number: str | None) -> None:
    # `fingerprint_folded`'s whitespace folding (`_collapse`, with its strip check; `_norm`) against the oracle's
    line = StatementLine(
        source="1c_file",
        account=ACCOUNT,
        value_date=date(2026, 11, 2),
        amount=100,
        purpose=purpose[:1000],
        document_number=document_number,
    )
    assert line.fingerprint == old_fingerprint(line)
