"""amoCRM API v4 adapter against amoCRM's documented wire format (respx stands in for the API): reads, batched
writes and their per-update outcomes, OAuth refresh, and the unsigned form-encoded webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx

from paybridge.adapters.crm.amocrm import AmoCrm, AmoCrmSettings, oauth_refresher
from paybridge.adapters.crm.base import DealOp, DealUpdate, IssueInvoiceCommand, RateLimit, UpdateOutcome
from paybridge.adapters.crm.oauth import MemoryTokenStore, OAuthSession, TokenPair
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, InvalidSignature, MalformedNotification
from paybridge.domain.invoice import Customer
from tests.conftest import CountingThrottle

BASE = "https://acme.amocrm.ru"
TOKEN = "long-lived-token-abc123"
WEBHOOK_TOKEN = "wh-token-5f2c9e1a"
NOW = 1_790_000_000
PIPELINE = 7_001
TRIGGER = 61_234_001
AWAITING, PAID, EXPIRED = "61234002", "61234004", "61234007"
LINK_FIELD, NUMBER_FIELD = 900_101, 900_102
URL = "https://pay.test/i/inv_101"


def settings(**overrides: Any) -> AmoCrmSettings:
    fields: dict[str, Any] = {
        "kind": "amocrm",
        "base_url": BASE,
        "subdomain": "acme",
        "auth": {"kind": "long_lived", "token": {"value": TOKEN}},
        "webhook_token": {"value": WEBHOOK_TOKEN},
        "trigger": {"status_id": TRIGGER, "pipeline_id": PIPELINE},
        "pipeline_id": PIPELINE,
        "link_field_id": LINK_FIELD,
        "invoice_number_field_id": NUMBER_FIELD,
    }
    return AmoCrmSettings.model_validate({**fields, **overrides})


def adapter(throttle: Callable[[str, RateLimit], None] | None = None, **kwargs: Any) -> AmoCrm:
    config = kwargs.pop("settings", None) or settings()
    return AmoCrm(
        config,
        access=kwargs.pop("access", lambda: TOKEN),
        webhook_token=WEBHOOK_TOKEN,
        throttle=throttle or CountingThrottle(),
        clock=lambda: NOW,
        sleep=kwargs.pop("sleep", lambda seconds: None),
        **kwargs,
    )


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def stage(status: str, url: str | None = None) -> DealOp:
    return DealOp(kind="set_stage", stage=status, payment_url=url)


def comment(text: str) -> DealOp:
    return DealOp(kind="comment", text=text)


def notify(text: str) -> DealOp:
    return DealOp(kind="notify_manager", text=text)


def update(deal: str, *ops: DealOp, version: int = 1) -> DealUpdate:
    return DealUpdate(tenant_id="acme", deal_id=deal, invoice_id=f"inv_{deal}", version=version, ops=ops)


def body(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


def ok(entity: str, ids: list[int]) -> httpx.Response:
    """amoCRM's answer to a batch: the saved entities with their request_id (the index)."""
    items = [{"id": i, "request_id": str(n), "_links": {"self": {"href": f"{BASE}/x/{i}"}}} for n, i in enumerate(ids)]
    return httpx.Response(200, json={"_links": {"self": {"href": BASE}}, "_embedded": {entity: items}})


def validation_errors(*request_ids: str) -> httpx.Response:
    return httpx.Response(
        400,
        json={
            "validation-errors": [
                {
                    "request_id": rid,
                    "errors": [
                        {
                            "code": "NotSupportedChoice",
                            "path": "status_id",
                            "detail": "The value you selected is not a valid choice.",
                        }
                    ],
                }
                for rid in request_ids
            ],
            "title": "Bad Request",
            "type": "https://httpstatus.es/400",
            "status": 400,
            "detail": "Request validation failed",
        },
    )


def lead_json(lead_id: int = 3_912_171, **overrides: Any) -> dict[str, Any]:
    lead: dict[str, Any] = {
        "id": lead_id,
        "name": "Поставка чая, март",
        "price": 1500,
        "responsible_user_id": 504_141,
        "group_id": 0,
        "status_id": TRIGGER,
        "pipeline_id": PIPELINE,
        "loss_reason_id": None,
        "created_by": 504_141,
        "updated_by": 504_141,
        "created_at": 1_548_280_113,
        "updated_at": 1_548_280_115,
        "closed_at": None,
        "closest_task_at": None,
        "is_deleted": False,
        "custom_fields_values": [
            {
                "field_id": 900_555,
                "field_name": "Источник",
                "field_code": None,
                "field_type": "text",
                "values": [{"value": "сайт"}],
            },
            {
                "field_id": NUMBER_FIELD,
                "field_name": "Номер счёта",
                "field_code": None,
                "field_type": "text",
                "values": [{"value": "СЧ-2026/17"}],
            },
        ],
        "score": None,
        "account_id": 28_805_383,
        "_links": {"self": {"href": f"{BASE}/api/v4/leads/{lead_id}"}},
        "_embedded": {
            "tags": [],
            "companies": [],
            "contacts": [
                {"id": 10_971_463, "is_main": False, "_links": {"self": {"href": f"{BASE}/api/v4/contacts/10971463"}}},
                {"id": 10_971_465, "is_main": True, "_links": {"self": {"href": f"{BASE}/api/v4/contacts/10971465"}}},
            ],
        },
    }
    lead.update(overrides)
    return lead


CONTACT = {
    "id": 10_971_465,
    "name": "Иван Петров",
    "first_name": "Иван",
    "last_name": "Петров",
    "responsible_user_id": 504_141,
    "custom_fields_values": [
        {
            "field_id": 3,
            "field_name": "Телефон",
            "field_code": "PHONE",
            "field_type": "multitext",
            "values": [
                {"value": "8 (900) 123-45-67", "enum_id": 1, "enum_code": "WORK"},
                {"value": "+79990000000", "enum_id": 3, "enum_code": "MOB"},
            ],
        },
        {
            "field_id": 5,
            "field_name": "Email",
            "field_code": "EMAIL",
            "field_type": "multitext",
            "values": [{"value": "ivan@example.ru", "enum_id": 7, "enum_code": "WORK"}],
        },
    ],
    "account_id": 28_805_383,
}


def test_the_default_rate_limit_never_sends_more_than_seven_requests_in_a_second() -> None:
    """amoCRM's limit is 7 requests in any second (the fake counts a sliding 1 s window). Senders that take the
    bucket's tokens as fast as it gives them — after a long pause (a full bucket), each request arriving up to 50 ms
    late or early — never put 8 in one second; 7/s with a burst of 7, the old default, put 13."""
    import random

    from paybridge.domain.ratelimit import take

    def worst_second(per_second: float, burst: int) -> int:
        rng, bucket, now, arrivals = random.Random(7), None, 1000.0, []
        while now < 1010.0:
            taken, wait = take(bucket, now, per_second, burst)
            if taken is None:
                now += wait + 1e-9  # (the refill, in floating point, may fall a hair short)
                continue
            bucket = taken
            arrivals.append(now + rng.uniform(0.0, 0.05))  # the network: later, never before it was sent
        arrivals.sort()
        return max(sum(1 for t in arrivals if a <= t < a + 1.0) for a in arrivals)

    limit = settings().rate_limit
    assert worst_second(limit.per_second, limit.burst) <= 7
    assert worst_second(7, 7) >= 13  # the old default: the check can fail


# ---------------------------------------------------------------------------------------------------------------
# get_deal
# ---------------------------------------------------------------------------------------------------------------


class TestGetDeal:
    def test_lead_with_its_main_contact(self, api: respx.MockRouter) -> None:
        lead = api.get("/api/v4/leads/3912171").mock(return_value=httpx.Response(200, json=lead_json()))
        contact = api.get("/api/v4/contacts/10971465").mock(return_value=httpx.Response(200, json=CONTACT))
        throttle = CountingThrottle()
        deal = adapter(throttle).get_deal("3912171")
        assert deal.deal_id == "3912171" and deal.title == "Поставка чая, март"
        assert deal.amount == 150_000 and deal.currency is None  # 1500 roubles in kopecks; the tenant's currency
        assert deal.stage == str(TRIGGER) and deal.manager_id == "504141"
        assert deal.invoice_number == "СЧ-2026/17"
        assert deal.customer == Customer(name="Иван Петров", email="ivan@example.ru", phone="+79001234567")
        request = lead.calls[0].request
        assert request.url.params["with"] == "contacts"
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert contact.calls[0].request.headers["authorization"] == f"Bearer {TOKEN}"
        assert throttle.calls == [("acme", RateLimit(per_second=6, burst=1))] * 2

    def test_no_contact_no_number_no_price(self, api: respx.MockRouter) -> None:
        bare = lead_json(
            price=None,
            custom_fields_values=[{"field_id": NUMBER_FIELD, "values": [{"value": ""}]}],
            _embedded={"tags": [], "contacts": []},
        )
        api.get("/api/v4/leads/3912171").mock(return_value=httpx.Response(200, json=bare))
        deal = adapter().get_deal("3912171")
        assert (deal.amount, deal.invoice_number, deal.customer) == (None, None, Customer())
        assert len(api.calls) == 1  # no contact to read

    def test_invoice_number_only_from_the_configured_field(self, api: respx.MockRouter) -> None:
        api.get("/api/v4/leads/3912171").mock(return_value=httpx.Response(200, json=lead_json(_embedded={})))
        assert adapter(settings=settings(invoice_number_field_id=None)).get_deal("3912171").invoice_number is None
        other = settings(invoice_number_field_id=900_555)
        assert adapter(settings=other).get_deal("3912171").invoice_number == "сайт"

    @pytest.mark.parametrize("answer", [httpx.Response(204), httpx.Response(404, json={"title": "Not Found"})])
    def test_an_unknown_lead_is_rejected(self, api: respx.MockRouter, answer: httpx.Response) -> None:
        api.get("/api/v4/leads/404404").mock(return_value=answer)
        with pytest.raises(CrmRejected, match="lead 404404 not found"):
            adapter().get_deal("404404")

    def test_a_deal_id_that_is_no_lead_id_is_rejected_without_a_call(self, api: respx.MockRouter) -> None:
        with pytest.raises(CrmRejected, match="not found"):
            adapter().get_deal("DEAL-7")
        assert not api.calls

    @pytest.mark.parametrize(
        "answer", [httpx.Response(429), httpx.Response(502, text="Bad Gateway"), httpx.ReadTimeout("slow")]
    )
    def test_transient_failures(self, api: respx.MockRouter, answer: Any) -> None:
        api.get("/api/v4/leads/3912171").mock(side_effect=[answer] * 3)  # a 429 is sent twice more, then given up
        with pytest.raises(CrmUnavailable) as caught:
            adapter().get_deal("3912171")
        assert type(caught.value) is CrmUnavailable  # Step Functions retries match the class name exactly

    @pytest.mark.parametrize("answer", [httpx.Response(403, json={"title": "Forbidden"}), httpx.Response(401)])
    def test_permanent_failures_are_exactly_crm_rejected(self, api: respx.MockRouter, answer: Any) -> None:
        api.get("/api/v4/leads/3912171").mock(return_value=answer)
        with pytest.raises(CrmRejected) as caught:
            adapter().get_deal("3912171")
        assert type(caught.value) is CrmRejected


# ---------------------------------------------------------------------------------------------------------------
# apply: batching
# ---------------------------------------------------------------------------------------------------------------


def routes(api: respx.MockRouter) -> dict[str, respx.Route]:
    return {
        "patch": api.patch("/api/v4/leads").mock(return_value=ok("leads", [])),
        "notes": api.post("/api/v4/leads/notes").mock(return_value=ok("notes", [])),
        "leads": api.get("/api/v4/leads").mock(
            return_value=httpx.Response(
                200,
                json={
                    "_page": 1,
                    "_links": {"self": {"href": f"{BASE}/api/v4/leads"}},
                    "_embedded": {
                        "leads": [lead_json(103, responsible_user_id=5_003), lead_json(102, responsible_user_id=5_002)]
                    },
                },
            )
        ),
        "tasks": api.post("/api/v4/tasks").mock(return_value=ok("tasks", [])),
    }


class TestApplyBatching:
    def test_one_request_per_kind_for_the_whole_batch(self, api: respx.MockRouter) -> None:
        r = routes(api)
        throttle = CountingThrottle()
        updates = [
            update(
                "101",
                stage(AWAITING, URL),
                comment("Ссылка на оплату"),
                DealOp(kind="send_to_customer", customer=Customer(phone="+79001234567"), text="Оплатите"),
            ),
            update("102", stage(PAID), comment("Оплачено")),
            update("103", stage(EXPIRED), comment("Срок истёк"), notify("Срок истёк")),
            update("101", comment("Платёж отклонён"), version=2),
            update("102", notify("Оплата после закрытия"), version=2),
        ]
        assert adapter(throttle).apply(updates) == [UpdateOutcome.done()] * 5
        assert [len(route.calls) for route in r.values()] == [1, 1, 1, 1]
        assert len(api.calls) == 4 and len(throttle.calls) == 4
        assert body(r["patch"]) == [
            {
                "id": 101,
                "status_id": int(AWAITING),
                "pipeline_id": PIPELINE,
                "custom_fields_values": [{"field_id": LINK_FIELD, "values": [{"value": URL}]}],
            },
            {"id": 102, "status_id": int(PAID), "pipeline_id": PIPELINE},
            {"id": 103, "status_id": int(EXPIRED), "pipeline_id": PIPELINE},
        ]
        assert body(r["notes"]) == [
            {"entity_id": 101, "note_type": "common", "params": {"text": "Ссылка на оплату"}},
            {"entity_id": 102, "note_type": "common", "params": {"text": "Оплачено"}},
            {"entity_id": 103, "note_type": "common", "params": {"text": "Срок истёк"}},
            {"entity_id": 101, "note_type": "common", "params": {"text": "Платёж отклонён"}},
        ]
        lookup = r["leads"].calls[0].request.url.params
        assert lookup.get_list("filter[id][]") == ["103", "102"]
        due = NOW + 24 * 3600
        assert body(r["tasks"]) == [
            {
                "task_type_id": 1,
                "text": "Срок истёк",
                "complete_till": due,
                "entity_id": 103,
                "entity_type": "leads",
                "responsible_user_id": 5_003,
            },
            {
                "task_type_id": 1,
                "text": "Оплата после закрытия",
                "complete_till": due,
                "entity_id": 102,
                "entity_type": "leads",
                "responsible_user_id": 5_002,
            },
        ]

    def test_the_last_stage_wins_and_the_link_stays(self, api: respx.MockRouter) -> None:
        r = routes(api)
        updates = [
            update("101", stage(AWAITING, URL), comment("Ссылка")),
            update("101", stage(PAID), comment("Оплачено"), version=2),
        ]
        assert adapter().apply(updates) == [UpdateOutcome.done()] * 2
        assert body(r["patch"]) == [
            {
                "id": 101,
                "status_id": int(PAID),
                "pipeline_id": PIPELINE,
                "custom_fields_values": [{"field_id": LINK_FIELD, "values": [{"value": URL}]}],
            }
        ]
        assert [n["params"]["text"] for n in body(r["notes"])] == ["Ссылка", "Оплачено"]
        assert not r["leads"].called and not r["tasks"].called  # nobody to notify: no lookup

    def test_without_a_link_field_only_the_status_is_written(self, api: respx.MockRouter) -> None:
        r = routes(api)
        adapter(settings=settings(link_field_id=None)).apply([update("101", stage(AWAITING, URL))])
        assert body(r["patch"]) == [{"id": 101, "status_id": int(AWAITING), "pipeline_id": PIPELINE}]

    def test_big_batches_are_chunked_by_50(self, api: respx.MockRouter) -> None:
        r = routes(api)
        throttle = CountingThrottle()
        updates = [update(str(1000 + n), comment(f"n{n}")) for n in range(120)]
        assert adapter(throttle).apply(updates) == [UpdateOutcome.done()] * 120
        assert [len(body(r["notes"], i)) for i in range(3)] == [50, 50, 20]
        assert [n["params"]["text"] for i in range(3) for n in body(r["notes"], i)] == [f"n{n}" for n in range(120)]
        assert len(throttle.calls) == 3 and not r["patch"].called

    def test_send_to_customer_is_left_to_amocrm(self, api: respx.MockRouter) -> None:
        op = DealOp(kind="send_to_customer", customer=Customer(email="a@b.ru"), text="Оплатите")
        assert adapter().apply([update("101", op)]) == [UpdateOutcome.done()]
        assert not api.calls

    def test_a_deal_id_that_is_no_lead_id_is_parked(self, api: respx.MockRouter) -> None:
        r = routes(api)
        outcomes = adapter().apply([update("D-1", comment("x")), update("102", comment("y"))])
        assert not outcomes[0].ok and not outcomes[0].transient and outcomes[1] == UpdateOutcome.done()
        assert [n["entity_id"] for n in body(r["notes"])] == [102]


# ---------------------------------------------------------------------------------------------------------------
# apply: failures
# ---------------------------------------------------------------------------------------------------------------


class TestApplyFailures:
    @pytest.mark.parametrize(
        "answer", [httpx.Response(503, text="Service Unavailable"), httpx.Response(500), httpx.ConnectTimeout("down")]
    )
    def test_a_failed_patch_retries_its_leads_and_stops_their_notes(self, api: respx.MockRouter, answer: Any) -> None:
        r = routes(api)
        r["patch"].mock(side_effect=[answer])
        updates = [
            update("101", stage(PAID), comment("Оплачено")),
            update("202", comment("Ссылка")),
            update("101", comment("позже"), version=2),
        ]
        outcomes = adapter().apply(updates)
        assert [(o.ok, o.transient) for o in outcomes] == [(False, True), (True, False), (False, True)]
        assert "earlier update of lead 101" in outcomes[2].detail
        assert body(r["notes"]) == [{"entity_id": 202, "note_type": "common", "params": {"text": "Ссылка"}}]

    def test_429_is_sent_again_and_then_stops_the_batch(self, api: respx.MockRouter) -> None:
        r = routes(api)
        r["patch"].mock(return_value=httpx.Response(429))
        throttle, slept = CountingThrottle(), []
        updates = [update("101", stage(PAID)), update("202", comment("x")), update("303", notify("y"))]
        outcomes = adapter(throttle, sleep=slept.append).apply(updates)
        assert all(o.transient and not o.ok for o in outcomes)
        assert "429" in outcomes[0].detail and "429" in outcomes[1].detail
        assert len(api.calls) == 3 and len(throttle.calls) == 3  # the PATCH twice more, each after a token
        assert slept == [1.0, 1.0] and not r["notes"].called

    @pytest.mark.parametrize(("retry_after", "waited"), [(None, 1.0), ("2", 2.0), ("600", 1.0), ("soon", 1.0)])
    def test_a_429_in_the_middle_does_not_send_the_notes_before_it_again(
        self, api: respx.MockRouter, retry_after: str | None, waited: float
    ) -> None:
        """A 429 refused the request (amoCRM applied none of it): the same request is sent again after a wait, so
        the updates complete in this call and the notes that landed before it are not repeated by a retry."""
        r = routes(api)
        refused = httpx.Response(429, headers={"Retry-After": retry_after} if retry_after else {})
        r["tasks"].mock(side_effect=[refused, ok("tasks", [1])])
        slept: list[float] = []
        updates = [update("103", stage(PAID), comment("Оплачено"), notify("Позвоните клиенту"))]
        outcomes = adapter(sleep=slept.append).apply(updates)
        assert [o.ok for o in outcomes] == [True]
        assert r["patch"].call_count == 1 and r["notes"].call_count == 1  # sent once: not again for the 429
        assert r["tasks"].call_count == 2 and slept == [waited]

    def test_a_throttle_that_will_not_wait_stops_the_batch(self, api: respx.MockRouter) -> None:
        routes(api)

        def throttle(account: str, limit: RateLimit) -> None:
            raise CrmUnavailable("the bucket of acme is empty for 30 s")

        outcomes = adapter(throttle).apply([update("101", stage(PAID)), update("202", comment("x"))])
        assert all(o.transient for o in outcomes) and "bucket" in outcomes[1].detail
        assert not api.calls

    def test_validation_errors_park_the_named_items_and_the_rest_is_sent_again(self, api: respx.MockRouter) -> None:
        r = routes(api)
        r["patch"].mock(side_effect=[validation_errors("1"), ok("leads", [101, 103])])
        updates = [
            update("101", stage(PAID), comment("a")),
            update("102", stage("999"), comment("b")),
            update("103", stage(EXPIRED)),
            update("102", comment("c"), version=2),
        ]
        outcomes = adapter().apply(updates)
        assert outcomes[0] == outcomes[2] == UpdateOutcome.done()
        assert not outcomes[1].ok and not outcomes[1].transient and "NotSupportedChoice status_id" in outcomes[1].detail
        assert outcomes[3].transient  # after a parked update of the same lead: waits
        assert [item["id"] for item in body(r["patch"], 0)] == [101, 102, 103]
        assert [item["id"] for item in body(r["patch"], 1)] == [101, 103]
        assert [n["params"]["text"] for n in body(r["notes"])] == ["a"]

    def test_a_400_that_names_no_item_parks_the_whole_request(self, api: respx.MockRouter) -> None:
        r = routes(api)
        r["notes"].mock(
            return_value=httpx.Response(
                400, json={"title": "Bad Request", "status": 400, "detail": "Request body is not valid json"}
            )
        )
        outcomes = adapter().apply([update("101", stage(PAID), comment("a")), update("102", comment("b"))])
        assert [(o.ok, o.transient) for o in outcomes] == [(False, False), (False, False)]
        assert r["notes"].call_count == 1

    def test_a_failed_note_retries_its_update_and_the_later_ones_of_the_lead(self, api: respx.MockRouter) -> None:
        r = routes(api)
        r["notes"].mock(return_value=httpx.Response(500))
        updates = [
            update("101", stage(AWAITING, URL), comment("Ссылка")),
            update("101", stage(PAID), version=2),  # its stage went out in the merged PATCH, yet it must wait
            update("102", stage(PAID)),
        ]
        outcomes = adapter().apply(updates)
        assert [(o.ok, o.transient) for o in outcomes] == [(False, True), (False, True), (True, False)]
        assert r["patch"].call_count == 1

    def test_a_lead_gone_before_its_task_is_parked(self, api: respx.MockRouter) -> None:
        r = routes(api)
        r["leads"].mock(return_value=httpx.Response(204))
        outcomes = adapter().apply([update("101", comment("a"), notify("b"))])
        assert not outcomes[0].ok and not outcomes[0].transient and "not found" in outcomes[0].detail
        assert not r["tasks"].called

    def test_a_failed_lookup_retries_only_the_notifying_updates(self, api: respx.MockRouter) -> None:
        r = routes(api)
        r["leads"].mock(return_value=httpx.Response(502))
        outcomes = adapter().apply([update("102", notify("b")), update("202", comment("a"))])
        assert outcomes[0].transient and outcomes[1] == UpdateOutcome.done()
        assert not r["tasks"].called


# ---------------------------------------------------------------------------------------------------------------
# 401 and OAuth
# ---------------------------------------------------------------------------------------------------------------


class Tokens:
    def __init__(self) -> None:
        self.refreshes = 0

    def access(self) -> str:
        return "old-token"

    def unauthorized(self) -> str:
        self.refreshes += 1
        return "new-token"


class TestUnauthorized:
    def test_a_401_refreshes_once_and_retries(self, api: respx.MockRouter) -> None:
        r = routes(api)
        r["patch"].mock(side_effect=[httpx.Response(401, json={"title": "Unauthorized"}), ok("leads", [101])])
        tokens = Tokens()
        throttle = CountingThrottle()
        crm = adapter(throttle, access=tokens.access, on_unauthorized=tokens.unauthorized)
        assert crm.apply([update("101", stage(PAID))]) == [UpdateOutcome.done()]
        sent = [call.request.headers["authorization"] for call in r["patch"].calls]
        assert sent == ["Bearer old-token", "Bearer new-token"]
        assert tokens.refreshes == 1 and len(throttle.calls) == 2

    def test_a_second_401_stops_the_batch_and_get_deal_is_rejected(self, api: respx.MockRouter) -> None:
        r = routes(api)
        r["patch"].mock(return_value=httpx.Response(401))
        api.get("/api/v4/leads/101").mock(return_value=httpx.Response(401))
        tokens = Tokens()
        crm = adapter(access=tokens.access, on_unauthorized=tokens.unauthorized)
        outcomes = crm.apply([update("101", stage(PAID)), update("202", comment("x"))])
        assert all(o.transient for o in outcomes) and "re-authorise" in outcomes[0].detail
        assert r["patch"].call_count == 2 and not r["notes"].called
        with pytest.raises(CrmRejected, match="re-authorise"):
            crm.get_deal("101")
        assert tokens.refreshes == 2  # once per request, never more

    def test_a_dead_refresh_token_keeps_updates_waiting(self, api: respx.MockRouter) -> None:
        routes(api)

        def access() -> str:
            raise CrmRejected("acme: the refresh token was refused; the integration must be re-authorised")

        outcomes = adapter(access=access).apply([update("101", stage(PAID)), update("202", comment("x"))])
        assert all(not o.ok and o.transient for o in outcomes) and "re-authorised" in outcomes[0].detail
        assert not api.calls


def oauth_settings(**auth: Any) -> AmoCrmSettings:
    return settings(
        auth={
            "kind": "oauth",
            "client_id": "b6a1c9e2-0000-4000-8000-5d2f0a1c9e77",
            "client_secret": {"value": "client-secret-xyz"},
            "redirect_uri": "https://hub.test/oauth/amocrm",
            **auth,
        }
    )


def token_answer(access: str, refresh: str) -> httpx.Response:
    return httpx.Response(
        200, json={"token_type": "Bearer", "expires_in": 86400, "access_token": access, "refresh_token": refresh}
    )


class TestOAuthRefresher:
    def test_request_and_answer(self, api: respx.MockRouter) -> None:
        route = api.post("/oauth2/access_token").mock(return_value=token_answer("a1", "r1"))
        pair = oauth_refresher(oauth_settings(), "client-secret-xyz", clock=lambda: NOW)("r0")
        assert pair == TokenPair(access_token="a1", refresh_token="r1", expires_at=NOW + 86400)
        assert body(route) == {
            "client_id": "b6a1c9e2-0000-4000-8000-5d2f0a1c9e77",
            "client_secret": "client-secret-xyz",
            "grant_type": "refresh_token",
            "refresh_token": "r0",
            "redirect_uri": "https://hub.test/oauth/amocrm",
        }

    def test_the_token_url_of_the_settings_wins(self) -> None:
        with respx.mock() as mock:
            route = mock.post("https://auth.test/token").mock(return_value=token_answer("a1", "r1"))
            oauth_refresher(oauth_settings(token_url="https://auth.test/token"), "s3cret")("r0")
            assert route.called

    @pytest.mark.parametrize("status", [400, 401])
    def test_a_dead_refresh_token_means_reauthorising(self, api: respx.MockRouter, status: int) -> None:
        api.post("/oauth2/access_token").mock(
            return_value=httpx.Response(
                status, json={"hint": "Token has been revoked", "title": "Некорректный запрос", "status": status}
            )
        )
        with pytest.raises(CrmRejected, match="must be re-authorised"):
            oauth_refresher(oauth_settings(), "client-secret-xyz")("r0")

    @pytest.mark.parametrize("answer", [httpx.Response(500), httpx.Response(429), httpx.ReadTimeout("slow")])
    def test_transient_failures(self, api: respx.MockRouter, answer: Any) -> None:
        api.post("/oauth2/access_token").mock(side_effect=[answer])
        with pytest.raises(CrmUnavailable):
            oauth_refresher(oauth_settings(), "client-secret-xyz")("r0")

    def test_long_lived_settings_have_no_refresher(self) -> None:
        with pytest.raises(TypeError):
            oauth_refresher(settings(), "x")


class FakeOAuthServer:
    """amoCRM's token rules under respx: single-use refresh tokens, access tokens that can be revoked."""

    def __init__(self) -> None:
        self.refresh_tokens = {"r0"}
        self.access_tokens: set[str] = set()
        self.minted = 0

    def token(self, request: httpx.Request) -> httpx.Response:
        refresh = json.loads(request.content)["refresh_token"]
        if refresh not in self.refresh_tokens:
            return httpx.Response(401, json={"hint": "Token has been revoked"})
        self.refresh_tokens.remove(refresh)
        self.minted += 1
        access, new_refresh = f"a{self.minted}", f"r{self.minted}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(new_refresh)
        return token_answer(access, new_refresh)

    def lead(self, request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"].removeprefix("Bearer ") not in self.access_tokens:
            return httpx.Response(401, json={"title": "Unauthorized", "status": 401})
        return httpx.Response(200, json=lead_json(101, _embedded={}))


class TestOAuthEndToEnd:
    def test_tokens_rotate_through_the_session(self, api: respx.MockRouter) -> None:
        server = FakeOAuthServer()
        api.post("/oauth2/access_token").mock(side_effect=server.token)
        api.get("/api/v4/leads/101").mock(side_effect=server.lead)
        now = [float(NOW)]
        store = MemoryTokenStore()
        config = oauth_settings()
        session = OAuthSession(
            store,
            "amocrm:acme",
            refresh=oauth_refresher(config, "client-secret-xyz", clock=lambda: now[0]),
            initial=TokenPair(access_token="", refresh_token="r0", expires_at=0),
            clock=lambda: now[0],
        )
        crm = adapter(settings=config, access=session.access_token, on_unauthorized=session.invalidate)

        crm.get_deal("101")  # no access token yet: r0 → a1/r1
        crm.get_deal("101")  # a1 still good
        assert server.minted == 1
        now[0] += 86_400  # a1 expires: r1 → a2/r2
        crm.get_deal("101")
        assert server.minted == 2
        server.access_tokens.clear()  # amoCRM revokes a2: 401 → r2 → a3/r3, the request is repeated
        assert crm.get_deal("101").deal_id == "101"
        assert server.minted == 3
        stored = store.load("amocrm:acme")
        assert stored is not None and (stored.pair.access_token, stored.pair.refresh_token) == ("a3", "r3")
        assert stored.version == 4
        with pytest.raises(CrmRejected, match="re-authorised"):  # a used refresh token is dead
            oauth_refresher(config, "client-secret-xyz")("r1")


# ---------------------------------------------------------------------------------------------------------------
# webhooks
# ---------------------------------------------------------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
Q = {"token": WEBHOOK_TOKEN}


def event(kind: str, n: int, lead: int, status: int, pipeline: int = PIPELINE, **extra: Any) -> list[tuple[str, str]]:
    fields = {"id": lead, "status_id": status, "pipeline_id": pipeline, **extra}
    return [(f"leads[{kind}][{n}][{k}]", str(v)) for k, v in fields.items()]


def webhook(*events: list[tuple[str, str]], subdomain: str = "acme") -> bytes:
    pairs = [pair for e in events for pair in e]
    pairs += [
        ("account[subdomain]", subdomain),
        ("account[id]", "28805383"),
        ("account[_links][self]", f"https://{subdomain}.amocrm.ru"),
    ]
    return urlencode(pairs).encode()


def status_event(n: int, lead: int, status: int, pipeline: int = PIPELINE) -> list[tuple[str, str]]:
    return event("status", n, lead, status, pipeline, old_status_id=61_234_000, old_pipeline_id=PIPELINE)


class TestWebhook:
    def test_a_lead_moved_to_the_trigger_status_asks_for_an_invoice(self) -> None:
        result = adapter().parse_webhook(FORM, webhook(status_event(0, 3_912_171, TRIGGER)), Q)
        assert result.commands == (IssueInvoiceCommand(deal_id="3912171"),) and result.ignored == ()

    def test_our_own_status_change_is_ignored(self) -> None:
        result = adapter().parse_webhook(FORM, webhook(status_event(0, 3_912_171, int(AWAITING))), Q)
        assert result.commands == ()
        assert len(result.ignored) == 1 and f"status {AWAITING} is not the trigger status" in result.ignored[0]

    def test_several_leads_in_one_webhook(self) -> None:
        body = webhook(
            status_event(0, 11, TRIGGER),
            status_event(1, 12, int(PAID)),
            status_event(2, 13, TRIGGER),
            event("update", 0, 11, TRIGGER, price=1500, name="Заказ"),  # the same lead again: one command
            event("update", 1, 14, TRIGGER, price=900),
            event("add", 0, 15, TRIGGER),
        )
        result = adapter().parse_webhook(FORM, body, Q)
        assert [c.deal_id for c in result.commands] == ["11", "13", "14"]
        assert len(result.ignored) == 2
        assert "lead 12" in result.ignored[0] and "leads[add][0]" in result.ignored[1]

    def test_the_trigger_pipeline_must_match(self) -> None:
        body = webhook(status_event(0, 11, TRIGGER, pipeline=9_999))
        assert adapter().parse_webhook(FORM, body, Q).commands == ()
        anywhere = adapter(settings=settings(trigger={"status_id": TRIGGER}))
        assert anywhere.parse_webhook(FORM, body, Q).commands == (IssueInvoiceCommand(deal_id="11"),)

    def test_nested_custom_fields_do_not_confuse_the_parser(self) -> None:
        custom = [
            ("leads[update][0][custom_fields][0][id]", "900101"),
            ("leads[update][0][custom_fields][0][values][0][value]", "https://x"),
        ]
        body = webhook(event("update", 0, 21, TRIGGER), custom)
        assert adapter().parse_webhook(FORM, body, Q).commands == (IssueInvoiceCommand(deal_id="21"),)

    def test_an_adapter_without_a_webhook_token_accepts_nothing(self) -> None:
        crm = AmoCrm(settings(), access=lambda: TOKEN, webhook_token="")
        with pytest.raises(InvalidSignature):
            crm.parse_webhook(FORM, webhook(status_event(0, 11, TRIGGER)), {"token": ""})

    @pytest.mark.parametrize("query", [{}, {"token": "nope"}, {"token": WEBHOOK_TOKEN + "x"}, {"token": "тест"}])
    def test_a_wrong_url_token_is_refused(self, query: dict[str, str]) -> None:
        with pytest.raises(InvalidSignature):
            adapter().parse_webhook(FORM, webhook(status_event(0, 11, TRIGGER)), query)

    def test_another_account_is_refused(self) -> None:
        with pytest.raises(InvalidSignature):
            adapter().parse_webhook(FORM, webhook(status_event(0, 11, TRIGGER), subdomain="evil"), Q)

    @pytest.mark.parametrize(
        "body",
        [b"\xff\xfe\x00garbage", b"leads[status][0][id]", b"a=1&&b=2", b"%FF=1", urlencode({"leads[x]": "1"}).encode()],
    )
    def test_garbage_is_malformed(self, body: bytes) -> None:
        with pytest.raises(MalformedNotification):
            adapter().parse_webhook(FORM, body, Q)

    def test_no_lead_events_is_ignored(self) -> None:
        body = urlencode({"contacts[add][0][id]": "5", "account[subdomain]": "acme"}).encode()
        result = adapter().parse_webhook(FORM, body, Q)
        assert result.commands == () and result.ignored == ("no lead events",)
