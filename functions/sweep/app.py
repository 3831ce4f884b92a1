"""Scheduled sweep entry point (EventBridge): queues whatever is still missing its image."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from image_recovery import bootstrap
from image_recovery.config import SweepSettings
from image_recovery.observability import logger, metrics

sweeper = bootstrap.sweeper(SweepSettings.from_env())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # leave a minute to queue what was found when a full-table scan runs long
    return sweeper.run(lambda: context.get_remaining_time_in_millis() < 60_000).as_dict()
