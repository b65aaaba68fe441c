"""`make import-times` — cold-start proxy: the import time of each function's handler module in a fresh
interpreter, next to the floor every function pays anyway, `import boto3` plus one client, measured in the same
run and interleaved with it (so a noisy machine slows both alike). Prints each handler's median and its ratio to
the floor, and ends with one JSON line (`worst_ratio`; the goal is <= 1.25). Median of RUNS runs (default 7).

The code is imported as the layer ships it: compiled to bytecode first (the layer build compiles paybridge, since
/opt is read-only in Lambda), into a temporary cache (PYTHONPYCACHEPREFIX), so the figures do not depend on
whether this machine may write __pycache__ folders. `--source` measures without bytecode (each import compiles).
`--cpu` times the CPU the interpreter spends on the import (`time.process_time`) instead of the wall clock: on a
machine shared with other jobs it moves far less between runs (waiting for a core is not counted; a cold start's
disk reads are not either, so the default stays the wall clock).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "import boto3; boto3.client('dynamodb')"
GOAL = 1.25


def measure(statement: str, env: dict[str, str], clock: str = "perf_counter") -> float:
    code = f"import time; t = time.{clock}(); {statement}; print(time.{clock}() - t)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)  # noqa: S603
    return float(out.stdout.strip()) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "7")))
    parser.add_argument("--source", action="store_true", help="no bytecode: every import compiles its source")
    parser.add_argument("--cpu", action="store_true", help="CPU time of the import (process_time), not wall time")
    args = parser.parse_args(argv)
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT}",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    clock = "process_time" if args.cpu else "perf_counter"
    with tempfile.TemporaryDirectory(prefix="paybridge-pyc-") as cache:
        if not args.source:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = cache
            os.environ["PYTHONPYCACHEPREFIX"] = cache  # compileall below writes there too
            sys.pycache_prefix = cache
            for folder in (ROOT / "layers" / "common", ROOT / "functions"):
                compileall.compile_dir(str(folder), quiet=1, workers=0, invalidation_mode=None)
            # the handlers' own imports (site-packages is compiled by pip already); warm the OS file cache too
            measure("import boto3", env)
        modules = [f"functions.{app.parent.name}.app" for app in sorted((ROOT / "functions").glob("*/app.py"))]
        samples: dict[str, list[float]] = {FLOOR: [], **{m: [] for m in modules}}
        for _ in range(args.runs):
            for module in modules:  # side by side: the floor before every handler
                samples[FLOOR].append(measure(FLOOR, env, clock))
                samples[module].append(measure(f"import {module}", env, clock))
    floor = statistics.median(samples[FLOOR])
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {m: medians[m] / floor for m in modules}
    width = max(map(len, medians))
    print(f"{'import boto3 + one client':<{width}}  {floor:7.1f} ms  (the floor)")
    for module in modules:
        print(f"{module:<{width}}  {medians[module]:7.1f} ms  x{ratios[module]:.2f}")
    worst = max(ratios, key=lambda m: ratios[m])
    print(
        f"worst: {worst} x{ratios[worst]:.2f} (goal <= {GOAL}); bytecode: {'no' if args.source else 'yes'}; "
        f"clock: {'cpu' if args.cpu else 'wall'}"
    )
    print(
        json.dumps(
            {
                "floor_ms": round(floor, 1),
                "median_import_ms": {m: round(medians[m], 1) for m in modules},
                "ratio": {m: round(ratios[m], 3) for m in modules},
                "worst": worst,
                "worst_ratio": round(ratios[worst], 3),
                "runs": args.runs,
                "bytecode": not args.source,
                "clock": "cpu" if args.cpu else "wall",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
