"""Fault injection for AWS calls: make chosen calls fail before they reach AWS, or after they took effect.

A FaultInjector is a listener of the process-wide AWS call hook (devtools.aws_hooks), so it sees every
client's calls (ours, PynamoDB's, Powertools idempotency's) and composes with the other listeners: a
request counter or a call recorder active at the same time sees the calls it fails. A fault can strike
before the call (nothing happened, the caller sees an error) or after it (the call took effect and its
answer is lost: the nastier case for anyone who retries). It can raise an AWS error code, a read timeout,
or `InjectedCrash`, which models the process dying on the spot: it is a
BaseException, so no `except Exception` in the code under test can swallow it.

Stand-ins answer calls for services the embedded AWS does not emulate (moto's bedrock-runtime answers
InvokeModel with an empty body), so the real provider code runs against documented response shapes.
"""

from __future__ import annotations

import base64
import io
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody

from devtools import aws_hooks

# AWS error codes and the HTTP status AWS sends them with.
_ERROR_STATUS = {
    "ThrottlingException": 400,
    "ProvisionedThroughputExceededException": 400,
    "RequestLimitExceeded": 400,
    "SlowDown": 503,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
    "InternalError": 500,
    "InternalServerError": 500,
    "InternalServerException": 500,
    "ModelTimeoutException": 408,
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
}
CRASH = "crash"
TIMEOUT = "timeout"
HTTP_ATTEMPT = "HTTP attempt"  # the operation name faults below the SDK's retries see

Answer = Callable[[dict], dict]
Observer = Callable[[str, str, dict], None]  # (service, operation, params) of a call that succeeded


class InjectedCrash(BaseException):
    """The process dies here (a Lambda timeout, out of memory): nothing after this point runs."""


@dataclass(frozen=True)
class Fault:
    """Which calls fail, how and how often. `service` is botocore's name: s3, dynamodb, sqs, bedrock-runtime."""

    service: str
    operation: str | None = None  # None: every operation of the service
    when: Literal["before", "after"] = "before"
    error: str = "InternalError"  # an AWS error code, TIMEOUT or CRASH
    rate: float = 1.0
    times: int | None = None  # stop after striking this many times
    where: Callable[[dict], bool] | None = None  # only calls whose parameters match
    message: str = "injected fault"

    def matches(self, service: str, operation: str, params: dict) -> bool:
        return (
            service == self.service
            and self.operation in (None, operation)
            and (self.where is None or self.where(params))
        )

    def attempt_exception(self, url: str) -> BaseException:
        """What one HTTP attempt fails with: the SDK retries both errors, as it would in AWS."""
        if self.error == CRASH:
            return InjectedCrash(f"{self.service} HTTP attempt {self.when}: {self.message}")
        if self.when == "after":
            return ReadTimeoutError(endpoint_url=url)
        return EndpointConnectionError(endpoint_url=url)

    def exception(self, operation: str) -> BaseException:
        if self.error == CRASH:
            return InjectedCrash(f"{self.service}.{operation} {self.when}: {self.message}")
        if self.error == TIMEOUT:
            return ReadTimeoutError(endpoint_url=f"https://{self.service}.injected")
        response = {
            "Error": {"Code": self.error, "Message": self.message},
            "ResponseMetadata": {"HTTPStatusCode": _ERROR_STATUS.get(self.error, 400)},
        }
        return ClientError(response, operation)


class FaultInjector(aws_hooks.Listener):
    """Fail AWS calls while active; count calls and the faults that struck, per (service, operation).

    Thread-safe, and reproducible for a given seed in a single thread.
    """

    def __init__(
        self,
        faults: Sequence[Fault] = (),
        *,
        seed: int = 0,
        answers: dict[tuple[str, str], Answer] | None = None,
        observers: Sequence[Observer] = (),
        below_retries: bool = False,
    ) -> None:
        self.faults = list(faults)
        self.below_retries = below_retries
        self.answers = dict(answers or {})
        self.observers = list(observers)
        self.calls: Counter[tuple[str, str]] = Counter()
        self.struck: Counter[tuple[str, str, str, str]] = Counter()  # (service, operation, when, error)
        self._strikes: Counter[int] = Counter()
        self._random = random.Random(seed)  # noqa: S311 - a reproducible fault schedule, not a secret
        self._lock = threading.Lock()
        self.enabled = True

    @contextmanager
    def active(self) -> Iterator[FaultInjector]:
        """Strike while the block runs.

        By default faults strike each API call as the code sees it, after the SDK's own retries. With
        `below_retries`, they strike each HTTP attempt instead, as a network or a service does: the SDK
        retries them as it would in AWS (an attempt that took effect and lost its answer is sent again),
        `where` cannot see the parameters there, and the error is a refused connection before, or a read
        timeout after. Calls a stand-in answers have no HTTP attempt: their faults strike the call.
        """
        with aws_hooks.listening(self):
            yield self

    # ------------------------------------------------------------ aws_hooks.Listener
    def _striking_call(self, call: aws_hooks.Call) -> bool:
        return not self.below_retries or (call.service, call.operation) in self.answers

    def call_started(self, call: aws_hooks.Call) -> None:
        with self._lock:
            self.calls[(call.service, call.operation)] += 1

    def before_call(self, call: aws_hooks.Call) -> dict | None:
        if self._striking_call(call):
            self._strike(call.service, call.operation, call.params, "before")
        answer = self.answers.get((call.service, call.operation))
        return answer(call.params) if answer else None

    def after_call(self, call: aws_hooks.Call, response: dict) -> None:
        for observe in self.observers:
            observe(call.service, call.operation, call.params)
        if self._striking_call(call):
            self._strike(call.service, call.operation, call.params, "after")

    def before_send(self, attempt: aws_hooks.Attempt) -> None:
        if self.below_retries:
            self._strike(attempt.service, HTTP_ATTEMPT, {}, "before", url=attempt.url)

    def after_send(self, attempt: aws_hooks.Attempt, response: object) -> None:
        if self.below_retries:
            self._strike(attempt.service, HTTP_ATTEMPT, {}, "after", url=attempt.url)

    def _strike(self, service: str, operation: str, params: dict, when: str, *, url: str = "") -> None:
        if not self.enabled:
            return
        for index, fault in enumerate(self.faults):
            # `where` runs outside the lock: it may call AWS itself, from other threads too
            if fault.when != when or not fault.matches(service, operation, params):
                continue
            with self._lock:
                if fault.times is not None and self._strikes[index] >= fault.times:
                    continue
                if fault.rate < 1.0 and self._random.random() >= fault.rate:
                    continue
                self._strikes[index] += 1
                self.struck[(service, operation, when, fault.error)] += 1
            raise fault.exception(operation) if operation != HTTP_ATTEMPT else fault.attempt_exception(url)

    def strikes(self, fault: Fault) -> int:
        """How many times one of this injector's faults struck."""
        return self._strikes[self.faults.index(fault)]


def updates_attribute(name: str) -> Callable[[dict], bool]:
    """A `where` for DynamoDB UpdateItem calls that write the named attribute (PynamoDB names them #0, #1...)."""

    def matches(params: dict) -> bool:
        return name in (params.get("ExpressionAttributeNames") or {}).values() and name in _set_names(params)

    return matches


def _set_names(params: dict) -> set[str]:
    """Attribute names the update expression SETs (not just mentions in its condition)."""
    names = params.get("ExpressionAttributeNames") or {}
    expression = params.get("UpdateExpression", "")
    set_clause = expression.split("SET", 1)[1] if "SET" in expression else ""
    for keyword in ("REMOVE", "ADD", "DELETE"):
        set_clause = set_clause.split(keyword, 1)[0]
    return {name for placeholder, name in names.items() if f"{placeholder} =" in set_clause}


def bedrock_stand_in(png: bytes, *, refuse: Callable[[str], bool] = lambda prompt: False) -> Answer:
    """Answer bedrock-runtime InvokeModel as a Stability image model does (the documented response body):
    the image, or the content filter's finish reason for prompts that `refuse` picks."""

    def invoke_model(params: dict) -> dict:
        prompt = json.loads(params["body"])["prompt"]
        body = (
            {"seeds": [0], "finish_reasons": ["Filter reason: prompt"], "images": []}
            if refuse(prompt)
            else {"seeds": [0], "finish_reasons": [None], "images": [base64.b64encode(png).decode()]}
        )
        raw = json.dumps(body).encode()
        return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}

    return invoke_model
