"""Browser tests: pytest + Playwright driving Debian's Chromium.

Never ``playwright install``: the browser is the system's Chromium
(``apt-get install chromium``; ``PLAYWRIGHT_CHROMIUM`` names another binary).
Without it (or without the ``playwright`` package) these tests are skipped, and
the run ends with one line saying how to enable them; with
``BROWSER_TESTS_REQUIRED=1`` (as ``.ci/run`` sets) they fail instead.

The admin runs in pytest-django's ``live_server`` (a thread of this process, on
the test database; transactional, so each test's rows are committed and the
database is flushed after it).  Playwright's sync API keeps an asyncio loop
current in the test thread, which makes Django refuse ORM calls there; the
``browser`` fixture allows them (``DJANGO_ALLOW_ASYNC_UNSAFE``) for as long as
the browser is up, which is the browser module only.

Screenshots go to ``$BROWSER_ARTIFACTS`` (default ``test-output/browser/`` at
the repository's root), one folder per test, plus ``failure.png`` when a test
fails.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("PLAYWRIGHT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS") or REPO / "test-output" / "browser")
REQUIRED = os.environ.get("BROWSER_TESTS_REQUIRED", "").lower() in {"1", "true", "yes"}
HERE = Path(__file__).resolve().parent

_state: dict[str, Any] = {"skipped": 0, "ran": 0}


def missing() -> str:
    """Why the browser tests cannot run here ("" when they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests need the playwright package: pip install -r requirements-dev.txt"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (
            f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium (Debian), "
            "or PLAYWRIGHT_CHROMIUM=/path/to/chromium; .ci/run installs it"
        )
    return ""


def _ours(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing()
    for item in items:
        if not _ours(item):
            continue
        if reason and not REQUIRED:
            item.add_marker(pytest.mark.skip(reason=reason))
            _state["skipped"] += 1
        else:
            _state["ran"] += 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _state["skipped"]:
        terminalreporter.write_line(
            f"{_state['skipped']} browser test(s) skipped: {missing()} (BROWSER_TESTS_REQUIRED=1 makes this an error).",
            yellow=True,
        )
    elif _state["ran"] and ARTIFACTS.is_dir():
        terminalreporter.write_line(f"browser tests: screenshots in {ARTIFACTS}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_failed] = report.failed
    return report


_failed = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing()
    if reason:  # only when required: otherwise the test was marked skipped
        pytest.fail(f"BROWSER_TESTS_REQUIRED is set but {reason}", pytrace=False)
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


class Shots:
    """Numbered screenshots of one test, in its own folder."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.n = 0

    def __call__(self, name: str, element: Any = None) -> Path:
        """The whole page, or only ``element`` (a locator)."""
        self.n += 1
        path = self.folder / f"{self.n:02d}-{name}.png"
        if element is not None:
            element.screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser: Any, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page (1366 x 768, the laptop the admin is laid out for)
    on the live server, which fails the test on any 5xx response or script
    error it saw."""
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 768})
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on("console", lambda m: problems.append(f"console: {m.text} ({m.location.get('url')})") if _bad(m) else None)
    folder = _folder(request)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield page
        assert not problems, f"the browser saw: {problems}"
    finally:
        if request.node.stash.get(_failed, False):
            page.screenshot(path=str(folder / "failure.png"), full_page=True)
        context.close()


def _bad(message: Any) -> bool:
    """A script's error; not the browser's own request for /favicon.ico (there is none)."""
    if message.type != "error":
        return False
    return not str(message.location.get("url", "")).endswith("/favicon.ico")


def _folder(request: pytest.FixtureRequest) -> Path:
    return ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)


@pytest.fixture
def shot(page: Any, request: pytest.FixtureRequest) -> Shots:
    """``shot("name")``: a full-page screenshot of ``page`` in this test's
    folder; ``shot("name", locator)``: of that element only."""
    return Shots(page, _folder(request))
