"""Helpers of the browser tests: the page's two sizes, finding rows, an axe-core scan, the stored images."""

from __future__ import annotations

import boto3
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page

from devtools.screenshot import SIZES
from devtools.seed import ALICE
from devtools.serve import LocalServer

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
    """axe-core finds no serious or critical violation in the page as it is now, at both sizes (the page is
    put back at its own size afterwards)."""
    own_size = page.viewport_size
    blocking = []
    try:
        for size in (PHONE, DESKTOP):
            page.set_viewport_size(size)
            blocking += [
                f"{size['width']} px: {v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]}"
                for v in _AXE.run(page).response["violations"]
                if v["impact"] in BLOCKING_IMPACTS
            ]
    finally:
        page.set_viewport_size(own_size)
    assert not blocking, blocking


def images(server: LocalServer, user: str = ALICE) -> set[tuple[str, str]]:
    """(type, id) of every image object the worker stored for `user` in the bucket: the layout is
    images/<user>/<type>/<trip id>[/<segment id>[/<reservation id>]]/<job id>.png."""
    s3 = boto3.client("s3", endpoint_url=server.aws_endpoint, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=server.stack.physical("ImageBucket"), Prefix=f"images/{user}/")
    keys = [obj["Key"] for obj in listed.get("Contents", [])]
    assert all(key.endswith(".png") for key in keys)
    return {(key.split("/")[2], key.split("/")[-2]) for key in keys}
