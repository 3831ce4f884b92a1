"""Count every AWS request and every DynamoDB item read, for any client in the process.

`measure()` is a listener of the process-wide AWS call hook (devtools.aws_hooks), which sees boto3's
clients and pynamodb's own botocore clients alike (moto intercepts later, at the HTTP layer), and composes
with fault injection and call recording: a call that an injected fault fails still counts as a request
made. Items read are taken from the
responses: Query/Scan `ScannedCount` (what DynamoDB reads and bills, before any filter), GetItem 1 if
an item came back, BatchGetItem the items in `Responses`, TransactGetItems the entries in `Responses`.

Read units are estimated by DynamoDB's billing rules from item sizes (`item_size`), because moto's
`ConsumedCapacity` is a constant (1 per Query, 0.5 per GetItem, 1 per key of a BatchGetItem). A Query or
Scan is billed for every item it evaluates, before its filter and whatever its projection: under
in-process moto those items are seen where moto filters them (`_EvaluatedItems`); when moto did not
answer (a stand-in did), the returned items stand in for them, which undercounts a filtered read.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from devtools import aws_hooks
from image_recovery.item_size import READ_UNIT_BYTES, item_size

Operation = tuple[str, str]  # (service, operation), e.g. ("dynamodb", "Query")

SEARCH_OPERATIONS = frozenset({"Query", "Scan"})
POINT_READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "TransactGetItems"})


def _units(size: int, *, consistent: bool) -> float:
    """Read units for `size` bytes read at once: whole 4 KB blocks, at least one (a read of nothing is billed)."""
    return max(1, math.ceil(size / READ_UNIT_BYTES)) * (1.0 if consistent else 0.5)


def read_units(
    operation: str, params: Mapping[str, Any], response: Mapping[str, Any], evaluated: list[int] | None
) -> float:
    """Estimated read units one DynamoDB response cost (0 for anything that is not a read).

    Query/Scan: the bytes of every item evaluated (`evaluated`; else those returned) rounded up to 4 KB once per
    request. GetItem, BatchGetItem: each item rounded up on its own, a key not found billed as one block.
    TransactGetItems: each item twice, as a transaction reads it. Half a unit per block unless consistent.
    """
    if operation in SEARCH_OPERATIONS:
        sizes = evaluated if evaluated is not None else [item_size(i) for i in response.get("Items", [])]
        return _units(sum(sizes), consistent=bool(params.get("ConsistentRead")))
    if operation == "GetItem":
        return _units(item_size(response.get("Item") or {}), consistent=bool(params.get("ConsistentRead")))
    if operation == "BatchGetItem":
        total = 0.0
        unprocessed = response.get("UnprocessedKeys") or {}
        for table, request in params.get("RequestItems", {}).items():
            consistent = bool(request.get("ConsistentRead"))
            found = response.get("Responses", {}).get(table, [])
            not_found = len(request["Keys"]) - len(unprocessed.get(table, {}).get("Keys", [])) - len(found)
            total += sum(_units(item_size(i), consistent=consistent) for i in found)
            total += not_found * _units(0, consistent=consistent)
        return total
    if operation == "TransactGetItems":
        return sum(2 * _units(item_size(r.get("Item") or {}), consistent=True) for r in response.get("Responses", []))
    return 0.0


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
    """Requests, items read and estimated read units by (service, operation) during one `measure()` block."""

    requests: Counter[Operation] = field(default_factory=Counter)
    items: Counter[Operation] = field(default_factory=Counter)
    units: Counter[Operation] = field(default_factory=Counter)

    def record(self, operation: Operation, items: int, units: float = 0.0) -> None:
        self.requests[operation] += 1
        if items:
            self.items[operation] += items
        if units:
            self.units[operation] += units

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def items_read(self) -> int:
        return sum(self.items.values())

    @property
    def read_units(self) -> float:
        """Estimated DynamoDB read units of every read (see `read_units`)."""
        return sum(self.units.values())

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

    def units_by(self, operation: str) -> float:
        return sum(n for (_, op), n in self.units.items() if op == operation)

    def describe(self) -> str:
        """One line: requests by operation, then items read and read units by operation."""
        requests = ", ".join(f"{svc}.{op} ×{n:,}" for (svc, op), n in sorted(self.requests.items())) or "none"
        items = ", ".join(f"{op} {n:,}" for (_, op), n in sorted(self.items.items()))
        units = ", ".join(f"{op} {n:,g}" for (_, op), n in sorted(self.units.items()))
        return (
            f"{self.total_requests:,} requests ({requests}); {self.items_read:,} items read"
            + (f" ({items})" if items else "")
            + (f"; ≈ {self.read_units:,g} read units ({units})" if units else "")
        )


@dataclass
class _Evaluation:
    call: aws_hooks.Call
    sizes: list[int] | None = None  # None until moto evaluates the read
    open: bool = True


class _EvaluatedItems:
    """The sizes of the items in-process moto evaluates for a Query or Scan, before its filter and projection.

    moto filters the items a read evaluated (index entries already projected) with `filter_expression.expr`:
    a stand-in filter records each item's size and then applies the real one, if any. Recorded per thread,
    for the call in flight there (moto answers on the calling thread); None when moto did not evaluate it.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._installed = False
        self._lock = threading.Lock()

    def install(self) -> None:
        """Wrap moto's Table.query and Table.scan, once; nothing to do when moto is not installed."""
        with self._lock:
            if self._installed:
                return
            try:
                from moto.dynamodb.models.table import Table
            except ImportError:
                return
            Table.query = self._wrap(Table.query)  # type: ignore[method-assign]
            Table.scan = self._wrap(Table.scan)  # type: ignore[method-assign]
            self._installed = True

    def _wrap(self, read: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(read)

        @functools.wraps(read)
        def evaluating(*args: Any, **kwargs: Any) -> Any:
            current: _Evaluation | None = getattr(self._local, "current", None)
            if current is None or not current.open:
                return read(*args, **kwargs)
            current.sizes = []
            bound = signature.bind(*args, **kwargs)
            bound.arguments["filter_expression"] = _SizeRecorder(
                bound.arguments.get("filter_expression"), current.sizes
            )
            return read(*bound.args, **bound.kwargs)

        return evaluating

    def started(self, call: aws_hooks.Call) -> None:
        current: _Evaluation | None = getattr(self._local, "current", None)
        if current is None or current.call is not call:
            self._local.current = _Evaluation(call)

    def sizes(self, call: aws_hooks.Call) -> list[int] | None:
        """The sizes recorded for `call`, which has ended (every listener may ask)."""
        current: _Evaluation | None = getattr(self._local, "current", None)
        if current is None or current.call is not call:
            return None
        current.open = False
        return current.sizes


class _SizeRecorder:
    def __init__(self, condition: Any, sizes: list[int]) -> None:
        self._condition = condition
        self._sizes = sizes

    def expr(self, item: Any) -> bool:
        self._sizes.append(item_size(item.to_json()["Attributes"]))
        return self._condition is None or self._condition.expr(item)


_evaluated = _EvaluatedItems()


class _Counter(aws_hooks.Listener):
    def __init__(self) -> None:
        self.counts = Counts()
        self._lock = threading.Lock()

    def call_started(self, call: aws_hooks.Call) -> None:
        if call.service == "dynamodb" and call.operation in SEARCH_OPERATIONS:
            _evaluated.started(call)

    def call_ended(self, call: aws_hooks.Call, response: dict | None, error: BaseException | None) -> None:
        # A call that raised (a failed condition, say) was still a request; it read nothing we can see.
        operation = (call.service, call.operation)
        read, units = 0, 0.0
        if call.service == "dynamodb":
            evaluated = _evaluated.sizes(call) if call.operation in SEARCH_OPERATIONS else None
            if response:
                read = items_read(call.operation, response)
                units = read_units(call.operation, call.params, response, evaluated)
        with self._lock:
            self.counts.record(operation, read, units)


@contextmanager
def measure() -> Iterator[Counts]:
    """Count the block's AWS requests, DynamoDB items read and read units (every thread, every client)."""
    _evaluated.install()
    counter = _Counter()
    with aws_hooks.listening(counter):
        yield counter.counts
