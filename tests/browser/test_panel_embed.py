"""<missing-images-panel> embedded in a plain host page the way the README shows: the host loads the script,
sets `api-base` and `page-size` and hands over a `tokenProvider`; the listing pages with "Show more"."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.panel import assert_accessible, row

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
      <missing-images-panel api-base="/api" page-size="2"></missing-images-panel>
    </main>
    <script type="module">
      await customElements.whenDefined("missing-images-panel");
      document.querySelector("missing-images-panel").tokenProvider = async () => {
        const response = await fetch("/local/sign-in?user=user-alice");
        return (await response.json()).token;
      };
    </script>
  </body>
</html>"""


def test_the_element_embedded_in_a_host_page_lists_pages_and_generates(page, server):
    host = f"{server.url}host/manage"
    page.route(host, lambda route: route.fulfill(content_type="text/html", body=HOST_PAGE))
    page.goto(host)
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
