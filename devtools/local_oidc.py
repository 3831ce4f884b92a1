"""A real OpenID Connect provider on a loopback port for `make serve` and the tests (oidc-provider-mock).

LOCAL ONLY. The provider has no passwords: whoever reaches it picks a subject on its form and is signed in as
that `sub`. It signs RS256 ID tokens with a key of its own (published at its `jwks_uri`), which the local front
verifies the way API Gateway does (devtools.jwt_authorizer). Its access tokens are opaque strings, not JWTs,
so the page sends the ID token, whose `aud` is the client id (what JwtAudience names).

Two things this wrapper adds in front of the mock:

- `login_hint=<sub>` on an authorization request signs `<sub>` in at once, without the form. The page passes
  its `?user=<id>` as that hint, so `?user=user-bob` keeps signing in as user-bob in one redirect.
- PKCE, which the mock accepts but does not check: an authorization request needs an S256 `code_challenge`,
  and a code is exchanged only with the `code_verifier` that hashes to it, as providers that require PKCE for
  public clients do.

One client is registered per provider, public (no secret, `token_endpoint_auth_method` none), with the page's
URL as its only redirect URI.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import oidc_provider_mock
import werkzeug.serving

from devtools.jwt_authorizer import JwtAuthorizer, discovered_jwks, fetch_json

SCOPE = "openid profile email"
_AUTHORIZE = "/oauth2/authorize"
_TOKEN = "/oauth2/token"  # noqa: S105 - an endpoint path, not a secret
_TIMEOUT_S = 5


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE code verifier (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class _LocalFront:
    """WSGI middleware before the mock: the login_hint shortcut and the PKCE checks (module docstring)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._challenges: dict[str, str] = {}  # authorization code -> its S256 code challenge
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path == _AUTHORIZE:
            return self._authorize(environ, start_response)
        if path == _TOKEN and method == "POST":
            return self._token(environ, start_response)
        return self._app(environ, start_response)

    def _authorize(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        challenge = query.get("code_challenge", [""])[0]
        if not challenge or query.get("code_challenge_method") != ["S256"]:
            return _error(start_response, "invalid_request", "PKCE is required: code_challenge with method S256")
        if environ["REQUEST_METHOD"] == "GET" and query.get("login_hint", [""])[0]:
            _set_form(environ, {"sub": query["login_hint"][0]})  # as if the form had been sent for that subject

        def remember_code(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            location = next((value for name, value in headers if name.lower() == "location"), "")
            code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("code")
            if code:
                with self._lock:
                    self._challenges[code[0]] = challenge
            return start_response(status, headers, *args)

        return self._app(environ, remember_code)

    def _token(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if form.get("grant_type") == ["authorization_code"]:
            with self._lock:
                challenge = self._challenges.pop(form.get("code", [""])[0], None)
            verifier = form.get("code_verifier", [""])[0]
            if challenge is None or not verifier or pkce_challenge(verifier) != challenge:
                return _error(start_response, "invalid_grant", "the code_verifier does not match the code_challenge")
        environ["wsgi.input"] = io.BytesIO(body)
        return self._app(environ, start_response)


def _set_form(environ: dict[str, Any], fields: dict[str, str]) -> None:
    body = urllib.parse.urlencode(fields).encode()
    environ.update(REQUEST_METHOD="POST", CONTENT_TYPE="application/x-www-form-urlencoded")
    environ.update(CONTENT_LENGTH=str(len(body)), **{"wsgi.input": io.BytesIO(body)})


def _error(start_response: Callable[..., Any], error: str, description: str) -> list[bytes]:
    body = json.dumps({"error": error, "error_description": description}).encode()
    # CORS as the mock's own answers have it, so that the page can read why
    headers = [("Content-Type", "application/json"), ("Access-Control-Allow-Origin", "*")]
    start_response("400 Bad Request", [*headers, ("Content-Length", str(len(body)))])
    return [body]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the redirect back to the page carries the code: read it instead of following it


@dataclass(frozen=True)
class LocalIdentityProvider:
    """The running provider: `issuer` (its URL) and the page's `client_id` (the local JwtAudience)."""

    issuer: str
    client_id: str
    redirect_uri: str

    def authorizer(self) -> JwtAuthorizer:
        """What the local front checks tokens with: this issuer, this client as the audience, its JWKS."""
        return JwtAuthorizer(self.issuer, [self.client_id], discovered_jwks(self.issuer))

    def sign_in(self, user: str) -> dict[str, Any]:
        """The token response for `user` from the same code flow as the page's (PKCE, login_hint), without a
        browser: for tests and scripts that need a token, e.g. a host app handing one over."""
        discovery = fetch_json(self.issuer + "/.well-known/openid-configuration")
        verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": SCOPE,
                "state": state,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
                "login_hint": user,
            }
        )
        try:
            urllib.request.build_opener(_NoRedirects).open(
                f"{discovery['authorization_endpoint']}?{query}", timeout=_TIMEOUT_S
            )
            raise RuntimeError(f"the provider did not sign {user!r} in")
        except urllib.error.HTTPError as redirect:
            back = urllib.parse.parse_qs(urllib.parse.urlsplit(redirect.headers.get("Location", "")).query)
        if back.get("state") != [state] or "code" not in back:
            raise RuntimeError(f"the provider did not sign {user!r} in: {back}")
        form = {
            "grant_type": "authorization_code",
            "code": back["code"][0],
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(discovery["token_endpoint"], data, timeout=_TIMEOUT_S) as response:  # noqa: S310
            return json.load(response)


@contextmanager
def local_provider(
    redirect_uri: str, *, token_lifetime: timedelta = timedelta(hours=1), host: str = "127.0.0.1"
) -> Iterator[LocalIdentityProvider]:
    """Run the provider on a free port with the page's client registered; stop it on exit. ID and access
    tokens live `token_lifetime` (the tests shorten it to see them expire)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request is noise here
    app = oidc_provider_mock.app(require_client_registration=True, access_token_max_age=token_lifetime)
    app.wsgi_app = _LocalFront(app.wsgi_app)  # type: ignore[method-assign]
    server = werkzeug.serving.make_server(host, 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="oidc-provider")
    serving.daemon = True
    serving.start()
    try:
        issuer = f"http://{host}:{server.server_port}"
        registration = {"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"}
        request = urllib.request.Request(  # noqa: S310 - our own provider
            issuer + "/oauth2/clients", json.dumps(registration).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:  # noqa: S310
            client_id = json.load(response)["client_id"]
        yield LocalIdentityProvider(issuer, client_id, redirect_uri)
    finally:
        server.shutdown()
        serving.join(5)
        server.server_close()
