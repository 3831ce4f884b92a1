"""Record the AWS API calls each Lambda handler makes, and the resources they name.

A CallRecorder is a listener of the process-wide AWS call hook (devtools.aws_hooks), so it sees every
client's calls (ours from image_recovery.aws, PynamoDB's, Powertools idempotency's) and composes with fault
injection and request counting. It notes each call as it starts: AWS authorizes a request before it runs
it, so a call that then fails (a condition that does not hold, a stubbed or injected error) needed its
permission all the same.

Calls count for the function whose handler is running (see `attribute`); calls made outside any handler,
such as a test's own setup and checks, are not recorded. The running function is shared by all threads,
because a handler may fan out to a thread pool (the sweep scans its segments in parallel).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from devtools import aws_hooks

# Request parameters that name a resource (bodies and items are never kept).
RESOURCE_PARAMS = (
    "TableName",
    "IndexName",
    "Bucket",
    "Key",
    "CopySource",
    "Prefix",
    "QueueUrl",
    "modelId",
    "modelIdentifier",
)


@dataclass(frozen=True)
class AwsCall:
    function: str  # the handler that made it, e.g. "worker"
    service: str  # botocore's service name: dynamodb, s3, sqs, bedrock-runtime, bedrock
    signing_name: (
        str  # the name requests are signed for, which is also the IAM prefix here: bedrock, not bedrock-runtime
    )
    region: str
    operation: str  # the API operation, e.g. ListObjectsV2
    params: Mapping[str, Any] = field(hash=False)  # resource parameters only, see `resource_params`


def resource_params(api_params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of one request that say which resources it touches."""
    picked: dict[str, Any] = {name: api_params[name] for name in RESOURCE_PARAMS if name in api_params}
    if "RequestItems" in api_params:  # BatchGetItem, BatchWriteItem: one entry per table
        picked["Tables"] = sorted(api_params["RequestItems"])
    if "TransactItems" in api_params:  # TransactGetItems, TransactWriteItems: (kind, table) per item
        picked["TransactItems"] = [
            (kind, detail["TableName"]) for item in api_params["TransactItems"] for kind, detail in item.items()
        ]
    if "Entries" in api_params and api_params["Entries"] and "EventBusName" in api_params["Entries"][0]:
        picked["EventBuses"] = sorted({entry.get("EventBusName", "default") for entry in api_params["Entries"]})
    if isinstance(api_params.get("Delete"), Mapping):  # DeleteObjects: the keys it removes
        picked["Keys"] = [entry["Key"] for entry in api_params["Delete"].get("Objects", [])]
    return picked


class CallRecorder(aws_hooks.Listener):
    def __init__(self) -> None:
        self.calls: list[AwsCall] = []
        self._function: str | None = None
        self._lock = threading.Lock()

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        """Count the block's calls for `function` (handlers do not nest, so neither may these)."""
        if self._function is not None:
            raise RuntimeError(f"{function} started while {self._function} is still running")
        self._function = function
        try:
            yield
        finally:
            self._function = None

    def attribute(self, module: ModuleType, function: str) -> ModuleType:
        """Make every invocation of the module's `lambda_handler` count for `function`; returns the module."""
        handler = module.lambda_handler

        @functools.wraps(handler)
        def invoke(event: dict, context: Any) -> Any:
            with self.running(function):
                return handler(event, context)

        module.lambda_handler = invoke
        return module

    @contextmanager
    def installed(self) -> Iterator[CallRecorder]:
        """Record while the block runs (with any other listeners of devtools.aws_hooks)."""
        with aws_hooks.listening(self):
            yield self

    def call_started(self, call: aws_hooks.Call) -> None:
        function = self._function
        if function is None:
            return
        recorded = AwsCall(
            function=function,
            service=call.service,
            signing_name=call.signing_name,
            region=call.region,
            operation=call.operation,
            params=resource_params(call.params),
        )
        with self._lock:
            self.calls.append(recorded)

    def by_function(self) -> dict[str, list[AwsCall]]:
        grouped: dict[str, list[AwsCall]] = {}
        for call in self.calls:
            grouped.setdefault(call.function, []).append(call)
        return grouped
