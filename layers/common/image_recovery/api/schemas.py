"""Request and response shapes of the HTTP API. Field names are the wire names (DESIGN §3)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from image_recovery.models import MAX_ID_CHARS, is_valid_id

MAX_BODY_BYTES = 64 * 1024  # of the decoded body
# The id rule of image_recovery.models.is_valid_id, as far as a pattern can say it (for the OpenAPI document);
# the validator adds the rest ("." and ".." are not ids).
ID_PATTERN = rf"^[^#/\x00-\x1f\x7f-\x9f]{{1,{MAX_ID_CHARS}}}$"


def _usable_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("not a usable id: 1-128 characters without '#', '/' or control characters, not '.' or '..'")
    return value


class _Schema(BaseModel):
    # Validators are built on first use: a container serving GET /styles never builds QueueRequest's.
    model_config = ConfigDict(defer_build=True)


RecordId = Annotated[str, StringConstraints(pattern=ID_PATTERN), AfterValidator(_usable_id)]
StyleId = RecordId
BatchId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
ImageStatusName = Literal["missing", "queued", "generating", "failed", "ready"]


class QueueRequest(_Schema):
    """Ids (any of the three lists), `all: true` or `retryFailed: true`, plus an optional style; with ids,
    `regenerate: true` queues the named records even when they have an image (DESIGN §3)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    tripIds: list[RecordId] = Field(default_factory=list)
    segmentIds: list[RecordId] = Field(default_factory=list)
    reservationIds: list[RecordId] = Field(default_factory=list)
    all: StrictBool = False  # JSON booleans only: {"all": "yes"} is a 400
    retryFailed: StrictBool = False
    regenerate: StrictBool = False
    styleId: StyleId | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> QueueRequest:
        named = bool(self.tripIds or self.segmentIds or self.reservationIds)
        if named + self.all + self.retryFailed > 1:
            raise ValueError("send ids, all=true or retryFailed=true, only one of them")
        if self.regenerate and (self.all or self.retryFailed):
            raise ValueError("regenerate=true replaces the images of named records: send ids, not all or retryFailed")
        return self

    @property
    def selection(self) -> str:
        return "all" if self.all else "failed" if self.retryFailed else "ids"

    @property
    def requested(self) -> list[tuple[str, str]]:
        """(type label, id) pairs in request order, duplicates dropped."""
        pairs = [
            *(("trip", i) for i in self.tripIds),
            *(("segment", i) for i in self.segmentIds),
            *(("reservation", i) for i in self.reservationIds),
        ]
        return list(dict.fromkeys(pairs))


class _Missing(_Schema):
    id: str
    createdAt: str | None
    imageStatus: ImageStatusName
    imageError: str | None = None
    imageUpdatedAt: str | None = None


class MissingTrip(_Missing):
    title: str | None
    startDate: str | None = None
    endDate: str | None = None
    destination: str | None = None


class MissingSegment(_Missing):
    name: str | None
    tripId: str | None
    tripTitle: str | None
    startLocation: str | None = None
    endLocation: str | None = None


class MissingReservation(_Missing):
    name: str | None
    tripId: str | None
    tripTitle: str | None
    segmentId: str | None
    segmentName: str | None
    type: str | None = None
    location: str | None = None
    startTime: str | None = None


class MissingImagesResponse(_Schema):
    count: int  # all of the user's missing records, not only this page's
    trips: list[MissingTrip]
    segments: list[MissingSegment]
    reservations: list[MissingReservation]
    nextCursor: str | None = None  # pass as ?cursor= for the next page; null on the last page


class TypeSummary(_Schema):
    queued: int = 0
    skipped: int = 0
    failed: int = 0


class ItemResult(_Schema):
    type: Literal["trip", "segment", "reservation"]
    id: str
    outcome: Literal["queued", "skipped", "failed"]
    reason: str | None = None


class QueueSummary(_Schema):
    trips: TypeSummary = Field(default_factory=TypeSummary)
    segments: TypeSummary = Field(default_factory=TypeSummary)
    reservations: TypeSummary = Field(default_factory=TypeSummary)


class QueueResponse(_Schema):
    batchId: str
    styleId: str
    complete: bool  # false: a fan-out task is still queueing the rest (follow GET /image-jobs/{batchId})
    summary: QueueSummary
    items: list[ItemResult]


class BatchProgressResponse(_Schema):
    batchId: str
    total: int
    queued: int
    generating: int
    succeeded: int
    failed: int
    complete: bool


class StyleOut(_Schema):
    id: str
    name: str
    description: str
    isDefault: bool


class StylesResponse(_Schema):
    styles: list[StyleOut]
