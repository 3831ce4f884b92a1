"""The missing-images panel in a real browser (Debian chromium via Playwright) against the local stack: the
listing, generating by keyboard and in bulk, people's words for states and errors, toasts, axe at both sizes."""

from __future__ import annotations

import json

import boto3
from playwright.sync_api import expect

from devtools.screenshot import open_panel
from devtools.seed import ALICE, NULL, reservation, segment, trip
from tests.browser.panel import (
    DESKTOP,
    PHONE,
    WORKER_TIMEOUT_MS,
    assert_accessible,
    badges,
    images,
    row,
)

ALICE_MISSING = {
    "trip": ["trip-summer", "trip-euro"],
    "segment": ["seg-rome-venice", "seg-paris-rome"],
    "reservation": ["res-eiffel"],
}


def test_banner_is_collapsed_and_lists_items_with_parent_context(new_page, server):
    page = new_page(PHONE)
    open_panel(page, server.url, expand=False)
    toggle = page.get_by_role("button", name="5 items missing images")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("li.item").first).to_be_hidden()
    assert_accessible(page)

    toggle.focus()
    page.keyboard.press("Enter")  # keyboard operable
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("button", name="Generate all 5 images")).to_be_visible()
    expect(page.get_by_label("Style")).to_have_value("travel-poster")
    expect(page.locator("#style option")).to_have_count(3)

    expect(page.locator("[data-kind=trips] .item-name")).to_have_text(["Summer Vacation", "Big Euro Adventure"])
    expect(page.get_by_role("heading", name="Segments (2)")).to_be_visible()
    expect(row(page, "Paris to Rome").locator(".item-context")).to_have_text("Big Euro Adventure")
    expect(row(page, "Eiffel Tower Tour").locator(".item-context")).to_have_text("Big Euro Adventure · Paris to Rome")
    # two rows may share a name: the parent makes each button's accessible name its own
    both = "Generate image for Eiffel Tower Tour, Big Euro Adventure, Paris to Rome"
    expect(page.get_by_role("button", name=both)).to_be_visible()
    expect(badges(page)).to_have_text(["Missing"] * 5)
    expect(page.get_by_text("Tokyo Food Tour")).to_have_count(0)  # Bob's record
    assert_accessible(page)

    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "false")


def test_generate_by_keyboard_moves_focus_on_when_the_image_is_stored(page, server):
    open_panel(page, server.url)
    page.get_by_label("Style").select_option("watercolor")
    generate = page.get_by_role("button", name="Generate image for Paris to Rome, Big Euro Adventure")
    generate.focus()
    page.keyboard.press("Enter")

    # the pressed button waits (aria-disabled, still focused), then its row leaves: focus goes to the next row
    expect(page.locator(".toast p")).to_contain_text(["Queued 1 image."])
    expect(row(page, "Paris to Rome")).to_have_count(0, timeout=WORKER_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Generate image for Eiffel Tower Tour")).to_be_focused()
    expect(page.locator(".toast p").last).to_have_text("1 image generated.")
    expect(page.get_by_role("button", name="4 items missing images")).to_be_visible()
    expect(page.locator("[data-kind=segments] .item-name")).to_have_text(["Rome to Venice"])
    recent = page.get_by_role("region", name="Generated in this session").get_by_role("listitem")
    expect(recent).to_have_text(["Paris to Rome, Big Euro Adventure"])
    assert images(server) == {("segment", "seg-paris-rome")}
    # the strip shows the image itself, from the record's imageUrl, and it loads
    dynamodb = boto3.client("dynamodb", endpoint_url=server.aws_endpoint, region_name="us-east-1")
    key = {"PK": {"S": f"USER#{ALICE}"}, "SK": {"S": "TRIP#trip-euro#SEGMENT#seg-paris-rome"}}
    record = dynamodb.get_item(TableName=server.stack.physical("TravelTable"), Key=key)["Item"]
    thumbnail = recent.locator("img")
    expect(thumbnail).to_have_attribute("src", record["imageUrl"]["S"])
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())


def test_generate_all_ends_in_the_empty_state(page, server):
    open_panel(page, server.url)
    page.get_by_role("button", name="Generate all 5 images").click()

    expect(page.locator(".toast p").first).to_have_text("Queued 5 images.")
    expect(page.locator(".panel")).to_be_hidden(timeout=WORKER_TIMEOUT_MS)
    status = page.locator(".status")
    expect(status).to_have_text("Every trip, segment and reservation has its image.")
    expect(status).to_be_focused()  # the focused button went away with the panel
    expect(page.locator(".toast p").last).to_have_text("5 images generated.")
    expect(page.locator(".recent li")).to_have_count(5)
    assert images(server) == {(kind, i) for kind, ids in ALICE_MISSING.items() for i in ids}
    assert images(server, "user-bob") == set()
    assert_accessible(page)


def test_failed_items_say_why_in_words_can_be_retried_and_focus_stays_put(new_page, server):
    server.backend.seed(
        [
            trip(ALICE, "trip-refused", "Night Out", "2026-04-01T00:00:00Z", NULL, **_failed("content_filtered")),
            trip(ALICE, "trip-busy", "Beach Day", "2026-04-02T00:00:00Z", NULL, **_failed("throttled")),
            trip("user-carol", "trip-solo", "Solo Trip", "2026-04-01T00:00:00Z", NULL),
        ]
    )
    page = new_page(PHONE)
    open_panel(page, server.url)
    refused = row(page, "Night Out")
    expect(refused.locator(".badge")).to_have_text("Failed")
    expect(refused.locator(".item-reason")).to_have_text("The image model refused this prompt (content_filtered)")
    expect(row(page, "Beach Day").locator(".item-reason")).to_have_text("The image model was too busy (throttled)")
    expect(refused.get_by_role("button", name="Retry image for Night Out")).to_have_text("Retry")
    # Generate All leaves a refused prompt alone (the API's `all` skips it): 6 of the 7 listed
    expect(page.get_by_role("button", name="Generate all 6 images")).to_be_visible()
    assert_accessible(page)

    # Enter on Generate: the button waits (aria-disabled) and keeps focus; pressing again queues nothing more
    server.backend.hold_jobs(True)
    page.get_by_role("button", name="Generate image for Summer Vacation").focus()
    page.keyboard.press("Enter")
    waiting = page.get_by_role("button", name="Queued image for Summer Vacation")
    expect(waiting).to_be_focused()
    expect(waiting).to_have_attribute("aria-disabled", "true")
    expect(row(page, "Summer Vacation").locator(".badge")).to_have_text("Queued")
    expect(page.locator(".banner-progress")).to_have_text("0 of 1 done")
    expect(page.locator(".progress")).to_have_text("Generating images: 0 of 1 done.")
    page.keyboard.press("Enter")
    expect(page.locator(".toast p")).to_have_text(["Queued 1 image."])

    retry = page.get_by_role("button", name="Retry failed (2)")
    retry.click()
    expect(page.locator(".toast p")).to_have_text(["Queued 1 image.", "Queued 2 images."])
    expect(refused.locator(".badge")).to_have_text("Queued")
    expect(retry).to_be_hidden()
    expect(page.get_by_role("button", name="Generate all 4 images")).to_be_focused()

    page.get_by_role("button", name="Generate all 4 images").click()
    nothing = page.get_by_role("button", name="Generate all images")
    expect(nothing).to_have_attribute("aria-disabled", "true")
    expect(nothing).to_have_accessible_description(
        "Nothing to generate: every image is queued, being generated, or failed in a way only Retry can fix."
    )
    expect(nothing).to_be_focused()
    expect(page.locator(".banner-progress")).to_have_text("0 of 7 done")
    assert_accessible(page)

    carol = new_page(PHONE)  # one record: the words are singular, and empty kinds are hidden
    open_panel(carol, server.url, "user-carol")
    expect(carol.get_by_role("button", name="1 item missing images")).to_be_visible()
    expect(carol.get_by_role("button", name="Generate 1 image", exact=True)).to_be_visible()
    expect(carol.locator("section.kind:visible h2")).to_have_text(["Trips (1)"])


def _failed(reason: str) -> dict:
    return {"imageStatus": "failed", "imageError": reason}


def test_errors_name_what_failed_and_toasts_are_bounded_and_dismissable(page, server):
    open_panel(page, server.url)
    # a style the API does not know: a real 400 from the handler, its message and code (added once the
    # styles have loaded, or loading them would replace it)
    expect(page.locator("#style option[value='watercolor']")).to_have_count(1)
    page.locator("#style").evaluate("select => { select.add(new Option('Bogus', 'no-such-style')); }")
    page.get_by_label("Style").select_option("no-such-style")
    generate = page.get_by_role("button", name="Generate image for Summer Vacation")
    generate.click()
    error = page.locator(".toast[role=alert]")
    expect(error.locator("p")).to_have_text(
        [
            "Couldn't queue the image for Summer Vacation: No prompt style with id 'no-such-style'; see GET /styles"
            " (unknown_style)."
        ]
    )

    # a 500 from the gateway: the panel's words, not "Internal Server Error"
    page.route(
        "**/api/image-jobs",
        lambda route: route.fulfill(status=500, content_type="application/json", body=json.dumps({"message": "x"})),
    )
    for name in ("Summer Vacation", "Big Euro Adventure", "Rome to Venice"):
        page.get_by_role("button", name=f"Generate image for {name}").click()
        expect(page.get_by_role("button", name=f"Generate image for {name}")).to_be_visible()
    expect(error).to_have_count(3)  # at most three; errors stay until dismissed
    expect(error.last.locator("p")).to_have_text(
        "Couldn't queue the image for Rome to Venice, Big Euro Adventure: the service had a problem (HTTP 500)."
    )
    expect(row(page, "Summer Vacation").locator(".badge")).to_have_text("Missing")

    close = error.first.get_by_role("button", name="Dismiss")
    close.focus()
    page.keyboard.press("Enter")
    expect(error).to_have_count(2)
    expect(error.first.get_by_role("button", name="Dismiss")).to_be_focused()
    assert_accessible(page)


def test_long_unbroken_titles_wrap_without_widening_the_page_from_320_to_1920_px(page, server):
    long_trip = "Grand" + "Tour" * 43 + "X"  # 180 characters, no space
    long_segment = "Leg" * 60
    server.backend.seed(
        [
            trip(ALICE, "trip-long", long_trip, "2026-05-01T00:00:00Z", NULL),
            segment(ALICE, "trip-long", "seg-long", long_segment, "2026-05-01T00:01:00Z", NULL),
            reservation(ALICE, "trip-long", "seg-long", "res-long", "Hotel" * 36, "2026-05-01T00:02:00Z", NULL),
        ]
    )
    open_panel(page, server.url)
    narrowest, widest = {"width": 320, "height": 640}, {"width": 1920, "height": 1080}
    for viewport in (narrowest, PHONE, DESKTOP, widest):
        page.set_viewport_size(viewport)
        expect(row(page, "Hotel")).to_contain_text(long_segment)
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], f"horizontal scroll at {viewport}: {width}"
        for name in (long_trip, long_segment, "Hotel" * 36):
            item = row(page, name[:20])
            expect(item.locator(".item-name")).to_have_attribute("title", name)  # the whole name, however cut
            item.get_by_role("button").click(trial=True)  # nothing covers the button
            name_box = item.locator(".item-name").bounding_box()
            badge_box = item.locator(".badge").bounding_box()
            assert (
                name_box["x"] + name_box["width"] <= badge_box["x"]
                or name_box["y"] + name_box["height"] <= badge_box["y"]
            )
    assert_accessible(page)
