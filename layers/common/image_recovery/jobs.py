"""The job message on the queue (DESIGN §4). Version it, so a future worker can tell old messages apart."""

from __future__ import annotations

from dataclasses import dataclass

from image_recovery.messages import NON_EMPTY, Message, rule
from image_recovery.models import EntityType, TravelRecord

JOB_VERSION = 1
# ids the service made (uuid hex, uuid, "sweep-<uuid>"): they name S3 objects, so nothing else is accepted
_SERVICE_ID = r"\A[A-Za-z0-9-]{1,64}\Z"


@dataclass(frozen=True, kw_only=True)
class ImageJob(Message):
    version: int = rule(int, choices=(JOB_VERSION,), default=JOB_VERSION)
    job_id: str = rule(str, pattern=_SERVICE_ID)
    batch_id: str = rule(str, pattern=_SERVICE_ID)
    pk: str = rule(str, pattern=r"\AUSER#[^#]+\Z")
    sk: str = rule(str, pattern=r"\ATRIP#")
    entity_type: EntityType = rule(str, convert=EntityType)
    record_id: str = rule(str, pattern=NON_EMPTY)
    style_id: str = rule(str, pattern=NON_EMPTY)

    @classmethod
    def for_record(cls, record: TravelRecord, *, job_id: str, batch_id: str, style_id: str) -> ImageJob:
        return cls(
            job_id=job_id,
            batch_id=batch_id,
            pk=record.pk,
            sk=record.sk,
            entity_type=record.kind,
            record_id=record.id,
            style_id=style_id,
        )

    def to_message(self) -> str:
        return self.to_json()
