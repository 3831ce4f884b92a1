"""Travel records: what counts as missing, the status a user sees, and conditional state changes."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from devtools.seed import ABSENT, NULL, put_items, trip
from devtools.template_resources import LocalStack
from image_recovery.models import ImageStatus, Trip
from image_recovery.repository import RecordRepository

REGION = "us-east-1"
USER = "u1"
URL = "https://images.example.com/t1.png"


@pytest.fixture
def table(tables: LocalStack) -> str:
    return tables.physical("TravelTable")


@pytest.fixture
def repo(table: str) -> RecordRepository:
    return RecordRepository()


def put_trip(table: str, trip_id: str = "t1", image_url: Any = ABSENT, **extra: Any) -> None:
    put_items(table, [trip(USER, trip_id, f"Trip {trip_id}", "2026-01-10T09:00:00.000Z", image_url, **extra)], REGION)


def raw_item(table: str, sk: str = "TRIP#t1") -> dict:
    return boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=table, Key={"PK": {"S": f"USER#{USER}"}, "SK": {"S": sk}}, ConsistentRead=True
    )["Item"]


def load(repo: RecordRepository, trip_id: str = "t1") -> Trip:
    record = repo.get(f"USER#{USER}", f"TRIP#{trip_id}", where="test")
    assert isinstance(record, Trip)
    return record


# ------------------------------------------------------------------ missing detection (DESIGN §2)
@pytest.mark.parametrize(
    ("image_url", "missing"),
    [(ABSENT, True), (NULL, True), ("", True), (URL, False)],
    ids=["absent", "null", "empty", "url"],
)
def test_missing_image_forms_written_by_another_writer(
    table: str, repo: RecordRepository, image_url: Any, missing: bool
) -> None:
    # Given a trip written with plain boto3, as the host app would
    put_trip(table, image_url=image_url)

    # When it is read back through the repository
    (record,) = repo.user_records(USER, where="test")

    # Then only a non-empty URL counts as an image
    assert record.image_missing is missing
    assert record.effective_status == (ImageStatus.MISSING if missing else ImageStatus.READY)


# ------------------------------------------------------------------ effective_status (pure)
@pytest.mark.parametrize(
    ("image_url", "image_status", "expected"),
    [
        (URL, "failed", ImageStatus.READY),
        (URL, "queued", ImageStatus.READY),
        (URL, None, ImageStatus.READY),
        (None, "queued", ImageStatus.QUEUED),
        ("", "generating", ImageStatus.GENERATING),
        (None, "failed", ImageStatus.FAILED),
        (None, None, ImageStatus.MISSING),
        (None, "ready", ImageStatus.MISSING),  # says ready but has no image
        ("", "something-else", ImageStatus.MISSING),
    ],
)
def test_effective_status(image_url: str | None, image_status: str | None, expected: ImageStatus) -> None:
    record = Trip(f"USER#{USER}", "TRIP#t1", id="t1", user_id=USER, image_url=image_url, image_status=image_status)
    assert record.effective_status is expected


# ------------------------------------------------------------------ other item kinds in the partition
def put_profile(table: str) -> None:
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=table,
        Item={
            "PK": {"S": f"USER#{USER}"},
            "SK": {"S": "PROFILE"},
            "entityType": {"S": "PROFILE"},
            "id": {"S": "p1"},
            "userId": {"S": USER},
        },
    )


def test_user_records_ignore_other_entity_types(table: str, repo: RecordRepository) -> None:
    put_trip(table)
    put_profile(table)

    assert [r.sk for r in repo.user_records(USER, where="test")] == ["TRIP#t1"]


def test_get_returns_none_for_an_unknown_key(repo: RecordRepository) -> None:
    assert repo.get(f"USER#{USER}", "TRIP#nope", where="test") is None


def test_get_returns_none_for_another_entity_type(table: str, repo: RecordRepository) -> None:
    put_profile(table)
    assert repo.get(f"USER#{USER}", "PROFILE", where="test") is None


# ------------------------------------------------------------------ conditional writes
def mark_queued(repo: RecordRepository, record: Trip, job_id: str = "job-1") -> bool:
    return repo.mark_queued(record, job_id=job_id, batch_id="batch-1", style_id="travel-poster")


def test_mark_queued_claims_a_record_once(table: str, repo: RecordRepository) -> None:
    put_trip(table)

    assert mark_queued(repo, load(repo), "job-1") is True
    assert mark_queued(repo, load(repo), "job-2") is False
    item = raw_item(table)
    assert (item["imageStatus"]["S"], item["imageJobId"]["S"]) == ("queued", "job-1")


def test_mark_queued_holds_even_with_a_stale_copy(table: str, repo: RecordRepository) -> None:
    # Given two requests that both read the record before either wrote
    put_trip(table)
    first, second = load(repo), load(repo)

    # When both try to claim it, Then only the first wins: the condition, not the read, decides
    assert mark_queued(repo, first, "job-1") is True
    assert mark_queued(repo, second, "job-2") is False
    assert raw_item(table)["imageJobId"]["S"] == "job-1"


def test_mark_queued_refuses_a_record_that_has_an_image(table: str, repo: RecordRepository) -> None:
    put_trip(table, image_url=URL)

    assert mark_queued(repo, load(repo)) is False
    assert "imageStatus" not in raw_item(table)


def test_a_failed_record_can_be_queued_again(table: str, repo: RecordRepository) -> None:
    put_trip(table, image_url=NULL, imageStatus="failed", imageError="content_filtered")

    assert mark_queued(repo, load(repo)) is True
    item = raw_item(table)
    assert item["imageStatus"]["S"] == "queued" and "imageError" not in item


def test_mark_ready_with_another_job_id_writes_nothing(table: str, repo: RecordRepository) -> None:
    put_trip(table)
    mark_queued(repo, load(repo), "job-1")
    before = raw_item(table)

    assert repo.mark_ready(load(repo), "job-other", image_url=URL, image_key="k.png") is False
    assert raw_item(table) == before


def test_mark_ready_keeps_an_image_set_meanwhile(table: str, repo: RecordRepository) -> None:
    # Given a queued record whose image another writer set while the job ran
    put_trip(table)
    record = load(repo)
    mark_queued(repo, record, "job-1")
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=table,
        Key={"PK": {"S": f"USER#{USER}"}, "SK": {"S": "TRIP#t1"}},
        UpdateExpression="SET imageUrl = :u",
        ExpressionAttributeValues={":u": {"S": "https://host.example.com/theirs.png"}},
    )

    # When the job tries to write its own image, Then it is refused and theirs is kept
    assert repo.mark_ready(record, "job-1", image_url=URL, image_key="k.png") is False
    item = raw_item(table)
    assert item["imageUrl"]["S"] == "https://host.example.com/theirs.png"
    assert "imageKey" not in item


def test_mark_ready_by_the_owning_job_writes_the_image(table: str, repo: RecordRepository) -> None:
    put_trip(table)
    mark_queued(repo, load(repo), "job-1")

    assert repo.mark_ready(load(repo), "job-1", image_url=URL, image_key="k.png") is True
    item = raw_item(table)
    assert (item["imageUrl"]["S"], item["imageKey"]["S"], item["imageStatus"]["S"]) == (URL, "k.png", "ready")
    assert load(repo).effective_status is ImageStatus.READY


# ------------------------------------------------------------------ the service never creates an item (DESIGN §2)
def delete_trip(table: str) -> None:
    boto3.client("dynamodb", region_name=REGION).delete_item(
        TableName=table, Key={"PK": {"S": f"USER#{USER}"}, "SK": {"S": "TRIP#t1"}}
    )


WRITES = {
    "mark_queued": lambda repo, record: mark_queued(repo, record, "job-1"),
    "mark_generating": lambda repo, record: repo.mark_generating(record, "job-1"),
    "note_attempt": lambda repo, record: repo.note_attempt(record, "job-1"),
    "note_retry": lambda repo, record: repo.note_retry(record, "job-1", reason="throttled"),
    "mark_ready": lambda repo, record: repo.mark_ready(record, "job-1", image_url=URL, image_key="k.png"),
    "mark_failed": lambda repo, record: repo.mark_failed(record, "job-1", reason="throttled"),
    "settle_in_flight": lambda repo, record: repo.settle_in_flight(record, "job-1"),
}


@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
@pytest.mark.parametrize("status", [None, "queued", "generating"])
def test_no_write_brings_back_a_record_the_host_deleted(table: str, repo: RecordRepository, write, status) -> None:
    # Given a record read in whatever state a write would accept, which the host app then deletes
    put_trip(table, **({"imageStatus": status, "imageJobId": "job-1"} if status else {}))
    record = load(repo)
    delete_trip(table)

    # When the service writes to it, Then the write is refused and the table stays without the item
    assert WRITES[write](repo, record) is False
    assert boto3.client("dynamodb", region_name=REGION).scan(TableName=table, ConsistentRead=True)["Items"] == []


def test_mark_queued_refuses_a_copy_read_before_another_state_change(table: str, repo: RecordRepository) -> None:
    # Given a record read as never tried, which then failed for good (a refused prompt) before it was queued
    put_trip(table)
    record = load(repo)
    mark_queued(repo, load(repo), "job-1")
    repo.mark_failed(load(repo), "job-1", reason="content_filtered")

    # When a sweep that read it earlier queues it, Then the decision made on the old copy does not hold
    assert mark_queued(repo, record, "job-2") is False
    assert raw_item(table)["imageError"]["S"] == "content_filtered"


def test_mark_failed_counts_the_records_failures(table: str, repo: RecordRepository) -> None:
    put_trip(table)
    for n, job in enumerate(("job-1", "job-2"), start=1):
        mark_queued(repo, load(repo), job)
        assert repo.mark_failed(load(repo), job, reason="throttled") is True
        assert raw_item(table)["imageFailures"]["N"] == str(n)
