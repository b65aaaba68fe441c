"""Parse a 1CClientBankExchange bank statement file (format versions 1.02/1.03) into incoming statement lines.

Pure: bytes in, a `ParsedStatement` out, no I/O. Only incoming payments to our accounts become `StatementLine`s
(receiver's account is ours and the payer's is not); debits, payments to other accounts and zero amounts are only
counted. Anything malformed raises `StatementFormatError` naming the 1-based line of the file where it was found.

Decisions worth knowing:
- the encoding is taken from the bytes, not from the `Кодировка` value: a UTF-8 BOM means UTF-8, otherwise the key
  `Кодировка` is looked for as Windows-1251, cp866 (DOS) and UTF-8 bytes; without it the file is read as cp1251;
- keys and values are stripped of surrounding whitespace; a value is everything after the first `=`;
- a key repeated inside one document is an error (a second `Сумма` must not silently win);
- an unclosed section is reported at the line where it is found to be unclosed (the next `СекцияДокумент`,
  `КонецФайла`, …), the message names the line that opened it; a document without `Сумма` (or without any date,
  when incoming) is reported at its `СекцияДокумент` line; a missing `КонецФайла` at the last non-blank line;
- `Сумма` and the dates (`Дата`, `ДатаПоступило`, `ДатаСписано`, header and balance `ДатаНачала`/`ДатаКонца`/
  `ДатаСоздания`) are checked in every document, not just in incoming ones; an empty date counts as absent, an
  empty `Сумма=` is a bad amount (reported on its line);
- the purpose is `НазначениеПлатежа`, or when that is empty or absent, the non-empty `НазначениеПлатежаN` parts in
  the order of N joined with one space; the payer's name is `Плательщик`, or `Плательщик1` when that is empty;
- `ПлательщикИНН` is kept as given (some banks write `0` for a private person); only an empty value becomes None.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date

from pydantic import ValidationError

from paybridge.domain.bank import StatementLine
from paybridge.domain.errors import StatementFormatError
from paybridge.domain.money import from_decimal_string

MAGIC = "1CClientBankExchange"
MAX_AMOUNT = 10**13  # PositiveMinorUnits' upper bound

_BOM = b"\xef\xbb\xbf"
_ENCODING_KEY = "Кодировка"
_ACCOUNT = re.compile(r"^\d{20}$")
_DATE = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})$")
_PURPOSE_PART = re.compile(r"^НазначениеПлатежа(\d+)$")

_DOCUMENT = "СекцияДокумент"
_DOCUMENT_END = "КонецДокумента"
_BALANCE = "СекцияРасчСчет"
_BALANCE_END = "КонецРасчСчет"
_FILE_END = "КонецФайла"
_HEADER_DATES = frozenset({"ДатаНачала", "ДатаКонца", "ДатаСоздания"})
_DOCUMENT_DATES = ("Дата", "ДатаПоступило", "ДатаСписано")


@dataclass(frozen=True)
class ParsedStatement:
    accounts: tuple[str, ...]  # РасчСчет of the header and of the balance sections, in file order, no repeats
    lines: tuple[StatementLine, ...]  # incoming payments to our accounts, in file order
    documents: int  # all СекцияДокумент sections
    skipped: int  # documents that did not become a line: debits, other accounts, zero amounts
    encoding: str  # "cp1251", "cp866" or "utf-8"


@dataclass
class _Document:
    kind: str
    start: int
    fields: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (value, line number)
    amount: int = 0

    def get(self, key: str) -> str:
        return self.fields.get(key, ("", 0))[0]

    def line_of(self, key: str) -> int:
        return self.fields.get(key, ("", self.start))[1]


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(_BOM):
        encoding, body = "utf-8", data[len(_BOM) :]
    else:
        body = data
        found = [
            (pos, enc) for enc in ("cp1251", "cp866", "utf-8") if (pos := data.find(_ENCODING_KEY.encode(enc))) >= 0
        ]
        encoding = min(found)[1] if found else "cp1251"
    try:
        return body.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        raise StatementFormatError(line, f"byte 0x{body[exc.start]:02x} is not valid {encoding}") from None


def _date(value: str, line: int, key: str) -> date:
    match = _DATE.match(value)
    if match:
        day, month, year = (int(part) for part in match.groups())
        try:
            return date(year, month, day)
        except ValueError:
            pass
    raise StatementFormatError(line, f"{key} is not a dd.mm.yyyy date: {value!r}")


def _account(value: str, line: int, key: str) -> str:
    if not _ACCOUNT.match(value):
        raise StatementFormatError(line, f"{key} is not a 20-digit account: {value!r}")
    return value


def _amount(document: _Document) -> int:
    if "Сумма" not in document.fields:
        raise StatementFormatError(document.start, f"document {document.kind!r} has no Сумма")
    value, line = document.fields["Сумма"]
    try:
        amount = from_decimal_string(value)
    except ValueError:
        raise StatementFormatError(line, f"Сумма is not an amount with at most 2 decimals: {value!r}") from None
    if amount > MAX_AMOUNT:
        raise StatementFormatError(line, f"Сумма is too large: {value!r}")
    return amount


def _purpose(document: _Document) -> str:
    whole = document.get("НазначениеПлатежа")
    if whole:
        return whole
    parts = sorted(
        (int(match.group(1)), value)
        for key, (value, _) in document.fields.items()
        if (match := _PURPOSE_PART.match(key)) and value
    )
    return " ".join(value for _, value in parts)


def _close(document: _Document) -> _Document:
    """Checks every document gets, whoever it is for."""
    document.amount = _amount(document)
    for key in _DOCUMENT_DATES:
        if value := document.get(key):
            _date(value, document.line_of(key), key)
    return document


def _statement_line(document: _Document) -> StatementLine:
    payer_account = document.get("ПлательщикСчет")
    if payer_account:
        _account(payer_account, document.line_of("ПлательщикСчет"), "ПлательщикСчет")
    date_key = "ДатаПоступило" if document.get("ДатаПоступило") else "Дата"
    if not document.get(date_key):
        raise StatementFormatError(document.start, "incoming document has neither ДатаПоступило nor Дата")
    value_date = _date(document.get(date_key), document.line_of(date_key), date_key)
    try:
        return StatementLine(
            source="1c_file",
            account=document.get("ПолучательСчет"),
            value_date=value_date,
            amount=document.amount,
            purpose=_purpose(document),
            payer_name=document.get("Плательщик") or document.get("Плательщик1"),
            payer_inn=document.get("ПлательщикИНН") or None,
            payer_account=payer_account or None,
            document_number=document.get("Номер") or None,
            operation_id=None,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise StatementFormatError(document.start, f"document cannot be a statement line: {problems}") from None


def parse_1c(data: bytes, our_accounts: Collection[str] = ()) -> ParsedStatement:
    """Parse a 1CClientBankExchange file; our accounts are `our_accounts` if given, else the file's РасчСчет."""
    for account in our_accounts:
        if not _ACCOUNT.match(account):
            raise ValueError(f"our account is not 20 digits: {account!r}")
    text, encoding = _decode(data)
    # CRLF or LF: strip() removes the CR and the spaces some banks leave around keys and values
    numbered = [(number, line.strip()) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if not numbered:
        raise StatementFormatError(1, f"empty file, expected {MAGIC}")
    first_number, first = numbered[0]
    if first != MAGIC:
        raise StatementFormatError(first_number, f"expected {MAGIC}, found {first[:60]!r}")

    accounts: list[str] = []
    documents: list[_Document] = []
    state = "header"  # header | balance | document | end
    opened_at = 0
    document: _Document | None = None

    def unclosed(line: int) -> StatementFormatError:
        section = _DOCUMENT if state == "document" else _BALANCE
        closer = _DOCUMENT_END if state == "document" else _BALANCE_END
        return StatementFormatError(line, f"{section} opened at line {opened_at} is not closed by {closer}")

    for number, line in numbered[1:]:
        if state == "end":
            raise StatementFormatError(number, f"data after {_FILE_END}: {line[:60]!r}")
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key == _DOCUMENT:
            if state != "header":
                raise unclosed(number)
            state, opened_at = "document", number
            document = _Document(kind=value, start=number)
            continue
        if not sep:
            if line == _BALANCE:
                if state != "header":
                    raise unclosed(number)
                state, opened_at = "balance", number
            elif line == _BALANCE_END:
                if state != "balance":
                    raise StatementFormatError(number, f"{_BALANCE_END} without {_BALANCE}")
                state = "header"
            elif line == _DOCUMENT_END:
                if state != "document" or document is None:
                    raise StatementFormatError(number, f"{_DOCUMENT_END} without {_DOCUMENT}")
                documents.append(_close(document))
                state, document = "header", None
            elif line == _FILE_END:
                if state != "header":
                    raise unclosed(number)
                state = "end"
            else:
                raise StatementFormatError(number, f"not a Key=Value line nor a section keyword: {line[:60]!r}")
            continue
        if not key:
            raise StatementFormatError(number, f"empty key: {line[:60]!r}")
        if key.startswith(("Секция", "Конец")):
            raise StatementFormatError(number, f"unknown section keyword: {key!r}")
        if state == "document" and document is not None:
            if key in document.fields:
                first_line = document.fields[key][1]
                raise StatementFormatError(number, f"{key} repeated in one document (first at line {first_line})")
            document.fields[key] = (value, number)
        elif key == "РасчСчет":
            account = _account(value, number, key)
            if account not in accounts:
                accounts.append(account)
        elif key in _HEADER_DATES and value:
            _date(value, number, key)
        # other header and balance keys (ВерсияФормата, Отправитель, НачальныйОстаток, …) are not needed
    if state != "end":
        last = numbered[-1][0]
        if state in ("document", "balance"):
            raise StatementFormatError(last, f"{_FILE_END} missing; {unclosed(last).args[0].partition(': ')[2]}")
        raise StatementFormatError(last, f"{_FILE_END} missing at the end of the file")

    ours = set(our_accounts) if our_accounts else set(accounts)
    incoming: list[StatementLine] = []
    for doc in documents:
        if doc.get("ПолучательСчет") in ours and doc.get("ПлательщикСчет") not in ours and doc.amount > 0:
            incoming.append(_statement_line(doc))
    return ParsedStatement(
        accounts=tuple(accounts),
        lines=tuple(incoming),
        documents=len(documents),
        skipped=len(documents) - len(incoming),
        encoding=encoding,
    )
