"""Fixtures of the browser tests: one headless chromium per test module, a fresh local stack per test, and
pages in contexts of their own (tests/browser/panel.py has the helpers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev)")
pytest.importorskip("axe_playwright_python", reason="axe-playwright-python is not installed (requirements-dev)")
from devtools.screenshot import CHROMIUM, launch  # noqa: E402 - needs playwright
from devtools.serve import LocalServer, start  # noqa: E402
from tests.browser.panel import DESKTOP  # noqa: E402

# expect() waits up to 10 s (Playwright's default is 5): the stack and the browser share two cores with the
# other test processes, and a wait ends as soon as its condition holds
playwright_api.expect.set_options(timeout=10_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is marked `browser`, and skipped, saying why, where the system chromium is missing."""
    missing = pytest.mark.skip(reason=f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it when root)")
    for item in items:
        if item.path.parent.name == "browser":
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(missing)


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    with playwright_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def server(aws_environment) -> Iterator[LocalServer]:
    """A fresh local stack per test, started after conftest's environment so that its endpoint wins."""
    handle = start()
    yield handle
    handle.stop()


@pytest.fixture
def new_page(browser) -> Iterator[Callable[..., playwright_api.Page]]:
    """new_page(viewport=DESKTOP): a page in a context of its own, closed after the test."""
    contexts = []

    def make(viewport: dict | None = None) -> playwright_api.Page:
        context = browser.new_context(viewport=viewport or DESKTOP)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page) -> playwright_api.Page:
    return new_page()
