"""The reconciliation's fast paths find exactly what the plain ones do: the default patterns tried only where a
keyword starts (vs `finditer` at every position), and the fingerprint's whitespace folding (vs a regex)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from paybridge.domain.bank import _norm
from paybridge.domain.reconcile import DEFAULT_PATTERNS, compile_patterns, find_numbers

# The same patterns under another source text: `find_numbers` does not recognise them as the defaults, so it runs
# plain `finditer` over them — the reference.
PLAIN = tuple(re.compile(f"(?:{pattern})", re.IGNORECASE) for pattern in DEFAULT_PATTERNS)
FAST = compile_patterns()

WORDS = (
    "Оплата",
    "по",
    "счету",
    "счёту",
    "счета",
    "сч.",
    "сч",
    "СЧ-",
    "счетам",
    "счет-договор",
    "Счёт на оплату",
    "р/",
    "расчетный",
    "лицевому",
    "корр.",
    "invoice",
    "Invoice No.",
    "inv.",
    "inv",
    "invoices",
    "INV-",
    "ИНВ-",
    "№",
    "N",
    "#",
    "от",
    "и",
    "and",
    ",",
    ";",
    "-",
    "/",
    ".",
    ":",
    " ",
    "  ",
    "\t",
    "\u00a0",
    "\n",
    "12",
    "2026",
    "0042",
    "45/2",
    "А-17",
    "A",
    "7",
    "01.11.2026",
    "1234567890",
    "ИНН",
    "НДС",
    "за",
    "ё",
    "İnv",
    "ınv",
)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=18).map("".join))
def test_default_patterns_find_what_finditer_finds(purpose: str) -> None:
    assert find_numbers(purpose, FAST) == find_numbers(purpose, PLAIN)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("сСчЧiInNvVиИнНвВ№ .-/0123456789тоТО\u0130\u0131"), max_size=40))
def test_default_patterns_on_keyword_soup(purpose: str) -> None:
    assert find_numbers(purpose, FAST) == find_numbers(purpose, PLAIN)


def test_a_tenant_pattern_still_runs_first() -> None:
    # Given a tenant pattern before the defaults, When it and a default overlap, Then the tenant's match wins
    patterns = compile_patterns([r"заказ\s*(?P<number>Z-?\d+)"])
    assert find_numbers("Оплата заказ Z-17 по счету № 5", patterns) == ("z-17", "5")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.none())
def test_whitespace_folding_is_the_regex_one(text: str | None) -> None:
    assert _norm(text) == re.sub(r"\s+", " ", (text or "").strip()).casefold()


def test_every_character_matching_a_keyword_letter_case_folds_to_it() -> None:
    # The fast path's premise, over all of Unicode: what IGNORECASE lets match a keyword letter folds to that
    # letter (after the two Turkish i's are mapped), or folds to several characters (then the regex scan is used).
    from paybridge.domain.reconcile import _KEYWORDS, _SIGN_STARTS

    for letter in sorted({ch for keyword in _KEYWORDS for ch in keyword}):
        matches = re.compile(re.escape(letter), re.IGNORECASE).fullmatch
        for code in range(0x110000):
            char = chr(code)
            if matches(char):
                folded = char.replace("\u0130", "i").replace("\u0131", "i").casefold()
                assert folded == letter or len(folded) != 1, (letter, hex(code))
    # and a number sign can only begin with one of these (else `normalize_number` skips its regex)
    signs = re.compile(r"№|#|n", re.IGNORECASE).fullmatch
    assert {chr(code) for code in range(0x110000) if signs(chr(code))} <= _SIGN_STARTS


def test_a_dotted_capital_i_lengthens_the_folding() -> None:
    # The fast path looks for "İ" only when the folding is longer than the purpose: "İ" folds to two characters,
    # and no character folds to none (over all of Unicode)
    assert len("\u0130".casefold()) == 2
    assert all(chr(code).casefold() for code in range(0x110000))
    for purpose in ("İnv 12", "Оплата İNV-2026-5", "по сч İ 5", "ınvoice 7", "İ ı inv 3"):
        assert find_numbers(purpose, FAST) == find_numbers(purpose, PLAIN), purpose


def test_a_purpose_whose_folding_changes_its_length() -> None:
    # "ß" folds to "ss": positions would shift, so the starts come from the case-insensitive regex
    purpose = "Straße ß, оплата по счёту № 17 и İNV-2026-5"
    assert find_numbers(purpose, FAST) == find_numbers(purpose, PLAIN)
    assert "17" in find_numbers(purpose, FAST)


def test_a_text_of_digits_is_its_own_whitespace_folding() -> None:
    # `_norm` returns a text of `str.isdigit()` characters as is: over all of Unicode, no such character is
    # whitespace, unprintable, or changed by case-folding
    digits = [chr(code) for code in range(0x110000) if chr(code).isdigit()]
    assert len(digits) > 700
    for digit in digits:
        assert digit.casefold() == digit and digit.isprintable() and not digit.isspace(), hex(ord(digit))
    assert _norm("".join(digits)) == re.sub(r"\s+", " ", "".join(digits)).casefold()
    assert _norm("42") == "42" and _norm("٤٢") == "٤٢"


def test_the_number_is_each_default_patterns_first_group() -> None:
    # `find_numbers` reads a default match's number by the group's index (`_NUMBER`), not by its name
    from paybridge.domain.reconcile import _DEFAULTS, _NUMBER

    assert [pattern.groupindex["number"] for pattern in _DEFAULTS] == [_NUMBER] * len(_DEFAULTS)


def test_the_english_pattern_never_matches_at_inv_dash() -> None:
    # `find_numbers` does not try the English pattern ("invoice" / "inv." / "inv" before whitespace) where "inv" is
    # followed by what folds to "-": only "-" does (over all of Unicode), and it is none of "o", "." or whitespace
    assert [hex(code) for code in range(0x110000) if chr(code).casefold() == "-"] == ["0x2d"]
    english = re.compile(DEFAULT_PATTERNS[2], re.IGNORECASE)
    for purpose in ("inv-12", "INV-2026-0042", "Inv-5 inv 6", "по инвойсу inv-7/8 invoice 9"):
        assert all(
            not english.match(purpose, at) for at in range(len(purpose)) if purpose[at : at + 4].lower() == "inv-"
        )
    assert find_numbers("INV-2026-0042 inv. 5 inv-6", FAST) == find_numbers("INV-2026-0042 inv. 5 inv-6", PLAIN)
