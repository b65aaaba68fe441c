"""`paybridge.domain.model.Model`: a model builds at its first use, and threads that first use it at once (the local
stack runs a function's invocations on threads) all get the model's own validator, built once — pydantic >= 2.14
rebuilds under a lock (before, each thread built it again, and some versions let a thread validate with the base
class's while another was building)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import ConfigDict, Field, ValidationError

from paybridge.domain.model import Model


def test_a_model_builds_at_first_use_with_its_own_config_merged() -> None:
    class Line(Model):
        model_config = ConfigDict(frozen=True, extra="forbid")
        amount: int = Field(gt=0)

    assert not Line.__pydantic_complete__
    assert Line(amount=5).amount == 5
    assert Line.__pydantic_complete__
    assert Line.model_config.get("defer_build") and Line.model_config.get("frozen")
    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        Line.model_validate({"amount": 5, "other": 1})


def test_threads_that_first_use_a_model_at_once_all_validate_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    class Payment(Model):
        model_config = ConfigDict(extra="forbid")
        invoice_id: str
        amount: int = Field(gt=0)

    from pydantic._internal import _generate_schema

    original = _generate_schema.GenerateSchema.generate_schema
    builds: list[int] = []

    def slow(self: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if obj is Payment:
            builds.append(threading.get_ident())
            time.sleep(0.2)  # a wide window for the other threads to come in while the first builds
        return original(self, obj, *args, **kwargs)

    monkeypatch.setattr(_generate_schema.GenerateSchema, "generate_schema", slow)
    gate = threading.Barrier(16)

    def validate(k: int) -> str:
        gate.wait(timeout=10)
        try:
            payment = Payment.model_validate({"invoice_id": f"inv_{k}", "amount": k + 1})
        except ValidationError as exc:
            return f"error: {exc.errors()[0]['type']}"
        return f"{payment.invoice_id}:{payment.amount}"

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(validate, range(16)))
    assert results == [f"inv_{k}:{k + 1}" for k in range(16)]
    assert len(builds) == 1  # built once, the others waited for it (pydantic < 2.14: each thread built its own)
