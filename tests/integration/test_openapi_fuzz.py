"""Schema-driven fuzzing of the HTTP API (issue 6): schemathesis generates requests from the API's own OpenAPI
description (built by Powertools' resolver from api/schemas.py, for the routes the API's router serves) and sends
them over the wire, through devtools.api_gateway (the HTTP API's
routing, JWT authorizer and payload v2 events), to the real handler on the seeded moto stack.

test_hostile_input.py throws arbitrary bodies and claims straight at the handler. This file starts from the
document and the wire: the coverage phase's boundary, wrong-type and missing values for every path parameter and
body field, undeclared methods and media types, random valid and invalid bodies; then, by hand, what a schema
cannot generate: path traversal and odd bytes in ids, other users' ids, odd subjects, bodies that break parsers.
Every answer: never a 5xx, always JSON, a 4xx from the function is {"error": {"code", "message"}}, and a 4xx
changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import jsonschema_rs
import pytest
import schemathesis
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from werkzeug.test import Client, TestResponse

from devtools.api_gateway import HttpApiGateway, template_routes
from devtools.lambda_runtime import LambdaContext, load_event
from devtools.seed import ALICE, BOB
from image_recovery.api import Api
from image_recovery.api.validation import MAX_BODY_BYTES
from tests.helpers import sized

pytestmark = pytest.mark.integration


def openapi_document(api: Api) -> dict:
    """The API's description, plus the JWT bearer scheme template.yaml puts on every route."""
    return api.openapi_document(
        title="Image Recovery",
        version="1",
        security_schemes={"jwt": HTTPBearer(bearerFormat="JWT")},
        security=[{"jwt": []}],
    )


# Collection needs the document before any fixture runs. Api() sets up its routes without touching the service,
# so this is what the handler describes (test_the_document_is_the_handlers_own checks that).
DOCUMENT = openapi_document(Api(None))
QUEUED = jsonschema_rs.validator_for(
    {
        **DOCUMENT["paths"]["/image-jobs"]["post"]["responses"]["202"]["content"]["application/json"]["schema"],
        "components": DOCUMENT["components"],
    }
)

# The stand-in JWT authorizer's tokens -> claims. Any other token, or none, gets the gateway's own 401.
TOKENS: dict[str, dict] = {
    "alice": {"sub": ALICE, "token_use": "access"},
    "bob": {"sub": BOB, "token_use": "access"},
    "no-sub": {"token_use": "access"},
    "empty-sub": {"sub": ""},
    "key-sub": {"sub": f"USER#{ALICE}"},  # Alice's partition key: would reach her records if the API trusted it
    "path-sub": {"sub": f"x/../{ALICE}"},  # well formed too: "/" is no separator in a key; not Alice
    "long-sub": {"sub": "u" * 256},  # OpenID Connect allows 255
    "unicode-sub": {"sub": "usuário-ünïcødé-🙂"},  # well formed: a user without records
}
GATEWAY_404 = (404, {"message": "Not Found"})
GATEWAY_401 = (401, {"message": "Unauthorized"})


class CurrentGateway:
    """The WSGI app schemathesis is given at import time (its checks re-send requests there too); each test points
    it at the gateway in front of its own stack."""

    gateway: HttpApiGateway | None = None

    def __call__(self, environ, start_response):
        assert self.gateway is not None, "only tests using the gateway fixture send requests"
        return self.gateway(environ, start_response)


CURRENT = CurrentGateway()


@pytest.fixture
def api(seeded, handler):
    return handler("api")


@pytest.fixture
def invocations() -> list[dict]:
    """Every event the gateway handed to the function."""
    return []


@pytest.fixture
def gateway(api, invocations) -> Iterator[HttpApiGateway]:
    def invoke(event: dict) -> dict:
        invocations.append(event)
        return api.lambda_handler(event, LambdaContext())

    CURRENT.gateway = HttpApiGateway(invoke=invoke, authorize=TOKENS.get)
    yield CURRENT.gateway
    CURRENT.gateway = None


@pytest.fixture
def send(gateway, invocations, world) -> Callable[..., tuple[int, dict]]:
    """Send one request over the wire; check what every answer must satisfy; return (status, JSON body)."""
    client = Client(gateway, use_cookies=False)  # headers as given, cookies included

    def call(method: str, url: str, token: str | None = "alice", headers: dict | None = None, **kwargs):
        headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        before, invoked = world(), len(invocations)
        response: TestResponse = client.open(url, method=method, headers=headers, **kwargs)
        status, body = response.status_code, response.get_json(force=True)
        assert response.content_type == "application/json"
        assert_answer(status, body, reached_function=len(invocations) > invoked)
        if status >= 400:
            assert world() == before, f"{method} {url} answered {status} and changed something"
        return status, body

    return call


def assert_answer(status: int, body: dict, *, reached_function: bool) -> None:
    """Never a 5xx; the gateway's own answers are its; a 4xx of the function has DESIGN §3's error shape."""
    assert status < 500, body
    if not reached_function:
        assert (status, body) in (GATEWAY_404, GATEWAY_401)
    elif status >= 400:
        assert set(body) == {"error"}, body
        assert set(body["error"]) <= {"code", "message", "details"}, body
        assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def code(body: dict) -> str:
    return body["error"]["code"]


# ---------------------------------------------------------------------------------------------------- the document


def route_shape(key: str) -> str:
    """A route key with its parameter names blanked, "GET /image-jobs/{}": names never reach the wire."""
    return re.sub(r"\{[^}]*\}", "{}", key)


def test_the_document_is_the_handlers_own_and_covers_every_template_route(api):
    assert openapi_document(api.api) == DOCUMENT

    documented = {route_shape(f"{method.upper()} {path}") for path, ops in DOCUMENT["paths"].items() for method in ops}
    served = {route_shape(f"{route.method} {re.sub(r'<[^>]*>', '{}', route.path)}") for route in api.api.routes}
    assert documented == served == {route_shape(route.key) for route in template_routes()}
    assert DOCUMENT["components"]["securitySchemes"] == {
        "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    assert DOCUMENT["security"] == [{"jwt": []}]


# ------------------------------------------------------------------------------------------------------ the fuzzer

fuzz = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=SchemathesisConfig.from_dict(
        {
            # the same requests every run; `make soak` sends more
            "generation": {"mode": "all", "deterministic": True, "max-examples": sized(ci=30, soak=1000)},
            "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
            "auth": {"openapi": {"jwt": {"bearer": "alice"}}},  # the coverage phase also sends none and bad ones
            "checks": {
                # The document lists each route's success (200, or 202 for POST /image-jobs) and Powertools' 422, not
                # the 400, 401, 404, 413 and 415 the API answers (DESIGN §3): asserted in the test instead.
                "status_code_conformance": {"enabled": False},
                # Schema-valid is not always acceptable: {} names no record (400), an unknown batch id is a 404.
                "positive_data_acceptance": {"enabled": False},
                # For a method with no route API Gateway's HTTP API answers 404 Not Found, not 405.
                "unsupported_method": {"enabled": False},
            },
        }
    ),
)
fuzz.app = CURRENT


@pytest.mark.soak
@fuzz.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_generated_requests_get_json_never_a_5xx_and_a_4xx_changes_nothing(case, gateway, invocations, world):
    before, invoked = world(), len(invocations)

    response = case.call()

    case.validate_response(response)  # schemathesis' checks, among them: 200 bodies match the document
    assert response.headers["content-type"] == ["application/json"]
    assert_answer(response.status_code, response.json(), reached_function=len(invocations) > invoked)
    if response.status_code >= 400:
        assert world() == before
    if response.status_code == 202:
        QUEUED.validate(response.json())


# ----------------------------------------------------------------------------------- what a schema cannot generate

HOSTILE_IDS = [
    "../trip-euro",
    "trip-euro/../trip-ski",
    "/etc/passwd",
    "..",  # a path step in any URL built from it
    ".",
    "trip-euro\x00",
    "trip\x00euro",
    "trip\x1b[31meuro",
    "x" * 129,
    "x" * 5000,
    "\ud800",  # a lone surrogate: valid in JSON text, not in UTF-8
    "trip-euro#SEGMENT#seg-paris-rome",  # the travel table's key delimiter
    f"USER#{BOB}",
    "",
]
# Odd, but ids a host app may well write (ids hold anything but "#", "/" and control characters): a request
# may name them, and for records that do not exist they are not_found like any other id.
ODD_BUT_VALID_IDS = ["..%2Ftrip-euro", "%2e%2e", "..\\..\\windows", "trîp-éüro", "🙂", " trip-euro", "x" * 128]


def test_hostile_record_ids_are_400_and_change_nothing(send, subtests):
    for field in ("tripIds", "segmentIds", "reservationIds"):
        for hostile in HOSTILE_IDS:
            with subtests.test(field=field, id=hostile[:40]):
                status, body = send("POST", "/image-jobs", json={field: ["trip-euro", hostile]})

                assert (status, code(body)) == (400, "invalid_request")


def test_odd_ids_that_name_no_record_are_not_found_and_queue_nothing(send, subtests, world):
    for field in ("tripIds", "segmentIds", "reservationIds"):
        for odd in ODD_BUT_VALID_IDS:
            with subtests.test(field=field, id=odd[:40]):
                before = world()
                status, body = send("POST", "/image-jobs", json={field: [odd]})

                assert status == 202
                assert [(i["outcome"], i["reason"]) for i in body["items"]] == [("failed", "not_found")]
                after = world()
                assert after["messages"] == before["messages"]
                assert after["tables"]["TravelTable"] == before["tables"]["TravelTable"]


ODD_BATCH_PATHS = {
    # the gateway decodes %2F before it routes: more segments than any route has
    "/image-jobs/..%2F..%2Fetc%2Fpasswd": GATEWAY_404,
    "/image-jobs/%2Fetc%2Fpasswd": GATEWAY_404,
    "/image-jobs/abc%2Fdef": GATEWAY_404,
    "/image-jobs/../styles": GATEWAY_404,
    "/image-jobs/": GATEWAY_404,
    # one segment: the function's batch id pattern refuses it...
    "/image-jobs/%2e%2e": (400, "invalid_request"),
    "/image-jobs/..": (400, "invalid_request"),
    "/image-jobs/%252e%252e%252f": (400, "invalid_request"),  # double encoding reaches the function as "%2e%2e%2f"
    "/image-jobs/caf%C3%A9": (400, "invalid_request"),
    "/image-jobs/" + "a" * 65: (400, "invalid_request"),
    "/image-jobs/" + "a" * 8000: (400, "invalid_request"),
    # ...or, for characters outside its route pattern, the resolver finds no route
    "/image-jobs/..%5C..%5Cwindows": (404, "no_route"),
    "/image-jobs/a%00b": (404, "no_route"),
    "/image-jobs/%F0%9F%99%82": (404, "no_route"),
    "/image-jobs/%FF%FE": (404, "no_route"),  # not UTF-8
    "/image-jobs/USER%23user-bob": (404, "no_route"),
    "/image-jobs/0b6f1c1e-5d3a-4c4e-9a59-2f1f7d1f6a10": (404, "not_found"),  # well formed, unknown
}


def test_odd_batch_ids_in_the_path_are_4xx_and_change_nothing(send, subtests):
    for path, expected in ODD_BATCH_PATHS.items():
        with subtests.test(path=path[:60]):
            status, body = send("GET", path)

            assert ((status, body) if "message" in body else (status, code(body))) == expected


def test_another_users_records_and_batches_behave_as_if_they_did_not_exist(send, world):
    status, bobs = send("POST", "/image-jobs", token="bob", json={"tripIds": ["trip-tokyo"]})
    assert (status, bobs["summary"]["trips"]["queued"]) == (202, 1)
    before = world()

    status, body = send("GET", f"/image-jobs/{bobs['batchId']}")
    assert (status, code(body)) == (404, "not_found")

    status, body = send(
        "POST", "/image-jobs", json={"tripIds": ["trip-tokyo", "trip-oslo"], "segmentIds": ["trip-tokyo"]}
    )
    assert status == 202
    assert [(item["outcome"], item["reason"]) for item in body["items"]] == [("failed", "not_found")] * 3
    # Nothing of Bob's changed and nothing was queued: the only write is Alice's own batch, of nothing.
    after = world()
    assert after["messages"] == before["messages"]
    assert after["tables"]["TravelTable"] == before["tables"]["TravelTable"]
    assert after["tables"]["IdempotencyTable"] == before["tables"]["IdempotencyTable"]
    (new_batch,) = set(after["tables"]["BatchTable"]) - set(before["tables"]["BatchTable"])
    assert body["batchId"] in new_batch and ALICE in new_batch and BOB not in new_batch


def test_the_subject_claim_is_the_user_and_an_unusable_one_is_401(send, subtests):
    _, batch = send("POST", "/image-jobs", json={"tripIds": ["trip-euro"]})
    requests = [
        ("GET", "/missing-images", None),
        ("POST", "/image-jobs", {"all": True}),
        ("GET", f"/image-jobs/{batch['batchId']}", None),
    ]
    for token in ("no-sub", "empty-sub", "key-sub", "long-sub"):
        for method, url, body in requests:
            with subtests.test(token=token, request=f"{method} {url}"):
                status, answer = send(method, url, token=token, json=body)

                assert (status, code(answer)) == (401, "unauthorized")

    for token in ("unicode-sub", "path-sub"):  # well-formed subjects nobody has used: users with nothing
        status, listing = send("GET", "/missing-images", token=token)
        assert (status, listing["count"]) == (200, 0)
        status, queued = send("POST", "/image-jobs", token=token, json={"all": True})
        assert (status, queued["items"]) == (202, [])


def test_without_an_accepted_token_the_gateway_answers_401_and_the_function_never_runs(gateway, invocations):
    client = Client(gateway)
    for authorization in (None, "", "Bearer", "Bearer nobody", "Basic YWxpY2U6cHc=", "alice-ish", f"Bearer {ALICE}"):
        headers = {"Authorization": authorization} if authorization is not None else {}
        for method, url in [
            ("GET", "/missing-images"),
            ("POST", "/image-jobs"),
            ("GET", "/image-jobs/x"),
            ("GET", "/styles"),
        ]:
            response = client.open(url, method=method, headers=headers, json={"all": True})

            assert (response.status_code, response.get_json()) == GATEWAY_401, (authorization, method, url)
    assert invocations == []


def test_the_function_gets_the_payload_v2_event_api_gateway_sends(send, invocations):
    send("GET", "/image-jobs/abc-123?x=1&x=2&y=", headers={"X-Trace": "t", "Cookie": "a=1; b=2"})

    event, sample = invocations[-1], load_event("api-batch-progress.json")
    assert set(sample) <= set(event) and set(sample["requestContext"]) <= set(event["requestContext"])
    assert (event["version"], event["routeKey"], event["requestContext"]["routeKey"]) == (
        "2.0",
        "GET /image-jobs/{batchId}",  # the template's route key, not the resolver's
        "GET /image-jobs/{batchId}",
    )
    assert (event["rawPath"], event["requestContext"]["http"]["path"]) == ("/image-jobs/abc-123",) * 2
    assert event["pathParameters"] == {"batchId": "abc-123"}
    assert (event["rawQueryString"], event["queryStringParameters"]) == ("x=1&x=2&y=", {"x": "1,2", "y": ""})
    assert event["headers"]["x-trace"] == "t" and event["headers"]["authorization"] == "Bearer alice"
    assert all(name == name.lower() for name in event["headers"])
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["requestContext"]["authorizer"]["jwt"]["claims"] == TOKENS["alice"]
    assert (event["isBase64Encoded"], "body" in event) == (False, False)


UNPARSEABLE_BODIES = {
    "huge": (b"x" * (MAX_BODY_BYTES + 1), "application/json", (413, "body_too_large")),
    "deep": (b"[" * 60_000 + b"]" * 4_000, "application/json", (400, "invalid_request")),  # beyond the parser
    "truncated": (b'{"tripIds": ["trip-euro"', "application/json", (400, "invalid_request")),
    "nul": (b'{"tripIds": ["trip-euro"]}\x00', "application/json", (400, "invalid_request")),
    "not UTF-8": (b'{"tripIds": ["trip-\xff\xfe"]}', "application/json", (400, "invalid_request")),
    "BOM": (b'\xef\xbb\xbf{"tripIds": ["trip-euro"]}', "application/json", (400, "invalid_request")),
    "duplicate key": (b'{"tripIds": ["trip-euro"], "tripIds": "x"}', "application/json", (400, "invalid_request")),
    "text": (b'{"all": true}', "text/plain", (415, "unsupported_media_type")),
    "form": (b"tripIds=trip-euro", "application/x-www-form-urlencoded", (415, "unsupported_media_type")),
    "multipart": (b"--b\r\n\r\n--b--", "multipart/form-data", (415, "unsupported_media_type")),  # no boundary=
    "binary": (b'{"all": true}', "application/octet-stream", (415, "unsupported_media_type")),
}


def test_bodies_that_break_parsers_are_4xx_and_change_nothing(send, subtests):
    for name, (data, content_type, expected) in UNPARSEABLE_BODIES.items():
        with subtests.test(name):
            status, body = send("POST", "/image-jobs", data=data, content_type=content_type)

            assert (status, code(body)) == expected
