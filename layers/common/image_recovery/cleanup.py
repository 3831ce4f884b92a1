"""Each image object belongs to one record, and goes when nothing can point at it any more.

The host app owns its records: it may delete one that carries the service's image, write its own imageUrl
(or none) over it, or copy it to another user. The stream function hands each case here: the images of a
deleted record are removed; an image its record no longer points at is removed; a copy gets its own copy of
the image, under its own prefix, so that removing the original's image never breaks the copy's URL.
Whatever the stream cannot see (an item overwritten whole, a table without a stream) the repair run's
bucket audit removes (image_recovery.tasks).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import quote

from image_recovery.models import TravelRecord
from image_recovery.observability import logger
from image_recovery.records import RawItem
from image_recovery.repository import RecordRepository, image_missing_condition, update_existing
from image_recovery.storage import (
    IMAGES_PREFIX,
    ImageStore,
    image_prefix,
    image_url,
    kind_of_key,
    record_keys_of,
    references,
)

WHERE = "stream"
# Longer than a job can be between storing its image and writing it back (the worker's timeout and retries).
AUDIT_MIN_AGE = timedelta(hours=1)


def _string(raw: RawItem, name: str) -> str | None:
    value = raw.get(name)
    return value.get("S") if isinstance(value, dict) else None


class ImageCleaner:
    def __init__(self, records: RecordRepository, store: ImageStore) -> None:
        self._records = records
        self._store = store

    def record_deleted(self, keys: RawItem) -> bool:
        """The host deleted a record: remove every image stored for it. If a record has been written again
        under the same keys since, its current image and what its current job stores are kept."""
        pk, sk = _string(keys, "PK"), _string(keys, "SK")
        kind = kind_of_key(sk or "")
        if pk is None or sk is None or kind is None:
            return False
        try:
            prefix = image_prefix(pk, sk, kind)
        except ValueError:  # keys the service never stored an image under
            return False
        current = self._records.get(pk, sk, where=WHERE)
        keep = {current.image_key, f"{prefix}{current.image_job_id}.png"} if current else set()
        self._store.delete_many([key for key, _ in self._store.objects(prefix) if key not in keep])
        return True

    def image_replaced(self, record: TravelRecord) -> bool:
        """The record names an image of ours (imageKey) that its imageUrl no longer points at: another writer
        wrote its own image, or none. Forget the key, then remove the object (if the record still says so)."""
        key, url = record.image_key, record.image_url
        if not key or references(url, key):
            return False
        same_url = (TravelRecord.image_url == url) if url else image_missing_condition()
        if not update_existing(
            TravelRecord(record.pk, record.sk),
            [TravelRecord.image_key.remove()],
            (TravelRecord.image_key == key) & same_url,
        ):
            return False  # changed again since: a later stream record tells what is true now
        self._store.delete(key)
        logger.info("removed an image its record no longer points at", extra={"image_key": key})
        return True

    def adopt_copy(self, record: TravelRecord) -> bool:
        """The record points at an image stored under another record's prefix: the host copied an item. Give
        it a copy of its own; if the original is gone already, its URL is dead and its image missing again."""
        key, url = record.image_key, record.image_url
        if not key or not url or not references(url, key):
            return False
        own = image_prefix(record.pk, record.sk, record.kind)
        if key.startswith(own):
            return False
        unchanged = (TravelRecord.image_key == key) & (TravelRecord.image_url == url)
        row = TravelRecord(record.pk, record.sk)
        new_key = f"{own}copy-{uuid.uuid4().hex}.png"
        if not self._store.copy(key, new_key):
            logger.info("a copied record points at an image that is gone: its image is missing again")
            return update_existing(row, [TravelRecord.image_url.remove(), TravelRecord.image_key.remove()], unchanged)
        base = url[: len(url) - len(quote(key, safe="/")) - 1]
        adopted = [TravelRecord.image_url.set(image_url(base, new_key)), TravelRecord.image_key.set(new_key)]
        if update_existing(row, adopted, unchanged):
            return True
        self._store.delete(new_key)  # the record changed meanwhile: a later stream record says how
        return False

    def audit(self, token: str | None, now: datetime) -> tuple[int, str | None]:
        """One page of the bucket: remove the images no record points at (deleted ones, those of items the host
        overwrote whole, those of jobs long lost). An image younger than AUDIT_MIN_AGE, or of a job still working
        on its record, is kept: its write-back may be on its way. Returns (removed, token of the next page)."""
        page, next_token = self._store.objects_page(IMAGES_PREFIX, token)
        owners = {key: record_keys_of(key) for key, _ in page}
        items = self._records.raw_items({(o[0], o[1]) for o in owners.values() if o})
        orphans = []
        for key, modified in page:
            owner = owners[key]
            if owner is None or modified > now - AUDIT_MIN_AGE:
                continue
            item = items.get((owner[0], owner[1]))
            if item is not None and (_points_at(item, key) or _working_on(item, owner[2])):
                continue
            orphans.append(key)
        self._store.delete_many(orphans)
        return len(orphans), next_token


def _points_at(item: RawItem, key: str) -> bool:
    return _string(item, "imageKey") == key and references(_string(item, "imageUrl"), key)


def _working_on(item: RawItem, file: str) -> bool:
    """The record's current job is the one that stored this file, and it has not finished."""
    job_id = _string(item, "imageJobId")
    return bool(job_id) and file == f"{job_id}.png" and _string(item, "imageStatus") in ("queued", "generating")
