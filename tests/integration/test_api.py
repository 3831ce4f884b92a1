"""The HTTP API through the real handler, with events from events/ and moto resources from template.yaml."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from botocore.stub import Stubber

from devtools.lambda_runtime import EVENTS, http_event, load_event
from devtools.seed import ALICE, BOB, put_items, trip
from devtools.template_resources import load_template
from image_recovery import aws
from tests.helpers import call_api, queued_jobs, table_item

pytestmark = pytest.mark.integration


@pytest.fixture
def api(seeded, handler):
    return handler("api")


def test_listing_shows_every_missing_record_newest_first_with_parent_context(api):
    status, body = call_api(api, http_event("api-list-missing-images.json", sub=ALICE))

    assert status == 200
    assert body["count"] == 5
    # absent, NULL and "" are all missing; the trip with an image is not listed
    assert [t["title"] for t in body["trips"]] == ["Summer Vacation", "Big Euro Adventure"]
    assert [s["name"] for s in body["segments"]] == ["Rome to Venice", "Paris to Rome"]
    assert {s["tripTitle"] for s in body["segments"]} == {"Big Euro Adventure"}
    (eiffel,) = body["reservations"]
    assert (eiffel["name"], eiffel["tripTitle"], eiffel["segmentName"]) == (
        "Eiffel Tower Tour",
        "Big Euro Adventure",
        "Paris to Rome",
    )
    every = body["trips"] + body["segments"] + body["reservations"]
    assert {item["imageStatus"] for item in every} == {"missing"}


def test_listing_is_scoped_to_the_jwt_subject(api):
    _, body = call_api(api, http_event("api-list-missing-images.json", sub=BOB))

    assert body["count"] == 1
    assert [t["id"] for t in body["trips"]] == ["trip-tokyo"]


def test_queue_selected_marks_records_queued_and_sends_one_message_each(api, stack):
    status, body = call_api(api, http_event("api-queue-selected.json", sub=ALICE))

    assert status == 202
    assert body["styleId"] == "watercolor"
    assert body["summary"] == {
        "trips": {"queued": 1, "skipped": 0, "failed": 0},
        "segments": {"queued": 1, "skipped": 0, "failed": 0},
        "reservations": {"queued": 1, "skipped": 0, "failed": 0},
    }
    record = table_item(stack, f"USER#{ALICE}", "TRIP#trip-euro")
    assert record["imageStatus"] == "queued"
    assert record["imageBatchId"] == body["batchId"]
    jobs = queued_jobs(stack)
    assert sorted(job["recordId"] for job in jobs) == ["res-eiffel", "seg-paris-rome", "trip-euro"]
    trip_job = next(job for job in jobs if job["recordId"] == "trip-euro")
    assert trip_job == {
        "version": 1,
        "jobId": record["imageJobId"],
        "batchId": body["batchId"],
        "pk": f"USER#{ALICE}",
        "sk": "TRIP#trip-euro",
        "entityType": "TRIP",
        "recordId": "trip-euro",
        "styleId": "watercolor",
        # the request's id (API Gateway's), so the record can be followed into the worker's logs
        "correlationId": load_event("api-queue-selected.json")["requestContext"]["requestId"],
    }


def test_queueing_the_same_records_again_skips_them_and_sends_nothing(api, stack):
    call_api(api, http_event("api-queue-selected.json", sub=ALICE))

    status, body = call_api(api, http_event("api-queue-selected.json", sub=ALICE))

    assert status == 202
    assert {(i["outcome"], i["reason"]) for i in body["items"]} == {("skipped", "already_queued")}
    assert len(queued_jobs(stack)) == 3


def test_records_with_images_are_skipped_and_unknown_or_foreign_ids_not_found(api, stack):
    request = {"tripIds": ["trip-ski", "trip-tokyo", "no-such-trip"], "segmentIds": ["trip-euro"]}

    status, body = call_api(api, http_event("api-queue-selected.json", sub=ALICE, body=request))

    assert status == 202
    assert body["items"] == [
        {"type": "trip", "id": "trip-ski", "outcome": "skipped", "reason": "has_image"},
        {"type": "trip", "id": "trip-tokyo", "outcome": "failed", "reason": "not_found"},  # Bob's trip
        {"type": "trip", "id": "no-such-trip", "outcome": "failed", "reason": "not_found"},
        {"type": "segment", "id": "trip-euro", "outcome": "failed", "reason": "not_found"},  # wrong type
    ]
    assert "imageStatus" not in table_item(stack, f"USER#{BOB}", "TRIP#trip-tokyo")
    assert queued_jobs(stack) == []


def test_queue_all_sends_messages_in_batches_of_ten(api, stack, deliver_stream):
    put_items(
        stack.physical("TravelTable"),
        [trip(ALICE, f"bulk-{n:02}", f"Bulk trip {n}", f"2026-05-01T00:00:{n:02}.000Z") for n in range(20)],
    )
    deliver_stream()
    sends = []
    aws.client("sqs").meta.events.register("provide-client-params.sqs.SendMessageBatch", lambda **kw: sends.append(kw))

    status, body = call_api(api, http_event("api-queue-all.json", sub=ALICE))

    assert status == 202
    assert sum(s["queued"] for s in body["summary"].values()) == 25
    assert [len(call["params"]["Entries"]) for call in sends] == [10, 10, 5]
    assert len(queued_jobs(stack)) == 25


def test_batch_progress_counts_the_queued_records_and_is_private(api):
    _, queued = call_api(api, http_event("api-queue-all.json", sub=ALICE))
    batch_id = queued["batchId"]

    status, progress = call_api(
        api, http_event("api-batch-progress.json", sub=ALICE, path_parameters={"batchId": batch_id})
    )
    foreign_status, foreign = call_api(
        api, http_event("api-batch-progress.json", sub=BOB, path_parameters={"batchId": batch_id})
    )

    assert status == 200
    assert progress == {
        "batchId": batch_id,
        "total": 5,
        "queued": 5,
        "generating": 0,
        "succeeded": 0,
        "failed": 0,
        "complete": True,
    }
    assert foreign_status == 404
    assert foreign["error"]["code"] == "not_found"


def test_styles_lists_the_built_in_defaults_with_exactly_one_default(api):
    status, body = call_api(api, http_event("api-list-styles.json"))

    assert status == 200
    assert [s["id"] for s in body["styles"]] == ["travel-poster", "watercolor", "photographic"]
    assert [s["id"] for s in body["styles"] if s["isDefault"]] == ["travel-poster"]
    assert all(s["name"] and s["description"] for s in body["styles"])


BAD_BODIES = {
    "malformed JSON": ('{"tripIds": ["trip-euro"', 400, "invalid_request"),
    "not an object": ("[1, 2]", 400, "invalid_request"),
    "wrong type": ({"tripIds": "trip-euro"}, 400, "invalid_request"),
    "unknown field": ({"tripIDs": ["trip-euro"]}, 400, "invalid_request"),
    "ids and all": ({"all": True, "tripIds": ["trip-euro"]}, 400, "invalid_request"),
    "names nothing": ({}, 400, "no_records"),
    "empty lists": ({"tripIds": [], "segmentIds": []}, 400, "no_records"),
    "too many ids": ({"tripIds": [f"t{n}" for n in range(101)]}, 400, "too_many_ids"),
    "path traversal id": ({"tripIds": ["../../etc/passwd"]}, 400, "invalid_request"),
    "key delimiter in id": ({"tripIds": ["trip-euro#SEGMENT#x"]}, 400, "invalid_request"),
    "unknown style": ({"all": True, "styleId": "cubist"}, 400, "unknown_style"),
    "huge body": ({"tripIds": ["x" * 100] * 800}, 413, "body_too_large"),
}


@pytest.mark.parametrize("body, status, code", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_input_gets_a_json_4xx_and_changes_nothing(api, world, body, status, code):
    before = world()

    got_status, got = call_api(api, http_event("api-queue-selected.json", sub=ALICE, body=body))

    assert (got_status, got["error"]["code"]) == (status, code)
    assert got["error"]["message"]
    assert world() == before


@pytest.mark.parametrize("sub", [None, "", "USER#bob", "#sweep", "tab\there", "x" * 256])
def test_a_missing_or_unusable_subject_claim_is_401(api, world, sub):
    event = http_event("api-queue-all.json")
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    if sub is None:
        del claims["sub"]
    else:
        claims["sub"] = sub
    before = world()

    status, body = call_api(api, event)

    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert world() == before


@pytest.mark.parametrize("sub", ["auth0|64a1b2", "google-oauth2:1234", "a/b", "..", "josé", "s" * 255])
def test_a_subject_holding_any_printable_character_but_hash_is_a_user(stack, handler, deliver_stream, sub):
    put_items(stack.physical("TravelTable"), [trip(sub, "t1", "Trip", "2026-01-01T00:00:00Z")])
    deliver_stream()
    api = handler("api")

    status, body = call_api(api, http_event("api-list-missing-images.json", sub=sub))
    queued, answer = call_api(api, http_event("api-queue-selected.json", sub=sub, body={"tripIds": ["t1"]}))

    assert (status, [t["id"] for t in body["trips"]]) == (200, ["t1"])
    assert (queued, answer["summary"]["trips"]["queued"]) == (202, 1)


def test_a_malformed_batch_id_is_400_and_an_unknown_one_404(api):
    bad, bad_body = call_api(
        api, http_event("api-batch-progress.json", sub=ALICE, path_parameters={"batchId": "not-valid!"})
    )
    unknown, _ = call_api(api, http_event("api-batch-progress.json", sub=ALICE))

    assert (bad, bad_body["error"]["code"]) == (400, "invalid_request")
    assert unknown == 404


def test_unknown_route_is_a_json_404(api):
    event = http_event("api-list-styles.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/nope"
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /nope"

    status, body = call_api(api, event)

    assert (status, body["error"]["code"]) == (404, "no_route")


def test_a_failed_send_rolls_the_record_back_to_failed_so_it_can_be_queued_again(api, stack):
    sqs = aws.client("sqs")
    with Stubber(sqs) as stubber:
        stubber.add_client_error("send_message_batch", service_error_code="InternalError", http_status_code=500)
        status, body = call_api(api, http_event("api-queue-selected.json", sub=ALICE, body={"tripIds": ["trip-euro"]}))

    assert status == 202
    assert body["items"] == [{"type": "trip", "id": "trip-euro", "outcome": "failed", "reason": "enqueue_failed"}]
    record = table_item(stack, f"USER#{ALICE}", "TRIP#trip-euro")
    assert (record["imageStatus"], record["imageError"]) == ("failed", "enqueue_failed")

    retry = http_event("api-queue-selected.json", sub=ALICE, body={"tripIds": ["trip-euro"]})
    again_status, again = call_api(api, retry)
    assert (again_status, again["items"][0]["outcome"]) == (202, "queued")
    assert len(queued_jobs(stack)) == 1


def test_sample_events_are_valid_json_for_each_template_route():
    template = load_template()
    routes = {
        f"{e['Properties']['Method']} {e['Properties']['Path']}"
        for e in template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    }
    sampled = {json.loads(path.read_text())["routeKey"] for path in EVENTS.glob("api-*.json")}
    assert sampled == routes


def test_images_answers_the_named_records_of_the_user_that_have_one(api):
    query = [("trip", "trip-ski"), ("trip", "trip-euro"), ("reservation", "res-gondola"), ("trip", "trip-oslo")]
    status, body = call_api(api, http_event("api-images.json", sub=ALICE, query=query))
    # trip-euro has no image yet; trip-oslo is Bob's: both are left out, as an unknown id is
    assert (status, body) == (
        200,
        {
            "images": [
                {"type": "trip", "id": "trip-ski", "imageUrl": "https://images.example.com/ski.png"},
                {"type": "reservation", "id": "res-gondola", "imageUrl": "https://images.example.com/gondola.png"},
            ]
        },
    )


@pytest.mark.parametrize(
    "query",
    [[], [("trips", "trip-ski")], [("trip", "a#b")], [("trip", f"t{n}") for n in range(51)]],
    ids=["none", "unknown-parameter", "unusable-id", "too-many"],
)
def test_images_refuses_a_query_that_names_no_usable_record(api, query):
    event = http_event("api-images.json", sub=ALICE)
    event["rawQueryString"] = urlencode(query)
    event["queryStringParameters"] = {name: value for name, value in query} or None
    status, body = call_api(api, event)
    assert (status, body["error"]["code"]) == (400, "invalid_request")
