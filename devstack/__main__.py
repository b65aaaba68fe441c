"""`python -m devstack serve` runs the local stack; `python -m devstack demo` runs the scripted card scenario and
`python -m devstack demo-bank` the bank-transfer one."""

from __future__ import annotations

import logging
import os
import sys


def serve() -> int:
    from devstack.stack import LocalStack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    stack = LocalStack(port=int(os.environ.get("PAYBRIDGE_PORT", "3000"))).start()
    print(f"PayBridge local stack on {stack.url}")
    print(f"  sandbox CRM:  {stack.url}/sandbox/crm/demo/")
    print(f"  health:       {stack.url}/health")
    print(f"  tenants from: {stack.tenants_file}")
    print("Ctrl+C to stop.")
    try:
        import threading

        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if command == "serve":
        return serve()
    if command == "demo":
        from devstack.demo import main as demo

        return demo(sys.argv[2:])
    if command == "demo-bank":
        from devstack.demo_bank import main as demo_bank

        return demo_bank(sys.argv[2:])
    if command == "demo-events":
        from devstack.demo_events import main as demo_events

        return demo_events(sys.argv[2:])
    print("usage: python -m devstack [serve|demo|demo-bank|demo-events]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
