"""A full-table sweep that runs out of time still queues what it found, and does not claim completeness."""

from __future__ import annotations

from datetime import timedelta

import pytest
from boto3.dynamodb.types import TypeSerializer

from image_recovery import sweep as sweep_module
from image_recovery.indexing import IndexChange
from image_recovery.queueing import ItemOutcome
from image_recovery.styles import BUILT_IN_STYLES

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

    def queue(self, candidates, *, batch_id: str, style_id: str, stale_before: str):
        for record in candidates:
            self.queued.append(record.id)
            yield ItemOutcome("trip", record.id, "queued")


class FakeBatches:
    def create(self, batch_id: str, *, owner: str, style_id: str) -> None:
        pass


class FakeStyles:
    def default(self):
        return BUILT_IN_STYLES[0]


@pytest.mark.parametrize(("out_of_time", "queued", "completed"), [(False, 4, True), (True, 2, False)])
def test_the_clock_stops_a_full_scan_between_pages(monkeypatch, out_of_time, queued, completed) -> None:
    pages = [([raw_trip(0), raw_trip(1)], {"PK": {"S": "next"}}), ([raw_trip(2), raw_trip(3)], None)]
    monkeypatch.setattr(sweep_module, "scan_segment", lambda *args, **kwargs: iter(pages))
    monkeypatch.setattr(sweep_module, "reconcile", lambda item: IndexChange.UNCHANGED)
    index, queuer = FakeIndex(), FakeQueuer()
    sweeper = sweep_module.Sweeper(
        None,
        FakeBatches(),
        FakeStyles(),
        queuer,
        index,
        travel_table="travel",
        max_jobs=100,
        segments=1,
        stuck_after=timedelta(hours=1),
    )

    report = sweeper.run(lambda: out_of_time)

    assert report.queued == queued == len(queuer.queued)
    assert index.completed is completed
