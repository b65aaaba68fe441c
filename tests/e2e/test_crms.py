"""End to end with real CRM adapters against local fakes of their APIs (devstack/fakes/bitrix24.py, amocrm.py): the
CRM's own event issues the invoice, every write goes through the outbox (SQS FIFO on moto) within the CRM's rate
limit, the deal follows the money, nothing is lost or applied twice, order per deal is kept."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import httpx
import pytest

from paybridge.domain.invoice import invoice_id_for
from tests.conftest import Api, Sandbox, poll

BX = "/fake/bitrix24"
BX_STAGES = {"awaiting": "UC_AWAITING", "paid": "WON", "partial": "UC_PARTIAL"}


class Bitrix:
    def __init__(self, http: httpx.Client, portal: str):
        self.http, self.portal = http, portal

    def new_deal(self, amount: int, number: str | None = None, **extra: Any) -> dict[str, Any]:
        fields = {"UF_CRM_INVOICE_NUMBER": number} if number else {}
        body = {"portal": self.portal, "amount": amount, "fields": fields, **extra}
        body.setdefault("contact", {"name": "Анна", "email": "anna@example.com", "phone": "8 (912) 345-67-89"})
        return dict(self.http.post(f"{BX}/_control/deals", json=body).json()["deal"])

    def view(self, deal_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"{BX}/_control/deals/{deal_id}").json())

    def wait(self, deal_id: str, predicate: Any, timeout: float = 20) -> dict[str, Any]:
        return poll(f"bitrix24 deal {deal_id}", lambda: self.view(deal_id), predicate, timeout)

    def move(self, deal_id: str, stage_id: str) -> None:
        self.http.post(f"{BX}/_control/deals/{deal_id}/stage", json={"stage_id": stage_id})

    def stats(self) -> dict[str, int]:
        return dict(self.http.get(f"{BX}/_control/stats").json()[self.portal])

    def answers(self, deal_id: str) -> list[dict[str, Any]]:
        """Our answers to the portal's events and robot calls about this deal."""
        found = []
        for delivery in self.http.get(f"{BX}/_control/deliveries").json():
            form = dict(urllib.parse.parse_qsl(delivery["body"]))
            ids = (form.get("data[FIELDS][ID]"), form.get("document_id[2]", "").removeprefix("DEAL_"))
            if deal_id in ids and form.get("auth[domain]") == self.portal:
                found.append({"form": form, **delivery})
        return found


@pytest.fixture
def bitrix(http: httpx.Client) -> Bitrix:
    return Bitrix(http, "bitrix-shop.bitrix24.ru")


def pay_link(sandbox: Sandbox, link: str, amount: int | None = None) -> None:
    payment_id = link.rsplit("/", 1)[-1]
    answer = sandbox.pay(payment_id, "pay" if amount is None else "part", amount)
    assert answer.status_code == 200, answer.text


def test_bitrix24_stage_trigger_issues_once_and_the_deal_follows_the_money(
    http: httpx.Client, bitrix: Bitrix, sandbox: Sandbox, unique: Any
) -> None:
    number = unique("BX-")
    deal = bitrix.new_deal(150_050, number=number)
    # The manager moves the deal to "invoice" (the tenant's trigger stage): Bitrix24 raises ONCRMDEALUPDATE at us
    bitrix.move(deal["ID"], "PREPAYMENT_INVOICE")
    published = bitrix.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "UC_AWAITING" and v["timeline"])
    link = published["deal"]["UF_CRM_PAYBRIDGE_LINK"]
    assert link.startswith("http") and f"№ {number}" in published["timeline"][0]["COMMENT"]
    assert "1 500.50 RUB" in published["timeline"][0]["COMMENT"]

    pay_link(sandbox, link)
    paid = bitrix.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "WON" and len(v["timeline"]) == 2)
    assert "оплачен" in paid["timeline"][1]["COMMENT"]
    # Our own crm.deal.update raised ONCRMDEALUPDATE twice more (the echo): answered 200, ignored, nothing issued
    answers = poll(
        "answered events",
        lambda: {"a": [a for a in bitrix.answers(deal["ID"]) if a["delivered"]]},
        lambda v: len(v["a"]) >= 3,
        10,
    )["a"]
    # Each event was accepted: the manager's as a check, read in a batch from the outbox; the echoes known as ours
    assert [json.loads(a["attempts"][-1]["body"])["status"] for a in answers] == ["accepted"] * len(answers)
    # Applied once each, in order
    assert paid["writes"] == [
        "stage:UC_AWAITING",
        f"comment:{paid['timeline'][0]['COMMENT']}",
        "stage:WON",
        f"comment:{paid['timeline'][1]['COMMENT']}",
    ]
    # One invoice for the deal and its number, paid
    invoice = Api(http, tenant="bitrix-shop").get(invoice_id_for("bitrix-shop", deal["ID"], number))
    assert invoice["state"] == "paid" and invoice["paid"] == 150_050


def test_bitrix24_partial_payment_notifies_the_responsible_manager(
    stack: Any, bitrix: Bitrix, sandbox: Sandbox, unique: Any
) -> None:
    deal = bitrix.new_deal(100_000, number=unique("BXP-"), assigned_by_id=77)
    bitrix.move(deal["ID"], "PREPAYMENT_INVOICE")
    link = bitrix.wait(deal["ID"], lambda v: v["deal"].get("UF_CRM_PAYBRIDGE_LINK"))["deal"]["UF_CRM_PAYBRIDGE_LINK"]
    pay_link(sandbox, link, 40_000)
    partial = bitrix.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "UC_PARTIAL" and len(v["timeline"]) == 2)
    assert "не хватает 600.00 RUB" in partial["timeline"][1]["COMMENT"]
    fake = stack.fakes["bitrix24"]
    # im.notify.system.add went to the deal's responsible user (ASSIGNED_BY_ID read in the same batch)
    found = poll(
        "manager notification",
        lambda: {"n": [n for n in list(fake.notifications) if n["USER_ID"] == 77]},
        lambda v: bool(v["n"]),
        10,
    )["n"]
    assert [n["MESSAGE"] for n in found] == [partial["timeline"][1]["COMMENT"]]


def test_bitrix24_robot_on_an_oauth_app_refreshes_its_token_once_and_issues(http: httpx.Client) -> None:
    app = Bitrix(http, "bitrix-app.bitrix24.ru")
    deal = app.new_deal(99_900)
    http.post(f"{BX}/_control/deals/{deal['ID']}/robot", json={})
    published = app.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "UC_AWAITING" and v["timeline"])
    assert "999.00 RUB" in published["timeline"][0]["COMMENT"]
    # A robot with another code asks nothing
    http.post(f"{BX}/_control/deals/{deal['ID']}/robot", json={"code": "someone_elses_robot"})
    answers = poll(
        "robot answers",
        lambda: {"a": [a for a in app.answers(deal["ID"]) if a["delivered"] and "code" in a["form"]]},
        lambda v: len(v["a"]) == 2,
        10,
    )["a"]
    assert sorted(json.loads(a["attempts"][-1]["body"])["status"] for a in answers) == ["ignored", "issued"]


def test_bitrix24_event_with_a_wrong_application_token_is_401_and_writes_nothing(
    http: httpx.Client, bitrix: Bitrix
) -> None:
    deal = bitrix.new_deal(10_000)
    form = {
        "event": "ONCRMDEALUPDATE",
        "data[FIELDS][ID]": deal["ID"],
        "auth[domain]": bitrix.portal,
        "auth[application_token]": "forged-token",
    }
    answer = http.post("/crm/bitrix-shop/bitrix24", data=form)
    assert answer.status_code == 401 and answer.json()["type"].endswith("/invalid-signature")
    form["auth[application_token]"] = "bitrix-shop-application-token"
    form["auth[domain]"] = "evil.bitrix24.ru"
    assert http.post("/crm/bitrix-shop/bitrix24", data=form).status_code == 401
    time.sleep(0.3)
    assert bitrix.view(deal["ID"])["writes"] == []


def test_bitrix24_outage_loses_nothing_duplicates_nothing_and_keeps_order(
    http: httpx.Client, bitrix: Bitrix, sandbox: Sandbox, unique: Any
) -> None:
    deals = [bitrix.new_deal(20_000 + i, number=unique("BXO-")) for i in range(4)]
    for deal in deals:
        bitrix.move(deal["ID"], "PREPAYMENT_INVOICE")
    links = [
        bitrix.wait(d["ID"], lambda v: v["deal"].get("UF_CRM_PAYBRIDGE_LINK"))["deal"]["UF_CRM_PAYBRIDGE_LINK"]
        for d in deals
    ]
    # The portal goes down; meanwhile every client pays
    http.post(f"{BX}/_control/outage", json={"seconds": 3})
    for link in links:
        pay_link(sandbox, link)
    time.sleep(1)
    assert all(bitrix.view(d["ID"])["deal"]["STAGE_ID"] == "UC_AWAITING" for d in deals)  # not yet: it is down
    for deal in deals:
        final = bitrix.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "WON" and len(v["timeline"]) == 2, 40)
        assert final["writes"] == [
            "stage:UC_AWAITING",
            f"comment:{final['timeline'][0]['COMMENT']}",
            "stage:WON",
            f"comment:{final['timeline'][1]['COMMENT']}",
        ]
    assert bitrix.stats()["rejected_by_outage"] > 0


def test_bitrix24_rate_limit_is_respected_by_every_request(http: httpx.Client, bitrix: Bitrix, unique: Any) -> None:
    # Some traffic of its own (an event, a check, an outbox batch), on top of whatever other tests sent this portal
    deal = bitrix.new_deal(10_000, number=unique("BXR-"))
    bitrix.move(deal["ID"], "PREPAYMENT_INVOICE")
    bitrix.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "UC_AWAITING" and v["timeline"])
    # The portal's leaky bucket never had to refuse one of our requests: each took a token from the shared limiter
    stats = bitrix.stats()
    assert stats["requests"] > 0 and stats["rejected_by_limit"] == 0
    assert stats["calls"] > stats["requests"]  # batching: more calls than requests


# -- amoCRM ------------------------------------------------------------------------------------------------------------

AMO = "/fake/amocrm"
AMO_TRIGGER, AMO_AWAITING, AMO_PARTIAL, AMO_PAID = 61000001, 61000002, 61000003, 142


class Amo:
    def __init__(self, http: httpx.Client):
        self.http = http

    def new_lead(self, price: int, number: str, **extra: Any) -> dict[str, Any]:
        body = {"name": f"Сделка {number}", "price": price, "status_id": 61000000, "invoice_number": number}
        body["contact"] = {"name": "Олег", "email": "oleg@example.com", "phone": "+79991234567"}
        return dict(self.http.post(f"{AMO}/_control/leads", json={**body, **extra}).json())

    def view(self, lead_id: int) -> dict[str, Any]:
        return dict(self.http.get(f"{AMO}/_control/leads/{lead_id}").json())

    def wait(self, lead_id: int, predicate: Any, timeout: float = 20) -> dict[str, Any]:
        return poll(f"amoCRM lead {lead_id}", lambda: self.view(lead_id), predicate, timeout)

    def move(self, lead_id: int, status_id: int) -> None:
        self.http.post(f"{AMO}/_control/leads/{lead_id}/status", json={"status_id": status_id})

    def answers(self, lead_id: int) -> list[dict[str, Any]]:
        found = []
        for delivery in self.http.get(f"{AMO}/_control/deliveries").json():
            form = dict(urllib.parse.parse_qsl(delivery["body"]))
            if form.get("leads[status][0][id]") == str(lead_id) and delivery["delivered"]:
                found.append({"form": form, **delivery})
        return found


@pytest.fixture
def amo(http: httpx.Client) -> Amo:
    return Amo(http)


def test_amocrm_status_trigger_issues_once_and_the_lead_follows_the_money(
    amo: Amo, sandbox: Sandbox, unique: Any
) -> None:
    number = unique("AMO-")
    lead = amo.new_lead(2_500, number)  # amoCRM prices are whole rubles
    amo.move(lead["id"], AMO_TRIGGER)
    published = amo.wait(lead["id"], lambda v: v["status_id"] == AMO_AWAITING and v["notes"])
    assert published["payment_link"] and f"№ {number}" in published["notes"][0]["params"]["text"]
    assert "2 500.00 RUB" in published["notes"][0]["params"]["text"]
    pay_link(sandbox, published["payment_link"])
    paid = amo.wait(lead["id"], lambda v: v["status_id"] == AMO_PAID and len(v["notes"]) == 2)
    assert "оплачен" in paid["notes"][1]["params"]["text"]
    # Our PATCHes raised status webhooks (echo): answered 200 and ignored; one invoice only
    answers = poll("answers", lambda: {"a": amo.answers(lead["id"])}, lambda v: len(v["a"]) >= 3, 10)["a"]
    statuses = [json.loads(a["attempts"][-1]["body"])["status"] for a in answers]
    assert statuses.count("issued") == 1 and set(statuses) <= {"issued", "ignored"}


def test_amocrm_partial_payment_sets_a_task_for_the_responsible_manager(
    amo: Amo, sandbox: Sandbox, unique: Any
) -> None:
    lead = amo.new_lead(1_000, unique("AMP-"), responsible_user_id=4242)
    amo.move(lead["id"], AMO_TRIGGER)
    link = amo.wait(lead["id"], lambda v: v["payment_link"])["payment_link"]
    pay_link(sandbox, link, 30_000)
    partial = amo.wait(lead["id"], lambda v: v["status_id"] == AMO_PARTIAL and v["tasks"])
    task = partial["tasks"][0]
    assert task["responsible_user_id"] == 4242 and "не хватает 700.00 RUB" in task["text"]


def test_amocrm_webhook_without_our_token_or_from_another_account_is_401(http: httpx.Client, amo: Amo) -> None:
    lead = amo.new_lead(500, "AMX-1")
    form = {
        "leads[status][0][id]": str(lead["id"]),
        "leads[status][0][status_id]": str(AMO_TRIGGER),
        "leads[status][0][pipeline_id]": "7000001",
        "account[subdomain]": "amoshop",
        "account[id]": "1",
    }
    assert http.post("/crm/amo-shop/amocrm", data=form).status_code == 401
    assert http.post("/crm/amo-shop/amocrm?token=wrong-token", data=form).status_code == 401
    other = {**form, "account[subdomain]": "someone-else"}
    assert http.post("/crm/amo-shop/amocrm?token=amo-shop-webhook-token", data=other).status_code == 401
    time.sleep(0.3)
    assert amo.view(lead["id"])["notes"] == [] and not amo.view(lead["id"])["payment_link"]


def test_amocrm_revoked_access_token_is_refreshed_once_and_the_write_lands(
    http: httpx.Client, amo: Amo, unique: Any
) -> None:
    lead = amo.new_lead(700, unique("AMR-"))
    http.post(f"{AMO}/_control/faults", json={"unauthorized": 1})  # the next API call is answered 401
    amo.move(lead["id"], AMO_TRIGGER)
    published = amo.wait(lead["id"], lambda v: v["status_id"] == AMO_AWAITING and v["notes"])
    assert len(published["notes"]) == 1


def test_amocrm_outage_loses_nothing_and_duplicates_nothing(
    http: httpx.Client, amo: Amo, sandbox: Sandbox, unique: Any
) -> None:
    leads = [amo.new_lead(300 + i, unique("AMO-O-")) for i in range(3)]
    for lead in leads:
        amo.move(lead["id"], AMO_TRIGGER)
    links = [amo.wait(lead["id"], lambda v: v["payment_link"])["payment_link"] for lead in leads]
    http.post(f"{AMO}/_control/outage", json={"seconds": 3})
    for link in links:
        pay_link(sandbox, link)
    time.sleep(1)
    assert all(amo.view(lead["id"])["status_id"] == AMO_AWAITING for lead in leads)  # it is down
    for lead in leads:
        final = amo.wait(lead["id"], lambda v: v["status_id"] == AMO_PAID and len(v["notes"]) == 2, 40)
        texts = [n["params"]["text"] for n in final["notes"]]
        assert "выставлен счёт" in texts[0] and "оплачен" in texts[1]
