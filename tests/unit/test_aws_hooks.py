"""One hook for AWS calls: request counting, fault injection and call recording are listeners of
devtools.aws_hooks, see the same calls, and compose in any order."""

from __future__ import annotations

import itertools
from collections import Counter
from contextlib import ExitStack

import boto3
import pytest
from botocore.client import BaseClient
from botocore.endpoint import Endpoint
from botocore.exceptions import ClientError

from bench.counting import measure
from devtools import aws_hooks
from devtools.aws_calls import CallRecorder
from devtools.faults import Fault, FaultInjector
from devtools.seed import put_items, trip

REGION = "us-east-1"


def key(trip_id: str) -> dict:
    return {"PK": {"S": "USER#ann"}, "SK": {"S": f"TRIP#{trip_id}"}}


class Journal(aws_hooks.Listener):
    """Writes down what the hook tells it, in order."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def call_started(self, call):
        self.log.append(f"{self.name} started {call.operation}")

    def before_call(self, call):
        self.log.append(f"{self.name} before {call.operation}")

    def after_call(self, call, response):
        self.log.append(f"{self.name} after {call.operation}")

    def call_ended(self, call, response, error):
        self.log.append(f"{self.name} ended {call.operation} {type(error).__name__ if error else 'ok'}")


@pytest.mark.parametrize("order", list(itertools.permutations(["counter", "faults", "recorder"])))
def test_a_counter_a_fault_injector_and_a_recorder_see_the_same_calls_in_any_order(tables, order):
    table = tables.physical("TravelTable")
    put_items(table, [trip("ann", "t1", "Trip", "2026-01-01T00:00:00.000Z")])
    client = boto3.client("dynamodb", region_name=REGION)
    injector = FaultInjector(
        [
            Fault("dynamodb", "GetItem", error="ThrottlingException", times=1),  # the first read fails
            Fault("dynamodb", "PutItem", when="after", times=1),  # the write lands, its answer is lost
        ]
    )
    recorder = CallRecorder()

    with ExitStack() as listeners:
        started = {
            "counter": lambda: listeners.enter_context(measure()),
            "faults": lambda: listeners.enter_context(injector.active()),
            "recorder": lambda: listeners.enter_context(recorder.installed()),
        }
        counts = [started[name]() for name in order][order.index("counter")]
        listeners.enter_context(recorder.running("api"))
        with pytest.raises(ClientError, match="ThrottlingException"):
            client.get_item(TableName=table, Key=key("t1"))
        assert "Item" in client.get_item(TableName=table, Key=key("t1"))
        with pytest.raises(ClientError, match="InternalError"):
            client.put_item(TableName=table, Item={**key("t2"), "title": {"S": "Second"}})
        client.query(
            TableName=table, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "USER#ann"}}
        )

    made = {("dynamodb", "GetItem"): 2, ("dynamodb", "PutItem"): 1, ("dynamodb", "Query"): 1}
    assert counts.requests == made  # the counter counts the calls the faults failed too
    assert injector.calls == made
    assert Counter((c.service, c.operation) for c in recorder.calls) == made  # each needed its permission
    assert sum(injector.struck.values()) == 2
    assert counts.items_by("GetItem") == 1  # only the read that answered
    assert counts.items_by("Query") == 2  # the write whose answer was lost did land
    assert aws_hooks.active() == ()


def test_a_stand_in_answer_is_counted_and_recorded_like_any_call(tables):
    client = boto3.client("dynamodb", region_name=REGION)
    answer = {"TableNames": ["made-up"]}
    injector = FaultInjector(answers={("dynamodb", "ListTables"): lambda params: answer})
    recorder = CallRecorder()

    with measure() as counts, injector.active(), recorder.installed(), recorder.running("sweep"):
        assert client.list_tables() == answer

    assert counts.calls("ListTables") == 1
    assert [(c.function, c.operation) for c in recorder.calls] == [("sweep", "ListTables")]


def test_every_listener_is_told_each_step_in_registration_order_and_one_lost_answer_fails_the_call(tables):
    table = tables.physical("TravelTable")
    client = boto3.client("dynamodb", region_name=REGION)
    log: list[str] = []
    write_backs: list[str] = []
    losing = FaultInjector(
        [Fault("dynamodb", "PutItem", when="after")], observers=[lambda svc, op, params: write_backs.append(op)]
    )

    listeners = (Journal("first", log), losing, Journal("last", log))
    with aws_hooks.listening(*listeners), pytest.raises(ClientError):
        client.put_item(TableName=table, Item=key("t3"))

    assert log == [
        "first started PutItem",
        "last started PutItem",
        "first before PutItem",
        "last before PutItem",
        "first after PutItem",
        "last after PutItem",  # told that the write took effect, although `losing` lost its answer before
        "first ended PutItem ClientError",
        "last ended PutItem ClientError",
    ]
    assert write_backs == ["PutItem"]


def test_a_call_failed_before_it_reaches_aws_ends_failed_for_every_listener_and_takes_no_effect(tables):
    table = tables.physical("TravelTable")
    client = boto3.client("dynamodb", region_name=REGION)
    log: list[str] = []

    listeners = (FaultInjector([Fault("dynamodb", "PutItem")]), Journal("observer", log))
    with aws_hooks.listening(*listeners), pytest.raises(ClientError):
        client.put_item(TableName=table, Item=key("t4"))

    assert log == ["observer started PutItem", "observer ended PutItem ClientError"]
    assert "Item" not in client.get_item(TableName=table, Key=key("t4"))


def test_botocore_is_left_as_it_was_once_the_last_listener_leaves(tables):
    call, send = BaseClient._make_api_call, Endpoint._send

    with measure(), FaultInjector().active():
        assert BaseClient._make_api_call is not call
        with measure():
            pass
        assert BaseClient._make_api_call is not call  # still one listener (the other measure) plus faults

    assert (BaseClient._make_api_call, Endpoint._send) == (call, send)
    assert aws_hooks.active() == ()


def test_a_listener_cannot_listen_twice_at_once():
    injector = FaultInjector()
    with injector.active(), pytest.raises(RuntimeError, match="already listening"), injector.active():
        pass
    assert aws_hooks.active() == ()
