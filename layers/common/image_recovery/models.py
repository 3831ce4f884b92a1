"""pynamodb models for the travel table (DESIGN §2) and the service's own batch table.

Models are declared unbound and pointed at real tables by `bind()` once per container, so that the
table names come from configuration and tests can bind them to moto tables.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pynamodb.attributes import (
    BooleanAttribute,
    DiscriminatorAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model


class EntityType(StrEnum):
    TRIP = "TRIP"
    SEGMENT = "SEGMENT"
    RESERVATION = "RESERVATION"

    @property
    def label(self) -> str:
        """The lower-case name used on the wire: "trip", "segment", "reservation"."""
        return self.value.lower()

    @property
    def plural(self) -> str:
        return f"{self.label}s"


class ImageStatus(StrEnum):
    MISSING = "missing"
    QUEUED = "queued"
    GENERATING = "generating"
    READY = "ready"
    FAILED = "failed"


IN_FLIGHT = (ImageStatus.QUEUED, ImageStatus.GENERATING)


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


MAX_ID_CHARS = 128


def _plain_text(value: str) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)  # Cs: a lone surrogate


MAX_USER_ID_CHARS = 255  # OpenID Connect: a `sub` is at most 255 ASCII characters


def is_valid_user_id(value: object) -> bool:
    """A user id (the JWT `sub`) the service can key records by: 1-255 characters without `#` (the key
    separator) or control characters. Anything else a `sub` holds is fine ("auth0|…", "a/b", ".")."""
    return isinstance(value, str) and 0 < len(value) <= MAX_USER_ID_CHARS and "#" not in value and _plain_text(value)


def is_valid_id(value: object) -> bool:
    """An id the service can address: 1-128 characters, no `#` (key separator), no `/` (path separator), no
    control characters or lone surrogates, and not "." or ".." (which URLs treat as path steps). Record, style
    and user ids follow the same rule, so anything listed can also be named in a request."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_CHARS
        and value not in (".", "..")
        and "#" not in value
        and "/" not in value
        and _plain_text(value)
    )


@dataclass(frozen=True)
class KeyPath:
    """What a record's keys say: its owner, its kind and the ids from the trip down to itself."""

    user_id: str
    kind: EntityType
    ids: tuple[str, ...]  # (trip,), (trip, segment) or (trip, segment, reservation)

    @property
    def record_id(self) -> str:
        return self.ids[-1]

    @property
    def trip_id(self) -> str:
        return self.ids[0]

    @property
    def segment_id(self) -> str | None:
        return self.ids[1] if len(self.ids) > 1 else None


_SK_LABELS: dict[EntityType, tuple[str, ...]] = {
    EntityType.TRIP: ("TRIP",),
    EntityType.SEGMENT: ("TRIP", "SEGMENT"),
    EntityType.RESERVATION: ("TRIP", "SEGMENT", "RESERVATION"),
}


def parse_key_path(pk: str, sk: str, kind: EntityType) -> KeyPath | None:
    """The KeyPath of a record of `kind`, or None when its keys do not have that kind's shape (DESIGN §2)."""
    user_id = pk.removeprefix("USER#")
    if user_id == pk or not is_valid_user_id(user_id):
        return None
    parts = sk.split("#")
    labels = _SK_LABELS[kind]
    if len(parts) != 2 * len(labels) or tuple(parts[0::2]) != labels:
        return None
    ids = tuple(parts[1::2])
    return KeyPath(user_id, kind, ids) if all(is_valid_id(i) for i in ids) else None


def created_at_order(created_at: str | None) -> str:
    """`createdAt` as a string that sorts in time order: parsed as ISO-8601, offsets applied, a value without
    an offset taken as UTC, written with microseconds and "Z". Anything unparsable is "" and sorts oldest."""
    if not created_at:
        return ""
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # a year-1 or year-9999 value pushed past the calendar by its offset
        return ""
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


MISSING_INDEX_NAME = "MissingImages"


class MissingImageIndex(GlobalSecondaryIndex):
    """Sparse index: a record is in it exactly while its image is missing (DESIGN §2 leaves the helper
    attributes to us). Partition = the owner's PK, sort = createdAt#SK, so a user's missing records come
    back newest first and the sweep's scan reads only missing records."""

    class Meta:
        index_name = MISSING_INDEX_NAME
        projection = AllProjection()

    owner = UnicodeAttribute(hash_key=True, attr_name="imageMissingOwner")
    sort = UnicodeAttribute(range_key=True, attr_name="imageMissingSort")


def missing_index_values(pk: str, sk: str, created_at: str | None) -> tuple[str, str]:
    """(owner, sort) of a record in the sparse index: newest first is descending `sort`."""
    return pk, f"{created_at_order(created_at)}#{sk}"


class TravelRecord(Model):
    """A trip, segment or reservation. `entityType` picks the subclass on read."""

    class Meta:
        table_name = "unbound-travel-table"

    pk = UnicodeAttribute(hash_key=True, attr_name="PK")
    sk = UnicodeAttribute(range_key=True, attr_name="SK")
    entity_type = DiscriminatorAttribute(attr_name="entityType")
    id = UnicodeAttribute()
    user_id = UnicodeAttribute(attr_name="userId")
    created_at = UnicodeAttribute(attr_name="createdAt", null=True)

    image_url = UnicodeAttribute(attr_name="imageUrl", null=True)
    image_status = UnicodeAttribute(attr_name="imageStatus", null=True)
    image_job_id = UnicodeAttribute(attr_name="imageJobId", null=True)
    image_batch_id = UnicodeAttribute(attr_name="imageBatchId", null=True)
    image_style_id = UnicodeAttribute(attr_name="imageStyleId", null=True)
    image_error = UnicodeAttribute(attr_name="imageError", null=True)
    image_error_detail = UnicodeAttribute(attr_name="imageErrorDetail", null=True)
    image_key = UnicodeAttribute(attr_name="imageKey", null=True)
    image_attempts = NumberAttribute(attr_name="imageAttempts", null=True)
    # times a job of this record ended failed: bounds the sweep's automatic retries of transient failures
    image_failures = NumberAttribute(attr_name="imageFailures", null=True)
    image_queued_at = UnicodeAttribute(attr_name="imageQueuedAt", null=True)
    image_updated_at = UnicodeAttribute(attr_name="imageUpdatedAt", null=True)
    image_missing_owner = UnicodeAttribute(attr_name="imageMissingOwner", null=True)
    image_missing_sort = UnicodeAttribute(attr_name="imageMissingSort", null=True)
    # a regeneration on request: the imageUrl it replaces, kept until the new image is written back
    image_replaces = UnicodeAttribute(attr_name="imageReplaces", null=True)

    missing_images = MissingImageIndex()

    @property
    def owner_id(self) -> str:
        """The user the record belongs to, from its key (the key, not `userId`, decides ownership)."""
        return self.pk.removeprefix("USER#")

    kind: EntityType  # set on each subclass

    @property
    def key_path(self) -> KeyPath:
        """The ids its keys name. Records are parsed (image_recovery.records) before use, so the keys fit."""
        path = parse_key_path(self.pk, self.sk, self.kind)
        if path is None:
            raise ValueError(f"{self.kind.value} keys do not have the contract's shape: {self.pk} / {self.sk}")
        return path

    @property
    def missing_sort(self) -> str:
        """Its position in the newest-first order of missing images (the sparse index's sort key)."""
        return missing_index_values(self.pk, self.sk, self.created_at)[1]

    @property
    def image_missing(self) -> bool:
        """DESIGN §2: absent, NULL (read as None) and "" all mean missing."""
        return not self.image_url

    @property
    def regenerating(self) -> bool:
        """A regeneration was asked for and the image it replaces is still the record's."""
        return bool(self.image_replaces) and self.image_url == self.image_replaces

    @property
    def wants_image(self) -> bool:
        """A job may write an image here: none is set, or the one set is the one a regeneration replaces."""
        return self.image_missing or self.regenerating

    @property
    def effective_status(self) -> ImageStatus:
        """The state a user sees: a record with an image is ready whatever else it says."""
        if not self.image_missing:
            return ImageStatus.READY
        if self.image_status in (ImageStatus.QUEUED, ImageStatus.GENERATING, ImageStatus.FAILED):
            return ImageStatus(self.image_status)
        return ImageStatus.MISSING

    @property
    def display_name(self) -> str:
        raise NotImplementedError


def is_failed(record: TravelRecord) -> bool:
    return record.effective_status == ImageStatus.FAILED


class Trip(TravelRecord, discriminator=EntityType.TRIP.value):
    kind = EntityType.TRIP
    title = UnicodeAttribute(null=True)
    start_date = UnicodeAttribute(attr_name="startDate", null=True)
    end_date = UnicodeAttribute(attr_name="endDate", null=True)
    destination = UnicodeAttribute(null=True)

    @property
    def display_name(self) -> str:
        return self.title or ""

    @staticmethod
    def sort_key(trip_id: str) -> str:
        return f"TRIP#{trip_id}"


class Segment(TravelRecord, discriminator=EntityType.SEGMENT.value):
    kind = EntityType.SEGMENT
    trip_id = UnicodeAttribute(attr_name="tripId", null=True)
    name = UnicodeAttribute(null=True)
    start_location = UnicodeAttribute(attr_name="startLocation", null=True)
    end_location = UnicodeAttribute(attr_name="endLocation", null=True)

    @property
    def display_name(self) -> str:
        return self.name or ""

    @staticmethod
    def sort_key(trip_id: str, segment_id: str) -> str:
        return f"TRIP#{trip_id}#SEGMENT#{segment_id}"


class Reservation(TravelRecord, discriminator=EntityType.RESERVATION.value):
    kind = EntityType.RESERVATION
    trip_id = UnicodeAttribute(attr_name="tripId", null=True)
    segment_id = UnicodeAttribute(attr_name="segmentId", null=True)
    name = UnicodeAttribute(null=True)
    reservation_type = UnicodeAttribute(attr_name="type", null=True)
    location = UnicodeAttribute(null=True)
    start_time = UnicodeAttribute(attr_name="startTime", null=True)

    @property
    def display_name(self) -> str:
        return self.name or ""

    @staticmethod
    def sort_key(trip_id: str, segment_id: str, reservation_id: str) -> str:
        return f"TRIP#{trip_id}#SEGMENT#{segment_id}#RESERVATION#{reservation_id}"


class PromptStyleRecord(Model):
    """A prompt style row (PK "STYLE"), the ImagePromptStyle of the original app."""

    class Meta:
        table_name = "unbound-travel-table"

    pk = UnicodeAttribute(hash_key=True, attr_name="PK")
    sk = UnicodeAttribute(range_key=True, attr_name="SK")
    entity_type = UnicodeAttribute(attr_name="entityType", null=True)
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    prompt_template = UnicodeAttribute(attr_name="promptTemplate")
    description = UnicodeAttribute(null=True)
    negative_prompt = UnicodeAttribute(attr_name="negativePrompt", null=True)
    is_default = BooleanAttribute(attr_name="isDefault", default=False)


class ImageBatch(Model):
    """Progress of one queueing request; counters move as the worker changes record states."""

    class Meta:
        table_name = "unbound-batch-table"

    batch_id = UnicodeAttribute(hash_key=True, attr_name="batchId")
    user_id = UnicodeAttribute(attr_name="userId")
    created_at = UnicodeAttribute(attr_name="createdAt")
    style_id = UnicodeAttribute(attr_name="styleId", null=True)
    total = NumberAttribute(default=0)
    generating = NumberAttribute(default=0)
    succeeded = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    # False while a fan-out task is still queueing the rest of a large request
    complete = BooleanAttribute(default=True)
    # when its last job ended and the host app was told (image_recovery.host_events): once per batch
    finished_at = UnicodeAttribute(attr_name="finishedAt", null=True)
    expires_at = TTLAttribute(attr_name="expiresAt", null=True)


class JobLedger(Model):
    """One job's state for its batch's counters (image_recovery.batches), in the batch table."""

    class Meta:
        table_name = "unbound-batch-table"

    key = UnicodeAttribute(hash_key=True, attr_name="batchId")  # "job#<jobId>"
    state = UnicodeAttribute(null=True)
    job_batch_id = UnicodeAttribute(attr_name="jobBatchId", null=True)
    expires_at = TTLAttribute(attr_name="expiresAt", null=True)


class ServiceState(Model):
    """The service's own bookkeeping rows in the batch table (keys with "#", which no batch id has)."""

    class Meta:
        table_name = "unbound-batch-table"

    key = UnicodeAttribute(hash_key=True, attr_name="batchId")
    stream_active_since = UnicodeAttribute(attr_name="streamActiveSince", null=True)
    index_complete_at = UnicodeAttribute(attr_name="indexCompleteAt", null=True)
    started_at = UnicodeAttribute(attr_name="startedAt", null=True)
    segments_total = NumberAttribute(attr_name="segmentsTotal", null=True)
    segments_done = NumberAttribute(attr_name="segmentsDone", null=True)
    # the UTC day and the models of the last lifecycle check (image_recovery.model_lifecycle)
    lifecycle_checked = UnicodeAttribute(attr_name="lifecycleChecked", null=True)


_TRAVEL_MODELS: tuple[type[Model], ...] = (TravelRecord, Trip, Segment, Reservation, PromptStyleRecord)


def bind(*, travel_table: str, batch_table: str, region: str) -> None:
    """Point the models at real tables. Safe to call again (tests rebind per moto session)."""
    for model in (*_TRAVEL_MODELS, ImageBatch, JobLedger, ServiceState):
        model.Meta.table_name = travel_table if model in _TRAVEL_MODELS else batch_table
        model.Meta.region = region
        model._connection = None
