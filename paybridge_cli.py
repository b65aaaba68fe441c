"""The `paybridge` console script's entry point: it runs the checkout's own code (`scripts/cli`, and the shared layer
in `layers/common`), so the installed command and `make tenants-check …` always agree with the working tree."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent


def main() -> int:
    for path in (str(_ROOT / "layers" / "common"), str(_ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    from scripts.cli.main import main as run

    return run()


if __name__ == "__main__":
    raise SystemExit(main())
