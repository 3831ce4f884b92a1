"""Fleet simulation (issue 12): the worker's own rate governor against a modelled Bedrock, over a grid.

    python -m bench.fleet_sim                 # the whole grid: 84 cells, a few minutes
    python -m bench.fleet_sim --jobs 1000 --quotas 60 --medians 6 --concurrency 5,10

A discrete-event simulation (simpy). What is the product's own code, imported, not copied: the governor
(`image_recovery.governor`: its Policy, RateGovernor and the in-memory store that stands in for the DynamoDB
row), the job's attempt arithmetic when it is handed back (`ImageJob.attempt`, `.handed_back`), the retry
delays (`worker_runtime.retry_delay_seconds`), the time budget of a job (`aws.JOB_BUDGET_SECONDS`), and from
template.yaml the queue's MaxReceiveCount, the worker's batch size and timeout. What is modelled:

- Bedrock: a token bucket refilled at the quota (per minute / 60 a second) that holds one second's worth (at
  least one request); a request that finds it empty is throttled. Image latency is lognormal around the
  median (sigma 0.5: p99 about 3.2 x the median); past the SDK's 45 s read timeout a call times out. Each
  request reaches Bedrock 0-50 ms after the worker sends it.
- The SDK: two attempts in all (aws.BEDROCK_MAX_ATTEMPTS); after a throttle or a timeout it waits a random
  0-1 s and tries once more, unbooked (as botocore's standard retry mode does).
- Lambda and SQS: up to `concurrency` invocations at once, each taking up to BatchSize messages and the
  worker's timeout; the worker's steps for each record as worker_runtime takes them (passed on past its last
  attempt; handed back as a new message when out of time or deferred; a failure hidden for the retry delay);
  a message received MaxReceiveCount times goes to the dead-letter queue on its next receive.
- A backlog of `jobs` queued at once and, a minute later, a burst of interactive jobs behind it.

Per cell: what the fleet could draw with no quota at all (from the mean image time and each job's own work)
over the quota, quota use (images per minute over the drain / the quota), the best quota use any governor could
reach in the cell (`best_possible`: no governor, a perfect scheduler), the throttled share of Bedrock calls, jobs
dead-lettered, the time to drain, hand-backs per job, and the interactive burst's median wait. The last line is
the goal, over the cells where the fleet could keep up (concurrency x 60 / median >= 1.1 x quota): quota use
>= 90 %, throttled < 1 %, dead-lettered 0; the exit code is 1 when it is not met. A counted cell whose best
possible is itself below 90 % is named on the line before it.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from typing import Any

import simpy

import devtools  # noqa: F401 - puts the layer's package on the path
from devtools.template_resources import load_template
from image_recovery import aws
from image_recovery.governor import (
    LEAD_SECONDS,
    Deferred,
    MemoryBudgetStore,
    Policy,
    RateGovernor,
    booked_request_throttled,
)
from image_recovery.jobs import ImageJob
from image_recovery.worker_runtime import retry_delay_seconds

QUOTAS = (30, 60, 120, 600)
MEDIANS = (3, 6, 12)
CONCURRENCY = (1, 2, 5, 10, 20, 30, 50)
JOBS = 10_000
BURST = 200
BURST_AT_SECONDS = 60.0
LATENCY_SIGMA = 0.5
JITTER_SECONDS = 0.05  # a request reaches Bedrock this long after it is sent, at most
THROTTLE_ANSWER_SECONDS = 0.05
READ_SECONDS = 0.03  # the record read before the booking
PREPARE_SECONDS = (0.03, 0.2)  # claim, parents, prompt: between the booking and the call (uniform)
STORE_SECONDS = 0.1  # S3 put, write-back, batch counters
POLL_SECONDS = 1.0  # Lambda's poller, when the queue has nothing visible
KEEP_UP = 1.1  # a cell counts toward the goal when concurrency x 60 / median >= KEEP_UP x quota
GOAL_USE, GOAL_THROTTLED, GOAL_DEAD = 0.90, 0.01, 0


@dataclass(frozen=True)
class Fleet:
    """What the template gives the worker: read from template.yaml, not restated."""

    max_receive_count: int
    batch_size: int
    timeout_seconds: float

    @classmethod
    def from_template(cls) -> Fleet:
        template = load_template()
        worker = template["Resources"]["WorkerFunction"]["Properties"]
        return cls(
            max_receive_count=int(template["Parameters"]["MaxReceiveCount"]["Default"]),
            batch_size=int(worker["Events"]["JobQueueEvent"]["Properties"]["BatchSize"]),
            timeout_seconds=float(worker["Timeout"]),
        )


@dataclass(frozen=True)
class Cell:
    quota: int
    median: float
    concurrency: int

    @property
    def could_keep_up(self) -> bool:
        """The issue's rule: the goal line counts the cells where this holds."""
        return self.concurrency * 60 / self.median >= KEEP_UP * self.quota

    @property
    def seed(self) -> int:
        """The cell's own seed: a subset of the grid (--quotas, --medians, --concurrency) reproduces its rows."""
        return self.quota * 1_000_000 + round(self.median * 1000) * 100 + self.concurrency

    @property
    def fleet_over_quota(self) -> float:
        """What the workers could draw a minute with no quota at all, over the quota: the mean image time
        (the lognormal's median x e^(sigma^2/2)) plus each job's own work, including the slot's lead."""
        mean_job = self.median * math.exp(LATENCY_SIGMA**2 / 2) + READ_SECONDS + LEAD_SECONDS + STORE_SECONDS
        return self.concurrency * 60 / mean_job / self.quota


@dataclass
class Result:
    cell: Cell
    images: int = 0
    calls: int = 0
    throttled: int = 0
    dead_lettered: int = 0
    handed_back: int = 0
    drained_at: float = 0.0
    burst_waits: list[float] = field(default_factory=list)
    best_possible: float = 0.0  # the quota use of a perfect scheduler in this cell (best_possible())

    @property
    def quota_use(self) -> float:
        return self.images / (self.drained_at / 60) / self.cell.quota if self.drained_at else 0.0

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.calls if self.calls else 0.0


@dataclass
class Message:
    job: ImageJob
    receive_count: int = 0


class Queue:
    """An SQS standard queue, as far as a job's fate depends on it: visible messages roughly in order,
    delayed and hidden ones coming back at their time, the dead-letter queue after MaxReceiveCount receives."""

    def __init__(self, env: simpy.Environment, max_receive_count: int) -> None:
        self._env = env
        self._max_receive_count = max_receive_count
        self._visible: deque[Message] = deque()
        self._later: list[tuple[float, int, Message]] = []
        self._sent = 0
        self.dead_lettered = 0

    def send(self, message: Message, delay: float = 0.0) -> None:
        if delay <= 0:
            self._visible.append(message)
        else:
            self._sent += 1
            heappush(self._later, (self._env.now + delay, self._sent, message))

    def receive(self, count: int) -> list[Message]:
        while self._later and self._later[0][0] <= self._env.now:
            self._visible.append(heappop(self._later)[2])
        taken: list[Message] = []
        while self._visible and len(taken) < count:
            message = self._visible.popleft()
            if message.receive_count >= self._max_receive_count:
                self.dead_lettered += 1
                continue
            message.receive_count += 1
            taken.append(message)
        return taken


class Bedrock:
    """The model's quota as a token bucket of one second's worth of requests, and its latency."""

    def __init__(self, env: simpy.Environment, cell: Cell, rng: random.Random, result: Result) -> None:
        self._env = env
        self._rate = cell.quota / 60
        self._capacity = max(1.0, self._rate)
        self._tokens = self._capacity
        self._filled_at = 0.0
        self._median = cell.median
        self._rng = rng
        self._result = result

    def _admit(self) -> bool:
        now = self._env.now
        self._tokens = min(self._capacity, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now
        self._result.calls += 1
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self._result.throttled += 1
        return False

    def invoke(self) -> Generator[Any, Any, tuple[bool, int, str]]:
        """One InvokeModel as the SDK makes it: (image?, throttle answers seen, reason if none)."""
        throttles, reason = 0, ""
        for attempt in range(aws.BEDROCK_MAX_ATTEMPTS):
            yield self._env.timeout(self._rng.uniform(0, JITTER_SECONDS))
            if self._admit():
                latency = image_seconds(self._rng, self._median)
                if latency <= aws.BEDROCK_READ_TIMEOUT_SECONDS:
                    yield self._env.timeout(latency)
                    return True, throttles, ""
                yield self._env.timeout(aws.BEDROCK_READ_TIMEOUT_SECONDS)
                reason = "timeout"
            else:
                throttles += 1
                yield self._env.timeout(THROTTLE_ANSWER_SECONDS)
                reason = "throttled"
            if attempt < aws.BEDROCK_MAX_ATTEMPTS - 1:
                yield self._env.timeout(self._rng.random() * min(2**attempt, 20))  # botocore's standard backoff
        return False, throttles, reason


def image_seconds(rng: random.Random, median: float) -> float:
    """One image's time at Bedrock: lognormal around the median, with its long tail."""
    return median * math.exp(rng.gauss(0, LATENCY_SIGMA))


def best_possible(cell: Cell, *, jobs: int, seed: int) -> float:
    """The most of the quota any governor could use in `cell`: the same workers, each drawing one image at a
    time with the same image times and the same work of its own around each call (read and claim before it,
    store after it), and each call made the very moment its worker is ready and Bedrock's bucket holds a
    token; no headroom, no lead, no jitter, no queue or Lambda, a timed-out call counted as an image. Nothing
    is throttled and no worker ever waits while a token is there, so a real governor can only come below it.
    Quota use as the simulation measures it: images a minute over the drain, over the quota."""
    rng = random.Random(seed)
    rate, capacity = cell.quota / 60, max(1.0, cell.quota / 60)
    tokens, filled_at, drained_at = capacity, 0.0, 0.0

    def ready(after: float) -> float:  # the worker's next call could go at: read, claim and prompt
        return after + READ_SECONDS + rng.uniform(*PREPARE_SECONDS)

    workers = [(ready(0.0), n) for n in range(cell.concurrency)]
    heapify(workers)
    for _ in range(jobs):
        at, worker = heappop(workers)  # the worker ready first calls first
        at = max(at, filled_at)
        tokens = min(capacity, tokens + (at - filled_at) * rate)
        if tokens < 1:  # the earliest moment the bucket holds a token again
            at += (1 - tokens) / rate
            tokens = 1.0
        tokens, filled_at = tokens - 1, at
        done = at + min(image_seconds(rng, cell.median), aws.BEDROCK_READ_TIMEOUT_SECONDS) + STORE_SECONDS
        drained_at = max(drained_at, done)
        heappush(workers, (ready(done), worker))
    return jobs / (drained_at / 60) / cell.quota


class Simulation:
    def __init__(self, cell: Cell, fleet: Fleet, *, jobs: int, burst: int, seed: int) -> None:
        self.env = simpy.Environment()
        self.cell, self.fleet = cell, fleet
        self.result = Result(cell)
        self._rng = random.Random(seed)
        self._bedrock = Bedrock(self.env, cell, self._rng, self.result)
        self._queue = Queue(self.env, fleet.max_receive_count)
        # the worker's own governor, on the simulation's clock; the store is the DynamoDB row's stand-in
        self._governor = RateGovernor(Policy(cell.quota), MemoryBudgetStore(), clock=lambda: self.env.now)
        self._total = jobs + burst
        self._ended = 0
        self._all_ended = self.env.event()
        self._burst_sent: dict[str, float] = {}
        for n in range(jobs):
            self._queue.send(Message(_job(f"backlog-{n}")))
        self.env.process(self._burst(burst))
        for _ in range(cell.concurrency):
            self.env.process(self._worker())

    def run(self) -> Result:
        self.env.run(until=self._all_ended)
        self.result.dead_lettered = self._queue.dead_lettered
        self.result.drained_at = self.env.now
        return self.result

    def _burst(self, count: int) -> Generator[Any, Any, None]:
        yield self.env.timeout(BURST_AT_SECONDS)
        for n in range(count):
            job = _job(f"burst-{n}")
            self._burst_sent[job.job_id] = self.env.now
            self._queue.send(Message(job))

    def _end(self, job: ImageJob | None = None) -> None:
        if job is not None and job.job_id in self._burst_sent:
            self.result.burst_waits.append(self.env.now - self._burst_sent[job.job_id])
        self._ended += 1
        if self._ended == self._total:
            self._all_ended.succeed()

    def _hand_back(self, message: Message, delay: float) -> None:
        self.result.handed_back += 1
        self._queue.send(Message(message.job.handed_back(message.receive_count)), delay)

    def _worker(self) -> Generator[Any, Any, None]:
        """One of the event source's concurrent invocations, again and again (worker_runtime's steps)."""
        env, fleet = self.env, self.fleet
        while True:
            batch = self._queue.receive(fleet.batch_size)
            if not batch:
                yield env.timeout(POLL_SECONDS)
                continue
            deadline = env.now + fleet.timeout_seconds
            deferral: int | None = None
            for message in sorted(batch, key=lambda m: m.job.attempt(m.receive_count), reverse=True):
                attempt = message.job.attempt(message.receive_count)
                if attempt > fleet.max_receive_count:  # passed on until SQS's own count dead-letters it
                    self._queue.send(message)
                    continue
                slack = deadline - env.now - aws.JOB_BUDGET_SECONDS
                if slack < 0 or deferral is not None:
                    self._hand_back(message, 0 if slack < 0 else deferral)
                    continue
                yield env.timeout(READ_SECONDS)
                try:
                    booking = yield from self._wait_out(self._governor.book(slack))
                except Deferred as deferred:
                    deferral = deferred.delay_seconds
                    self._hand_back(message, deferral)
                    continue
                yield env.timeout(self._rng.uniform(*PREPARE_SECONDS))
                yield env.timeout(self._governor.until(booking))
                called_at = env.now
                image, throttles, reason = yield from self._bedrock.invoke()
                throttled = booked_request_throttled(
                    throttles if image else reason == "throttled", env.now - called_at, aws.BEDROCK_READ_TIMEOUT_SECONDS
                )
                if throttled:
                    self._governor.throttled(booking)
                elif image:
                    self._governor.succeeded(booking)
                if image:
                    yield env.timeout(STORE_SECONDS)
                    self.result.images += 1
                    self._end(message.job)
                    continue
                if attempt >= fleet.max_receive_count:  # the record is failed; the message goes on to the DLQ
                    self._end()
                self._queue.send(message, retry_delay_seconds(attempt))

    def _wait_out(self, steps: Generator[float, None, Any]) -> Generator[Any, Any, Any]:
        """governor.wait_out on the simulation's clock: the same pauses, taken by simpy instead of sleep."""
        try:
            while True:
                yield self.env.timeout(next(steps))
        except StopIteration as done:
            return done.value


def _job(job_id: str) -> ImageJob:
    return ImageJob(
        job_id=job_id, batch_id="sim", pk="USER#sim", sk=f"TRIP#{job_id}", entity_type="TRIP", record_id=job_id,
        style_id="watercolor",
    )  # fmt: skip


def run_grid(cells: Sequence[Cell], *, jobs: int, burst: int, seed: int = 12) -> list[Result]:
    fleet = Fleet.from_template()
    results = []
    for cell in cells:
        result = Simulation(cell, fleet, jobs=jobs, burst=burst, seed=seed * 10**10 + cell.seed).run()
        result.best_possible = best_possible(cell, jobs=jobs + burst, seed=seed * 10**10 + cell.seed)
        results.append(result)
    return results


def goal_line(results: Sequence[Result]) -> tuple[str, bool]:
    """The summary over the cells where the fleet could keep up, and whether it meets the goal."""
    counted = [r for r in results if r.cell.could_keep_up]
    worst_use = min((r.quota_use for r in counted), default=0.0)
    worst_throttled = max((r.throttled_share for r in counted), default=0.0)
    dead = sum(r.dead_lettered for r in counted)
    met = bool(counted) and worst_use >= GOAL_USE and worst_throttled < GOAL_THROTTLED and dead <= GOAL_DEAD
    line = f"fleet-sim: worst quota use {worst_use:.0%} · worst throttled {worst_throttled:.1%} · dead-lettered {dead}"
    return line, met


def out_of_reach(results: Sequence[Result]) -> str:
    """The counted cells where no governor could reach the goal's quota use (best_possible), or ''."""
    cells = [
        f"quota {r.cell.quota}/min, median {r.cell.median:g} s, concurrency {r.cell.concurrency} "
        f"(at most {r.best_possible:.0%})"
        for r in results
        if r.cell.could_keep_up and r.best_possible < GOAL_USE
    ]
    return f"beyond any governor's reach ({GOAL_USE:.0%} of the quota): " + "; ".join(cells) if cells else ""


def table(results: Sequence[Result]) -> str:
    header = (
        "| quota/min | median s | concurrency | keeps up | fleet ÷ quota | quota use | best possible | throttled "
        "| dead-lettered | drain | hand-backs/job | burst wait p50 |"
    )
    rows = [header, "|" + "---|" * 12]
    for r in results:
        c = r.cell
        rows.append(
            f"| {c.quota} | {c.median:g} | {c.concurrency} | {'yes' if c.could_keep_up else 'no'} "
            f"| {c.fleet_over_quota:.2f} | {r.quota_use:.0%} | {r.best_possible:.0%} | {r.throttled_share:.2%} "
            f"| {r.dead_lettered} "
            f"| {_duration(r.drained_at)} "
            f"| {r.handed_back / max(1, r.images):.2f} "
            f"| {_duration(statistics.median(r.burst_waits)) if r.burst_waits else '-'} |"
        )
    return "\n".join(rows)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quotas", type=_numbers, default=list(QUOTAS), help="requests a minute, comma-separated")
    parser.add_argument("--medians", type=_numbers, default=list(MEDIANS), help="median seconds an image")
    parser.add_argument("--concurrency", type=_numbers, default=list(CONCURRENCY), help="WorkerMaxConcurrency")
    parser.add_argument("--jobs", type=int, default=JOBS, help="the backlog")
    parser.add_argument("--burst", type=int, default=BURST, help="interactive jobs a minute in")
    options = parser.parse_args(argv)
    cells = [Cell(q, m, c) for q in options.quotas for m in options.medians for c in options.concurrency]
    started = time.perf_counter()
    results = run_grid(cells, jobs=options.jobs, burst=options.burst)
    print(table(results))
    print(f"\n{len(cells)} cells, {options.jobs:,} jobs + {options.burst} interactive each, "
          f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
    if unreachable := out_of_reach(results):
        print(unreachable)
    line, met = goal_line(results)
    print(line)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
