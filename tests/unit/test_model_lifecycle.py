"""The daily model lifecycle check: GetFoundationModel as botocore's model documents it (a Stubber checks
every request and answer against it), the once-a-day bookkeeping on moto's DynamoDB."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from devtools.template_resources import LocalStack
from image_recovery.model_lifecycle import ModelLifecycle
from image_recovery.observability import metrics

SD35 = "stability.sd3-5-large-v1:0"
CORE = "stability.stable-image-core-v1:1"
MONDAY, TUESDAY = date(2026, 3, 2), date(2026, 3, 3)


def details(model_id: str, status: str) -> dict:
    """A GetFoundationModel answer, with the members the response shape requires."""
    lifecycle: dict[str, Any] = {"status": status}
    if status == "LEGACY":
        lifecycle |= {"legacyTime": datetime(2026, 3, 1, tzinfo=UTC), "endOfLifeTime": datetime(2026, 9, 1, tzinfo=UTC)}
    return {
        "modelDetails": {
            "modelArn": f"arn:aws:bedrock:us-west-2::foundation-model/{model_id}",
            "modelId": model_id,
            "modelLifecycle": lifecycle,
        }
    }


class Bedrock:
    """A real `bedrock` client behind a Stubber; `asked` lists the model ids it was asked about."""

    def __init__(self) -> None:
        self.client = boto3.client("bedrock", region_name="us-west-2")
        self.stubber = Stubber(self.client)
        self.asked: list[str] = []
        self.client.meta.events.register(
            "before-parameter-build.bedrock.GetFoundationModel",
            lambda params, **_: self.asked.append(params["modelIdentifier"]),
        )
        self.stubber.activate()

    def answer(self, model_id: str, status: str) -> None:
        self.stubber.add_response("get_foundation_model", details(model_id, status), {"modelIdentifier": model_id})

    def refuse(self, model_id: str, code: str, status: int = 400) -> None:
        self.stubber.add_client_error(
            "get_foundation_model", code, "nope", http_status_code=status, expected_params={"modelIdentifier": model_id}
        )


@pytest.fixture
def bedrock(tables: LocalStack) -> Bedrock:
    return Bedrock()


def check(bedrock: Bedrock, *models: str, today: date = MONDAY) -> None:
    ModelLifecycle(lambda: bedrock.client, models, today=lambda: today).check_daily()


def emitted(name: str) -> list[float]:
    return list(metrics.metric_set.get(name, {}).get("Value", []))


def test_a_legacy_model_raises_the_metric_and_names_itself(bedrock: Bedrock, caplog: pytest.LogCaptureFixture) -> None:
    """The primary is an inference profile (checked as its foundation model) that is LEGACY; the fallback is fine."""
    bedrock.answer(SD35, "LEGACY")
    bedrock.answer(CORE, "ACTIVE")

    check(bedrock, f"us.{SD35}", CORE)

    bedrock.stubber.assert_no_pending_responses()
    assert emitted("ModelLegacy") == [1.0]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "LEGACY" in warning.getMessage()
    assert (warning.model_id, warning.end_of_life) == (f"us.{SD35}", "2026-09-01T00:00:00+00:00")


def test_active_models_report_zero(bedrock: Bedrock) -> None:
    bedrock.answer(CORE, "ACTIVE")
    check(bedrock, CORE)
    assert emitted("ModelLegacy") == [0.0]


def test_bedrock_is_asked_once_a_day_and_again_when_the_models_change(bedrock: Bedrock) -> None:
    bedrock.answer(CORE, "ACTIVE")
    check(bedrock, CORE)
    check(bedrock, CORE)  # the next sweep of the day: no call (the stubber has no answer for one)
    assert bedrock.asked == [CORE]

    bedrock.answer(SD35, "ACTIVE")
    check(bedrock, SD35)  # redeployed with another model: checked the same day
    bedrock.answer(SD35, "ACTIVE")
    check(bedrock, SD35, today=TUESDAY)
    check(bedrock, SD35, today=TUESDAY)

    assert bedrock.asked == [CORE, SD35, SD35]
    bedrock.stubber.assert_no_pending_responses()


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "ValidationException"])
def test_a_model_the_region_does_not_know_counts_as_unavailable(
    bedrock: Bedrock, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    bedrock.refuse(CORE, code, 404 if code == "ResourceNotFoundException" else 400)

    check(bedrock, CORE)

    assert emitted("ModelUnavailable") == [1.0]
    assert emitted("ModelLegacy") == []  # nothing known about its lifecycle
    assert any(getattr(r, "model_id", None) == CORE for r in caplog.records if r.levelno == logging.WARNING)


@pytest.mark.parametrize("failure", ["throttled", "not a client error", "the table"])
def test_the_check_never_fails_the_sweep(bedrock: Bedrock, failure: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if failure == "throttled":
        bedrock.refuse(CORE, "ThrottlingException", 429)
    elif failure == "not a client error":
        monkeypatch.setattr(bedrock.client, "get_foundation_model", lambda **_: 1 / 0)
    else:
        monkeypatch.setattr("image_recovery.model_lifecycle.conditional_update", lambda *_: 1 / 0)

    check(bedrock, CORE)  # does not raise

    assert emitted("ModelLegacy") == emitted("ModelUnavailable") == []
