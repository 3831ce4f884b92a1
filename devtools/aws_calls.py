"""Record the AWS API calls each Lambda handler makes, and the resources they name.

Every client in the process (ours from image_recovery.aws, PynamoDB's, Powertools idempotency's) sends its
requests through botocore's `BaseClient._make_api_call`. While a CallRecorder is installed, that method
notes each call before passing it on: before, because AWS authorizes a request before it runs it, so a call
that then fails (a condition that does not hold, a stubbed error) needed its permission all the same.

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
from unittest import mock

from botocore.client import BaseClient

# Request parameters that name a resource (bodies and items are never kept).
RESOURCE_PARAMS = ("TableName", "IndexName", "Bucket", "Key", "CopySource", "Prefix", "QueueUrl", "modelId")


@dataclass(frozen=True)
class AwsCall:
    function: str  # the handler that made it, e.g. "worker"
    service: str  # botocore's service name: dynamodb, s3, sqs, bedrock-runtime
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
    if isinstance(api_params.get("Delete"), Mapping):  # DeleteObjects: the keys it removes
        picked["Keys"] = [entry["Key"] for entry in api_params["Delete"].get("Objects", [])]
    return picked


class CallRecorder:
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
        """Record while the block runs. Wraps whatever `_make_api_call` is in place, so it composes with
        other patches of it (fault injection, request counting)."""
        original = BaseClient._make_api_call

        def make_api_call(client: BaseClient, operation_name: str, api_params: dict) -> Any:
            function = self._function
            if function is not None:
                model = client.meta.service_model
                call = AwsCall(
                    function=function,
                    service=model.service_name,
                    signing_name=model.signing_name,
                    region=client.meta.region_name,
                    operation=operation_name,
                    params=resource_params(api_params),
                )
                with self._lock:
                    self.calls.append(call)
            return original(client, operation_name, api_params)

        with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
            yield self

    def by_function(self) -> dict[str, list[AwsCall]]:
        grouped: dict[str, list[AwsCall]] = {}
        for call in self.calls:
            grouped.setdefault(call.function, []).append(call)
        return grouped
