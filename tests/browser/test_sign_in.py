"""The page's own sign-in (web/oidc.js) against the local OpenID Connect provider: ?user= signs in through it,
an expiring token is renewed (or asked for again) without losing the page, sign-out stops the API calls, and
the published config.js takes a host app's token instead of signing in."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Page, Request, expect

from devtools.publish_panel import config_js
from devtools.seed import ALICE, BOB
from devtools.serve import LocalServer, start
from tests.browser.panel import assert_accessible

SESSION = "imageRecovery.oidc.session"
LIFETIME_S = 4  # the page renews a token in the last quarter of its life


def stored_token(page: Page) -> str | None:
    session = page.evaluate(f"sessionStorage.getItem({json.dumps(SESSION)})")
    return json.loads(session)["idToken"] if session else None


def api_tokens(page: Page) -> list[str]:
    """The bearer token of every API request the page sends from now on."""
    sent: list[str] = []

    def record(request: Request) -> None:
        if "/api/" in request.url:
            sent.append(request.headers.get("authorization", "").removeprefix("Bearer "))

    page.on("request", record)
    return sent


@pytest.fixture
def short_tokens(aws_environment) -> Iterator[LocalServer]:
    """A local stack whose provider issues tokens that expire after LIFETIME_S."""
    handle = start(token_lifetime=timedelta(seconds=LIFETIME_S))
    yield handle
    handle.stop()


def test_user_signs_in_as_bob_sees_his_records_and_signing_out_stops_the_calls(page, server):
    page.goto(f"{server.url}?user={BOB}")
    expect(page.locator("#user-name")).to_have_text(BOB)
    banner = page.get_by_role("button", name="1 item missing images")
    banner.click()
    expect(page.locator(".item-name")).to_have_text(["Tokyo Food Tour"])  # Bob's, none of Alice's
    assert page.url == f"{server.url}?user={BOB}"  # the provider's code and state are gone from the address
    assert server.provider.authorizer()(stored_token(page))["sub"] == BOB
    assert_accessible(page)

    signed_out = stored_token(page)
    sent = api_tokens(page)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()  # the provider's own confirmation
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert page.url == f"{server.url}?user={BOB}"
    assert stored_token(page) is None
    expect(page.locator("#signed-in")).to_be_hidden()

    page.reload()  # signed out stays signed out: no sign-in until asked
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.wait_for_timeout(500)
    assert sent == []
    assert page.url == f"{server.url}?user={BOB}"

    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#user-name")).to_have_text(BOB)
    expect(page.get_by_role("button", name="1 item missing images")).to_be_visible()
    assert sent and all(token == stored_token(page) != signed_out for token in sent)


def test_an_expiring_token_is_renewed_in_place_and_asked_for_again_when_renewal_fails(page, short_tokens):
    server = short_tokens
    page.goto(f"{server.url}?user={ALICE}")
    page.get_by_role("button", name="5 items missing images").click()
    first = stored_token(page)
    page.evaluate("window.notReloaded = true")
    sent = api_tokens(page)

    page.wait_for_timeout(LIFETIME_S * 1000 * 3 // 4 + 200)
    with page.expect_response(lambda response: "/api/missing-images" in response.url) as listing:
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # the panel refreshes its listing
    assert listing.value.status == 200
    renewed = stored_token(page)
    assert renewed != first
    assert set(sent) == {renewed}  # the API saw only the renewed token, and accepted it
    assert server.provider.authorizer()(renewed)["sub"] == ALICE
    assert page.evaluate("window.notReloaded") is True  # renewed with the refresh token, in place
    expect(page.get_by_role("button", name="5 items missing images")).to_have_attribute("aria-expanded", "true")

    # the provider forgets the refresh token: the page signs in again (a redirect) and comes back to itself
    revoke = urllib.request.Request(f"{server.provider.issuer}/users/{ALICE}/revoke-tokens", method="POST")
    urllib.request.urlopen(revoke).close()
    page.wait_for_timeout(LIFETIME_S * 1000 * 3 // 4 + 200)
    with page.expect_navigation(url=lambda url: "code=" in url):  # back from the provider with a code
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(page).to_have_url(f"{server.url}?user={ALICE}")
    expect(page.get_by_role("button", name="5 items missing images")).to_be_visible()
    expect(page.locator("#user-name")).to_have_text(ALICE)
    assert page.evaluate("window.notReloaded") is None
    assert stored_token(page) not in (first, renewed)


def test_the_published_config_takes_a_handed_over_token_and_otherwise_signs_in_at_the_issuer(new_page, server):
    published = config_js("/api", server.provider.issuer, server.provider.client_id, server.url)
    alice = server.provider.sign_in(ALICE)["id_token"]

    def open_published(page: Page, url: str) -> None:
        page.route(
            f"{server.url}config.js", lambda route: route.fulfill(content_type="text/javascript", body=published)
        )
        page.goto(url)

    host = new_page()  # a host app on another origin opens the panel with its user's token
    sent = api_tokens(host)
    open_published(host, f"{server.url}#access_token={alice}")
    expect(host.get_by_role("button", name="5 items missing images")).to_be_visible()
    assert host.url == server.url  # the token left the address bar
    assert set(sent) == {alice}
    assert stored_token(host) is None  # no sign-in of the page's own
    expect(host.locator("#signed-in")).to_be_hidden()

    own = new_page()  # no token handed over: the provider's form asks who signs in
    open_published(own, server.url)
    own.get_by_label("Subject").fill(BOB)
    own.get_by_role("button", name="Authorize", exact=True).click()
    expect(own.locator("#user-name")).to_have_text(BOB)
    expect(own.get_by_role("button", name="1 item missing images")).to_be_visible()
