"""What the service promises after the queues drain, checked against the tables and the bucket as they are.

Every record that was missing its image ends either ready, pointing at exactly one stored image, or
failed with a reason. No record points at an image that is not there; no stored image is unreferenced;
no record was written back twice. `fault_tests` and `make chaos` both judge a run with `audit`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import boto3
from boto3.dynamodb.types import TypeDeserializer

from devtools.faults import updates_attribute
from devtools.template_resources import LocalStack

Key = tuple[str, str]  # (PK, SK)
_deserialize = TypeDeserializer().deserialize


@dataclass
class Audit:
    missing_before: int
    ready: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # reason -> records
    lost: list[Key] = field(default_factory=list)  # neither ready nor failed with a reason
    lost_by_status: Counter[str] = field(default_factory=Counter)  # where the lost ones stand (none: untouched)
    duplicated: list[Key] = field(default_factory=list)  # written back twice, or more than one image stored
    dangling: list[Key] = field(default_factory=list)  # points at an image that is not in the bucket
    orphans: list[str] = field(default_factory=list)  # stored images no record points at

    @property
    def sound(self) -> bool:
        return not (self.lost or self.duplicated or self.dangling or self.orphans)

    def summary(self) -> dict:
        return {
            "missing_before": self.missing_before,
            "generated": self.ready,
            "failed": dict(sorted(self.failed.items())),
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "dangling": len(self.dangling),
            "orphans": len(self.orphans),
        }


def _records(stack: LocalStack) -> dict[Key, dict]:
    dynamodb = boto3.client("dynamodb", region_name=stack.region)
    found: dict[Key, dict] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=stack.physical("TravelTable"), ConsistentRead=True):
        for raw in page["Items"]:
            item = {name: _deserialize(value) for name, value in raw.items()}
            found[(item["PK"], item["SK"])] = item
    return found


def _objects(stack: LocalStack) -> set[str]:
    s3 = boto3.client("s3", region_name=stack.region)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.physical("ImageBucket"))
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def missing_keys(stack: LocalStack) -> list[Key]:
    """Every trip, segment and reservation without an image (absent, NULL or empty imageUrl), as of now."""
    travel = {"TRIP", "SEGMENT", "RESERVATION"}
    return sorted(
        key for key, item in _records(stack).items() if item.get("entityType") in travel and not item.get("imageUrl")
    )


def count_write_backs(counter: Counter[Key]) -> Callable[[str, str, dict], None]:
    """A FaultInjector observer counting, per record, the updates that set imageUrl and took effect."""
    sets_image = updates_attribute("imageUrl")

    def observe(service: str, operation: str, params: dict) -> None:
        if service == "dynamodb" and operation == "UpdateItem" and sets_image(params):
            counter[(params["Key"]["PK"]["S"], params["Key"]["SK"]["S"])] += 1

    return observe


def audit(stack: LocalStack, missing_before: Iterable[Key], write_backs: Counter[Key] | None = None) -> Audit:
    """Judge the end state. `write_backs` counts, per record, the image write-backs that took effect."""
    missing = list(missing_before)
    records, objects = _records(stack), _objects(stack)
    referenced = {item["imageKey"] for item in records.values() if item.get("imageUrl") and item.get("imageKey")}
    result = Audit(missing_before=len(missing), orphans=sorted(objects - referenced))
    stored_per_record = Counter(key.rsplit("/", 1)[0] for key in objects)
    for key in missing:
        item = records.get(key, {})
        status = item.get("imageStatus")
        if status == "ready" and item.get("imageUrl"):
            result.ready += 1
            if item.get("imageKey") not in objects or not item["imageUrl"].endswith("/" + item["imageKey"]):
                result.dangling.append(key)
            prefix = item.get("imageKey", "").rsplit("/", 1)[0]
            if stored_per_record[prefix] > 1 or (write_backs and write_backs[key] > 1):
                result.duplicated.append(key)
        elif status == "failed" and item.get("imageError"):
            result.failed[item["imageError"]] += 1
        else:
            result.lost.append(key)
            result.lost_by_status[str(status or "none")] += 1
    return result
