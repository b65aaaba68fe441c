"""What every benchmark on the local stack sets up before it imports the stack: the project on the path, Powertools
and the HTTP server quiet (the functions' EMF lines and request logs would bury the figures)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quiet_local_stack() -> None:
    sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
