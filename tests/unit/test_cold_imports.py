"""What a handler's import leaves for later: the adapter modules and the tenant model are loaded and built at the
first tenant read, not when a handler (or `paybridge.tenants`) is imported; every pydantic model of PayBridge (domain,
settings, adapters' wire models, the HTTP API's) at its first use, not at import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(f"functions.{app.parent.name}.app" for app in (ROOT / "functions").glob("*/app.py"))


def _run(code: str) -> str:
    out = subprocess.run(  # noqa: S603 - a fresh interpreter: sys.modules as a cold start has it
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        env={
            "PYTHONPATH": f"{ROOT / 'layers' / 'common'}:{ROOT}",
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "eu-central-1",
        },
    )
    return out.stdout.strip()


def test_no_handler_import_loads_the_adapters_or_builds_the_tenant_model() -> None:
    out = _run(
        f"""
        import importlib, sys
        for name in {HANDLERS!r}:
            importlib.import_module(name)
        from paybridge.adapters.registry import ADAPTER_MODULES
        from paybridge.tenants import BankSettings, ReminderSettings, TenantConfig
        models = (TenantConfig, BankSettings, ReminderSettings)
        print(sorted(m for m in ADAPTER_MODULES if m in sys.modules), [m.__pydantic_complete__ for m in models])
        from paybridge.tenants import validate_tenant
        tenant, problems = validate_tenant({{
            "tenant_id": "acme", "name": "Acme", "api_keys_sha256": ["0" * 64],
            "psp": {{"provider": "yookassa", "shop_id": "1", "secret_key": {{"value": "test_secret"}}}},
            "crm": {{"kind": "sandbox", "base_url": "http://crm", "token": {{"value": "token-123"}}}},
        }}, "tenants[0]")
        assert tenant is not None, problems
        loaded = all(m in sys.modules for m in ADAPTER_MODULES)
        print(type(tenant.psp).__module__, loaded, TenantConfig.__pydantic_complete__)
        """
    )
    assert out.splitlines() == ["[] [False, False, False]", "paybridge.adapters.psp.yookassa True True"]


def test_no_handler_loads_the_powertools_resolvers_and_events_it_does_not_use() -> None:
    unused = (
        "asyncio",
        "aws_lambda_powertools.event_handler.appsync",
        "aws_lambda_powertools.event_handler.bedrock_agent",
        "aws_lambda_powertools.utilities.data_classes.s3_event",
    )
    code = f"import sys, {{}}; print([m for m in {unused!r} if m in sys.modules])"
    with ThreadPoolExecutor(max_workers=2) as pool:  # each in a fresh interpreter, as its own cold start
        loaded = dict(zip(HANDLERS, pool.map(lambda name: _run(code.format(name)), HANDLERS), strict=True))
    assert {name: out for name, out in loaded.items() if out != "[]"} == {}


def test_a_registry_lookup_loads_the_adapters_without_the_tenant_model() -> None:
    out = _run(
        """
        from paybridge.adapters.registry import BANK_SOURCES, PSPS
        print(BANK_SOURCES.entry("tbank").name, PSPS.names())
        """
    )
    assert out == "tbank_business ('sandbox', 'tbank', 'yookassa', 'stripe')"


def test_no_model_is_built_at_import_and_a_route_builds_its_own() -> None:
    out = _run(
        f"""
        import importlib
        for name in {HANDLERS!r}:
            importlib.import_module(name)
        from paybridge.app.deal_delivery import _MESSAGE
        from paybridge.domain.bank import DECISION_JSON, LINE_JSON, OpenInvoice, StatementLine
        from paybridge.domain.model import Model
        def models(cls):
            for sub in cls.__subclasses__():
                yield sub
                yield from models(sub)
        everyone = list(models(Model))
        built = [m.__name__ for m in everyone if m.__pydantic_complete__]
        adapters = [a.pydantic_complete for a in (_MESSAGE, DECISION_JSON, LINE_JSON)]
        dataclasses = [d.__pydantic_complete__ for d in (StatementLine, OpenInvoice)]  # the matcher's slotted ones
        print(len(everyone) > 120, built, adapters, dataclasses)
        from paybridge.http.ops_models import ReissueBody
        try:
            ReissueBody.model_validate({{"reason": "the customer asked for a new link", "extra": 1}})
        except ValueError as exc:
            print(exc.errors()[0]["type"])
        print(sorted(m.__name__ for m in everyone if m.__pydantic_complete__))
        """
    )
    assert out.splitlines() == ["True [] [False, False, False] [False, False]", "extra_forbidden", "['ReissueBody']"]
