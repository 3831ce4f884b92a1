"""The travel table's DynamoDB stream, delivered to the indexer as Lambda would deliver it.

moto records stream changes but (in this version) does not answer the DynamoDB Streams API, so the
records are read from moto's in-process backend: this works with `mock_aws` and with the embedded
moto server, which runs in the same process. Lambda's event filter from template.yaml is applied, and
records go out in batches of the event source's BatchSize, shaped as AWS sends them.
"""

from __future__ import annotations

import json
from datetime import datetime
from types import ModuleType
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from devtools.lambda_runtime import LambdaContext
from devtools.template_resources import LocalStack


def _matches(pattern: Any, value: Any) -> bool:
    """Lambda event filtering for the pattern forms the template uses: nested keys, value lists, and
    {"prefix": ...} inside a list."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(_matches(p, value.get(k)) for k, p in pattern.items())
    if isinstance(pattern, list):
        return any(_one_of(option, value) for option in pattern)
    return pattern == value


def _one_of(option: Any, value: Any) -> bool:
    if isinstance(option, dict):
        unsupported = set(option) - {"prefix"}
        if unsupported:
            raise NotImplementedError(f"devtools.streams cannot filter with {sorted(unsupported)}")
        return isinstance(value, str) and value.startswith(option["prefix"])
    return option == value


class LocalStream:
    def __init__(self, stack: LocalStack, table_logical_id: str = "TravelTable", function: str = "IndexerFunction"):
        self._stack = stack
        self._table_name = stack.physical(table_logical_id)
        source = next(
            event["Properties"]
            for event in stack.template["Resources"][function]["Properties"]["Events"].values()
            if event["Type"] == "DynamoDB"
        )
        self._patterns = [json.loads(f["Pattern"]) for f in source.get("FilterCriteria", {}).get("Filters", [])]
        self._batch_size = int(source.get("BatchSize", 100))
        self._position = 0
        table = dynamodb_backends[DEFAULT_ACCOUNT_ID][stack.region].get_table(self._table_name)
        self._stream_arn = f"{stack.arns[table_logical_id]}/stream/{table.latest_stream_label}"

    def _shard(self) -> Any:
        return dynamodb_backends[DEFAULT_ACCOUNT_ID][self._stack.region].get_table(self._table_name).stream_shard

    def pending(self) -> list[dict]:
        """Stream records not delivered yet, as Lambda's event source reads them, filter applied."""
        shard = self._shard()
        new = shard.items[self._position :]
        self._position = len(shard.items)
        records = []
        for item in new:
            record = item.to_json()
            created = record["dynamodb"].get("ApproximateCreationDateTime")
            if isinstance(created, datetime | str):
                stamp = created if isinstance(created, datetime) else datetime.fromisoformat(created)
                record["dynamodb"]["ApproximateCreationDateTime"] = int(stamp.timestamp())
            record["eventSourceARN"] = self._stream_arn
            if not self._patterns or any(_matches(p, record) for p in self._patterns):
                records.append(record)
        return records

    def deliver(self, indexer: ModuleType) -> int:
        """Hand every pending record to the indexer handler, until its own writes stop adding records."""
        delivered = 0
        for _ in range(10):  # a correct indexer settles in one round; more would be a write loop
            records = self.pending()
            if not records:
                return delivered
            for start in range(0, len(records), self._batch_size):
                batch = records[start : start + self._batch_size]
                response = indexer.lambda_handler({"Records": batch}, LambdaContext())
                if response["batchItemFailures"]:
                    raise RuntimeError(f"indexer failed records: {response['batchItemFailures']}")
            delivered += len(records)
        raise RuntimeError("the indexer keeps changing records it has already indexed: a write loop")
