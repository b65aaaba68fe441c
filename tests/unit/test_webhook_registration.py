"""`paybridge webhooks register`: the CRM calls in each CRM's documented wire format (respx stands in for the portal
and the account) — Bitrix24 `event.get` + `event.bind` (stage trigger) and `bizproc.robot.list` + `bizproc.robot.add`
(robot), only for an application; amoCRM `GET` + `POST /api/v4/webhooks` — registering once, and the exact steps for
every cabinet without an API."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import respx

from paybridge.adapters.crm.bitrix24 import Bitrix24
from paybridge.tenants import TenantConfig
from scripts.cli.webhooks import register
from tests.conftest import CountingThrottle
from tests.unit import test_amocrm_contract as amo
from tests.unit import test_bitrix24_contract as bx
from tests.unit.test_cli import ACME

HANDLER = "https://api.example/crm/acme/bitrix24"


def bitrix_app(**overrides: Any) -> Bitrix24:
    settings = bx.oauth_settings(**overrides)
    return Bitrix24(settings, bx.APP_TOKEN, bx.OAUTH_BASE, access=lambda: "access-1", throttle=CountingThrottle())


def sent(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


class TestBitrix24:
    def test_a_stage_trigger_binds_the_deal_update_event_once(self) -> None:
        with respx.mock(base_url=bx.OAUTH_BASE) as portal:
            listed = portal.post("event.get.json").mock(
                side_effect=[
                    httpx.Response(
                        200, json={"result": [{"event": "ONAPPUNINSTALL", "handler": "x", "auth_type": "0"}]}
                    ),
                    httpx.Response(
                        200, json={"result": [{"event": "ONCRMDEALUPDATE", "handler": HANDLER, "auth_type": "0"}]}
                    ),
                ]
            )
            bind = portal.post("event.bind.json").mock(return_value=httpx.Response(200, json={"result": True}))
            crm = bitrix_app()
            assert crm.register_webhooks(HANDLER) == [f"ONCRMDEALUPDATE → {HANDLER}: bound (event.bind)"]
            assert sent(bind) == {"event": "ONCRMDEALUPDATE", "handler": HANDLER, "auth": "access-1"}
            assert sent(listed) == {"auth": "access-1"}
            # Registering again finds it bound and binds nothing
            assert crm.register_webhooks(HANDLER) == [f"ONCRMDEALUPDATE → {HANDLER}: bound already"]
            assert bind.call_count == 1

    def test_a_robot_trigger_adds_the_robot_once(self) -> None:
        robot = {"kind": "robot", "code": bx.ROBOT_CODE}
        with respx.mock(base_url=bx.OAUTH_BASE) as portal:
            portal.post("bizproc.robot.list.json").mock(
                side_effect=[
                    httpx.Response(200, json={"result": []}),
                    httpx.Response(200, json={"result": [bx.ROBOT_CODE]}),
                ]
            )
            add = portal.post("bizproc.robot.add.json").mock(return_value=httpx.Response(200, json={"result": True}))
            crm = bitrix_app(trigger=robot)
            assert crm.register_webhooks(HANDLER) == [f"robot {bx.ROBOT_CODE} → {HANDLER}: added (bizproc.robot.add)"]
            body = sent(add)
            assert body["CODE"] == bx.ROBOT_CODE and body["HANDLER"] == HANDLER and body["AUTH_USER_ID"] == 1
            assert body["USE_SUBSCRIPTION"] == "N" and body["NAME"]["ru"]
            assert crm.register_webhooks(HANDLER) == [f"robot {bx.ROBOT_CODE}: installed already (its handler is kept)"]
            assert add.call_count == 1

    def test_a_refused_bind_is_an_error_not_a_success(self) -> None:
        from paybridge.adapters.errors import CrmRejected

        with respx.mock(base_url=bx.OAUTH_BASE) as portal:
            portal.post("event.get.json").mock(return_value=httpx.Response(200, json={"result": []}))
            portal.post("event.bind.json").mock(
                return_value=httpx.Response(403, json={"error": "insufficient_scope", "error_description": "no"})
            )
            with pytest.raises(CrmRejected, match="insufficient_scope"):
                bitrix_app().register_webhooks(HANDLER)

    def test_an_incoming_webhook_portal_has_no_api_for_it_so_the_steps_are_printed(self) -> None:
        with respx.mock(base_url=bx.HOOK) as portal:  # nothing is called
            assert bx.adapter().register_webhooks(HANDLER) is None
            assert not portal.calls
        steps = bx.settings().webhook_steps(HANDLER, {"crm.application_token": "paybridge/prod/acme/crm/app"})
        assert any(HANDLER in s and "ONCRMDEALUPDATE" in s and "Исходящий вебхук" in s for s in steps)
        assert any("paybridge/prod/acme/crm/app" in s for s in steps)


class TestAmoCrm:
    def test_the_status_webhook_is_registered_once_with_our_token_in_the_url(self) -> None:
        with respx.mock(base_url=amo.BASE) as account:
            found = account.get("/api/v4/webhooks").mock(side_effect=[httpx.Response(204)])
            add = account.post("/api/v4/webhooks").mock(
                return_value=httpx.Response(200, json={"id": 1, "destination": "x", "settings": ["status_lead"]})
            )
            lines = amo.adapter().register_webhooks(HANDLER)
            assert lines == [f"webhook {HANDLER}?token=… (status_lead): registered (POST /api/v4/webhooks)"]
            destination = f"{HANDLER}?token={amo.WEBHOOK_TOKEN}"
            assert sent(add) == {"destination": destination, "settings": ["status_lead"]}
            request = found.calls[0].request
            assert parse_qs(urlparse(str(request.url)).query) == {"filter[destination]": [destination]}
            assert request.headers["Authorization"] == f"Bearer {amo.TOKEN}"
            assert amo.WEBHOOK_TOKEN not in " ".join(lines)

    def test_an_existing_webhook_is_not_registered_again(self) -> None:
        destination = f"{HANDLER}?token={amo.WEBHOOK_TOKEN}"
        hook = {"id": 7, "destination": destination, "settings": ["status_lead", "update_lead"], "disabled": False}
        with respx.mock(base_url=amo.BASE, assert_all_called=False) as account:
            account.get("/api/v4/webhooks").mock(
                return_value=httpx.Response(200, json={"_total_items": 1, "_embedded": {"webhooks": [hook]}})
            )
            add = account.post("/api/v4/webhooks")
            assert amo.adapter().register_webhooks(HANDLER) == [
                f"webhook {HANDLER}?token=… (status_lead): registered already"
            ]
            assert not add.called


def test_register_covers_every_part_of_a_tenant_registering_or_printing_steps() -> None:
    """ACME: Stripe (a cabinet: steps naming the events and the webhook secret) and amoCRM (an API: registered)."""

    class Registering:
        def __init__(self) -> None:
            self.urls: list[str] = []

        def register_webhooks(self, url: str) -> list[str]:
            self.urls.append(url)
            return ["registered"]

    crm = Registering()
    tenant = TenantConfig.model_validate(ACME)
    entries = {e["part"]: e for e in register(tenant, "https://api.example/", "prod", lambda _: crm)}
    assert crm.urls == ["https://api.example/crm/acme/amocrm"]
    assert entries["crm"]["registered"] == ["registered"] and entries["crm"]["steps"] == []
    psp = entries["psp"]
    assert psp["url"] == "https://api.example/psp/acme/stripe" and psp["registered"] == []
    assert any("checkout.session.completed" in s and "refund.updated" in s for s in psp["steps"])
    assert any("paybridge/prod/acme/psp/webhook_secret" in s for s in psp["steps"])


@pytest.mark.parametrize(
    ("psp", "expected"),
    [
        ({"provider": "yookassa", "shop_id": "506751", "secret_key": {"secret_name": "s"}}, "HTTP-уведомления"),
        ({"provider": "tbank", "terminal_key": "T1", "password": {"secret_name": "s"}}, "nothing to register"),
    ],
)
def test_each_psp_says_what_its_cabinet_needs(psp: dict[str, Any], expected: str) -> None:
    tenant = TenantConfig.model_validate({**ACME, "psp": psp, "currency": "RUB"})
    entries = {e["part"]: e for e in register(tenant, "https://api.example", "prod", lambda _: object())}
    assert any(expected in s for s in entries["psp"]["steps"])
    assert entries["crm"]["steps"]  # a CRM adapter without register_webhooks: its steps (or the note) are printed
