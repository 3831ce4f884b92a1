"""A table shared with careless writers (issue 11, DESIGN §2-§4), each finding through the real handlers.

The host app writes whatever it writes: items that break the contract, copies of other users' items,
images of its own, deletes at any moment. None of it may cause a 5xx, stop another record, bring a
deleted record back, cross users, or leave a batch's progress unfinished.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import time_machine

from devtools.lambda_runtime import LambdaContext, drain_queue, http_event, load_event
from devtools.seed import ALICE, BOB, put_items, reservation, segment, trip
from image_recovery.indexing import index_existing_records
from image_recovery.providers.local import LocalImageProvider
from image_recovery.recovery import PAGE_BYTES_LIMIT
from tests.helpers import REGION, call_api, metric_total, metrics_emitted, queued_jobs, table_item

pytestmark = pytest.mark.integration


def travel_items(stack) -> list[dict]:
    return boto3.client("dynamodb", region_name=REGION).scan(
        TableName=stack.physical("TravelTable"), ConsistentRead=True
    )["Items"]


def listing(api, user: str = ALICE, **query: str) -> tuple[int, dict]:
    return call_api(api, http_event("api-list-missing-images.json", sub=user, query=query or None))


def queue(api, user: str = ALICE, **body) -> tuple[int, dict]:
    return call_api(api, http_event("api-queue-selected.json", sub=user, body=body))


def progress(api, batch_id: str, user: str = ALICE) -> dict:
    status, body = call_api(api, http_event("api-batch-progress.json", sub=user, path_parameters={"batchId": batch_id}))
    assert status == 200
    return body


def sweep(handler, **overrides) -> dict:
    return handler("sweep", **overrides).lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())


def drain(stack, worker) -> dict:
    return drain_queue(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION)


def delete(stack, pk: str, sk: str) -> None:
    boto3.client("dynamodb", region_name=REGION).delete_item(
        TableName=stack.physical("TravelTable"), Key={"PK": {"S": pk}, "SK": {"S": sk}}
    )


def set_image(stack, pk: str, sk: str, url: str) -> None:
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.physical("TravelTable"),
        Key={"PK": {"S": pk}, "SK": {"S": sk}},
        UpdateExpression="SET imageUrl = :u",
        ExpressionAttributeValues={":u": {"S": url}},
    )


def objects(stack) -> list[str]:
    listing_ = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=stack.physical("ImageBucket"))
    return sorted(o["Key"] for o in listing_.get("Contents", []))


# ------------------------------------------------------------------ 1. malformed records
MALFORMED = [
    {"PK": f"USER#{ALICE}", "SK": "TRIP#no-id", "entityType": "TRIP", "title": "No id", "createdAt": "2026-02-01"},
    {"PK": f"USER#{ALICE}", "SK": "TRIP#empty-id", "entityType": "TRIP", "id": "", "createdAt": "2026-02-01"},
    {"PK": "USER#org#42", "SK": "TRIP#t42", "entityType": "TRIP", "id": "t42", "title": "Org trip"},
    trip(ALICE, "numeric-created", "Numbers", 1767225600),
    trip(ALICE, "numeric-title", 42, "2026-02-01T00:00:00Z"),
    {"PK": f"USER#{ALICE}", "SK": "TRIP#odd-kind", "entityType": "Trip", "id": "odd-kind", "title": "Odd kind"},
]


def test_malformed_records_are_skipped_everywhere_and_stop_nothing(seeded, handler, stack, deliver_stream, capsys):
    # Given the sample data, 13 well-formed trips of other users, and malformed items beside Alice's records
    others = [trip(f"user-{n:02}", f"t{n}", f"Trip {n}", "2026-01-01T00:00:00Z") for n in range(13)]
    put_items(stack.physical("TravelTable"), [*others, *MALFORMED], region=REGION)
    assert deliver_stream() > 0  # the stream function's batch does not fail on them either
    api = handler("api")

    # When Alice lists and queues everything, and the sweep runs over the whole table
    status, body = listing(api)
    queued_status, queued = queue(api, all=True)
    report = sweep(handler, SWEEP_SEGMENTS="3")

    # Then nothing answered 5xx, the malformed items were left out, and every well-formed record was queued once
    assert (status, body["count"]) == (200, 5)
    assert queued_status == 202 and queued["summary"]["trips"]["queued"] == 2
    assert report["queued"] == 13 + 1  # the other users' trips and Bob's
    assert sorted(j["recordId"] for j in queued_jobs(stack)) == sorted(
        [f"t{n}" for n in range(13)]
        + ["trip-euro", "seg-paris-rome", "seg-rome-venice", "res-eiffel", "trip-summer", "trip-tokyo"]
    )
    emitted = metrics_emitted(capsys.readouterr().out)
    for where in ("stream", "listing", "queueing", "sweep"):
        assert metric_total(emitted, "MalformedRecords", where=where) >= 1, where


def test_a_malformed_style_row_leaves_the_others_usable(seeded, handler, stack):
    # Given style rows the host wrote with odd types, one without a template, and one with a space in its id
    styles = [
        {"PK": "STYLE", "SK": "STYLE#noir", "entityType": "STYLE", "id": "noir", "name": "Noir",
         "promptTemplate": "A film noir still of {subject}.", "isDefault": "true"},
        {"PK": "STYLE", "SK": "STYLE#flat", "entityType": "STYLE", "id": "flat", "name": "Flat",
         "promptTemplate": "A flat illustration of {subject}.", "isDefault": 1},
        {"PK": "STYLE", "SK": "STYLE#empty", "entityType": "STYLE", "id": "empty", "name": "Empty"},
        {"PK": "STYLE", "SK": "STYLE#oil paint", "entityType": "STYLE", "id": "oil paint", "name": "Oil paint",
         "promptTemplate": "An oil painting of {subject}.", "isDefault": False},
        {"PK": "STYLE", "SK": "STYLE#sketch", "entityType": "STYLE", "id": "sketch", "name": "Sketch",
         "promptTemplate": "A pencil sketch of {subject}.", "isDefault": True},
    ]  # fmt: skip
    put_items(stack.physical("TravelTable"), styles, region=REGION)
    api = handler("api")

    status, body = call_api(api, http_event("api-list-styles.json", sub=ALICE))
    queued_status, queued = queue(api, tripIds=["trip-euro"], styleId="oil paint")

    assert status == 200
    assert [(s["id"], s["isDefault"]) for s in body["styles"]] == [("oil paint", False), ("sketch", True)]
    assert queued_status == 202 and queued["styleId"] == "oil paint"
    assert drain(stack, handler("worker")) == {"handled": 1, "failed": 0}


# ------------------------------------------------------------------ 2. nothing comes back
def test_a_record_inserted_and_deleted_before_the_stream_batch_is_not_brought_back(stack, handler, deliver_stream):
    put_items(stack.physical("TravelTable"), [trip(ALICE, "fleeting", "Fleeting", "2026-03-01T00:00:00Z")])
    delete(stack, f"USER#{ALICE}", "TRIP#fleeting")

    handler("indexer", QUEUE_NEW_RECORDS="true")  # the stream function that queues new records
    deliver_stream()

    assert travel_items(stack) == []
    assert queued_jobs(stack) == []


def test_a_record_deleted_while_queued_or_generating_counts_as_failed_and_stays_deleted(
    seeded, handler, stack, monkeypatch
):
    api = handler("api")
    _, body = queue(api, tripIds=["trip-euro", "trip-summer"])
    worker = handler("worker")
    # trip-summer is deleted while queued; trip-euro while its job is generating (between claim and write-back)
    delete(stack, f"USER#{ALICE}", "TRIP#trip-summer")
    real_generate = LocalImageProvider.generate

    def host_deletes_meanwhile(self, request):
        delete(stack, f"USER#{ALICE}", "TRIP#trip-euro")
        return real_generate(self, request)

    monkeypatch.setattr(LocalImageProvider, "generate", host_deletes_meanwhile)

    assert drain(stack, worker) == {"handled": 2, "failed": 0}

    assert table_item(stack, f"USER#{ALICE}", "TRIP#trip-euro") is None
    assert table_item(stack, f"USER#{ALICE}", "TRIP#trip-summer") is None
    assert progress(api, body["batchId"]) | {"batchId": None} == {
        "batchId": None, "total": 2, "queued": 0, "generating": 0, "succeeded": 0, "failed": 2, "complete": True,
    }  # fmt: skip
    assert objects(stack) == []


# ------------------------------------------------------------------ 3. progress always ends
def test_a_job_whose_record_got_an_image_from_the_host_meanwhile_ends_succeeded_and_ready(seeded, handler, stack):
    api = handler("api")
    _, body = queue(api, tripIds=["trip-euro", "trip-summer"])
    set_image(stack, f"USER#{ALICE}", "TRIP#trip-euro", "https://host.example.com/own.png")

    assert drain(stack, handler("worker")) == {"handled": 2, "failed": 0}

    record = table_item(stack, f"USER#{ALICE}", "TRIP#trip-euro")
    assert (record["imageUrl"], record["imageStatus"]) == ("https://host.example.com/own.png", "ready")
    done = progress(api, body["batchId"])
    assert (done["total"], done["queued"], done["generating"], done["succeeded"]) == (2, 0, 0, 2)


# ------------------------------------------------------------------ 4. refused images are not bought again
def test_the_sweep_never_requeues_refused_records_and_gives_its_cap_to_new_ones(stack, handler, deliver_stream):
    refused = [
        trip(ALICE, f"refused-{n}", f"Refused {n}", "2026-01-01T00:00:00Z", "",
             imageStatus="failed", imageError="content_filtered", imageUpdatedAt="2020-01-01T00:00:00.000Z")
        for n in range(5)
    ]  # fmt: skip
    fresh = [trip(BOB, f"new-{n}", f"New {n}", "2026-01-02T00:00:00Z") for n in range(5)]
    put_items(stack.physical("TravelTable"), [*refused, *fresh], region=REGION)
    deliver_stream()

    first = sweep(handler, SWEEP_MAX_JOBS="5")
    second = sweep(handler, SWEEP_MAX_JOBS="5")

    assert (first["queued"], second["queued"]) == (5, 0)
    assert sorted(j["recordId"] for j in queued_jobs(stack)) == [f"new-{n}" for n in range(5)]
    assert table_item(stack, f"USER#{ALICE}", "TRIP#refused-0")["imageError"] == "content_filtered"


# ------------------------------------------------------------------ 5. the listing pages
@pytest.mark.parametrize("indexed", [True, False], ids=["from the index", "from the table"])
def test_the_listing_pages_newest_first_across_kinds_with_a_cursor(stack, handler, deliver_stream, indexed):
    records = [
        trip(ALICE, "t1", "T1", "2026-01-01T10:00:00Z"),
        segment(ALICE, "t1", "s1", "S1", "2026-01-01T10:00:00.500Z"),  # as strings, ...00Z sorts above this
        reservation(ALICE, "t1", "s1", "r1", "R1", "2026-01-01T11:30:00+01:00"),  # 10:30 UTC
        trip(ALICE, "t2", "T2", "not a date"),
        trip(ALICE, "t3", "T3", "2026-01-01T10:15:00"),  # no offset: UTC
    ]
    put_items(stack.physical("TravelTable"), records, region=REGION)
    deliver_stream()
    if indexed:
        index_existing_records(stack.physical("TravelTable"))  # the stream is live: the index is complete
    api = handler("api")

    seen, cursor = [], None
    for _ in range(5):
        status, page = listing(api, limit="2", **({"cursor": cursor} if cursor else {}))
        assert status == 200 and page["count"] == 5
        ordered = sorted(
            [*page["trips"], *page["segments"], *page["reservations"]], key=lambda i: i["id"]
        )  # each page's ids, grouped by kind
        seen.append(sorted(i["id"] for i in ordered))
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert seen == [["r1", "t3"], ["s1", "t1"], ["t2"]]


@pytest.mark.parametrize(
    "cursor",
    ["garbage", base64.urlsafe_b64encode(b'{"v":1,"u":"user-bob","s":"x","k":"TRIP#t","c":1}').decode(), "e30"],
)
def test_a_cursor_that_is_not_this_users_is_a_400(seeded, handler, cursor):
    status, body = listing(handler("api"), cursor=cursor)
    assert (status, body["error"]["code"]) == (400, "invalid_cursor")


@pytest.mark.parametrize("limit", ["0", "501", "ten", "-1"])
def test_a_bad_limit_is_a_400(seeded, handler, limit):
    status, body = listing(handler("api"), limit=limit)
    assert (status, body["error"]["code"]) == (400, "invalid_request")


def test_no_page_outgrows_a_megabyte_even_with_the_largest_titles(stack, handler, deliver_stream):
    huge = "é" * 160_000  # about 330 KB of UTF-8 per title, under DynamoDB's 400 KB item limit
    put_items(
        stack.physical("TravelTable"),
        [trip(ALICE, f"t{n:02}", huge, f"2026-01-01T00:00:{n:02}Z") for n in range(20)],
        region=REGION,
    )
    deliver_stream()
    api = handler("api")

    response = api.lambda_handler(http_event("api-list-missing-images.json", sub=ALICE, query={"limit": "500"}),
                                  LambdaContext())  # fmt: skip

    assert len(response["body"].encode()) < PAGE_BYTES_LIMIT
    body = json.loads(response["body"])
    assert body["count"] == 20 and len(body["trips"]) == 20  # cut to 200 characters, all fit
    assert {len(t["title"]) for t in body["trips"]} == {200}


# ------------------------------------------------------------------ 6. ownership is the PK
def test_a_copied_item_belongs_to_the_user_of_its_pk(seeded, handler, stack, deliver_stream):
    index_existing_records(stack.physical("TravelTable"))  # a trusted index, as in production
    # Given the host copies Alice's trip to Bob (get, change PK, put): the copy carries Alice's index attributes
    (original,) = [
        i for i in travel_items(stack) if i["PK"]["S"] == f"USER#{ALICE}" and i["SK"]["S"] == "TRIP#trip-summer"
    ]
    assert original["imageMissingOwner"]["S"] == f"USER#{ALICE}"
    copy = {**original, "PK": {"S": f"USER#{BOB}"}}
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=stack.physical("TravelTable"), Item=copy)
    api = handler("api")  # a fresh container reads the index

    # When Alice lists and queues everything before the stream function has seen the copy
    _, alices = listing(api)
    status, queued = queue(api, all=True)

    # Then she sees and queues her own records only; Bob's copy is untouched
    assert alices["count"] == 5 and [t["id"] for t in alices["trips"]] == ["trip-summer", "trip-euro"]
    assert status == 202 and queued["summary"]["trips"]["queued"] == 2
    assert "imageStatus" not in table_item(stack, f"USER#{BOB}", "TRIP#trip-summer")
    assert {j["pk"] for j in queued_jobs(stack)} == {f"USER#{ALICE}"}
    deliver_stream()
    _, bobs = listing(api, user=BOB)
    assert sorted(t["id"] for t in bobs["trips"]) == ["trip-summer", "trip-tokyo"]


# ------------------------------------------------------------------ 8. equal ids under different parents
def test_segments_with_the_same_id_under_two_trips_never_share_images(stack, handler, deliver_stream):
    put_items(
        stack.physical("TravelTable"),
        [
            trip(ALICE, "t1", "One", "2026-01-01T00:00:00Z", "https://x/1.png"),
            trip(ALICE, "t2", "Two", "2026-01-01T00:00:00Z", "https://x/2.png"),
            segment(ALICE, "t1", "leg", "Leg of one", "2026-01-02T00:00:00Z"),
            segment(ALICE, "t2", "leg", "Leg of two", "2026-01-02T00:00:00Z"),
        ],
        region=REGION,
    )
    deliver_stream()
    api = handler("api")

    status, body = queue(api, segmentIds=["leg"])
    assert status == 202 and [i["outcome"] for i in body["items"]] == ["queued", "queued"]
    assert drain(stack, handler("worker")) == {"handled": 2, "failed": 0}
    # a retried job of one (queued again by name after its image was removed) leaves the other's image alone
    keys = {
        sk: table_item(stack, f"USER#{ALICE}", sk)["imageKey"] for sk in ("TRIP#t1#SEGMENT#leg", "TRIP#t2#SEGMENT#leg")
    }
    assert keys["TRIP#t1#SEGMENT#leg"].startswith(f"images/{ALICE}/segment/t1/leg/")
    assert keys["TRIP#t2#SEGMENT#leg"].startswith(f"images/{ALICE}/segment/t2/leg/")
    assert objects(stack) == sorted(keys.values())


# ------------------------------------------------------------------ 9. smaller ones
def test_no_sub_can_read_the_services_own_batches(seeded, handler, stack):
    report = sweep(handler)
    api = handler("api")

    for sub in ("system:sweep", "#sweep", "sweep"):
        status, _ = call_api(
            api, http_event("api-batch-progress.json", sub=sub, path_parameters={"batchId": report["batch_id"]})
        )
        assert status in (401, 404), sub


@pytest.mark.parametrize("flag", ["all", "retryFailed"])
@pytest.mark.parametrize("value", ["yes", "true", 1, None])
def test_flags_are_json_booleans(seeded, handler, world, flag, value):
    before = world()
    status, body = queue(handler("api"), **{flag: value})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert world() == before


def test_the_body_limit_counts_bytes_of_the_decoded_body(seeded, handler, world):
    api = handler("api")
    before = world()
    wide = json.dumps({"tripIds": ["trip-euro"], "styleId": None, "pad": "é" * 40_000})  # 40 K chars, 80 KB
    event = http_event("api-queue-selected.json", sub=ALICE, body=wide)
    status, body = call_api(api, event)
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    assert world() == before

    small = json.dumps({"tripIds": ["trip-euro"]}) + " " * 50_000  # 50 KB of JSON: over 64 KiB only as base64
    event = http_event("api-queue-selected.json", sub=ALICE, body=base64.b64encode(small.encode()).decode())
    event["isBase64Encoded"] = True
    status, body = call_api(api, event)
    assert status == 202


@pytest.mark.parametrize("media_type", ["Application/JSON", "application/json; charset=UTF-8", "APPLICATION/JSON"])
def test_media_types_compare_case_insensitively(seeded, handler, media_type):
    event = http_event("api-queue-selected.json", sub=ALICE, body={"tripIds": ["trip-euro"]})
    event["headers"]["content-type"] = media_type
    status, _ = call_api(handler("api"), event)
    assert status == 202


# ------------------------------------------------------------------ images nobody points at any more
def test_images_of_records_the_host_deleted_or_reimaged_are_removed(seeded, handler, stack, deliver_stream):
    api = handler("api")
    queue(api, tripIds=["trip-euro", "trip-summer"], segmentIds=["seg-paris-rome"])
    assert drain(stack, handler("worker")) == {"handled": 3, "failed": 0}
    deliver_stream()
    euro, summer, leg = (
        table_item(stack, f"USER#{ALICE}", sk)
        for sk in ("TRIP#trip-euro", "TRIP#trip-summer", "TRIP#trip-euro#SEGMENT#seg-paris-rome")
    )
    assert objects(stack) == sorted(r["imageKey"] for r in (euro, summer, leg))

    # When the host deletes one record, writes its own image over another, and clears the third's
    delete(stack, f"USER#{ALICE}", "TRIP#trip-euro")
    set_image(stack, f"USER#{ALICE}", "TRIP#trip-summer", "https://host.example.com/summer.png")
    set_image(stack, f"USER#{ALICE}", "TRIP#trip-euro#SEGMENT#seg-paris-rome", "")
    deliver_stream()

    # Then no object is left that nothing points at, and the host's own image is kept
    assert objects(stack) == []
    summer_now = table_item(stack, f"USER#{ALICE}", "TRIP#trip-summer")
    assert summer_now["imageUrl"] == "https://host.example.com/summer.png" and "imageKey" not in summer_now
    assert table_item(stack, f"USER#{ALICE}", "TRIP#trip-euro") is None  # and nothing came back


def test_a_record_written_again_after_its_deletion_keeps_its_new_image(seeded, handler, stack, deliver_stream):
    api = handler("api")
    queue(api, tripIds=["trip-summer"])
    assert drain(stack, handler("worker")) == {"handled": 1, "failed": 0}
    old_key = table_item(stack, f"USER#{ALICE}", "TRIP#trip-summer")["imageKey"]

    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61), tick=True):  # a minute later
        # the host deletes the trip and writes it again; it gets a new image before the stream function runs
        delete(stack, f"USER#{ALICE}", "TRIP#trip-summer")
        put_items(stack.physical("TravelTable"), [trip(ALICE, "trip-summer", "Summer again", "2026-04-01T00:00:00Z")])
        queue(api, tripIds=["trip-summer"])
        assert drain(stack, handler("worker")) == {"handled": 1, "failed": 0}
        new_key = table_item(stack, f"USER#{ALICE}", "TRIP#trip-summer")["imageKey"]

        deliver_stream()

    assert new_key != old_key
    assert objects(stack) == [new_key]
