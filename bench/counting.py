"""Count every AWS request and every DynamoDB item read, for any client in the process.

boto3 clients and pynamodb's own botocore clients all end in `BaseClient._make_api_call`, so one patch
there sees them all (moto intercepts later, at the HTTP layer). Items read are taken from the
responses: Query/Scan `ScannedCount` (what DynamoDB reads and bills, before any filter), GetItem 1 if
an item came back, BatchGetItem the items in `Responses`, TransactGetItems the entries in `Responses`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient

Operation = tuple[str, str]  # (service, operation), e.g. ("dynamodb", "Query")

SEARCH_OPERATIONS = frozenset({"Query", "Scan"})
POINT_READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "TransactGetItems"})


def items_read(operation: str, response: dict[str, Any]) -> int:
    """DynamoDB items one response says were read (0 for anything that is not a read)."""
    if operation in SEARCH_OPERATIONS:
        return int(response.get("ScannedCount", 0))
    if operation == "GetItem":
        return 1 if response.get("Item") else 0
    if operation == "BatchGetItem":
        return sum(len(items) for items in response.get("Responses", {}).values())
    if operation == "TransactGetItems":
        return len(response.get("Responses", []))
    return 0


@dataclass
class Counts:
    """Requests and items read by (service, operation) during one `measure()` block."""

    requests: Counter[Operation] = field(default_factory=Counter)
    items: Counter[Operation] = field(default_factory=Counter)

    def record(self, operation: Operation, items: int) -> None:
        self.requests[operation] += 1
        if items:
            self.items[operation] += items

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def items_read(self) -> int:
        return sum(self.items.values())

    @property
    def searched_items(self) -> int:
        """Items read by Query and Scan (table or index)."""
        return sum(n for (_, op), n in self.items.items() if op in SEARCH_OPERATIONS)

    @property
    def point_items(self) -> int:
        """Items read by key: GetItem, BatchGetItem, TransactGetItems."""
        return sum(n for (_, op), n in self.items.items() if op in POINT_READ_OPERATIONS)

    def calls(self, operation: str, service: str | None = None) -> int:
        return sum(n for (svc, op), n in self.requests.items() if op == operation and service in (None, svc))

    def items_by(self, operation: str) -> int:
        return sum(n for (_, op), n in self.items.items() if op == operation)

    def describe(self) -> str:
        """One line: requests by operation, then items read by operation."""
        requests = ", ".join(f"{svc}.{op} ×{n:,}" for (svc, op), n in sorted(self.requests.items())) or "none"
        items = ", ".join(f"{op} {n:,}" for (_, op), n in sorted(self.items.items()))
        return f"{self.total_requests:,} requests ({requests}); {self.items_read:,} items read" + (
            f" ({items})" if items else ""
        )


_lock = threading.Lock()
_active: list[Counts] = []
_original = BaseClient._make_api_call


def _counting_make_api_call(self: BaseClient, operation_name: str, api_params: dict) -> Any:
    response: dict[str, Any] = {}
    try:
        response = _original(self, operation_name, api_params)
        return response
    finally:
        # A call that raised (a failed condition, say) was still a request; it read nothing we can see.
        operation = (self.meta.service_model.service_name, operation_name)
        read = items_read(operation_name, response) if operation[0] == "dynamodb" else 0
        with _lock:
            for counts in _active:
                counts.record(operation, read)


@contextmanager
def measure() -> Iterator[Counts]:
    """Count the block's AWS requests and DynamoDB items read (every thread, every client)."""
    counts = Counts()
    with _lock:
        if not _active:
            BaseClient._make_api_call = _counting_make_api_call  # type: ignore[method-assign]
        _active.append(counts)
    try:
        yield counts
    finally:
        with _lock:
            _active.remove(counts)
            if not _active:
                BaseClient._make_api_call = _original  # type: ignore[method-assign]
