"""Helpers of the browser tests: the page's two sizes, finding rows, an axe-core scan."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page

from devtools.screenshot import SIZES

PHONE = SIZES["phone"]
DESKTOP = SIZES["desktop"]
WORKER_TIMEOUT_MS = 20_000  # the local worker renders and stores a few images
BLOCKING_IMPACTS = {"serious", "critical"}
_AXE = Axe()


def row(page: Page, name: str) -> Locator:
    return page.locator("li.item", has=page.locator(".item-name", has_text=name))


def badges(page: Page) -> Locator:
    return page.locator("li.item .badge")


def assert_accessible(page: Page) -> None:
    """axe-core finds no serious or critical violation in the page as it is now."""
    violations = _AXE.run(page).response["violations"]
    blocking = [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]}"
        for v in violations
        if v["impact"] in BLOCKING_IMPACTS
    ]
    assert not blocking, blocking
