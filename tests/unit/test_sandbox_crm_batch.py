"""The sandbox CRM's batch (`POST /api/batch`): the server (`devstack/sandbox_crm.py`) and our adapter
(`paybridge.adapters.crm.sandbox`) against it, in process (httpx's WSGI transport: the real server, no socket)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from devstack.sandbox_crm import SandboxCrm as SandboxCrmServer
from paybridge.adapters.crm.base import DealOp, DealUpdate, RateLimit
from paybridge.adapters.crm.sandbox import MAX_BATCH, SandboxCrm
from paybridge.adapters.errors import CrmUnavailable
from paybridge.domain.customer_profile import ProfileEntity, ProfileWrite

TOKEN = "sandbox-crm-token-test"
ROOT = "http://crm.test"  # the stack mounts the server under /sandbox/crm; in process it is the root
BASE = f"{ROOT}/shop"


@pytest.fixture
def server() -> SandboxCrmServer:
    crm = SandboxCrmServer(ROOT)
    portal = crm.add_portal("shop", TOKEN, "http://paybridge.test/crm/shop/sandbox", seed=False)
    for k in range(40):
        crm._create(portal, {"title": f"Deal {k}", "amount": 1000 + k, "contact": {"email": f"c{k}@example.com"}})
    return crm


def http(server: SandboxCrmServer) -> httpx.Client:
    return httpx.Client(
        transport=httpx.WSGITransport(app=server), base_url=BASE, headers={"Authorization": f"Bearer {TOKEN}"}
    )


def adapter(server: SandboxCrmServer, throttle: Any = None) -> SandboxCrm:
    kwargs = {"throttle": throttle} if throttle is not None else {}
    return SandboxCrm(BASE, TOKEN, transport=httpx.WSGITransport(app=server), **kwargs)


def paid(deal_id: str, version: int = 1, text: str = "оплачен") -> DealUpdate:
    return DealUpdate(
        tenant_id="shop",
        deal_id=deal_id,
        invoice_id=f"inv-{deal_id}",
        version=version,
        event="paid",
        ops=(DealOp(kind="set_stage", stage="PAID"), DealOp(kind="comment", text=text)),
    )


class TestServer:
    def test_requests_are_applied_in_order_as_one_call(self, server: SandboxCrmServer) -> None:
        # Given a batch of three requests of two deals
        batch = {
            "requests": [
                {"method": "PATCH", "path": "/api/deals/1", "body": {"stage": "PAID"}, "group": "1"},
                {"method": "POST", "path": "/api/deals/1/timeline", "body": {"text": "оплачен"}, "group": "1"},
                {"method": "GET", "path": "/api/deals/2"},
            ]
        }
        # When it is sent
        answer = http(server).post("/api/batch", json=batch)
        # Then each request is answered in order, and the portal's budget counts one request
        assert answer.status_code == 200
        statuses = [r["status"] for r in answer.json()["responses"]]
        assert statuses == [200, 201, 200]
        assert answer.json()["responses"][2]["body"]["id"] == "2"
        deal = server.portals["shop"].deals["1"]
        assert deal.stage == "PAID" and [t["text"] for t in deal.timeline] == ["оплачен"]
        assert server.calls == 1

    def test_a_failed_request_stops_its_group_only(self, server: SandboxCrmServer) -> None:
        batch = {
            "requests": [
                {"method": "PATCH", "path": "/api/deals/999", "body": {"stage": "PAID"}, "group": "999"},
                {"method": "POST", "path": "/api/deals/999/timeline", "body": {"text": "x"}, "group": "999"},
                {"method": "POST", "path": "/api/deals/1/timeline", "body": {}, "group": "1"},  # no text: 400
                {"method": "PATCH", "path": "/api/deals/1", "body": {"stage": "PAID"}, "group": "1"},
                {"method": "PATCH", "path": "/api/deals/2", "body": {"stage": "PAID"}, "group": "2"},
            ]
        }
        answers = http(server).post("/api/batch", json=batch).json()["responses"]
        assert [a["status"] for a in answers] == [404, 424, 400, 424, 200]
        assert "request 2 of its group failed" in answers[3]["body"]["error"]
        deals = server.portals["shop"].deals
        assert deals["1"].stage == "NEW" and deals["1"].timeline == []  # stopped at its first failure
        assert deals["2"].stage == "PAID"

    @pytest.mark.parametrize(
        "requests",
        [
            [],
            [{"method": "DELETE", "path": "/api/deals/2"}],
            [{"method": "POST", "path": "/api/batch", "body": {"requests": []}}],
            [{"method": "POST", "path": "/api/faults", "body": {"unavailable_for": 60}}],
            [{"method": "GET", "path": "/deals/2"}],
            [{"method": "GET", "path": "/api/nowhere"}],
            [{"method": "GET", "path": "/api/deals/2", "group": 7}],
            ["GET /api/deals/2"],
            [{"method": "GET", "path": "/api/deals/2"}] * (MAX_BATCH + 1),
        ],
        ids=["empty", "method", "nested", "faults", "path", "unknown", "group", "not-object", "too-many"],
    )
    def test_a_malformed_batch_applies_nothing(self, server: SandboxCrmServer, requests: list[Any]) -> None:
        # Given a good first request followed by a bad one
        good = {"method": "PATCH", "path": "/api/deals/1", "body": {"stage": "PAID"}}
        answer = http(server).post("/api/batch", json={"requests": [good, *requests] if requests else []})
        # Then the whole batch is refused with a reason, and nothing is written
        assert answer.status_code == 400
        assert answer.json()["error"]
        assert server.portals["shop"].deals["1"].stage == "NEW"
        assert server.unavailable_until == 0.0

    def test_not_json(self, server: SandboxCrmServer) -> None:
        answer = http(server).post("/api/batch", content=b"{", headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and answer.json() == {"error": "the body is not JSON"}

    def test_token_and_outage_apply_to_the_whole_batch(self, server: SandboxCrmServer) -> None:
        batch = {"requests": [{"method": "PATCH", "path": "/api/deals/1", "body": {"stage": "PAID"}}]}
        wrong = http(server).post("/api/batch", json=batch, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        http(server).post("/api/faults", json={"unavailable_for": 60})
        assert http(server).post("/api/batch", json=batch).status_code == 503
        assert server.portals["shop"].deals["1"].stage == "NEW"


class TestAdapter:
    def test_updates_go_in_batches_of_fifty_calls(self, server: SandboxCrmServer) -> None:
        # Given 30 paid deals, two calls each, and a throttle that counts requests
        taken: list[tuple[str, RateLimit]] = []
        crm = adapter(server, throttle=lambda account, limit: taken.append((account, limit)))
        updates = [paid(str(k)) for k in range(1, 31)]
        # When they are applied
        outcomes = crm.apply(updates)
        # Then all are done in two requests (25 + 5 updates), each within the portal's budget
        assert all(o.ok for o in outcomes)
        assert server.calls == 2 and len(taken) == 2
        for k in range(1, 31):
            deal = server.portals["shop"].deals[str(k)]
            assert deal.stage == "PAID" and [t["text"] for t in deal.timeline] == ["оплачен"]

    def test_a_deal_stops_at_its_first_failure(self, server: SandboxCrmServer) -> None:
        # Given an unknown deal with two updates between two good ones, and a bad stage write of deal 3
        updates = [paid("1"), paid("999"), paid("999", 2), paid("2"), paid("1", 2, "второй")]
        outcomes = adapter(server).apply(updates)
        # Then the unknown deal's first update is parked (404), its second waits; the others are done
        assert [(o.ok, o.transient) for o in outcomes] == [(True, False), (False, False), (False, True)] + [
            (True, False)
        ] * 2
        assert "HTTP 404" in outcomes[1].detail and "no such deal" in outcomes[1].detail
        assert "earlier update of deal 999" in outcomes[2].detail
        assert [t["text"] for t in server.portals["shop"].deals["1"].timeline] == ["оплачен", "второй"]

    def test_a_later_batch_does_not_send_a_stopped_deal(self, server: SandboxCrmServer) -> None:
        # 25 updates fill the first batch (deal 999 among them); deal 999's next update would be in the second
        updates = [paid("999")] + [paid(str(k)) for k in range(1, 25)] + [paid("999", 2), paid("30")]
        outcomes = adapter(server).apply(updates)
        assert not outcomes[0].ok and not outcomes[0].transient
        assert outcomes[25].transient and "earlier update of deal 999" in outcomes[25].detail
        assert outcomes[26].ok and server.calls == 2

    def test_an_outage_makes_every_update_wait(self, server: SandboxCrmServer) -> None:
        server.unavailable_until = 1e12
        outcomes = adapter(server).apply([paid("1"), paid("2")])
        assert all(o.transient for o in outcomes) and "HTTP 503" in outcomes[0].detail

    @pytest.mark.parametrize("status", [429, 500])
    @respx.mock(base_url=BASE)
    def test_a_transient_call_is_retried(self, respx_mock: respx.MockRouter, status: int) -> None:
        responses = [{"status": status, "body": {"error": "busy"}}, {"status": 424, "body": {}}]
        respx_mock.post("/api/batch").mock(return_value=httpx.Response(200, json={"responses": responses}))
        (outcome,) = SandboxCrm(BASE, TOKEN).apply([paid("1")])
        assert outcome.transient and f"HTTP {status} busy" in outcome.detail

    @pytest.mark.parametrize(
        "answer",
        [{"responses": [{"status": 200}]}, {"responses": "no"}, {"nope": []}, [1, 2]],
        ids=["short", "not-a-list", "no-responses", "array"],
    )
    @respx.mock(base_url=BASE)
    def test_an_answer_that_is_not_the_batch_makes_it_wait(self, respx_mock: respx.MockRouter, answer: Any) -> None:
        respx_mock.post("/api/batch").mock(return_value=httpx.Response(200, json=answer))
        (outcome,) = SandboxCrm(BASE, TOKEN).apply([paid("1")])
        assert outcome.transient and not outcome.ok

    def test_an_update_bigger_than_a_batch_goes_piece_by_piece(self, server: SandboxCrmServer) -> None:
        # Given one update whose profile write alone takes 61 calls (60 entries + the fields)
        entity = ProfileEntity(kind="contact", entity_id="c1")
        profile = ProfileWrite(entity=entity, entries=tuple(f"платёж {k}" for k in range(60)), currency="RUB",
                               total_paid=6000)  # fmt: skip
        big = DealUpdate(
            tenant_id="shop", deal_id="1", invoice_id="inv-1", version=1, event="paid",
            ops=(DealOp(kind="set_stage", stage="PAID"), DealOp(kind="customer_profile", profile=profile)),
        )  # fmt: skip
        outcomes = adapter(server).apply([paid("2"), big, paid("3")])
        # Then it is done in two pieces after the first batch, and the entries are in order
        assert all(o.ok for o in outcomes)
        assert server.calls == 3
        timeline = server.portals["shop"].contacts["c1"].timeline
        assert [t["text"] for t in timeline] == [f"платёж {k}" for k in range(60)]

    def test_get_deals_reads_in_batches_and_leaves_out_unknown_deals(self, server: SandboxCrmServer) -> None:
        ids = [str(k) for k in range(1, 41)] + ["404", "405"]
        deals = adapter(server).get_deals(ids)
        assert sorted(deals, key=int) == [str(k) for k in range(1, 41)]
        assert deals["7"].amount == 1006 and deals["7"].customer.email == "c6@example.com"
        assert server.calls == 1

    @respx.mock(base_url=BASE)
    def test_get_deals_when_a_read_fails_transiently(self, respx_mock: respx.MockRouter) -> None:
        answer = {"responses": [{"status": 200, "body": {"id": "1"}}, {"status": 503, "body": {"error": "busy"}}]}
        route = respx_mock.post("/api/batch").mock(return_value=httpx.Response(200, json=answer))
        with pytest.raises(CrmUnavailable, match="GET /api/deals/2: HTTP 503 busy"):
            SandboxCrm(BASE, TOKEN).get_deals(["1", "2"])
        sent = json.loads(route.calls.last.request.content)
        assert sent == {
            "requests": [
                {"method": "GET", "path": "/api/deals/1", "group": None},
                {"method": "GET", "path": "/api/deals/2", "group": None},
            ]
        }
