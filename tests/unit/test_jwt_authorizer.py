"""The local front's JWT authorizer (devtools/jwt_authorizer.py) accepts what API Gateway's does and nothing else:
tokens signed here with keys of our own, a fixed clock, no network."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from devtools.jwt_authorizer import JwtAuthorizer, discovered_jwks

ISSUER = "https://idp.example.com"
CLIENT_ID = "panel-client"
NOW = 1_800_000_000
KEY = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "key-1"})  # same kid, another key: a forgery
CLAIMS = {"iss": ISSUER, "aud": [CLIENT_ID], "sub": "user-bob", "iat": NOW - 10, "exp": NOW + 300}


def token(key: Any = KEY, header: dict | None = None, **changes: Any) -> str:
    claims = {name: value for name, value in {**CLAIMS, **changes}.items() if value is not None}
    return jwt.encode(header or {"alg": "RS256", "kid": "key-1"}, claims, key)


def _b64(document: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


def authorizer(*keys: RSAKey, fetches: list | None = None) -> JwtAuthorizer:
    def jwks() -> dict:
        if fetches is not None:
            fetches.append(1)
        return KeySet(list(keys or [KEY])).as_dict()

    return JwtAuthorizer(ISSUER, [CLIENT_ID], jwks, clock=lambda: NOW)


def test_a_token_of_the_issuer_for_the_client_gives_its_claims() -> None:
    assert authorizer()(token()) == CLAIMS
    assert authorizer()(token(aud=CLIENT_ID))["sub"] == "user-bob"  # aud as a single string
    # no aud: API Gateway takes client_id (Cognito's access tokens)
    assert authorizer()(token(aud=None, client_id=CLIENT_ID))["sub"] == "user-bob"


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": ["another-client"]},
        {"aud": None},
        {"aud": ["another-client"], "client_id": CLIENT_ID},  # aud wins over client_id
        {"iss": "https://evil.example.com"},
        {"iss": None},
        {"exp": NOW},  # expired this very second
        {"exp": NOW - 1},
        {"exp": None},
        {"exp": "tomorrow"},
        {"nbf": NOW + 5},  # not valid yet
        {"iat": NOW + 5},  # issued in the future
    ],
    ids=repr,
)
def test_claims_the_gateway_refuses_give_none(changes: dict) -> None:
    assert authorizer()(token(**changes)) is None


def test_a_signature_that_does_not_verify_gives_none() -> None:
    assert authorizer()(token(OTHER_KEY)) is None
    header, payload, signature = token().split(".")
    forged = token(sub="user-alice").split(".")[1]
    assert authorizer()(f"{header}.{forged}.{signature}") is None  # claims changed after signing
    assert authorizer()(f"{header}.{payload}.") is None


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256"},  # no kid
        {"alg": "RS256", "kid": "key-2"},  # a kid the issuer does not have
        {"alg": "HS256", "kid": "key-1"},  # not RSA
    ],
    ids=repr,
)
def test_a_header_the_gateway_refuses_gives_none(header: dict) -> None:
    key = OctKey.import_key(b"k" * 32) if header["alg"] == "HS256" else KEY
    assert authorizer()(token(key, header)) is None


def test_alg_none_and_garbage_give_none() -> None:
    unsigned = ".".join(_b64(part) for part in ({"alg": "none", "kid": "key-1"}, CLAIMS)) + "."
    assert authorizer()(unsigned) is None
    for garbage in ("", "local:user-alice", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30"):
        assert authorizer()(garbage) is None


def test_keys_are_cached_and_fetched_again_for_an_unknown_kid() -> None:
    fetches: list = []
    rotated = RSAKey.generate_key(2048, parameters={"kid": "key-2"})
    check = authorizer(KEY, rotated, fetches=fetches)

    assert check(token()) is not None
    assert check(token()) is not None
    assert len(fetches) == 1
    assert check(token(rotated, {"alg": "RS256", "kid": "key-2"})) is not None
    assert check(token(header={"alg": "RS256", "kid": "key-3"})) is None
    assert len(fetches) == 2  # key-3 asked for a fresh JWKS; key-2 was already there


def test_a_key_that_is_not_rsa_is_refused_even_under_a_known_kid() -> None:
    ec = ECKey.generate_key("P-256", parameters={"kid": "key-1"})
    check = JwtAuthorizer(ISSUER, [CLIENT_ID], lambda: KeySet([ec]).as_dict(), clock=lambda: NOW)
    assert check(token()) is None


def test_the_keys_are_found_through_the_discovery_document() -> None:
    documents = {
        f"{ISSUER}/.well-known/openid-configuration": {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/keys"},
        f"{ISSUER}/keys": KeySet([KEY]).as_dict(),
    }
    jwks = discovered_jwks(ISSUER + "/", documents.__getitem__)
    assert JwtAuthorizer(ISSUER, [CLIENT_ID], jwks, clock=lambda: NOW)(token()) == CLAIMS
