"""The local T-Bank business fake (devstack/fakes/tbank_business.py) on its own: tokens per account, the window,
cursor pages, the rate limit, control endpoints and the webhook — and our statement adapter spoken against it."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from werkzeug.test import Client, TestResponse

from devstack.fakes.tbank_business import RATE_LIMIT, FakeTBankBusiness
from paybridge.adapters.bank.tbank_business import TBankBusiness, TBankBusinessSettings, parse_webhook
from paybridge.adapters.errors import ProviderRejected, ProviderUnavailable
from paybridge.tenants import TenantConfig

BASE = "http://fake.test"
HOOK = "http://hub.test/bank/{tenant}/tbank"
A1, A2, B1 = "40702810900000012345", "40702810900000067890", "40802810500000000111"
TOKENS = {"acme": "acme-bank-token-1", "beta": "beta-bank-token-2"}
DAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def tenant(tenant_id: str, accounts: list[str]) -> TenantConfig:
    return TenantConfig.model_validate(
        {
            "tenant_id": tenant_id,
            "name": tenant_id.title(),
            "api_keys_sha256": [hashlib.sha256(b"key").hexdigest()],
            "psp": {"provider": "sandbox", "base_url": "https://psp.test", "secret": {"value": "psp-secret-1"}},
            "crm": {"kind": "sandbox", "base_url": "https://crm.test/x", "token": {"value": "crm-token-1"}},
            "bank": {
                "accounts": accounts,
                "source": {"kind": "tbank_business", "base_url": f"{BASE}/", "token": {"value": TOKENS[tenant_id]}},
            },
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


class RecordingFake(FakeTBankBusiness):
    """The fake with its webhook deliveries recorded instead of sent."""

    def __init__(self, base_url: str, clock: Clock) -> None:
        super().__init__(base_url, clock=clock)
        self.sent: list[tuple[str, bytes, dict[str, str], Callable[[httpx.Response], bool]]] = []

    def deliver(
        self, url: str, body: bytes, headers: dict[str, str], accepted: Callable[[httpx.Response], bool]
    ) -> None:
        self.sent.append((url, body, headers, accepted))


@pytest.fixture
def fake(clock: Clock) -> RecordingFake:
    app = RecordingFake(f"{BASE}/fake/tbank_business", clock)
    acme_secrets = {"token": TOKENS["acme"], "webhook_token": "wh-acme-1"}
    app.add_merchant(tenant("acme", [A1, A2]), acme_secrets, HOOK.format(tenant="acme"))
    app.add_merchant(tenant("beta", [B1]), {"token": TOKENS["beta"]}, HOOK.format(tenant="beta"))
    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add(client: Client, **fields: Any) -> dict[str, Any]:
    data = {
        "account": A1,
        "amount": 150_050,
        "purpose": "Оплата по счёту INV-1",
        "payer_inn": "7707083893",
        "payer_account": "40702810400000000001",
        "payer_name": "ООО Покупатель",
        "document_number": "101",
        "type": "Credit",
        "status": "Transaction",
        "operation_date": "2026-11-23T08:00:00Z",
        "notify": False,
        **fields,
    }
    response = client.post("/_control/operations", json=data)
    assert response.status_code == 201, response.get_data(as_text=True)
    return dict(response.get_json())


def statement(
    client: Client,
    account: str = A1,
    token: str = TOKENS["acme"],
    since: str = "2026-11-23T00:00:00Z",
    until: str | None = "2026-11-24T00:00:00Z",
    **extra: Any,
) -> TestResponse:
    params = {"accountNumber": account, "from": since, **({"to": until} if until else {}), **extra}
    return client.get(f"/api/v1/statement?{urlencode(params)}", headers=bearer(token))


def ids(response: TestResponse) -> list[str]:
    return [op["operationId"] for op in response.get_json()["operations"]]


class TestStatement:
    def test_a_token_reads_only_its_accounts(self, fake: RecordingFake) -> None:
        client = Client(fake)
        add(client)
        assert client.get(f"/api/v1/statement?accountNumber={A1}&from=2026-11-23T00:00:00Z").status_code == 401
        assert statement(client, token="guessed-token").status_code == 401
        refused = statement(client, token=TOKENS["beta"])
        assert refused.status_code == 403 and refused.get_json()["errorCode"] == "FORBIDDEN"
        assert len(ids(statement(client))) == 1
        assert ids(statement(client, account=A2)) == []
        assert statement(client, account=B1, token=TOKENS["beta"]).status_code == 200

    def test_the_window_filters_on_operation_date_inclusively(self, fake: RecordingFake) -> None:
        client = Client(fake)
        before = add(client, operation_date="2026-11-23T06:59:59Z")["operationId"]
        first = add(client, operation_date="2026-11-23T07:00:00Z")["operationId"]
        moscow = add(client, operation_date="2026-11-23T12:30:00+03:00")["operationId"]  # 09:30 UTC
        last = add(client, operation_date="2026-11-23T10:00:00Z")["operationId"]
        after = add(client, operation_date="2026-11-23T10:00:01Z")["operationId"]
        add(client, account=A2, operation_date="2026-11-23T08:00:00Z")
        window = statement(client, since="2026-11-23T07:00:00Z", until="2026-11-23T10:00:00Z")
        assert ids(window) == [first, moscow, last]
        assert ids(statement(client, since="2026-11-23T07:00:00Z", until=None)) == [first, moscow, last, after]
        assert before not in ids(statement(client, since="2026-11-23T07:00:00Z"))
        assert [op["operationDate"] for op in window.get_json()["operations"]][1] == "2026-11-23T09:30:00.000Z"

    def test_operations_look_like_t_api_with_exact_rubles(self, fake: RecordingFake) -> None:
        client = Client(fake)
        add(client, amount=150_050, document_number="1")
        add(client, amount=10_030, document_number="2")
        add(client, amount=100_000, document_number="3")
        add(client, amount=7, document_number="4", type="Debit", status="Authorization")
        raw = json.loads(statement(client).get_data())
        amounts = [op["accountAmount"] for op in raw["operations"]]
        assert amounts == [1500.5, 100.3, 1000, 0.07]
        op = raw["operations"][0]
        assert op["typeOfOperation"] == "Credit" and op["operationStatus"] == "Transaction"
        assert op["accountCurrencyDigitalCode"] == op["operationCurrencyDigitalCode"] == "643"
        assert op["counterParty"]["inn"] == "7707083893" and op["counterParty"]["name"] == "ООО Покупатель"
        assert op["counterParty"]["account"] == "40702810400000000001"
        assert op["payPurpose"] == "Оплата по счёту INV-1" and op["documentNumber"] == "1"
        assert op["chargeDate"] == op["operationDate"]
        held = raw["operations"][3]
        assert (held["typeOfOperation"], held["operationStatus"]) == ("Debit", "Authorization")
        assert "chargeDate" not in held
        assert raw["balances"]["income"] == 2600.8  # confirmed credits only

    def test_pages_follow_the_cursor_which_survives_new_operations(self, fake: RecordingFake) -> None:
        client = Client(fake)
        made = [add(client, document_number=str(i))["operationId"] for i in range(5)]
        add(client, account=A2)  # another account's operation between ours
        made.append(add(client, document_number="5")["operationId"])
        first = statement(client, limit=2)
        assert ids(first) == made[:2] and "balances" in first.get_json()
        second = statement(client, limit=2, cursor=first.get_json()["nextCursor"])
        assert ids(second) == made[2:4] and "balances" not in second.get_json()
        late = add(client, document_number="6")["operationId"]  # arrives while we page
        third = statement(client, limit=2, cursor=second.get_json()["nextCursor"])
        assert ids(third) == [made[4], made[5]]
        fourth = statement(client, limit=2, cursor=third.get_json()["nextCursor"])
        assert ids(fourth) == [late] and "nextCursor" not in fourth.get_json()
        assert "nextCursor" not in statement(client, limit=7).get_json()

    @pytest.mark.parametrize(
        "extra",
        [
            {"cursor": "not-a-cursor"},
            {"cursor": "eyJ4IjogMX0="},
            {"limit": "0"},
            {"limit": "5001"},
            {"limit": "ten"},
        ],
    )
    def test_bad_parameters_are_400(self, fake: RecordingFake, extra: dict[str, str]) -> None:
        assert statement(Client(fake), **extra).status_code == 400

    def test_bad_account_or_window_is_400(self, fake: RecordingFake) -> None:
        client = Client(fake)
        assert statement(client, account="4070281090000001234").status_code == 400
        assert statement(client, since="yesterday").status_code == 400
        no_from = client.get(f"/api/v1/statement?accountNumber={A1}", headers=bearer(TOKENS["acme"]))
        assert no_from.status_code == 400

    def test_twenty_requests_a_second_then_429(self, fake: RecordingFake, clock: Clock) -> None:
        client = Client(fake)
        codes = [statement(client).status_code for _ in range(RATE_LIMIT + 1)]
        assert codes == [200] * RATE_LIMIT + [429]
        assert statement(client, account=B1, token=TOKENS["beta"]).status_code == 200  # per token
        clock.now += 0.5
        assert statement(client).status_code == 429
        clock.now += 0.5
        assert statement(client).status_code == 200
        assert client.get("/_control/requests").get_json() == {"count": RATE_LIMIT + 4}

    def test_faults(self, fake: RecordingFake) -> None:
        client = Client(fake)
        client.post("/_control/faults", json={"statement_unavailable": 1, "unauthorized": 1})
        assert statement(client).status_code == 503
        assert statement(client).status_code == 401
        assert statement(client).status_code == 200

    def test_each_instance_has_its_own_routes(self, fake: RecordingFake) -> None:
        other = FakeTBankBusiness(f"{BASE}/fake/other")
        assert Client(other).get("/_control/requests").get_json() == {"count": 0}
        assert Client(fake).get("/_control/requests").get_json() == {"count": 0}


class TestControl:
    @pytest.mark.parametrize(
        "bad",
        [
            {"account": "123"},
            {"amount": 15.5},
            {"amount": 0},
            {"amount": True},
            {"amount": "1500"},
            {"type": "Refund"},
            {"status": "Pending"},
            {"operation_date": "tomorrow"},
        ],
    )
    def test_invalid_operations_are_refused(self, fake: RecordingFake, bad: dict[str, Any]) -> None:
        body = {"account": A1, "amount": 100, **bad}
        assert Client(fake).post("/_control/operations", json=body).status_code == 400
        assert fake.operations == []

    def test_notify_sends_the_webhook_with_the_token_in_the_url(self, fake: RecordingFake) -> None:
        client = Client(fake)
        made = add(client, notify=True)
        assert made["notified"] is True
        ((url, body, headers, accepted),) = fake.sent
        assert url == "http://hub.test/bank/acme/tbank?token=wh-acme-1"
        assert headers["Content-Type"] == "application/json"
        sent = json.loads(body)
        assert sent["eventType"] == "oper-feed-operation" and sent["accountNumber"] == A1
        assert sent["accountAmount"] == 1500.5
        assert parse_webhook(body) == (A1, made["operationId"])
        assert accepted(httpx.Response(200)) is True
        assert accepted(httpx.Response(202)) is False and accepted(httpx.Response(500)) is False

    def test_no_webhook_without_notify_or_a_registered_url(self, fake: RecordingFake) -> None:
        client = Client(fake)
        assert add(client, notify=False)["notified"] is False
        assert add(client, account="40702810000000000999", notify=True)["notified"] is False
        assert fake.sent == []
        add(client, account=B1, notify=True)  # beta has no webhook token: the bare URL
        assert fake.sent[0][0] == "http://hub.test/bank/beta/tbank"

    def test_confirm_turns_an_authorization_into_a_transaction(self, fake: RecordingFake) -> None:
        client = Client(fake)
        held = add(client, status="Authorization", notify=True)
        assert statement(client).get_json()["operations"][0]["operationStatus"] == "Authorization"
        confirmed = client.post(f"/_control/operations/{held['operationId']}/confirm")
        assert confirmed.status_code == 200 and confirmed.get_json()["notified"] is True
        op = statement(client).get_json()["operations"][0]
        assert op["operationStatus"] == "Transaction" and "chargeDate" in op
        assert [parse_webhook(body)[1] for _, body, _, _ in fake.sent] == [held["operationId"]] * 2
        assert client.post(f"/_control/operations/{held['operationId']}/confirm").status_code == 409
        assert client.post("/_control/operations/nope/confirm").status_code == 404

    def test_a_real_delivery_reaches_the_url(self, clock: Clock) -> None:
        app = FakeTBankBusiness(BASE)
        app.add_merchant(tenant("acme", [A1]), {"token": TOKENS["acme"], "webhook_token": "wh"}, "http://hub.test/h")
        received: list[httpx.Request] = []

        def hub(request: httpx.Request) -> httpx.Response:
            received.append(request)
            return httpx.Response(200, text="OK")

        app._http = httpx.Client(transport=httpx.MockTransport(hub))
        try:
            add(Client(app), notify=True)
            deadline = time.monotonic() + 5
            while not (app.deliveries and app.deliveries[0].delivered) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            app.stop()
        assert app.deliveries[0].delivered
        assert str(received[0].url) == "http://hub.test/h?token=wh"
        assert parse_webhook(received[0].content)[0] == A1


def adapter(fake: RecordingFake, page_size: int = 100, token: str = TOKENS["acme"]) -> TBankBusiness:
    settings = TBankBusinessSettings(
        kind="tbank_business", base_url=f"{BASE}/", token={"value": token}, page_size=page_size
    )
    return TBankBusiness(settings, token, transport=httpx.WSGITransport(app=fake))


class TestAdapterAgainstTheFake:
    def test_250_operations_in_pages_of_100_every_credit_once(self, fake: RecordingFake) -> None:
        client = Client(fake)
        expected: dict[str, int] = {}
        for i in range(250):
            kind = "Debit" if i % 10 == 3 else "Credit"
            status = "Authorization" if i % 10 == 7 else "Transaction"
            amount = 1_000 + 37 * i  # kopecks: 10.00, 10.37, 10.74 …
            at = (DAY + timedelta(minutes=i)).isoformat()
            add(client, amount=amount, document_number=f"D{i}", type=kind, status=status, operation_date=at)
            if kind == "Credit" and status == "Transaction":
                expected[f"D{i}"] = amount
        add(client, account=A2, operation_date=(DAY + timedelta(minutes=5)).isoformat())  # not ours to read
        source = adapter(fake)
        pages, cursor = [], None
        while True:
            page = source.fetch(A1, DAY, DAY + timedelta(days=1), cursor)
            pages.append(page)
            cursor = page.next_cursor
            if cursor is None:
                break
            assert len(pages) < 10, "the cursor does not advance"
        assert [page.seen for page in pages] == [100, 100, 50]
        lines = [line for page in pages for line in page.lines]
        assert len(lines) == len(expected) == 200
        assert len({line.operation_id for line in lines}) == len(lines)
        assert {line.document_number: line.amount for line in lines} == expected
        assert {line.account for line in lines} == {A1} and {line.value_date for line in lines} == {date(2026, 11, 23)}
        assert {line.source for line in lines} == {"tbank_api"}
        assert Client(fake).get("/_control/requests").get_json() == {"count": 3}

    def test_the_window_is_respected(self, fake: RecordingFake) -> None:
        client = Client(fake)
        add(client, document_number="early", operation_date="2026-11-23T06:00:00Z")
        add(client, document_number="inside", operation_date="2026-11-23T07:30:00Z")
        add(client, document_number="late", operation_date="2026-11-23T09:00:00Z")
        page = adapter(fake).fetch(A1, DAY, DAY + timedelta(hours=1), None)
        assert [line.document_number for line in page.lines] == ["inside"]
        assert page.lines[0].amount == 150_050 and page.lines[0].payer_inn == "7707083893"

    def test_errors_of_the_fake_map_to_ours(self, fake: RecordingFake) -> None:
        with pytest.raises(ProviderRejected, match="token"):
            adapter(fake, token="wrong-token-123").fetch(A1, DAY, DAY + timedelta(hours=1), None)
        with pytest.raises(ProviderRejected, match="token"):
            adapter(fake, token=TOKENS["beta"]).fetch(A1, DAY, DAY + timedelta(hours=1), None)  # 403
        Client(fake).post("/_control/faults", json={"statement_unavailable": 1})
        with pytest.raises(ProviderUnavailable, match="503"):
            adapter(fake).fetch(A1, DAY, DAY + timedelta(hours=1), None)
        source = adapter(fake)
        for _ in range(RATE_LIMIT):  # the 401, the 403 (beta's) and the 503 did not use acme's budget
            source.fetch(A1, DAY, DAY + timedelta(hours=1), None)
        with pytest.raises(ProviderUnavailable, match="429"):
            source.fetch(A1, DAY, DAY + timedelta(hours=1), None)
