"""An embedded AWS for local runs: moto's server on 127.0.0.1 with the stack built from template.yaml."""

from __future__ import annotations

import logging
import os
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

from devtools import moto_requests
from devtools.template_resources import LocalStack, build_stack
from image_recovery import aws

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    moto_requests.serialize()  # one request at a time, each atomic, as AWS applies them
    try:
        yield build_stack(region=REGION)
    finally:
        aws.reset()
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def use_function_environment(stack: LocalStack, function: str, **overrides: str) -> None:
    """Set the variables template.yaml gives one function (plus overrides) before loading its handler."""
    os.environ.update({**stack.function_environment(stack.function_logical_ids()[function]), **overrides})
