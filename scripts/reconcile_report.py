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
import html
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


def rub(kopecks: int) -> str:
    sign = "-" if kopecks < 0 else ""
    whole, part = divmod(abs(kopecks), 100)
    return f"{sign}{whole:,}".replace(",", " ") + f".{part:02d}"


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


def table(report: dict[str, Any]) -> str:
    body = rows(report)
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(COLUMNS)]
    line = "  ".join("-" * w for w in widths)
    text = [
        f"Acquiring reconciliation — {report['tenant_id']}, {report['month']} ({report['currency']}, as of "
        f"{report['as_of']}; count / amount)",
        "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)),
        line,
    ]
    for r in body:
        if r[0] == "total":
            text.append(line)
        text.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))))
    for p in report["providers"]:
        for u in p["unsettled"]:
            text.append(
                f"  not settled ({p['provider']}): {u['ref']} invoice {u['invoice_id']} {rub(u['amount'])}, "
                f"recorded {u['recorded_on']}, due by {u['due_by']}"
            )
        for d in p["differences"]:
            text.append(
                f"  difference ({p['provider']}, {d['value_date']}): payout {rub(d['amount'])}, expected "
                f"{rub(d['expected'])} ({rub(d['difference'])}): {'; '.join(d['reasons'])}"
            )
    return "\n".join(text)


def bars(report: dict[str, Any]) -> str:
    """An inline SVG: recorded, settled, fees and unsettled per provider, to scale."""
    items = [
        (p["provider"], p["recorded"]["amount"], p["settled"]["amount"], p["fees"],
         sum(u["amount"] for u in p["unsettled"]))
        for p in report["providers"]
    ]  # fmt: skip
    top = max([1, *(i[1] for i in items)])
    height = 34 * len(items) * 4 + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="{height}" role="img">']
    y = 10
    colours = (("recorded", "#4a78c2"), ("settled", "#3a9d5d"), ("fees", "#d08a2b"), ("unsettled", "#c24a4a"))
    for name, *values in items:
        for (label, colour), value in zip(colours, values, strict=True):
            width = int(440 * value / top)
            parts.append(f'<text x="0" y="{y + 14}" font-size="12">{html.escape(name)} {label}</text>')
            parts.append(f'<rect x="160" y="{y}" width="{width}" height="20" fill="{colour}"/>')
            parts.append(f'<text x="{166 + width}" y="{y + 14}" font-size="12">{rub(value)}</text>')
            y += 34
    parts.append("</svg>")
    return "".join(parts)


def page(report: dict[str, Any]) -> str:
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rows(report))
    notes = []
    for p in report["providers"]:
        for u in p["unsettled"]:
            notes.append(
                f"<li>Not settled ({html.escape(p['provider'])}): {html.escape(u['ref'])} — invoice "
                f"{html.escape(u['invoice_id'])}, {rub(u['amount'])}, recorded {u['recorded_on']}, "
                f"due by {u['due_by']}</li>"
            )
        for d in p["differences"]:
            notes.append(
                f"<li>Difference ({html.escape(p['provider'])}, {d['value_date']}): payout {rub(d['amount'])}, "
                f"expected {rub(d['expected'])}: {html.escape('; '.join(d['reasons']))}</li>"
            )
    title = f"Acquiring reconciliation — {report['tenant_id']}, {report['month']}"
    return (
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "tr:last-child{font-weight:bold}</style>"
        f"<h1>{html.escape(title)}</h1><p>{report['currency']}, as of {report['as_of']}; count / amount. Fees are the "
        "provider's own where its API gives the net amount (YooKassa), else the tenant's rate.</p>"
        f"<table><tr>{head}</tr>{body}</table>{bars(report)}<ul>{''.join(notes) or '<li>No differences.</li>'}</ul>"
        "</html>"
    )


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
