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
        return self.model_dump_json(by_alias=True)
