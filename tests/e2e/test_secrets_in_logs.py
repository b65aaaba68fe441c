"""No secret in any log line (issue 13): the demo, a Bitrix24 OAuth refresh, a Bitrix24 incoming-webhook tenant and
a bank poll run at DEBUG; every line that our loggers, Powertools and httpx write goes through the redacting
formatter. The same lines captured *without* it show the secrets — so the scenario really logs them and the
assertion can fail."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from paybridge import redaction
from paybridge.observability import logger as powertools_logger
from tests.conftest import API_KEY
from tests.e2e.test_crms import BX, Bitrix

pytestmark = pytest.mark.e2e
CUSTOMER_EMAIL = "secret.client@example.ru"
CUSTOMER_PHONE = "+79165550123"


def configured_secrets() -> set[str]:
    """Every inline secret of the shipped tenants file (`{"value": …}`), with the local URL substituted."""
    import os

    from devstack.stack import DEFAULT_TENANTS

    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"value"} and isinstance(node["value"], str):
                found.add(node["value"].replace("${PAYBRIDGE_LOCAL_URL}", os.environ["PAYBRIDGE_LOCAL_URL"]))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(json.loads(DEFAULT_TENANTS.read_text(encoding="utf-8")))
    return found


@pytest.fixture
def captured(stack: Any) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """(redacted, raw): two handlers at DEBUG on the root, Powertools and httpx loggers; only the first protected."""
    redacted_out, raw_out = io.StringIO(), io.StringIO()
    protected, raw = logging.StreamHandler(redacted_out), logging.StreamHandler(raw_out)
    for handler in (protected, raw):
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    redaction.protect(protected)
    targets = [logging.getLogger(), logging.getLogger(powertools_logger.name), logging.getLogger("httpx")]
    levels = [t.level for t in targets]
    for target in targets:
        target.setLevel(logging.DEBUG)
        target.addHandler(protected)
        target.addHandler(raw)
    try:
        yield redacted_out, raw_out
    finally:
        for target, level in zip(targets, levels, strict=True):
            target.removeHandler(protected)
            target.removeHandler(raw)
            target.setLevel(level)


def test_demo_oauth_refresh_webhook_crm_and_bank_poll_log_no_secret(
    stack: Any, http: httpx.Client, sandbox: Any, captured: tuple[io.StringIO, io.StringIO]
) -> None:
    from devstack.demo import run_demo
    from paybridge.wiring import get_banking

    redacted, raw = captured
    # Given the demo (API key, sandbox PSP and CRM), with a customer who has an e-mail and a phone
    assert run_demo(stack.url, out=lambda _line: None)["final_state"] == "paid"
    answer = http.post(
        "/v1/demo/invoices",
        headers={"X-Api-Key": API_KEY},
        json={
            "deal_id": str(sandbox.new_deal(12_300)["id"]),
            "number": "LOG-1",
            "amount": 12_300,
            "customer": {"name": "Иван", "email": CUSTOMER_EMAIL, "phone": CUSTOMER_PHONE},
        },
    )
    assert answer.status_code == 201, answer.text
    # And a Bitrix24 OAuth app whose access tokens the portal has just expired: the next call refreshes the pair
    fake = stack.fakes["bitrix24"]
    app_portal = fake.portals["bitrix-app.bitrix24.ru"]
    for token in list(app_portal.access_tokens):
        app_portal.access_tokens[token] = 0.0
    issued_before = set(app_portal.access_tokens)
    app = Bitrix(http, "bitrix-app.bitrix24.ru")
    deal = app.new_deal(45_600)
    http.post(f"{BX}/_control/deals/{deal['ID']}/robot", json={})
    app.wait(deal["ID"], lambda v: v["deal"]["STAGE_ID"] == "UC_AWAITING")
    assert set(app_portal.access_tokens) - issued_before, "the scenario must refresh the OAuth pair"
    # And a Bitrix24 incoming-webhook tenant (its secret is in the REST URL's path)
    shop = Bitrix(http, "bitrix-shop.bitrix24.ru")
    shop_deal = shop.new_deal(7_800)
    shop.move(shop_deal["ID"], "PREPAYMENT_INVOICE")
    shop.wait(shop_deal["ID"], lambda v: bool(v["deal"].get("UF_CRM_PAYBRIDGE_LINK")))
    # And a bank poll (Bearer token)
    get_banking().poll("bank-shop", datetime.now(UTC), force=True)

    secrets = configured_secrets() | {API_KEY, CUSTOMER_EMAIL, CUSTOMER_PHONE}
    secrets |= set(app_portal.access_tokens) | set(app_portal.refresh_tokens)
    secrets = {s for s in secrets if len(s) >= redaction.MIN_SECRET_LENGTH}
    raw_text, text = raw.getvalue(), redacted.getvalue()
    # The raw lines carry secrets (the OAuth refresh URL, the webhook URL, the e-mail …): the check below is real
    leaked_raw = sorted(s for s in secrets if s in raw_text)
    assert len(leaked_raw) >= 3, leaked_raw
    assert len(text.splitlines()) > 100
    # Then none of them is in what is actually written
    leaked = sorted(s for s in secrets if s in text)
    assert leaked == [], leaked
