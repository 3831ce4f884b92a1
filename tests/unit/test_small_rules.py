"""Small rules with big consequences: retry delays, index keys, task messages, the stream filter."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from devtools.streams import _matches
from image_recovery.indexing import wanted_index
from image_recovery.tasks import QueueMissingTask, RepairSegmentTask, task_adapter
from image_recovery.worker_runtime import retry_delay_seconds


@pytest.mark.parametrize(("attempt", "delay"), [(1, 30), (2, 60), (3, 120), (5, 480), (6, 900), (12, 900)])
def test_retry_delays_double_and_stop_at_fifteen_minutes(attempt: int, delay: int) -> None:
    assert retry_delay_seconds(attempt) == delay


@pytest.mark.parametrize("image", [{}, {"imageUrl": None}, {"imageUrl": ""}])
def test_a_record_missing_its_image_is_indexed_under_its_owner_newest_first(image: dict) -> None:
    item = {"PK": "USER#u", "SK": "TRIP#t", "createdAt": "2026-01-02T00:00:00.000Z", **image}

    assert wanted_index(item) == ("USER#u", "2026-01-02T00:00:00.000Z#TRIP#t")


def test_a_record_with_an_image_is_not_indexed() -> None:
    assert wanted_index({"PK": "USER#u", "SK": "TRIP#t", "imageUrl": "https://x/y.png"}) is None


def test_tasks_travel_as_camel_case_json_and_come_back_as_their_own_kind() -> None:
    task = QueueMissingTask(
        batch_id="b", user_id="u", style_id="s", selection="all", from_index=True, start_key={"PK": {"S": "x"}}
    )

    body = task.model_dump_json(by_alias=True)
    parsed = task_adapter().validate_json(body)

    assert '"batchId":"b"' in body and '"startKey"' in body
    assert parsed == task
    assert isinstance(
        task_adapter().validate_json(RepairSegmentTask(run_id="r", segment=1, total_segments=4).model_dump_json()),
        RepairSegmentTask,
    )


def test_an_unknown_task_kind_is_refused() -> None:
    with pytest.raises(ValidationError):
        task_adapter().validate_json('{"kind": "delete-everything", "version": 1}')


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
