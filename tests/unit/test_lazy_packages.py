"""paybridge.lazy_packages: a package of re-exports loaded name by name, and every name still there."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from paybridge.lazy_packages import lazy

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, *paths: Path) -> str:
    env_path = ":".join(str(p) for p in (*paths, ROOT / "layers" / "common", ROOT))
    out = subprocess.run(  # noqa: S603 - a fresh interpreter: sys.modules as a cold start has it
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    return out.stdout.strip()


def test_an_http_handler_does_not_load_the_resolvers_and_events_it_does_not_use() -> None:
    out = _run(
        """
        import sys
        import functions.invoices_api.app
        print(sorted(m for m in ("asyncio", "aws_lambda_powertools.event_handler.appsync",
            "aws_lambda_powertools.utilities.data_classes.s3_event") if m in sys.modules))
        """
    )
    assert out == "[]"


def test_every_name_of_the_deferred_package_is_the_eagerly_imported_one() -> None:
    out = _run(
        """
        import paybridge.http  # defers the packages
        import aws_lambda_powertools.event_handler as lazy_eh
        import aws_lambda_powertools.utilities.data_classes as lazy_dc
        names = {m: {n: getattr(m, n) for n in m.__all__} for m in (lazy_eh, lazy_dc)}
        from aws_lambda_powertools.event_handler import AppSyncResolver, APIGatewayRestResolver
        from aws_lambda_powertools.utilities.data_classes import S3Event
        import importlib, sys
        assert AppSyncResolver is lazy_eh.AppSyncResolver and S3Event is lazy_dc.S3Event
        # the real __init__ run in a namespace of its own: the same objects under the same names
        for module, got in names.items():
            ns = {"__name__": module.__name__, "__package__": module.__name__, "__path__": module.__path__}
            exec(compile(open(module.__spec__.origin).read(), module.__spec__.origin, "exec"), ns)
            assert set(ns["__all__"]) <= set(got), set(ns["__all__"]) - set(got)
            assert all(ns[n] is got[n] for n in ns["__all__"])
        print("ok", len(names[lazy_eh]), len(names[lazy_dc]))
        """
    )
    assert out.startswith("ok ")


def test_a_package_that_does_more_than_re_export_is_imported_as_usual(tmp_path: Path) -> None:
    package = tmp_path / "busy_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from busy_pkg.part import NAME\nSIDE_EFFECT = NAME * 2\n")
    (package / "part.py").write_text("NAME = 21\n")
    (tmp_path / "quiet_pkg").mkdir()
    (tmp_path / "quiet_pkg" / "__init__.py").write_text('"""Doc."""\nfrom .part import NAME\n__all__ = ["NAME"]\n')
    (tmp_path / "quiet_pkg" / "part.py").write_text("NAME = 7\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert lazy("busy_pkg").SIDE_EFFECT == 42  # ran its __init__
        quiet = lazy("quiet_pkg")
        assert "quiet_pkg.part" not in sys.modules  # not yet
        assert quiet.NAME == 7 and "quiet_pkg.part" in sys.modules
        with pytest.raises(AttributeError):
            _ = quiet.MISSING
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("busy_pkg", "busy_pkg.part", "quiet_pkg", "quiet_pkg.part"):
            sys.modules.pop(name, None)
