"""An embedded AWS for local runs: moto's server on 127.0.0.1 with the stack built from template.yaml."""

from __future__ import annotations

import logging
import os
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from moto.dynamodb.models import DynamoDBBackend
from moto.server import ThreadedMotoServer

from devtools.template_resources import LocalStack, build_stack
from image_recovery import aws

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# DynamoDB applies each conditional write atomically; moto's backend checks the condition and writes in
# two steps, so two threads of its server can both pass the same condition. One lock restores atomicity.
_ATOMIC_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


@contextmanager
def _atomic_dynamodb_writes() -> Iterator[None]:
    lock = threading.RLock()
    with ExitStack() as patches:
        for name in _ATOMIC_WRITES:
            write = getattr(DynamoDBBackend, name)

            def atomic(*args: Any, _write: Any = write, **kwargs: Any) -> Any:
                with lock:
                    return _write(*args, **kwargs)

            patches.enter_context(mock.patch.object(DynamoDBBackend, name, atomic))
        yield


@contextmanager
def embedded_aws() -> Iterator[LocalStack]:
    """Start moto on a free loopback port, point every AWS client at it, build the stack; stop on exit."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request is noise here
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto keeps its state per process: start every embedded AWS empty, even a second one in the same process.
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"))
    saved = dict(os.environ)
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - moto accepts any key; nothing real here
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        POWERTOOLS_TRACE_DISABLED="true",
    )
    os.environ.pop("AWS_PROFILE", None)
    aws.reset()  # clients made before now point elsewhere
    try:
        with _atomic_dynamodb_writes():
            yield build_stack(region=REGION)
    finally:
        aws.reset()
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def use_function_environment(stack: LocalStack, function: str, **overrides: str) -> None:
    """Set the variables template.yaml gives one function (plus overrides) before loading its handler."""
    os.environ.update({**stack.function_environment(stack.function_logical_ids()[function]), **overrides})
