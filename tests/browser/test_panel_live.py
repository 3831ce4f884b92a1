"""The panel follows the records on its own: through API failures, a reload, work started elsewhere, a first
load that failed, and a bulk run whose fan-out queues more than the first answer says."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from devtools.screenshot import open_panel
from devtools.seed import ALICE, NULL, trip
from devtools.serve import start
from tests.browser.panel import PHONE, WORKER_TIMEOUT_MS, assert_accessible, badges, row

FINISHED = "Every trip, segment and reservation has its image."


def expect_finished(page, generated: int) -> None:
    expect(page.locator(".status")).to_have_text(FINISHED, timeout=WORKER_TIMEOUT_MS)
    expect(page.locator(".panel")).to_be_hidden()
    expect(page.locator(".toast p").last).to_have_text(f"{generated} images generated.")


def test_a_503_blip_mid_progress_ends_in_the_finished_state(page, server):
    open_panel(page, server.url)
    server.backend.hold_jobs(True)
    page.get_by_role("button", name="Generate all 5 images").click()
    expect(badges(page)).to_have_text(["Queued"] * 5)
    expect(page.get_by_role("button", name="missing images")).to_contain_text("0 of 5 done")

    server.backend.fail_next_api_calls(2)  # the next round of polling (listing and progress) fails
    sync = page.locator(".sync")
    expect(sync).to_have_text("Couldn't refresh the list: the service had a problem (HTTP 503). Trying again in 2 s.")
    assert_accessible(page)
    server.backend.hold_jobs(False)
    expect_finished(page, 5)
    expect(sync).to_be_hidden()


def test_a_reload_mid_progress_resumes_and_ends_in_the_finished_state(new_page, server):
    page = new_page(PHONE)
    open_panel(page, server.url)
    server.backend.hold_jobs(True)
    page.get_by_role("button", name="Generate all 5 images").click()
    expect(badges(page)).to_have_text(["Queued"] * 5)

    page.reload()
    banner = page.get_by_role("button", name="missing images")
    expect(banner.locator(".banner-progress")).to_have_text("0 of 5 done")  # the request's progress is kept
    banner.click()
    expect(badges(page)).to_have_text(["Queued"] * 5)
    assert_accessible(page)
    server.backend.hold_jobs(False)
    expect_finished(page, 5)


def test_work_queued_elsewhere_shows_when_the_tab_comes_back_and_is_followed(page, server):
    open_panel(page, server.url)
    expect(badges(page)).to_have_text(["Missing"] * 5)
    server.backend.hold_jobs(True)
    # another tab queues a record; this page polls nothing while nothing it shows is in progress
    queued = page.evaluate(
        """async (token) => (await fetch("/api/image-jobs", {
            method: "POST",
            headers: {"Authorization": `Bearer ${token}`, "Content-Type": "application/json"},
            body: JSON.stringify({tripIds: ["trip-summer"]}),
        })).status""",
        server.provider.sign_in(ALICE)["id_token"],
    )
    assert queued == 202
    expect(row(page, "Summer Vacation").locator(".badge")).to_have_text("Missing")

    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # the tab is shown again
    expect(row(page, "Summer Vacation").locator(".badge")).to_have_text("Queued")
    expect(page.locator(".progress")).to_have_text("1 image queued or being generated.")
    server.backend.hold_jobs(False)
    expect(row(page, "Summer Vacation")).to_have_count(0, timeout=WORKER_TIMEOUT_MS)
    expect(page.get_by_role("button", name="4 items missing images")).to_be_visible()


def test_a_failed_first_load_offers_retry_and_recovers_on_its_own(page, server):
    server.backend.fail_next_api_calls(1)
    page.goto(f"{server.url}?user={ALICE}")
    error = page.locator(".load-error")
    expect(error.locator("p")).to_have_text(
        "Couldn't load the missing images: the service had a problem (HTTP 503). Trying again in 2 s."
    )
    assert_accessible(page)
    expect(page.get_by_role("button", name="5 items missing images")).to_be_visible()  # no one pressed anything
    expect(error).to_be_hidden()

    server.backend.fail_next_api_calls(1)
    page.reload()
    expect(error.locator("p")).to_contain_text("Trying again in 2 s.")
    error.get_by_role("button", name="Retry").focus()
    page.keyboard.press("Enter")  # answered (by this press or the timer): focus goes on to the banner
    expect(page.get_by_role("button", name="5 items missing images")).to_be_focused()


@pytest.fixture
def budgeted_server(aws_environment):
    """The local stack with a daily image budget of 100 images."""
    handle = start(daily_image_budget=100)
    yield handle
    handle.stop()


def test_a_large_bulk_run_over_the_budget_asks_first_with_its_estimate_and_counts_what_the_fan_out_queues(
    new_page, budgeted_server
):
    server = budgeted_server
    server.backend.seed(
        [
            trip(ALICE, f"trip-{n:03}", f"Weekend {n}", f"2025-01-01T00:{n // 60:02}:{n % 60:02}Z", NULL)
            for n in range(120)
        ]
    )
    page = new_page(PHONE)
    open_panel(page, server.url)
    server.backend.hold_jobs(True)
    generate = page.get_by_role("button", name="Generate all 125 images")
    # the estimate stands beside the button before anything is pressed, and the button's description says it
    estimate = "About $5.00 for 125 images; 100 left in today's image budget."
    expect(page.locator("#all-hint")).to_have_text(estimate)
    expect(generate).to_have_accessible_description(estimate)
    generate.click()
    dialog = page.get_by_role("dialog", name="Generate 125 images?")
    expect(dialog).to_contain_text("This queues 125 images in the Travel poster style, about $5.00.")
    expect(dialog).to_contain_text("Today's image budget has 100 of 100 left: the other 25 wait until it renews")
    assert_accessible(page)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(generate).to_be_focused()
    expect(page.locator(".toast")).to_have_count(0)

    posted = []
    page.on("request", lambda r: posted.append(json.loads(r.post_data)) if r.method == "POST" else None)
    generate.click()
    dialog.get_by_role("button", name="Generate 125 images").click()
    expect(page.locator(".toast p")).to_have_text(
        ["Queued 100 of 125 images; the rest are being queued."], timeout=WORKER_TIMEOUT_MS
    )
    # the fan-out queues the other 25 behind the answer: the batch's total grows to the whole count
    expect(page.locator(".progress")).to_have_text("Generating images: 0 of 125 done.")
    expect(page.get_by_role("button", name="Show more (25 not shown)")).to_be_visible()
    assert posted == [{"all": True, "confirmOverBudget": True, "styleId": "travel-poster"}]
