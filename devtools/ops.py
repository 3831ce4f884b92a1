"""Operator commands against a deployed stack: see what a dead-letter queue holds, move it back; tear it down.

    python -m devtools.ops redrive --stack-name image-recovery [--queue jobs|tasks] [--region eu-west-1] [--rate 10]
    python -m devtools.ops redrive --stack-name image-recovery [--queue jobs|tasks|stream] --list [--limit 20]
    python -m devtools.ops redrive --stack-name image-recovery [--queue jobs|tasks] --status
    python -m devtools.ops redrive --stack-name image-recovery [--queue jobs|tasks] --copy [--limit 100]

`--queue` picks the dead-letter queue: `jobs` (image jobs, back to the job queue; the default), `tasks`
(repair-scan segments, bucket audits and queue-all fan-outs, back to the task queue) or `stream` (records of
the stream batches the stream function gave up on: they name stream positions, not work, so they can be
listed but not redriven; docs/operations.md says what to do instead).

`redrive` starts an SQS message move task (the preferred way: SQS moves the messages itself, at an
optional rate, and the task can be watched with `--status` or cancelled in the console). `--copy` moves
them here instead (receive, send, delete only what was sent), for places that have no move tasks, such
as moto and the embedded AWS of `make demo`. `--list` shows what the queue holds, one line a message,
and leaves the messages where they are.

    python -m devtools.ops teardown --stack-name image-recovery-dev [--yes]

`teardown` prints what deleting the stack removes and what it keeps (the travel table and the image
bucket are retained), then, with `--yes` only, empties the panel bucket (CloudFormation cannot delete a
bucket that holds objects) and deletes the stack, waiting until it is gone.

Queue URLs and ARNs come from the stack's outputs. The functions take clients, so the tests drive them
with Stubber and moto. Errors (a wrong stack, missing credentials, a refused move task) print one line and
exit with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError


@dataclass(frozen=True)
class DeadLetters:
    """One dead-letter queue of the stack, by its outputs, and where its messages go back to (None: nowhere)."""

    label: str
    queue_url: str
    queue_arn: str | None = None
    back_url: str | None = None
    back_arn: str | None = None

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(name for name in (self.back_url, self.back_arn, self.queue_url, self.queue_arn) if name)


DEAD_LETTERS = {
    "jobs": DeadLetters("job", "DeadLetterQueueUrl", "DeadLetterQueueArn", "JobQueueUrl", "JobQueueArn"),
    "tasks": DeadLetters("task", "TaskDeadLetterQueueUrl", "TaskDeadLetterQueueArn", "TaskQueueUrl", "TaskQueueArn"),
    "stream": DeadLetters("stream failure", "StreamFailureQueueUrl"),
}
REDRIVE_OUTPUTS = DEAD_LETTERS["jobs"].outputs
SQS_BATCH = 10  # the most messages one ReceiveMessage / SendMessageBatch / DeleteMessageBatch handles


class OpsError(Exception):
    """A problem the operator can fix (wrong stack, missing output); printed without a traceback."""


# ------------------------------------------------------------------ stack outputs
def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The stack's outputs as {OutputKey: OutputValue}."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise OpsError(f"cannot read stack {stack_name!r}: {error.response['Error'].get('Message', error)}") from None
    if not stacks:
        raise OpsError(f"stack {stack_name!r} not found")
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def require_outputs(outputs: dict[str, str], names: Sequence[str], stack_name: str) -> dict[str, str]:
    missing = [name for name in names if not outputs.get(name)]
    if missing:
        raise OpsError(
            f"stack {stack_name!r} has no output {', '.join(missing)}; "
            "deploy the current template.yaml (sam build && sam deploy) and try again"
        )
    return {name: outputs[name] for name in names}


# ------------------------------------------------------------------ queues
def queue_depth(sqs: Any, queue_url: str) -> int:
    """Messages waiting on a queue (visible ones; SQS's count is approximate)."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def start_redrive(sqs: Any, dlq_arn: str, job_queue_arn: str, rate: int | None = None) -> str:
    """Start an SQS message move task from the dead-letter queue to the job queue; returns its handle."""
    kwargs: dict[str, Any] = {"SourceArn": dlq_arn, "DestinationArn": job_queue_arn}
    if rate is not None:
        kwargs["MaxNumberOfMessagesPerSecond"] = rate
    return sqs.start_message_move_task(**kwargs)["TaskHandle"]


def list_redrives(sqs: Any, dlq_arn: str, max_results: int = 10) -> list[dict]:
    """The most recent move tasks of the dead-letter queue, newest first (as SQS reports them)."""
    return sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=max_results)["Results"]


@dataclass
class CopyReport:
    moved: int = 0
    send_failed: int = 0
    delete_failed: int = 0
    errors: list[str] = field(default_factory=list)


def copy_messages(
    sqs: Any,
    source_url: str,
    destination_url: str,
    *,
    limit: int | None = None,
    wait_seconds: int = 1,
    visibility_timeout: int = 120,
) -> CopyReport:
    """Move messages by hand: receive from source, send to destination, delete from source what was sent.

    At least once: a message whose delete fails after its send succeeded is on both queues (the worker
    ignores the duplicate, its job id no longer matches or the job has ended). A message whose send fails
    stays on the source and reappears there after `visibility_timeout`. Stops when a receive comes back
    empty or after `limit` messages.
    """
    report = CopyReport()
    while limit is None or report.moved + report.send_failed < limit:
        wanted = SQS_BATCH if limit is None else min(SQS_BATCH, limit - report.moved - report.send_failed)
        messages = sqs.receive_message(
            QueueUrl=source_url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_timeout,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        by_id = {str(index): message for index, message in enumerate(messages)}
        entries = []
        for entry_id, message in by_id.items():
            entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        sent = sqs.send_message_batch(QueueUrl=destination_url, Entries=entries)
        for failure in sent.get("Failed", []):
            report.send_failed += 1
            report.errors.append(f"send {by_id[failure['Id']]['MessageId']}: {failure.get('Message', failure['Code'])}")
        delivered = [by_id[success["Id"]] for success in sent.get("Successful", [])]
        if not delivered:
            continue
        deleted = sqs.delete_message_batch(
            QueueUrl=source_url,
            Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(delivered)],
        )
        report.moved += len(delivered)
        for failure in deleted.get("Failed", []):
            report.delete_failed += 1
            message_id = delivered[int(failure["Id"])]["MessageId"]
            report.errors.append(f"delete {message_id}: {failure.get('Message', failure['Code'])}")
    return report


# ------------------------------------------------------------------ what a dead-letter queue holds
def describe_message(body: str) -> str:
    """One line for a message of any of the three dead-letter queues: a job, a task, or a stream failure."""
    try:
        message = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:80]!r}"
    if not isinstance(message, dict):
        return f"not a JSON object: {body[:80]!r}"
    if "jobId" in message:
        return (
            f"job {message.get('jobId')} of batch {message.get('batchId')}: {message.get('entityType', '?').lower()}"
            f" {message.get('recordId')} ({message.get('pk')} / {message.get('sk')})"
        )
    if "kind" in message:
        details = ", ".join(f"{k}={v}" for k, v in message.items() if k not in ("kind", "startKey", "token"))
        return f"task {message['kind']}: {details}"
    batch = message.get("DDBStreamBatchInfo")
    if isinstance(batch, dict):
        condition = message.get("requestContext", {}).get("condition", "?")
        return (
            f"stream batch of {batch.get('batchSize', '?')} record(s) given up on ({condition}): shard"
            f" {batch.get('shardId')}, sequence numbers {batch.get('startSequenceNumber')} to"
            f" {batch.get('endSequenceNumber')}, first written {batch.get('approximateArrivalOfFirstRecord')}"
        )
    return f"unknown message: {body[:80]!r}"


def peek(sqs: Any, queue_url: str, limit: int) -> list[dict]:
    """Up to `limit` messages of a queue, made visible again at once: looking does not move or delete them
    (it does count as a receive, which a dead-letter queue, having no redrive policy of its own, ignores)."""
    seen: dict[str, dict] = {}
    while len(seen) < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(SQS_BATCH, limit - len(seen)),
            VisibilityTimeout=30,
            WaitTimeSeconds=1,
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if batch:
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(batch)
                ],
            )
        if not fresh:
            break
        seen.update((m["MessageId"], m) for m in fresh)
    return list(seen.values())


# ------------------------------------------------------------------ command line
def _print_tasks(tasks: list[dict]) -> None:
    if not tasks:
        print("no move tasks for this dead-letter queue")
    for task in tasks:
        print(
            f"{task.get('Status', '?'):<10} moved {task.get('ApproximateNumberOfMessagesMoved', 0)}"
            f" of {task.get('ApproximateNumberOfMessagesToMove', '?')}"
            f"  started {task.get('StartedTimestamp', '?')}  {task.get('TaskHandle', '')}"
            + (f"  failure: {task['FailureReason']}" if task.get("FailureReason") else "")
        )


def _redrive(args: argparse.Namespace, session: boto3.session.Session) -> int:
    letters = DEAD_LETTERS[args.queue]
    outputs = require_outputs(
        stack_outputs(session.client("cloudformation"), args.stack_name), letters.outputs, args.stack_name
    )
    sqs = session.client("sqs")
    source = outputs[letters.queue_url]
    if args.list:
        messages = peek(sqs, source, args.limit or 10)
        print(f"{letters.label} dead-letter queue: {len(messages)} message(s) shown")
        for message in messages:
            received = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
            print(f"  {message['MessageId']}  received {received}x  {describe_message(message['Body'])}")
        return 0
    if letters.back_url is None:
        raise OpsError(
            f"the {args.queue} queue holds records of stream batches, not work: they cannot be redriven. "
            "List them with --list; docs/operations.md (StreamFailuresAlarm) says what to do."
        )
    if args.status:
        _print_tasks(list_redrives(sqs, outputs[letters.queue_arn]))
        return 0

    waiting = queue_depth(sqs, source)
    print(f"{letters.label} dead-letter queue holds about {waiting} message(s)")
    if args.copy:
        report = copy_messages(sqs, source, outputs[letters.back_url], limit=args.limit)
        print(
            f"moved {report.moved} message(s) to the {letters.label} queue"
            f" ({report.send_failed} not sent, {report.delete_failed} sent but not deleted)"
        )
        for error in report.errors:
            print(f"  {error}", file=sys.stderr)
        return 1 if report.send_failed or report.delete_failed else 0
    if waiting == 0:
        print("nothing to redrive")
        return 0
    handle = start_redrive(sqs, outputs[letters.queue_arn], outputs[letters.back_arn], rate=args.rate)
    print(f"move task started: {handle}")
    print(
        f"follow it with: python -m devtools.ops redrive --status --queue {args.queue} --stack-name {args.stack_name}"
    )
    return 0


# ------------------------------------------------------------------ teardown
RETAINED = (
    ("TravelTable", "TravelTableName", "the travel table (when the stack created it; a host's table is never touched)"),
    ("ImageBucket", "ImageBucketName", "the image bucket, with every image and its old versions"),
)


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object of a bucket, every version and delete marker included; returns how many."""
    removed = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        keys = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            if answer.get("Errors"):
                raise OpsError(f"could not empty {bucket}: {answer['Errors'][0].get('Message')}")
            removed += len(chunk)
    return removed


def _teardown(args: argparse.Namespace, session: boto3.session.Session) -> int:
    cloudformation = session.client("cloudformation")
    outputs = stack_outputs(cloudformation, args.stack_name)
    print(f"deleting stack {args.stack_name} removes its functions, API, queues, batch and idempotency tables,")
    print("panel bucket and CloudFront distribution (every imageUrl served through it stops loading), and keeps:")
    for logical_id, output, what in RETAINED:
        print(f"  {logical_id}: {what}" + (f" ({outputs[output]})" if outputs.get(output) else ""))
    if not args.yes:
        print("nothing changed (a dry run); add --yes (make teardown CONFIRM=1) to delete the stack")
        return 0
    panel = outputs.get("PanelBucketName")
    if panel:
        print(f"emptied the panel bucket {panel}: {empty_bucket(session.client('s3'), panel)} object(s)")
    cloudformation.delete_stack(StackName=args.stack_name)
    print(f"deleting {args.stack_name}; waiting until it is gone")
    cloudformation.get_waiter("stack_delete_complete").wait(StackName=args.stack_name)
    print(f"stack {args.stack_name} deleted")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.ops", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    redrive = commands.add_parser("redrive", help="see what a dead-letter queue holds, or move it back")
    redrive.add_argument("--stack-name", required=True, help="the deployed stack (sam deploy --stack-name)")
    redrive.add_argument("--region", help="the stack's region (default: your AWS configuration's)")
    redrive.add_argument(
        "--queue", choices=sorted(DEAD_LETTERS), default="jobs", help="which dead-letter queue (default: jobs)"
    )
    mode = redrive.add_mutually_exclusive_group()
    mode.add_argument("--status", action="store_true", help="list the dead-letter queue's recent move tasks")
    mode.add_argument("--copy", action="store_true", help="move the messages here instead of by a move task")
    mode.add_argument("--list", action="store_true", help="show what the queue holds (up to --limit, 10), move nothing")
    redrive.add_argument(
        "--rate",
        type=_positive,
        metavar="N",
        help="move task: at most N messages per second, 1-500 (SQS's default: as fast as it can)",
    )
    redrive.add_argument("--limit", type=_positive, metavar="N", help="--copy: move at most N; --list: show at most N")
    teardown = commands.add_parser("teardown", help="delete the stack: its panel bucket emptied, its data kept")
    teardown.add_argument("--stack-name", required=True, help="the deployed stack (sam deploy --stack-name)")
    teardown.add_argument("--region", help="the stack's region (default: your AWS configuration's)")
    teardown.add_argument("--yes", action="store_true", help="really delete it (without: only print what happens)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "rate", None) is not None and not 1 <= args.rate <= 500:
        print("--rate must be between 1 and 500 messages per second", file=sys.stderr)
        return 2
    command = _redrive if args.command == "redrive" else _teardown
    try:
        return command(args, boto3.session.Session(region_name=args.region))
    except OpsError as error:
        print(f"error: {error}", file=sys.stderr)
    except ClientError as error:  # refused by AWS: the message says why (a move task already running, access)
        details = error.response.get("Error", {})
        print(
            f"error: {error.operation_name} refused: {details.get('Code')}: {details.get('Message')}", file=sys.stderr
        )
    except BotoCoreError as error:  # no credentials, no region, no network
        print(f"error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
