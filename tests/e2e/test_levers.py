"""A person's levers end to end on the local stack: record a payment made elsewhere, reissue a link, re-sync a deal,
decide a bank line, list invoices. Each lever lands once under 10 concurrent identical requests, is audited with who
and why, reaches the deal, and is refused — writing nothing — for a key without the `ops` scope or bad input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, Api, Sandbox, payment_id_of, poll
from tests.e2e.test_bank_transfers import ACCOUNT, incoming, statement_1c, upload

OPS_KEY = "demo-ops-key"
CONCURRENT = 10


class Ops:
    """A person at the ops console of a tenant."""

    def __init__(self, http: httpx.Client, tenant: str = "demo", api_key: str = OPS_KEY, actor: str = "anna") -> None:
        self.http, self.tenant, self.api_key, self.actor = http, tenant, api_key, actor

    def pull(self, path: str, key: str | None, body: Any, actor: str | None = None, **headers: str) -> httpx.Response:
        sent = {"x-api-key": self.api_key, **headers}
        if key is not None:
            sent["Idempotency-Key"] = key
        if (actor or self.actor) != "-":
            sent["X-Actor"] = actor or self.actor
        return self.http.post(f"/v1/{self.tenant}{path}", json=body, headers=sent)

    def at_once(self, path: str, key: str, body: Any, times: int = CONCURRENT) -> list[httpx.Response]:
        """`times` identical requests at the same moment (a double-clicking person, a retrying console)."""
        with ThreadPoolExecutor(max_workers=times) as pool:
            return list(pool.map(lambda _: self.pull(path, key, body), range(times)))

    def list(self, **params: Any) -> httpx.Response:
        return self.http.get(f"/v1/{self.tenant}/invoices", params=params, headers={"x-api-key": self.api_key})


@pytest.fixture
def ops(http: httpx.Client) -> Ops:
    return Ops(http)


def exactly_once(answers: list[httpx.Response]) -> dict[str, Any]:
    """Every one of the concurrent requests got the same outcome; exactly one of them is the original."""
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers if a.status_code != 200]
    bodies = [a.json() for a in answers]
    assert Counter(b["replayed"] for b in bodies) == {False: 1, True: len(answers) - 1}
    first = next(b for b in bodies if not b["replayed"])
    assert all({**b, "replayed": False} == first for b in bodies)
    return first


def entries(api: Api, invoice_id: str, event: str) -> list[dict[str, Any]]:
    return [h for h in api.get(invoice_id)["history"] if h["event"] == event]


def is_problem(response: httpx.Response, status: int, slug: str) -> bool:
    return (
        response.status_code == status
        and response.headers["content-type"].startswith("application/problem+json")
        and response.json()["type"].endswith(f"/{slug}")
    )


# -- scopes ---------------------------------------------------------------------------------------------------------


def test_a_key_without_ops_cannot_pull_a_lever_and_nothing_is_written(
    http: httpx.Client, sandbox: Sandbox, api: Api, unique: Callable[[str], str]
) -> None:
    deal = sandbox.new_deal(amount=50_000)
    invoice = api.issue_awaiting(deal["id"], amount=50_000)
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "AWAITING_PAYMENT")  # the link has reached the deal
    before = api.get(invoice["invoice_id"])
    integration = Ops(http, api_key=API_KEY)
    levers = [
        (f"/invoices/{invoice['invoice_id']}/payments", {"amount": 50_000, "method": "cash", "reason": "paid at desk"}),
        (f"/invoices/{invoice['invoice_id']}/reissue", {"reason": "client lost the link"}),
        (f"/deals/{deal['id']}/resync", {"reason": "deal looks stale"}),
        ("/bank/review/" + "0" * 32 + "/resolve", {"dismiss": {"reason": "not ours"}}),
    ]
    for path, body in levers:
        # Given the tenant's integration key (issue, read, cancel, refund) — When it pulls a lever — Then 403
        refused = integration.pull(path, unique("k"), body)
        assert is_problem(refused, 403, "forbidden"), (path, refused.text)
        assert "ops" in refused.json()["detail"]
        # And no key, or a key that is not the tenant's, is 401
        assert is_problem(Ops(http, api_key="wrong").pull(path, unique("k"), body), 401, "unauthorized")
    assert is_problem(integration.list(), 403, "forbidden")
    assert is_problem(Ops(http, api_key="wrong").list(), 401, "unauthorized")
    # The ops key is not an integration key: it cannot issue
    issued = http.post(
        "/v1/demo/invoices",
        json={"deal_id": deal["id"], "number": unique("N"), "amount": 100},
        headers={"x-api-key": OPS_KEY},
    )
    assert is_problem(issued, 403, "forbidden")
    # Nothing was written: the same version, the same history, the deal untouched
    after = api.get(invoice["invoice_id"])
    assert (after["paid"], after["history"]) == (before["paid"], before["history"])
    assert sandbox.deal(deal["id"])["stage"] == "AWAITING_PAYMENT"
    # …and the ops key reads the invoice it acts on (history included)
    assert http.get(f"/v1/demo/invoices/{invoice['invoice_id']}", headers={"x-api-key": OPS_KEY}).status_code == 200


# -- record a payment made outside PayBridge ------------------------------------------------------------------------


def test_a_manual_payment_lands_once_under_10_concurrent_requests_and_the_deal_is_paid(
    http: httpx.Client, sandbox: Sandbox, api: Api, ops: Ops, unique: Callable[[str], str]
) -> None:
    deal = sandbox.new_deal(amount=120_000)
    invoice = api.issue_awaiting(deal["id"], amount=120_000)
    path, key = f"/invoices/{invoice['invoice_id']}/payments", unique("cash")
    body = {"amount": 120_000, "method": "cash", "reference": "ПКО № 17", "reason": "client paid at the office"}
    # When 10 identical requests come at once
    outcome = exactly_once(ops.at_once(path, key, body))
    # Then the money landed once, audited with who and why
    assert outcome["lever"] == "manual_payment" and outcome["actor"] == "ops:anna"
    assert outcome["invoices"][0]["paid"] == 120_000
    after = api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")
    assert after["paid"] == 120_000 and "overpaid" not in after["flags"]
    [entry] = entries(api, invoice["invoice_id"], "paid_outside")
    assert entry["actor"] == "ops:anna" and entry["amount"] == 120_000 and entry["ref"] == f"manual:{key}"
    assert "cash ПКО № 17" in entry["detail"] and "client paid at the office" in entry["detail"]
    # And the deal is paid, its timeline says how; the provider's link is withdrawn (it held no money)
    paid = sandbox.wait_deal(
        deal["id"], lambda d: d["stage"] == "PAID" and any("вне PayBridge" in t["text"] for t in d["timeline"])
    )
    assert sum("наличными (ПКО № 17)" in t["text"] for t in paid["timeline"]) == 1
    payment = http.get(f"/sandbox/psp/api/payments/{payment_id_of(invoice)}").json()
    assert payment["status"] == "canceled" and payment["paid"] == 0
    # A repeat later answers the first result and does nothing again
    again = ops.pull(path, key, body)
    assert again.status_code == 200 and again.json() == {**outcome, "replayed": True}
    # The key with another body is 409; a new key for more than is outstanding is 409 — nothing written
    assert is_problem(ops.pull(path, key, {**body, "amount": 1_000}), 409, "idempotency-key-reused")
    more = ops.pull(path, unique("cash"), {**body, "amount": 1})
    assert is_problem(more, 409, "invalid-transition") and "outstanding" in more.json()["detail"]
    assert (
        api.get(invoice["invoice_id"])["paid"] == 120_000
        and len(entries(api, invoice["invoice_id"], "paid_outside")) == 1
    )


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"amount": 0, "method": "cash", "reason": "why not"}, {}, 422),
        ({"amount": 10.5, "method": "cash", "reason": "why not"}, {}, 422),
        ({"amount": "100", "method": "cash", "reason": "why not"}, {}, 422),
        ({"amount": 100, "method": "barter", "reason": "why not"}, {}, 422),
        ({"amount": 100, "method": "cash"}, {}, 422),  # no reason
        ({"amount": 100, "method": "cash", "reason": "why not", "extra": 1}, {}, 422),
        ({"amount": 100, "method": "cash", "reason": "why not"}, {"actor": "-"}, 422),  # no X-Actor
        ({"amount": 100, "method": "cash", "reason": "why not"}, {"actor": "<script>"}, 422),
        ({"amount": 100, "method": "cash", "reason": "why not"}, {"key": None}, 422),  # no Idempotency-Key
        ({"amount": 100, "method": "cash", "reason": "why not"}, {"key": "a b"}, 422),
    ],
)
def test_bad_input_is_a_4xx_problem_and_writes_nothing(
    sandbox: Sandbox, api: Api, ops: Ops, unique: Callable[[str], str], body: Any, headers: dict[str, Any], status: int
) -> None:
    deal = sandbox.new_deal(amount=30_000)
    invoice = api.issue_awaiting(deal["id"], amount=30_000)
    before = api.get(invoice["invoice_id"])
    key = headers["key"] if "key" in headers else unique("k")
    answer = ops.pull(f"/invoices/{invoice['invoice_id']}/payments", key, body, actor=headers.get("actor"))
    assert answer.status_code == status and answer.headers["content-type"].startswith("application/problem+json")
    assert api.get(invoice["invoice_id"]) == before
    if "key" not in headers and "actor" not in headers:  # the key stayed free: the corrected request uses it
        fixed = {"amount": 100, "method": "cash", "reason": "why not"}
        assert ops.pull(f"/invoices/{invoice['invoice_id']}/payments", key, fixed).status_code == 200


def test_an_unknown_invoice_is_404_and_a_partial_manual_payment_shows_the_shortfall(
    sandbox: Sandbox, api: Api, ops: Ops, unique: Callable[[str], str]
) -> None:
    missing = ops.pull(
        f"/invoices/inv_{'a' * 26}/payments", unique("k"), {"amount": 1, "method": "other", "reason": "x y z"}
    )
    assert is_problem(missing, 404, "invoice-not-found")
    deal = sandbox.new_deal(amount=100_000)
    invoice = api.issue_awaiting(deal["id"], amount=100_000)
    body = {"amount": 40_000, "method": "bank_transfer", "reference": "п/п 55", "reason": "paid to our other account"}
    assert ops.pull(f"/invoices/{invoice['invoice_id']}/payments", unique("k"), body).status_code == 200
    assert api.wait(invoice["invoice_id"], lambda i: i["state"] == "partially_paid")["outstanding"] == 60_000
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PARTIALLY_PAID")
    # the link stays payable for the rest
    assert sandbox.pay(payment_id_of(invoice), "pay", 60_000).status_code == 200
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")


# -- reissue a link -------------------------------------------------------------------------------------------------


def expired_invoice(
    stack: Any, sandbox: Sandbox, api: Api, amount: int = 70_000
) -> tuple[dict[str, Any], dict[str, Any]]:
    deal = sandbox.new_deal(amount=amount)
    invoice = api.issue_awaiting(deal["id"], amount=amount, lifetime_seconds=2)
    assert stack.aws.reach_deadline("demo", invoice["invoice_id"])  # the deadline sweep, its clock moved
    api.wait(invoice["invoice_id"], lambda i: i["state"] == "expired", timeout=20)
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "EXPIRED")
    return deal, invoice


def test_reissuing_an_expired_link_makes_one_new_attempt_under_10_concurrent_requests(
    stack: Any, http: httpx.Client, sandbox: Sandbox, api: Api, ops: Ops, unique: Callable[[str], str]
) -> None:
    deal, invoice = expired_invoice(stack, sandbox, api)
    old_payment = payment_id_of(invoice)
    path, key = f"/invoices/{invoice['invoice_id']}/reissue", unique("again")
    # When 10 identical requests come at once
    outcome = exactly_once(ops.at_once(path, key, {"reason": "client asked for a new link"}))
    assert outcome["lever"] == "reissue" and "attempt 2" in outcome["detail"]
    # Then one new attempt: a new payment under the same invoice number, the deal shows its link
    fresh = api.wait(invoice["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    assert fresh["number"] == invoice["number"] and payment_id_of(fresh) != old_payment
    [entry] = entries(api, invoice["invoice_id"], "reissued")
    assert entry["actor"] == "ops:anna" and entry["ref"] == old_payment and "new link" in entry["detail"]
    assert len(entries(api, invoice["invoice_id"], "payment_created")) == 2
    awaiting = sandbox.wait_deal(  # the stage, then the timeline entry: wait for both (written one after the other)
        deal["id"],
        lambda d: (
            d["stage"] == "AWAITING_PAYMENT"
            and d["payment_url"] == fresh["payment_url"]
            and any("попытка 2" in t["text"] for t in d["timeline"])
        ),
    )
    assert sum("попытка 2" in t["text"] for t in awaiting["timeline"]) == 1
    # the new payment is the attempt's own order at the provider; the old one stays closed
    new_payment = http.get(f"/sandbox/psp/api/payments/{payment_id_of(fresh)}").json()
    assert new_payment["order_id"] == f"{invoice['invoice_id']}-2"
    assert http.get(f"/sandbox/psp/api/payments/{old_payment}").json()["status"] in ("canceled", "expired")
    # And the new link pays the invoice and the deal
    assert sandbox.pay(payment_id_of(fresh), "pay").status_code == 200
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    # A second reissue (another key) of the now paid invoice is refused, writing nothing
    refused = ops.pull(path, unique("again"), {"reason": "once more"})
    assert is_problem(refused, 409, "invalid-transition")
    assert len(entries(api, invoice["invoice_id"], "reissued")) == 1


def test_reissuing_a_cancelled_invoice_and_refusing_an_open_one(
    http: httpx.Client, sandbox: Sandbox, api: Api, ops: Ops, unique: Callable[[str], str]
) -> None:
    deal = sandbox.new_deal(amount=25_000)
    invoice = api.issue_awaiting(deal["id"], amount=25_000)
    path = f"/invoices/{invoice['invoice_id']}/reissue"
    # An invoice still waiting for money keeps its link: 409, nothing written
    before = api.get(invoice["invoice_id"])
    assert is_problem(ops.pull(path, unique("k"), {"reason": "just because"}), 409, "invalid-transition")
    assert api.get(invoice["invoice_id"]) == before
    # Cancelled (by the integration), then reissued by a person
    assert api.cancel(invoice["invoice_id"], "client changed their mind").status_code == 200
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "CANCELLED")
    answer = ops.pull(path, unique("k"), {"reason": "client changed their mind back", "lifetime_seconds": 3600})
    assert answer.status_code == 200, answer.text
    fresh = api.wait(invoice["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    sandbox.wait_deal(
        deal["id"], lambda d: d["stage"] == "AWAITING_PAYMENT" and d["payment_url"] == fresh["payment_url"]
    )


def test_reissue_asks_the_provider_first_and_never_reissues_an_invoice_the_provider_holds_money_for(
    http: httpx.Client, sandbox: Sandbox, api: Api, ops: Ops, unique: Callable[[str], str]
) -> None:
    deal = sandbox.new_deal(amount=40_000)
    invoice = api.issue_awaiting(deal["id"], amount=40_000)
    # Given the payer paid a part on the link and its notification was lost, then the invoice was cancelled
    assert http.post("/sandbox/psp/api/faults", json={"lose_notification": 1}).status_code == 200
    assert sandbox.pay(payment_id_of(invoice), "part", 10_000).status_code == 200
    assert api.cancel(invoice["invoice_id"], "client changed their mind").status_code == 200
    assert api.get(invoice["invoice_id"])["paid"] == 0  # we do not know of the money yet
    # When a person asks for a new link — Then the provider is asked first: the money is recorded, no new link
    refused = ops.pull(f"/invoices/{invoice['invoice_id']}/reissue", unique("k"), {"reason": "new link please"})
    assert is_problem(refused, 409, "invalid-transition") and "holds 100.00 RUB" in refused.json()["detail"]
    after = api.get(invoice["invoice_id"])
    assert after["paid"] == 10_000 and after["payment_id"] == invoice["payment_id"]
    assert entries(api, invoice["invoice_id"], "reissued") == []
    [learnt] = entries(api, invoice["invoice_id"], "money_received")
    assert learnt["actor"] == "ops:anna"


# -- re-sync a deal -------------------------------------------------------------------------------------------------


def test_resyncing_a_deal_writes_it_again_once_under_10_concurrent_requests(
    http: httpx.Client, sandbox: Sandbox, api: Api, ops: Ops, unique: Callable[[str], str]
) -> None:
    deal = sandbox.new_deal(amount=60_000)
    invoice = api.issue_awaiting(deal["id"], amount=60_000)
    assert sandbox.pay(payment_id_of(invoice), "pay").status_code == 200
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    # Given someone moved the deal by hand in the CRM
    moved = http.patch(f"{sandbox.crm}/deals/{deal['id']}", json={"stage": "NEW"}, headers=sandbox.auth)
    assert moved.status_code == 200 and sandbox.deal(deal["id"])["stage"] == "NEW"
    # When 10 identical re-syncs come at once
    outcome = exactly_once(
        ops.at_once(f"/deals/{deal['id']}/resync", unique("sync"), {"reason": "deal was moved by hand"})
    )
    assert outcome["lever"] == "deal_resync" and [i["invoice_id"] for i in outcome["invoices"]] == [
        invoice["invoice_id"]
    ]
    # Then the deal shows the invoice again, with one timeline entry; the audit names who and why once
    synced = sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    poll(
        "the re-sync comment",
        lambda: sandbox.deal(deal["id"]),
        lambda d: any("сверена" in t["text"] for t in d["timeline"]),
        10,
    )
    [entry] = entries(api, invoice["invoice_id"], "deal_resynced")
    assert entry["actor"] == "ops:anna" and entry["detail"] == "deal was moved by hand"
    synced = sandbox.deal(deal["id"])
    assert sum("сверена" in t["text"] for t in synced["timeline"]) == 1
    # A deal without invoices is 404, nothing written
    assert is_problem(
        ops.pull("/deals/no-such-deal/resync", unique("sync"), {"reason": "check it"}), 404, "deal-has-no-invoices"
    )


# -- decide a bank line ---------------------------------------------------------------------------------------------


@pytest.fixture
def bank_ops(http: httpx.Client) -> Ops:
    return Ops(http, tenant="bank-shop", actor="boris")


def review_line(http: httpx.Client, amount: int, purpose: str, number: str) -> tuple[str, bytes]:
    """A transfer no invoice can be found for, uploaded: its fingerprint on the review list, and the file."""
    rubles = f"{amount // 100}.{amount % 100:02d}"
    data = statement_1c([incoming(number, rubles, purpose)])
    answer = upload(http, data)
    assert answer.status_code == 200 and answer.json()["needs_a_person"] == 1, answer.text
    return str(answer.json()["records"][0]["fingerprint"]), data


def in_review(http: httpx.Client, fingerprint: str, api_key: str = OPS_KEY) -> bool:
    lines = http.get("/bank/bank-shop/review", headers={"x-api-key": api_key}).json()["lines"]
    return any(line["decision"]["fingerprint"] == fingerprint for line in lines)


def test_a_bank_line_assigned_by_a_person_pays_once_under_10_concurrent_requests(
    http: httpx.Client, bank_ops: Ops, unique: Callable[[str], str]
) -> None:
    api, crm = Api(http, tenant="bank-shop"), Sandbox(http, tenant="bank-shop", crm_token="sandbox-crm-token-bank-shop")
    deal_a, deal_b = crm.new_deal(amount=30_000), crm.new_deal(amount=50_000)
    a = api.issue_awaiting(deal_a["id"], amount=30_000)
    b = api.issue_awaiting(deal_b["id"], amount=50_000)
    fingerprint, data = review_line(http, 80_000, f"Оплата за поставку {unique('p')}, без номера", unique("7"))
    assert in_review(http, fingerprint) and in_review(http, fingerprint, API_KEY)
    path = f"/bank/review/{fingerprint}/resolve"
    # More than the line is refused, writing nothing
    too_much = {
        "assign": [
            {"invoice_id": a["invoice_id"], "amount": 30_000},
            {"invoice_id": b["invoice_id"], "amount": 50_001},
        ],
        "reason": "two invoices in one transfer",
    }
    assert is_problem(bank_ops.pull(path, unique("k"), too_much), 422, "lever-invalid")
    assert api.get(a["invoice_id"])["paid"] == 0 and in_review(http, fingerprint)
    # When 10 identical assignments come at once
    body = {
        "assign": [
            {"invoice_id": a["invoice_id"], "amount": 30_000},
            {"invoice_id": b["invoice_id"], "amount": 50_000},
        ],
        "reason": "the client confirmed both invoices by phone",
    }
    key = unique("k")
    outcome = exactly_once(bank_ops.at_once(path, key, body))
    assert outcome["actor"] == "ops:boris" and len(outcome["invoices"]) == 2
    # Then each invoice is paid once, audited, the deals are paid, and the line left the review list
    for invoice, deal in ((a, deal_a), (b, deal_b)):
        paid = api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")
        assert paid["paid"] == invoice["amount"]
        [entry] = entries(api, invoice["invoice_id"], "money_received")
        assert entry["actor"] == "ops:boris" and "confirmed both invoices" in entry["detail"]
        assert entry["ref"] == f"bank:{fingerprint}"
        crm.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    assert not in_review(http, fingerprint)
    # The same file read again counts nothing; another person (another key) cannot decide it again
    again_read = upload(http, data).json()
    assert (again_read["duplicates"], again_read["applied"], again_read["needs_a_person"]) == (1, 0, 0)
    assert api.get(a["invoice_id"])["paid"] == 30_000 and not in_review(http, fingerprint)
    again = bank_ops.pull(path, unique("k"), {"dismiss": {"reason": "not ours after all"}})
    assert is_problem(again, 409, "invalid-transition") and "ops:boris" in again.json()["detail"]


def test_a_dismissed_bank_line_leaves_the_review_list_with_who_and_why(
    http: httpx.Client, bank_ops: Ops, unique: Callable[[str], str]
) -> None:
    fingerprint, _ = review_line(http, 12_345, f"Возврат займа {unique('z')}", unique("8"))
    path = f"/bank/review/{fingerprint}/resolve"
    for bad in (
        {},
        {"dismiss": {"reason": "x"}},
        {"assign": [], "reason": "nothing"},
        {"dismiss": {"reason": "loan"}, "reason": "both"},
    ):
        assert bank_ops.pull(path, unique("k"), bad).status_code == 422
    assert in_review(http, fingerprint)
    outcome = exactly_once(bank_ops.at_once(path, unique("k"), {"dismiss": {"reason": "a loan repaid, not a sale"}}))
    assert outcome["detail"].startswith("dismissed 123.45") and outcome["invoices"] == []
    assert not in_review(http, fingerprint)
    unknown = bank_ops.pull("/bank/review/" + "f" * 32 + "/resolve", unique("k"), {"dismiss": {"reason": "loan"}})
    assert is_problem(unknown, 404, "bank-line-not-found")
    assert ACCOUNT  # the fake bank's account the lines came to


# -- list invoices ----------------------------------------------------------------------------------------------------


def test_invoices_are_listed_by_state_age_and_deal(
    sandbox: Sandbox, api: Api, ops: Ops, unique: Callable[[str], str]
) -> None:
    deal = sandbox.new_deal(amount=10_000)
    first = api.issue_awaiting(deal["id"], amount=10_000)
    second_created = api.create(deal_id=deal["id"], number=unique("N2-"), amount=5_000)
    assert second_created.status_code == 201
    second = api.wait(second_created.json()["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    by_deal = ops.list(deal_id=deal["id"])
    assert by_deal.status_code == 200, by_deal.text
    assert [i["invoice_id"] for i in by_deal.json()["invoices"]] == [first["invoice_id"], second["invoice_id"]]
    assert all(not i["stuck"] and i["age_seconds"] >= 0 for i in by_deal.json()["invoices"])
    assert ops.list(deal_id=deal["id"], state="paid").json()["count"] == 0
    # by state, oldest first, and only those older than asked
    waiting = ops.list(state="awaiting_payment,partially_paid", limit=200).json()["invoices"]
    created = [i["created_at"] for i in waiting if not i["stuck"]]
    assert created == sorted(created) and {first["invoice_id"], second["invoice_id"]} <= {
        i["invoice_id"] for i in waiting
    }
    old = ops.list(state="awaiting_payment", older_than="1d").json()["invoices"]
    assert first["invoice_id"] not in {i["invoice_id"] for i in old}
    assert is_problem(ops.list(state="lost"), 400, "bad-request")
    assert ops.list(older_than="soon").status_code == 422
