"""`make layer-size`'s request check: httpx's sync client sends a request with only the given directory on the path."""

from __future__ import annotations

from pathlib import Path

import httpx

from scripts.layer_size import smoke_request


def test_a_request_goes_through_with_httpx_and_its_sync_dependencies_alone(tmp_path: Path) -> None:
    # what the layer ships of httpx: httpx, httpcore, h11, idna, certifi — and no anyio
    site = Path(httpx.__file__).resolve().parent.parent
    for name in ("httpx", "httpcore", "h11", "idna", "certifi"):
        (tmp_path / name).symlink_to(site / name)
    assert smoke_request(tmp_path) is None


def test_a_layer_without_httpcore_fails_the_check(tmp_path: Path) -> None:
    site = Path(httpx.__file__).resolve().parent.parent
    for name in ("httpx", "h11", "idna", "certifi"):
        (tmp_path / name).symlink_to(site / name)
    failure = smoke_request(tmp_path)
    assert failure is not None and "httpcore" in failure
