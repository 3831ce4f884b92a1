"""The careless host: random interleavings of what a host app writes and what the service does (issue 11).

A hypothesis state machine drives the real handlers on moto (in process, resources from template.yaml):
the host inserts, updates, deletes, copies and writes malformed items and odd style rows, while users list
and queue through the API and the sweep, the stream function, the worker and the tasks function run. After
every step: no 5xx, no item the host did not write exists, nothing is listed or queued across users. Once
every queue is drained at the end of a run: every batch has nothing queued or generating, every well-formed
record is ready, failed for good, or missing with a reason, and no stored image is unreferenced.

    python -m tests.careless_host --examples 200 --steps 40    # make soak: thousands of steps, a table

tests/integration/test_careless_host.py runs a small configuration in `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import hypothesis.strategies as st
from boto3.dynamodb.types import TypeSerializer
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from moto import mock_aws

from devtools.lambda_runtime import LambdaContext, SimulatedClock, SqsPoller, http_event, load_event, load_handler
from devtools.streams import LocalStream
from devtools.template_resources import LocalStack, build_stack
from image_recovery import aws
from image_recovery.batches import BatchProgress
from image_recovery.errors import TRANSIENT_REASONS, ContentFilteredError
from image_recovery.models import ImageBatch
from image_recovery.observability import logger
from image_recovery.providers.local import LocalImageProvider
from image_recovery.storage import record_keys_of, references

REGION = "us-east-1"
USERS = ("alice", "bob")
# A small key space, so that writes collide: two trips, a segment id under both, one reservation.
KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("TRIP", ("t1",)),
    ("TRIP", ("t2",)),
    ("SEGMENT", ("t1", "s1")),
    ("SEGMENT", ("t2", "s1")),
    ("RESERVATION", ("t1", "s1", "r1")),
)
TITLES = ("Lisbon", "Porto by night", "refuse me")  # a title with "refuse" is refused by the stand-in model
CREATED = ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00.500Z", "2026-01-01T11:30:00+01:00", "not a date", None)
ABSENT, NULL = "absent", "null"
IMAGES = (ABSENT, NULL, "", "https://host.example.com/own.png")
MALFORMED = ("title as a number", "no id", "createdAt as a number", "unknown entityType", "id differs from SK")
STYLES = ("good", "isDefault as a string", "no template", "id with a space")
_serialize = TypeSerializer().serialize
STATS: Counter[str] = Counter()  # steps and checks over every run of this process (the soak table)


def sort_key(kind: str, ids: tuple[str, ...]) -> str:
    return "#".join(f"{label}#{value}" for label, value in zip(("TRIP", "SEGMENT", "RESERVATION"), ids, strict=False))


def record_item(user: str, kind: str, ids: tuple[str, ...], title: str, created: str | None, image: str) -> dict:
    item: dict[str, Any] = {"PK": f"USER#{user}", "SK": sort_key(kind, ids), "entityType": kind, "id": ids[-1]}
    item["userId"] = user
    item["title" if kind == "TRIP" else "name"] = title
    if kind != "TRIP":
        item["tripId"] = ids[0]
    if kind == "RESERVATION":
        item["segmentId"] = ids[1]
    if created is not None:
        item["createdAt"] = created
    if image == NULL:
        item["imageUrl"] = None
    elif image != ABSENT:
        item["imageUrl"] = image
    return item


def malformed_item(user: str, kind: str, ids: tuple[str, ...], form: str) -> dict:
    item = record_item(user, kind, ids, "Broken", "2026-01-01T00:00:00Z", ABSENT)
    if form == "title as a number":
        item["title" if kind == "TRIP" else "name"] = 42
    elif form == "no id":
        del item["id"]
    elif form == "createdAt as a number":
        item["createdAt"] = 1767225600
    elif form == "unknown entityType":
        item["entityType"] = kind.lower()
    else:
        item["id"] = "elsewhere"
    return item


def style_item(form: str) -> dict:
    item = {"PK": "STYLE", "SK": "STYLE#noir", "entityType": "STYLE", "id": "noir", "name": "Noir"}
    item |= {"promptTemplate": "A film noir still of {subject}.", "isDefault": False}
    if form == "isDefault as a string":
        item["isDefault"] = "yes"
    elif form == "no template":
        del item["promptTemplate"]
    elif form == "id with a space":
        item |= {"SK": "STYLE#oil paint", "id": "oil paint"}
    return item


def refusing_generate(real: Any) -> Any:
    """The local renderer, except that it refuses titles with "refuse", as a model's content filter would."""

    def generate(self: LocalImageProvider, request: Any) -> Any:
        if "refuse" in request.title.lower():
            raise ContentFilteredError("ValidationException: This request has been blocked by our content filters.")
        return real(self, request)

    return generate


@contextmanager
def quiet_logs() -> Iterator[None]:
    """The service's log lines and metrics are not what this test reads; thousands of steps print a lot."""
    level = logger.log_level
    logger.setLevel("CRITICAL")
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        try:
            yield
        finally:
            logger.setLevel(level)


class World:
    """One fresh service on moto: the stack from template.yaml, the five handlers, a simulated clock."""

    def __init__(self) -> None:
        self._exit = ExitStack()
        self._exit.enter_context(mock.patch.dict(os.environ, _ENVIRONMENT))
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)  # restored with the rest of the environment on close
        self._exit.enter_context(mock_aws())
        aws.reset()
        self.stack: LocalStack = build_stack(region=REGION)
        self.clock = self._exit.enter_context(SimulatedClock())
        real = LocalImageProvider.generate
        self._exit.enter_context(mock.patch.object(LocalImageProvider, "generate", refusing_generate(real)))
        self._exit.enter_context(quiet_logs())
        self.handlers = {name: self._load(name) for name in ("indexer", "api", "worker", "sweep", "tasks")}
        self.stream = LocalStream(self.stack)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.jobs = self._poller("JobQueue", "worker", 5)
        self.tasks = self._poller("TaskQueue", "tasks", 1)

    def _load(self, name: str) -> ModuleType:
        environment = self.stack.function_environment(self.stack.function_logical_ids()[name])
        environment |= {"IMAGE_PROVIDER": "local"} if name in ("worker", "sweep") else {}
        os.environ.update(environment)
        return load_handler(name)

    def _poller(self, queue: str, handler: str, batch_size: int) -> SqsPoller:
        url, arn = self.stack.physical(queue), self.stack.arns[queue]
        return SqsPoller(url, arn, self.handlers[handler], region=REGION, batch_size=batch_size, raise_errors=True)

    def close(self) -> None:
        aws.reset()
        self._exit.close()

    # ------------------------------------------------------------------ what is in AWS
    def items(self) -> list[dict]:
        table, found, start = self.stack.physical("TravelTable"), [], None
        while True:
            page = self.dynamodb.scan(
                TableName=table, ConsistentRead=True, **({"ExclusiveStartKey": start} if start else {})
            )
            found.extend(page["Items"])
            start = page.get("LastEvaluatedKey")
            if start is None:
                return found

    def item(self, pk: str, sk: str) -> dict | None:
        key = {"PK": {"S": pk}, "SK": {"S": sk}}
        return self.dynamodb.get_item(TableName=self.stack.physical("TravelTable"), Key=key, ConsistentRead=True).get(
            "Item"
        )

    def put(self, item: dict) -> None:
        serialized = {k: _serialize(v) for k, v in item.items()}
        self.dynamodb.put_item(TableName=self.stack.physical("TravelTable"), Item=serialized)

    def objects(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.stack.physical("ImageBucket"))
        return [o["Key"] for o in listed.get("Contents", [])]

    def batches(self) -> list[BatchProgress]:
        rows = self.dynamodb.scan(TableName=self.stack.physical("BatchTable"), ConsistentRead=True)["Items"]
        return [BatchProgress.of(ImageBatch.from_raw_data(r)) for r in rows if "#" not in r["batchId"]["S"]]

    # ------------------------------------------------------------------ calling the service
    def api(self, event: dict) -> tuple[int, dict]:
        response = self.handlers["api"].lambda_handler(event, LambdaContext())
        return response["statusCode"], json.loads(response["body"])

    def deliver_stream(self) -> int:
        return self.stream.deliver(self.handlers["indexer"])

    def sweep(self) -> dict:
        return self.handlers["sweep"].lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    def repair(self) -> None:
        self.handlers["tasks"].lambda_handler(load_event("tasks-repair-scheduled.json"), LambdaContext())


_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    "POWERTOOLS_METRICS_DISABLED": "true",
}

users = st.sampled_from(USERS)
keys = st.sampled_from(KEYS)


class CarelessHost(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        # what the host believes it wrote: key -> "ok" or "malformed" (the service may add attributes, never items)
        self.host: dict[tuple[str, str], str] = {}
        self.batches: dict[str, str] = {}  # batch id -> the user who asked
        self.repairs = 0
        STATS["runs"] += 1

    def teardown(self) -> None:
        try:
            self._drain_and_judge()
        finally:
            self.world.close()

    # ------------------------------------------------------------------ the host app
    @rule(user=users, key=keys, title=st.sampled_from(TITLES), created=st.sampled_from(CREATED),
          image=st.sampled_from(IMAGES))  # fmt: skip
    def host_puts_a_record(self, user: str, key: tuple, title: str, created: str | None, image: str) -> None:
        kind, ids = key
        self.world.put(record_item(user, kind, ids, title, created, image))
        self.host[(f"USER#{user}", sort_key(kind, ids))] = "ok"
        STATS["step, host: put a record"] += 1

    @rule(data=st.data(), image=st.sampled_from(IMAGES))
    def host_sets_an_image(self, data: st.DataObject, image: str) -> None:
        pk, sk = self._pick(data)
        if image == ABSENT:
            expression, values = "REMOVE imageUrl", None
        else:
            expression, values = "SET imageUrl = :u", {":u": _serialize(None if image == NULL else image)}
        try:
            self.world.dynamodb.update_item(
                TableName=self.world.stack.physical("TravelTable"),
                Key={"PK": {"S": pk}, "SK": {"S": sk}},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(PK)",  # the host updates records it has
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except self.world.dynamodb.exceptions.ConditionalCheckFailedException:
            return
        STATS["step, host: set an image"] += 1

    @rule(data=st.data())
    def host_deletes_a_record(self, data: st.DataObject) -> None:
        pk, sk = self._pick(data)
        self.world.dynamodb.delete_item(
            TableName=self.world.stack.physical("TravelTable"), Key={"PK": {"S": pk}, "SK": {"S": sk}}
        )
        self.host.pop((pk, sk), None)
        STATS["step, host: delete"] += 1

    @rule(data=st.data())
    def host_copies_a_record_to_another_user(self, data: st.DataObject) -> None:
        pk, sk = self._pick(data)
        original = self.world.item(pk, sk)
        if original is None:
            return
        to = next(f"USER#{user}" for user in USERS if f"USER#{user}" != pk)
        copy = {**original, "PK": {"S": to}}  # with every attribute the service put on it
        self.world.dynamodb.put_item(TableName=self.world.stack.physical("TravelTable"), Item=copy)
        self.host[(to, sk)] = self.host.get((pk, sk), "ok")
        STATS["step, host: copy to another user"] += 1

    @rule(user=users, key=keys, form=st.sampled_from(MALFORMED))
    def host_writes_a_malformed_item(self, user: str, key: tuple, form: str) -> None:
        kind, ids = key
        self.world.put(malformed_item(user, kind, ids, form))
        self.host[(f"USER#{user}", sort_key(kind, ids))] = "malformed"
        STATS["step, host: malformed write"] += 1

    def _pick(self, data: st.DataObject) -> tuple[str, str]:
        """Mostly a key the host has written (so that its writes meet the service's), sometimes any key."""
        written = sorted(self.host)
        if written and data.draw(st.integers(0, 4)):
            return data.draw(st.sampled_from(written))
        user, (kind, ids) = data.draw(users), data.draw(keys)
        return f"USER#{user}", sort_key(kind, ids)

    @rule(form=st.sampled_from(STYLES))
    def host_writes_a_style_row(self, form: str) -> None:
        self.world.put(style_item(form))
        STATS["step, host: style row"] += 1

    # ------------------------------------------------------------------ users, through the API
    @rule(user=users, limit=st.sampled_from(("1", "2", "100")))
    def user_lists_missing_images(self, user: str, limit: str) -> None:
        seen: list[tuple[str, str]] = []
        cursor = None
        for _ in range(50):
            query = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            status, page = self.world.api(http_event("api-list-missing-images.json", sub=user, query=query))
            assert status == 200, page
            for kind, items in (
                ("TRIP", page["trips"]),
                ("SEGMENT", page["segments"]),
                ("RESERVATION", page["reservations"]),
            ):
                for item in items:
                    ids = {"TRIP": (item["id"],), "SEGMENT": (item.get("tripId"), item["id"])}.get(
                        kind, (item.get("tripId"), item.get("segmentId"), item["id"])
                    )
                    seen.append((f"USER#{user}", sort_key(kind, ids)))
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert cursor is None, "the listing did not end"
        assert len(seen) == len(set(seen)), f"listed twice: {seen}"
        for key in seen:  # only the user's own, well-formed records, which the host wrote
            assert self.host.get(key) == "ok", f"{user} was shown {key}, which the host did not write as a record"
        STATS["step, api: list"] += 1

    @rule(
        user=users,
        picks=st.lists(keys, min_size=1, max_size=3),
        with_style=st.booleans(),
        regenerate=st.booleans(),
    )
    def user_queues_named_records(self, user: str, picks: list, with_style: bool, regenerate: bool) -> None:
        body: dict[str, Any] = {"regenerate": True} if regenerate else {}
        for kind, ids in picks:
            body.setdefault(f"{kind.lower()}Ids", []).append(ids[-1])
        if with_style:
            body["styleId"] = "watercolor"
        status, answer = self.world.api(http_event("api-queue-selected.json", sub=user, body=body))
        assert status in (202, 400), answer
        if status == 202:
            self._check_queued_items(user, answer)
        STATS["step, api: regenerate named" if regenerate else "step, api: queue named"] += 1

    @rule(user=users, retry_failed=st.booleans())
    def user_queues_everything(self, user: str, retry_failed: bool) -> None:
        body = {"retryFailed": True} if retry_failed else {"all": True}
        status, answer = self.world.api(http_event("api-queue-all.json", sub=user, body=body))
        assert status == 202, answer
        self._check_queued_items(user, answer)
        STATS["step, api: queue all" if not retry_failed else "step, api: retry failed"] += 1

    @rule(user=users)
    def user_follows_a_batch(self, user: str) -> None:
        for batch_id, owner in list(self.batches.items())[-3:]:
            event = http_event("api-batch-progress.json", sub=user, path_parameters={"batchId": batch_id})
            status, answer = self.world.api(event)
            assert status == (200 if owner == user else 404), answer
        STATS["step, api: progress"] += 1

    def _check_queued_items(self, user: str, answer: dict) -> None:
        self.batches[answer["batchId"]] = user
        mine = {
            sk.rsplit("#", 1)[-1] for (pk, sk), state in self.host.items() if pk == f"USER#{user}" and state == "ok"
        }
        for item in answer["items"]:
            if item["outcome"] == "queued":
                assert item["id"] in mine, f"{user} queued {item}, which is not among the user's records"

    # ------------------------------------------------------------------ the service's own functions
    @rule()
    def stream_function_runs(self) -> None:
        self.world.deliver_stream()
        STATS["step, service: stream delivery"] += 1

    @rule()
    def sweep_runs(self) -> None:
        self.world.sweep()
        STATS["step, service: sweep"] += 1

    @rule()
    def worker_takes_a_batch(self) -> None:
        self.world.jobs.poll()
        STATS["step, service: worker batch"] += 1

    @rule()
    def tasks_function_takes_a_task(self) -> None:
        self.world.tasks.poll()
        STATS["step, service: task"] += 1

    @precondition(lambda self: self.repairs < 1)  # weekly in AWS: once per run is plenty
    @rule()
    def repair_run_starts(self) -> None:
        self.repairs += 1
        self.world.repair()
        STATS["step, service: repair run"] += 1

    @rule(minutes=st.sampled_from((1, 20, 90)))
    def time_passes(self, minutes: int) -> None:
        self.world.clock.advance(seconds=60 * minutes)
        STATS["step, service: time passes"] += 1

    # ------------------------------------------------------------------ after every step
    @invariant()
    def no_item_the_host_did_not_write(self) -> None:
        for item in self.world.items():
            key = (item["PK"]["S"], item["SK"]["S"])
            if key[0].startswith("USER#"):
                assert key in self.host, f"{key} exists, but the host never wrote it or deleted it: a ghost"
        STATS["check: no ghost items (after every step)"] += 1

    # ------------------------------------------------------------------ once everything is drained
    def _drain_and_judge(self) -> None:
        world = self.world
        for _ in range(8):
            world.clock.advance(seconds=6 * 3600)  # past stuck jobs, retry delays and the audit's minimum age
            moved = world.deliver_stream()
            moved += len(world.tasks.drain(world.clock))
            moved += world.sweep()["queued"]
            moved += len(world.jobs.drain(world.clock))
            moved += world.deliver_stream()
            if not moved:
                break
        else:
            raise AssertionError("the service never came to rest")
        world.repair()
        world.clock.advance(seconds=2 * 3600)
        world.tasks.drain(world.clock)
        world.deliver_stream()

        for progress in world.batches():
            assert (progress.queued, progress.generating, progress.complete) == (0, 0, True), progress
        items = {(i["PK"]["S"], i["SK"]["S"]): i for i in world.items()}
        for key, state in self.host.items():
            if state != "ok":
                continue
            item = items[key]
            url = item.get("imageUrl", {}).get("S")
            error = item.get("imageError", {}).get("S")
            status = item.get("imageStatus", {}).get("S")
            assert url or (status == "failed" and error) or (error in TRANSIENT_REASONS), (key, item)
        for key in world.objects():
            owner = record_keys_of(key)
            item = items.get(owner[:2]) if owner else None
            assert item is not None and item.get("imageKey", {}).get("S") == key, f"{key} is referenced by nothing"
            assert references(item.get("imageUrl", {}).get("S"), key), f"{key}: its record points elsewhere"
        STATS["check: drained and judged (end of a run)"] += 1


def run(examples: int, steps: int, *, derandomize: bool = True) -> None:
    """`derandomize`: the same runs every time (CI); otherwise new ones on every call (make soak)."""
    test_settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=derandomize,
        database=None,
        print_blob=True,
    )
    run_state_machine_as_test(CarelessHost, settings=test_settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="runs, each from an empty table")
    parser.add_argument("--steps", type=int, default=40, help="at most this many steps per run")
    arguments = parser.parse_args()
    started = time.monotonic()
    STATS.clear()
    run(arguments.examples, arguments.steps, derandomize=False)
    elapsed = time.monotonic() - started
    # every rule run is a step, also one that found nothing to do (a copy of a record that is not there)
    steps = STATS["check: no ghost items (after every step)"] - STATS["runs"]
    print(f"careless host: {STATS['runs']} runs, {steps} steps in {elapsed:.0f} s; every invariant held")
    print(f"{'':2}{'step or check':<40} {'count':>8}")
    for name, count in sorted(STATS.items()):
        print(f"{'':2}{name:<40} {count:>8}")


if __name__ == "__main__":
    main()
