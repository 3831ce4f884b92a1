"""API Gateway's HTTP API in front of the real API function, for the local server and the tests.

It does what the deployed HTTP API (template.yaml's HttpApi) does around the function:

- routing: the routes are the template's HttpApi events. A request that matches none gets the gateway's own
  404 {"message":"Not Found"} and the function never runs (the template has no $default route);
- the JWT authorizer: with no token in Authorization, or one that `authorize` refuses, the gateway answers
  401 {"message":"Unauthorized"} itself. An accepted token's claims become requestContext.authorizer.jwt.claims.
  `authorize` maps tokens to claims: serve.py verifies real JWTs the way the deployed authorizer does
  (devtools.jwt_authorizer), tests may map fixed tokens;
- the payload format 2.0 event, shaped like events/api-*.json. HTTP APIs hand Lambda the path already
  percent-decoded (rawPath and pathParameters alike), so "/image-jobs/..%2Fx" is routed as "/image-jobs/../x";
- a function that raises gets the gateway's 500 {"message":"Internal Server Error"}.

Not modelled: CORS preflight, throttling, stages other than $default, greedy {proxy+} routes.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from devtools.lambda_runtime import load_event
from devtools.template_resources import load_template

Authorizer = Callable[[str], Mapping[str, Any] | None]  # bearer token -> JWT claims; None: the gateway's 401
Invoke = Callable[[dict], dict]  # payload v2 event -> the function's response
GatewayResponse = tuple[int, dict[str, str], bytes]

# Bodies of these types reach Lambda as text; anything else (or bytes that are not UTF-8) as base64.
_TEXT_TYPES = re.compile(r"^(text/|application/(json|[\w.+-]+\+json|xml|javascript|x-www-form-urlencoded)\b)", re.I)
_log = logging.getLogger("devtools.api_gateway")


@dataclass(frozen=True)
class Route:
    """One route key of the HTTP API, e.g. GET /image-jobs/{batchId}."""

    method: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route takes the request, else None. {name} is one non-empty segment."""
        want, got = self.path.split("/"), path.split("/")
        if method != self.method or len(want) != len(got):
            return None
        parameters = {}
        for pattern, segment in zip(want, got, strict=True):
            if pattern.startswith("{") and pattern.endswith("}") and segment:
                parameters[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return parameters


def template_routes(function: str = "ApiFunction", template: Mapping | None = None) -> list[Route]:
    """The routes of one function's HttpApi events in template.yaml: what the deployed API serves."""
    events = (template or load_template())["Resources"][function]["Properties"].get("Events") or {}
    return [
        Route(event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for event in events.values()
        if event["Type"] == "HttpApi"
    ]


def gateway_error(status: int, message: str) -> GatewayResponse:
    """An answer from API Gateway itself (no function ran): its JSON {"message": ...} body."""
    return status, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode()


@dataclass
class HttpApiGateway:
    """The HTTP API with one function behind every route; `request` per call, or use it as a WSGI app."""

    invoke: Invoke
    authorize: Authorizer
    routes: Sequence[Route] = field(default_factory=template_routes)

    def request(
        self,
        method: str,
        path: str,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        *,
        source_ip: str = "127.0.0.1",
    ) -> GatewayResponse:
        """Answer one request: `path` percent-decoded, `query` as sent (without "?")."""
        method = method.upper()
        headers = {name.lower(): value for name, value in (headers or {}).items()}
        route, parameters = next(
            ((route, found) for route in self.routes if (found := route.match(method, path)) is not None),
            (None, None),
        )
        if route is None:
            return gateway_error(404, "Not Found")
        authorization = headers.get("authorization", "").strip()
        token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else authorization
        claims = self.authorize(token) if token else None
        if claims is None:
            return gateway_error(401, "Unauthorized")
        event = _event(route, parameters or {}, method, path, query, headers, body, claims, source_ip)
        try:
            response = self.invoke(event)
        except Exception:
            _log.exception("the function raised; the gateway answers 500")
            return gateway_error(500, "Internal Server Error")
        data = response.get("body") or ""
        content = base64.b64decode(data) if response.get("isBase64Encoded") else data.encode()
        return response["statusCode"], dict(response.get("headers") or {}), content

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """WSGI entry point (werkzeug's test client, schemathesis). PATH_INFO is already percent-decoded,
        as latin-1 text per PEP 3333; the gateway's paths are UTF-8."""
        headers = {key[5:].replace("_", "-"): value for key, value in environ.items() if key.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-")] = environ[key]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        status, response_headers, content = self.request(
            environ["REQUEST_METHOD"],
            environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace") or "/",
            environ.get("QUERY_STRING", ""),
            headers,
            environ["wsgi.input"].read(length) if length else b"",
            source_ip=environ.get("REMOTE_ADDR") or "127.0.0.1",
        )
        listed = [(name, value) for name, value in response_headers.items() if name.lower() != "content-length"]
        start_response(
            f"{status} {http.client.responses.get(status, 'Unknown')}",
            [*listed, ("Content-Length", str(len(content)))],
        )
        return [content]


def _event(
    route: Route,
    parameters: dict[str, str],
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    claims: Mapping[str, Any],
    source_ip: str,
) -> dict:
    """The payload format 2.0 event for a routed, authorized request (lower-case headers, as the gateway sends)."""
    event = load_event("api-list-missing-images.json")
    event.pop("body", None)
    context = event["requestContext"]
    context["authorizer"]["jwt"]["claims"] = dict(claims)
    context["http"].update(method=method, path=path, sourceIp=source_ip, userAgent=headers.get("user-agent", ""))
    context.update(routeKey=route.key, requestId=str(uuid.uuid4()), timeEpoch=int(time.time() * 1000))
    if cookie := headers.get("cookie"):  # payload v2 moves cookies out of the headers
        event["cookies"] = [part.strip() for part in cookie.split(";") if part.strip()]
    headers = {name: value for name, value in headers.items() if name != "cookie"}
    event.update(routeKey=route.key, rawPath=path, rawQueryString=query, headers=headers, isBase64Encoded=False)
    if parameters:
        event["pathParameters"] = parameters
    if query:
        event["queryStringParameters"] = {
            name: ",".join(values) for name, values in parse_qs(query, keep_blank_values=True).items()
        }
    if body:
        try:
            text = body.decode("utf-8") if _TEXT_TYPES.match(headers.get("content-type", "text/plain")) else None
        except UnicodeDecodeError:
            text = None
        event["isBase64Encoded"] = text is None
        event["body"] = text if text is not None else base64.b64encode(body).decode()
    return event
