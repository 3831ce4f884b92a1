"""The job message on the queue (DESIGN §4). Version it, so a future worker can tell old messages apart."""

from __future__ import annotations

import dataclasses
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
    # A job handed back to the queue (no Bedrock slot soon enough, or too little time left) travels on as a
    # new message, so that SQS's receive count, which dead-letters at MaxReceiveCount, counts only real
    # attempts. The new message carries what its receive count cannot: the attempts made before it, and
    # how often the job was handed back. Optional, so messages without them (and older workers) still work.
    earlier_attempts: int = rule(int, minimum=0, default=0)
    deferrals: int = rule(int, minimum=0, default=0)
    # the id of the request that queued it (API Gateway's request id), so one record can be followed through
    # the API's and the worker's logs; empty for the sweep's jobs
    correlation_id: str = rule(str, pattern=r"\A[\x21-\x7e]{0,128}\Z", default="")

    @classmethod
    def for_record(
        cls, record: TravelRecord, *, job_id: str, batch_id: str, style_id: str, correlation_id: str = ""
    ) -> ImageJob:
        return cls(
            job_id=job_id,
            batch_id=batch_id,
            pk=record.pk,
            sk=record.sk,
            entity_type=record.kind,
            record_id=record.id,
            style_id=style_id,
            correlation_id=correlation_id,
        )

    def attempt(self, receive_count: int) -> int:
        """Which attempt of the job this delivery is (1-based), across the messages it travelled in."""
        return self.earlier_attempts + receive_count

    def handed_back(self, receive_count: int) -> ImageJob:
        """The job for its next message: this delivery (`receive_count`) was not an attempt."""
        return dataclasses.replace(self, earlier_attempts=self.attempt(receive_count) - 1, deferrals=self.deferrals + 1)

    def to_message(self) -> str:
        """The message body: DESIGN §4's fields, and the optional ones only when they say something."""
        return self.to_json(omit_defaults=("earlier_attempts", "deferrals", "correlation_id"))
