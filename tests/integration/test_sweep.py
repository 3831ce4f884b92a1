"""The scheduled sweep through the real handler with the EventBridge sample event."""

from __future__ import annotations

import pytest

from devtools.lambda_runtime import LambdaContext, http_event, load_event
from devtools.seed import ALICE, BOB, put_items, trip
from tests.helpers import call_api, queued_jobs, table_item

pytestmark = pytest.mark.integration


def sweep(handler, **overrides) -> dict:
    return handler("sweep", **overrides).lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())


def test_the_sweep_queues_every_missing_record_of_every_user_with_the_default_style(seeded, handler, stack):
    report = sweep(handler)

    assert (report["found"], report["queued"], report["capped"]) == (6, 6, False)
    jobs = queued_jobs(stack)
    assert sorted(j["recordId"] for j in jobs) == sorted(
        ["trip-euro", "seg-paris-rome", "seg-rome-venice", "res-eiffel", "trip-summer", "trip-tokyo"]
    )
    assert {j["styleId"] for j in jobs} == {"travel-poster"}
    assert table_item(stack, f"USER#{BOB}", "TRIP#trip-tokyo")["imageStatus"] == "queued"


def test_a_second_sweep_does_not_queue_what_is_already_queued(seeded, handler, stack):
    sweep(handler)

    report = sweep(handler)

    assert (report["found"], report["queued"]) == (0, 0)
    assert len(queued_jobs(stack)) == 6


def test_records_queued_through_the_api_are_left_alone(seeded, handler, stack):
    api = handler("api")
    call_api(api, http_event("api-queue-all.json", sub=ALICE))

    report = sweep(handler)

    assert report["queued"] == 1  # only Bob's trip
    assert len(queued_jobs(stack)) == 6


def test_the_per_run_cap_limits_what_one_sweep_queues(stack, handler, deliver_stream):
    put_items(
        stack.physical("TravelTable"), [trip(f"u{n}", f"t{n}", f"Trip {n}", "2026-01-01T00:00:00Z") for n in range(30)]
    )
    deliver_stream()

    report = sweep(handler, SWEEP_MAX_JOBS="7", SWEEP_SEGMENTS="3")

    assert (report["queued"], report["capped"]) == (7, True)
    assert len(queued_jobs(stack)) == 7
    assert sweep(handler, SWEEP_MAX_JOBS="100", SWEEP_SEGMENTS="3")["queued"] == 23
