"""Helpers of the browser tests: the page's two sizes, opening the panel, an axe-core scan, seeding records."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, expect

from devtools.seed import ALICE
from devtools.serve import LocalServer

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
WORKER_TIMEOUT_MS = 20_000  # the local worker renders and stores a few images
BLOCKING_IMPACTS = {"serious", "critical"}
_AXE = Axe()


def open_panel(page: Page, server: LocalServer, user: str = ALICE, *, expand: bool = True) -> None:
    """Open the page signed in (locally) as `user`, wait for the banner and (by default) expand the panel."""
    page.goto(f"{server.url}?user={user}")
    banner = page.get_by_role("button", name="missing images")
    expect(banner).to_be_visible()
    if expand:
        banner.click()
        expect(banner).to_have_attribute("aria-expanded", "true")


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
