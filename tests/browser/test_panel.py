"""The missing-images panel in a real browser (Debian chromium via Playwright) against the local stack."""

from __future__ import annotations

import json

import boto3
import pytest

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev)")
from devtools.screenshot import CHROMIUM, launch, open_panel  # noqa: E402 - needs playwright
from devtools.seed import ALICE  # noqa: E402
from devtools.serve import start  # noqa: E402

expect = playwright_api.expect
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it when root)",
    ),
]

WORKER_TIMEOUT_MS = 15_000
ALICE_MISSING = {
    "trip": ["trip-summer", "trip-euro"],
    "segment": ["seg-rome-venice", "seg-paris-rome"],
    "reservation": ["res-eiffel"],
}


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def server(aws_environment):
    """A fresh local stack per test, started after conftest's environment so that its endpoint wins."""
    handle = start()
    yield handle
    handle.stop()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def images(server, user: str = ALICE) -> set[tuple[str, str]]:
    """(type, id) of every image object the worker stored for `user` in the bucket: the layout is
    images/<user>/<type>/<trip id>[/<segment id>[/<reservation id>]]/<job id>.png."""
    s3 = boto3.client("s3", endpoint_url=server.aws_endpoint, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=server.stack.physical("ImageBucket"), Prefix=f"images/{user}/")
    keys = [obj["Key"] for obj in listed.get("Contents", [])]
    assert all(key.endswith(".png") for key in keys)
    return {(key.split("/")[2], key.split("/")[-2]) for key in keys}


def test_banner_is_collapsed_and_lists_items_with_parent_context(page, server):
    page.goto(f"{server.url}?user={ALICE}")
    toggle = page.locator("#toggle")
    expect(toggle).to_have_text("⚠ 5 items missing images")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#panel-body")).to_be_hidden()

    toggle.focus()
    page.keyboard.press("Enter")  # keyboard operable
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("button", name="Generate All 5 Images")).to_be_visible()
    expect(page.get_by_label("Style")).to_have_value("travel-poster")
    expect(page.locator("#style option")).to_have_count(3)

    expect(page.locator("#trips-list .item-name")).to_have_text(["Summer Vacation", "Big Euro Adventure"])
    segment = page.locator("#segments-list .item", has_text="Paris to Rome")
    expect(segment.locator(".item-context")).to_have_text("Big Euro Adventure")
    reservation = page.locator("#reservations-list .item", has_text="Eiffel Tower Tour")
    expect(reservation.locator(".item-context")).to_have_text("Big Euro Adventure · Paris to Rome")
    expect(page.locator(".item .status")).to_have_text(["missing"] * 5)
    expect(page.get_by_text("Tokyo Food Tour")).to_have_count(0)  # Bob's record


def test_generate_one_item_removes_it_once_the_worker_stored_its_image(page, server):
    open_panel(page, server.url)
    page.get_by_label("Style").select_option("watercolor")
    page.get_by_role("button", name="Generate image for Paris to Rome").click()

    expect(page.locator("#toasts")).to_contain_text("Queued 1 image.")
    expect(page.locator("#segments-list .item", has_text="Paris to Rome")).to_have_count(0, timeout=WORKER_TIMEOUT_MS)
    expect(page.locator("#toasts")).to_contain_text("1 image generated.")
    expect(page.locator("#toggle")).to_have_text("⚠ 4 items missing images")
    expect(page.locator("#segments-list .item-name")).to_have_text(["Rome to Venice"])
    assert images(server) == {("segment", "seg-paris-rome")}


def test_generate_all_hides_the_banner_when_every_image_is_stored(page, server):
    open_panel(page, server.url)
    page.get_by_role("button", name="Generate All 5 Images").click()

    expect(page.locator("#toasts")).to_contain_text("Queued 5 images.")
    expect(page.locator("#panel")).to_be_hidden(timeout=WORKER_TIMEOUT_MS)
    expect(page.locator("#page-status")).to_have_text("Every trip, segment and reservation has its image.")
    expect(page.locator("#toasts")).to_contain_text("5 images generated.")
    assert images(server) == {(kind, i) for kind, ids in ALICE_MISSING.items() for i in ids}
    assert images(server, "user-bob") == set()


def test_api_errors_show_their_message_in_an_error_toast(page, server):
    open_panel(page, server.url)
    # a style the API does not know: a real 400 from the handler
    page.evaluate("""() => {
        const select = document.getElementById("style");
        select.add(new Option("Bogus", "no-such-style"));
        select.value = "no-such-style";
    }""")
    page.get_by_role("button", name="Generate image for Summer Vacation").click()
    error = page.locator("#toasts [role=alert]")
    expect(error).to_have_count(1)
    expect(error).not_to_have_text("")
    assert "style" in error.inner_text().lower()
    assert images(server) == set()

    # a 500 held in flight: the button says "Queueing…" and is disabled until the answer comes
    held = []
    page.route("**/api/image-jobs", lambda route: held.append(route))
    page.get_by_label("Style").select_option("travel-poster")
    page.get_by_role("button", name="Generate image for Summer Vacation").click()
    busy = page.get_by_role("button", name="Queueing image for Summer Vacation")
    expect(busy).to_be_disabled()
    expect(busy).to_have_text("Queueing…")
    for _ in range(100):  # the route callback runs while Playwright processes events
        if held:
            break
        page.wait_for_timeout(50)
    held[0].fulfill(
        status=500,
        content_type="application/json",
        body=json.dumps({"error": {"code": "internal_error", "message": "Injected failure for the test."}}),
    )
    expect(page.locator("#toasts [role=alert]", has_text="Injected failure for the test.")).to_have_count(1)
    again = page.get_by_role("button", name="Generate image for Summer Vacation")
    expect(again).to_be_enabled()
    expect(again).to_have_text("Generate")
    expect(page.locator("#trips-list .item", has_text="Summer Vacation").locator(".status")).to_have_text("missing")
