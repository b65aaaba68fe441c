"""T-Bank business statement adapter against the documented wire format (respx stands in for T-API)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx

from paybridge.adapters.bank.base import BankSource, StatementPage
from paybridge.adapters.bank.tbank_business import TBankBusiness, TBankBusinessSettings, kopecks, parse_webhook
from paybridge.adapters.errors import MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.domain.bank import StatementLine

BASE = "https://business.tbank.test/openapi/"
STATEMENT = f"{BASE}api/v1/statement"
TOKEN = "t.business-token-1234567890"
ACCOUNT = "40702810110000000001"
PAYER_ACCOUNT = "40702810938000012345"
SINCE = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
UNTIL = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
MSK = timezone(timedelta(hours=3))


def adapter(page_size: int = 100) -> TBankBusiness:
    settings = TBankBusinessSettings(kind="tbank_business", base_url=BASE, token={"value": TOKEN}, page_size=page_size)
    return TBankBusiness(settings, TOKEN)


def operation(**fields: Any) -> dict[str, Any]:
    """A statement operation as T-API gives it: by default a confirmed ruble credit."""
    op: dict[str, Any] = {
        "operationId": "a1b2c3d4-0000-4000-8000-000000000001",
        "operationDate": "2026-11-23T07:15:00Z",
        "typeOfOperation": "Credit",
        "operationStatus": "Transaction",
        "category": "incomePeople",
        "operationAmount": 1500.5,
        "operationCurrencyDigitalCode": "643",
        "accountAmount": 1500.5,
        "accountCurrencyDigitalCode": "643",
        "rubleAmount": 1500.5,
        "payPurpose": "Оплата по счёту № INV-42 от 20.11.2026, НДС не облагается",
        "documentNumber": "517",
        "counterParty": {
            "name": 'ООО "Ромашка"',
            "inn": "7712345678",
            "kpp": "771201001",
            "account": PAYER_ACCOUNT,
            "bankName": 'ПАО "Сбербанк"',
            "bankBic": "044525225",
            "corrAccount": "30101810400000000225",
        },
        "authorizationDate": "2026-11-23T07:15:00Z",
        "chargeDate": "2026-11-23T07:15:00Z",
        "drawDate": "2026-11-23T07:15:00Z",
    }
    op.update(fields)
    return op


def answer(*operations: dict[str, Any], next_cursor: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {
        "balances": {"incoming": 10_000.0, "outgoing": 11_500.5, "income": 1500.5, "outcome": 0},
        "operations": list(operations),
    }
    if next_cursor is not None:
        body["nextCursor"] = next_cursor
    return httpx.Response(200, json=body)


def fetch(cursor: str | None = None, **kwargs: Any) -> StatementPage:
    return adapter(**kwargs).fetch(ACCOUNT, SINCE, UNTIL, cursor)


def test_it_is_a_bank_source() -> None:
    source: BankSource = adapter()
    assert source.name == "tbank_business"


class TestRequest:
    @respx.mock
    def test_url_params_bearer_and_page_size(self) -> None:
        route = respx.get(STATEMENT).mock(return_value=answer())
        adapter(page_size=250).fetch(ACCOUNT, SINCE, UNTIL, None)
        request = route.calls.last.request
        assert request.method == "GET"
        assert request.url.copy_with(query=None) == httpx.URL(STATEMENT)
        assert dict(request.url.params) == {
            "accountNumber": ACCOUNT,
            "from": "2026-11-23T07:00:00Z",
            "to": "2026-11-23T08:00:00Z",
            "limit": "250",
        }
        assert request.headers["authorization"] == f"Bearer {TOKEN}"

    @respx.mock
    def test_the_cursor_is_sent_back(self) -> None:
        route = respx.get(STATEMENT).mock(return_value=answer())
        fetch("eyJpIjogMTAwfQ==")
        assert route.calls.last.request.url.params["cursor"] == "eyJpIjogMTAwfQ=="
        assert route.calls.last.request.url.params["limit"] == "100"  # the default page size

    @respx.mock
    def test_window_is_sent_in_utc_and_only_widens(self) -> None:
        route = respx.get(STATEMENT).mock(return_value=answer())
        since = datetime(2026, 11, 23, 10, 0, 0, 900_000, tzinfo=MSK)  # 07:00:00.9 UTC → rounded down
        until = datetime(2026, 11, 24, 2, 30, 0, 1, tzinfo=MSK)  # 23:30:00.000001 UTC → rounded up
        adapter().fetch(ACCOUNT, since, until, None)
        params = route.calls.last.request.url.params
        assert (params["from"], params["to"]) == ("2026-11-23T07:00:00Z", "2026-11-23T23:30:01Z")

    @respx.mock
    def test_naive_times_bad_accounts_and_empty_windows_are_refused_before_any_request(self) -> None:
        route = respx.get(STATEMENT).mock(return_value=answer())
        with pytest.raises(ValueError, match="timezone"):
            adapter().fetch(ACCOUNT, datetime(2026, 11, 23), UNTIL, None)
        with pytest.raises(ValueError, match="20 digits"):
            adapter().fetch("4070281011000000000", SINCE, UNTIL, None)
        with pytest.raises(ValueError, match="empty"):
            adapter().fetch(ACCOUNT, UNTIL, SINCE, None)
        assert not route.called


class TestAnswer:
    @respx.mock
    def test_only_confirmed_ruble_credits_become_lines(self) -> None:
        respx.get(STATEMENT).mock(
            return_value=answer(
                operation(),
                operation(operationId="op-auth", operationStatus="Authorization", chargeDate=None, drawDate=None),
                operation(operationId="op-debit", typeOfOperation="Debit"),
                operation(
                    operationId="op-usd",
                    accountAmount=100.0,
                    operationCurrencyDigitalCode="840",
                    accountCurrencyDigitalCode="840",
                ),
                operation(operationId="op-usd-into-rub", operationCurrencyDigitalCode="840"),
                operation(
                    operationId="op-2",
                    accountAmount=100.3,
                    documentNumber=None,
                    payPurpose="Оплата по счёту 43",
                    counterParty={"name": "ИП Иванов И. И.", "inn": "", "account": "40802810400000000777"},
                ),
            )
        )
        page = fetch()
        assert page.seen == 6
        assert page.next_cursor is None
        assert page.lines == (
            StatementLine(
                source="tbank_api",
                account=ACCOUNT,
                value_date=date(2026, 11, 23),
                amount=150_050,
                currency="RUB",
                purpose="Оплата по счёту № INV-42 от 20.11.2026, НДС не облагается",
                payer_name='ООО "Ромашка"',
                payer_inn="7712345678",
                payer_account=PAYER_ACCOUNT,
                document_number="517",
                operation_id="a1b2c3d4-0000-4000-8000-000000000001",
            ),
            StatementLine(
                source="tbank_api",
                account=ACCOUNT,
                value_date=date(2026, 11, 23),
                amount=10_030,
                purpose="Оплата по счёту 43",
                payer_name="ИП Иванов И. И.",
                payer_inn=None,
                payer_account="40802810400000000777",
                document_number=None,
                operation_id="op-2",
            ),
        )

    @respx.mock
    def test_a_foreign_currency_credit_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        respx.get(STATEMENT).mock(
            return_value=answer(
                operation(operationId="op-usd", operationCurrencyDigitalCode="840", accountCurrencyDigitalCode="840")
            )
        )
        assert fetch().lines == ()
        assert "op-usd" in caplog.text and "not in rubles" in caplog.text

    @pytest.mark.parametrize(
        ("wire", "expected"),
        [
            (1500.5, 150_050),
            (100.3, 10_030),
            (0.29, 29),  # int(0.29 * 100) == 28
            (1.15, 115),  # 1.15 * 100 == 114.99999999999999
            (1000, 100_000),
            (12_345_678.99, 1_234_567_899),
            ("1500.50", 150_050),
        ],
    )
    def test_amounts_are_exact_kopecks(self, wire: Any, expected: int) -> None:
        assert kopecks(wire) == expected

    @pytest.mark.parametrize("wire", [0.001, "1500.505", "abc", None, True, float("nan"), [1]])
    def test_what_is_not_kopecks_is_refused(self, wire: Any) -> None:
        with pytest.raises(ValueError, match=r"kopecks|amount"):
            kopecks(wire)

    @respx.mock
    def test_amounts_on_the_wire_are_exact(self) -> None:
        respx.get(STATEMENT).mock(
            return_value=answer(operation(operationId="a", accountAmount=0.29), operation(operationId="b"))
        )
        assert [line.amount for line in fetch().lines] == [29, 150_050]

    @respx.mock
    def test_an_unreadable_credit_amount_fails_the_page(self) -> None:
        respx.get(STATEMENT).mock(return_value=answer(operation(accountAmount=1500.505)))
        with pytest.raises(ProviderUnavailable, match="unreadable"):
            fetch()

    @respx.mock
    def test_value_date_is_the_banks_moscow_day(self) -> None:
        respx.get(STATEMENT).mock(
            return_value=answer(
                operation(operationId="late-utc", operationDate="2026-11-23T22:30:00Z"),
                operation(operationId="late-msk", operationDate="2026-11-23T23:30:00+03:00"),
                operation(operationId="naive", operationDate="2026-11-23T10:00:00"),
            )
        )
        dates = {line.operation_id: line.value_date for line in fetch().lines}
        assert dates == {
            "late-utc": date(2026, 11, 24),
            "late-msk": date(2026, 11, 23),
            "naive": date(2026, 11, 23),
        }

    @respx.mock
    def test_next_cursor_is_passed_through_and_its_absence_is_the_end(self) -> None:
        respx.get(STATEMENT).mock(
            side_effect=[
                answer(operation(), next_cursor="Y3Vyc29yLTE="),
                answer(),
                httpx.Response(200, json={"operations": [], "nextCursor": None}),
                httpx.Response(200, json={"operations": [], "nextCursor": ""}),
            ]
        )
        source = adapter()
        first = source.fetch(ACCOUNT, SINCE, UNTIL, None)
        assert (first.next_cursor, first.seen, len(first.lines)) == ("Y3Vyc29yLTE=", 1, 1)
        assert source.fetch(ACCOUNT, SINCE, UNTIL, first.next_cursor) == StatementPage((), None, 0)
        assert source.fetch(ACCOUNT, SINCE, UNTIL, None).next_cursor is None
        assert source.fetch(ACCOUNT, SINCE, UNTIL, None).next_cursor is None

    @respx.mock
    @pytest.mark.parametrize(
        "bad",
        [
            httpx.Response(200, text="<html>maintenance</html>"),
            httpx.Response(200, json={"balances": {}}),
            httpx.Response(200, json=[]),
            httpx.Response(200, json={"operations": ["not an object"]}),
        ],
    )
    def test_an_unexpected_answer_is_transient(self, bad: httpx.Response) -> None:
        respx.get(STATEMENT).mock(return_value=bad)
        with pytest.raises(ProviderUnavailable):
            fetch()


class TestErrors:
    @respx.mock
    @pytest.mark.parametrize("status", [401, 403])
    def test_a_refused_token_is_permanent(self, status: int) -> None:
        respx.get(STATEMENT).mock(
            return_value=httpx.Response(
                status, json={"errorId": "e-1", "errorMessage": "Unauthorized", "errorCode": "UNAUTHORIZED"}
            )
        )
        with pytest.raises(ProviderRejected, match="token") as caught:
            fetch()
        assert TOKEN not in str(caught.value)

    @respx.mock
    def test_a_bad_request_is_permanent(self) -> None:
        respx.get(STATEMENT).mock(return_value=httpx.Response(400, json={"errorMessage": "bad accountNumber"}))
        with pytest.raises(ProviderRejected, match="HTTP 400"):
            fetch()

    @respx.mock
    @pytest.mark.parametrize(
        "failure",
        [
            httpx.Response(503, text="Service Unavailable"),
            httpx.Response(500, json={"errorMessage": "internal"}),
            httpx.Response(429, json={"errorMessage": "Too Many Requests"}),
            httpx.ReadTimeout("slow"),
            httpx.ConnectTimeout("down"),
            httpx.ConnectError("refused"),
        ],
    )
    def test_transient_failures(self, failure: httpx.Response | Exception) -> None:
        respx.get(STATEMENT).mock(side_effect=[failure])
        with pytest.raises(ProviderUnavailable):
            fetch()


class TestWebhook:
    def test_flat_body(self) -> None:
        body = {"eventType": "oper-feed-operation", "accountNumber": ACCOUNT, **operation(operationId="op-7")}
        assert parse_webhook(json.dumps(body).encode()) == (ACCOUNT, "op-7")

    def test_flat_body_without_an_event_type(self) -> None:
        body = {"accountNumber": ACCOUNT, **operation(operationId="op-8")}
        assert parse_webhook(json.dumps(body).encode()) == (ACCOUNT, "op-8")

    def test_data_envelope_with_the_account_inside(self) -> None:
        body = {"eventType": "oper-feed-operation", "data": {"accountNumber": ACCOUNT, **operation(operationId="x")}}
        assert parse_webhook(json.dumps(body).encode()) == (ACCOUNT, "x")

    def test_data_envelope_with_the_account_beside(self) -> None:
        body = {"accountNumber": ACCOUNT, "data": operation(operationId="y")}
        assert parse_webhook(json.dumps(body).encode()) == (ACCOUNT, "y")

    def test_without_an_operation_id(self) -> None:
        assert parse_webhook(json.dumps({"accountNumber": ACCOUNT}).encode()) == (ACCOUNT, None)
        assert parse_webhook(json.dumps({"accountNumber": ACCOUNT, "operationId": 917}).encode()) == (ACCOUNT, "917")

    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"not json",
            b"\xff\xfe",
            b"[]",
            b'"oper-feed-operation"',
            json.dumps({"operationId": "op-1"}).encode(),
            json.dumps({"accountNumber": ACCOUNT[:-1], "operationId": "op-1"}).encode(),
            json.dumps({"accountNumber": int(ACCOUNT), "operationId": "op-1"}).encode(),
            json.dumps({"eventType": "invoice-status-changed", "accountNumber": ACCOUNT}).encode(),
            json.dumps({"accountNumber": ACCOUNT, "data": "op-1"}).encode(),
            json.dumps({"data": {"operationId": "op-1"}}).encode(),
            json.dumps({"accountNumber": ACCOUNT, "operationId": {"id": 1}}).encode(),
        ],
    )
    def test_malformed(self, body: bytes) -> None:
        with pytest.raises(MalformedNotification):
            parse_webhook(body)
