"""Request and response shapes of the HTTP API as pydantic models, for its OpenAPI document (api/openapi.py).
Field names are the wire names (DESIGN §3). Requests are checked by api/validation.py, which answers as these
models do (tests/unit/test_api_validation.py); nothing on a request's path imports this module."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from image_recovery.api.validation import BATCH_ID_PATTERN, ID_PATTERN, UNUSABLE_ID
from image_recovery.models import is_valid_id


def _usable_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(UNUSABLE_ID)
    return value


class _Schema(BaseModel):
    # Validators are built on first use: a container serving GET /styles never builds QueueRequest's.
    model_config = ConfigDict(defer_build=True)


RecordId = Annotated[str, StringConstraints(pattern=ID_PATTERN), AfterValidator(_usable_id)]
StyleId = RecordId
BatchId = Annotated[str, StringConstraints(pattern=BATCH_ID_PATTERN)]
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
    confirmOverBudget: StrictBool = False  # queue beyond what the day's image budget has left
    styleId: StyleId | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> QueueRequest:
        named = bool(self.tripIds or self.segmentIds or self.reservationIds)
        if named + self.all + self.retryFailed > 1:
            raise ValueError("send ids, all=true or retryFailed=true, only one of them")
        if self.regenerate and (self.all or self.retryFailed):
            raise ValueError("regenerate=true replaces the images of named records: send ids, not all or retryFailed")
        return self


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


class RecordImage(_Schema):
    type: Literal["trip", "segment", "reservation"]
    id: str
    imageUrl: str


class ImagesResponse(_Schema):
    images: list[RecordImage]  # the named records that have an image; others are left out


class BudgetResponse(_Schema):
    dailyImages: int | None  # null: no daily image budget
    usedToday: int
    remainingToday: int | None
    estimatedCostPerImage: float | None  # null: unknown for the model
    currency: Literal["USD"]
    resetsAt: str  # the next midnight, UTC
