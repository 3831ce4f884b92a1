"""Screenshots of the missing-images panel on the local stack, for the README and docs/panel.md.

    python -m devtools.screenshot [--out docs]

Writes docs/panel.png (expanded, desktop) and docs/panel-<state>-<size>.png for the states collapsed,
expanded, progress, failure and empty at the sizes phone (390×844) and desktop (1280×800). Uses Debian's
chromium (/usr/bin/chromium) through Playwright; the browser tests launch it the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from devtools.seed import ALICE, NULL, trip
from devtools.serve import start

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
# a record whose prompt the model refused, so that the pictures show a failure and its reason
REFUSED = trip(
    ALICE, "trip-night", "Night Out in Berlin", "2026-04-01T00:00:00Z", NULL,
    imageStatus="failed", imageError="content_filtered",
)  # fmt: skip


def launch(playwright: Playwright) -> Browser:
    """Headless system chromium with the flags that keep it quiet and offline."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def open_panel(page: Page, url: str, user: str = ALICE, *, expand: bool = True) -> None:
    """Open the page signed in as `user` (?user=: the local provider's sign-in without a form), wait for the
    banner and (by default) expand the panel."""
    page.goto(f"{url}?user={user}")
    banner = page.get_by_role("button", name="missing images")
    expect(banner).to_be_visible()
    if expand:
        banner.click()
        expect(banner).to_have_attribute("aria-expanded", "true")


def take(browser: Browser, size: str, out: Path) -> list[Path]:
    """The five states at one size, on a stack of their own; returns the files written."""
    server = start()
    written = []
    try:
        server.backend.seed([REFUSED])
        page = browser.new_page(viewport=SIZES[size])

        def shot(state: str) -> None:
            path = out / f"panel-{state}-{size}.png"
            page.screenshot(path=str(path))  # the viewport: toasts stay where people see them
            written.append(path)

        open_panel(page, server.url, expand=False)
        shot("collapsed")
        page.get_by_role("button", name="missing images").click()
        expect(page.locator("#style")).to_have_value("travel-poster")
        shot("expanded")
        if size == "desktop":
            page.locator("main").screenshot(path=str(out / "panel.png"))
            written.append(out / "panel.png")

        server.backend.hold_jobs(True)
        page.get_by_role("button", name="Generate image for Summer Vacation").click()
        page.get_by_role("button", name="Generate image for Paris to Rome").click()
        expect(page.locator(".progress")).to_have_text("Generating images: 0 of 2 done.")
        shot("progress")

        server.backend.fail_next_api_calls(1000)
        expect(page.locator(".sync")).to_contain_text("Couldn't refresh the list")
        page.get_by_role("button", name="Generate image for Rome to Venice").click()
        expect(page.locator(".toast[role=alert]")).to_have_count(1)
        shot("failure")

        server.backend.fail_next_api_calls(0)
        server.backend.hold_jobs(False)
        for toast in page.get_by_role("button", name="Dismiss").all():
            toast.click()
        page.get_by_role("button", name="Generate all 3 images").click()
        page.get_by_role("button", name="Retry image for Night Out in Berlin").click()
        expect(page.locator(".status")).to_have_text(
            "Every trip, segment and reservation has its image.", timeout=60_000
        )
        page.get_by_role("button", name="Dismiss").first.wait_for()
        shot("empty")
        page.close()
    finally:
        server.stop()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            written = [path for size in SIZES for path in take(browser, size, args.out)]
        finally:
            browser.close()
    for path in written:
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
