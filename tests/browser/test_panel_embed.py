"""<missing-images-panel> embedded in a plain host page the way the README shows: the host loads the script,
sets `api-base` and `page-size` and hands over a `tokenProvider` (with a token the host got from the local
identity provider); the listing pages with "Show more". In record mode (record-type, record-id) it regenerates
one record's image."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from devtools.seed import ALICE
from tests.browser.panel import WORKER_TIMEOUT_MS, assert_accessible, images, row

HOST_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Travel app: manage trips</title>
    <style>button { background: #f00; font-size: 3rem; }</style>
    <script src="/missing-images-panel.js" defer></script>
  </head>
  <body>
    <main>
      <h1>Manage trips</h1>
      <missing-images-panel api-base="/api" {attributes}></missing-images-panel>
    </main>
    <script type="module">
      await customElements.whenDefined("missing-images-panel");
      document.querySelector("missing-images-panel").tokenProvider = async () => {token};
    </script>
  </body>
</html>"""


def open_host(page, server, attributes: str) -> None:
    """The host page at the local server's origin (so that /api is its own), signed in as Alice."""
    host = f"{server.url}host/manage"
    token = json.dumps(server.provider.sign_in(ALICE)["id_token"])
    body = HOST_PAGE.replace("{attributes}", attributes).replace("{token}", token)
    page.route(host, lambda route: route.fulfill(content_type="text/html", body=body))
    page.goto(host)


def test_the_element_embedded_in_a_host_page_lists_pages_and_generates(page, server):
    open_host(page, server, 'page-size="2"')
    page.get_by_role("button", name="5 items missing images").click()
    expect(page.locator(".item-name")).to_have_text(["Summer Vacation", "Eiffel Tower Tour"])  # newest first
    generate = page.get_by_role("button", name="Generate image for Summer Vacation")
    expect(generate).to_have_css("background-color", "rgb(255, 255, 255)")  # the host's styles stay outside
    assert_accessible(page)

    more = page.get_by_role("button", name="Show more (3 not shown)")
    more.click()
    expect(page.locator(".item-name")).to_have_count(4)
    expect(page.get_by_role("button", name="Show more (1 not shown)")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("[data-kind=trips] .item-name")).to_have_text(["Summer Vacation", "Big Euro Adventure"])
    expect(page.locator(".more")).to_be_hidden()
    expect(page.get_by_role("button", name="Generate image for Big Euro Adventure")).to_be_focused()

    generate.click()
    expect(page.locator(".toast p")).to_contain_text(["Queued 1 image."])
    expect(row(page, "Summer Vacation")).to_have_count(0, timeout=15_000)
    expect(page.locator(".item-name")).to_have_count(4)  # every row shown stays listed after the refresh
    expect(page.locator(".more")).to_be_hidden()


def test_record_mode_regenerates_one_image_and_follows_it_across_a_reload(page, server):
    open_host(page, server, 'record-type="trip" record-id="trip-ski"')  # Ski Weekend has an image
    expect(page.locator(".panel")).to_have_count(0)
    expect(page.get_by_label("Style")).to_have_value("travel-poster")
    assert_accessible(page)
    page.get_by_label("Style").select_option("watercolor")
    posted = []
    page.on("request", lambda r: posted.append(json.loads(r.post_data)) if r.method == "POST" else None)
    server.backend.hold_jobs(True)

    regenerate = page.get_by_role("button", name="Regenerate image")
    regenerate.focus()
    page.keyboard.press("Enter")
    waiting = page.get_by_role("button", name="Regenerating…")
    expect(waiting).to_be_focused()
    expect(waiting).to_have_attribute("aria-disabled", "true")
    expect(page.locator(".status")).to_have_text("Waiting in the queue…")
    assert posted == [{"tripIds": ["trip-ski"], "regenerate": True, "styleId": "watercolor"}]
    assert_accessible(page)

    page.reload()  # the request is followed again after a reload
    expect(page.get_by_role("button", name="Regenerating…")).to_have_attribute("aria-disabled", "true")
    server.backend.hold_jobs(False)
    expect(page.locator(".status")).to_have_text("The new image is ready.", timeout=WORKER_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Regenerate image")).not_to_have_attribute("aria-disabled", "true")
    assert images(server) == {("trip", "trip-ski")}
