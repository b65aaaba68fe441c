"""Write the versioned JSON Schema of every domain event type to schemas/events/<type>.v1.json (`make
event-schemas`); `--check` fails when a committed schema differs from the code (CI)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from paybridge.domain.domain_events import EVENT_TYPES, SCHEMA_VERSION
from paybridge.domain.event_schemas import event_schema

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "schemas" / "events"


def rendered() -> dict[Path, str]:
    return {
        OUT / f"{kind}.v{SCHEMA_VERSION}.json": json.dumps(event_schema(kind), indent=2, ensure_ascii=False) + "\n"
        for kind in EVENT_TYPES
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a committed schema is out of date")
    args = parser.parse_args()
    stale = [path for path, text in rendered().items() if not path.exists() or path.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run `make event-schemas`", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
    print(f"{len(EVENT_TYPES)} schemas in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
