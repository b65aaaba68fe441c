"""The local amoCRM fake (devstack/fakes/amocrm.py) on its own: limits, single-use refresh tokens, outages, batch
validation and webhooks — and our adapter spoken against it."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from werkzeug.test import Client, TestResponse

from devstack.fakes.amocrm import RATE_LIMIT, FakeAmoCrm
from paybridge.adapters.crm.amocrm import AmoCrm, AmoCrmSettings
from paybridge.adapters.crm.base import DealOp, DealUpdate, IssueInvoiceCommand, UpdateOutcome
from paybridge.domain.invoice import Customer
from paybridge.tenants import StageMapping, TenantConfig

BASE = "http://fake.test"
HOOK = "http://hub.test/crm/{tenant}/amocrm"
TRIGGER, AWAITING, PIPELINE, LINK_FIELD = 61_234_001, 61_234_002, 7_001, 900_101
LONG_LIVED = "long-lived-token-abc123"
SECRETS = {
    "acme": {"token": LONG_LIVED, "webhook_token": "wh-token-acme-1"},
    "beta": {
        "client_secret": "client-secret-beta",
        "initial_refresh_token": "def-initial",
        "webhook_token": "wh-token-beta-1",
    },
}


def tenant(tenant_id: str, auth: dict[str, Any]) -> TenantConfig:
    return TenantConfig.model_validate(
        {
            "tenant_id": tenant_id,
            "name": tenant_id.title(),
            "api_keys_sha256": [hashlib.sha256(b"key").hexdigest()],
            "psp": {"provider": "sandbox", "base_url": "https://psp.test", "secret": {"value": "psp-secret-1"}},
            "crm": {
                "kind": "amocrm",
                "base_url": BASE,
                "subdomain": tenant_id,
                "auth": auth,
                "webhook_token": {"value": SECRETS[tenant_id]["webhook_token"]},
                "trigger": {"status_id": TRIGGER},
                "pipeline_id": PIPELINE,
                "link_field_id": LINK_FIELD,
            },
            "stages": {name: str(61_234_000 + i) for i, name in enumerate(StageMapping.model_fields)},
        }
    )


ACME = tenant("acme", {"kind": "long_lived", "token": {"value": LONG_LIVED}})
BETA = tenant(
    "beta",
    {
        "kind": "oauth",
        "client_id": "beta-client-id",
        "client_secret": {"value": "client-secret-beta"},
        "redirect_uri": "https://hub.test/oauth/amocrm",
    },
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeAmoCrm:
    app = FakeAmoCrm(f"{BASE}/fake/amocrm", clock=clock)
    app.sent: list[tuple[str, bytes]] = []  # type: ignore[misc]
    app.deliver = lambda url, body, headers, accepted: app.sent.append((url, body))  # type: ignore[method-assign]
    for config in (ACME, BETA):
        app.add_merchant(config, SECRETS[config.tenant_id], HOOK.format(tenant=config.tenant_id))
    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_lead(client: Client, **fields: Any) -> dict[str, Any]:
    data = {"subdomain": "acme", "name": "Поставка", "price": 1500, "status_id": TRIGGER, **fields}
    response = client.post("/_control/leads", json=data)
    assert response.status_code == 201
    return dict(response.get_json())


def answer(response: TestResponse) -> Any:
    return json.loads(response.get_data() or b"null")


class TestLimits:
    def test_seven_requests_a_second_then_429(self, fake: FakeAmoCrm, clock: Clock) -> None:
        client = Client(fake)
        lead = new_lead(client)["id"]
        codes = [client.get(f"/api/v4/leads/{lead}", headers=bearer(LONG_LIVED)).status_code for _ in range(8)]
        assert codes == [200] * RATE_LIMIT + [429]
        clock.now += 0.5
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer(LONG_LIVED)).status_code == 429
        clock.now += 0.5  # the first seven are a second old now
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer(LONG_LIVED)).status_code == 200
        assert fake.requests == 10  # control calls are not counted

    def test_outage_answers_503_for_its_duration(self, fake: FakeAmoCrm, clock: Clock) -> None:
        client = Client(fake)
        lead = new_lead(client)["id"]
        assert client.post("/_control/outage", json={"seconds": 5}).status_code == 200
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer(LONG_LIVED)).status_code == 503
        assert client.post("/oauth2/access_token", json={}).status_code == 503
        clock.now += 5
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer(LONG_LIVED)).status_code == 200

    def test_unknown_tokens_and_the_unauthorized_fault(self, fake: FakeAmoCrm) -> None:
        client = Client(fake)
        lead = new_lead(client)["id"]
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer("nope")).status_code == 401
        client.post("/_control/faults", json={"unauthorized": 1})
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer(LONG_LIVED)).status_code == 401
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer(LONG_LIVED)).status_code == 200


class TestOAuth:
    def refresh(self, client: Client, token: str, secret: str = SECRETS["beta"]["client_secret"]) -> TestResponse:
        return client.post(
            "/oauth2/access_token",
            json={
                "client_id": "beta-client-id",
                "client_secret": secret,
                "grant_type": "refresh_token",
                "refresh_token": token,
                "redirect_uri": "https://hub.test/oauth/amocrm",
            },
        )

    def test_refresh_tokens_are_single_use(self, fake: FakeAmoCrm, clock: Clock) -> None:
        client = Client(fake)
        first = self.refresh(client, "def-initial")
        assert first.status_code == 200
        pair = answer(first)
        assert pair["token_type"] == "Bearer" and pair["expires_in"] == 86_400
        again = self.refresh(client, "def-initial")
        assert again.status_code == 401 and answer(again)["hint"] == "Token has been revoked"
        lead = new_lead(client, subdomain="beta")["id"]
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer(pair["access_token"])).status_code == 200
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer(LONG_LIVED)).status_code == 204  # other account
        assert self.refresh(client, pair["refresh_token"], secret="wrong").status_code == 401
        assert self.refresh(client, pair["refresh_token"]).status_code == 200
        assert self.refresh(client, pair["refresh_token"]).status_code == 401
        clock.now += 86_400  # the first access token has expired
        assert client.get(f"/api/v4/leads/{lead}", headers=bearer(pair["access_token"])).status_code == 401


class TestBatches:
    def test_one_bad_item_rejects_the_batch_and_saves_nothing(self, fake: FakeAmoCrm) -> None:
        client = Client(fake)
        lead = new_lead(client)["id"]
        items = [{"id": lead, "status_id": AWAITING, "pipeline_id": PIPELINE}, {"id": 999, "status_id": AWAITING}]
        response = client.patch("/api/v4/leads", json=items, headers=bearer(LONG_LIVED))
        assert response.status_code == 400
        errors = answer(response)["validation-errors"]
        assert [e["request_id"] for e in errors] == ["1"] and errors[0]["errors"][0]["code"] == "NotFound"
        assert fake.leads[lead]["status_id"] == TRIGGER and fake.sent == []
        notes = [{"entity_id": lead, "note_type": "common", "params": {"text": ""}}]
        response = client.post("/api/v4/leads/notes", json=notes, headers=bearer(LONG_LIVED))
        assert response.status_code == 400 and fake.notes == []

    def test_a_status_change_sends_the_webhook_our_parser_reads(self, fake: FakeAmoCrm) -> None:
        client = Client(fake)
        lead = new_lead(client, status_id=61_234_000)["id"]
        crm = adapter(fake)
        # A person moves the lead to the trigger status: an invoice is asked for.
        assert client.post(f"/_control/leads/{lead}/status", json={"status_id": TRIGGER}).status_code == 200
        # Our own PATCH to the awaiting-payment status: the echo is ignored.
        items = [{"id": lead, "status_id": AWAITING, "pipeline_id": PIPELINE}]
        assert client.patch("/api/v4/leads", json=items, headers=bearer(LONG_LIVED)).status_code == 200
        assert len(fake.sent) == 2
        parsed = []
        for url, body in fake.sent:
            parts = urlsplit(url)
            assert f"{parts.scheme}://{parts.netloc}{parts.path}" == HOOK.format(tenant="acme")
            parsed.append(crm.parse_webhook({}, body, dict(parse_qsl(parts.query))))
        assert parsed[0].commands == (IssueInvoiceCommand(deal_id=str(lead)),)
        assert parsed[1].commands == () and "not the trigger status" in parsed[1].ignored[0]
        assert dict(parse_qsl(fake.sent[1][1].decode()))["leads[status][0][old_status_id]"] == str(TRIGGER)


def adapter(fake: FakeAmoCrm) -> AmoCrm:
    assert isinstance(ACME.crm, AmoCrmSettings)
    return AmoCrm(
        ACME.crm,
        access=lambda: LONG_LIVED,
        webhook_token=SECRETS["acme"]["webhook_token"],
        transport=httpx.WSGITransport(app=fake),
        clock=lambda: 1_790_000_000,
    )


class TestAdapterAgainstTheFake:
    def test_read_and_write_a_lead(self, fake: FakeAmoCrm) -> None:
        client = Client(fake)
        contact = {"name": "Иван Петров", "email": "ivan@example.ru", "phone": "+7 900 123-45-67"}
        lead = new_lead(client, contact=contact, responsible_user_id=5_003)["id"]
        crm = adapter(fake)
        deal = crm.get_deal(str(lead))
        assert (deal.amount, deal.stage, deal.manager_id) == (150_000, str(TRIGGER), "5003")
        assert deal.customer == Customer(name="Иван Петров", email="ivan@example.ru", phone="+79001234567")

        before = fake.requests
        ops = (
            DealOp(kind="set_stage", stage=str(AWAITING), payment_url="https://pay.test/i/1"),
            DealOp(kind="comment", text="Ссылка на оплату"),
            DealOp(kind="notify_manager", text="Проверьте счёт"),
        )
        update = DealUpdate(tenant_id="acme", deal_id=str(lead), invoice_id="inv_1", version=1, ops=ops)
        assert crm.apply([update]) == [UpdateOutcome.done()]
        assert fake.requests - before == 4  # PATCH, notes, the responsible user, tasks

        state = answer(client.get(f"/_control/leads/{lead}"))
        assert state["status_id"] == AWAITING and state["payment_link"] == "https://pay.test/i/1"
        assert [n["params"]["text"] for n in state["notes"]] == ["Ссылка на оплату"]
        assert [(t["text"], t["responsible_user_id"]) for t in state["tasks"]] == [("Проверьте счёт", 5_003)]
        assert len(fake.sent) == 1  # the status change was echoed

    def test_a_rejected_item_is_parked_and_the_rest_lands(self, fake: FakeAmoCrm) -> None:
        client = Client(fake)
        lead = new_lead(client)["id"]
        crm = adapter(fake)
        gone = DealUpdate(
            tenant_id="acme", deal_id="999", invoice_id="inv_9", version=1, ops=(DealOp(kind="comment", text="x"),)
        )
        good = DealUpdate(
            tenant_id="acme", deal_id=str(lead), invoice_id="inv_1", version=1, ops=(DealOp(kind="comment", text="y"),)
        )
        outcomes = crm.apply([gone, good])
        assert not outcomes[0].ok and not outcomes[0].transient and "NotFound" in outcomes[0].detail
        assert outcomes[1] == UpdateOutcome.done()
        assert [n["params"]["text"] for n in fake.notes] == ["y"]
