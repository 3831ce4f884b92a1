"""Bulk-request progress, counted exactly once per job.

Each job has a small ledger row in the batch table (`job#<jobId>`, absent while the job is queued) that
holds its state. A job moves — queued → generating → succeeded | failed, and failed → generating when a
dead letter is redriven — in one transaction that changes the ledger row on the condition that it still
holds the state just read, together with its batch's counters. So a job is counted once whoever ends it
(the worker, a redelivery, the sweep taking over a stuck record) and whatever happened to its record
(deleted meanwhile: the ledger still knows whether it was generating). Progress always ends (DESIGN §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from image_recovery.models import ImageBatch, JobLedger
from image_recovery.repository import conditional_update, utc_now

BATCH_RETENTION = timedelta(days=30)
_CONDITION_FAILED = "ConditionalCheckFailed"
_MOVE_ATTEMPTS = 5


class JobState(StrEnum):
    QUEUED = "queued"  # no ledger row yet
    GENERATING = "generating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_ALLOWED_FROM: dict[JobState, frozenset[JobState]] = {
    JobState.GENERATING: frozenset({JobState.QUEUED, JobState.FAILED}),  # FAILED: a redriven dead letter
    JobState.SUCCEEDED: frozenset({JobState.QUEUED, JobState.GENERATING}),
    JobState.FAILED: frozenset({JobState.QUEUED, JobState.GENERATING}),
}
_COUNTERS = {
    JobState.GENERATING: ImageBatch.generating,
    JobState.SUCCEEDED: ImageBatch.succeeded,
    JobState.FAILED: ImageBatch.failed,
}


def ledger_key(job_id: str) -> str:
    """Batch ids never hold "#", so no ledger key can be a batch's."""
    return f"job#{job_id}"


@dataclass(frozen=True)
class BatchProgress:
    batch_id: str
    total: int
    queued: int
    generating: int
    succeeded: int
    failed: int
    complete: bool

    @classmethod
    def of(cls, batch: ImageBatch) -> BatchProgress:
        total, generating = int(batch.total or 0), max(int(batch.generating or 0), 0)
        succeeded, failed = int(batch.succeeded or 0), int(batch.failed or 0)
        return cls(
            batch_id=batch.batch_id,
            total=total,
            queued=max(total - generating - succeeded - failed, 0),
            generating=generating,
            succeeded=succeeded,
            failed=failed,
            complete=batch.complete is not False,
        )


class BatchRepository:
    def create(self, batch_id: str, *, owner: str, style_id: str) -> None:
        ImageBatch(batch_id, user_id=owner, created_at=utc_now(), style_id=style_id, expires_at=BATCH_RETENTION).save(
            condition=ImageBatch.batch_id.does_not_exist()
        )

    def get(self, batch_id: str) -> ImageBatch | None:
        try:
            return ImageBatch.get(batch_id, consistent_read=True)
        except ImageBatch.DoesNotExist:
            return None

    def mark_pending(self, batch_id: str) -> None:
        ImageBatch(batch_id).update(actions=[ImageBatch.complete.set(False)])

    def mark_complete(self, batch_id: str) -> None:
        ImageBatch(batch_id).update(actions=[ImageBatch.complete.set(True)])

    def add_queued(self, batch_id: str, count: int) -> None:
        if count:
            ImageBatch(batch_id).update(actions=[ImageBatch.total.add(count)])

    def finish(self, batch_id: str) -> tuple[str, BatchProgress] | None:
        """If every job of a person's batch has ended (and no fan-out is still adding to it), mark the batch
        finished: (owner, progress) for the one caller whose conditional write did it, None for everyone else.
        The service's own batches (the sweep's, owners with "#") are never announced."""
        batch = self.get(batch_id)
        if batch is None or batch.finished_at or batch.user_id.startswith("#"):
            return None
        progress = BatchProgress.of(batch)
        if not progress.complete or progress.queued or progress.generating:
            return None
        if not conditional_update(
            ImageBatch(batch_id), [ImageBatch.finished_at.set(utc_now())], ImageBatch.finished_at.does_not_exist()
        ):
            return None
        return batch.user_id, progress

    def job_state(self, job_id: str) -> JobState:
        try:
            row = JobLedger.get(ledger_key(job_id), consistent_read=True)
        except JobLedger.DoesNotExist:
            return JobState.QUEUED
        return JobState(row.state) if row.state in JobState.__members__.values() else JobState.QUEUED

    def move(self, batch_id: str, job_id: str, to: JobState) -> bool:
        """Move one job of the batch to `to`, with the batch's counters, if its current state allows it.

        False when it does not (already there, or already ended), or when the batch does not exist (expired, or
        named by a record from another stack's table): no counter ever creates a batch row. Calling again is
        harmless, so every path that sees a job end may call it. A concurrent move of the same job makes the
        transaction's condition fail; the state is then read again.
        """
        for _ in range(_MOVE_ATTEMPTS):
            current = self.job_state(job_id)
            if current not in _ALLOWED_FROM[to]:
                return False
            row = JobLedger(ledger_key(job_id))
            was = JobLedger.state.does_not_exist() if current == JobState.QUEUED else JobLedger.state == current.value
            counters = [_COUNTERS[to].add(1)]
            if current != JobState.QUEUED:
                counters.append(_COUNTERS[current].add(-1))
            try:
                # The SDK gives the request an idempotency token, so a re-sent transaction is applied once.
                with TransactWrite(connection=ImageBatch._get_connection().connection) as transaction:
                    transaction.update(
                        row,
                        actions=[
                            JobLedger.state.set(to.value),
                            JobLedger.job_batch_id.set(batch_id),
                            JobLedger.expires_at.set(BATCH_RETENTION),
                        ],
                        condition=was,
                    )
                    transaction.update(ImageBatch(batch_id), actions=counters, condition=ImageBatch.batch_id.exists())
            except TransactWriteError as error:
                reasons = (
                    error.cancellation_reasons if error.cause_response_code == "TransactionCanceledException" else []
                )
                ledger, batch = [*reasons, None, None][:2]
                if batch is not None and batch.code == _CONDITION_FAILED:
                    return False  # no such batch: nothing to count
                if ledger is not None and ledger.code == _CONDITION_FAILED:
                    continue  # another delivery moved it first: look again
                raise
            return True
        return False
