"""Events for the host app on EventBridge: an image generated (or regenerated), a generation failed, a batch
completed. The host app subscribes with a rule on the stack's bus (docs/operations.md has a sample).

At least once, never in the way: an event is sent after the state it tells of is written, a redelivered job
may send it again, and a failure to send is logged and counted (HostEventsNotSent), never raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from image_recovery.batches import BatchProgress
from image_recovery.jobs import ImageJob
from image_recovery.observability import SERVICE, logger, metrics

SOURCE = "image-recovery"
IMAGE_GENERATED = "Image Generated"
IMAGE_FAILED = "Image Generation Failed"
BATCH_COMPLETED = "Image Batch Completed"


def _record(job: ImageJob) -> dict[str, Any]:
    return {
        "userId": job.pk.removeprefix("USER#"),
        "recordType": job.entity_type.label,
        "recordId": job.record_id,
        "keys": {"PK": job.pk, "SK": job.sk},
        "batchId": job.batch_id,
        "jobId": job.job_id,
    }


class HostEvents:
    def __init__(self, client: Callable[[], Any], bus: str) -> None:
        """`bus`: the event bus's name or ARN; empty sends nothing."""
        self._client = client
        self._bus = bus

    @property
    def enabled(self) -> bool:
        return bool(self._bus)

    def image_generated(self, job: ImageJob, image_url: str, *, regenerated: bool) -> None:
        self._put(IMAGE_GENERATED, {**_record(job), "imageUrl": image_url, "regenerated": regenerated})

    def image_failed(self, job: ImageJob, reason: str) -> None:
        self._put(IMAGE_FAILED, {**_record(job), "reason": reason})

    def batch_completed(self, owner: str, progress: BatchProgress) -> None:
        self._put(
            BATCH_COMPLETED,
            {
                "userId": owner,
                "batchId": progress.batch_id,
                "total": progress.total,
                "succeeded": progress.succeeded,
                "failed": progress.failed,
            },
        )

    def _put(self, detail_type: str, detail: dict[str, Any]) -> None:
        if not self.enabled:
            return
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps({**detail, "stack": SERVICE}),
            "EventBusName": self._bus,
        }
        try:
            answer = self._client().put_events(Entries=[entry])
            if answer.get("FailedEntryCount"):
                raise RuntimeError(f"EventBridge refused it: {answer['Entries'][0].get('ErrorMessage')}")
        except Exception as error:
            logger.warning(
                "could not send an event to the host app", extra={"detail_type": detail_type, "error": str(error)}
            )
            metrics.add_metric(name="HostEventsNotSent", unit=MetricUnit.Count, value=1)
