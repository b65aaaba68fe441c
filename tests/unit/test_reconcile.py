"""Bank reconciliation (paybridge.domain.reconcile): finding invoice numbers in payment purposes, and deciding what
each statement line pays."""

from __future__ import annotations

import gc
import itertools
import re
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from datetime import date

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from paybridge.domain.bank import Decision, OpenInvoice, StatementLine
from paybridge.domain.reconcile import (
    DEFAULT_PATTERNS,
    MemoryIndex,
    compile_patterns,
    find_numbers,
    normalize_number,
    reconcile,
)

PATTERNS = compile_patterns(())
ACCOUNT = "40702810900000012345"
INN_A = "7707083893"
INN_B = "500100732259"
_docs = itertools.count(1)
ALLOCATING = frozenset({"paid", "partially_paid", "overpaid", "split"})


def line(
    amount: int,
    purpose: str,
    *,
    payer_inn: str | None = None,
    currency: str = "RUB",
    document_number: str | None = None,
) -> StatementLine:
    return StatementLine(
        source="1c_file",
        account=ACCOUNT,
        value_date=date(2026, 11, 2),
        amount=amount,
        currency=currency,
        purpose=purpose,
        payer_inn=payer_inn,
        document_number=document_number or str(next(_docs)),
    )


def invoice(
    invoice_id: str, number: str, outstanding: int, *, currency: str = "RUB", inn: str | None = None
) -> OpenInvoice:
    return OpenInvoice(
        invoice_id=invoice_id,
        number=number,
        amount=max(outstanding, 1),
        outstanding=outstanding,
        currency=currency,
        customer_inn=inn,
    )


def decide(
    lines: Sequence[StatementLine], invoices: Sequence[OpenInvoice], seen: Collection[str] = ()
) -> list[Decision]:
    return reconcile(lines, MemoryIndex(invoices), PATTERNS, seen)


def allocated(decision: Decision) -> dict[str, int]:
    return {a.invoice_id: a.amount for a in decision.allocations}


# --- finding numbers ----------------------------------------------------------------------------------------------

PURPOSES: list[tuple[str, tuple[str, ...]]] = [
    ("Оплата по счету № 123 от 01.11.2026", ("123",)),
    ("Оплата по счёту №123", ("123",)),
    ("сч.123", ("123",)),
    ("Оплата сч. № 45/2, НДС не облагается", ("45/2",)),
    ("Оплата по сч N 77 за услуги", ("77",)),
    ("Оплата по Счет-договор №15 от 03.11.2026", ("15",)),
    ("Оплата INV-2026-0042 без НДС", ("INV-2026-0042",)),
    ("Payment for invoice 123", ("123",)),
    ("Оплата согласно счета 123 от 12.10.26", ("123",)),
    ("Счёт на оплату № А-17. Сумма 1500-00", ("А-17",)),
    ("Оплата по договору 15 от 01.02.2026 за октябрь", ()),
    ("НДС не облагается", ()),
    ("Оплата по счету № 55 от 01.11.2026. В т.ч. НДС (20%) 250-00", ("55",)),
    ("Оплата по счету от 12.10.2026 № 56. НДС не облагается", ("56",)),
    ("Оплата по счетам № 12, 13 и № 14", ("12", "13", "14")),
    ("Оплата по счету 8, тел. +7 (916) 123-45-67", ("8",)),
    ("Оплата по счету 89161234567", ()),  # a phone number, not an invoice
    ("ИНН 7707083893 КПП 770701001 оплата сч 9.", ("9",)),
    ("Оплата по счету ИНН 7707083893", ()),
    ("Перечисление на р/сч 40702810900000012345 по счету 5", ("5",)),
    ("Перевод на расчетный счет 123456", ()),
    ("Пополнение по лицевому счету 123456", ()),
    ("Оплата по счету № СЧ-123 от 01.11.2026", ("СЧ-123",)),
    ("Invoice No. 7, VAT included", ("7",)),
    ("Оплата счета 123от01.11.2026", ("123",)),
    ("Оплата по счету № 12 и по счету № 13", ("12", "13")),
    ("Оплата по счету № 12. Повторно: по счету № 12", ("12",)),
    ("Показания счетчика 12345, оплата за воду", ()),
    ("Оплата по счету INV-2026-0042; НДС 20%", ("INV-2026-0042",)),
    ("Возврат займа по договору № 3 от 01.01.2026", ()),
    ("Оплата по счету за октябрь 2026 г.", ()),
    ("ОПЛАТА ПО СЧЕТУ N123 ОТ 01.11.2026", ("123",)),
    ("Оплата по счету № 123.", ("123",)),
    ("оплата по счету №45/2-Б, НДС нет", ("45/2-Б",)),
    ("по счету № 9 от 01.11.2026 (договор № 15, тел. 8-916-123-45-67)", ("9",)),
    ("Payment of invoices INV-2026-0001 and INV-2026-0002", ("INV-2026-0001", "INV-2026-0002")),
    ("Оплата по сч/ф 77", ()),  # a tax invoice (счет-фактура), not ours
    ("Оплата по счету-фактуре 44", ()),
]


def test_the_table_is_big_enough() -> None:
    assert len(PURPOSES) >= 25
    assert len(DEFAULT_PATTERNS) >= 3


@pytest.mark.parametrize(("purpose", "expected"), PURPOSES)
def test_find_numbers(purpose: str, expected: tuple[str, ...]) -> None:
    assert find_numbers(purpose, PATTERNS) == tuple(normalize_number(n) for n in expected)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("INV-2026-0042", "inv-2026-0042"),
        ("inv-2026-0042", "inv-2026-0042"),
        ("№ 123", "123"),
        ("N77", "77"),
        (" 45 / 2 ", "45/2"),
        ("А-17", "a-17"),  # Cyrillic А
        ("A-17", "a-17"),  # Latin A
        ("123.", "123"),
    ],
)
def test_normalize_number(text: str, normalized: str) -> None:
    assert normalize_number(text) == normalized


def test_the_date_is_never_part_of_the_number() -> None:
    assert find_numbers("Оплата по счету № 123 от 01.11.2026", PATTERNS) == ("123",)
    assert find_numbers("согласно счета 123 от 01.11", PATTERNS) == ("123",)
    assert find_numbers("счет 123 от 01.11", PATTERNS) != ("123от01",)


def test_tenant_pattern_is_found() -> None:
    patterns = compile_patterns([r"заказ\s*(?P<number>Z\d+)"])
    assert patterns[0].pattern == r"заказ\s*(?P<number>Z\d+)"
    assert find_numbers("Оплата заказ Z77, НДС не облагается", patterns) == ("z77",)
    assert find_numbers("Оплата заказ Z77, НДС не облагается", PATTERNS) == ()
    assert find_numbers("Оплата по счету 12, заказ Z77", patterns) == ("12", "z77")


def test_tenant_pattern_wins_over_the_defaults_on_the_same_words() -> None:
    patterns = compile_patterns([r"сч[её]ту\s*(?P<number>\d+\s*/\s*\d+)"])
    assert find_numbers("Оплата по счету 45 / 2", PATTERNS) == ("45",)
    assert find_numbers("Оплата по счету 45 / 2", patterns) == ("45/2",)


def test_a_pattern_without_a_number_group_is_refused() -> None:
    with pytest.raises(ValueError, match="number"):
        compile_patterns([r"заказ\s*(Z\d+)"])


# --- decisions ----------------------------------------------------------------------------------------------------


def test_exact_amount_pays_the_invoice() -> None:
    [d] = decide([line(150050, "Оплата по счету № 123 от 01.11.2026")], [invoice("i1", "123", 150050)])
    assert d.kind == "paid"
    assert allocated(d) == {"i1": 150050}
    assert d.numbers_found == ("123",)
    assert "123" in d.reason
    assert "1 500.50 RUB" in d.reason


def test_less_is_a_partial_payment_naming_the_shortfall() -> None:
    [d] = decide([line(100000, "Оплата сч.123")], [invoice("i1", "123", 150050)])
    assert d.kind == "partially_paid"
    assert allocated(d) == {"i1": 100000}
    assert "500.50 RUB" in d.reason


def test_more_is_an_overpayment_naming_the_excess() -> None:
    [d] = decide([line(200000, "Оплата по счёту №123")], [invoice("i1", "123", 150050)])
    assert d.kind == "overpaid"
    assert allocated(d) == {"i1": 200000}
    assert "499.50 RUB" in d.reason


def test_two_invoices_paid_by_one_line_are_split() -> None:
    invoices = [invoice("i1", "12", 1000), invoice("i2", "INV-2026-0042", 2500)]
    [d] = decide([line(3500, "Оплата по счету № 12 и INV-2026-0042")], invoices)
    assert d.kind == "split"
    assert allocated(d) == {"i1": 1000, "i2": 2500}


def test_a_split_that_does_not_add_up_is_ambiguous() -> None:
    invoices = [invoice("i1", "12", 1000), invoice("i2", "13", 2500)]
    [d] = decide([line(3000, "Оплата по счетам № 12, 13")], invoices)
    assert d.kind == "ambiguous"
    assert d.allocations == ()
    assert "do not add up" in d.reason
    assert "30.00 RUB" in d.reason
    assert "35.00 RUB" in d.reason


def test_unknown_number_is_unmatched() -> None:
    [d] = decide([line(1000, "Оплата по счету № 999")], [invoice("i1", "123", 1000)])
    assert d.kind == "unmatched"
    assert d.allocations == ()
    assert "999" in d.reason
    assert d.needs_a_person


def test_no_number_is_unmatched() -> None:
    [d] = decide([line(1000, "Оплата по договору 15 от 01.02.2026 за октябрь")], [invoice("i1", "15", 1000)])
    assert d.kind == "unmatched"
    assert d.reason == "no invoice number in the purpose"
    assert d.numbers_found == ()


def test_same_number_on_two_deals_is_ambiguous() -> None:
    invoices = [invoice("i1", "123", 1000), invoice("i2", "123", 1000)]
    [d] = decide([line(1000, "Оплата по счету № 123")], invoices)
    assert d.kind == "ambiguous"
    assert d.allocations == ()
    assert "i1" in d.reason
    assert "i2" in d.reason


def test_payer_inn_picks_one_of_the_invoices_sharing_a_number() -> None:
    invoices = [invoice("i1", "123", 1000, inn=INN_A), invoice("i2", "123", 1000, inn=INN_B)]
    [d] = decide([line(1000, "Оплата по счету № 123", payer_inn=INN_B)], invoices)
    assert d.kind == "paid"
    assert allocated(d) == {"i2": 1000}


def test_payer_inn_prefers_the_invoice_that_knows_it() -> None:
    invoices = [invoice("i1", "123", 1000), invoice("i2", "123", 1000, inn=INN_A)]
    [d] = decide([line(1000, "Оплата по счету № 123", payer_inn=INN_A)], invoices)
    assert d.kind == "paid"
    assert allocated(d) == {"i2": 1000}


def test_payer_inn_of_someone_else_is_excluded() -> None:
    [d] = decide([line(1000, "Оплата по счету № 123", payer_inn=INN_B)], [invoice("i1", "123", 1000, inn=INN_A)])
    assert d.kind == "unmatched"
    assert d.allocations == ()
    assert f"payer INN {INN_B} is not the invoice's customer" in d.reason


def test_another_currency_is_excluded() -> None:
    [d] = decide([line(1000, "Оплата по счету № 123")], [invoice("i1", "123", 1000, currency="EUR")])
    assert d.kind == "unmatched"
    assert "EUR" in d.reason


def test_another_currency_does_not_hide_the_right_one() -> None:
    invoices = [invoice("i1", "123", 1000, currency="EUR"), invoice("i2", "123", 1000)]
    [d] = decide([line(1000, "Оплата по счету № 123")], invoices)
    assert d.kind == "paid"
    assert allocated(d) == {"i2": 1000}


def test_a_fingerprint_seen_before_is_a_duplicate() -> None:
    first = line(1000, "Оплата по счету № 123", document_number="77")
    again = line(1000, "Оплата по счету № 123", document_number="77")
    invoices = [invoice("i1", "123", 5000)]
    d1, d2 = decide([first, again], invoices)
    assert (d1.kind, d2.kind) == ("partially_paid", "duplicate")
    assert d2.allocations == ()
    [d3] = decide([first], invoices, seen={first.fingerprint})
    assert d3.kind == "duplicate"
    assert d3.allocations == ()


def test_remaining_is_tracked_across_lines_of_one_run() -> None:
    invoices = [invoice("i1", "123", 1000)]
    lines = [line(600, "по счету 123"), line(400, "по счету 123"), line(100, "по счету 123")]
    assert [d.kind for d in decide(lines, invoices)] == ["partially_paid", "paid", "overpaid"]
    lines = [line(1000, "по счету 123"), line(1000, "по счету 123")]
    d1, d2 = decide(lines, invoices)
    assert (d1.kind, d2.kind) == ("paid", "overpaid")
    assert "10.00 RUB too much" in d2.reason


def test_a_split_after_one_invoice_was_paid_sees_what_is_left() -> None:
    invoices = [invoice("i1", "12", 1000), invoice("i2", "13", 2000)]
    lines = [line(500, "по счету 12"), line(2500, "Оплата по счетам 12 и 13")]
    d1, d2 = decide(lines, invoices)
    assert d1.kind == "partially_paid"
    assert d2.kind == "split"
    assert allocated(d2) == {"i1": 500, "i2": 2000}


def test_each_number_is_looked_up_once_and_invoices_are_never_scanned() -> None:
    calls: list[str] = []
    store = MemoryIndex([invoice("i1", "12", 1000), invoice("i2", "13", 2000)])

    class Spy:
        def by_number(self, number: str) -> Sequence[OpenInvoice]:
            calls.append(number)
            return store.by_number(number)

    lines = [line(3000, "Оплата по счетам 12 и 13"), line(5, "НДС не облагается"), line(7, "сч. 99")]
    reconcile(lines, Spy(), PATTERNS)
    assert calls == ["12", "13", "99"]


def test_an_invoice_found_under_two_numbers_is_paid_once() -> None:
    only = invoice("i1", "12", 1000)

    class Aliases:  # an index that also knows the invoice by its CRM deal number
        def by_number(self, number: str) -> Sequence[OpenInvoice]:
            return [only] if number in ("12", "d-7") else []

    [d] = reconcile([line(1000, "Оплата по счету № 12 (сделка), по счету D-7")], Aliases(), PATTERNS)
    assert d.numbers_found == ("12", "d-7")
    assert d.kind == "paid"
    assert allocated(d) == {"i1": 1000}
    assert len(d.allocations) == 1


# --- properties ---------------------------------------------------------------------------------------------------

NUMBERS = ["1", "2", "А-3", "INV-2026-0004"]
ONE = ["Оплата по счету № {}", "сч.{}", "invoice {}", "Оплата по счету от 01.11.2026 № {} без НДС"]
TWO = ["по счетам {} и {}", "Оплата по счету № {}, по счету № {}"]
INNS = [None, None, INN_A, INN_B]
CURRENCIES = ["RUB", "RUB", "RUB", "EUR"]
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)
Statement = tuple[list[StatementLine], list[OpenInvoice]]
# A line naming two invoices whose outstanding amounts do not add up to it (a wrong split would over-allocate),
# one that does, and one paying again what the split paid.
SPLIT_EXAMPLE: Statement = (
    [line(100, "по счетам 1 и 2"), line(3000, "Оплата по счету № 1, по счету № 2"), line(1000, "сч.1")],
    [invoice("a", "1", 1000), invoice("b", "2", 2000, inn=INN_A)],
)


@st.composite
def statements(draw: st.DrawFn) -> Statement:
    """Open invoices (sometimes several deals sharing a number), and lines that mostly name them (sometimes an
    unknown "9" or nothing), paying mostly what they owe, alone or together, so that every kind of decision occurs."""
    shared = draw(st.booleans())
    invoices = draw(
        st.lists(
            st.builds(
                invoice,
                st.text("abcdef", min_size=1, max_size=2),
                st.sampled_from(NUMBERS),
                st.sampled_from([100, 200, 400, 1000, 0]),
                currency=st.sampled_from(CURRENCIES),
                inn=st.sampled_from(INNS),
            ),
            min_size=1,
            max_size=8 if shared else len(NUMBERS),
            unique_by=(lambda i: i.invoice_id) if shared else (lambda i: i.invoice_id, lambda i: i.number),
        )
    )
    outstanding = {i.number: i.outstanding for i in invoices}
    lines = []
    for _ in range(draw(st.integers(0, 10))):
        how_many = draw(st.sampled_from([1, 1, 1, 2, 2, 0]))
        known = [i.number for i in invoices] * 3
        named = draw(st.lists(st.sampled_from([*known, *NUMBERS, "9"]), min_size=how_many, max_size=how_many))
        named = list(dict.fromkeys(named))
        if not named:
            purpose = draw(st.sampled_from(["Оплата по договору 15 от 01.02.2026", "НДС не облагается"]))
        else:
            purpose = draw(st.sampled_from(ONE if len(named) == 1 else TWO)).format(*named)
        owed = sum(outstanding.get(n, 0) for n in named)  # of the last invoice with each number (roughly)
        amount = draw(
            st.sampled_from([max(owed, 1), max(owed, 1), max(owed // 2, 1), owed + 50]) | st.integers(1, 2500)
        )
        if amount == owed:
            outstanding.update(dict.fromkeys(named, 0))
        lines.append(
            line(
                amount,
                purpose,
                payer_inn=draw(st.sampled_from([*INNS, None, None])),
                currency=draw(st.sampled_from([*CURRENCIES, "RUB", "RUB"])),
                document_number=draw(st.sampled_from(["1", "2", "3"])),  # repeats make duplicates
            )
        )
    return lines, invoices


@PROPERTY_SETTINGS
@given(statements())
@example(SPLIT_EXAMPLE)
def test_allocations_add_up_to_nothing_or_the_line(statement: Statement) -> None:
    lines, invoices = statement
    decisions = decide(lines, invoices)
    assert len(decisions) == len(lines)
    for each, decision in zip(lines, decisions, strict=True):
        assert decision.fingerprint == each.fingerprint
        total = sum(a.amount for a in decision.allocations)
        assert total in (0, each.amount)
        assert (total == each.amount) == (decision.kind in ALLOCATING)
        ids = [a.invoice_id for a in decision.allocations]
        assert len(ids) == len(set(ids))
        assert decision.reason


@PROPERTY_SETTINGS
@given(statements())
def test_rerunning_a_statement_changes_nothing(statement: Statement) -> None:
    lines, invoices = statement
    first = decide(lines, invoices)
    again = decide(lines, invoices, seen=[d.fingerprint for d in first])
    assert [d.kind for d in again] == ["duplicate"] * len(lines)
    assert all(d.allocations == () for d in again)


@PROPERTY_SETTINGS
@given(statements())
@example(SPLIT_EXAMPLE)
def test_an_invoice_never_gets_more_than_the_lines_naming_it(statement: Statement) -> None:
    lines, invoices = statement
    decisions = decide(lines, invoices)
    got: dict[str, int] = defaultdict(int)
    named: dict[str, int] = defaultdict(int)
    for each, decision in zip(lines, decisions, strict=True):
        for allocation in decision.allocations:
            got[allocation.invoice_id] += allocation.amount
        for inv in invoices:
            if normalize_number(inv.number) in decision.numbers_found:
                named[inv.invoice_id] += each.amount
    for invoice_id, total in got.items():
        assert total <= named[invoice_id]


def test_patterns_are_compiled_case_insensitive() -> None:
    assert all(p.flags & re.IGNORECASE for p in PATTERNS)


@pytest.mark.parametrize("collecting", [True, False])
def test_the_garbage_collector_is_paused_while_matching_and_restored_after(collecting: bool) -> None:
    during: list[bool] = []

    def lines() -> Iterator[StatementLine]:
        during.append(gc.isenabled())
        yield line(100, "Оплата по счету № 1")

    was = gc.isenabled()
    try:
        if not collecting:
            gc.disable()
        [decision] = reconcile(lines(), MemoryIndex([invoice("inv_1", "1", 100)]), PATTERNS)
        assert decision.kind == "paid"
        assert during == [False]
        assert gc.isenabled() is collecting
    finally:
        if was:
            gc.enable()


def test_the_garbage_collector_is_restored_when_matching_fails() -> None:
    def lines() -> Iterator[StatementLine]:
        yield line(100, "Оплата по счету № 1")
        raise RuntimeError("the statement's reader failed")

    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="reader failed"):
        reconcile(lines(), MemoryIndex([]), PATTERNS)
    assert gc.isenabled()
