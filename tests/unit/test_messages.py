"""Queue message bodies (image_recovery.messages): checked when made and when read, camelCase on the wire."""

from __future__ import annotations

import json

import pytest

from image_recovery.batch_items import partial_batch_response, records_of, sqs_message_id, stream_sequence_number
from image_recovery.jobs import ImageJob
from image_recovery.models import EntityType

JOB = {
    "job_id": "0b6f1c1e5d3a4c4e",
    "batch_id": "sweep-2cc5f264-8a56",
    "pk": "USER#u1",
    "sk": "TRIP#t1#SEGMENT#s1",
    "entity_type": "SEGMENT",
    "record_id": "s1",
    "style_id": "watercolor",
}


def test_a_job_travels_as_compact_camel_case_json_and_comes_back_equal() -> None:
    job = ImageJob(**JOB)

    body = job.to_message()

    assert json.loads(body) == {
        "version": 1,
        "jobId": "0b6f1c1e5d3a4c4e",
        "batchId": "sweep-2cc5f264-8a56",
        "pk": "USER#u1",
        "sk": "TRIP#t1#SEGMENT#s1",
        "entityType": "SEGMENT",
        "recordId": "s1",
        "styleId": "watercolor",
    }
    assert " " not in body
    assert ImageJob.from_json(body) == job
    assert ImageJob.from_json(body).entity_type is EntityType.SEGMENT


def test_a_job_is_also_read_from_snake_case_names_and_unknown_names_are_ignored() -> None:
    assert ImageJob.from_data({**JOB, "later": "field"}) == ImageJob(**JOB)


@pytest.mark.parametrize(
    "change",
    [
        {"job_id": "../../etc"},  # ids name S3 objects: service-made ids only
        {"job_id": "abc\n"},
        {"batch_id": "x" * 65},
        {"pk": "TRIP#t1"},
        {"pk": "USER#a#b"},
        {"sk": "SEGMENT#s1"},
        {"entity_type": "HOTEL"},
        {"record_id": ""},
        {"style_id": 5},
        {"version": 2},
        {"version": True},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_job_that_breaks_a_rule_is_refused_when_made_and_when_read(change: dict) -> None:
    with pytest.raises(ValueError):
        ImageJob(**{**JOB, **change})
    with pytest.raises(ValueError):
        ImageJob.from_data({**ImageJob(**JOB).__dict__, **change})


@pytest.mark.parametrize("body", ["", "[]", '"job"', "{", json.dumps({k: v for k, v in JOB.items() if k != "pk"})])
def test_a_body_that_is_not_a_job_is_refused(body: str) -> None:
    with pytest.raises(ValueError):
        ImageJob.from_json(body)


def test_a_partial_batch_response_names_exactly_the_records_that_failed() -> None:
    records = [{"messageId": "m1", "n": 1}, {"messageId": "m2", "n": 2}, {"messageId": "m3", "n": 3}]
    handled = []

    def handle(record: dict) -> None:
        handled.append(record["n"])
        if record["n"] != 2:
            raise RuntimeError("failed")

    assert partial_batch_response(records, handle, sqs_message_id) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]
    }
    assert handled == [1, 2, 3]  # one failure does not stop the others
    stream = [{"dynamodb": {"SequenceNumber": "42"}}]
    assert partial_batch_response(stream, handle, stream_sequence_number) == {
        "batchItemFailures": [{"itemIdentifier": "42"}]
    }


def test_an_event_without_a_list_of_records_is_not_a_batch() -> None:
    assert records_of({"Records": []}) == []
    with pytest.raises(ValueError):
        records_of({"Records": {"a": 1}})
