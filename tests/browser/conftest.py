"""The pages a person opens on the local stack, driven in a real headless browser: Debian's `chromium` through
Playwright (`playwright` from PyPI; its own browser downloads are never used — there is no internet for them).

Without chromium or playwright the browser tests skip, saying why; with `PAYBRIDGE_BROWSER_TESTS=required` (CI sets
it) they fail instead, so a CI machine without the browser can never pass by skipping. `PAYBRIDGE_SCREENSHOTS=<dir>`
saves a full-page PNG at each step a test names (`shot(page, "name")`). They share the session's local stack."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run last: the invoices they leave open on the shared stack never lengthen the sweeps that
    the end-to-end tests time. (The sort is stable: every other test keeps its place.)"""
    here = Path(__file__).resolve().parent
    items.sort(key=lambda item: item.path.resolve().is_relative_to(here))


def _chromium() -> str | None:
    configured = os.environ.get("PAYBRIDGE_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _unavailable(reason: str) -> None:
    if os.environ.get("PAYBRIDGE_BROWSER_TESTS") == "required":
        pytest.fail(f"browser tests are required here (PAYBRIDGE_BROWSER_TESTS=required) but {reason}")
    pytest.skip(f"no browser: {reason} (apt-get install chromium; pip install playwright)")


@pytest.fixture(scope="session", autouse=True)  # first: without a browser, skip before the stack starts
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is not installed")
    executable = _chromium()
    if executable is None:
        _unavailable("Debian's chromium is not installed (/usr/bin/chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser tab, 1280×900 like a laptop; anything the page's scripts throw fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ru-RU")
    context.set_default_timeout(30_000)  # Playwright waits for the page; the cap only matters on a loaded machine
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"the page's scripts failed: {errors}"


def shot(tab: Any, name: str, full_page: bool = True) -> None:
    """A screenshot `<name>.png` in $PAYBRIDGE_SCREENSHOTS (when set): what a person saw at this step."""
    folder = os.environ.get("PAYBRIDGE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)


def fits_the_window(tab: Any) -> bool:
    """Nothing on the page is wider than the window (no sideways scrolling)."""
    return bool(tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def on_one_line(locator: Any) -> bool:
    """The text of each element the locator matches lies on one line (an amount that never wraps): its line boxes
    all start at the same height."""
    script = """els => els.length > 0 && els.every(e => {
        const range = document.createRange();
        range.selectNodeContents(e);
        const boxes = [...range.getClientRects()].filter(r => r.width > 0);
        return boxes.length > 0 && new Set(boxes.map(r => Math.round(r.top))).size === 1;
    })"""
    return bool(locator.evaluate_all(script))
