"""API Gateway's HTTP API JWT authorizer, for the local front (devtools.api_gateway's `authorize`).

It accepts a token the way the deployed authorizer (template.yaml's JwtAuthorizer) does, following the API
Gateway developer guide ("Control access to HTTP APIs with JWT authorizers"):

- the header's `kid` names a key of the issuer's JWKS and the signature verifies with it; only RSA algorithms;
- `iss` is the issuer; `aud` matches one of the audiences (`client_id` does when there is no `aud`);
- `exp` is after now; `nbf` and `iat`, when present, are not.

Anything else gets None, which the gateway answers 401. The keys come from the issuer's discovery document
(`<issuer>/.well-known/openid-configuration`, then its `jwks_uri`); they are cached, and fetched again when a
token names a key the cache does not have (the issuer rotated its keys).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
_FETCH_TIMEOUT_S = 5
_log = logging.getLogger("devtools.jwt_authorizer")


def fetch_json(url: str) -> Any:
    """GET a JSON document (the issuer's discovery document and JWKS)."""
    with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_S) as response:  # noqa: S310 - the issuer's own URL
        return json.load(response)


def discovered_jwks(issuer: str, fetch: Callable[[str], Any] = fetch_json) -> Callable[[], Mapping[str, Any]]:
    """A JWKS source that finds the keys where API Gateway does: the discovery document's `jwks_uri`."""

    def jwks() -> Mapping[str, Any]:
        return fetch(fetch(issuer.rstrip("/") + "/.well-known/openid-configuration")["jwks_uri"])

    return jwks


class JwtAuthorizer:
    """`authorizer(token)`: the token's claims when the deployed JWT authorizer would accept it, else None."""

    def __init__(
        self,
        issuer: str,
        audiences: Sequence[str],
        jwks: Callable[[], Mapping[str, Any]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self._jwks = jwks
        self._clock = clock
        self._keys: KeySet | None = None
        self._lock = threading.Lock()

    def __call__(self, token: str) -> dict[str, Any] | None:
        try:
            compact = jws.extract_compact(token.encode())
            header = compact.headers()
            if header.get("alg") not in RSA_ALGORITHMS or not isinstance(header.get("kid"), str):
                return None
            key = self._key(header["kid"])
            if key is None or not jws.validate_compact(compact, key, algorithms=[header["alg"]]):
                return None
            claims = json.loads(compact.payload)
        except (JoseError, ValueError):  # not a JWS, bad JSON, a key that does not fit the algorithm
            return None
        except OSError:
            _log.warning("the issuer's keys could not be fetched; the token is refused", exc_info=True)
            return None
        return claims if isinstance(claims, dict) and self._claims_accepted(claims) else None

    def _key(self, kid: str) -> RSAKey | None:
        with self._lock:
            if self._keys is None or _find(self._keys, kid) is None:
                self._keys = KeySet.import_key_set(self._jwks())  # type: ignore[arg-type]
            key = _find(self._keys, kid)
        return key if isinstance(key, RSAKey) else None

    def _claims_accepted(self, claims: Mapping[str, Any]) -> bool:
        now = self._clock()
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        audiences = audience if isinstance(audience, list) else [audience]
        return (
            claims.get("iss") == self.issuer
            and any(isinstance(entry, str) and entry in self.audiences for entry in audiences)
            and _is_time(claims.get("exp"))
            and now < claims["exp"]
            and all(_is_time(claims[name]) and claims[name] <= now for name in ("nbf", "iat") if name in claims)
        )


def _find(keys: KeySet, kid: str) -> Any:
    return next((key for key in keys if key.kid == kid), None)


def _is_time(value: Any) -> bool:
    """A NumericDate: seconds since the epoch (a JSON number, not a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
