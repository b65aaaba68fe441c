"""`python -m devstack serve` runs the local stack; `python -m devstack demo` runs the scripted card scenario and
`python -m devstack demo-bank` the bank-transfer one."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from devstack.logs import quiet


def serve() -> int:
    """Serve until Ctrl-C, SIGTERM or — with PAYBRIDGE_STOP_WITH_PARENT=1 (`make dev`) — the end of the process that
    started it (a killed `make`), then stop every thread and exit 0. Logs: warnings and errors only;
    PAYBRIDGE_LOG_LEVEL=INFO shows the stack's own lines and every HTTP request."""
    import signal

    from devstack.stack import LocalStack

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if os.environ.get("PAYBRIDGE_STOP_WITH_PARENT") == "1":
        parent = os.getppid()
        threading.Thread(target=_stop_with(parent, stop), name="parent-watch", daemon=True).start()
    stack = LocalStack(port=int(os.environ.get("PAYBRIDGE_PORT", "3000"))).start()
    print(f"PayBridge local stack on {stack.url}")
    print(f"  sandbox CRM:  {stack.url}/sandbox/crm/demo/")
    print(f"  health:       {stack.url}/health")
    print(f"  tenants from: {stack.tenants_file}")
    print("Ctrl+C to stop.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()
    print("PayBridge local stack stopped.", flush=True)
    return 0


def _stop_with(parent: int, stop: threading.Event) -> Callable[[], None]:
    def watch() -> None:
        while not stop.wait(0.5):
            if os.getppid() != parent:  # reparented: whoever started us is gone
                stop.set()

    return watch


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    quiet()
    if command == "serve":
        return serve()
    if command == "demo":
        from devstack.demo import main as demo

        return demo(sys.argv[2:])
    if command == "demo-bank":
        from devstack.demo_bank import main as demo_bank

        return demo_bank(sys.argv[2:])
    if command == "demo-settlements":
        from devstack.demo_settlements import main as demo_settlements

        return demo_settlements(sys.argv[2:])
    if command == "demo-events":
        from devstack.demo_events import main as demo_events

        return demo_events(sys.argv[2:])
    print("usage: python -m devstack [serve|demo|demo-bank|demo-settlements|demo-events]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
