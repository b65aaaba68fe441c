"""1CClientBankExchange statement files (paybridge.domain.statement_1c): decoding, structure, incoming lines, errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paybridge.domain.errors import StatementFormatError
from paybridge.domain.money import to_decimal_string
from paybridge.domain.statement_1c import ParsedStatement, parse_1c

OURS = "40702810900000012345"
OURS_2 = "40702810500000067890"
CUSTOMER = "40702810138000011111"
CUSTOMER_2 = "40802810400000022222"
SUPPLIER = "40702810600000033333"
ELSEWHERE = "40702810000000099999"

ENCODING_LABEL = {"cp1251": "Windows", "cp866": "DOS"}


def encode(text: str, encoding: str) -> bytes:
    """CRLF line endings, as 1C writes them; 'utf-8' gets a BOM."""
    body = text.replace("\r\n", "\n").replace("\n", "\r\n")
    if encoding == "utf-8":
        return b"\xef\xbb\xbf" + body.encode("utf-8")
    return body.encode(encoding)


def realistic(label: str = "Windows") -> str:
    return f"""1CClientBankExchange
ВерсияФормата=1.03
Кодировка={label}
Отправитель=Бухгалтерия предприятия, редакция 3.0
Получатель=
ДатаСоздания=05.03.2024
ВремяСоздания=10:15:00
ДатаНачала=01.03.2024
ДатаКонца=04.03.2024
РасчСчет={OURS}
РасчСчет={OURS_2}
Документ=Платежное поручение
СекцияРасчСчет
ДатаНачала=01.03.2024
ДатаКонца=04.03.2024
РасчСчет={OURS}
НачальныйОстаток=100000.00
ВсегоПоступило=16500.50
ВсегоСписано=3000.00
КонечныйОстаток=113500.50
КонецРасчСчет
СекцияРасчСчет
ДатаНачала=01.03.2024
ДатаКонца=04.03.2024
РасчСчет={OURS_2}
НачальныйОстаток=0.00
ВсегоПоступило=0.00
ВсегоСписано=0.00
КонечныйОстаток=0.00
КонецРасчСчет
СекцияДокумент=Платежное поручение
Номер=512
Дата=01.03.2024
Сумма=15000.00
ПлательщикСчет={CUSTOMER}
Плательщик=ИНН 7701234567 ООО "Ромашка"
ПлательщикИНН=7701234567
Плательщик1=ООО "Ромашка"
ПлательщикРасчСчет={CUSTOMER}
ПлательщикБанк1=ПАО СБЕРБАНК
ПлательщикБИК=044525225
ПлательщикКорсчет=30101810400000000225
ПолучательСчет={OURS}
Получатель=ООО "ПэйБридж"
ПолучательИНН=7709876543
ПолучательРасчСчет={OURS}
ВидОплаты=01
Очередность=5
ДатаПоступило=04.03.2024
ДатаСписано=
НазначениеПлатежа=Оплата по счету № INV-2024-0042 от 28.02.2024. В т.ч. НДС 20% - 2500.00 руб.
КонецДокумента
СекцияДокумент=Платежное поручение
Номер=77
Дата=02.03.2024
Сумма=1500,50
ПлательщикСчет={CUSTOMER_2}
Плательщик=Индивидуальный предприниматель Иванов Иван Иванович
ПлательщикИНН=770100112233
ПолучательСчет={OURS}
Получатель=ООО "ПэйБридж"
ДатаПоступило=02.03.2024
НазначениеПлатежа=Оплата по сч. INV-2024-0043, без НДС
КонецДокумента
СекцияДокумент=Платежное поручение
Номер=13
Дата=03.03.2024
Сумма=3000
ПлательщикСчет={OURS}
Плательщик=ООО "ПэйБридж"
ПлательщикИНН=7709876543
ПолучательСчет={SUPPLIER}
Получатель=ООО "Поставщик"
ДатаСписано=03.03.2024
НазначениеПлатежа=Оплата за хостинг
КонецДокумента
СекцияДокумент=Платежное поручение
Номер=900
Дата=03.03.2024
Сумма=999.99
ПлательщикСчет={CUSTOMER}
Плательщик=ООО "Ромашка"
ПолучательСчет={ELSEWHERE}
Получатель=Чужая компания
НазначениеПлатежа=Не нам
КонецДокумента
КонецФайла
"""


def document(
    *,
    number: str = "1",
    amount: str = "100.00",
    payer_account: str = CUSTOMER,
    receiver_account: str = OURS,
    day: str = "01.03.2024",
    extra: str = "НазначениеПлатежа=Оплата",
) -> str:
    return (
        f"СекцияДокумент=Платежное поручение\nНомер={number}\nДата={day}\nСумма={amount}\n"
        f"ПлательщикСчет={payer_account}\nПлательщик=Покупатель\nПолучательСчет={receiver_account}\n"
        f"{extra}\nКонецДокумента\n"
    )


def statement(*documents: str, accounts: tuple[str, ...] = (OURS,), label: str = "Windows") -> str:
    header = f"1CClientBankExchange\nВерсияФормата=1.03\nКодировка={label}\n"
    header += "".join(f"РасчСчет={account}\n" for account in accounts)
    return header + "".join(documents) + "КонецФайла\n"


def parse_text(text: str, encoding: str = "cp1251", our_accounts: tuple[str, ...] = ()) -> ParsedStatement:
    return parse_1c(encode(text, encoding), our_accounts)


# --- a realistic statement -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["cp1251", "cp866"])
def test_realistic_statement_gives_the_two_incoming_payments(encoding: str) -> None:
    parsed = parse_1c(encode(realistic(ENCODING_LABEL[encoding]), encoding))

    assert parsed.encoding == encoding
    assert parsed.accounts == (OURS, OURS_2)
    assert parsed.documents == 4
    assert parsed.skipped == 2  # the debit to the supplier and the payment to another company's account
    first, second = parsed.lines

    assert first.source == "1c_file"
    assert first.account == OURS
    assert first.value_date == date(2024, 3, 4)  # ДатаПоступило, not Дата
    assert first.amount == 1_500_000
    assert first.purpose == "Оплата по счету № INV-2024-0042 от 28.02.2024. В т.ч. НДС 20% - 2500.00 руб."
    assert first.payer_name == 'ИНН 7701234567 ООО "Ромашка"'
    assert first.payer_inn == "7701234567"
    assert first.payer_account == CUSTOMER
    assert first.document_number == "512"
    assert first.operation_id is None
    assert first.currency == "RUB"

    assert second.amount == 150_050  # "1500,50"
    assert second.payer_inn == "770100112233"
    assert second.payer_account == CUSTOMER_2
    assert second.value_date == date(2024, 3, 2)
    assert second.purpose == "Оплата по сч. INV-2024-0043, без НДС"


def test_utf8_with_bom_is_accepted() -> None:
    parsed = parse_1c(encode(realistic("Windows"), "utf-8"))
    assert parsed.encoding == "utf-8"
    assert [line.amount for line in parsed.lines] == [1_500_000, 150_050]
    assert parsed.lines[0].payer_name == 'ИНН 7701234567 ООО "Ромашка"'


def test_lf_line_endings_are_accepted_too() -> None:
    parsed = parse_1c(realistic().encode("cp1251"))
    assert [line.document_number for line in parsed.lines] == ["512", "77"]


def test_the_same_payment_has_one_fingerprint_in_cp1251_cp866_and_utf8() -> None:
    fingerprints = {
        encoding: [line.fingerprint for line in parse_1c(encode(realistic(label), encoding)).lines]
        for encoding, label in [("cp1251", "Windows"), ("cp866", "DOS"), ("utf-8", "Windows")]
    }
    assert fingerprints["cp1251"] == fingerprints["cp866"] == fingerprints["utf-8"]
    assert len(set(fingerprints["cp1251"])) == 2


def test_without_the_encoding_key_the_file_is_read_as_windows_1251() -> None:
    text = realistic().replace("Кодировка=Windows\n", "")
    parsed = parse_text(text, "cp1251")
    assert parsed.encoding == "cp1251"
    assert parsed.lines[0].payer_name == 'ИНН 7701234567 ООО "Ромашка"'


def test_the_bytes_decide_the_encoding_not_the_label() -> None:
    # a DOS file whose label says Windows is still read as cp866: the key's bytes are cp866
    parsed = parse_text(realistic("Windows"), "cp866")
    assert parsed.encoding == "cp866"
    assert parsed.lines[1].purpose == "Оплата по сч. INV-2024-0043, без НДС"


def test_our_accounts_argument_overrides_the_files_accounts() -> None:
    parsed = parse_text(realistic(), our_accounts=(ELSEWHERE,))
    assert parsed.accounts == (OURS, OURS_2)  # still what the file says
    assert [line.document_number for line in parsed.lines] == ["900"]
    assert parsed.lines[0].account == ELSEWHERE
    assert parsed.skipped == 3


def test_our_accounts_argument_must_be_accounts() -> None:
    with pytest.raises(ValueError, match="20 digits"):
        parse_text(realistic(), our_accounts=("123",))


# --- documents -------------------------------------------------------------------------------------------------------


def test_multi_part_purpose_is_joined_with_a_space_in_numeric_order() -> None:
    extra = "НазначениеПлатежа2=от 01.03.2024\nНазначениеПлатежа1=Оплата по счету INV-7\nНазначениеПлатежа10=НДС"
    parsed = parse_text(statement(document(extra=extra)))
    assert parsed.lines[0].purpose == "Оплата по счету INV-7 от 01.03.2024 НДС"


def test_a_whole_purpose_wins_over_parts_and_an_empty_one_falls_back_to_them() -> None:
    both = "НазначениеПлатежа=Целиком\nНазначениеПлатежа1=Часть"
    empty = "НазначениеПлатежа=\nНазначениеПлатежа1=Часть 1\nНазначениеПлатежа2=\nНазначениеПлатежа3=Часть 3"
    parsed = parse_text(statement(document(extra=both), document(extra=empty)))
    assert [line.purpose for line in parsed.lines] == ["Целиком", "Часть 1 Часть 3"]


def test_a_value_keeps_everything_after_the_first_equals_sign() -> None:
    parsed = parse_text(statement(document(extra="НазначениеПлатежа=Счет=INV-1; сумма=100")))
    assert parsed.lines[0].purpose == "Счет=INV-1; сумма=100"


def test_missing_optional_keys_are_fine() -> None:
    text = statement(
        "СекцияДокумент=Платежное поручение\nДата=05.03.2024\nСумма=10\nПолучательСчет=" + OURS + "\nКонецДокумента\n"
    )
    (line,) = parse_text(text).lines
    assert line.value_date == date(2024, 3, 5)  # no ДатаПоступило: Дата
    assert line.amount == 1000
    assert line.payer_inn is None
    assert line.payer_account is None
    assert line.payer_name == ""
    assert line.purpose == ""
    assert line.document_number is None


def test_empty_inn_is_none_and_plательщик1_is_the_fallback_name() -> None:
    extra = "ПлательщикИНН=\nПлательщик1=ООО Запасное имя\nНазначениеПлатежа=x"
    text = statement(document(extra=extra)).replace("Плательщик=Покупатель\n", "Плательщик=\n")
    (line,) = parse_text(text).lines
    assert line.payer_inn is None
    assert line.payer_name == "ООО Запасное имя"


@pytest.mark.parametrize(("amount", "minor"), [("1500", 150_000), ("1500,5", 150_050), ("0.01", 1), ("7,00", 700)])
def test_amount_formats(amount: str, minor: int) -> None:
    assert parse_text(statement(document(amount=amount))).lines[0].amount == minor


def test_several_accounts_in_the_header_are_all_ours() -> None:
    text = statement(
        document(number="1", receiver_account=OURS),
        document(number="2", receiver_account=OURS_2),
        document(number="3", receiver_account=ELSEWHERE),
        accounts=(OURS, OURS_2),
    )
    parsed = parse_text(text)
    assert parsed.accounts == (OURS, OURS_2)
    assert [(line.document_number, line.account) for line in parsed.lines] == [("1", OURS), ("2", OURS_2)]
    assert (parsed.documents, parsed.skipped) == (3, 1)


def test_a_transfer_between_our_own_accounts_is_not_incoming() -> None:
    parsed = parse_text(statement(document(payer_account=OURS_2, receiver_account=OURS), accounts=(OURS, OURS_2)))
    assert parsed.lines == ()
    assert (parsed.documents, parsed.skipped) == (1, 1)


def test_zero_amount_documents_are_skipped() -> None:
    parsed = parse_text(statement(document(amount="0.00"), document(number="2")))
    assert [line.document_number for line in parsed.lines] == ["2"]
    assert (parsed.documents, parsed.skipped) == (2, 1)


def test_blank_lines_and_surrounding_spaces_are_tolerated() -> None:
    text = statement(document(amount=" 12.30 ")).replace("КонецДокумента\n", "КонецДокумента  \n\n\n") + "\n\n"
    assert parse_text(text).lines[0].amount == 1230


def test_a_file_without_documents() -> None:
    parsed = parse_text(statement())
    assert (parsed.lines, parsed.documents, parsed.skipped, parsed.accounts) == ((), 0, 0, (OURS,))


# --- malformed files: the exact line ---------------------------------------------------------------------------------


def error_line(text: str, encoding: str = "cp1251") -> int:
    with pytest.raises(StatementFormatError) as caught:
        parse_text(text, encoding)
    assert str(caught.value).startswith(f"line {caught.value.line}: ")
    return caught.value.line


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based number of the line starting with `needle` (the n-th one)."""
    hits = [n for n, line in enumerate(text.split("\n"), start=1) if line.startswith(needle)]
    return hits[occurrence - 1]


@pytest.mark.parametrize("encoding", ["cp1251", "cp866"])
def test_no_header(encoding: str) -> None:
    assert error_line(realistic().replace("1CClientBankExchange\n", ""), encoding) == 1
    assert error_line("", encoding) == 1


def test_a_header_after_junk_is_not_a_header() -> None:
    assert error_line("Выписка\n" + realistic()) == 1


def test_line_without_equals_sign() -> None:
    text = realistic().replace("Очередность=5\n", "Очередность=5\nпродолжение назначения платежа\n")
    assert error_line(text) == line_of(text, "продолжение") == 49


@pytest.mark.parametrize("bad", ["-100.00", "100.001", "сто", "", "1 500.00", "1.2.3", "100000000000.01"])
def test_bad_amount_on_its_line(bad: str) -> None:
    text = realistic().replace("Сумма=1500,50", f"Сумма={bad}")
    assert error_line(text) == line_of(text, "Сумма=", 2) == 56


def test_bad_amount_in_a_debit_is_an_error_too() -> None:
    text = realistic().replace("Сумма=3000", "Сумма=3000.5.0")
    assert error_line(text) == line_of(text, "Сумма=", 3)


def test_document_without_amount_is_reported_at_its_start() -> None:
    text = statement(document(), document(number="2").replace("Сумма=100.00\n", ""))
    assert error_line(text) == line_of(text, "СекцияДокумент", 2) == 14


def test_unclosed_document_before_the_next_one() -> None:
    text = realistic().replace("НазначениеПлатежа=Оплата по сч. INV-2024-0043, без НДС\nКонецДокумента\n", "")
    line = error_line(text)
    assert line == line_of(text, "СекцияДокумент", 3)
    with pytest.raises(StatementFormatError, match=f"opened at line {line_of(text, 'СекцияДокумент', 2)}"):
        parse_text(text)


def test_unclosed_document_before_the_end_of_file() -> None:
    text = statement(document()).replace("КонецДокумента\n", "")
    assert error_line(text) == line_of(text, "КонецФайла") == 13


def test_unclosed_balance_section() -> None:
    text = realistic().replace("КонечныйОстаток=113500.50\nКонецРасчСчет\n", "")
    assert error_line(text) == line_of(text, "СекцияРасчСчет", 2)


def test_missing_end_of_file_is_reported_at_the_last_line() -> None:
    text = realistic().replace("КонецФайла\n", "\n\n")
    assert error_line(text) == line_of(text, "КонецДокумента", 4) == 86


def test_missing_end_of_file_inside_a_document() -> None:
    text = statement(document()).replace("КонецДокумента\nКонецФайла\n", "")
    assert error_line(text) == 12  # the last line, НазначениеПлатежа


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ДатаПоступило=04.03.2024", "ДатаПоступило=2024-03-04"),
        ("ДатаПоступило=04.03.2024", "ДатаПоступило=31.02.2024"),
        ("ДатаПоступило=04.03.2024", "ДатаПоступило=4.3.2024"),
        ("Дата=01.03.2024", "Дата=01.13.2024"),
    ],
)
def test_bad_date_on_its_line(old: str, new: str) -> None:
    text = realistic().replace(old, new)
    key = new.partition("=")[0] + "="
    assert error_line(text) == line_of(text, key)


def test_bad_header_date() -> None:
    text = realistic().replace("ДатаНачала=01.03.2024", "ДатаНачала=01/03/2024", 1)
    assert error_line(text) == 8


def test_bad_account_in_an_incoming_document() -> None:
    text = realistic().replace(f"ПлательщикСчет={CUSTOMER_2}", "ПлательщикСчет=4070281")
    assert error_line(text) == line_of(text, "ПлательщикСчет=", 2) == 57


def test_bad_account_in_the_header() -> None:
    text = realistic().replace(f"РасчСчет={OURS_2}", "РасчСчет=40702810X00000067890", 1)
    assert error_line(text) == 11


@pytest.mark.parametrize("stray", ["СекцияДокумент=Платежное поручение", "Номер=5", "мусор"])
def test_data_after_end_of_file(stray: str) -> None:
    text = realistic() + f"\n\n{stray}\n\n"
    assert error_line(text) == 90


def test_blank_lines_after_end_of_file_are_fine() -> None:
    assert parse_text(realistic() + "\n\n  \n").documents == 4


def test_accounts_from_balance_sections_only_are_ours() -> None:
    text = realistic().replace(f"РасчСчет={OURS}\nРасчСчет={OURS_2}\nДокумент", "Документ")
    parsed = parse_text(text)
    assert parsed.accounts == (OURS, OURS_2)
    assert [line.document_number for line in parsed.lines] == ["512", "77"]


def test_unknown_section() -> None:
    text = realistic().replace("Документ=Платежное поручение\n", "СекцияВыписка=1\n", 1)
    assert error_line(text) == 12


def test_stray_closing_keywords() -> None:
    text = statement(document()).replace("КонецФайла", "КонецДокумента\nКонецФайла")
    assert error_line(text) == 14
    text = statement(document()).replace("КонецФайла", "КонецРасчСчет\nКонецФайла")
    assert error_line(text) == 14


def test_repeated_key_in_a_document() -> None:
    text = statement(document(extra="Сумма=1.00"))
    assert error_line(text) == 12


def test_undecodable_byte_is_reported_on_its_line() -> None:
    data = encode(statement(document()), "cp1251").replace(b"\xce\xef\xeb\xe0\xf2\xe0", b"\x98")  # "Оплата"
    with pytest.raises(StatementFormatError) as caught:
        parse_1c(data)
    assert caught.value.line == 12


def test_format_error_is_a_value_error() -> None:
    assert issubclass(StatementFormatError, ValueError)


# --- property: write then parse ------------------------------------------------------------------------------------

CYRILLIC = "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя"
PURPOSE_ALPHABET = CYRILLIC + "0123456789 .,-№%=()\"'/"

accounts_st = st.text(alphabet="0123456789", min_size=20, max_size=20)
purposes = st.text(alphabet=PURPOSE_ALPHABET, max_size=210).map(lambda s: " ".join(s.split()))


@dataclass(frozen=True)
class Generated:
    amount: int
    purpose: str
    payer: str
    receiver: str
    split: bool
    comma: bool


@st.composite
def statements(draw: st.DrawFn) -> tuple[list[str], list[Generated]]:
    ours = draw(st.lists(accounts_st, min_size=1, max_size=3, unique=True))
    others = draw(st.lists(accounts_st.filter(lambda a: a not in ours), min_size=1, max_size=3, unique=True))
    pool = st.sampled_from(ours + others)
    docs = draw(
        st.lists(
            st.builds(
                Generated,
                amount=st.integers(min_value=0, max_value=10**13),
                purpose=purposes,
                payer=pool,
                receiver=pool,
                split=st.booleans(),
                comma=st.booleans(),
            ),
            max_size=8,
        )
    )
    return ours, docs


def write(ours: list[str], docs: list[Generated], label: str) -> str:
    out = [MAGIC_LINE, "ВерсияФормата=1.03", f"Кодировка={label}", *(f"РасчСчет={a}" for a in ours)]
    for n, doc in enumerate(docs, start=1):
        amount = to_decimal_string(doc.amount)
        out += [
            "СекцияДокумент=Платежное поручение",
            f"Номер={n}",
            "Дата=15.03.2024",
            f"Сумма={amount.replace('.', ',') if doc.comma else amount}",
            f"ПлательщикСчет={doc.payer}",
            f"ПолучательСчет={doc.receiver}",
        ]
        if doc.split and len(doc.purpose) > 1:
            cut = doc.purpose.find(" ", 1)
            if cut > 0:  # split on a space, as banks do: the parts are joined back with one space
                out += [f"НазначениеПлатежа1={doc.purpose[:cut]}", f"НазначениеПлатежа2={doc.purpose[cut + 1 :]}"]
            else:
                out.append(f"НазначениеПлатежа1={doc.purpose}")
        else:
            out.append(f"НазначениеПлатежа={doc.purpose}")
        out.append("КонецДокумента")
    out.append("КонецФайла")
    return "\n".join(out) + "\n"


MAGIC_LINE = "1CClientBankExchange"


@settings(max_examples=150, deadline=None)
@given(generated=statements(), encoding=st.sampled_from(["cp1251", "cp866", "utf-8"]))
def test_written_documents_parse_back_to_exactly_the_incoming_ones(
    generated: tuple[list[str], list[Generated]], encoding: str
) -> None:
    ours, docs = generated
    parsed = parse_1c(encode(write(ours, docs, ENCODING_LABEL.get(encoding, "Windows")), encoding))

    expected = [
        (str(n), doc.receiver, doc.amount, doc.purpose, doc.payer)
        for n, doc in enumerate(docs, start=1)
        if doc.receiver in ours and doc.payer not in ours and doc.amount > 0
    ]
    got = [(line.document_number, line.account, line.amount, line.purpose, line.payer_account) for line in parsed.lines]
    assert got == expected
    assert parsed.accounts == tuple(ours)
    assert parsed.documents == len(docs)
    assert parsed.skipped == len(docs) - len(expected)
    assert parsed.encoding == encoding
