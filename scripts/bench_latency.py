"""`make bench-latency`: N invoices of the sandbox tenant (`demo`: the sandbox PSP and CRM) paid at once on the
local stack; for each, the seconds from the sandbox PSP sending its notification to the sandbox CRM recording the
deal's "Paid" stage — the whole path: the PSP webhook (verify, record, apply, the deal's update on the CRM outbox),
the outbox and its consumer. Prints p50 / p95 / p99 / max and ends with one
JSON line (`n`, `p50`, `p95`, `p99`; the goal is p99 < 2 s at 200).

With several sizes (`--invoices 25,50,100,200`) each runs on a fresh local stack, one after the other, and the end
shows how the p99 grows with the number paid at once: a straight line through the origin whose slope is the CPU
of a payment over the cores the process gets is a machine that is busy, not a path that waits (a wait would show
as a p99 that does not fall with the size). The JSON line then holds the largest size's figures and `sweep`: each
size's, with the fitted `seconds_per_payment` (least squares through the origin) and the largest size whose p99 is
under 2 s (`under_2s_up_to`).

The invoices are issued, and their links published, before the clock starts (deals created in the sandbox CRM,
"Issue invoice" clicked on each); then every payment is made at once (N threads), and the sandbox PSP notifies.

    make bench-latency                          # 200 invoices
    make bench-latency ARGS="--invoices 50"
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import ssl
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TENANT = "demo"
CRM_TOKEN = "sandbox-crm-token-demo"  # noqa: S105 - the sandbox portal's shipped token


#: How often the deals are read while waiting (the CRM stamps each stage change itself, so this does not change
#: the figures; reading all deals five times a second was ~7 % of the CPU the stack under test had).
POLL_SECONDS = 1.0
#: The "Issue invoice" webhook may answer "try again" (503: our rate limiter of the CRM account waited its maximum
#: while the stack was busy; 429) — the CRM redelivers such a webhook; the setup clicks again, up to this many times.
TRY_AGAIN = frozenset({429, 503})
ISSUE_ATTEMPTS = 5
#: Issue 14's goal: the p99 under this many seconds at 200 paid at once (the sweep names the largest size under it).
GOAL_P99_SECONDS = 2.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))  # nearest rank
    return ordered[k]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--invoices", default="200", help="how many invoices are paid at once; several, comma-separated, for a sweep"
    )
    parser.add_argument("--timeout", type=float, default=300, help="give up after this many seconds")
    args = parser.parse_args(argv)
    try:
        sizes = sizes_of(args.invoices)
    except ValueError as exc:
        parser.error(str(exc))
    from bench_env import quiet_local_stack

    quiet_local_stack()
    from devstack.stack import LocalStack

    results: list[dict[str, Any]] = []
    for n in sizes:
        stack = LocalStack(port=0).start()  # a fresh one per size: the tables of the last would weigh on the next
        try:
            results.append(run(stack.url, n, args.timeout))
        finally:
            stack.stop()
    summary = results[-1]
    if len(results) > 1:
        summary = {**summary, "sweep": sweep(results)}
        print(sweep_table(results, summary["sweep"]))
    print(json.dumps(summary))
    return 0 if all(result["paid"] == result["n"] for result in results) else 1


def sizes_of(spec: str) -> list[int]:
    """`"25,50,200"` -> `[25, 50, 200]` (sorted, each once); ValueError for anything but positive integers."""
    try:
        sizes = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--invoices must be positive integers, comma-separated: {spec!r}") from None
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--invoices must be positive integers, comma-separated: {spec!r}")
    return sizes


def sweep(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each size's p99, the slope of p99 over n through the origin (least squares), and the largest size under 2 s."""
    points = [(result["n"], result["p99"]) for result in results]
    slope = sum(n * p99 for n, p99 in points) / sum(n * n for n, _ in points)
    under = [n for n, p99 in points if p99 < GOAL_P99_SECONDS]
    return {
        "sizes": [{key: result[key] for key in ("n", "p50", "p95", "p99", "cpu_ms_per_payment")} for result in results],
        "seconds_per_payment": round(slope, 4),
        "under_2s_up_to": max(under) if under else None,
    }


def sweep_table(results: list[dict[str, Any]], fitted: dict[str, Any]) -> str:
    rows = [f"{'n':>6} {'p50 s':>8} {'p99 s':>8} {'p99/n ms':>9} {'CPU ms/payment':>15}"]
    for r in results:
        per_payment, cpu = r["p99"] / r["n"] * 1000, r["cpu_ms_per_payment"]
        rows.append(f"{r['n']:>6} {r['p50']:>8.3f} {r['p99']:>8.3f} {per_payment:>9.1f} {cpu:>15.1f}")
    slope = fitted["seconds_per_payment"] * 1000
    rows.append(
        f"p99 ~ {slope:.1f} ms x n (least squares through the origin); "
        f"p99 < {GOAL_P99_SECONDS:g} s up to n = {fitted['under_2s_up_to']}"
    )
    return "\n".join(rows)


def run(base_url: str, n: int, timeout: float) -> dict[str, Any]:
    import httpx

    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:7.2f}s] {text}", flush=True)

    local = threading.local()
    tls = ssl.create_default_context()  # one for every client: building one costs ~25 ms of CPU, 200 of them ~5 s

    def http() -> httpx.Client:
        if getattr(local, "client", None) is None:
            local.client = httpx.Client(base_url=base_url, timeout=60, verify=tls)
        return local.client

    crm = f"/sandbox/crm/{TENANT}/api"
    auth = {"Authorization": f"Bearer {CRM_TOKEN}"}

    def all_deals() -> dict[str, dict[str, Any]]:
        """Every deal of the portal in one request (the stage history carries the CRM's own timestamps; one
        request per deal per turn, 200 of them five times a second, was load the stack under test had to bear)."""
        return {str(d["id"]): d for d in http().get(f"{crm}/deals", headers=auth).json()}

    reissued: list[str] = []

    def issue(k: int) -> str:
        created = (
            http().post(f"{crm}/deals", headers=auth, json={"title": f"Нагрузка {k}", "amount": 100_000 + k}).json()
        )
        for attempt in range(ISSUE_ATTEMPTS):
            answer = http().post(f"{crm}/deals/{created['id']}/issue").json()
            if answer.get("webhook_status") not in TRY_AGAIN or attempt == ISSUE_ATTEMPTS - 1:
                break
            reissued.append(str(created["id"]))  # "try again" (the CRM's rate limit was busy): as a CRM would
            time.sleep(1.0)
        if answer.get("webhook_status") != 200:
            raise RuntimeError(f"issue for deal {created['id']}: {answer}")
        return str(created["id"])

    with ThreadPoolExecutor(max_workers=4) as pool:  # setup: not so many at once that the CRM's bucket thrashes
        deals = list(pool.map(issue, range(n)))
    say(
        f"{n} deals with an invoice each in the sandbox CRM ({len(reissued)} clicked again after a 'try again'); "
        "waiting for their payment links"
    )
    links: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(links) < n and time.monotonic() < deadline:
        now = all_deals()
        for deal_id in deals:
            if deal_id not in links and (url := now.get(deal_id, {}).get("payment_url")):
                links[deal_id] = url
        time.sleep(0.2)
    if len(links) < n:
        missing = [d for d in deals if d not in links]
        raise RuntimeError(f"only {len(links)} of {n} payment links were published (none for deals {missing[:10]})")
    say(f"{n} payment links published; paying all {n} at once")

    payers = min(n, 200)
    ready, gate = threading.Barrier(payers + 1), threading.Barrier(payers + 1)

    def pay(k: int, deal_id: str) -> tuple[str, str]:
        payment_id = links[deal_id].rsplit("/", 1)[-1]
        client = http()
        if k < payers:  # the first wave: every payer has its client and its thread before the CPU clock starts
            with contextlib.suppress(threading.BrokenBarrierError):
                ready.wait(timeout=30)
                gate.wait(timeout=30)
        paid = client.post(f"/sandbox/psp/api/payments/{payment_id}/simulate", json={"action": "pay"}).json()
        return deal_id, str(paid["event_id"])

    with ThreadPoolExecutor(max_workers=payers) as pool:
        results = pool.map(pay, range(n), deals)
        cpu_before = _cpu_seconds()
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(timeout=30)
            cpu_before = _cpu_seconds()
            gate.wait(timeout=30)
        events = dict(results)
    paid_at = time.monotonic()
    done: dict[str, float] = {}
    while len(done) < n and time.monotonic() < paid_at + timeout:
        time.sleep(POLL_SECONDS)
        now = all_deals()
        for deal_id in deals:
            if deal_id in done:
                continue
            history = now.get(deal_id, {}).get("stage_history", [])
            at = next((h["at"] for h in history if h["stage"] == "PAID"), None)
            if at is not None:
                done[deal_id] = at
    cpu = _cpu_seconds() - cpu_before
    deliveries = {d["event_id"]: d for d in http().get("/sandbox/psp/api/deliveries").json()}
    retried = sum(1 for d in deliveries.values() if d["event_id"] in events.values() and len(d["attempts"]) > 1)
    latencies = [
        done[deal_id] - deliveries[events[deal_id]]["first_sent_at"]
        for deal_id in deals
        if deal_id in done and events[deal_id] in deliveries
    ]
    p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
    worst = max(latencies) if latencies else float("nan")
    say(
        f"{len(done)} of {n} deals PAID; notification -> CRM stage: p50 {p50:.3f}s, p95 {p95:.3f}s, "
        f"p99 {p99:.3f}s, max {worst:.3f}s (goal: p99 < {GOAL_P99_SECONDS:g} s at 200); "
        f"{retried} notifications needed a retry"
    )
    say(
        f"CPU of this process from the first payment until every deal was seen PAID: {cpu:.2f} s, "
        f"{cpu / n * 1000:.1f} ms per payment (moto, botocore, the handlers, the sandbox PSP and CRM, this poller); "
        f"with {os.cpu_count()} CPUs no local run can pay the last of {n} much sooner than "
        f"~{cpu / (os.cpu_count() or 1):.1f} s after the first"
    )
    return {
        "n": n,
        "paid": len(done),
        "p50": round(p50, 3),
        "p95": round(p95, 3),
        "p99": round(p99, 3),
        "max": round(worst, 3),
        "mean": round(statistics.fmean(latencies), 3) if latencies else None,
        "notifications_retried": retried,
        "issues_clicked_again": len(reissued),
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_payment": round(cpu / n * 1000, 1),
    }


if __name__ == "__main__":
    raise SystemExit(main())
