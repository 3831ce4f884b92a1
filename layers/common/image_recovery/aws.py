"""boto3 clients, created on first use and kept for the life of the container.

Lazy creation lets tests start moto before any client exists; caching keeps warm invocations cheap.
Endpoints follow the standard AWS_ENDPOINT_URL variables, which is how the local run reaches moto.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# One image per InvokeModel call. Bedrock answers the text-to-image models in seconds; a call that has
# not answered in 45 s is abandoned, and the SDK tries once more (the worker's own retries, spaced out by
# the queue, take over after that).
BEDROCK_CONNECT_TIMEOUT_SECONDS = 5
BEDROCK_READ_TIMEOUT_SECONDS = 45
BEDROCK_MAX_ATTEMPTS = 2
# The SDK's standard retry mode waits before retry i (0-based) at most min(2**i, 20) s (throttling; other
# errors much less), plus up to 5 s more when the answer carries x-amz-retry-after
# (botocore/retries/standard.py, ExponentialBackoff).
BEDROCK_BACKOFF_BOUND_SECONDS = sum(min(2**retry, 20) + 5 for retry in range(BEDROCK_MAX_ATTEMPTS - 1))
# One InvokeModel through the SDK, at its longest: every attempt at its timeouts and the backoff between them.
BEDROCK_CALL_BOUND_SECONDS = (
    BEDROCK_MAX_ATTEMPTS * (BEDROCK_CONNECT_TIMEOUT_SECONDS + BEDROCK_READ_TIMEOUT_SECONDS)
    + BEDROCK_BACKOFF_BOUND_SECONDS
)
# A job asks the fallback model (FallbackModelId) only when the primary refused within this long. A refusal
# (ended, not served, access denied) is an immediate answer, so this costs nothing real; it bounds the job.
FALLBACK_WITHIN_SECONDS = 10
# The rest of a job: about ten DynamoDB and S3 calls (read the record and its parents, claim it, store
# the image, write it back, count the batch, the idempotency record), each normally well under a second.
JOB_AWS_MARGIN_SECONDS = 15
# Longest one image job can take: a quick refusal of the primary, one whole model call, and the rest. The
# worker's Lambda timeout must hold it with room to spare (tests/unit/test_time_budget.py), and a worker can
# stop taking jobs once its remaining time cannot.
JOB_BUDGET_SECONDS = FALLBACK_WITHIN_SECONDS + BEDROCK_CALL_BOUND_SECONDS + JOB_AWS_MARGIN_SECONDS

_CLIENT_CONFIG = {
    "bedrock-runtime": Config(
        connect_timeout=BEDROCK_CONNECT_TIMEOUT_SECONDS,
        read_timeout=BEDROCK_READ_TIMEOUT_SECONDS,
        # total_max_attempts counts the first attempt; botocore's max_attempts would count retries only
        retries={"mode": "standard", "total_max_attempts": BEDROCK_MAX_ATTEMPTS},
    ),
    # Bedrock's control plane, asked once a day by the sweep (image_recovery.model_lifecycle), which must not
    # be held up by it
    "bedrock": Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 2}),
}
_DEFAULT_CONFIG = Config(retries={"mode": "standard"})


def client(service: str, region: str | None = None) -> Any:
    """The container's client for `service` in `region`; by default the function's own region.

    The worker calls Bedrock where the model is served (BEDROCK_REGION), which may not be its own."""
    # Lambda sets AWS_REGION; boto3 itself only reads AWS_DEFAULT_REGION.
    return _client(service, region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))


@cache
def _client(service: str, region: str | None) -> Any:
    config = _CLIENT_CONFIG.get(service, _DEFAULT_CONFIG)
    return boto3.session.Session().client(service, region_name=region, config=config)


def reset() -> None:
    """Forget every cached client (tests call this between moto sessions)."""
    _client.cache_clear()
