"""The private image bucket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from image_recovery.models import TravelRecord


def image_key(record: TravelRecord, job_id: str) -> str:
    """images/<user>/<type>/<record id>/<job id>.png — one object per job, so a retry overwrites its own."""
    parts = (record.owner_id, record.kind.label, record.id, job_id)
    return "images/" + "/".join(quote(part, safe="") for part in parts) + ".png"


class ImageStore:
    def __init__(self, client: Callable[[], Any], bucket: str, *, region: str, url_base: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._url_base = url_base.rstrip("/") or f"https://{bucket}.s3.{region}.amazonaws.com"

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self._client().put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)
        return f"{self._url_base}/{key}"

    def delete(self, key: str) -> None:
        self._client().delete_object(Bucket=self._bucket, Key=key)
