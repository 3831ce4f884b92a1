"""DynamoDB stream entry point: keeps the sparse MissingImages index right for every writer."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from image_recovery import bootstrap
from image_recovery.config import IndexerSettings
from image_recovery.observability import logger, metrics

indexer = bootstrap.indexer(IndexerSettings.from_env())


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return indexer.handle(event, context)
