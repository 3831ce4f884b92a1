"""The tasks function's Lambda runtime: a scheduled event starts the repair scan, SQS records run tasks."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from image_recovery.tasks import TaskRunner, task_adapter

# Stop taking new pages with this much time left; a page of work plus one SQS send fit in it easily.
SAFETY_MARGIN_MS = 60_000


class TasksRuntime:
    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner
        self._processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def handle(self, event: dict, context: LambdaContext) -> dict[str, Any]:
        if event.get("detail-type") == "Scheduled Event":
            return {"repairSegmentsStarted": self.runner.start_repair()}

        def run(record: SQSRecord) -> dict:
            task = task_adapter().validate_json(record.body)
            return self.runner.run(task, lambda: context.get_remaining_time_in_millis() < SAFETY_MARGIN_MS)

        return process_partial_response(event=event, record_handler=run, processor=self._processor, context=context)
