"""The image bucket.

Every image lives under its record's own prefix, named by the record's full key path, one object per job:
images/<user>/trip/<trip id>/<job id>.png, images/<user>/segment/<trip id>/<segment id>/<job id>.png,
images/<user>/reservation/<trip id>/<segment id>/<reservation id>/<job id>.png. Equal ids under different
parents never share a prefix, and no record's prefix contains another's. A retried delivery overwrites
its own object; the record points at exactly one object, and the worker removes the ones no record can
point at (see ImageWorker).

Keys are stored raw (record ids hold no "/" or "#"); only the URL is percent-encoded, so the URL's path,
once S3 or CloudFront decodes it, is the key (DESIGN §4). A user id may hold any character: "%" and "/"
are escaped in its key segment, and so is a segment that is "." or "..", which URLs would treat as steps.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from botocore.exceptions import ClientError

from image_recovery.jobs import ImageJob
from image_recovery.models import EntityType, parse_key_path

IMAGES_PREFIX = "images/"  # every object the service stores is under it
S3_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes
S3_MAX_KEY_BYTES = 1024
_JOB_FILE_BYTES = 64 + len(".png")  # a job id is at most 64 characters (jobs.py)


def _user_segment(user_id: str) -> str:
    escaped = user_id.replace("%", "%25").replace("/", "%2F")
    return escaped.replace(".", "%2E") if escaped in (".", "..") else escaped


def _user_of_segment(segment: str) -> str:
    """The inverse of _user_segment."""
    if segment in ("%2E", "%2E%2E"):
        return segment.replace("%2E", ".")
    return re.sub(r"%(25|2F)", lambda m: "%" if m.group(1) == "25" else "/", segment)


def kind_of_key(sk: str) -> EntityType | None:
    """Which kind of record a travel-table SK names by its shape alone (a REMOVE stream record has only keys)."""
    return next((kind for kind in EntityType if parse_key_path("USER#x", sk, kind)), None)


def image_prefix(pk: str, sk: str, kind: EntityType) -> str:
    """The prefix of every image any job ever stored for the record with these keys (see the module's docstring).

    A key path too long for S3's 1,024-byte keys (long non-ASCII ids) is named by its digest instead.
    """
    path = parse_key_path(pk, sk, kind)
    if path is None:
        raise ValueError(f"keys without the contract's shape for a {kind.label}: {pk} / {sk}")
    prefix = IMAGES_PREFIX + "/".join((_user_segment(path.user_id), kind.label, *path.ids)) + "/"
    if len(prefix.encode()) + _JOB_FILE_BYTES > S3_MAX_KEY_BYTES:
        digest = hashlib.sha256(f"{pk}\n{sk}".encode()).hexdigest()
        prefix = f"{IMAGES_PREFIX}_long/{digest}/"
    return prefix


def record_image_prefix(job: ImageJob) -> str:
    return image_prefix(job.pk, job.sk, job.entity_type)


def record_keys_of(key: str) -> tuple[str, str, str] | None:
    """(PK, SK, file name) of the record an object key was stored for; None for keys that do not say
    (a digest prefix, or a key not of this layout)."""
    parts = key.split("/")
    labels = {kind.label: kind for kind in EntityType}
    if len(parts) < 5 or parts[0] != "images" or parts[2] not in labels:
        return None
    user, kind, ids, file = parts[1], labels[parts[2]], parts[3:-1], parts[-1]
    user = _user_of_segment(user)
    names = ("TRIP", "SEGMENT", "RESERVATION")[: len(ids)]
    sk = "#".join(f"{name}#{value}" for name, value in zip(names, ids, strict=True))
    pk = f"USER#{user}"
    return (pk, sk, file) if parse_key_path(pk, sk, kind) else None


def image_key(job: ImageJob) -> str:
    return f"{record_image_prefix(job)}{job.job_id}.png"


def image_url(base: str, key: str) -> str:
    """The public URL of an object: every key segment percent-encoded, "/" kept as the separator."""
    return f"{base.rstrip('/')}/{quote(key, safe='/')}"


def references(url: str | None, key: str) -> bool:
    """Whether an imageUrl is the URL of the object `key`, whatever base it was built with."""
    return bool(url) and url.endswith("/" + quote(key, safe="/"))


class ImageStore:
    def __init__(self, client: Callable[[], Any], bucket: str, *, region: str, url_base: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._url_base = url_base.rstrip("/") or f"https://{bucket}.s3.{region}.amazonaws.com"

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self._client().put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)
        return image_url(self._url_base, key)

    def key_of(self, url: str | None) -> str | None:
        """The key of the object in this store that `url` names (built with this store's URL base), or None."""
        prefix = f"{self._url_base}/"
        if not url or not url.startswith(prefix):
            return None
        key = unquote(url[len(prefix) :])
        return key if key.startswith(IMAGES_PREFIX) and image_url(self._url_base, key) == url else None

    def delete(self, key: str) -> None:
        """Remove one object; removing one that is not there is no error (and S3 DELETEs are free)."""
        self._client().delete_object(Bucket=self._bucket, Key=key)

    def copy(self, source: str, key: str) -> bool:
        """Copy an object within the bucket; False when the source is not there."""
        try:
            self._client().copy_object(Bucket=self._bucket, Key=key, CopySource={"Bucket": self._bucket, "Key": source})
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return False
            raise
        return True

    def objects_page(
        self, prefix: str, token: str | None = None, *, page_size: int = 1000
    ) -> tuple[list[tuple[str, datetime]], str | None]:
        """One page of (key, last modified) under `prefix`, and the token of the next page (None: the last)."""
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, "MaxKeys": page_size}
        if token:
            kwargs["ContinuationToken"] = token
        page = self._client().list_objects_v2(**kwargs)
        found = [(item["Key"], item["LastModified"]) for item in page.get("Contents", [])]
        return found, page.get("NextContinuationToken") if page.get("IsTruncated") else None

    def objects(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """(key, last modified) of every object under `prefix`."""
        for page in self._client().get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], item["LastModified"]

    def delete_many(self, keys: list[str]) -> None:
        for start in range(0, len(keys), S3_DELETE_BATCH):
            chunk = keys[start : start + S3_DELETE_BATCH]
            response = self._client().delete_objects(
                Bucket=self._bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True}
            )
            if response.get("Errors"):
                raise RuntimeError(f"could not delete {len(response['Errors'])} of {len(chunk)} images")

    def delete_stored_before(self, prefix: str, moment: datetime, *, keep: Collection[str | None] = ()) -> None:
        """Remove the objects under `prefix` last written before `moment` (except those in `keep`)."""
        self.delete_many([key for key, modified in self.objects(prefix) if modified < moment and key not in keep])
