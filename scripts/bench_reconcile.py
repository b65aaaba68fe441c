"""Bank reconciliation benchmark: how long `reconcile` takes for a statement of n lines against n open invoices,
for growing n, and whether that time grows linearly (it must: no line may scan all invoices).

For each size: n open invoices (numbers "INV-2026-000123", "СЧ-123" and plain "123", mixed; some know the
customer's INN) and n statement lines with purposes written the many ways payers write them — 80% pay one invoice
exactly, 8% part of it, 4% too much, 3% two invoices at once (a split), 5% name no invoice or an unknown one. The
index is built and the lines generated before the clock starts (and frozen out of the garbage collector's way);
only `reconcile` is timed (best of 3 at every size: on the shared VM one run of 100k moved ±15 % run to run), as it
runs, and once more with the cyclic garbage collector paused, for comparison (`reconcile` pauses it for its own run
now, so the two differ by noise).
Prints each size, the growth of the time against the growth of the size (linear: about the same; quadratic: its
square), a verdict, and one JSON line at the end.

    python scripts/bench_reconcile.py
    python scripts/bench_reconcile.py --lines 20000 --invoices 20000 --steps 1000,5000,20000
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paybridge.domain.bank import OpenInvoice, StatementLine

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "40702810900000012345"
SEED = 20261101

ONE = (
    "Оплата по счету № {num} от {date}. Сумма {amount}, в т.ч. НДС (20%) {vat}",
    "Оплата по счёту №{num} за услуги. НДС не облагается",
    "Оплата сч.{num} от {date}",
    "Оплата по сч N {num} от {short}, без НДС",
    "Оплата по Счет-договор №{num} за октябрь",
    "Оплата по счету от {date} № {num}. НДС не облагается",
    "Payment for invoice {num}, VAT included",
    "Оплата согласно счета {num} от {short}. Сумма {amount}",
    "Счёт на оплату № {num}; ИНН {inn}",
    "Оплата по счету № {num} (договор № 15 от 01.02.2026), тел. +7 916 123-45-67",
)
BARE = ("{num} оплата за товар", "Оплата {num} без НДС")  # for numbers that look like one on their own
TWO = (
    "Оплата по счетам № {a}, {b}. НДС не облагается",
    "Оплата по счету № {a} и по счету № {b}",
    "Payment for invoices {a} and {b}",
)
NONE = (
    "Оплата по договору 15 от 01.02.2026 за октябрь",
    "Возврат займа по договору № 3 от 01.01.2026. НДС не облагается",
    "Оплата по счету № 9{k:07d} от {date}",  # a number no open invoice has
    "Перевод собственных средств на р/сч {account}",
)


@dataclass(frozen=True)
class Step:
    lines: int
    invoices: int


def steps_for(spec: str, max_lines: int, max_invoices: int) -> list[Step]:
    sizes = sorted({int(part) for part in spec.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"steps must be positive integers: {spec!r}")
    steps = {Step(min(size, max_lines), min(size, max_invoices)) for size in sizes}
    return sorted(steps, key=lambda step: (step.lines, step.invoices))


def generate(step: Step, seed: int) -> tuple[list[StatementLine], list[OpenInvoice], list[str]]:
    """The invoices, the lines, and what each line is meant to be (for a sanity check of the decisions)."""
    from paybridge.domain.bank import OpenInvoice, StatementLine
    from paybridge.domain.money import to_decimal_string

    rng = random.Random(seed)
    invoices: list[OpenInvoice] = []
    for i in range(step.invoices):
        style = i % 3
        number = f"INV-2026-{i:06d}" if style == 0 else f"СЧ-{i}" if style == 1 else str(i)
        amount = rng.randint(10_00, 500_000_00)
        inn = f"77{rng.randrange(10**8):08d}" if rng.random() < 0.3 else None
        invoices.append(
            OpenInvoice(invoice_id=f"inv_{i:07d}", number=number, amount=amount, outstanding=amount, customer_inn=inn)
        )
    order = list(range(step.invoices))
    rng.shuffle(order)
    cursor = 0

    def take() -> OpenInvoice:
        nonlocal cursor
        invoice = invoices[order[cursor % len(order)]]
        cursor += 1
        return invoice

    lines: list[StatementLine] = []
    intended: list[str] = []
    start = date(2026, 11, 1)
    for k in range(step.lines):
        value_date = start + timedelta(days=k % 28)
        fill: dict[str, Any] = {"date": value_date.strftime("%d.%m.%Y"), "short": value_date.strftime("%d.%m.%y")}
        roll = rng.random()
        payer_inn = None
        if roll < 0.95:
            first = take()
            payer_inn = first.customer_inn if first.customer_inn and rng.random() < 0.7 else None
            if roll < 0.80:
                kind, amount = "paid", first.outstanding
            elif roll < 0.88:
                kind, amount = "partially_paid", rng.randint(1, first.outstanding - 1)
            elif roll < 0.92:
                kind, amount = "overpaid", first.outstanding + rng.randint(1, 100_000)
            else:
                kind = "split"
                second = take()
                amount = first.outstanding + second.outstanding
                payer_inn = None
                purpose = rng.choice(TWO).format(a=first.number, b=second.number)
            if kind != "split":
                templates = ONE + BARE if not first.number.isdigit() else ONE
                vat = amount * 20 // 120
                fill |= {"num": first.number, "amount": to_decimal_string(amount), "vat": to_decimal_string(vat)}
                purpose = rng.choice(templates).format(inn=payer_inn or "7707083893", **fill)
        else:
            kind, amount = "unmatched", rng.randint(1_00, 100_000_00)
            purpose = rng.choice(NONE).format(k=k, account=ACCOUNT, **fill)
        lines.append(
            StatementLine(
                source="1c_file",
                account=ACCOUNT,
                value_date=value_date,
                amount=amount,
                purpose=purpose,
                payer_name="ООО Ромашка",
                payer_inn=payer_inn,
                payer_account=f"40702810{rng.randrange(10**12):012d}",
                document_number=str(k + 1),
            )
        )
        intended.append(kind)
    return lines, invoices, intended


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000, help="most statement lines (caps the steps)")
    parser.add_argument("--invoices", type=int, default=100_000, help="most open invoices (caps the steps)")
    parser.add_argument("--steps", default="10000,20000,50000,100000", help="sizes to time, comma-separated")
    args = parser.parse_args(argv)
    if args.lines < 1 or args.invoices < 1:
        parser.error("--lines and --invoices must be at least 1")
    try:
        steps = steps_for(args.steps, args.lines, args.invoices)
    except ValueError as exc:
        parser.error(str(exc))
    sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
    from paybridge.domain.reconcile import MemoryIndex, compile_patterns, reconcile

    patterns = compile_patterns(())
    results: list[dict[str, Any]] = []
    paused_times: list[float] = []
    kinds: Counter[str] = Counter()
    print(f"{'lines':>8} {'invoices':>9} {'seconds':>9} {'lines/s':>10} {'gc paused':>10}  off-intent")
    for step in steps:
        lines, invoices, intended = generate(step, SEED + step.lines)
        index = MemoryIndex(invoices)
        best, best_paused = math.inf, math.inf
        for _ in range(3):
            for paused in (False, True):
                decisions = []
                gc.collect()
                gc.freeze()  # the inputs are not what is measured: the collector need not walk them again and again
                if paused:
                    gc.disable()
                began = time.perf_counter()
                decisions = reconcile(lines, index, patterns)
                elapsed = time.perf_counter() - began
                gc.enable()
                gc.unfreeze()
                if paused:
                    best_paused = min(best_paused, elapsed)
                else:
                    best = min(best, elapsed)
        kinds = Counter(decision.kind for decision in decisions)
        off = sum(decision.kind != kind for decision, kind in zip(decisions, intended, strict=True))
        rate = step.lines / best
        results.append({"n": step.lines, "seconds": round(best, 4), "lines_per_second": round(rate)})
        print(f"{step.lines:>8} {step.invoices:>9} {best:>9.3f} {rate:>10,.0f} {best_paused:>9.3f}s  {off}")
        paused_times.append(best_paused)

    smallest, largest = results[0], results[-1]
    size_ratio = largest["n"] / smallest["n"]
    growth_ratio = largest["seconds"] / smallest["seconds"] if smallest["seconds"] else math.inf
    linear: bool | None
    if size_ratio <= 1:
        linear = None
        verdict = "one size only: nothing to compare"
    else:
        exponent = math.log(growth_ratio) / math.log(size_ratio) if growth_ratio > 0 else 0.0
        linear = exponent < 1.5  # halfway (in powers) between linear (1) and quadratic (2)
        verdict = (
            f"{'linear' if linear else 'NOT linear'}: time x{growth_ratio:.2f} for size x{size_ratio:.2f} "
            f"(linear ~ x{size_ratio:.2f}, quadratic ~ x{size_ratio**2:.2f}; time ~ n^{exponent:.2f})"
        )
    print(f"growth ratio {growth_ratio:.2f}, size ratio {size_ratio:.2f} -> {verdict}")
    if paused_times[0] > 0:
        print(
            f"with the cyclic garbage collector paused: x{paused_times[-1] / paused_times[0]:.2f} "
            "(reconcile makes no reference cycles; what the collector adds grows with the heap, not the algorithm)"
        )
    print(f"decisions at n={largest['n']}: " + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()))
    summary = {
        "lines": args.lines,
        "invoices": args.invoices,
        "steps": results,
        "growth_ratio": round(growth_ratio, 3),
        "size_ratio": round(size_ratio, 3),
        "linear": linear,
        "decisions": dict(kinds.most_common()),
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if linear is not False else 1


if __name__ == "__main__":
    sys.exit(main())
