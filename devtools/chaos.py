"""Chaos run: a few thousand image jobs on the embedded AWS with faults in every AWS call the service makes.

    python -m devtools.chaos [--records 6000] [--users 30] [--missing-ratio 0.5] [--fault-rate 0.05] [--seed 7]
                             [--queue-workers N]

Each HTTP attempt an AWS call makes inside a handler fails with probability --fault-rate: a refused
connection before it (nothing happened), a read timeout after it (it took effect, the answer was lost)
or the process dying on the spot, in the proportions of FAULT_MIX. The SDK retries the first two as it
does in AWS, so a lost answer means the request is sent again: writes land twice, messages are sent
twice. Bedrock is a stand-in answering as a Stability model does (it has no HTTP attempt: its calls
fail with ThrottlingException at the same rate), and its content filter refuses about one prompt in a
hundred. What AWS itself does (Lambda's SQS poller, the schedule) and what an operator does (a redrive)
run without faults.

The run: users ask, a few at a time, to queue all their missing images (a client retrying 5xx answers
a few times), and the worker drains the queue after each wave (waves keep moto's queue short: its
ReceiveMessage slows down with the square of the queue's length). Then rounds of draining, redriving the
dead-letter queue and, two hours later on the simulated clock, the scheduled sweep, until every record
that was missing has ended ready or failed.
Faults are drawn in the order calls are made, so a seed gives the same run only when one thread makes
them: the functions queue with their deployed pool of threads unless --queue-workers 1 asks for one.
It prints the records missing before, generated, failed by reason, and what must be zero: lost,
duplicated, dangling URLs and orphaned images. The exit status is 1 if any of those is not zero.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

import boto3

from bench.data import Dataset, make_dataset, seed
from devtools.audit import Audit, audit, count_write_backs
from devtools.embedded_aws import REGION, embedded_aws, use_function_environment
from devtools.faults import CRASH, Fault, FaultInjector, InjectedCrash, bedrock_stand_in
from devtools.lambda_runtime import (
    LambdaContext,
    SimulatedClock,
    SqsPoller,
    http_event,
    load_event,
    load_handler,
    waits_on,
)
from devtools.ops import copy_messages
from devtools.streams import LocalStream
from devtools.template_resources import LocalStack

# How a fault strikes, as shares of --fault-rate.
FAULT_MIX = {"before": 0.7, "after": 0.25, CRASH: 0.05}
SERVICES = ("dynamodb", "sqs", "s3", "bedrock-runtime")
CONTENT_FILTER_PERCENT = 1
API_ATTEMPTS = 3  # a client retries a 5xx answer (or a dropped connection) this many times in all
SWEEP_INTERVAL_SECONDS = 2 * 3600  # past StuckJobMinutes (60 by default): stuck jobs are taken over
MAX_ROUNDS = 30
USERS_PER_WAVE = 2
QUIET = {"POWERTOOLS_LOG_LEVEL": "CRITICAL", "POWERTOOLS_METRICS_DISABLED": "true"}


@dataclass(frozen=True)
class Options:
    records: int = 6000
    users: int = 30  # about 100 missing each: some users' bulk requests fan out, some do not
    missing_ratio: float = 0.5
    fault_rate: float = 0.05
    seed: int = 7
    queue_workers: int | None = None  # marks in flight per queueing call (QUEUE_WORKERS); None: as deployed

    def dataset(self) -> Dataset:
        """The travel table to seed; ValueError for sizes that make none."""
        return make_dataset(self.records, self.users, self.missing_ratio, seed=self.seed)


@dataclass
class Report:
    options: Options
    audit: Audit
    calls: int = 0
    faults: Counter[str] = field(default_factory=Counter)  # before / after / crash
    api_answers: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    sweeps: int = 0
    redriven: int = 0
    simulated_hours: float = 0.0
    wall_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            **self.audit.summary(),
            "options": self.options.__dict__,
            "aws_calls": self.calls,
            "faults": dict(self.faults),
            "api_answers": dict(self.api_answers),
            "rounds": self.rounds,
            "sweeps": self.sweeps,
            "redriven": self.redriven,
            "simulated_hours": round(self.simulated_hours, 1),
            "wall_seconds": round(self.wall_seconds, 1),
        }


def faults_for(rate: float) -> list[Fault]:
    return [
        Fault(service, when="after" if kind == "after" else "before",
              error=CRASH if kind == CRASH else "ThrottlingException", rate=rate * share)
        for service in SERVICES
        for kind, share in FAULT_MIX.items()
    ]  # fmt: skip


def refused_by_content_filter(prompt: str) -> bool:
    return zlib.crc32(prompt.encode()) % 100 < CONTENT_FILTER_PERCENT


class Chaos:
    def __init__(self, stack: LocalStack, options: Options, clock: SimulatedClock) -> None:
        self.stack, self.options, self.clock = stack, options, clock
        self.write_backs: Counter[tuple[str, str]] = Counter()
        png = _tiny_png()
        self.injector = FaultInjector(
            faults_for(options.fault_rate),
            seed=options.seed,
            answers={("bedrock-runtime", "InvokeModel"): bedrock_stand_in(png, refuse=refused_by_content_filter)},
            observers=[count_write_backs(self.write_backs)],
            below_retries=True,
        )
        self.injector.enabled = False
        queuers = {"QUEUE_WORKERS": str(options.queue_workers)} if options.queue_workers else {}
        self.api = self._load("api", **queuers)
        self.worker = waits_on(self._load("worker", IMAGE_PROVIDER="bedrock"), self.clock)
        self.sweep = self._load("sweep", IMAGE_PROVIDER="local", **queuers)  # no Bedrock model lifecycle check
        self.tasks = self._load("tasks", **queuers)
        self.sqs = boto3.client("sqs", region_name=REGION)

    def _load(self, function: str, **overrides: str) -> ModuleType:
        use_function_environment(self.stack, function, **QUIET, **overrides)
        return load_handler(function)

    def _invoke(self, function: ModuleType, event: dict) -> dict | None:
        """One invocation with faults on; None if it crashed or raised (a function error, in Lambda's words)."""
        try:
            return _Faulty(self, function).lambda_handler(event, LambdaContext())
        except (InjectedCrash, Exception):
            return None

    def queue_everything(self, users: Sequence[str]) -> Counter[str]:
        answers: Counter[str] = Counter()
        for user in users:
            for _ in range(API_ATTEMPTS):
                response = self._invoke(self.api, http_event("api-queue-all.json", sub=user))
                status = response["statusCode"] if response else 502  # API Gateway's answer to a crash
                answers[str(status)] += 1
                if status < 500:
                    break
        return answers

    def drain(self) -> None:
        """The job and task queues to empty, as Lambda's pollers run them (with faults inside the handlers)."""
        for queue, function in (("TaskQueue", self.tasks), ("JobQueue", self.worker), ("TaskQueue", self.tasks)):
            poller = SqsPoller(
                self.stack.physical(queue), self.stack.arns[queue], _Faulty(self, function), region=REGION
            )
            poller.drain(self.clock)

    def redrive(self) -> int:
        report = copy_messages(
            self.sqs, self.stack.physical("JobDeadLetterQueue"), self.stack.physical("JobQueue"), wait_seconds=0
        )
        return report.moved

    def run_sweep(self) -> None:
        self.clock.advance(seconds=SWEEP_INTERVAL_SECONDS)
        self._invoke(self.sweep, load_event("sweep-scheduled.json"))  # a crashed sweep runs again next time

    def settled(self, missing: Sequence[tuple[str, str]]) -> bool:
        result = audit(self.stack, missing)
        return not result.lost


class _Faulty:
    """A handler module whose invocations run with the chaos's faults switched on."""

    def __init__(self, chaos: Chaos, function: ModuleType) -> None:
        self._chaos, self._function = chaos, function

    def lambda_handler(self, event: dict, context: LambdaContext) -> dict:
        self._chaos.injector.enabled = True
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the functions' EMF lines are not the report
                return self._function.lambda_handler(event, context)
        finally:
            self._chaos.injector.enabled = False


def _tiny_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 9), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


def run(options: Options, dataset: Dataset) -> Report:
    started = time.perf_counter()
    with embedded_aws() as stack, SimulatedClock() as clock:
        seed(stack, dataset)
        use_function_environment(stack, "indexer", **QUIET)
        LocalStream(stack).deliver(load_handler("indexer"))
        chaos = Chaos(stack, options, clock)
        missing = dataset.missing_keys
        clock_start = time.time()
        with chaos.injector.active():
            api_answers: Counter[str] = Counter()
            for start in range(0, len(dataset.users), USERS_PER_WAVE):
                api_answers += chaos.queue_everything(dataset.users[start : start + USERS_PER_WAVE])
                chaos.drain()
            rounds = sweeps = redriven = 0
            while rounds < MAX_ROUNDS:
                rounds += 1
                chaos.drain()
                while moved := chaos.redrive():
                    redriven += moved
                    chaos.drain()
                if chaos.settled(missing):
                    break
                chaos.run_sweep()
                sweeps += 1
        result = audit(stack, missing, chaos.write_backs)
        struck = Counter()
        for (_, _, when, error), count in chaos.injector.struck.items():
            struck["crash" if error == CRASH else when] += count
        return Report(
            options=options,
            audit=result,
            calls=sum(chaos.injector.calls.values()),
            faults=struck,
            api_answers=api_answers,
            rounds=rounds,
            sweeps=sweeps,
            redriven=redriven,
            simulated_hours=(time.time() - clock_start) / 3600,
            wall_seconds=time.perf_counter() - started,
        )


def render(report: Report) -> str:
    result, options = report.audit, report.options
    failed = ", ".join(f"{reason} {count:,}" for reason, count in sorted(result.failed.items())) or "none"
    lines = [
        f"chaos: {result.missing_before:,} jobs · {options.records:,} records · {options.users:,} users · "
        f"fault rate {options.fault_rate:.0%} per HTTP attempt · seed {options.seed}"
        + (f" · queue workers {options.queue_workers}" if options.queue_workers else ""),
        f"AWS calls {report.calls:,} · faults {sum(report.faults.values()):,} "
        f"(before the request {report.faults['before']:,} · after it {report.faults['after']:,} · "
        f"crashes {report.faults['crash']:,})",
        f"API answers {dict(sorted(report.api_answers.items()))} · rounds {report.rounds} · sweeps {report.sweeps} · "
        f"redriven {report.redriven:,} · simulated {report.simulated_hours:.1f} h · wall {report.wall_seconds:.0f} s",
        "",
        f"records missing before  {result.missing_before:>7,}",
        f"generated               {result.ready:>7,}",
        f"failed                  {sum(result.failed.values()):>7,}  ({failed})",
        f"lost                    {len(result.lost):>7,}{_by_status(result)}",
        f"duplicated              {len(result.duplicated):>7,}",
        f"dangling image URLs     {len(result.dangling):>7,}",
        f"orphaned images         {len(result.orphans):>7,}",
    ]
    return "\n".join(lines)


def _by_status(result: Audit) -> str:
    if not result.lost:
        return ""
    return "  (" + ", ".join(f"{status} {count:,}" for status, count in sorted(result.lost_by_status.items())) + ")"


def parse(argv: Sequence[str] | None = None) -> tuple[Options, bool]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Options()
    parser.add_argument("--records", type=int, default=defaults.records)
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--missing-ratio", type=float, default=defaults.missing_ratio)
    parser.add_argument("--fault-rate", type=float, default=float(os.environ.get("FAULT_RATE", defaults.fault_rate)))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--queue-workers", type=int, default=None, help="1: the same run for the same seed")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not 0 <= args.fault_rate < 1:
        parser.error(f"--fault-rate must be within [0, 1), got {args.fault_rate}")
    options = Options(args.records, args.users, args.missing_ratio, args.fault_rate, args.seed, args.queue_workers)
    return options, args.json


def main(argv: Sequence[str] | None = None) -> int:
    options, as_json = parse(argv)
    try:
        dataset = options.dataset()
    except ValueError as error:  # sizes the table cannot have: said before any AWS starts
        print(f"chaos: {error}", file=sys.stderr)
        return 2
    report = run(options, dataset)
    print(json.dumps(report.as_dict(), indent=2) if as_json else render(report))
    return 0 if report.audit.sound else 1


if __name__ == "__main__":
    raise SystemExit(main())
