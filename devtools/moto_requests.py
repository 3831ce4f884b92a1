"""moto answers one request at a time, as AWS applies each request atomically.

moto's backends are dictionaries without locks. Two threads in one request each (the queuer's pool marking
records, concurrent handlers in a test, the threads of moto's own server) can interleave inside moto: both
pass the same condition and write, or a transaction copies a table while another write changes it
("dictionary changed size during iteration"). DynamoDB and SQS apply every request atomically, so one lock
around moto's request dispatch is what they would do, for the in-process mock and the embedded server alike.
Safe to apply more than once; the test suite, the benchmark and the embedded AWS all do.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core.responses import BaseResponse

_lock = threading.RLock()  # re-entrant: a request that moto answers by making another one in the same thread
_applied = False


def serialize() -> None:
    global _applied
    with _lock:
        if _applied:
            return
        dispatch = BaseResponse._dispatch

        def one_at_a_time(self: BaseResponse, *args: Any, **kwargs: Any) -> Any:
            with _lock:
                return dispatch(self, *args, **kwargs)

        BaseResponse._dispatch = one_at_a_time  # type: ignore[method-assign]
        _applied = True
