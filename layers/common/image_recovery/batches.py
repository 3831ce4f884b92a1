"""Bulk-request progress. Counters move with atomic ADDs after each record state change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from image_recovery.models import ImageBatch
from image_recovery.repository import utc_now

BATCH_RETENTION = timedelta(days=30)


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

    def started(self, batch_id: str) -> None:
        ImageBatch(batch_id).update(actions=[ImageBatch.generating.add(1)])

    def restarted(self, batch_id: str) -> None:
        """A failed job came back from the dead-letter queue and is generating again."""
        ImageBatch(batch_id).update(actions=[ImageBatch.failed.add(-1), ImageBatch.generating.add(1)])

    def finished(self, batch_id: str, *, succeeded: bool, was_generating: bool) -> None:
        actions = [(ImageBatch.succeeded if succeeded else ImageBatch.failed).add(1)]
        if was_generating:
            actions.append(ImageBatch.generating.add(-1))
        ImageBatch(batch_id).update(actions=actions)
