"""The owner's monthly report from the PayBridge API: a table in the terminal, a self-contained HTML page with charts
written to a file, and, as the last line, one JSON object.

    make report TENANT=demo [MONTH=2026-11]                 # the local stack on PAYBRIDGE_PORT (default 3000)
    make report TENANT=acme STAGE=prod                      # a deployed stage: PAYBRIDGE_API_KEY=<the key>

Against a deployed stage the API's address is the stack's `ApiUrl` output (stack `paybridge-<stage>`, or
`--stack-name`), or `PAYBRIDGE_API_URL`. Exit codes: 0 printed, 2 bad arguments or refused, 3 nothing answers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]

from scripts.report_render import amounts, bar_chart, duration, html_page, percent, table  # noqa: E402

#: Every local tenant's integration key (config/tenants.local.json); a stage's key comes from PAYBRIDGE_API_KEY.
LOCAL_API_KEY = "demo-api-key"


def fail(message: str, code: int = 2) -> int:
    print(f"report: {message}", file=sys.stderr)
    return code


def api_url(stage: str | None, stack_name: str | None) -> str:
    if os.environ.get("PAYBRIDGE_API_URL"):
        return os.environ["PAYBRIDGE_API_URL"].rstrip("/")
    if stage is None:
        return f"http://127.0.0.1:{os.environ.get('PAYBRIDGE_PORT', '3000')}"
    import boto3

    name = stack_name or f"paybridge-{stage}"
    stacks = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if "ApiUrl" not in outputs:
        raise LookupError(f"stack {name} has no ApiUrl output")
    return outputs["ApiUrl"].rstrip("/")


def rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    before, delta = report["previous"], report["change"]

    def signed(value: float | int | None, render: Any = str) -> str:
        if value is None:
            return "-"
        return ("+" if value > 0 else "") + render(value)

    out: list[tuple[str, str, str, str]] = [
        ("issued", str(report["issued"]), str(before["issued"]), signed(delta["issued"])),
        ("paid", str(report["paid"]), str(before["paid"]), signed(delta["paid"])),
        (
            "paid share",
            percent(report["paid_share"]),
            percent(before["paid_share"]),
            signed(delta["paid_share"], lambda v: f"{v * 100:.1f} pp"),
        ),
        (
            "time to pay p50",
            duration(report["time_to_pay_p50_seconds"]),
            duration(before["time_to_pay_p50_seconds"]),
            signed(delta["time_to_pay_p50_seconds"], lambda v: f"{v} s"),
        ),
        (
            "time to pay p90",
            duration(report["time_to_pay_p90_seconds"]),
            duration(before["time_to_pay_p90_seconds"]),
            signed(delta["time_to_pay_p90_seconds"], lambda v: f"{v} s"),
        ),
        ("issued amount", amounts(report["issued_amount"]), amounts(before["issued_amount"]), ""),
        ("paid amount", amounts(report["paid_amount"]), amounts(before["paid_amount"]), ""),
    ]
    for method in sorted(set(report["methods"]) | set(before["methods"])):
        now, then = report["methods"].get(method, 0), before["methods"].get(method, 0)
        share = report["method_share"].get(method, 0.0)
        out.append((f"paid by {method}", f"{now} ({percent(share)})", str(then), signed(now - then)))
    refunds, refunds_before = report["refunds"], before["refunds"]
    out += [
        ("refunds", str(refunds["count"]), str(refunds_before["count"]), signed(delta["refunds"])),
        ("refunded", amounts(refunds["amount"]), amounts(refunds_before["amount"]), ""),
        (
            "refunded of paid",
            ", ".join(percent(v) for _, v in sorted(refunds["share_of_paid"].items())) or "-",
            ", ".join(percent(v) for _, v in sorted(refunds_before["share_of_paid"].items())) or "-",
            "",
        ),
        (
            "partially paid",
            str(report["partially_paid"]),
            str(before["partially_paid"]),
            signed(delta["partially_paid"]),
        ),
        ("overpaid", str(report["overpaid"]), str(before["overpaid"]), signed(delta["overpaid"])),
        (
            "expired / cancelled",
            f"{report['expired']} / {report['cancelled']}",
            f"{before['expired']} / {before['cancelled']}",
            "",
        ),
        ("still open", str(report["open"]), str(before["open"]), ""),
        (
            "unmatched bank lines",
            str(report["unmatched_bank_lines"]),
            str(before["unmatched_bank_lines"]),
            signed(delta["unmatched_bank_lines"]),
        ),
    ]
    return out


def charts(report: dict[str, Any]) -> list[str]:
    before = report["previous"]
    this, last = report["month"], before["month"]
    methods = sorted(set(report["methods"]) | set(before["methods"]))
    slowest = max(m[f"time_to_pay_{p}_seconds"] or 0 for m in (report, before) for p in ("p50", "p90"))
    name, scale, unit = next(
        (n, s, u)
        for limit, n, s, u in (
            (120, "seconds", 1, " s"),
            (7200, "minutes", 60, " min"),
            (172800, "hours", 3600, " h"),
            (None, "days", 86400, " d"),
        )
        if limit is None or slowest < limit
    )
    return [
        bar_chart(
            "Invoices issued and paid",
            [
                (this, [("issued", report["issued"]), ("paid", report["paid"])]),
                (last, [("issued", before["issued"]), ("paid", before["paid"])]),
            ],
        ),
        bar_chart(
            "Paid share of the month's invoices (%)",
            [
                (this, [("paid share", round(report["paid_share"] * 100, 1))]),
                (last, [("paid share", round(before["paid_share"] * 100, 1))]),
            ],
            "%",
        ),
        bar_chart(
            "Payments by method",
            [
                (this, [(m, report["methods"].get(m, 0)) for m in methods]),
                (last, [(m, before["methods"].get(m, 0)) for m in methods]),
            ],
        ),
        bar_chart(
            f"Time to pay ({name})",
            [
                (this, [(p, round((report[f"time_to_pay_{p}_seconds"] or 0) / scale, 1)) for p in ("p50", "p90")]),
                (last, [(p, round((before[f"time_to_pay_{p}_seconds"] or 0) / scale, 1)) for p in ("p50", "p90")]),
            ],
            unit,
        ),
    ]


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The last line: the keys a script reads (the API's answer has everything)."""
    keys = (
        "tenant",
        "month",
        "issued",
        "paid",
        "paid_share",
        "time_to_pay_p50_seconds",
        "time_to_pay_p90_seconds",
        "methods",
        "refunds",
        "partially_paid",
        "overpaid",
        "unmatched_bank_lines",
    )
    return {**{k: report[k] for k in keys}, "previous_month": report["previous"]["month"], "change": report["change"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--month", help="YYYY-MM in the tenant's time zone (default: this month)")
    parser.add_argument("--stage", help="a deployed stage (default: the local stack)")
    parser.add_argument("--stack-name", help="the stage's CloudFormation stack (default: paybridge-<stage>)")
    parser.add_argument("--out", type=Path, help="the HTML file to write (default: reports/<tenant>-<month>.html)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,39}", args.tenant):
        return fail(f"tenant {args.tenant!r} is not a tenant slug (lower-case letters, digits, dashes)")
    if args.month and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
        return fail(f"month {args.month!r} is not YYYY-MM")
    key = os.environ.get("PAYBRIDGE_API_KEY") or (LOCAL_API_KEY if args.stage is None else None)
    if key is None:
        return fail("set PAYBRIDGE_API_KEY to the tenant's API key for a deployed stage")

    import httpx

    try:
        base = api_url(args.stage, args.stack_name)
        params = {"month": args.month} if args.month else {}
        response = httpx.get(f"{base}/v1/{args.tenant}/report", params=params, headers={"x-api-key": key}, timeout=60)
    except httpx.TransportError as exc:
        where = "start it with `make dev`" if args.stage is None else "check the stage"
        return fail(f"nothing answers at {base} ({type(exc).__name__}): {where}", 3)
    except Exception as exc:  # the stack's outputs could not be read (no credentials, no such stack)
        return fail(f"cannot find the stage's API: {exc}", 3)
    if response.status_code != 200:
        try:
            detail = response.json().get("detail") or response.json().get("title")
        except ValueError:
            detail = response.text[:200]
        return fail(f"the API answered {response.status_code}: {detail}")
    report = response.json()
    header = ("figure", report["month"], report["previous"]["month"], "change")
    lines = rows(report)
    title = f"PayBridge report: {report['tenant']}, {report['month']}"
    subtitle = (
        f"Invoices issued in {report['month']} ({report['timezone']}) as they stand at {report['generated_at']}, "
        f"against {report['previous']['month']}"
    )
    print(title)
    print(subtitle)
    print()
    print(table(header, lines))
    out = args.out or ROOT / "reports" / f"{report['tenant']}-{report['month']}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html_page(title, subtitle, header, lines, charts(report)), encoding="utf-8")
    print()
    print(f"wrote {out}")
    print(json.dumps(summary(report), ensure_ascii=False, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
