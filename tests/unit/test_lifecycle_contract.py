"""The state machine and its task functions share one typed contract (paybridge.app.lifecycle_contract): every path
the ASL reads or writes is a field of those models, and the sample task events parse with them."""

from __future__ import annotations

import copy
import json
import types
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from paybridge.app.lifecycle_contract import LifecycleState, Outcome
from paybridge.domain.invoice import Invoice, InvoiceState

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "statemachine" / "payment_lifecycle.asl.json").read_text(encoding="utf-8"))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `X | None`, `Optional[X]`; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def has_path(model: type[BaseModel], path: str) -> bool:
    """Whether `$.a.b` names a field chain of `model` (`$` alone: the whole document)."""
    assert path.startswith("$"), path
    current: type[BaseModel] | None = model
    for name in [p for p in path[1:].split(".") if p]:
        if current is None or name not in current.model_fields:
            return False
        current = _model_of(current.model_fields[name].annotation)
    return True


def asl_problems(asl: dict[str, Any]) -> list[str]:
    """Every path the ASL uses on the execution's state (or hands a task) that the contract does not define."""
    problems: list[str] = []

    def state_path(where: str, path: str) -> None:
        if path.startswith("$$."):  # the context object (the task token), not the state
            return
        if not has_path(LifecycleState, path):
            problems.append(f"{where}: {path} is not a LifecycleState field")

    for name, state in asl["States"].items():
        for choice in state.get("Choices", []):
            state_path(f"{name}.Choices", choice["Variable"])
        for key in ("InputPath", "TimeoutSecondsPath", "HeartbeatSecondsPath", "SecondsPath"):
            if key in state:
                state_path(f"{name}.{key}", state[key])
        if isinstance(state.get("ResultPath"), str):
            state_path(f"{name}.ResultPath", state["ResultPath"])
        for catch in state.get("Catch", []):
            if isinstance(catch.get("ResultPath"), str):
                state_path(f"{name}.Catch.ResultPath", catch["ResultPath"])
        parameters = state.get("Parameters", {})
        if "Payload.$" in parameters:
            state_path(f"{name}.Payload", parameters["Payload.$"])
        payload = parameters.get("Payload")
        if isinstance(payload, dict):  # a task fed an explicit payload: its keys are the task's input model
            for key, source in payload.items():
                field = key.removesuffix(".$")
                if field not in LifecycleState.model_fields:
                    problems.append(f"{name}.Payload: {field} is not a LifecycleState field")
                if key.endswith(".$"):
                    state_path(f"{name}.Payload.{field}", source)
    return problems


def test_every_path_the_asl_names_is_in_the_contract() -> None:
    assert asl_problems(ASL) == []


@pytest.mark.parametrize(
    ("state", "key", "path"),
    [
        ("IsFinal", "Variable", "$.outcome.finished"),
        ("Start", "Variable", "$.expiry"),
        ("AskAgainLater", "SecondsPath", "$.outcome.seconds_to_go"),
        ("CreatePayment", "Catch", "$.failure"),
        ("ExpireInvoice", "Payload", "invoice"),
    ],
)
def test_a_path_the_models_do_not_have_fails_the_check(state: str, key: str, path: str) -> None:
    drifted = copy.deepcopy(ASL)
    target = drifted["States"][state]
    if key == "Variable":
        target["Choices"][0]["Variable"] = path
    elif key == "Catch":
        target["Catch"][0]["ResultPath"] = path
    elif key == "Payload":
        target["Parameters"] = {"FunctionName": "f", "Payload": {f"{path}.$": "$.invoice_id"}}
    else:
        target[key] = path
    assert len(asl_problems(drifted)) == 1


def test_the_sample_task_events_parse_with_the_contract() -> None:
    for name in ("create_payment", "expire_invoice", "mark_failed"):
        event = json.loads((ROOT / "events" / "lifecycle" / f"{name}.json").read_text(encoding="utf-8"))
        state = LifecycleState.model_validate(event)
        assert state.tenant_id and state.invoice_id
    failed = LifecycleState.model_validate(json.loads((ROOT / "events/lifecycle/mark_failed.json").read_text()))
    assert failed.error is not None and failed.error.Error


def test_the_state_document_is_what_the_asl_reads() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    invoice = Invoice.model_validate(
        {
            "tenant_id": "acme",
            "invoice_id": "inv_" + "a" * 26,
            "deal_id": "7",
            "number": "7",
            "amount": 1_000,
            "currency": "RUB",
            "provider": "sandbox",
            "created_at": now,
            "expires_at": now + timedelta(seconds=90),
        }
    )
    document = LifecycleState.of(invoice, now, "payment_created").document()
    assert document == {
        "tenant_id": "acme",
        "invoice_id": "inv_" + "a" * 26,
        "outcome": {
            "state": "issued",
            "final": False,
            "version": invoice.version,
            "paid": 0,
            "amount": 1_000,
            "seconds_left": 90,
            "event": "payment_created",
        },
    }
    # A deadline already past still waits at least a second (Step Functions refuses a timeout of 0)
    late = Outcome.of(invoice, now + timedelta(hours=1))
    assert late.seconds_left == 1 and late.state is InvoiceState.ISSUED


def test_no_state_waits_for_money_and_the_paths_end_where_they_should() -> None:
    """An execution runs only while there is work: no task waits for a token or a timeout, and the creation path
    ends at CreatePayment (or MarkFailed); only the expiry loops, through a Wait of its deferral."""
    states = ASL["States"]
    for name, state in states.items():
        assert ".waitForTaskToken" not in state.get("Resource", ""), name
        assert "TimeoutSecondsPath" not in state and "TimeoutSeconds" not in state, name
    assert states["CreatePayment"].get("End") is True and states["MarkFailed"].get("End") is True
    assert states["Start"]["Choices"][0]["Variable"] == "$.expiry_attempt"
    assert states["AskAgainLater"]["Next"] == "ExpireInvoice"
