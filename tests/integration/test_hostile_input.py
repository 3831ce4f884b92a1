"""Hostile input (slice of issue 6): whatever the body or the claims, the API answers JSON, never a 5xx,
and a 4xx changes nothing. Property-based with hypothesis against the real handler on moto."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.lambda_runtime import http_event
from devtools.seed import ALICE
from tests.helpers import call_api, sized

pytestmark = [pytest.mark.integration, pytest.mark.soak]

HYPOTHESIS = settings(
    max_examples=sized(ci=30, soak=1000), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
ids = st.text(min_size=0, max_size=200)
shaped_bodies = st.fixed_dictionaries(
    {},
    optional={
        "tripIds": st.lists(ids, max_size=5) | json_values,
        "segmentIds": st.lists(ids, max_size=5) | json_values,
        "reservationIds": st.lists(ids, max_size=5) | json_values,
        "all": json_values,
        "retryFailed": json_values,
        "styleId": ids | json_values,
    },
)


@pytest.fixture
def api(seeded, handler):
    return handler("api")


def answers_json_without_5xx(api, event) -> tuple[int, dict]:
    status, body = call_api(api, event)
    assert status < 500, body
    if status >= 400:
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    return status, body


@HYPOTHESIS
@given(body=st.one_of(json_values.map(json.dumps), st.text(max_size=300), shaped_bodies.map(json.dumps)))
def test_any_body_gets_json_and_a_rejected_one_changes_nothing(api, world, body):
    before = world()

    status, _ = answers_json_without_5xx(api, http_event("api-queue-selected.json", sub=ALICE, body=body))

    if status >= 400:
        assert world() == before


@HYPOTHESIS
@given(claims=st.dictionaries(st.sampled_from(["sub", "aud", "iss", "exp"]), json_values, max_size=4))
def test_missing_or_forged_claims_are_refused_or_scoped_to_their_subject(api, world, claims):
    event = http_event("api-queue-all.json")
    event["requestContext"]["authorizer"]["jwt"]["claims"] = claims
    before = world()

    status, body = answers_json_without_5xx(api, event)

    sub = claims.get("sub")
    unusable = (
        not isinstance(sub, str)
        or not sub
        or "#" in sub  # the key separator of USER#<sub>
        or len(sub) > 255  # OpenID Connect's limit
        or any(unicodedata.category(ch) in ("Cc", "Cs") for ch in sub)  # control characters, lone surrogates
    )
    if unusable:
        assert (status, body["error"]["code"]) == (401, "unauthorized")
        assert world() == before
    else:  # a well-formed subject is a user: never someone else's records (none of the seeded users match)
        assert all(item["outcome"] != "queued" for item in body.get("items", [])) or sub == ALICE


@HYPOTHESIS
@given(batch_id=st.text(min_size=1, max_size=80).filter(lambda s: "/" not in s))
def test_any_batch_id_is_answered_with_json(api, batch_id):
    event = http_event("api-batch-progress.json", sub=ALICE, path_parameters={"batchId": batch_id})

    status, _ = answers_json_without_5xx(api, event)

    assert status in (400, 404)
