"""One hook on every AWS call in the process, shared by everything that watches, fails or answers calls.

Every client in the process (ours from image_recovery.aws, PynamoDB's, Powertools idempotency's, a test's
own) sends its requests through botocore's `BaseClient._make_api_call`, and each HTTP attempt of a request
(the SDK retries inside one call) through `Endpoint._send`. While at least one listener is registered
(`listening()`), those two methods are wrapped, once, and every call goes through the listeners in
registration order:

    call_started(call)                 each listener: the code made this call
    before_call(call)                  each listener, until one raises (the call fails before AWS sees it)
                                       or has answered (a stand-in answers instead of AWS; the first
                                       answer is the response, later listeners still see the call)
      each HTTP attempt:  before_send(attempt) / after_send(attempt), as for calls
    after_call(call, response)         each listener, when the call took effect; one that raises makes the
                                       call fail with its answer lost (the first such error is raised)
    call_ended(call, response, error)  each listener: what the code got, a response or the error it sees

So an observer (`bench.counting.measure()`, `devtools.aws_calls.CallRecorder`) sees every call exactly
once with its final outcome, whatever a fault injector (`devtools.faults.FaultInjector`) does to it, and
any number of them compose: nothing patches botocore but this module. Calls a botocore `Stubber` answers
go through here too (the stub answers inside the call, as AWS would). Listeners run on the calling
thread, and handlers may call AWS from several threads at once: listeners must be thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient
from botocore.endpoint import Endpoint


@dataclass(frozen=True)
class Call:
    """One API call as the code makes it."""

    client: BaseClient
    operation: str  # e.g. "UpdateItem"
    params: dict  # the request parameters, as given to the client (do not change them)

    @property
    def service(self) -> str:
        """botocore's service name: dynamodb, s3, sqs, bedrock-runtime."""
        return self.client.meta.service_model.service_name

    @property
    def signing_name(self) -> str:
        """The name requests are signed for, which is also the IAM prefix here (bedrock for bedrock-runtime)."""
        return self.client.meta.service_model.signing_name

    @property
    def region(self) -> str:
        return self.client.meta.region_name


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt of a call (below the SDK's retries). Stand-in answers and moto's in-process mock
    (`mock_aws`) send none; the embedded moto server (real HTTP) does."""

    endpoint: Endpoint
    request: Any  # botocore's AWSPreparedRequest

    @property
    def service(self) -> str:
        return self.endpoint._endpoint_prefix

    @property
    def url(self) -> str:
        return self.request.url


class Listener:
    """Override what you need; every method does nothing by default."""

    def call_started(self, call: Call) -> None:
        """The code made `call` (before anything can fail it)."""

    def before_call(self, call: Call) -> dict | None:
        """Raise to fail the call before it reaches AWS, or return a response to answer it instead of AWS."""
        return None

    def after_call(self, call: Call, response: dict) -> None:
        """The call took effect and answered `response`; raise to lose that answer."""

    def call_ended(self, call: Call, response: dict | None, error: BaseException | None) -> None:
        """What the code got: `response`, or `error` raised to it."""

    def before_send(self, attempt: Attempt) -> None:
        """Raise to fail one HTTP attempt before it is sent (the SDK may retry it)."""

    def after_send(self, attempt: Attempt, response: Any) -> None:
        """One HTTP attempt was answered; raise to lose the answer (the SDK may retry it)."""


_lock = threading.Lock()
_listeners: tuple[Listener, ...] = ()  # replaced, never changed in place: a call reads one snapshot
_originals: tuple[Any, Any] | None = None  # what the wrappers replaced, while installed


@contextmanager
def listening(*listeners: Listener) -> Iterator[None]:
    """Register the listeners for the block (after any already registered)."""
    added: list[Listener] = []
    try:
        for listener in listeners:
            _add(listener)
            added.append(listener)
        yield
    finally:
        for listener in reversed(added):
            _remove(listener)


def active() -> tuple[Listener, ...]:
    """The listeners registered now, in order."""
    return _listeners


def _add(listener: Listener) -> None:
    global _listeners, _originals
    with _lock:
        if listener in _listeners:
            raise RuntimeError(f"{listener!r} is already listening")
        if _originals is None:
            _originals = (BaseClient._make_api_call, Endpoint._send)
            BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]
            Endpoint._send = _send  # type: ignore[method-assign]
        _listeners = (*_listeners, listener)


def _remove(listener: Listener) -> None:
    global _listeners, _originals
    with _lock:
        _listeners = tuple(known for known in _listeners if known is not listener)
        if not _listeners and _originals is not None:
            BaseClient._make_api_call, Endpoint._send = _originals  # type: ignore[method-assign]
            _originals = None


def _make_api_call(client: BaseClient, operation_name: str, api_params: dict) -> Any:
    listeners, original = _listeners, _originals[0] if _originals else _unpatched_call
    call = Call(client, operation_name, api_params)
    for listener in listeners:
        listener.call_started(call)
    response: dict | None = None
    error: BaseException | None = None
    try:
        answer = None
        for listener in listeners:
            answered = listener.before_call(call)
            if answer is None:
                answer = answered
        response = answer if answer is not None else original(client, operation_name, api_params)
    except BaseException as raised:  # handed to call_ended, then raised again
        error = raised
    if error is None:
        for listener in listeners:
            try:
                listener.after_call(call, response)
            except BaseException as raised:  # every listener sees that the call took effect
                error = error or raised
        if error is not None:
            response = None
    for listener in listeners:
        listener.call_ended(call, response, error)
    if error is not None:
        raise error
    return response


def _send(endpoint: Endpoint, request: Any) -> Any:
    listeners, original = _listeners, _originals[1] if _originals else _unpatched_send
    attempt = Attempt(endpoint, request)
    for listener in listeners:
        listener.before_send(attempt)
    response = original(endpoint, request)
    error: BaseException | None = None
    for listener in listeners:
        try:
            listener.after_send(attempt, response)
        except BaseException as raised:  # every listener sees that the attempt was answered
            error = error or raised
    if error is not None:
        raise error
    return response


# A call already inside a wrapper when the last listener leaves finishes with the methods botocore had.
_unpatched_call, _unpatched_send = BaseClient._make_api_call, Endpoint._send
