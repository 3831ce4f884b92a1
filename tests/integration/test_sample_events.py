"""The events/ samples of the stream and tasks functions run through the real handlers, as `sam local invoke
-e events/<sample>.json` would run them (the other samples are used by their functions' own tests)."""

from __future__ import annotations

import boto3
import pytest

from devtools.lambda_runtime import LambdaContext, load_event
from devtools.seed import ALICE, put_items, trip
from tests.helpers import REGION, table_item

pytestmark = pytest.mark.integration


def test_the_stream_sample_indexes_the_new_trip_and_cleans_up_after_the_deleted_one(stack, handler):
    table, bucket = stack.physical("TravelTable"), stack.physical("ImageBucket")
    put_items(table, [trip(ALICE, "trip-lisbon", "Lisbon Long Weekend", "2026-11-25T12:00:00.000Z")])
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=bucket, Key=f"images/{ALICE}/trip/trip-ski/0123abcd.png", Body=b"png")  # trip-ski's image

    response = handler("indexer").lambda_handler(load_event("indexer-stream.json"), LambdaContext())

    assert response == {"batchItemFailures": []}
    assert table_item(stack, f"USER#{ALICE}", "TRIP#trip-lisbon")["imageMissingOwner"] == f"USER#{ALICE}"
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # the deleted trip's image went with it
    assert table_item(stack, f"USER#{ALICE}", "TRIP#trip-ski") is None  # and the deletion stays a deletion


def test_the_tasks_sample_runs_the_bucket_audit(stack, handler):
    response = handler("tasks").lambda_handler(load_event("tasks-sqs.json"), LambdaContext())

    assert response == {"batchItemFailures": []}
