"""Queuer with in-memory fakes: one conditional mark per record, SQS batches of ten, honest outcomes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from image_recovery import queueing
from image_recovery.batches import JobState
from image_recovery.jobs import ImageJob
from image_recovery.models import EntityType, Reservation, Segment, TravelRecord, Trip
from image_recovery.queueing import FAILED, QUEUED, SKIPPED, ItemOutcome, JobQueue, Queuer

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"
BATCH, STYLE = "batch-1", "travel-poster"


# ------------------------------------------------------------------ fakes
@dataclass
class FakeRecords:
    """RecordRepository stand-in: mark_queued answers from `claims` (default True); `current` is what get reads."""

    claims: dict[str, bool | list[bool]] = field(default_factory=dict)  # a list: one answer per attempt
    current: dict[str, TravelRecord] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    queued: list[tuple[str, str]] = field(default_factory=list)  # (record id, job id)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (record id, job id, reason)

    def mark_queued(
        self,
        record: TravelRecord,
        *,
        job_id: str,
        batch_id: str,
        style_id: str,
        stale_before: str | None = None,
        replace_image: bool = False,
    ) -> bool:
        assert (batch_id, style_id) == (BATCH, STYLE)
        assert replace_image == bool(record.image_url)
        if record.id in self.failing:
            raise RuntimeError("DynamoDB unavailable")
        self.queued.append((record.id, job_id))
        answer = self.claims.get(record.id, True)
        return answer.pop(0) if isinstance(answer, list) else answer

    def mark_failed(self, record: TravelRecord, job_id: str, *, reason: str, detail: str = "") -> bool:
        self.failed.append((record.id, job_id, reason))
        return True

    def get(self, pk: str, sk: str, *, where: str) -> TravelRecord | None:
        assert where == "queueing"
        return self.current.get(sk)


@dataclass
class FakeBatches:
    added: list[tuple[str, int]] = field(default_factory=list)
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (batch id, job id, state)

    def add_queued(self, batch_id: str, count: int) -> None:
        self.added.append((batch_id, count))

    def move(self, batch_id: str, job_id: str, state: JobState) -> None:
        self.moved.append((batch_id, job_id, state.value))

    @property
    def total(self) -> int:
        return sum(count for _, count in self.added)


@dataclass
class FakeSqs:
    """send_message_batch: reports the messages of records in `refuse` as Failed; raises on calls in `raise_on`."""

    refuse: set[str] = field(default_factory=set)
    raise_on: set[int] = field(default_factory=set)
    calls: list[dict] = field(default_factory=list)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.calls.append({"QueueUrl": QueueUrl, "Entries": Entries})
        if len(self.calls) in self.raise_on:
            raise ConnectionError("SQS endpoint unreachable")
        refused = [e for e in Entries if ImageJob.from_json(e["MessageBody"]).record_id in self.refuse]
        failed = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in refused]
        ok = [{"Id": e["Id"], "MessageId": f"m-{e['Id']}"} for e in Entries if e not in refused]
        return {"Successful": ok, **({"Failed": failed} if failed else {})}

    def jobs(self) -> list[ImageJob]:
        return [ImageJob.from_json(e["MessageBody"]) for call in self.calls for e in call["Entries"]]


@dataclass
class Harness:
    records: FakeRecords = field(default_factory=FakeRecords)
    batches: FakeBatches = field(default_factory=FakeBatches)
    sqs: FakeSqs = field(default_factory=FakeSqs)

    def queue(
        self, candidates: list[TravelRecord], *, named: bool = True, stale_before: str | None = None, workers: int = 10
    ) -> list[ItemOutcome]:
        queue = JobQueue(lambda: self.sqs, QUEUE_URL)
        queuer = Queuer(self.records, self.batches, queue, workers=workers)  # type: ignore[arg-type]
        return list(queuer.queue(candidates, batch_id=BATCH, style_id=STYLE, named=named, stale_before=stale_before))


@pytest.fixture
def harness() -> Harness:
    return Harness()


def make_trip(trip_id: str, **state: Any) -> Trip:
    return Trip("USER#u1", Trip.sort_key(trip_id), id=trip_id, user_id="u1", title=trip_id, **state)


def trips(count: int, **state: Any) -> list[Trip]:
    return [make_trip(f"t{i:02d}", **state) for i in range(count)]


def outcomes_by_id(outcomes: list[ItemOutcome]) -> dict[str, tuple[str, str | None]]:
    return {o.id: (o.outcome, o.reason) for o in outcomes}


# ------------------------------------------------------------------ batching and message shape
def test_23_records_go_out_in_batches_of_10_10_and_3(harness: Harness) -> None:
    records = trips(23)

    outcomes = harness.queue(records)

    assert [len(call["Entries"]) for call in harness.sqs.calls] == [10, 10, 3]
    assert {call["QueueUrl"] for call in harness.sqs.calls} == {QUEUE_URL}
    assert [o.outcome for o in outcomes] == [QUEUED] * 23
    assert harness.batches.total == 23


def test_each_message_is_a_versioned_job_for_its_record(harness: Harness) -> None:
    records = trips(12)

    harness.queue(records)

    jobs = harness.sqs.jobs()
    assert [(j.pk, j.sk, j.record_id) for j in jobs] == [(r.pk, r.sk, r.id) for r in records]
    assert {(j.version, j.entity_type, j.batch_id, j.style_id) for j in jobs} == {(1, EntityType.TRIP, BATCH, STYLE)}
    # the job id sent is the one the record was marked with (marks run concurrently: in any order), each distinct
    assert {j.record_id: j.job_id for j in jobs} == dict(harness.records.queued)
    assert len({j.job_id for j in jobs}) == 12


def test_message_bodies_use_the_wire_names(harness: Harness) -> None:
    harness.queue(trips(1))
    body = harness.sqs.calls[0]["Entries"][0]["MessageBody"]
    for name in ('"version":1', '"jobId"', '"batchId"', '"pk":"USER#u1"', '"sk":"TRIP#t00"', '"styleId"'):
        assert name in body


def test_outcomes_carry_each_records_type_label(harness: Harness) -> None:
    segment = Segment("USER#u1", Segment.sort_key("t1", "s1"), id="s1", user_id="u1")
    reservation = Reservation("USER#u1", Reservation.sort_key("t1", "s1", "r1"), id="r1", user_id="u1")

    outcomes = harness.queue([make_trip("t1"), segment, reservation])

    assert [(o.type, o.id, o.outcome) for o in outcomes] == [
        ("trip", "t1", QUEUED),
        ("segment", "s1", QUEUED),
        ("reservation", "r1", QUEUED),
    ]
    assert [j.entity_type for j in harness.sqs.jobs()] == [EntityType.TRIP, EntityType.SEGMENT, EntityType.RESERVATION]


# ------------------------------------------------------------------ records that must not be queued
@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"image_url": "https://images.example.com/x.png"}, "has_image"),
        ({"image_url": "https://images.example.com/x.png", "image_status": "failed"}, "has_image"),
        ({"image_status": "queued"}, "already_queued"),
        ({"image_status": "generating", "image_url": ""}, "already_generating"),
    ],
)
def test_records_that_must_not_be_queued_are_skipped_without_a_write(
    harness: Harness, state: dict, reason: str
) -> None:
    outcomes = harness.queue([make_trip("busy", **state), make_trip("free")])

    assert outcomes_by_id(outcomes) == {"busy": (SKIPPED, reason), "free": (QUEUED, None)}
    assert [record_id for record_id, _ in harness.records.queued] == ["free"]
    assert [j.record_id for j in harness.sqs.jobs()] == ["free"]


@pytest.mark.parametrize("status", [None, "failed", "missing", "ready"])
def test_records_missing_an_image_and_not_in_flight_are_queued(harness: Harness, status: str | None) -> None:
    assert harness.queue([make_trip("t1", image_status=status)])[0].outcome == QUEUED


def test_nothing_queueable_sends_nothing(harness: Harness) -> None:
    outcomes = harness.queue(trips(3, image_status="queued"))

    assert [o.outcome for o in outcomes] == [SKIPPED] * 3
    assert harness.sqs.calls == []
    assert harness.batches.total == 0


# ------------------------------------------------------------------ lost races
@pytest.mark.parametrize(
    ("current", "reason"),
    [
        (make_trip("t01", image_status="generating"), "already_generating"),
        (make_trip("t01", image_url="https://images.example.com/x.png"), "has_image"),
        (make_trip("t01", image_status="queued"), "already_queued"),
        (None, "not_found"),  # deleted meanwhile: an honest not_found, never a crash, never a ghost
    ],
    ids=["generating", "has_image", "queued", "gone"],
)
def test_a_lost_race_is_reported_with_the_reason_read_back(
    harness: Harness, current: TravelRecord | None, reason: str
) -> None:
    # Given a record another writer claims between our read and our conditional write
    harness.records.claims["t01"] = False
    if current is not None:
        harness.records.current["TRIP#t01"] = current

    # When three records are queued
    outcomes = harness.queue(trips(3))

    # Then the lost one is reported for what actually happened, and no message is sent for it
    assert outcomes_by_id(outcomes)["t01"] == (FAILED if current is None else SKIPPED, reason)
    assert [j.record_id for j in harness.sqs.jobs()] == ["t00", "t02"]
    assert harness.batches.added == [(BATCH, 2)]


def test_a_record_whose_state_moved_since_it_was_read_is_decided_again_on_a_fresh_copy(harness: Harness) -> None:
    # Given a record whose first conditional write fails because its state moved (a job failed meanwhile)
    harness.records.claims["t00"] = [False, True]
    harness.records.current["TRIP#t00"] = make_trip("t00", image_status="failed", image_error="throttled")

    # When it is queued, Then the fresh copy is queueable and the second write claims it
    assert outcomes_by_id(harness.queue(trips(1))) == {"t00": (QUEUED, None)}
    assert len(harness.records.queued) == 2


@pytest.mark.parametrize(
    ("error", "named", "outcome"),
    [
        ("content_filtered", False, (SKIPPED, "failed_permanently")),
        ("content_filtered", True, (QUEUED, None)),
        ("throttled", False, (QUEUED, None)),
        ("enqueue_failed", False, (QUEUED, None)),
    ],
)
def test_a_permanent_failure_is_queued_again_only_by_a_request_that_names_it(
    harness: Harness, error: str, named: bool, outcome: tuple
) -> None:
    record = make_trip("t1", image_status="failed", image_error=error)

    assert outcomes_by_id(harness.queue([record], named=named)) == {"t1": outcome}


# ------------------------------------------------------------------ failures
def test_a_refused_message_fails_only_its_record_and_is_rolled_back(harness: Harness) -> None:
    # Given SQS refuses the message of the second record
    harness.sqs.refuse = {"t01"}

    # When five records are queued
    outcomes = harness.queue(trips(5))

    # Then that record failed with enqueue_failed and its mark was released; the others are queued
    assert outcomes_by_id(outcomes)["t01"] == (FAILED, "enqueue_failed")
    assert [o.outcome for o in outcomes if o.id != "t01"] == [QUEUED] * 4
    refused_job = dict(harness.records.queued)["t01"]
    assert harness.records.failed == [("t01", refused_job, "enqueue_failed")]
    assert harness.batches.total == 4


def test_a_failing_send_fails_and_releases_its_whole_chunk_only(harness: Harness) -> None:
    # Given the first send_message_batch call raises
    harness.sqs.raise_on = {1}

    # When 13 records are queued (a chunk of 10, then 3)
    outcomes = harness.queue(trips(13))

    # Then the 10 of the first chunk failed and were rolled back; the next chunk still went out
    assert [(o.outcome, o.reason) for o in outcomes[:10]] == [(FAILED, "enqueue_failed")] * 10
    assert [o.outcome for o in outcomes[10:]] == [QUEUED] * 3
    assert sorted(record_id for record_id, _, _ in harness.records.failed) == [f"t{i:02d}" for i in range(10)]
    assert {reason for _, _, reason in harness.records.failed} == {"enqueue_failed"}
    assert harness.batches.total == 3


def test_a_storage_error_fails_one_record_and_the_others_go_on(harness: Harness) -> None:
    harness.records.failing = {"t01"}

    outcomes = harness.queue(trips(3))

    assert outcomes_by_id(outcomes) == {"t00": (QUEUED, None), "t01": (FAILED, "storage_error"), "t02": (QUEUED, None)}
    assert [j.record_id for j in harness.sqs.jobs()] == ["t00", "t02"]


def test_a_failing_rollback_still_reports_the_record_failed(harness: Harness) -> None:
    harness.sqs.refuse = {"t00"}
    harness.records.mark_failed = lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("DynamoDB down"))

    outcomes = harness.queue(trips(2))

    assert outcomes_by_id(outcomes) == {"t00": (FAILED, "enqueue_failed"), "t01": (QUEUED, None)}


# ------------------------------------------------------------------ accounting and order
def test_batch_total_counts_only_what_was_actually_queued(harness: Harness) -> None:
    # Given 25 records: 2 with images, 1 in flight, 1 lost race, 1 refused by SQS (in the second chunk)
    records = trips(25)
    records[3] = make_trip("t03", image_url="https://images.example.com/x.png")
    records[7] = make_trip("t07", image_url="https://images.example.com/y.png")
    records[11] = make_trip("t11", image_status="generating")
    harness.records.claims["t15"] = False
    harness.sqs.refuse = {"t17"}

    outcomes = harness.queue(records)

    queued = [o for o in outcomes if o.outcome == QUEUED]
    assert len(queued) == 20
    assert harness.batches.total == 20
    assert {batch for batch, _ in harness.batches.added} == {BATCH}


def test_outcomes_come_back_in_input_order(harness: Harness) -> None:
    # Given a mix whose outcomes are decided at different stages (skip, race, SQS refusal, success)
    records = trips(14)
    records[0] = make_trip("t00", image_status="queued")
    harness.records.claims["t05"] = False
    harness.records.current["TRIP#t05"] = make_trip("t05", image_status="queued")
    harness.sqs.refuse = {"t01"}

    outcomes = harness.queue(records)

    assert [o.id for o in outcomes] == [r.id for r in records]
    assert [o.outcome for o in outcomes[:6]] == [SKIPPED, FAILED, QUEUED, QUEUED, QUEUED, SKIPPED]


# ------------------------------------------------------------------ marks in parallel
@dataclass
class SlowRecords(FakeRecords):
    """Each mark takes a while, like a DynamoDB round trip; counts how many run at the same time, and where."""

    seconds: float = 0.02
    in_flight: int = 0
    most_in_flight: int = 0
    threads: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mark_queued(self, record: TravelRecord, **kwargs: Any) -> bool:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        try:
            return super().mark_queued(record, **kwargs)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.mark.parametrize(("workers", "most"), [(1, 1), (4, 4), (10, 10)])
def test_marks_run_on_a_bounded_pool_and_outcomes_keep_their_order(workers: int, most: int) -> None:
    # Given 35 records, one of which fails to store and one SQS refuses
    harness = Harness(records=SlowRecords(failing={"t07"}), sqs=FakeSqs(refuse={"t21"}))
    records = trips(35)

    # When they are queued on a pool of `workers`
    outcomes = harness.queue(records, workers=workers)

    # Then at most `workers` marks (and no more threads) ran at once, the outcomes are in input order,
    # and each record's fate is its own
    assert harness.records.most_in_flight == most
    assert len(harness.records.threads) == workers
    assert threading.current_thread().name not in harness.records.threads
    assert [o.id for o in outcomes] == [r.id for r in records]
    assert outcomes_by_id(outcomes)["t07"] == (FAILED, "storage_error")
    assert outcomes_by_id(outcomes)["t21"] == (FAILED, "enqueue_failed")
    assert sum(o.outcome == QUEUED for o in outcomes) == 33
    assert [len(call["Entries"]) for call in harness.sqs.calls] == [9, 10, 10, 5]  # t07 was never marked


def test_parallel_marks_take_a_fraction_of_the_sequential_time() -> None:
    times = {}
    for workers in (1, 10):
        harness = Harness(records=SlowRecords(seconds=0.01))
        started = time.perf_counter()
        harness.queue(trips(50), workers=workers)
        times[workers] = time.perf_counter() - started

    assert times[10] < times[1] / 3


def test_metrics_are_added_on_the_calling_thread_only(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a stuck record (in flight with no progress since the cut-off) among others
    added: list[tuple[str, str]] = []
    monkeypatch.setattr(
        queueing.metrics, "add_metric", lambda name, **_: added.append((name, threading.current_thread().name))
    )
    stuck = make_trip(
        "t01", image_status="queued", image_updated_at="2026-01-01T00:00:00Z", image_batch_id="b0", image_job_id="j0"
    )

    outcomes = harness.queue([make_trip("t00"), stuck], stale_before="2026-06-01T00:00:00Z")

    # Then it was taken over, its old job ended in its old batch, and every metric came from this thread
    assert [o.outcome for o in outcomes] == [QUEUED, QUEUED]
    assert harness.batches.moved == [("b0", "j0", "failed")]
    assert {name for name, _ in added} == {"StuckJobsRequeued", "JobsQueued", "JobsSkipped"}
    assert {thread for _, thread in added} == {threading.current_thread().name}


class Crash(BaseException):
    """The invocation dies (as an injected crash does in the chaos run): not a storage error of one record."""


def test_after_a_crash_no_further_mark_starts_and_nothing_is_sent_for_the_unsent_chunks() -> None:
    # Given 60 records, and a crash while the sixth is being marked
    records = SlowRecords(seconds=0.005)
    original = records.mark_queued

    def mark_queued(record: TravelRecord, **kwargs: Any) -> bool:
        if record.id == "t05":
            raise Crash
        return original(record, **kwargs)

    records.mark_queued = mark_queued  # type: ignore[method-assign]
    harness = Harness(records=records)

    # When they are queued, Then the crash ends the call; no record beyond the chunks marked ahead was touched
    with pytest.raises(Crash):
        harness.queue(trips(60), workers=1)
    assert {record_id for record_id, _ in harness.records.queued} <= {f"t{i:02d}" for i in range(20)}
    assert harness.sqs.calls == []


@pytest.mark.parametrize("workers", [0, 11])
def test_the_pool_size_is_bounded(workers: int) -> None:
    with pytest.raises(ValueError, match="workers"):
        Queuer(FakeRecords(), FakeBatches(), JobQueue(FakeSqs, QUEUE_URL), workers=workers)  # type: ignore[arg-type]


# ------------------------------------------------------------------ JobQueue
def jobs_for(count: int) -> list[ImageJob]:
    return [ImageJob.for_record(r, job_id=f"j{i}", batch_id=BATCH, style_id=STYLE) for i, r in enumerate(trips(count))]


def test_job_queue_refuses_more_than_ten_jobs() -> None:
    sqs = FakeSqs()
    with pytest.raises(ValueError, match="at most 10"):
        JobQueue(lambda: sqs, QUEUE_URL).send(jobs_for(11))
    assert sqs.calls == []


def test_job_queue_returns_the_job_ids_sqs_refused() -> None:
    sqs = FakeSqs(refuse={"t02", "t09"})
    assert JobQueue(lambda: sqs, QUEUE_URL).send(jobs_for(10)) == {"j2", "j9"}


def test_job_queue_returns_every_job_id_when_the_call_fails() -> None:
    sqs = FakeSqs(raise_on={1})
    assert JobQueue(lambda: sqs, QUEUE_URL).send(jobs_for(4)) == {"j0", "j1", "j2", "j3"}
