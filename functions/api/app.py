"""HTTP API entry point: GET /missing-images, POST /image-jobs, GET /image-jobs/{batchId}, GET /styles."""

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from image_recovery import bootstrap
from image_recovery.config import ApiSettings
from image_recovery.observability import logger, metrics

api = bootstrap.api(ApiSettings.from_env())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return api.handle(event, context)
