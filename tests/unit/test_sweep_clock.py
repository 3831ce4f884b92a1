"""The sweep's choices, free of AWS: a full-table scan that runs out of time still queues what it found and
does not claim completeness; the per-run cap goes to never-tried records first; transient failures come
back later and a bounded number of times, permanent ones never (DESIGN §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from boto3.dynamodb.types import TypeSerializer

from image_recovery import sweep as sweep_module
from image_recovery.indexing import IndexChange, Reconciled
from image_recovery.models import Trip
from image_recovery.queueing import ItemOutcome, QueueDepth, job_on
from image_recovery.records import parse_record
from image_recovery.repository import iso_utc
from image_recovery.styles import BUILT_IN_STYLES
from image_recovery.sweep import RetryPolicy, Tier, lost_before, sweep_tier

_serialize = TypeSerializer().serialize


def raw_trip(n: int) -> dict:
    item = {"PK": "USER#u", "SK": f"TRIP#t{n}", "entityType": "TRIP", "id": f"t{n}", "userId": "u", "createdAt": "x"}
    return {k: _serialize(v) for k, v in item.items()}


class FakeIndex:
    def __init__(self) -> None:
        self.completed = False

    def is_complete(self) -> bool:
        return False

    def mark_complete(self, scan_started: str) -> bool:
        self.completed = True
        return True


class FakeQueuer:
    def __init__(self) -> None:
        self.queued: list[str] = []
        self.resent: list[str] = []

    def open_batch(self, owner: str, style_id: str, *, prefix: str = "") -> str:
        assert owner.startswith("#")  # no `sub` can name the service's own batches
        return f"{prefix}batch"

    def queue(self, candidates, *, batch_id: str, style_id: str, stale_before: str, named: bool):
        assert named is False  # the sweep never queues a permanent failure again
        for record in candidates:
            self.queued.append(record.id)
            yield ItemOutcome("trip", record.id, "queued")

    def resendable(self, record):
        return job_on(record)  # every batch exists here

    def resend(self, lost):
        for record, job in lost:
            assert job.job_id == record.image_job_id
            self.resent.append(record.id)
            yield ItemOutcome("trip", record.id, "queued")


class FakeQueue:
    """The job queue as the sweep sees it: how many messages it holds, and how long it keeps one."""

    def __init__(self, messages: int = 0, retention: timedelta = timedelta(days=4)) -> None:
        self.held = QueueDepth(messages, retention)

    def depth(self) -> QueueDepth:
        return self.held


class FakeStyles:
    def default(self):
        return BUILT_IN_STYLES[0]


@pytest.mark.parametrize(("out_of_time", "queued", "completed"), [(False, 4, True), (True, 2, False)])
def test_the_clock_stops_a_full_scan_between_pages(monkeypatch, out_of_time, queued, completed) -> None:
    pages = [([raw_trip(0), raw_trip(1)], {"PK": {"S": "next"}}), ([raw_trip(2), raw_trip(3)], None)]
    monkeypatch.setattr(sweep_module, "scan_segment", lambda *args, **kwargs: iter(pages))
    monkeypatch.setattr(
        sweep_module, "reconcile", lambda item, where: Reconciled(IndexChange.UNCHANGED, parse_record(item))
    )
    index, queuer = FakeIndex(), FakeQueuer()
    sweeper = make_sweeper(queuer, index, max_jobs=100)

    report = sweeper.run(lambda: out_of_time)

    assert report.queued == queued == len(queuer.queued)
    assert index.completed is completed


RETRIES = RetryPolicy(limit=3, delay=timedelta(hours=1))
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
STALE_BEFORE = iso_utc(NOW - timedelta(hours=1))


def make_sweeper(
    queuer: FakeQueuer, index: FakeIndex, *, max_jobs: int, queue: FakeQueue | None = None
) -> sweep_module.Sweeper:
    return sweep_module.Sweeper(
        None,
        FakeStyles(),
        queuer,
        queue or FakeQueue(),
        index,
        travel_table="travel",
        max_jobs=max_jobs,
        segments=1,
        stuck_after=timedelta(hours=1),
        retries=RETRIES,
    )


def trip(n: int = 0, *, hours_ago: float = 0, **image: object) -> Trip:
    updated = iso_utc(NOW - timedelta(hours=hours_ago)) if "image_status" in image else None
    return Trip("USER#u", f"TRIP#t{n}", id=f"t{n}", image_updated_at=updated, **image)


@pytest.mark.parametrize(
    ("record", "tier"),
    [
        (trip(), Tier.NEVER_TRIED),
        (trip(image_status="missing"), Tier.NEVER_TRIED),
        (trip(image_url="https://x/y.png"), None),
        (trip(image_status="queued", hours_ago=0.5), None),
        (trip(image_status="generating", hours_ago=2), Tier.STUCK),
        (trip(image_status="failed", image_error="content_filtered", hours_ago=100), None),
        (trip(image_status="failed", image_error="invalid_response", hours_ago=100), None),
        (trip(image_status="failed", image_error="throttled", image_failures=1, hours_ago=0.5), None),
        (trip(image_status="failed", image_error="throttled", image_failures=1, hours_ago=1), Tier.RETRY),
        (trip(image_status="failed", image_error="timeout", image_failures=2, hours_ago=1.5), None),  # 2 h then
        (trip(image_status="failed", image_error="timeout", image_failures=2, hours_ago=2), Tier.RETRY),
        (trip(image_status="failed", image_error="enqueue_failed", image_failures=3, hours_ago=4), Tier.RETRY),
        (trip(image_status="failed", image_error="provider_error", image_failures=4, hours_ago=1000), None),
    ],
)
def test_which_records_the_sweep_queues_and_in_which_tier(record: Trip, tier: Tier | None) -> None:
    assert sweep_tier(record, STALE_BEFORE, NOW, RETRIES) == tier


def test_the_per_run_cap_goes_to_never_tried_records_first(monkeypatch) -> None:
    # Given a table where transient failures due for a retry and stuck jobs come first in scan order
    now_iso = iso_utc(datetime.now(UTC) - timedelta(hours=10))
    retry = {"imageStatus": "failed", "imageError": "throttled", "imageFailures": 1, "imageUpdatedAt": now_iso}
    stuck = {"imageStatus": "queued", "imageUpdatedAt": now_iso}
    items = [
        *(raw_trip(n) | {k: _serialize(v) for k, v in retry.items()} for n in range(0, 5)),
        *(raw_trip(n) | {k: _serialize(v) for k, v in stuck.items()} for n in range(5, 8)),
        *(raw_trip(n) for n in range(8, 11)),
    ]
    monkeypatch.setattr(sweep_module, "scan_segment", lambda *args, **kwargs: iter([(items, None)]))
    monkeypatch.setattr(
        sweep_module, "reconcile", lambda item, where: Reconciled(IndexChange.UNCHANGED, parse_record(item))
    )
    queuer = FakeQueuer()

    # When one run may queue five
    report = make_sweeper(queuer, FakeIndex(), max_jobs=5).run()

    # Then the three never tried go first, then the stuck ones, and the retries wait for the next run
    assert queuer.queued == ["t8", "t9", "t10", "t5", "t6"]
    assert report.capped is True


# ------------------------------------------------------------------ a backlog is not a lost job
@pytest.mark.parametrize(
    ("messages", "retention", "cut_off"),
    [
        (0, timedelta(days=4), timedelta(hours=1)),  # nothing waits anywhere: no progress for an hour is lost
        (1, timedelta(days=4), timedelta(days=4)),  # it may wait in the queue until the queue drops it
        (500, timedelta(minutes=30), timedelta(hours=1)),  # a short retention never makes stuck_after shorter
    ],
)
def test_while_the_queue_holds_messages_only_what_it_can_no_longer_hold_is_lost(messages, retention, cut_off):
    assert lost_before(NOW, timedelta(hours=1), QueueDepth(messages, retention)) == iso_utc(NOW - cut_off)


def in_flight_items(hours_ago: float, job_id: str = "job-1") -> list[dict]:
    stamp = iso_utc(datetime.now(UTC) - timedelta(hours=hours_ago))
    image = {
        "imageStatus": "queued",
        "imageUpdatedAt": stamp,
        "imageJobId": job_id,
        "imageBatchId": "users-batch",
        "imageStyleId": "watercolor",
    }
    return [raw_trip(0) | {k: _serialize(v) for k, v in image.items()}, raw_trip(1)]


@pytest.mark.parametrize(("messages", "resent"), [(7, []), (0, ["t0"])], ids=["a backlog", "an empty queue"])
def test_a_job_waiting_behind_a_backlog_is_left_alone_and_a_lost_one_is_sent_again_as_itself(
    monkeypatch, messages, resent
) -> None:
    monkeypatch.setattr(sweep_module, "scan_segment", lambda *args, **kwargs: iter([(in_flight_items(2), None)]))
    monkeypatch.setattr(
        sweep_module, "reconcile", lambda item, where: Reconciled(IndexChange.UNCHANGED, parse_record(item))
    )
    queuer = FakeQueuer()

    report = make_sweeper(queuer, FakeIndex(), max_jobs=10, queue=FakeQueue(messages)).run()

    assert queuer.resent == resent
    assert queuer.queued == ["t1"]  # the never-tried record, in the sweep's own batch
    assert report.stuck == len(resent)


def test_a_stuck_record_that_names_no_usable_job_gets_a_new_one(monkeypatch) -> None:
    items = in_flight_items(2, job_id="../../other")  # a careless writer's job id: it would name another object
    monkeypatch.setattr(sweep_module, "scan_segment", lambda *args, **kwargs: iter([(items, None)]))
    monkeypatch.setattr(
        sweep_module, "reconcile", lambda item, where: Reconciled(IndexChange.UNCHANGED, parse_record(item))
    )
    queuer = FakeQueuer()

    make_sweeper(queuer, FakeIndex(), max_jobs=10).run()

    assert queuer.resent == []
    assert queuer.queued == ["t1", "t0"]
