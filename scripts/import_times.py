"""Cold-start proxy: the import time of each function's handler module in a fresh interpreter, next to
`import boto3`. Prints a table and ends with one JSON line. Median of N runs (default 5)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("RUNS", "5"))


def measure(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT}",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }
    samples = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)  # noqa: S603
        samples.append(float(out.stdout.strip()) * 1000)
    return round(statistics.median(samples), 1)


def main() -> int:
    results = {"import boto3": measure("import boto3")}
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        module = f"functions.{app.parent.name}.app"
        results[module] = measure(f"import {module}")
    width = max(map(len, results))
    for name, ms in results.items():
        print(f"{name:<{width}}  {ms:7.1f} ms")
    print(json.dumps({"median_import_ms": results, "runs": RUNS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
