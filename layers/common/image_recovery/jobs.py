"""The job message on the queue (DESIGN §4). Version it, so a future worker can tell old messages apart."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from image_recovery.models import EntityType, TravelRecord

JOB_VERSION = 1


class ImageJob(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore", defer_build=True
    )

    version: Literal[1] = JOB_VERSION
    # ids the service made (uuid hex, uuid, "sweep-<uuid>"): they name S3 objects, so nothing else is accepted
    job_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    batch_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    pk: str = Field(pattern=r"^USER#[^#]+$")
    sk: str = Field(pattern=r"^TRIP#")
    entity_type: EntityType
    record_id: str = Field(min_length=1)
    style_id: str = Field(min_length=1)
    # A job handed back to the queue (no Bedrock slot soon enough, or too little time left) travels on as a
    # new message, so that SQS's receive count, which dead-letters at MaxReceiveCount, counts only real
    # attempts. The new message carries what its receive count cannot: the attempts made before it, and
    # how often the job was handed back. Optional, so messages without them (and older workers) still work.
    earlier_attempts: int = Field(default=0, ge=0)
    deferrals: int = Field(default=0, ge=0)

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

    def attempt(self, receive_count: int) -> int:
        """Which attempt of the job this delivery is (1-based), across the messages it travelled in."""
        return self.earlier_attempts + receive_count

    def handed_back(self, receive_count: int) -> ImageJob:
        """The job for its next message: this delivery (`receive_count`) was not an attempt."""
        return self.model_copy(
            update={"earlier_attempts": self.attempt(receive_count) - 1, "deferrals": self.deferrals + 1}
        )

    def to_message(self) -> str:
        """The message body: a first message is exactly DESIGN §4's; the hand-back fields once they count."""
        unused = {name for name in ("earlier_attempts", "deferrals") if not getattr(self, name)}
        return self.model_dump_json(by_alias=True, exclude=unused)
