"""The naive baseline: what the original tool effectively did, written straight against boto3.

Listing and sweeping Scan the whole table with a filter (DynamoDB reads, and bills, every item before
the filter drops it); context comes from one GetItem per parent. A more realistic listing reads the user's
partition with one (paged) Query and picks the missing records and their parents from it. Queueing is one
conditional UpdateItem and one SendMessage per record.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3

from bench.data import REGION, Key

MISSING = "(attribute_not_exists(imageUrl) OR attribute_type(imageUrl, :null) OR imageUrl = :empty)"
MISSING_VALUES = {":null": {"S": "NULL"}, ":empty": {"S": ""}}


def _scan(table: str, filter_expression: str, values: dict[str, Any]) -> Iterator[dict[str, Any]]:
    client = boto3.client("dynamodb", region_name=REGION)
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": filter_expression,
        "ExpressionAttributeValues": values,
    }
    while True:
        page = client.scan(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _listing(records: list[dict[str, Any]], parent: Callable[[str, str], dict[str, Any] | None]) -> list[dict]:
    """The records as the listing shows them, each with its parents' names (`parent` finds one by key)."""
    listing = []
    for record in records:
        pk, kind = record["PK"]["S"], record["entityType"]["S"]
        row = {"id": record["id"]["S"], "type": kind, "createdAt": record.get("createdAt", {}).get("S", "")}
        if kind in ("SEGMENT", "RESERVATION"):
            trip = parent(pk, f"TRIP#{record['tripId']['S']}")
            row["tripTitle"] = trip["title"]["S"] if trip else None
        if kind == "RESERVATION":
            segment = parent(pk, f"TRIP#{record['tripId']['S']}#SEGMENT#{record['segmentId']['S']}")
            row["segmentName"] = segment["name"]["S"] if segment else None
        listing.append(row)
    return sorted(listing, key=lambda row: row["createdAt"], reverse=True)


def list_missing(table: str, user_id: str) -> list[dict[str, Any]]:
    """The user's records missing images, each with its parents' names, newest first."""
    client = boto3.client("dynamodb", region_name=REGION)
    values = {**MISSING_VALUES, ":user": {"S": user_id}}
    records = list(_scan(table, f"userId = :user AND {MISSING}", values))
    parents: dict[str, dict[str, Any] | None] = {}

    def parent(pk: str, sk: str) -> dict[str, Any] | None:
        if sk not in parents:
            key = {"PK": {"S": pk}, "SK": {"S": sk}}
            parents[sk] = client.get_item(TableName=table, Key=key).get("Item")
        return parents[sk]

    return _listing(records, parent)


def _missing(item: dict[str, Any]) -> bool:
    image = item.get("imageUrl")
    return image is None or "NULL" in image or image.get("S") == ""


def list_missing_from_partition(table: str, user_id: str) -> list[dict[str, Any]]:
    """The same from one Query of the user's partition (paged, unfiltered): the missing records are picked
    here, and their parents are among the items already read."""
    client = boto3.client("dynamodb", region_name=REGION)
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": f"USER#{user_id}"}},
    }
    items: list[dict[str, Any]] = []
    while True:
        page = client.query(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    by_sk = {item["SK"]["S"]: item for item in items}
    return _listing([item for item in items if _missing(item)], lambda _, sk: by_sk.get(sk))


def _job(pk: str, sk: str) -> str:
    return json.dumps({"version": 1, "jobId": uuid.uuid4().hex, "pk": pk, "sk": sk})


def sweep(table: str, queue_url: str) -> int:
    """Every record missing its image, one message each; returns how many were sent."""
    sqs = boto3.client("sqs", region_name=REGION)
    sent = 0
    for record in _scan(table, MISSING, MISSING_VALUES):
        sqs.send_message(QueueUrl=queue_url, MessageBody=_job(record["PK"]["S"], record["SK"]["S"]))
        sent += 1
    return sent


def queue(table: str, queue_url: str, keys: list[Key]) -> int:
    """Mark each record queued (if still missing and not in flight), then send its message; returns queued."""
    client = boto3.client("dynamodb", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    now = datetime.now(UTC).isoformat()
    queued = 0
    for pk, sk in keys:
        job_id = uuid.uuid4().hex
        try:
            client.update_item(
                TableName=table,
                Key={"PK": {"S": pk}, "SK": {"S": sk}},
                UpdateExpression="SET imageStatus = :queued, imageJobId = :job, imageUpdatedAt = :now",
                ConditionExpression=f"{MISSING} AND NOT imageStatus IN (:queued, :generating)",
                ExpressionAttributeValues={
                    **MISSING_VALUES,
                    ":queued": {"S": "queued"},
                    ":generating": {"S": "generating"},
                    ":job": {"S": job_id},
                    ":now": {"S": now},
                },
            )
        except client.exceptions.ConditionalCheckFailedException:
            continue
        sqs.send_message(QueueUrl=queue_url, MessageBody=_job(pk, sk))
        queued += 1
    return queued
