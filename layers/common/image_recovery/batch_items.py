"""Partial batch responses for SQS and DynamoDB stream events: Lambda retries exactly the records that failed.

A dozen lines of our own instead of Powertools' batch utility, whose import brings asyncio, the data classes of
every event source and the parser's pydantic models: about 60 ms of every cold start (docs/benchmark.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from image_recovery.observability import logger


def partial_batch_response(
    records: Iterable[dict], handle: Callable[[dict], Any], identifier: Callable[[dict], Any]
) -> dict[str, list[dict]]:
    """Handle each record in turn; a record whose handling raises is reported (`identifier` names it) and
    the others go on. Every failure is reported item by item, even when all fail, so the Errors metric
    means a crash of the function, not a failed record.

    Every failure leaves a log line naming the record and the error, so that a message that is not a job,
    a task that raises or a retried delivery can be found by its id; the traceback comes with it unless the
    exception says it is an expected way for a record to come back (`expected = True`: a retry, a hand-back).
    """
    failures = []
    for record in records:
        try:
            handle(record)
        except Exception as error:
            logger.warning(
                "record not done: it comes back",
                extra={"record": identifier(record), "error": f"{type(error).__name__}: {error}"},
                exc_info=not getattr(error, "expected", False),
            )
            failures.append({"itemIdentifier": identifier(record)})
    return {"batchItemFailures": failures}


def records_of(event: dict) -> list[dict]:
    """The event's records; an event without a list of them is not a batch event at all."""
    records = event.get("Records", [])
    if not isinstance(records, list):
        raise ValueError("not a batch event: Records is not a list")
    return records


def sqs_message_id(record: dict) -> Any:
    return record.get("messageId")


def stream_sequence_number(record: dict) -> Any:
    return (record.get("dynamodb") or {}).get("SequenceNumber")
