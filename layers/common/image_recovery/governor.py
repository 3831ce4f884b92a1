"""The fleet's Bedrock rate governor: every worker asks one shared budget for a slot before it calls the model.

The budget is a generic cell rate algorithm (a token bucket of one token, kept as the time the next request
may go, `next_slot`): a request takes the slot `max(next_slot, now + LEAD_SECONDS)` and moves `next_slot` one
interval on.
A worker may book a slot up to HORIZON_SECONDS ahead and sleeps until it; if the queue of booked slots is
longer than that, it waits for it to shorten, and if its invocation cannot wait that long, the job is
deferred (handed back to SQS for later, image_recovery.worker_runtime). The rate is adaptive (AIMD): a
throttle answer cuts it to DECREASE of itself, once per round of calls; each success adds INCREASE_SHARE of
the ceiling back; it never exceeds HEADROOM × the configured quota.

Everything that decides is pure (`Policy`: state + now -> new state and answer), so the fleet simulation
(bench/fleet_sim.py) runs this same code against a modelled Bedrock. The shared state lives in one row of
the batch table, changed only by conditional writes (`DynamoBudgetStore`), so workers never lose each
other's bookings; `MemoryBudgetStore` is the same contract in one process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

# Pace at 95 % of the quota: 5 % of an interval (50 ms at 60 a minute) absorbs the jitter between a
# worker's clock, its booked slot and the moment Bedrock counts the request.
HEADROOM = 0.95
DECREASE = 0.7  # a throttle answer leaves 70 % of the rate
INCREASE_SHARE = 0.02  # a success gives back 2 % of the ceiling: about 15 successes undo one decrease
FLOOR_SHARE = 0.05  # the rate never falls below 5 % of the ceiling, so it can always learn again
HORIZON_SECONDS = 20.0  # a worker books at most this far ahead and sleeps until its slot
# A slot is booked at least this far ahead of the moment the budget was read: the worker claims the record and
# builds the prompt before it and then calls exactly on time. A call later than its slot comes closer than an
# interval to the next one. After the budget's read, what has to fit in the lead is the booking's conditional
# write, the claim (a read of the job's ledger row, a conditional update of the record, a transaction of two
# items), one BatchGetItem of the parents and the prompt: a handful of in-region DynamoDB round trips, about
# 50 ms, so 0.2 s is some 4 times that. A claim slower still makes its call late by the excess; HEADROOM's 5 %
# of an interval (53 ms at 60 a minute, 105 ms at 30) takes a little of that, as it takes network jitter, and
# past it the next call may be throttled once (the SDK retries it, the rate is cut and learns again). The lead
# is not free: when the fleet cannot fill the quota, every slot comes a lead after its worker asked, and the
# quota's time in between goes unused (fleet-sim: 0.3 s cost 1-3 points of quota use where it is tight).
# Each worker times its own lead on its own clock, so clock skew between instances does not enter it.
LEAD_SECONDS = 0.2
# Epoch seconds as floats are exact to about 0.2 us: a slot this close to the end of a window is within it.
TICK_SECONDS = 1e-6
MIN_PAUSE_SECONDS = 0.5  # between two looks at a budget whose booked slots reach too far
MAX_DEFERRAL_SECONDS = 900  # SQS's longest DelaySeconds
GOVERNOR_KEY = "service#governor"  # the budget's row in the batch table (no batch id has a "#")
MAX_CONFLICTS = 20  # conditional writes lost to other workers in a row before one call gives up

R = TypeVar("R")


@dataclass(frozen=True)
class Budget:
    """The shared state. Times are seconds since the epoch (every worker's clock is NTP-synchronised)."""

    next_slot: float  # the earliest moment the next request may go
    rate: float  # requests per minute allowed now
    decreased_at: float = 0.0  # when a throttle answer last cut the rate
    version: int = 0  # bumped by every write: the condition of the next one


@dataclass(frozen=True)
class Booking:
    """The answer to one request for a slot: granted (`slot`), or not before `slot`."""

    granted: bool
    slot: float
    rate: float

    def wait(self, now: float) -> float:
        return max(0.0, self.slot - now)


@dataclass(frozen=True)
class Policy:
    """The arithmetic of the budget for a quota of `quota` requests a minute. Pure: no clock, no I/O."""

    quota: float

    def __post_init__(self) -> None:
        if self.quota <= 0:
            raise ValueError("a governor needs a positive quota")

    @property
    def ceiling(self) -> float:
        return self.quota * HEADROOM

    @property
    def floor(self) -> float:
        return self.ceiling * FLOOR_SHARE

    @property
    def max_ahead(self) -> float:
        """Twice as far ahead of now as `next_slot` can be (a booking at the horizon, then one interval at
        the floor): a slot further out was written by a clock far ahead of ours, or ours went back."""
        return 2 * (HORIZON_SECONDS + 60.0 / self.floor)

    def current(self, budget: Budget | None, now: float) -> Budget:
        """The budget as it stands at `now`: a fresh one on first use; a changed quota applied (a lower one
        at once, a higher one through the additive increase); times written by a clock far ahead of ours
        (or ours gone back) forgotten, rather than holding the fleet until that clock's future. A long idle
        needs nothing: a past `next_slot` gives no credit, so no burst follows it."""
        if budget is None:
            return Budget(next_slot=now, rate=self.ceiling)
        rate = min(max(budget.rate, self.floor), self.ceiling)
        if budget.next_slot - now > self.max_ahead:
            return replace(budget, rate=rate, next_slot=now, decreased_at=min(budget.decreased_at, now))
        return replace(budget, rate=rate)

    def book(self, budget: Budget | None, now: float, window: float) -> tuple[Budget | None, Booking]:
        """Book the next slot if it comes within `window` seconds; else leave the budget as it is."""
        state = self.current(budget, now)
        slot = max(state.next_slot, now + LEAD_SECONDS)
        if slot - now > window + TICK_SECONDS:
            return None, Booking(granted=False, slot=slot, rate=state.rate)
        booked = replace(state, next_slot=slot + 60.0 / state.rate, version=state.version + 1)
        return booked, Booking(granted=True, slot=slot, rate=state.rate)

    def throttled(self, budget: Budget | None, slot: float, now: float) -> tuple[Budget | None, float]:
        """Bedrock throttled a request sent at `slot`. Cut the rate, unless it was already cut after that
        request went out: the calls of one round all see the same full bucket, and one cut is their answer."""
        state = self.current(budget, now)
        if slot < state.decreased_at:
            return None, state.rate
        rate = max(self.floor, state.rate * DECREASE)
        # the cut applies at once: the next slot is one new interval away at least
        next_slot = max(state.next_slot, now + 60.0 / rate)
        return replace(state, rate=rate, decreased_at=now, next_slot=next_slot, version=state.version + 1), rate

    def succeeded(self, budget: Budget | None, now: float) -> tuple[Budget | None, float]:
        """A request went through: give some rate back, up to the ceiling (at the ceiling, nothing to write)."""
        state = self.current(budget, now)
        if state.rate >= self.ceiling:
            return None, state.rate
        rate = min(self.ceiling, state.rate + self.ceiling * INCREASE_SHARE)
        return replace(state, rate=rate, version=state.version + 1), rate


class Deferred(Exception):
    """No slot in the time this invocation can wait: hand the job back to SQS for `delay_seconds`."""

    metric = "JobsDeferred"  # counted by the worker's runtime when it hands the job back
    why = "no Bedrock slot soon enough"
    whole_batch = True  # the invocation's later jobs would meet the same queue of slots: they follow unread

    def __init__(self, delay_seconds: int) -> None:
        super().__init__(f"{self.why}; deferred by {delay_seconds} s")
        self.delay_seconds = delay_seconds


def booked_request_throttled(throttle_answers: int, call_seconds: float, read_timeout: float) -> bool:
    """Whether Bedrock throttled the booked request itself, judged from one call through the SDK (which retries
    once, unbooked): a throttle answer in a call shorter than the read timeout. After a first attempt that
    timed out, only the SDK's retry can have been throttled, and that one the governor did not pace."""
    return throttle_answers > 0 and call_seconds < read_timeout


def deferral_delay(wait: float) -> int:
    """How long a deferred job stays away: until the slots booked now have gone, in whole seconds (SQS)."""
    return min(MAX_DEFERRAL_SECONDS, max(1, math.ceil(wait)))


class BudgetStore(Protocol):
    def apply(self, change: Callable[[Budget | None], tuple[Budget | None, R]]) -> R:
        """Apply `change` to the current budget atomically (it may be called again after a lost race);
        a new budget of None means nothing to write. Returns what `change` answered."""
        ...


class MemoryBudgetStore:
    """The budget in one process: the fleet simulation's store, and the unit tests'."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget
        self.writes = 0

    def apply(self, change: Callable[[Budget | None], tuple[Budget | None, R]]) -> R:
        new, answer = change(self.budget)
        if new is not None:
            self.budget = new
            self.writes += 1
        return answer


class BudgetContention(Exception):
    """Other workers kept changing the budget between our read and our write."""


class DynamoBudgetStore:
    """The budget as one item of the batch table, read consistently and written only if its `version` is
    still the one read (or, on first use, if there is no item yet). A write that loses the race gets the
    winner's item back (ReturnValuesOnConditionCheckFailure) and decides again from it."""

    def __init__(self, client: Callable[[], Any], table: str, key: str = GOVERNOR_KEY) -> None:
        self._client = client
        self._table = table
        self._key = {"batchId": {"S": key}}

    def apply(self, change: Callable[[Budget | None], tuple[Budget | None, R]]) -> R:
        dynamodb = self._client()
        item = dynamodb.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get("Item")
        for _ in range(MAX_CONFLICTS):
            current = _from_item(item)
            new, answer = change(current)
            if new is None:
                return answer
            try:
                dynamodb.update_item(
                    TableName=self._table,
                    Key=self._key,
                    UpdateExpression="SET nextSlot = :slot, rate = :rate, decreasedAt = :cut, version = :new",
                    ConditionExpression="attribute_not_exists(batchId)" if current is None else "version = :old",
                    ExpressionAttributeValues={
                        ":slot": {"N": repr(new.next_slot)},
                        ":rate": {"N": repr(new.rate)},
                        ":cut": {"N": repr(new.decreased_at)},
                        ":new": {"N": str(new.version)},
                        **({} if current is None else {":old": {"N": str(current.version)}}),
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return answer
            except dynamodb.exceptions.ConditionalCheckFailedException as lost:
                item = lost.response.get("Item")
        raise BudgetContention(f"lost {MAX_CONFLICTS} conditional writes of the governor's budget in a row")


def _from_item(item: dict | None) -> Budget | None:
    if not item:
        return None
    return Budget(
        next_slot=float(item["nextSlot"]["N"]),
        rate=float(item["rate"]["N"]),
        decreased_at=float(item["decreasedAt"]["N"]),
        version=int(item["version"]["N"]),
    )


class RateGovernor:
    """The fleet's budget, as one worker uses it: book a slot (waiting as long as allowed), report the answer."""

    def __init__(self, policy: Policy, store: BudgetStore, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._store = store
        self._clock = clock

    def book(self, may_wait: float) -> Generator[float, None, Booking]:
        """Yields the pauses to sleep while the booked slots reach too far; returns the granted booking
        (whose slot may still be ahead: sleep until it before calling), or raises Deferred when no slot
        can be had within `may_wait` seconds. A generator, so that Lambda sleeps and the simulation's clock
        moves through the same steps (`wait_out`)."""
        deadline = self._clock() + max(0.0, may_wait)
        while True:
            try:
                booking = self._store.apply(self._book_from(deadline))
            except BudgetContention:  # a crowd at the budget: this job tries again in a moment
                raise Deferred(1) from None
            now = self._clock()
            if booking.granted:
                return booking
            if booking.slot > deadline:  # later bookings only push it further: no slot in this invocation
                raise Deferred(deferral_delay(booking.wait(now)))
            # the booked slots reach too far ahead: look again once the next free one is within the horizon
            yield max(MIN_PAUSE_SECONDS, booking.wait(now) - HORIZON_SECONDS)

    def _book_from(self, deadline: float) -> Callable[[Budget | None], tuple[Budget | None, Booking]]:
        """The booking as a change of the budget, timed when the budget has been read (and read again after a
        lost race): the lead then starts once the store has answered, so a slow read (a new container's first
        DynamoDB client, a retried request) does not eat into the time the worker has to claim the record."""

        def book(budget: Budget | None) -> tuple[Budget | None, Booking]:
            now = self._clock()
            return self.policy.book(budget, now, min(HORIZON_SECONDS, deadline - now))

        return book

    def until(self, booking: Booking) -> float:
        """Seconds left until the booked slot."""
        return booking.wait(self._clock())

    def throttled(self, booking: Booking) -> float:
        """Bedrock answered the request of `booking` with a throttle; returns the rate now."""
        now = self._clock()
        return self._store.apply(lambda budget: self.policy.throttled(budget, booking.slot, now))

    def succeeded(self, booking: Booking) -> float:
        """Bedrock answered the request of `booking`; returns the rate now. Writes only below the ceiling."""
        if booking.rate >= self.policy.ceiling:
            return booking.rate
        now = self._clock()
        return self._store.apply(lambda budget: self.policy.succeeded(budget, now))


def wait_out(steps: Generator[float, None, R], sleep: Callable[[float], None] = time.sleep) -> R:
    """Run a generator of pauses to its answer, sleeping each pause."""
    try:
        while True:
            sleep(next(steps))
    except StopIteration as done:
        return done.value
