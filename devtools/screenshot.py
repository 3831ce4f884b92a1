"""Screenshot of the expanded missing-images panel on the local stack, for the README.

    python -m devtools.screenshot [--out docs/panel.png]

Uses Debian's chromium (/usr/bin/chromium) through Playwright; the browser tests launch it the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from devtools.seed import ALICE
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


def launch(playwright: Playwright) -> Browser:
    """Headless system chromium with the flags that keep it quiet and offline."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def open_panel(page: Page, url: str, user: str = ALICE) -> None:
    """Open the page signed in (locally) as `user` and expand the panel."""
    page.goto(f"{url}?user={user}")
    page.get_by_role("button", name="items missing images").click()
    page.locator("#trips-list .item").first.wait_for()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/panel.png"))
    args = parser.parse_args()
    server = start()
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 820, "height": 900})
            open_panel(page, server.url)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.locator("main").screenshot(path=str(args.out))
            browser.close()
    finally:
        server.stop()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
