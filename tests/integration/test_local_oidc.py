"""The local OpenID Connect provider (devtools/local_oidc.py) behind `make serve`: its ID tokens pass the local JWT
authorizer, login_hint signs a subject in without the form, and PKCE is checked."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from devtools.local_oidc import LocalIdentityProvider, local_provider, pkce_challenge

PAGE = "http://127.0.0.1:9/"  # only a registered redirect URI: nothing is asked of it


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalIdentityProvider]:
    with local_provider(PAGE) as running:
        yield running


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object) -> None:
        return None


def authorize(provider: LocalIdentityProvider, **params: str) -> tuple[int, str]:
    """The status of the provider's answer to an authorization request and where it redirects to."""
    query = {"response_type": "code", "client_id": provider.client_id, "redirect_uri": PAGE, "scope": "openid"}
    url = f"{provider.issuer}/oauth2/authorize?{urllib.parse.urlencode({**query, **params})}"
    try:
        with urllib.request.build_opener(NoRedirects).open(url) as answer:
            return answer.status, ""
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers.get("Location", "")


def exchange(provider: LocalIdentityProvider, code: str, verifier: str | None) -> tuple[int, dict]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": PAGE, "client_id": provider.client_id}
    if verifier is not None:
        form["code_verifier"] = verifier
    try:
        with urllib.request.urlopen(f"{provider.issuer}/oauth2/token", urllib.parse.urlencode(form).encode()) as ok:
            return ok.status, json.load(ok)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def test_a_signed_in_users_id_token_passes_the_local_authorizer(provider: LocalIdentityProvider) -> None:
    tokens = provider.sign_in("user-bob")

    claims = provider.authorizer()(tokens["id_token"])
    assert claims is not None
    assert (claims["sub"], claims["iss"], claims["aud"]) == ("user-bob", provider.issuer, [provider.client_id])
    # the access token is opaque: the page sends the ID token, and the front refuses anything else
    assert tokens["access_token"].count(".") != 2
    assert provider.authorizer()(tokens["access_token"]) is None


def test_another_providers_token_is_refused(provider: LocalIdentityProvider) -> None:
    with local_provider(PAGE) as other:
        foreign = other.sign_in("user-bob")["id_token"]
    assert provider.authorizer()(foreign) is None


def test_login_hint_signs_the_subject_in_and_pkce_is_checked(provider: LocalIdentityProvider) -> None:
    verifier = "v" * 50

    def code() -> str:
        status, location = authorize(provider, code_challenge=pkce_challenge(verifier), code_challenge_method="S256",
                                     login_hint="user-alice", state="s1")  # fmt: skip
        assert status == 302
        back = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
        assert back["state"] == ["s1"]
        return back["code"][0]

    assert exchange(provider, code(), "w" * 50)[0] == 400
    assert exchange(provider, code(), None)[0] == 400
    status, tokens = exchange(provider, code(), verifier)
    assert status == 200
    assert provider.authorizer()(tokens["id_token"])["sub"] == "user-alice"

    hint = {"login_hint": "user-alice"}
    assert authorize(provider, **hint)[0] == 400  # no code_challenge
    assert authorize(provider, code_challenge=verifier, code_challenge_method="plain", **hint)[0] == 400
    # no hint: the provider's form, and no one is signed in without it
    assert authorize(provider, code_challenge=pkce_challenge(verifier), code_challenge_method="S256") == (200, "")
