"""Shared fixtures: one local stack (moto + the template's routes + sandbox PSP/CRM) for the integration and
end-to-end tests, factories for deals and invoices, and `load_event()` for the sample events in `events/`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "demo-api-key"
TENANT = "demo"
CRM_TOKEN = "sandbox-crm-token-demo"
PSP_SECRET = "sandbox-psp-secret-demo"

os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    """A sample event from events/<name>.json, with top-level keys replaced by `overrides`."""
    event = json.loads((ROOT / "events" / f"{name}.json").read_text(encoding="utf-8"))
    event.update(overrides)
    return dict(event)


@pytest.fixture(scope="session")
def stack() -> Iterator[Any]:
    from devstack.stack import LocalStack

    local = LocalStack(port=0).start()
    yield local
    local.stop()


@pytest.fixture(scope="session")
def http(stack: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def poll(
    what: str, fetch: Callable[[], dict[str, Any]], predicate: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """Fetch until `predicate` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not predicate(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never matched; last seen: {value}")
        time.sleep(0.05)
        value = fetch()
    return value


class Sandbox:
    """Drives the sandbox CRM and PSP the way a manager and a client would."""

    def __init__(self, http: httpx.Client, tenant: str = TENANT, crm_token: str = CRM_TOKEN):
        self.http = http
        self.tenant = tenant
        self.crm = f"/sandbox/crm/{tenant}/api"
        self.auth = {"Authorization": f"Bearer {crm_token}"}

    def new_deal(self, amount: int = 100_000, **fields: Any) -> dict[str, Any]:
        body = {"title": "Test deal", "amount": amount, "contact": {"email": "client@example.com"}, **fields}
        response = self.http.post(f"{self.crm}/deals", json=body, headers=self.auth)
        deadline = time.monotonic() + 10
        while response.status_code == 503 and time.monotonic() < deadline:  # a CRM outage a test switched on
            time.sleep(0.1)
            response = self.http.post(f"{self.crm}/deals", json=body, headers=self.auth)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def deal(self, deal_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        response = self.http.get(f"{self.crm}/deals/{deal_id}", headers=self.auth)
        while response.status_code == 503 and time.monotonic() < deadline:  # a CRM outage a test switched on
            time.sleep(0.1)
            response = self.http.get(f"{self.crm}/deals/{deal_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def click_issue(self, deal_id: str) -> dict[str, Any]:
        return dict(self.http.post(f"{self.crm}/deals/{deal_id}/issue").json())

    def pay(self, payment_id: str, action: str = "pay", amount: int | None = None) -> httpx.Response:
        return self.http.post(
            f"/sandbox/psp/api/payments/{payment_id}/simulate", json={"action": action, "amount": amount}
        )

    def wait_deal(
        self, deal_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15
    ) -> dict[str, Any]:
        return poll(f"deal {deal_id}", lambda: self.deal(deal_id), predicate, timeout)


@pytest.fixture
def sandbox(http: httpx.Client) -> Sandbox:
    return Sandbox(http)


class Api:
    def __init__(self, http: httpx.Client, tenant: str = TENANT, api_key: str = API_KEY):
        self.http = http
        self.tenant = tenant
        self.headers = {"x-api-key": api_key}

    def create(self, **body: Any) -> httpx.Response:
        return self.http.post(f"/v1/{self.tenant}/invoices", json=body, headers=self.headers)

    def get(self, invoice_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/{self.tenant}/invoices/{invoice_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def cancel(self, invoice_id: str, reason: str = "") -> httpx.Response:
        return self.http.post(
            f"/v1/{self.tenant}/invoices/{invoice_id}/cancel", json={"reason": reason}, headers=self.headers
        )

    def wait(self, invoice_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
        return poll(f"invoice {invoice_id}", lambda: self.get(invoice_id), predicate, timeout)

    def issue_awaiting(self, deal_id: str, amount: int = 100_000, **extra: Any) -> dict[str, Any]:
        """Issue an invoice and wait until its payment link exists."""
        response = self.create(deal_id=deal_id, number=f"N-{deal_id}", amount=amount, **extra)
        assert response.status_code == 201, response.text
        invoice_id = response.json()["invoice_id"]
        return self.wait(invoice_id, lambda i: i["state"] == "awaiting_payment")


@pytest.fixture
def api(http: httpx.Client) -> Api:
    return Api(http)


_counter = iter(range(10**9))


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique ids per test, so tests sharing the session stack never collide."""
    stamp = int(time.time() * 1000) % 10**8

    def make(prefix: str = "t") -> str:
        return f"{prefix}{stamp}-{next(_counter)}"

    return make


def payment_id_of(invoice: dict[str, Any]) -> str:
    return str(invoice["payment_url"]).rsplit("/", 1)[-1]


def sandbox_notification(
    invoice: dict[str, Any], kind: str = "payment.succeeded", amount: int | None = None, **extra: Any
) -> bytes:
    """The sandbox PSP's notification of `invoice`'s payment (a fresh event and operation id each call)."""
    import uuid

    body = {
        "event_id": f"evt_{uuid.uuid4().hex[:20]}",
        "type": kind,
        "payment_id": payment_id_of(invoice),
        "order_id": invoice["invoice_id"],
        "operation_id": f"op_{uuid.uuid4().hex[:16]}",
        "amount": invoice["amount"] if amount is None else amount,
        "currency": "RUB",
        "created": int(time.time()),
        **extra,
    }
    return json.dumps(body).encode()


class CountingThrottle:
    """A CRM adapter's throttle that lets every request through and remembers each (account, limit) it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, account: str, limit: Any) -> None:
        self.calls.append((account, limit))


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A private moto account for one test (fake credentials, no profile): yields boto3, inside `mock_aws`."""
    import boto3
    from moto import mock_aws

    for name, value in {
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3


def new_table(boto3: Any, prefix: str) -> tuple[Any, str]:
    """A fresh table shaped as template.yaml declares it (in the `moto_aws` account): (client, name)."""
    import uuid

    from devstack.template import load_template

    client = boto3.client("dynamodb", region_name="eu-central-1")
    table = f"paybridge-{prefix}-{uuid.uuid4().hex[:8]}"
    client.create_table(TableName=table, **load_template().table())
    return client, table
