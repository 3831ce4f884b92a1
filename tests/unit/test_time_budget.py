"""One image job's worst case, as the Bedrock client is configured, fits the worker's Lambda timeout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore import endpoint
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff, RetryContext, RetryEventAdapter, ThrottlingErrorDetector

from devtools.template_resources import load_template
from image_recovery import aws

TEMPLATE = load_template()


def worker_timeout() -> int:
    own = TEMPLATE["Resources"]["WorkerFunction"]["Properties"].get("Timeout")
    return int(own if own is not None else TEMPLATE["Globals"]["Function"]["Timeout"])


def test_one_job_fits_the_worker_timeout_with_a_quarter_of_it_to_spare() -> None:
    # the rest is the runtime's own work around the jobs (idempotency records, reporting the batch)
    assert 0.75 * worker_timeout() >= aws.JOB_BUDGET_SECONDS


def test_the_budget_holds_every_bedrock_attempt_at_its_timeouts_and_the_rest_of_the_job() -> None:
    """A quick refusal of the configured model, then the fallback model's call at its longest (without a
    fallback, the one call at its longest fits all the more)."""
    attempts = aws.BEDROCK_MAX_ATTEMPTS * (aws.BEDROCK_CONNECT_TIMEOUT_SECONDS + aws.BEDROCK_READ_TIMEOUT_SECONDS)
    assert aws.JOB_AWS_MARGIN_SECONDS >= 10
    assert (
        aws.FALLBACK_WITHIN_SECONDS + attempts + aws.BEDROCK_BACKOFF_BOUND_SECONDS + aws.JOB_AWS_MARGIN_SECONDS
        <= aws.JOB_BUDGET_SECONDS
    )


@pytest.fixture
def bedrock_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    aws.reset()
    yield aws.client("bedrock-runtime")
    aws.reset()


def test_the_bedrock_client_has_the_timeouts_the_budget_counts(bedrock_client: Any) -> None:
    config = bedrock_client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (
        aws.BEDROCK_CONNECT_TIMEOUT_SECONDS,
        aws.BEDROCK_READ_TIMEOUT_SECONDS,
    )


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._data


def test_the_bedrock_client_makes_as_many_attempts_as_the_budget_counts(
    bedrock_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bedrock throttles every HTTP attempt: the SDK gives up after BEDROCK_MAX_ATTEMPTS of them in all."""
    sent: list[str] = []

    def throttled(request: Any, **_: object) -> AWSResponse:
        sent.append(request.url)
        body = _Body(b'{"message": "Too many requests, please wait before trying again."}')
        return AWSResponse(request.url, 429, {"x-amzn-ErrorType": "ThrottlingException"}, body)

    bedrock_client.meta.events.register("before-send.bedrock-runtime.InvokeModel", throttled)
    monkeypatch.setattr(endpoint.time, "sleep", lambda _seconds: None)

    with pytest.raises(ClientError, match="ThrottlingException"):
        bedrock_client.invoke_model(modelId="stability.stable-image-core-v1:1", body=b"{}")

    assert len(sent) == aws.BEDROCK_MAX_ATTEMPTS


def test_the_sdk_waits_no_longer_between_attempts_than_the_budget_allows() -> None:
    """botocore's own delays, at their longest: a throttle, the random factor at 1, and an
    x-amz-retry-after header asking for an hour (botocore adds at most 5 s for it)."""
    backoff = ExponentialBackoff(random=lambda: 1.0, throttling_detector=ThrottlingErrorDetector(RetryEventAdapter()))
    throttled = AWSResponse("https://bedrock-runtime", 429, {"x-amz-retry-after": str(3_600_000)}, None)

    delays = [
        backoff.delay_amount(
            RetryContext(
                attempt_number=attempt,
                parsed_response={"Error": {"Code": "ThrottlingException"}},
                http_response=throttled,
            )
        )
        for attempt in range(1, aws.BEDROCK_MAX_ATTEMPTS)  # one delay before each retry
    ]

    assert len(delays) == aws.BEDROCK_MAX_ATTEMPTS - 1
    assert sum(delays) <= aws.BEDROCK_BACKOFF_BOUND_SECONDS
