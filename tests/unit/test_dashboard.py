"""The dashboard and the alarms in template.yaml read only metrics the code emits, cover every function, and each
alarm links a runbook section that exists (issue 12). The checks read both the template and the sources."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from devstack.template import load_template
from paybridge.app.metrics import COHORT_PAID
from tests.conftest import ROOT

NAMESPACE = "PayBridge"


def emitted_metrics() -> tuple[set[str], set[str]]:
    """(names, prefixes): every metric name the code emits — `add_metric(name="…")` in the handlers, `count("…")`
    in app/metrics.py — and the prefixes of names made at run time (`name=f"MrrMinorUnits_{currency}"`)."""
    names, prefixes = {COHORT_PAID}, set()
    for path in [*ROOT.glob("functions/*/app.py"), *ROOT.glob("layers/common/paybridge/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'add_metric\(\s*name="(\w+)"', text))
        names |= set(re.findall(r'(?:\.record|\bcount)\(\s*"(\w+)"', text))
        prefixes |= set(re.findall(r'add_metric\(\s*name=f"(\w+)\{', text))
    return names, prefixes


def dashboard_body(template: Any) -> dict[str, Any]:
    body = template.resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return dict(json.loads(re.sub(r"\$\{[^}]+\}", "X", body)))


def dashboard_metrics(body: dict[str, Any]) -> set[str]:
    """The PayBridge metric names a dashboard body reads: metric rows and SEARCH expressions."""
    names: set[str] = set()
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], str) and row[0] == NAMESPACE:
                names.add(row[1])
            for item in row:
                if isinstance(item, dict) and "expression" in item:
                    for schema, name in re.findall(r"\{(\w+)[^}]*\}\s+MetricName=\"(\w+)\"", item["expression"]):
                        if schema == NAMESPACE:
                            names.add(name)
    return names


def not_emitted(read: set[str]) -> set[str]:
    names, prefixes = emitted_metrics()
    return {n for n in read if n not in names and not any(n.startswith(p) for p in prefixes)}


def alarms(template: Any) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template.resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def test_the_dashboard_reads_only_metrics_the_code_emits() -> None:
    read = dashboard_metrics(dashboard_body(load_template()))
    assert {"InvoicesIssued", COHORT_PAID, "TimeToPay", "MoneyReceived", "Refunds", "RefundsAmount"} <= read
    assert not_emitted(read) == set()


def test_the_check_fails_on_a_metric_nobody_emits() -> None:
    body = {
        "widgets": [
            {"properties": {"metrics": [["PayBridge", "InvoicesPaidPerHourRatio", "service", "paybridge"]]}},
            {"properties": {"metrics": [[{"expression": "SEARCH('{PayBridge,method} MetricName=\"Nope\"', 'Sum')"}]]}},
        ]
    }
    assert not_emitted(dashboard_metrics(body)) == {"InvoicesPaidPerHourRatio", "Nope"}


def test_alarms_read_only_emitted_metrics_and_cover_every_function() -> None:
    template = load_template()
    found = alarms(template)
    ours = {p["MetricName"] for p in found.values() if p.get("Namespace") == NAMESPACE}
    assert ours and not_emitted(ours) == set()
    functions = {k for k, v in template.resources.items() if v["Type"] == "AWS::Serverless::Function"}
    alarmed = {
        m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
        for p in found.values()
        for m in p.get("Metrics", [])
        if "MetricStat" in m and m["MetricStat"]["Metric"]["MetricName"] == "Errors"
    }
    assert functions - alarmed == set(), "every function's Lambda errors are alarmed"
    body = template.resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for metric in ("Errors", "Throttles"):
        shown = set(re.findall(rf'"AWS/Lambda", "{metric}", "FunctionName", "\$\{{(\w+)\}}"', body))
        assert functions - shown == set(), f"{metric} not on the dashboard: run scripts/dashboard_functions.py"
    wanted = {"ApiServerErrorsAlarm", "StuckInvoicesAlarm", "DriftFoundAlarm", "CrmOutboxParkedAlarm"}
    assert wanted | {"LifecycleFailuresAlarm", "ApiLambdaErrorsAlarm"} <= set(found)


def _anchors() -> set[str]:
    text = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
    return {m.strip().lower().replace(" ", "-") for m in re.findall(r"^## (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("name", sorted(alarms(load_template())))
def test_each_alarm_links_a_runbook_section_that_exists(name: str) -> None:
    description = alarms(load_template())[name]["AlarmDescription"]
    text = description["Fn::Sub"] if isinstance(description, dict) else description
    match = re.search(r"Runbook: \$\{RunbookUrl\}#([a-z0-9-]+)", text)
    assert match, f"{name} has no runbook link"
    assert match.group(1) in _anchors(), f"{name} links #{match.group(1)}, which docs/runbooks.md lacks"
    assert len(text) <= 1024  # CloudWatch's limit for an alarm description


def test_every_runbook_section_says_what_it_means_where_to_look_and_what_fixes_it() -> None:
    text = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0]
        for part in ("**Means.**", "**Look.**", "**Fix.**"):
            assert part in section, f"runbook {title!r} lacks {part}"
