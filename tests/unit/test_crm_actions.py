"""CRM action triggers: what each CRM's webhook tells (a robot run with its properties, a status), the money formats
a deal field holds, and the trigger settings a tenant may give."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from paybridge.adapters.crm.base import DealMoved
from paybridge.app.crm_actions import AmountInvalid, parse_amount
from paybridge.tenants import CrmActionTrigger
from tests.unit import test_amocrm_contract as amo
from tests.unit import test_bitrix24_contract as bx


def test_a_bitrix24_robot_of_another_code_is_a_move_with_its_run_and_properties() -> None:
    result = bx.robot_adapter().parse_webhook(bx.FORM, bx.body_of(bx.robot_form(code="paybridge_refund")), {})
    assert result.commands == ()
    (moved,) = result.moves
    assert moved.deal_id == "42" and moved.robot == "paybridge_refund" and moved.stage is None
    assert moved.run_id and moved.properties["amount"] == "1500.50"


def test_a_bitrix24_deal_event_is_a_move_whose_stage_must_be_read() -> None:
    result = bx.robot_adapter().parse_webhook(bx.FORM, bx.body_of(bx.event_form("ONCRMDEALUPDATE")), {})
    assert result.commands == () and result.moves == (DealMoved(deal_id="42"),)


def test_an_amocrm_status_webhook_names_each_lead_and_its_status() -> None:
    body = amo.webhook(amo.status_event(0, 11, 61_000_090), amo.status_event(1, 12, amo.TRIGGER))
    result = amo.adapter().parse_webhook(amo.FORM, body, amo.Q)
    assert result.moves == (DealMoved(deal_id="11", stage="61000090"), DealMoved(deal_id="12", stage=str(amo.TRIGGER)))
    assert result.commands and result.commands[0].deal_id == "12"


@pytest.mark.parametrize(
    ("text", "minor"),
    [("1500.50", 150_050), ("1 500,50", 150_050), ("1500.50|RUB", 150_050), ("300", 30_000), ("", None), (" ", None)],
)
def test_crm_money_values_in_minor_units(text: str, minor: int | None) -> None:
    assert parse_amount(text) == minor


@pytest.mark.parametrize("text", ["abc", "-5", "0", "1.005", "1e400|RUB"])
def test_a_value_that_is_no_amount_is_refused(text: str) -> None:
    with pytest.raises(AmountInvalid):
        parse_amount(text)


def test_a_trigger_names_a_stage_or_a_robot_and_only_refunds_read_an_amount() -> None:
    CrmActionTrigger(action="refund", stage="UC_REFUND", amount_field="UF_CRM_REFUND")
    for bad in (
        {"action": "refund"},
        {"action": "refund", "stage": "S", "robot": "r"},
        {"action": "reissue", "stage": "S", "amount_field": "F"},
        {"action": "payout", "stage": "S"},
    ):
        with pytest.raises(ValidationError):
            CrmActionTrigger.model_validate(bad)
