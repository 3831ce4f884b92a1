"""Once a day, the sweep asks Bedrock where the worker's models stand in their lifecycle.

Bedrock marks a model LEGACY months before its end of life (GetFoundationModel's `modelLifecycle`); from then
on the ModelLegacy metric is 1 and ModelLegacyAlarm tells the operator to move to an active model while the
old one still draws (docs/operations.md). A model the region does not know counts in ModelUnavailable, whose
alarm the worker's refusals raise too. A cross-region inference profile is checked as its foundation model.

The first sweep of each UTC day (or the first after the models changed) wins a conditional write in the
batch table and asks; the others skip, so a schedule of every few minutes still asks Bedrock once a day.
Nothing here may fail or hold up the sweep: every error is logged, and the day is not asked again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from image_recovery.models import ServiceState
from image_recovery.observability import logger, metrics
from image_recovery.providers.bedrock import base_model_id
from image_recovery.repository import conditional_update

LIFECYCLE_KEY = "service#model-lifecycle"  # its row in the batch table (no batch id has a "#")
LEGACY = "LEGACY"
# GetFoundationModel's answers for a model id the region does not serve
_UNKNOWN_MODEL = frozenset({"ResourceNotFoundException", "ValidationException"})


def _utc_today() -> date:
    return datetime.now(UTC).date()


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


class ModelLifecycle:
    """`client` is a zero-argument callable returning the Bedrock control-plane client (`bedrock`) of the
    region the worker calls; `model_ids` are the worker's models as configured (primary, then fallback)."""

    def __init__(
        self, client: Callable[[], Any], model_ids: Sequence[str], today: Callable[[], date] = _utc_today
    ) -> None:
        self._client = client
        self._model_ids = tuple(model_ids)
        self._today = today

    def check_daily(self) -> None:
        """Check each model, if no sweep has today. Never raises."""
        try:
            if self._first_today():
                statuses = [status for model_id in self._model_ids if (status := self._status(model_id)) is not None]
                if statuses:
                    metrics.add_metric(name="ModelLegacy", unit=MetricUnit.Count, value=int(LEGACY in statuses))
        except Exception:
            logger.exception("the model lifecycle check failed; the sweep goes on")

    def _first_today(self) -> bool:
        """Claim today's check for these models: True for the one sweep that wins it."""
        checked = " ".join([self._today().isoformat(), *self._model_ids])
        return conditional_update(
            ServiceState(LIFECYCLE_KEY),
            [ServiceState.lifecycle_checked.set(checked)],
            ServiceState.lifecycle_checked.does_not_exist() | (ServiceState.lifecycle_checked != checked),
        )

    def _status(self, model_id: str) -> str | None:
        """The model's lifecycle status (ACTIVE, LEGACY), or None when Bedrock did not say."""
        foundation = base_model_id(model_id)
        try:
            details = self._client().get_foundation_model(modelIdentifier=foundation)["modelDetails"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _UNKNOWN_MODEL:
                logger.warning(
                    "Bedrock does not know the configured model in this region: jobs will fail with model_unavailable",
                    extra={"model_id": model_id, "detail": f"{code}: {error.response['Error'].get('Message', '')}"},
                )
                metrics.add_metric(name="ModelUnavailable", unit=MetricUnit.Count, value=1)
            else:
                logger.warning("could not check the model's lifecycle", extra={"model_id": model_id, "code": code})
            return None
        except Exception:
            logger.exception("could not check the model's lifecycle", extra={"model_id": model_id})
            return None
        lifecycle = details.get("modelLifecycle") or {}
        status = lifecycle.get("status")
        if status == LEGACY:
            logger.warning(
                "the configured Bedrock model is LEGACY: move to an active model before its end of life "
                "(docs/operations.md, ModelLegacyAlarm)",
                extra={
                    "model_id": model_id,
                    "legacy_since": _iso(lifecycle.get("legacyTime")),
                    "end_of_life": _iso(lifecycle.get("endOfLifeTime")),
                },
            )
        return status
