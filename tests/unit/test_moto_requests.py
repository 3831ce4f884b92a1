"""devtools.moto_requests: moto answers one request at a time, as AWS applies each one atomically."""

from __future__ import annotations

import threading

import boto3
from moto import mock_aws

from devtools import moto_requests


def test_a_request_waits_while_another_is_inside_moto() -> None:
    moto_requests.serialize()
    moto_requests.serialize()  # again: harmless, still one lock
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        done = threading.Event()

        def send() -> None:
            sqs.send_message(QueueUrl=url, MessageBody="x")
            done.set()

        with moto_requests._lock:  # as if another thread's request were being answered
            sender = threading.Thread(target=send)
            sender.start()
            assert not done.wait(0.3)
        assert done.wait(10)
        sender.join()
        assert (
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
            == "1"
        )
