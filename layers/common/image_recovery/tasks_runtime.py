"""The tasks function's Lambda runtime: a scheduled event starts the repair scan, SQS records run tasks."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from image_recovery.batch_items import partial_batch_response, records_of, sqs_message_id
from image_recovery.tasks import TaskRunner, parse_task

# Stop taking new pages with this much time left; a page of work plus one SQS send fit in it easily.
SAFETY_MARGIN_MS = 60_000


class TasksRuntime:
    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner

    def handle(self, event: dict, context: LambdaContext) -> dict[str, Any]:
        if event.get("detail-type") == "Scheduled Event":
            return {"repairSegmentsStarted": self.runner.start_repair()}

        def run(record: dict) -> dict:
            task = parse_task(record["body"])
            return self.runner.run(task, lambda: context.get_remaining_time_in_millis() < SAFETY_MARGIN_MS)

        return partial_batch_response(records_of(event), run, sqs_message_id)
