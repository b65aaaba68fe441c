"""Rewrite the dashboard's per-function Lambda widgets (errors, throttles) from the template's functions:

python scripts/dashboard_functions.py   # after adding or removing a function (tests/unit/test_dashboard.py checks)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
    from devstack.template import load_template

    template = load_template()
    functions = [k for k, v in template.resources.items() if v["Type"] == "AWS::Serverless::Function"]
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    for metric in ("Errors", "Throttles"):
        row = re.compile(rf'^( +)\["AWS/Lambda", "{metric}", "FunctionName", .*$\n', re.M)
        rows = list(row.finditer(text))
        if not rows:
            raise SystemExit(f"no {metric} widget rows in template.yaml")
        indent = rows[0].group(1)
        head = f'{indent}["AWS/Lambda", "{metric}", "FunctionName", '
        lines = [head + f'"${{{f}}}", {{"label": "{f.removesuffix("Function")}"}}]' for f in functions]
        block = ",\n".join(lines) + "\n"
        text = text[: rows[0].start()] + block + text[rows[-1].end() :]
    (ROOT / "template.yaml").write_text(text, encoding="utf-8")
    print(f"{len(functions)} functions on the dashboard's Lambda widgets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
