"""Operator commands against a deployed stack: move dead letters back to the job queue.

    python -m devtools.ops redrive --stack-name image-recovery [--region eu-west-1] [--rate 10]
    python -m devtools.ops redrive --stack-name image-recovery --status
    python -m devtools.ops redrive --stack-name image-recovery --copy

`redrive` starts an SQS message move task (the preferred way: SQS moves the messages itself, at an
optional rate, and the task can be watched with `--status` or cancelled in the console). `--copy` moves
them here instead (receive, send to the job queue, delete only what was sent), for places that have no
move tasks, such as moto and the embedded AWS of `make demo`.

Queue URLs and ARNs come from the stack's outputs (JobQueueUrl, JobQueueArn, DeadLetterQueueUrl,
DeadLetterQueueArn). The functions take clients, so the tests drive them with Stubber and moto.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

REDRIVE_OUTPUTS = ("JobQueueUrl", "JobQueueArn", "DeadLetterQueueUrl", "DeadLetterQueueArn")
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


# ------------------------------------------------------------------ command line
def _redrive(args: argparse.Namespace, session: boto3.session.Session) -> int:
    outputs = require_outputs(
        stack_outputs(session.client("cloudformation"), args.stack_name), REDRIVE_OUTPUTS, args.stack_name
    )
    sqs = session.client("sqs")
    if args.status:
        tasks = list_redrives(sqs, outputs["DeadLetterQueueArn"])
        if not tasks:
            print("no move tasks for this dead-letter queue")
        for task in tasks:
            print(
                f"{task.get('Status', '?'):<10} moved {task.get('ApproximateNumberOfMessagesMoved', 0)}"
                f" of {task.get('ApproximateNumberOfMessagesToMove', '?')}"
                f"  started {task.get('StartedTimestamp', '?')}  {task.get('TaskHandle', '')}"
                + (f"  failure: {task['FailureReason']}" if task.get("FailureReason") else "")
            )
        return 0

    waiting = queue_depth(sqs, outputs["DeadLetterQueueUrl"])
    print(f"dead-letter queue holds about {waiting} message(s)")
    if args.copy:
        report = copy_messages(sqs, outputs["DeadLetterQueueUrl"], outputs["JobQueueUrl"], limit=args.limit)
        print(
            f"moved {report.moved} message(s) to the job queue"
            f" ({report.send_failed} not sent, {report.delete_failed} sent but not deleted)"
        )
        for error in report.errors:
            print(f"  {error}", file=sys.stderr)
        return 1 if report.send_failed or report.delete_failed else 0
    if waiting == 0:
        print("nothing to redrive")
        return 0
    handle = start_redrive(sqs, outputs["DeadLetterQueueArn"], outputs["JobQueueArn"], rate=args.rate)
    print(f"move task started: {handle}")
    print("follow it with: python -m devtools.ops redrive --status --stack-name " + args.stack_name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.ops", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    redrive = commands.add_parser("redrive", help="move the dead-letter queue's messages back to the job queue")
    redrive.add_argument("--stack-name", required=True, help="the deployed stack (sam deploy --stack-name)")
    redrive.add_argument("--region", help="the stack's region (default: your AWS configuration's)")
    mode = redrive.add_mutually_exclusive_group()
    mode.add_argument("--status", action="store_true", help="list the dead-letter queue's recent move tasks")
    mode.add_argument("--copy", action="store_true", help="move the messages here instead of by a move task")
    redrive.add_argument(
        "--rate",
        type=int,
        metavar="N",
        help="move task: at most N messages per second (SQS's default: as fast as it can)",
    )
    redrive.add_argument("--limit", type=int, metavar="N", help="--copy: move at most N messages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rate is not None and not 1 <= args.rate <= 500:
        print("--rate must be between 1 and 500 messages per second", file=sys.stderr)
        return 2
    session = boto3.session.Session(region_name=args.region)
    try:
        return _redrive(args, session)
    except OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
