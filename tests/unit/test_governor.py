"""The rate governor's arithmetic (pure: state + now -> state and answer), its waits, and its DynamoDB store."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from image_recovery.governor import (
    DECREASE,
    HEADROOM,
    HORIZON_SECONDS,
    INCREASE_SHARE,
    LEAD_SECONDS,
    MAX_CONFLICTS,
    MAX_DEFERRAL_SECONDS,
    Budget,
    BudgetContention,
    Deferred,
    DynamoBudgetStore,
    MemoryBudgetStore,
    Policy,
    RateGovernor,
    booked_request_throttled,
    deferral_delay,
    wait_out,
)

POLICY = Policy(quota=60)  # a ceiling of 57 a minute: one slot every 60/57 s
INTERVAL = 60 / (60 * HEADROOM)
NOW = 1_800_000_000.0


class Clock:
    """A clock the test moves; `sleep` moves it too, as the simulation's does."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# ---------------------------------------------------------------- slots
def test_first_use_grants_the_earliest_slot_at_the_ceiling_and_books_the_next_one_interval_on():
    budget, booking = POLICY.book(None, NOW, window=LEAD_SECONDS)

    # the earliest slot is the lead away: the time to claim the record and build the prompt before calling
    assert booking.granted and booking.slot == NOW + LEAD_SECONDS and booking.wait(NOW) == pytest.approx(LEAD_SECONDS)
    assert booking.rate == POLICY.ceiling == 60 * HEADROOM
    assert budget == Budget(next_slot=NOW + LEAD_SECONDS + INTERVAL, rate=POLICY.ceiling, decreased_at=0.0, version=1)
    assert POLICY.book(None, NOW, window=LEAD_SECONDS / 2) == (None, replace(booking, granted=False))


def test_slots_follow_one_interval_apart_until_the_window_is_full():
    budget, slots = None, []
    while True:
        new, booking = POLICY.book(budget, NOW, window=5.0)
        if not booking.granted:
            break
        budget, slots = new, [*slots, booking.slot]

    assert slots == pytest.approx([NOW + LEAD_SECONDS + i * INTERVAL for i in range(len(slots))])
    assert len(slots) == math.floor((5.0 - LEAD_SECONDS) / INTERVAL) + 1  # every slot within 5 s
    assert new is None  # refused: nothing written
    assert booking.slot == pytest.approx(NOW + LEAD_SECONDS + len(slots) * INTERVAL)


def test_a_slot_exactly_at_the_end_of_the_window_is_granted():
    budget = Budget(next_slot=NOW + 3.0, rate=POLICY.ceiling)

    assert POLICY.book(budget, NOW, window=3.0)[1].granted
    assert not POLICY.book(budget, NOW, window=2.999)[1].granted


def test_an_exactly_empty_bucket_grants_its_slot_without_extra_wait_and_the_next_one_interval_later():
    budget = Budget(next_slot=NOW + LEAD_SECONDS, rate=POLICY.ceiling, version=7)  # free exactly at the lead

    new, booking = POLICY.book(budget, NOW, window=LEAD_SECONDS)

    assert booking.granted and booking.slot == NOW + LEAD_SECONDS
    assert (new.next_slot, new.version) == (pytest.approx(NOW + LEAD_SECONDS + INTERVAL), 8)
    assert not POLICY.book(new, NOW, window=LEAD_SECONDS)[1].granted
    assert POLICY.book(new, NOW + INTERVAL, window=LEAD_SECONDS)[1].granted


def test_a_long_idle_gives_no_burst():
    budget = Budget(next_slot=NOW - 86_400, rate=POLICY.ceiling)

    first, booking = POLICY.book(budget, NOW, window=LEAD_SECONDS)
    _, second = POLICY.book(first, NOW, window=LEAD_SECONDS)

    assert booking.granted and booking.slot == NOW + LEAD_SECONDS
    assert not second.granted and second.slot == pytest.approx(NOW + LEAD_SECONDS + INTERVAL)


def test_a_clock_a_little_behind_waits_longer_and_never_books_two_slots_closer_than_an_interval():
    ahead = Budget(next_slot=NOW + 10.0, rate=POLICY.ceiling)  # written by a clock 10 s ahead of ours

    new, booking = POLICY.book(ahead, NOW, window=HORIZON_SECONDS)

    assert booking.granted and booking.wait(NOW) == pytest.approx(10.0)
    assert new.next_slot == pytest.approx(NOW + 10.0 + INTERVAL)


def test_a_clock_gone_far_back_forgets_the_future_instead_of_holding_the_fleet_until_then():
    future = Budget(next_slot=NOW + 3600, rate=POLICY.ceiling / 2, decreased_at=NOW + 3600, version=3)

    new, booking = POLICY.book(future, NOW, window=LEAD_SECONDS)

    assert booking.granted and booking.slot == NOW + LEAD_SECONDS
    assert (new.next_slot, new.decreased_at, new.rate) == (
        pytest.approx(NOW + LEAD_SECONDS + 2 * INTERVAL),
        NOW,
        POLICY.ceiling / 2,
    )


def test_a_budget_from_a_higher_quota_is_held_to_the_new_ceiling_at_once():
    budget = Budget(next_slot=NOW, rate=600.0)

    assert POLICY.book(budget, NOW, window=0)[1].rate == POLICY.ceiling


def test_a_policy_needs_a_quota():
    with pytest.raises(ValueError, match="positive quota"):
        Policy(quota=0)


# ---------------------------------------------------------------- AIMD
def test_a_throttle_cuts_the_rate_and_pushes_the_next_slot_one_new_interval_out():
    budget = Budget(next_slot=NOW, rate=POLICY.ceiling)

    cut, rate = POLICY.throttled(budget, slot=NOW - 1, now=NOW)

    assert rate == pytest.approx(POLICY.ceiling * DECREASE) == cut.rate
    assert cut.decreased_at == NOW
    assert cut.next_slot == pytest.approx(NOW + 60 / rate)


def test_calls_sent_before_a_cut_do_not_cut_again_but_a_later_one_does():
    cut, _ = POLICY.throttled(Budget(next_slot=NOW, rate=POLICY.ceiling), slot=NOW - 1, now=NOW)

    same_round, rate = POLICY.throttled(cut, slot=NOW - 0.5, now=NOW + 2)
    later, later_rate = POLICY.throttled(cut, slot=NOW + 1, now=NOW + 3)

    assert same_round is None and rate == cut.rate
    assert later_rate == pytest.approx(cut.rate * DECREASE) and later.decreased_at == NOW + 3


def test_the_rate_never_falls_below_the_floor():
    budget: Budget | None = None
    for second in range(100):
        budget, rate = POLICY.throttled(budget, slot=NOW + second, now=NOW + second + 0.5)

    assert rate == pytest.approx(POLICY.floor)
    assert POLICY.floor > 0


def test_successes_give_the_rate_back_step_by_step_up_to_the_ceiling_and_then_write_nothing():
    budget, rate = POLICY.throttled(None, slot=NOW, now=NOW)
    steps = 0
    while (change := POLICY.succeeded(budget, NOW))[0] is not None:
        budget, rate = change
        steps += 1

    assert rate == POLICY.ceiling
    assert steps == round((1 - DECREASE) / INCREASE_SHARE)


# ---------------------------------------------------------------- waiting, deferring
def test_a_worker_sleeps_until_its_slot_when_it_is_within_the_horizon():
    clock = Clock()
    store = MemoryBudgetStore(Budget(next_slot=NOW + 12.0, rate=POLICY.ceiling))
    governor = RateGovernor(POLICY, store, clock)

    booking = wait_out(governor.book(may_wait=60), clock.sleep)

    assert clock.slept == [] and booking.slot == NOW + 12.0 and governor.until(booking) == pytest.approx(12.0)


def test_a_worker_waits_for_booked_slots_beyond_the_horizon_to_come_within_it():
    clock = Clock()
    store = MemoryBudgetStore(Budget(next_slot=NOW + HORIZON_SECONDS + 15.0, rate=POLICY.ceiling))
    governor = RateGovernor(POLICY, store, clock)

    booking = wait_out(governor.book(may_wait=60), clock.sleep)

    assert clock.slept == [pytest.approx(15.0)]
    assert booking.granted and booking.slot == NOW + HORIZON_SECONDS + 15.0


def test_the_lead_starts_when_the_budget_has_been_read_not_before_the_read():
    clock = Clock()

    class SlowRead(MemoryBudgetStore):
        def apply(self, change):
            clock.now += 0.25  # a new container's first DynamoDB client, a retried read
            return super().apply(change)

    booking = wait_out(RateGovernor(POLICY, SlowRead(), clock).book(may_wait=60), clock.sleep)

    assert booking.slot == pytest.approx(NOW + 0.25 + LEAD_SECONDS)
    assert RateGovernor(POLICY, SlowRead(), clock).until(booking) == pytest.approx(LEAD_SECONDS)


def test_a_worker_that_cannot_have_a_slot_in_its_time_defers_the_job_until_the_booked_slots_are_gone():
    clock = Clock()
    store = MemoryBudgetStore(Budget(next_slot=NOW + 25.5, rate=POLICY.ceiling, version=4))
    governor = RateGovernor(POLICY, store, clock)

    with pytest.raises(Deferred) as deferred:
        wait_out(governor.book(may_wait=25), clock.sleep)

    assert deferred.value.delay_seconds == 26
    assert (clock.slept, store.writes, store.budget.version) == ([], 0, 4)  # nothing booked, nothing waited


@pytest.mark.parametrize(("wait", "delay"), [(0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (899.5, 900), (5000.0, 900)])
def test_a_deferral_lasts_at_least_a_second_and_at_most_what_sqs_allows(wait, delay):
    assert deferral_delay(wait) == delay <= MAX_DEFERRAL_SECONDS


def test_reports_change_the_shared_rate_and_a_success_at_the_ceiling_writes_nothing():
    clock = Clock()
    store = MemoryBudgetStore()
    governor = RateGovernor(POLICY, store, clock)
    booking = wait_out(governor.book(may_wait=LEAD_SECONDS), clock.sleep)

    assert governor.succeeded(booking) == POLICY.ceiling and store.writes == 1  # the booking only
    assert governor.throttled(booking) == pytest.approx(POLICY.ceiling * DECREASE)
    later = wait_out(governor.book(may_wait=60), clock.sleep)
    assert later.rate == pytest.approx(POLICY.ceiling * DECREASE)
    assert governor.succeeded(later) == pytest.approx(POLICY.ceiling * (DECREASE + INCREASE_SHARE))


# ---------------------------------------------------------------- the DynamoDB store
@pytest.fixture
def table(stack) -> str:
    return stack.physical("BatchTable")


def dynamodb_store(table: str) -> DynamoBudgetStore:
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")
    return DynamoBudgetStore(lambda: client, table)


def test_the_budget_row_is_created_once_and_then_changed_only_from_the_version_read(table):
    store = dynamodb_store(table)

    first = store.apply(lambda budget: POLICY.book(budget, NOW, LEAD_SECONDS))
    second = store.apply(lambda budget: POLICY.book(budget, NOW, 60))

    assert (first.slot, second.slot) == (NOW + LEAD_SECONDS, pytest.approx(NOW + LEAD_SECONDS + INTERVAL))
    assert store.apply(lambda budget: (None, budget)) == Budget(
        next_slot=pytest.approx(NOW + LEAD_SECONDS + 2 * INTERVAL), rate=POLICY.ceiling, decreased_at=0.0, version=2
    )


def test_two_workers_racing_for_the_budget_get_different_slots(table):
    """Worker A reads the budget; worker B books a slot before A writes; A's conditional write fails, and A
    decides again from the item that failure returned: the two slots are one interval apart."""
    a, b = dynamodb_store(table), dynamodb_store(table)
    seen_by_a: list[Budget | None] = []

    def a_books(budget: Budget | None):
        seen_by_a.append(budget)
        if len(seen_by_a) == 1:  # B gets in between A's read and A's write
            assert b.apply(lambda current: POLICY.book(current, NOW, 60)).slot == NOW + LEAD_SECONDS
        return POLICY.book(budget, NOW, 60)

    booking = a.apply(a_books)

    assert seen_by_a[0] is None and seen_by_a[1].version == 1  # first use lost to B: decided again from B's row
    assert booking.slot == pytest.approx(NOW + LEAD_SECONDS + INTERVAL)
    assert a.apply(lambda budget: (None, budget)).version == 2


def test_a_worker_that_keeps_losing_the_race_gives_up_and_its_job_is_deferred_for_a_moment(table):
    a, b = dynamodb_store(table), dynamodb_store(table)

    def always_overtaken(budget: Budget | None):
        b.apply(lambda current: POLICY.succeeded(POLICY.throttled(current, NOW, NOW)[0], NOW))
        return POLICY.book(budget, NOW, 60)

    with pytest.raises(BudgetContention):
        a.apply(always_overtaken)
    assert b.apply(lambda budget: (None, budget)).version == 2 * MAX_CONFLICTS

    class Overtaken:
        def apply(self, change):
            raise BudgetContention("crowded")

    with pytest.raises(Deferred) as deferred:
        wait_out(RateGovernor(POLICY, Overtaken(), Clock()).book(may_wait=60))
    assert deferred.value.delay_seconds == 1


@pytest.mark.parametrize(
    ("answers", "seconds", "booked"),
    [
        (0, 3.0, False),  # an image at once
        (1, 1.2, True),  # throttled, then the image on the SDK's retry
        (2, 1.5, True),  # throttled twice
        (1, 46.0, False),  # timed out, and then only the SDK's unbooked retry was throttled
    ],
)
def test_only_a_throttle_of_the_booked_request_counts_against_the_rate(answers, seconds, booked):
    assert booked_request_throttled(answers, seconds, read_timeout=45) is booked
