"""Count every AWS request and every DynamoDB item read, for any client in the process.

`measure()` is a listener of the process-wide AWS call hook (devtools.aws_hooks), which sees boto3's
clients and pynamodb's own botocore clients alike (moto intercepts later, at the HTTP layer), and composes
with fault injection and call recording: a call that an injected fault fails still counts as a request
made. Items read are taken from the
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

from devtools import aws_hooks

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


class _Counter(aws_hooks.Listener):
    def __init__(self) -> None:
        self.counts = Counts()
        self._lock = threading.Lock()

    def call_ended(self, call: aws_hooks.Call, response: dict | None, error: BaseException | None) -> None:
        # A call that raised (a failed condition, say) was still a request; it read nothing we can see.
        operation = (call.service, call.operation)
        read = items_read(call.operation, response) if response and call.service == "dynamodb" else 0
        with self._lock:
            self.counts.record(operation, read)


@contextmanager
def measure() -> Iterator[Counts]:
    """Count the block's AWS requests and DynamoDB items read (every thread, every client)."""
    counter = _Counter()
    with aws_hooks.listening(counter):
        yield counter.counts
