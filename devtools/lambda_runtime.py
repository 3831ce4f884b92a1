"""Run the real handlers the way Lambda would: fresh module per load, a context object, AWS-shaped events."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


@dataclass
class LambdaContext:
    function_name: str = "image-recovery-local"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:image-recovery-local"
    remaining_ms: int = 180_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_handler(function: str) -> ModuleType:
    """Import functions/<function>/app.py as a new module, running its cold start like a new container."""
    path = ROOT / "functions" / function / "app.py"
    name = f"image_recovery_function_{function}_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_event(name: str) -> dict:
    """A sample event from events/ (the same files `sam local invoke -e` uses)."""
    return json.loads((EVENTS / name).read_text())


def http_event(
    name: str,
    *,
    sub: str | None = None,
    body: Any = None,
    path_parameters: dict | None = None,
    query: dict[str, str] | None = None,
) -> dict:
    """An events/ API sample, re-addressed to another user, body, path parameter or query where asked."""
    event = copy.deepcopy(load_event(name))
    if query:
        event["rawQueryString"] = urlencode(query)
        event["queryStringParameters"] = dict(query)
    if sub is not None:
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
        event["isBase64Encoded"] = False
    if path_parameters:
        event["pathParameters"] = path_parameters
        path = event["routeKey"].split(" ", 1)[1].format(**path_parameters)
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    return event


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    """Turn ReceiveMessage output into the event Lambda's SQS poller delivers."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attributes.get("SentTimestamp", "0"),
                    "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
                    "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
                },
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": queue_arn.split(":")[3],
            }
        )
    return {"Records": records}


@dataclass(frozen=True)
class Delivery:
    received: int
    handled: int = 0
    failed: int = 0
    crashed: bool = False  # the invocation died or raised: its whole batch comes back


class SqsPoller:
    """Lambda's SQS event source for one queue and function: receive a batch, invoke, delete what succeeded.

    Failed records stay on the queue, invisible for as long as the function asked (its retry backoff) or
    else the queue's visibility timeout. An invocation that crashes (devtools.faults.InjectedCrash) or
    raises deletes nothing: its whole batch comes back once the visibility timeout has passed, as in AWS.
    Tests that expect no function error pass `raise_errors=True` to see it instead.
    """

    def __init__(
        self,
        queue_url: str,
        queue_arn: str,
        function: Any,
        *,
        region: str,
        batch_size: int = 10,
        raise_errors: bool = False,
        remaining_ms: int = LambdaContext.remaining_ms,
    ) -> None:
        import boto3

        self._sqs = boto3.client("sqs", region_name=region)
        self._queue_url, self._queue_arn = queue_url, queue_arn
        self._function = function
        self._batch_size = batch_size
        self._raise_errors = raise_errors
        self._remaining_ms = remaining_ms  # what each invocation is given (the context says it throughout)

    def poll(self) -> Delivery:
        from devtools.faults import InjectedCrash

        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=self._batch_size, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return Delivery(received=0)
        try:
            response = self._function.lambda_handler(
                sqs_event(messages, self._queue_arn), LambdaContext(remaining_ms=self._remaining_ms)
            )
        except InjectedCrash:
            return Delivery(received=len(messages), crashed=True)
        except Exception:
            if self._raise_errors:
                raise
            return Delivery(received=len(messages), crashed=True)
        failures = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        done = [m for m in messages if m["MessageId"] not in failures]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return Delivery(received=len(messages), handled=len(done), failed=len(failures))

    def in_flight(self) -> int:
        """Messages received and neither deleted nor visible again yet, and messages sent with a delay."""
        names = ["ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
        attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attributes[name]) for name in names)

    def drain(self, clock: SimulatedClock, *, max_polls: int = 100_000) -> list[Delivery]:
        """Poll until the queue is empty, moving the clock on whenever only invisible messages are left."""
        deliveries: list[Delivery] = []
        while len(deliveries) < max_polls:
            delivery = self.poll()
            if delivery.received:
                deliveries.append(delivery)
            elif self.in_flight():
                clock.advance(seconds=QUEUE_VISIBILITY_SECONDS)
            else:
                return deliveries
        raise RuntimeError(f"the queue did not drain in {max_polls} polls")


# Longer than any delay the worker asks for (15 min, as a visibility or a message's DelaySeconds) and than
# the job queue's visibility timeout (18 min).
QUEUE_VISIBILITY_SECONDS = 1100


class SimulatedClock:
    """Time for the whole process (moto's queues, idempotency records, the service's own clock) that runs
    as usual and can be moved forward instead of waited for: a retry 15 minutes out takes no time."""

    def __init__(self) -> None:
        import time_machine

        self._travel = time_machine.travel(time.time(), tick=True)
        self._coordinates: Any = None

    def __enter__(self) -> SimulatedClock:
        self._coordinates = self._travel.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._travel.stop()

    def advance(self, *, seconds: float) -> None:
        self._coordinates.shift(seconds)

    def sleep(self, seconds: float) -> None:
        """A sleep that takes no time: the clock moves on instead (the worker's waits for a Bedrock slot)."""
        self.advance(seconds=max(0.0, seconds))


def waits_on(worker: ModuleType, clock: SimulatedClock) -> ModuleType:
    """The worker handler, its waits for a Bedrock slot (the rate governor's) moving `clock` on instead of
    sleeping: a backlog paced at the quota drains in no time, in the same order."""
    worker.runtime.worker._sleep = clock.sleep
    return worker


def drain_queue(queue_url: str, queue_arn: str, worker: ModuleType, *, region: str, batch_size: int = 5) -> dict:
    """Feed a queue to the worker until it is empty, as Lambda's SQS poller does.

    Messages the worker reports as failed stay on the queue (invisible until their visibility timeout),
    so draining stops at the first batch with failures and reports them.
    """
    poller = SqsPoller(queue_url, queue_arn, worker, region=region, batch_size=batch_size, raise_errors=True)
    handled = failed = 0
    while (delivery := poller.poll()).received:
        handled += delivery.handled
        failed += delivery.failed
        if delivery.failed or delivery.crashed:
            break
    return {"handled": handled, "failed": failed}
