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
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from image_recovery.jobs import ImageJob
from image_recovery.models import parse_key_path

S3_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes
S3_MAX_KEY_BYTES = 1024
_JOB_FILE_BYTES = 64 + len(".png")  # a job id is at most 64 characters (jobs.py)


def _user_segment(user_id: str) -> str:
    escaped = user_id.replace("%", "%25").replace("/", "%2F")
    return escaped.replace(".", "%2E") if escaped in (".", "..") else escaped


def record_image_prefix(job: ImageJob) -> str:
    """The prefix of every image any job ever stored for this record (see the module's docstring).

    A key path too long for S3's 1,024-byte keys (long non-ASCII ids) is named by its digest instead.
    """
    path = parse_key_path(job.pk, job.sk, job.entity_type)
    if path is None:
        raise ValueError(f"job {job.job_id} names keys without the contract's shape")
    prefix = "/".join(("images", _user_segment(path.user_id), job.entity_type.label, *path.ids)) + "/"
    if len(prefix.encode()) + _JOB_FILE_BYTES > S3_MAX_KEY_BYTES:
        digest = hashlib.sha256(f"{job.pk}\n{job.sk}".encode()).hexdigest()
        prefix = f"images/_long/{digest}/"
    return prefix


def image_key(job: ImageJob) -> str:
    return f"{record_image_prefix(job)}{job.job_id}.png"


def image_url(base: str, key: str) -> str:
    """The public URL of an object: every key segment percent-encoded, "/" kept as the separator."""
    return f"{base.rstrip('/')}/{quote(key, safe='/')}"


class ImageStore:
    def __init__(self, client: Callable[[], Any], bucket: str, *, region: str, url_base: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._url_base = url_base.rstrip("/") or f"https://{bucket}.s3.{region}.amazonaws.com"

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self._client().put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)
        return image_url(self._url_base, key)

    def delete(self, key: str) -> None:
        """Remove one object; removing one that is not there is no error (and S3 DELETEs are free)."""
        self._client().delete_object(Bucket=self._bucket, Key=key)

    def delete_stored_before(self, prefix: str, moment: datetime, *, keep: str | None = None) -> None:
        """Remove the objects under `prefix` last written before `moment` (except `keep`)."""
        client = self._client()
        stale = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if item["LastModified"] < moment and item["Key"] != keep
        ]
        for start in range(0, len(stale), S3_DELETE_BATCH):
            chunk = stale[start : start + S3_DELETE_BATCH]
            response = client.delete_objects(
                Bucket=self._bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True}
            )
            if response.get("Errors"):
                raise RuntimeError(f"could not delete {len(response['Errors'])} stale images under {prefix}")
