"""`make cost`: what one paid invoice costs on AWS, counted on the local stack (not assumed).

A deal in the sandbox CRM gets an invoice ("Issue invoice": the CRM's webhook), the client pays its link at the
sandbox PSP, and the deal turns "Paid" — the product's main path, with everything it sets off (the CRM's echo
webhooks of our own writes included). Meanwhile `devstack.meter` counts what AWS would bill:

- Step Functions Standard state transitions, from the history of every execution of the invoice (every state
  entered, and every retry);
- Lambda invocations and their billed GB-seconds (duration rounded up to the millisecond × the function's
  MemorySize from template.yaml), per function;
- DynamoDB write and read request units, computed from the items' sizes as DynamoDB does (see devstack/meter.py:
  the larger of before/after, 1 KB per WRU, 4 KB per RRU, eventually consistent half, transactions double, every
  index write), per function;
- SQS requests (FIFO price) that carried messages — Lambda's pollers' empty long-polls are a fixed cost per queue,
  whatever the traffic, and are reported apart; HTTP API requests; EventBridge Scheduler calls if any.

Scheduled functions (the sweeps, the bank poller…) run on a timer whatever the traffic: they are reported apart and
not added to an invoice. The first invoice warms the stack up (imports, cold starts) and is not counted; then
`--invoices N` (3) are measured one after another: counts are exact (they must agree), timing (GB-s) is the median.
Prints a table per service and per function with $ per million paid invoices at list prices, and ends with one JSON
line: `transitions`, `invocations`, `usd_per_million` (goal: ≤ 4 transitions, ≤ $150 without SES; exits 1 past
either). CI runs it.

    make cost
    make cost ARGS="--invoices 5"
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TENANT = "demo"
CRM_TOKEN = "sandbox-crm-token-demo"  # noqa: S105 - the sandbox portal's shipped token

#: List prices, US East (N. Virginia), USD — per unit. DynamoDB: the on-demand prices of the issue (AWS halved them to
#: $0.625 / $0.125 per million in November 2024, so this line is an upper bound); SQS: FIFO ($0.40 standard).
PRICES = {
    "transition": 25.0 / 1e6,  # Step Functions Standard, per state transition
    "lambda_request": 0.20 / 1e6,
    "gb_second": 0.0000166667,  # Lambda x86
    "wru": 1.25 / 1e6,
    "rru": 0.25 / 1e6,
    "sqs_request": 0.50 / 1e6,  # FIFO, per 64 KB chunk of a request
    "api_request": 1.00 / 1e6,  # HTTP API, first 300 million a month
    "scheduler_invocation": 1.00 / 1e6,  # EventBridge Scheduler
}
GOAL_USD_PER_MILLION = 150.0
GOAL_TRANSITIONS = 4  # billed state transitions per paid invoice (issue 14, goal 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=3, help="paid invoices measured (after one warm-up)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for one invoice's deal")
    args = parser.parse_args(argv)
    if args.invoices < 1:
        parser.error("--invoices must be at least 1")
    from bench_env import quiet_local_stack

    quiet_local_stack()
    from devstack.meter import METER
    from devstack.stack import LocalStack

    stack = LocalStack(port=0).start()
    quiet = contextlib.redirect_stdout(io.StringIO())  # the functions' EMF metric lines
    try:
        quiet.__enter__()
        scheduled = {s.function for s in stack.aws.template.schedules()}
        METER.enabled = True
        pay_one(stack, args.timeout)  # warm-up: imports and first clients, not counted
        runs = []
        for _ in range(args.invoices):
            METER.reset()
            invoice_id = pay_one(stack, args.timeout)
            counted = METER.snapshot()
            counted["transitions"], counted["executions"] = transitions_of(stack, invoice_id)
            runs.append(counted)
        METER.enabled = False
    finally:
        quiet.__exit__(None, None, None)
        stack.stop()
    summary = report(runs, scheduled)
    print(json.dumps(summary))
    within = summary["usd_per_million"] <= GOAL_USD_PER_MILLION and summary["transitions"] <= GOAL_TRANSITIONS
    return 0 if within else 1


def pay_one(stack: Any, timeout: float) -> str:
    """Issue an invoice from a sandbox CRM deal, pay it, wait for the deal to show it — and for everything it set
    off to settle (no counter moving for a second and a half)."""
    import httpx

    from devstack.meter import METER

    http = httpx.Client(base_url=stack.url, timeout=30)
    crm, auth = f"/sandbox/crm/{TENANT}/api", {"Authorization": f"Bearer {CRM_TOKEN}"}
    deal = http.post(f"{crm}/deals", headers=auth, json={"title": "Счёт на оплату", "amount": 1_234_500}).json()
    issued = http.post(f"{crm}/deals/{deal['id']}/issue").json()
    if issued.get("webhook_status") != 200:
        raise RuntimeError(f"issuing failed: {issued}")
    invoice_id = str(issued["answer"]["invoices"][0]["invoice_id"])

    def deal_now() -> dict[str, Any]:
        return dict(http.get(f"{crm}/deals/{deal['id']}", headers=auth).json())

    link = wait(lambda: deal_now().get("payment_url"), timeout, "the payment link in the deal")
    payment_id = str(link).rsplit("/", 1)[-1]
    http.post(f"/sandbox/psp/api/payments/{payment_id}/simulate", json={"action": "pay"}).raise_for_status()
    wait(lambda: deal_now()["stage"] == "PAID", timeout, "the deal to turn PAID")
    quiet_since, last = time.monotonic(), None
    while time.monotonic() - quiet_since < 1.5:
        now = {k: v for k, v in METER.snapshot().items() if k != "sqs_empty_receives"}
        if now != last:
            quiet_since, last = time.monotonic(), now
        time.sleep(0.1)
    return invoice_id


def wait(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def transitions_of(stack: Any, invoice_id: str) -> tuple[int, dict[str, list[str]]]:
    """Billed transitions over every execution of the invoice (its lifecycle and any it started later)."""
    import boto3

    from devstack.meter import billed_transitions

    client = boto3.client("stepfunctions")
    executions: dict[str, list[str]] = {}
    total = 0
    pages = client.get_paginator("list_executions").paginate(stateMachineArn=stack.aws.state_machine_arn)
    for page in pages:
        for execution in page["executions"]:
            if not execution["name"].startswith(invoice_id):
                continue
            history: list[Any] = []
            kwargs: dict[str, Any] = {"executionArn": execution["executionArn"], "maxResults": 1000}
            while True:
                answer = client.get_execution_history(**kwargs)
                history.extend(answer["events"])
                if not answer.get("nextToken"):
                    break
                kwargs["nextToken"] = answer["nextToken"]
            total += billed_transitions(history)
            executions[execution["name"]] = [
                e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
            ]
    return total, executions


def report(runs: list[dict[str, Any]], scheduled: set[str]) -> dict[str, Any]:
    def per_invoice(run: dict[str, Any], key: str) -> dict[str, float]:
        return {f: v for f, v in run[key].items() if f not in scheduled}

    def exact(key: str) -> dict[str, float]:
        values = [per_invoice(run, key) for run in runs]
        if any(v != values[0] for v in values):
            print(f"note: {key} differed between runs: {values}")
        return values[len(values) // 2]

    invocations = exact("invocations")
    wru, rru = exact("wru"), exact("rru")
    gb_seconds = {f: statistics.median(per_invoice(run, "gb_seconds").get(f, 0.0) for run in runs) for f in invocations}
    transitions = int(statistics.median(run["transitions"] for run in runs))
    sqs = int(statistics.median(sum(run["sqs_requests"].values()) for run in runs))
    api = int(statistics.median(sum(run["api_requests"].values()) for run in runs))
    scheduler = int(statistics.median(sum(run["scheduler_requests"].values()) for run in runs))
    n_invocations = sum(invocations.values())
    lines = {
        "Step Functions transitions": (transitions, transitions * PRICES["transition"]),
        "Lambda requests": (n_invocations, n_invocations * PRICES["lambda_request"]),
        "Lambda GB-s": (round(sum(gb_seconds.values()), 4), sum(gb_seconds.values()) * PRICES["gb_second"]),
        "DynamoDB WRU": (sum(wru.values()), sum(wru.values()) * PRICES["wru"]),
        "DynamoDB RRU": (sum(rru.values()), sum(rru.values()) * PRICES["rru"]),
        "SQS requests": (sqs, sqs * PRICES["sqs_request"]),
        "HTTP API requests": (api, api * PRICES["api_request"]),
        "EventBridge Scheduler": (scheduler, scheduler * PRICES["scheduler_invocation"]),
    }
    first = runs[len(runs) // 2]
    print(f"one paid invoice, counted on the local stack (median of {len(runs)}; counts are exact)")
    print(f"executions: {json.dumps(first['executions'], ensure_ascii=False)}")
    print(f"{'function':<28}{'calls':>6}{'GB-s':>10}{'WRU':>8}{'RRU':>8}")
    for function in sorted(invocations):
        print(
            f"{function:<28}{invocations[function]:>6}{gb_seconds[function]:>10.4f}"
            f"{wru.get(function, 0):>8g}{rru.get(function, 0):>8g}"
        )
    outside = {f: v for f, v in wru.items() if f not in invocations}
    for function, units in sorted(outside.items()):  # the test driver itself, if it wrote anything
        print(f"{function:<28}{'':>6}{'':>10}{units:>8g}{rru.get(function, 0):>8g}")
    print(f"SQS requests by action: {first['sqs_requests']}; HTTP API: {first['api_requests']}")
    print(f"not an invoice's: scheduled runs {sorted(f for f in first['invocations'] if f in scheduled) or 'none'},")
    print(f"  empty SQS polls {first['sqs_empty_receives']} (the pollers' fixed cost); SES e-mails not counted")
    print(f"{'service':<28}{'per invoice':>14}{'$ per million':>16}")
    total = 0.0
    for name, (count, usd) in lines.items():
        total += usd * 1e6
        print(f"{name:<28}{count:>14g}{usd * 1e6:>16.2f}")
    print(f"{'total':<28}{'':>14}{total:>16.2f}   (goal <= {GOAL_USD_PER_MILLION:.0f})")
    return {
        "transitions": transitions,
        "invocations": n_invocations,
        "gb_seconds": round(sum(gb_seconds.values()), 4),
        "wru": sum(wru.values()),
        "rru": sum(rru.values()),
        "sqs_requests": sqs,
        "api_requests": api,
        "usd_per_million": round(total, 2),
    }


if __name__ == "__main__":
    raise SystemExit(main())
