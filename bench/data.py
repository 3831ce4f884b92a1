"""The benchmark's travel table: N records over U users, a fraction missing images (DESIGN §2).

Every record carries only the contract's required attributes, the way another writer may write it
(and the least moto has to store per item); missing images take all three forms (absent, NULL and ""). After seeding,
`prepare()` lets the product build whatever helper attributes its indexes need, through its own entry
point if it has one, and `Snapshot` puts the missing records back exactly as they were after that, so a
scenario that queues them can run again.
"""

from __future__ import annotations

import importlib
import itertools
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config

from devtools import moto_requests
from devtools.template_resources import LocalStack, build_stack
from image_recovery import aws, models

REGION = "us-east-1"
BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100
SEGMENTS_PER_TRIP = 3
RESERVATIONS_PER_SEGMENT = 2
MISSING_FORMS = ("absent", "null", "empty")
_serialize = TypeSerializer().serialize
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_PLACES = ("Paris", "Rome", "Venice", "Lisbon", "Tokyo", "Oslo", "Kyoto", "Lima", "Cairo", "Quebec")


Key = tuple[str, str]  # (PK, SK)


@dataclass(frozen=True)
class Dataset:
    items: list[dict[str, Any]]  # plain Python values; None is DynamoDB NULL
    users: list[str]
    missing: dict[str, list[Key]]  # user id -> keys of that user's records missing images

    @property
    def missing_keys(self) -> list[Key]:
        return [key for keys in self.missing.values() for key in keys]

    @property
    def missing_count(self) -> int:
        return sum(len(keys) for keys in self.missing.values())

    def user_with_most_missing(self) -> str:
        """The listing scenario's user: the most missing records (the first such user on a tie)."""
        if not self.missing:
            raise ValueError("no record is missing its image: raise --missing-ratio or --records")
        return max(self.users, key=lambda user: len(self.missing.get(user, ())))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _user_records(user: str, count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """`count` records of one user: trips, each followed by its segments, each by its reservations."""
    pk = f"USER#{user}"
    made = trip_number = 0
    while made < count:
        trip_number += 1
        trip_id = f"{user}-t{trip_number}"
        created = _EPOCH + timedelta(minutes=rng.randrange(0, 60 * 24 * 700))
        where = rng.choice(_PLACES)
        records = [
            {
                "PK": pk,
                "SK": f"TRIP#{trip_id}",
                "entityType": "TRIP",
                "id": trip_id,
                "userId": user,
                "title": f"{where} trip {trip_number}",
                "createdAt": _iso(created),
            }
        ]
        for s in range(1, SEGMENTS_PER_TRIP + 1):
            segment_id = f"{trip_id}-s{s}"
            to = rng.choice(_PLACES)
            records.append(
                {
                    "PK": pk,
                    "SK": f"TRIP#{trip_id}#SEGMENT#{segment_id}",
                    "entityType": "SEGMENT",
                    "id": segment_id,
                    "userId": user,
                    "tripId": trip_id,
                    "name": f"{where} to {to}",
                    "createdAt": _iso(created + timedelta(minutes=s)),
                }
            )
            for r in range(1, RESERVATIONS_PER_SEGMENT + 1):
                reservation_id = f"{segment_id}-r{r}"
                records.append(
                    {
                        "PK": pk,
                        "SK": f"TRIP#{trip_id}#SEGMENT#{segment_id}#RESERVATION#{reservation_id}",
                        "entityType": "RESERVATION",
                        "id": reservation_id,
                        "userId": user,
                        "tripId": trip_id,
                        "segmentId": segment_id,
                        "name": f"Hotel {r} in {to}",
                        "createdAt": _iso(created + timedelta(minutes=s, seconds=r)),
                    }
                )
            where = to
        yield from records[: count - made]
        made += len(records)


def make_dataset(records: int, users: int, missing_ratio: float, seed: int = 4) -> Dataset:
    """Deterministic for given arguments: `round(records × missing_ratio)` records miss their image."""
    if records < 1 or users < 1 or users > records:
        raise ValueError(f"need 1 ≤ users ≤ records, got {users} users for {records} records")
    if not 0 <= missing_ratio <= 1:
        raise ValueError(f"--missing-ratio must be within [0, 1], got {missing_ratio}")
    rng = random.Random(seed)
    names = [f"user-{n:05d}" for n in range(users)]
    per_user, extra = divmod(records, users)
    items = [item for n, user in enumerate(names) for item in _user_records(user, per_user + (n < extra), rng)]
    missing = _set_images(items, set(rng.sample(range(len(items)), round(len(items) * missing_ratio))))
    return Dataset(items, names, missing)


def _set_images(items: list[dict[str, Any]], missing_at: set[int]) -> dict[str, list[Key]]:
    """Give every item an image but those at `missing_at`, which miss it in the three forms in turn."""
    missing: dict[str, list[Key]] = {}
    forms = itertools.cycle(MISSING_FORMS)
    for n, item in enumerate(items):
        if n in missing_at:
            form = next(forms)
            if form == "null":
                item["imageUrl"] = None
            elif form == "empty":
                item["imageUrl"] = ""
            missing.setdefault(item["userId"], []).append((item["PK"], item["SK"]))
        else:
            item["imageUrl"] = f"https://images.example.com/{item['id']}.png"
    return missing


def user_partition(user: str, records: int, missing: int, seed: int = 12) -> tuple[list[dict[str, Any]], list[Key]]:
    """One more user's records (as `make_dataset` writes them), `missing` of them without an image; and their keys."""
    rng = random.Random(seed)
    items = list(_user_records(user, records, rng))
    keys = _set_images(items, set(rng.sample(range(len(items)), missing))).get(user, [])
    return items, keys


def _low_level(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serialize(value) for name, value in item.items()}


def batch_write(table: str, items: list[dict[str, Any]], *, low_level: bool = False) -> None:
    """PutItem in batches of 25 through a low-level client, retrying unprocessed items."""
    # botocore's client-side validation of 25 items costs more than moto's write; the items are ours
    client = boto3.client("dynamodb", region_name=REGION, config=Config(parameter_validation=False))
    for start in range(0, len(items), BATCH_WRITE_LIMIT):
        chunk = items[start : start + BATCH_WRITE_LIMIT]
        requests = [{"PutRequest": {"Item": item if low_level else _low_level(item)}} for item in chunk]
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def batch_get(table: str, keys: list[Key]) -> list[dict[str, Any]]:
    """Full items (DynamoDB JSON) for keys, 100 per call, consistent, retrying unprocessed keys."""
    client = boto3.client("dynamodb", region_name=REGION)
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        wanted = [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in keys[start : start + BATCH_GET_LIMIT]]
        pending: dict[str, Any] = {table: {"Keys": wanted, "ConsistentRead": True}}
        while pending:
            response = client.batch_get_item(RequestItems=pending)
            found.extend(response["Responses"].get(table, []))
            pending = response.get("UnprocessedKeys") or {}
    return found


def batch_delete(table: str, keys: list[Key]) -> None:
    """DeleteItem in batches of 25, retrying unprocessed keys."""
    client = boto3.client("dynamodb", region_name=REGION)
    for start in range(0, len(keys), BATCH_WRITE_LIMIT):
        requests = [
            {"DeleteRequest": {"Key": {"PK": {"S": pk}, "SK": {"S": sk}}}}
            for pk, sk in keys[start : start + BATCH_WRITE_LIMIT]
        ]
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def seed(stack: LocalStack, dataset: Dataset) -> None:
    batch_write(stack.physical("TravelTable"), dataset.items)


def bind_models(stack: LocalStack) -> None:
    """Point the product's models at this stack's tables (what each handler's cold start does)."""
    models.bind(
        travel_table=stack.physical("TravelTable"), batch_table=stack.physical("BatchTable"), region=stack.region
    )


def prepare(stack: LocalStack) -> str:
    """Let the product index records written by another writer, if it has a way to; says what it did.

    In AWS a stream-triggered function keeps the helper attributes of the product's indexes; here the
    records were written straight into the table, so ask `image_recovery.indexing.index_existing_records`
    (looked up at run time: the benchmark also runs against versions of the product without it).
    """
    indexing = _indexing()
    if indexing is None:
        return "skipped (no image_recovery.indexing)"
    index_existing_records = getattr(indexing, "index_existing_records", None)
    if index_existing_records is None:
        return "skipped (image_recovery.indexing has no index_existing_records)"
    bind_models(stack)
    # As deployed: the stream function is live (it notes that on its first batch), then a full scan
    # reconciles what was written before, which completes the index.
    index_state = importlib.import_module("image_recovery.index_state")
    index_state.IndexState(stack.physical("TravelTable")).note_stream_active()
    changed = index_existing_records(stack.physical("TravelTable"))
    if not index_state.IndexState(stack.physical("TravelTable")).is_complete():
        raise RuntimeError("the full scan did not complete the sparse index")
    return f"stream noted live; image_recovery.indexing.index_existing_records changed {changed:,} records"


def _indexing() -> Any:
    """image_recovery.indexing, or None for a version of the product without it."""
    try:
        return importlib.import_module("image_recovery.indexing")
    except ModuleNotFoundError as error:
        if error.name != "image_recovery.indexing":
            raise
        return None


def add_records(stack: LocalStack, items: list[dict[str, Any]]) -> None:
    """Write records after `prepare()`, and index each as the stream function would (`reconcile`, if any)."""
    table = stack.physical("TravelTable")
    batch_write(table, items)
    indexing = _indexing()
    if indexing is None or not hasattr(indexing, "reconcile"):
        return
    bind_models(stack)
    for item in items:
        indexing.reconcile(_low_level(item), "bench")


@dataclass
class Snapshot:
    """The missing records as they stood after `prepare()`, to put back between runs that change them."""

    stack: LocalStack
    items: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def take(cls, stack: LocalStack, keys: list[Key]) -> Snapshot:
        items = batch_get(stack.physical("TravelTable"), keys)
        if len(items) != len(keys):
            raise RuntimeError(f"snapshot found {len(items)} of {len(keys)} missing records")
        return cls(stack, items)

    def restore(self) -> None:
        """Rewrite the records (dropping any state a run added) and empty the job queue."""
        batch_write(self.stack.physical("TravelTable"), self.items, low_level=True)
        boto3.client("sqs", region_name=REGION).purge_queue(QueueUrl=self.stack.physical("JobQueue"))


_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts anything; nothing real here
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines on stdout would drown the report
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    # moto refuses a second purge within 60 s, as SQS does; the benchmark purges between runs
    "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false",
}
_REAL_AWS = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Set variables for the block; put the whole environment back as it was afterwards."""
    saved = dict(os.environ)
    try:
        os.environ.update(variables)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def local_aws() -> Iterator[LocalStack]:
    """moto in-process with fake credentials, and the stack's resources built from template.yaml."""
    from moto import mock_aws

    moto_requests.serialize()  # each request atomic, as AWS's are: the queuer marks records from several threads
    with environment(**_FAKE_AWS):
        for name in _REAL_AWS:
            os.environ.pop(name, None)
        with mock_aws():
            aws.reset()  # the product's cached clients, if any, were made outside this moto
            try:
                yield build_stack(region=REGION)
            finally:
                aws.reset()


def fake_aws_variables() -> dict[str, str]:
    return dict(_FAKE_AWS)
