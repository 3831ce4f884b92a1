"""Small rules with big consequences: a handed-back job's attempts, retry delays, index keys in time order,
task messages, the stream filter, the listing's choice past its probe."""

from __future__ import annotations

import json

import pytest

from devtools.streams import _matches
from image_recovery.jobs import ImageJob
from image_recovery.models import Trip, created_at_order, missing_index_values
from image_recovery.recovery import read_on_items
from image_recovery.repository import Page
from image_recovery.tasks import QueueMissingTask, RepairSegmentTask, parse_task
from image_recovery.worker_runtime import retry_delay_seconds


def test_a_job_handed_back_carries_its_spent_attempts_and_counts_the_hand_back() -> None:
    first = ImageJob(
        job_id="j", batch_id="b", pk="USER#u", sk="TRIP#t", entity_type="TRIP", record_id="t", style_id="s"
    )

    # received three times (two attempts failed), then deferred: the next message starts at the third attempt
    again = first.handed_back(receive_count=3)
    once_more = again.handed_back(receive_count=1)  # deferred at once on its first delivery

    assert (again.earlier_attempts, again.deferrals, again.attempt(1)) == (2, 1, 3)
    assert (once_more.earlier_attempts, once_more.deferrals, once_more.attempt(2)) == (2, 2, 4)
    assert json.loads(again.to_message()) == {**json.loads(first.to_message()), "earlierAttempts": 2, "deferrals": 1}
    assert "deferrals" not in first.to_message()  # a first message is DESIGN §4's, nothing more
    assert ImageJob.from_json(once_more.to_message()) == once_more


@pytest.mark.parametrize(("attempt", "delay"), [(1, 30), (2, 60), (3, 120), (5, 480), (6, 900), (12, 900)])
def test_retry_delays_double_and_stop_at_fifteen_minutes(attempt: int, delay: int) -> None:
    assert retry_delay_seconds(attempt) == delay


def test_a_record_missing_its_image_is_indexed_under_its_owner_by_its_parsed_creation_time() -> None:
    assert missing_index_values("USER#u", "TRIP#t", "2026-01-02T00:00:00.000Z") == (
        "USER#u",
        "2026-01-02T00:00:00.000000Z#TRIP#t",
    )


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("2026-01-02T00:00:00Z", "2026-01-02T00:00:00.500Z"),  # as strings, "…00Z" sorts above "…00.500Z"
        ("2026-01-02T11:00:00+01:00", "2026-01-02T10:30:00Z"),  # 10:00 UTC: older, although "11" > "10"
        ("2026-01-02T09:00:00+02:00", "2026-01-02T08:00:00Z"),
        ("2026-01-02T00:00:00", "2026-01-02T00:00:00.001Z"),  # no offset: taken as UTC
        ("2025-12-31", "2026-01-01T00:00:00Z"),  # a date alone is its midnight
    ],
)
def test_newest_first_compares_points_in_time_not_strings(older: str, newer: str) -> None:
    assert created_at_order(older) < created_at_order(newer)


@pytest.mark.parametrize("value", [None, "", "yesterday", "2026-13-45T00:00:00Z", "0001-01-01T00:00:00+01:00"])
def test_an_unparsable_creation_time_sorts_after_every_real_one(value: str | None) -> None:
    assert created_at_order(value) == ""
    assert created_at_order(value) < created_at_order("1970-01-01T00:00:00Z")


def test_tasks_travel_as_camel_case_json_and_come_back_as_their_own_kind() -> None:
    task = QueueMissingTask(
        batch_id="b", user_id="u", style_id="s", selection="all", from_index=True, start_key={"PK": {"S": "x"}}
    )

    body = task.to_json()
    parsed = parse_task(body)

    assert '"batchId":"b"' in body and '"startKey"' in body
    assert parsed == task
    assert isinstance(
        parse_task(RepairSegmentTask(run_id="r", segment=1, total_segments=4).to_json()),
        RepairSegmentTask,
    )


@pytest.mark.parametrize(
    "body",
    [
        '{"kind": "delete-everything", "version": 1}',
        '{"kind": "repair-segment", "version": 1, "runId": "r", "segment": -1, "totalSegments": 4}',
        '{"kind": "repair-segment", "version": 2, "runId": "r", "segment": 0, "totalSegments": 4}',
        '{"kind": "audit-images", "version": 1, "continuationToken": 7}',
        '{"kind": "queue-missing", "version": 1, "batchId": "b", "userId": "u", "styleId": "s", "selection": "all"}',
        '["queue-missing"]',
    ],
    ids=["unknown kind", "negative segment", "version", "token type", "missing field", "not an object"],
)
def test_a_body_that_is_no_task_is_refused(body: str) -> None:
    with pytest.raises(ValueError):
        parse_task(body)


PATTERN = {"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"entityType": {"S": ["TRIP"]}}}}


@pytest.mark.parametrize(
    ("record", "delivered"),
    [
        ({"eventName": "INSERT", "dynamodb": {"NewImage": {"entityType": {"S": "TRIP"}}}}, True),
        ({"eventName": "REMOVE", "dynamodb": {"NewImage": {"entityType": {"S": "TRIP"}}}}, False),
        ({"eventName": "MODIFY", "dynamodb": {"NewImage": {"entityType": {"S": "PROFILE"}}}}, False),
        ({"eventName": "MODIFY", "dynamodb": {}}, False),
    ],
)
def test_the_local_stream_applies_lambdas_event_filter(record: dict, delivered: bool) -> None:
    assert _matches(PATTERN, record) is delivered


REMOVALS = {"eventName": ["REMOVE"], "dynamodb": {"Keys": {"SK": {"S": [{"prefix": "TRIP#"}]}}}}


@pytest.mark.parametrize(
    ("sk", "delivered"), [("TRIP#t1", True), ("TRIP#t1#SEGMENT#s1", True), ("PROFILE", False), ("XTRIP#", False)]
)
def test_the_local_stream_filters_deletions_by_key_prefix(sk: str, delivered: bool) -> None:
    record = {"eventName": "REMOVE", "dynamodb": {"Keys": {"PK": {"S": "USER#u"}, "SK": {"S": sk}}}}
    assert _matches(REMOVALS, record) is delivered


def _probe(missing: int, items: int, mean_bytes: int) -> Page:
    records = [
        Trip("USER#u", f"TRIP#t{n}", id=f"t{n}", image_url=None if n < missing else "https://x/y.png")
        for n in range(items)
    ]
    return Page(records, {"PK": {"S": "USER#u"}}, items=items, bytes=items * mean_bytes)


@pytest.mark.parametrize(
    ("probe", "missing", "parents", "read_on"),
    [
        # 20 of 200 missing, 30 in all: about 100 more items, cheaper than 8 parents (4 KB each = 109 items)
        (_probe(20, 200, 300), 30, 8, 8 * 4096 // 300),
        (_probe(20, 200, 300), 40, 8, 0),  # about 200 more items: the 8 parents are cheaper
        (_probe(2, 200, 300), 3, 8, 8 * 4096 // 300),  # sparse, but little beyond the probe
        (_probe(2, 200, 300), 30, 8, 0),  # sparse and much beyond: the index's parents
        (_probe(0, 200, 300), 3, 8, 0),  # the probe tells nothing of the rest's density
        (_probe(20, 200, 300), 30, 0, 0),  # no parent to fetch
        (_probe(20, 200, 3000), 30, 8, 0),  # large records: reading on costs more
    ],
)
def test_a_listing_past_its_probe_reads_on_only_where_the_rest_costs_less_than_its_parents(
    probe: Page, missing: int, parents: int, read_on: int
) -> None:
    assert read_on_items(probe, missing=missing, parents=parents) == read_on
