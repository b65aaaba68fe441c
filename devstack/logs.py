"""How loud the local stack is: warnings and errors only unless PAYBRIDGE_LOG_LEVEL asks for more — no request lines,
no credential notes, no third-party noise (moto logs every handled JSONPath miss of a Choice's `IsPresent` as an
ERROR; Powertools warns of an empty metrics flush on every invocation when metrics are disabled). `make dev`,
the demos and the benchmarks share it."""

from __future__ import annotations

import logging
import os


def quiet(default: str = "WARNING") -> None:
    import warnings

    wanted = os.environ.get("PAYBRIDGE_LOG_LEVEL", default).upper()
    level = getattr(logging, wanted, logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(level if level <= logging.INFO else logging.WARNING)
    if level > logging.DEBUG:
        logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
