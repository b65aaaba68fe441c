"""The acquiring reconciliation report for a tenant and month: `GET /v1/{tenant}/reconciliation?month=` printed as a
terminal table, written as one self-contained HTML file, and summed up in a last JSON line.

    python scripts/reconcile_report.py --tenant acquiring-shop --month 2026-12 [--html PATH] [--seed]

It reads the API at PAYBRIDGE_URL (or 127.0.0.1:$PAYBRIDGE_PORT, 3000) with PAYBRIDGE_API_KEY (the local
`demo-api-key`). When nothing answers there it starts the local stack in this process and — for `acquiring-shop` —
seeds it with the acquiring scenario (`devstack/demo_settlements.py`: card and SBP payments, a refund, three payouts,
one short by a payment) in the current month, so the report has something to show.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]

from scripts.report_render import bar_chart, html_page, money  # noqa: E402
from scripts.report_render import table as render_table  # noqa: E402


def rub(kopecks: int) -> str:
    return money(kopecks, None)


COLUMNS = ("provider", "recorded", "refunds", "settled", "fees", "payouts", "unsettled", "differences")


def rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for p in report["providers"]:
        out.append(
            (
                p["provider"],
                f"{p['recorded']['count']} / {rub(p['recorded']['amount'])}",
                f"{p['refunds']['count']} / {rub(p['refunds']['amount'])}",
                f"{p['settled']['count']} / {rub(p['settled']['amount'])}",
                rub(p["fees"]),
                f"{p['payouts']['count']} / {rub(p['payouts']['amount'])}",
                f"{len(p['unsettled'])} / {rub(sum(u['amount'] for u in p['unsettled']))}",
                str(len(p["differences"])),
            )
        )
    totals = report["totals"]
    out.append(
        ("total", rub(totals["recorded"]), "", rub(totals["settled"]), rub(totals["fees"]), "",
         rub(totals["unsettled"]), str(totals["differences"]))
    )  # fmt: skip
    return out


def notes(report: dict[str, Any]) -> list[str]:
    """What a person must look at: payments not settled after the usual delay, payouts that do not add up."""
    out = []
    for p in report["providers"]:
        for u in p["unsettled"]:
            out.append(
                f"not settled ({p['provider']}): {u['ref']} invoice {u['invoice_id']} {rub(u['amount'])}, "
                f"recorded {u['recorded_on']}, due by {u['due_by']}"
            )
        for d in p["differences"]:
            out.append(
                f"difference ({p['provider']}, {d['value_date']}): payout {rub(d['amount'])}, expected "
                f"{rub(d['expected'])} ({rub(d['difference'])}): {'; '.join(d['reasons'])}"
            )
    return out


def title(report: dict[str, Any]) -> tuple[str, str]:
    return (
        f"Acquiring reconciliation — {report['tenant_id']}, {report['month']}",
        f"{report['currency']}, as of {report['as_of']}; count / amount. Fees are the provider's own where its API "
        "gives the net amount (YooKassa), else the tenant's rate.",
    )


def table(report: dict[str, Any]) -> str:
    heading, subtitle = title(report)
    listed = [f"  {n}" for n in notes(report)]
    return "\n".join([heading, subtitle, "", render_table(COLUMNS, rows(report)), *listed])


def chart(report: dict[str, Any]) -> str:
    """Recorded, settled, fees and unsettled per provider, to scale (inline SVG)."""
    figures = {
        "recorded": lambda p: p["recorded"]["amount"],
        "settled": lambda p: p["settled"]["amount"],
        "fees": lambda p: p["fees"],
        "unsettled": lambda p: sum(u["amount"] for u in p["unsettled"]),
    }
    series = [(name, [(p["provider"], value(p) / 100) for p in report["providers"]]) for name, value in figures.items()]
    return bar_chart(f"Acquiring, {report['currency']}", series)


def page(report: dict[str, Any]) -> str:
    heading, subtitle = title(report)
    return html_page(heading, subtitle, COLUMNS, rows(report), [chart(report)], notes(report) or ["No differences."])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", default="acquiring-shop")
    parser.add_argument("--month", default=f"{datetime.now(ZoneInfo('Europe/Moscow')):%Y-%m}")
    parser.add_argument("--html", default=None, help="where to write the HTML (reports/reconciliation-…html)")
    parser.add_argument("--seed", action="store_true", help="run the acquiring scenario first")
    args = parser.parse_args(argv)
    base_url = os.environ.get("PAYBRIDGE_URL") or f"http://127.0.0.1:{os.environ.get('PAYBRIDGE_PORT', '3000')}"
    key = os.environ.get("PAYBRIDGE_API_KEY", "demo-api-key")
    stack = None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    try:
        httpx.get(f"{base_url}/health", timeout=1)
    except httpx.HTTPError:
        from devstack.stack import LocalStack

        print(f"no local stack at {base_url}: starting one in this process", file=sys.stderr)
        stack = LocalStack(port=int(base_url.rsplit(":", 1)[-1])).start()
        base_url = stack.url
        args.seed = args.seed or args.tenant == "acquiring-shop"
    # the local stack's functions write their EMF metrics to stdout: keep stdout for the report
    quiet = contextlib.redirect_stdout(sys.stderr)
    quiet.__enter__()
    try:
        if args.seed:
            from devstack.demo_settlements import run_settlement_demo

            run_settlement_demo(base_url, out=lambda text: print(text, file=sys.stderr))
        answer = httpx.get(
            f"{base_url}/v1/{args.tenant}/reconciliation",
            params={"month": args.month},
            headers={"x-api-key": key},
            timeout=30,
        )
    finally:
        if stack is not None:
            stack.stop()
        quiet.__exit__(None, None, None)
    if answer.status_code != 200:
        print(f"reconciliation report refused: {answer.status_code} {answer.text}", file=sys.stderr)
        return 1
    report = answer.json()
    print(table(report))
    path = Path(args.html or ROOT / "reports" / f"reconciliation-{args.tenant}-{args.month}.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(report), encoding="utf-8")
    print(f"HTML: {path}")
    print(json.dumps({"tenant": args.tenant, "month": args.month, **report["totals"], "html": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
