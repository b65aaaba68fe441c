"""What every benchmark on the local stack sets up before it imports the stack: the project on the path, Powertools
the HTTP server and
moto quiet (`devstack.logs.quiet`: the functions' EMF lines and request logs would bury the figures)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quiet_local_stack() -> None:
    sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from devstack.logs import quiet

    quiet("ERROR")
