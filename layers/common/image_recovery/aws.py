"""boto3 clients, created on first use and kept for the life of the container.

Lazy creation lets tests start moto before any client exists; caching keeps warm invocations cheap.
Endpoints follow the standard AWS_ENDPOINT_URL variables, which is how the local run reaches moto.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CLIENT_CONFIG = {
    # Image models can take tens of seconds; everything else answers quickly.
    "bedrock-runtime": Config(read_timeout=120, retries={"mode": "standard", "max_attempts": 2}),
}
_DEFAULT_CONFIG = Config(retries={"mode": "standard"})


@cache
def client(service: str) -> Any:
    # Lambda sets AWS_REGION; boto3 itself only reads AWS_DEFAULT_REGION.
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    config = _CLIENT_CONFIG.get(service, _DEFAULT_CONFIG)
    return boto3.session.Session().client(service, region_name=region, config=config)


def reset() -> None:
    """Forget every cached client (tests call this between moto sessions)."""
    client.cache_clear()
