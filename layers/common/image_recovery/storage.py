"""The private image bucket.

Every image lives under its record's own prefix, one object per job:
images/<user>/<type>/<record id>/<job id>.png. A retried delivery overwrites its own object; the record
points at exactly one object, and the worker removes the ones no record can point at (see ImageWorker).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from image_recovery.jobs import ImageJob

S3_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def record_image_prefix(job: ImageJob) -> str:
    """images/<user>/<type>/<record id>/ — every image any job ever stored for this record."""
    parts = (job.pk.removeprefix("USER#"), job.entity_type.label, job.record_id)
    return "images/" + "".join(quote(part, safe="") + "/" for part in parts)


def image_key(job: ImageJob) -> str:
    return f"{record_image_prefix(job)}{quote(job.job_id, safe='')}.png"


class ImageStore:
    def __init__(self, client: Callable[[], Any], bucket: str, *, region: str, url_base: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._url_base = url_base.rstrip("/") or f"https://{bucket}.s3.{region}.amazonaws.com"

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self._client().put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)
        return f"{self._url_base}/{key}"

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
