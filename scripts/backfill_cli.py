"""The command line every one-off backfill shares: `--table`, `--dry-run`, the counts printed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(backfill: Callable[[Any, str, bool], dict[str, int]], doc: str | None) -> int:
    import boto3

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="the stage's table (stack output TableName)")
    parser.add_argument("--dry-run", action="store_true", help="count what would change, write nothing")
    args = parser.parse_args()
    print(backfill(boto3.client("dynamodb"), args.table, args.dry_run))
    return 0


def on_path() -> None:
    sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
