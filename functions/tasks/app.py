"""Tasks entry point: the scheduled full-table repair scan (fanned out per segment) and queue-all fan-out."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from image_recovery import bootstrap
from image_recovery.config import TasksSettings
from image_recovery.observability import logger, metrics

runtime = bootstrap.tasks(TasksSettings.from_env())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return runtime.handle(event, context)
