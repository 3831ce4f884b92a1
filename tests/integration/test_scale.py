"""Costs that grow with the missing images, not with the table: the sparse index, its upkeep by the
stream, the repair scan in resumable segments, and queue-all fanned out for any size."""

from __future__ import annotations

import json

import boto3
import pytest

from bench.counting import measure
from devtools.lambda_runtime import LambdaContext, http_event, load_event, sqs_event
from devtools.seed import ALICE, BOB, put_items, reservation, sample_items, segment, trip
from devtools.streams import LocalStream
from image_recovery import recovery
from image_recovery.indexing import index_existing_records
from image_recovery.recovery import PARTITION_PROBE_ITEMS
from tests.helpers import REGION, call_api, metric_total, metrics_emitted, queued_jobs, table_item, take_messages

pytestmark = pytest.mark.integration

HAS_IMAGE = "https://images.example.com/x.png"


def many_trips(user: str, count: int, *, image: object = HAS_IMAGE, prefix: str = "t") -> list[dict]:
    return [
        trip(user, f"{prefix}{n:05}", f"Trip {n}", f"2025-{1 + n % 12:02}-01T00:00:{n % 60:02}.000Z", image)
        for n in range(count)
    ]


@pytest.fixture
def complete_index(stack, deliver_stream):
    """The production steady state: the stream is live and a full scan since then has reconciled every record."""

    def complete() -> None:
        deliver_stream()
        index_existing_records(stack.physical("TravelTable"))

    return complete


# ---------------------------------------------------------------- listing and sweep read only missing records
def test_listing_reads_the_missing_records_and_their_parents_only(seeded, handler, complete_index):
    put_items(seeded.physical("TravelTable"), many_trips(ALICE, 300))  # 300 more records, all with images
    complete_index()

    with measure() as counts:
        status, body = call_api(handler("api"), http_event("api-list-missing-images.json", sub=ALICE))

    assert (status, body["count"]) == (200, 5)
    # past the probe of the partition: 5 missing records from the index; their parents are among them
    # (trip-euro, seg-paris-rome): no extra reads
    assert counts.items_by("Query") == PARTITION_PROBE_ITEMS + 5
    assert counts.calls("BatchGetItem") == counts.calls("Scan") == 0


def test_a_partition_within_the_probe_is_listed_from_one_query_of_it(seeded, handler, complete_index):
    complete_index()
    api = handler("api")
    call_api(api, http_event("api-list-missing-images.json", sub=BOB))  # a warm container knows the index is complete

    with measure() as counts:
        status, body = call_api(api, http_event("api-list-missing-images.json", sub=ALICE))

    assert (status, body["count"]) == (200, 5)
    assert dict(counts.requests) == {("dynamodb", "Query"): 1}  # no index, no parents: cheaper than both
    assert counts.items_read == len([i for i in sample_items() if i["PK"] == f"USER#{ALICE}"])


def test_a_partition_past_the_probe_is_listed_whole_without_a_complete_index(stack, handler):
    # the missing records sort after the probe's items: only the rest of the partition finds them
    put_items(stack.physical("TravelTable"), many_trips(ALICE, PARTITION_PROBE_ITEMS))
    put_items(stack.physical("TravelTable"), many_trips(ALICE, 3, image="", prefix="z"))

    _, body = call_api(handler("api"), http_event("api-list-missing-images.json", sub=ALICE))

    assert body["count"] == 3
    assert [t["id"] for t in body["trips"]] == ["z00002", "z00001", "z00000"]


def test_listing_fetches_parents_the_probe_did_not_read_in_one_batch(stack, handler, complete_index, past_the_probe):
    put_items(
        stack.physical("TravelTable"),
        [
            trip(ALICE, "t1", "Lisbon", "2026-01-01T00:00:00.000Z", HAS_IMAGE),
            segment(ALICE, "t1", "s1", "Porto to Lisbon", "2026-01-01T00:01:00.000Z", HAS_IMAGE),
            reservation(ALICE, "t1", "s1", "r1", "Tram 28", "2026-01-01T00:02:00.000Z"),
        ],
    )
    complete_index()

    with measure() as counts:
        _, body = call_api(handler("api"), http_event("api-list-missing-images.json", sub=ALICE))

    (tram,) = body["reservations"]
    assert (tram["tripTitle"], tram["segmentName"]) == ("Lisbon", "Porto to Lisbon")
    # the probe (the trip, first in key order), the missing reservation from the index, then only the segment
    assert counts.items_by("Query") == 2
    assert (counts.calls("BatchGetItem"), counts.items_by("BatchGetItem")) == (1, 1)


def dense_partition(between: int) -> list[dict]:
    """A probe of 10 items, half of them missing their image; then `between` trips with images; then a trip and
    a segment with images and 3 missing reservations under them: parents that only the rest of it holds."""
    at = "2026-01-01T00:00:{:02}.000Z".format
    return [
        *(trip(ALICE, f"a{n}", f"A {n}", at(n), HAS_IMAGE if n % 2 else "") for n in range(10)),
        *many_trips(ALICE, between, prefix="m"),
        trip(ALICE, "z", "Lisbon", at(20), HAS_IMAGE),
        segment(ALICE, "z", "s", "Porto to Lisbon", at(21), HAS_IMAGE),
        *(reservation(ALICE, "z", "s", f"r{n}", f"Tram {n}", at(22 + n)) for n in range(3)),
    ]


def listed_parents(body: dict) -> set[tuple[str, str]]:
    return {(r["tripTitle"], r["segmentName"]) for r in body["reservations"]}


def test_past_the_probe_a_dense_partition_is_read_on_rather_than_its_parents_fetched(
    stack, handler, complete_index, monkeypatch
):
    monkeypatch.setattr(recovery, "PARTITION_PROBE_ITEMS", 10)
    put_items(stack.physical("TravelTable"), dense_partition(between=0))
    complete_index()

    with measure() as counts:
        _, body = call_api(handler("api"), http_event("api-list-missing-images.json", sub=ALICE))

    assert body["count"] == 8 and listed_parents(body) == {("Lisbon", "Porto to Lisbon")}
    # the probe, the index, then the rest of the partition (5 items: cheaper than 2 parents by key)
    assert (counts.calls("Query"), counts.calls("BatchGetItem")) == (3, 0)
    assert counts.items_by("Query") == 10 + 8 + 5


def test_reading_on_stops_at_what_the_parents_cost_when_the_estimate_was_short(
    stack, handler, complete_index, monkeypatch
):
    monkeypatch.setattr(recovery, "PARTITION_PROBE_ITEMS", 10)
    put_items(stack.physical("TravelTable"), dense_partition(between=300))  # the probe promised 6 more items
    complete_index()

    with measure() as counts:
        _, body = call_api(handler("api"), http_event("api-list-missing-images.json", sub=ALICE))

    assert body["count"] == 8 and listed_parents(body) == {("Lisbon", "Porto to Lisbon")}
    assert (counts.calls("BatchGetItem"), counts.items_by("BatchGetItem")) == (1, 2)  # then the parents by key
    read_on = counts.items_by("Query") - 10 - 8
    assert 6 < read_on < 300  # more than the estimate, far from the rest of the partition


def test_the_probe_is_one_query_page_however_much_the_hosts_items_weigh(stack, handler, complete_index):
    heavy = [  # 15 trips of 300 KB (the host keeps whatever it likes on them), sorted before the missing ones
        trip(ALICE, f"a{n:02}", f"Heavy {n}", "2026-01-01T00:00:00.000Z", HAS_IMAGE, notes="x" * 300_000)
        for n in range(15)
    ]
    put_items(stack.physical("TravelTable"), [*heavy, *many_trips(ALICE, 2, image="", prefix="z")])
    complete_index()

    with measure() as counts:
        _, body = call_api(handler("api"), http_event("api-list-missing-images.json", sub=ALICE))

    assert body["count"] == 2
    # the probe stops at DynamoDB's 1 MB page (3 of these items), not at its 200 items; then the index
    assert counts.calls("Query") == 2
    assert counts.items_by("Query") == 3 + 2


def test_the_sweep_reads_only_the_missing_records(seeded, handler, complete_index):
    put_items(seeded.physical("TravelTable"), many_trips("someone", 400))
    complete_index()

    with measure() as counts:
        report = handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    assert report["queued"] == 6
    assert counts.items_by("Scan") == 6


def test_without_a_live_stream_everything_still_finds_records_written_by_others(stack, handler):
    """DESIGN §2: records carrying only the contract's attributes are found, whoever wrote them, even
    where nothing has delivered the stream yet: the table is read instead of the index."""
    put_items(stack.physical("TravelTable"), [*many_trips(ALICE, 3, image=None), *many_trips(ALICE, 50, prefix="img")])
    api = handler("api")

    _, listing = call_api(api, http_event("api-list-missing-images.json", sub=ALICE))
    report = handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    assert listing["count"] == 3
    assert report["queued"] == 3
    # the full sweep repaired the index attributes on the way (DESIGN: "repaired by the sweep when absent")
    assert table_item(stack, f"USER#{ALICE}", "TRIP#t00000")["imageMissingOwner"] == f"USER#{ALICE}"


def test_a_full_sweep_after_the_stream_went_live_completes_the_index(stack, handler, deliver_stream):
    put_items(stack.physical("TravelTable"), many_trips(ALICE, 40))
    deliver_stream()  # the stream function is live from here on
    put_items(stack.physical("TravelTable"), many_trips(ALICE, 2, image="", prefix="new"))
    sweep = handler("sweep")

    with measure() as first:
        sweep.lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())
    put_items(stack.physical("TravelTable"), many_trips(ALICE, 1, image=None, prefix="later"))
    deliver_stream()
    with measure() as second:
        report = handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    assert first.items_by("Scan") == 42  # the whole table, once
    assert second.items_by("Scan") == 3  # the index: the three missing records, two of them in flight
    assert report["queued"] == 1


# ---------------------------------------------------------------- index upkeep, whoever writes
def test_the_stream_indexes_another_writers_records_and_unindexes_them_when_an_image_arrives(
    stack, handler, deliver_stream
):
    put_items(stack.physical("TravelTable"), [trip(ALICE, "t1", "Oslo", "2026-01-01T00:00:00.000Z")])
    deliver_stream()
    assert table_item(stack, f"USER#{ALICE}", "TRIP#t1")["imageMissingOwner"] == f"USER#{ALICE}"

    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=stack.physical("TravelTable"),
        Key={"PK": {"S": f"USER#{ALICE}"}, "SK": {"S": "TRIP#t1"}},
        UpdateExpression="SET imageUrl = :u",
        ExpressionAttributeValues={":u": {"S": HAS_IMAGE}},
    )
    deliver_stream()

    item = table_item(stack, f"USER#{ALICE}", "TRIP#t1")
    assert "imageMissingOwner" not in item and "imageMissingSort" not in item
    _, body = call_api(handler("api"), http_event("api-list-missing-images.json", sub=ALICE))
    assert body["count"] == 0


def test_the_indexers_own_writes_do_not_loop(stack, handler):
    put_items(stack.physical("TravelTable"), many_trips(ALICE, 30, image=None))
    stream = LocalStream(stack)
    indexer = handler("indexer")

    first = stream.deliver(indexer)  # 30 inserts, then the 30 writes they caused, which change nothing

    assert first == 60
    assert stream.pending() == []


def test_the_stream_ignores_other_items_and_never_revives_a_deleted_record(stack, handler, deliver_stream):
    table = stack.physical("TravelTable")
    put_items(table, [{"PK": f"USER#{ALICE}", "SK": "PROFILE", "entityType": "PROFILE", "id": "p"}])
    put_items(table, [trip(ALICE, "gone", "Gone", "2026-01-01T00:00:00.000Z")])
    boto3.client("dynamodb", region_name=REGION).delete_item(
        TableName=table, Key={"PK": {"S": f"USER#{ALICE}"}, "SK": {"S": "TRIP#gone"}}
    )

    deliver_stream()

    assert table_item(stack, f"USER#{ALICE}", "TRIP#gone") is None
    assert "imageMissingOwner" not in table_item(stack, f"USER#{ALICE}", "PROFILE")


def test_new_records_are_queued_at_once_when_asked(stack, handler):
    put_items(stack.physical("TravelTable"), [trip(ALICE, "fresh", "Fresh", "2026-01-01T00:00:00.000Z")])

    LocalStream(stack).deliver(handler("indexer", QUEUE_NEW_RECORDS="true"))

    assert [job["recordId"] for job in queued_jobs(stack)] == ["fresh"]
    assert table_item(stack, f"USER#{ALICE}", "TRIP#fresh")["imageStatus"] == "queued"


# ---------------------------------------------------------------- the repair scan, segment by segment
def run_tasks(stack, tasks_module, *, remaining_ms: int) -> list[dict]:
    """Run the task queue to empty as Lambda would, each invocation with `remaining_ms` left."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = stack.physical("TaskQueue")
    results = []
    for _ in range(500):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, AttributeNames=["All"]).get("Messages")
        if not messages:
            return results
        response = tasks_module.lambda_handler(
            sqs_event(messages, stack.arns["TaskQueue"]), LambdaContext(remaining_ms=remaining_ms)
        )
        assert response == {"batchItemFailures": []}
        sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
        results.append(json.loads(messages[0]["Body"]))
    raise AssertionError("the task queue never emptied")


def test_the_repair_scan_fans_out_per_segment_resumes_and_fixes_every_record(stack, handler, past_the_probe):
    table = stack.physical("TravelTable")
    # written while the stream function was not there: nothing indexed yet
    put_items(table, many_trips(ALICE, 40, image=None) + many_trips(ALICE, 60, prefix="img"))
    stale = trip(
        ALICE,
        "stale",
        "Stale",
        "2026-01-01T00:00:00.000Z",
        HAS_IMAGE,
        imageMissingOwner=f"USER#{ALICE}",
        imageMissingSort="x",
    )
    put_items(table, [stale])
    tasks = handler("tasks", REPAIR_SEGMENTS="3", REPAIR_PAGE_SIZE="10")

    boto3.client("dynamodb", region_name=REGION).put_item(  # the stream function went live before this run
        TableName=stack.physical("BatchTable"),
        Item={"batchId": {"S": "service#index"}, "streamActiveSince": {"S": "2026-01-01T00:00:00.000Z"}},
    )

    started = tasks.lambda_handler(load_event("tasks-repair-scheduled.json"), LambdaContext())
    # little time left in every invocation: each segment goes on page by page as a chain of tasks
    ran = run_tasks(stack, tasks, remaining_ms=1_000)

    assert started == {"repairSegmentsStarted": 3}
    segments = [t for t in ran if t["kind"] == "repair-segment"]
    assert {t["segment"] for t in segments} == {0, 1, 2}
    assert any(t["startKey"] for t in segments)  # at least one continuation
    assert [t["kind"] for t in ran].count("audit-images") == 1  # the bucket audit runs beside them
    _, body = call_api(handler("api"), http_event("api-list-missing-images.json", sub=ALICE))
    assert body["count"] == 40
    assert "imageMissingOwner" not in table_item(stack, f"USER#{ALICE}", "TRIP#stale")
    # the last segment to finish completed the index: listing now reads it
    with measure() as counts:
        call_api(handler("api"), http_event("api-list-missing-images.json", sub=ALICE))
    assert counts.items_by("Query") == 1 + 40  # the probe's item, then the index's


# ---------------------------------------------------------------- queue-all for any size
LARGE_USER = 210  # the request's first 100, then two pages of the fan-out (the second of 10)


@pytest.mark.parametrize("indexed", [True, False], ids=["from the index", "from the table"])
def test_queue_all_for_a_large_user_answers_at_once_and_fans_out_exactly_once(
    stack, handler, complete_index, indexed, capsys
):
    put_items(stack.physical("TravelTable"), many_trips(ALICE, LARGE_USER, image=""))
    if indexed:
        complete_index()
    api = handler("api")

    status, body = call_api(api, http_event("api-queue-all.json", sub=ALICE))

    assert (status, body["complete"]) == (202, False)
    assert body["summary"]["trips"]["queued"] == 100
    _, progress = call_api(
        api, http_event("api-batch-progress.json", sub=ALICE, path_parameters={"batchId": body["batchId"]})
    )
    assert (progress["total"], progress["complete"]) == (100, False)

    run_tasks(stack, handler("tasks"), remaining_ms=1_000)

    _, progress = call_api(
        api, http_event("api-batch-progress.json", sub=ALICE, path_parameters={"batchId": body["batchId"]})
    )
    assert (progress["total"], progress["queued"], progress["complete"]) == (LARGE_USER, LARGE_USER, True)
    record_ids = [job["recordId"] for job in take_messages(stack)]
    assert len(record_ids) == len(set(record_ids)) == LARGE_USER
    # JobsQueued counts what the fan-out queued too, so the dashboard's "generated follows queued" holds
    assert metric_total(metrics_emitted(capsys.readouterr().out), "JobsQueued") == LARGE_USER
