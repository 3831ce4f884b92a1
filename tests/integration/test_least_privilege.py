"""Least privilege, proved: each function's IAM policy in template.yaml allows what its code calls, and no more.

The real handlers run through every code path that reaches AWS (devtools.aws_calls records each call and
which handler made it); each call becomes the IAM requests AWS would authorize (action, resource ARN,
condition keys), and the function's `Policies:` from the template, resolved against the local stack,
must allow every one of them. The other way round, every action x resource that a statement grants must
be used by some recorded request, except the few listed in UNUSED_BY_DESIGN with their reasons; an
action pattern counts action by action (IAM's own action list says what it expands to), and a resource
pattern is allowed only where WILDCARD_RESOURCES says why no name will do.

Only the function's own `Policies:` count. SAM adds more to each role, for Lambda's machinery rather than
for our code: AWSLambdaBasicExecutionRole (logs), AWSXrayWriteOnlyAccess (Tracing: Active),
AWSLambdaSQSQueueExecutionRole for the SQS pollers of the worker and tasks functions (sqs:ReceiveMessage,
DeleteMessage, GetQueueAttributes on "*"), AWSLambdaDynamoDBExecutionRole for the indexer's stream, and
sqs:SendMessage on TaskDeadLetterQueue for the indexer's OnFailure destination. Our code must not lean on
any of those, so a call that only they would allow fails here.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from types import ModuleType
from typing import Any

import boto3
import pytest
import time_machine
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from PIL import Image

from devtools.aws_calls import AwsCall, CallRecorder
from devtools.lambda_runtime import LambdaContext, http_event, load_event, load_handler, sqs_event
from devtools.seed import ALICE, BOB, put_items, reservation, sample_items, segment, trip
from devtools.streams import LocalStream
from devtools.template_resources import ACCOUNT, LocalStack, build_stack
from image_recovery import aws, recovery
from image_recovery.errors import ContentFilteredError, TransientGenerationError
from image_recovery.governor import Budget, DynamoBudgetStore
from image_recovery.providers.bedrock import PROFILE_PREFIXES
from image_recovery.providers.local import LocalImageProvider
from tests.helpers import REGION, call_api, table_item

pytestmark = pytest.mark.integration

FUNCTIONS = ("api", "worker", "sweep", "indexer", "tasks")  # functions/<name>/, one per template function
HAS_IMAGE = "https://images.example.com/x.png"
LONG_AGO = "2020-01-01T00:00:00.000Z"  # before any stuck-job cut-off

# Granted but unused by any code path on purpose: (function, statement Sid, action) -> why.
UNUSED_BY_DESIGN: dict[tuple[str, str, str], str] = {
    ("worker", "IdempotencyTable", "dynamodb:GetItem"): (
        "Powertools idempotency reads a record with GetItem only when a failed conditional PutItem comes "
        "back without the existing item (ReturnValuesOnConditionCheckFailure=ALL_OLD normally returns it); "
        "GetItem is part of the persistence layer's documented IAM requirement, so it stays granted."
    ),
}

# Resources granted by pattern rather than by name: (function, statement Sid) -> (the narrowest pattern that
# will do, in the template's !Sub syntax; why no name will do).
WILDCARD_RESOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("worker", "ImageObjects"): (
        "${ImageBucket.Arn}/images/*",
        "object keys are data, images/<user>/<type>/<record id>/<job id>.png (storage.image_key)",
    ),
    ("indexer", "ImageUpkeep"): ("${ImageBucket.Arn}/images/*", "the images of any record the host changes"),
    ("tasks", "BucketAudit"): ("${ImageBucket.Arn}/images/*", "the audit removes images of any record"),
}


# ====================================================================== the IAM side
@cache
def iam_actions() -> dict[str, frozenset[str]]:
    """Every IAM action of every service, lower case ("sqs" -> {"sendmessage", ...}), from cfn-lint's data."""
    data = json.loads((files("cfnlint.data.AdditionalSpecs") / "Policies.json").read_text())
    return {service: frozenset(spec.get("Actions", {})) for service, spec in data.items()}


@cache
def glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM's wildcards: * any run of characters (including / and :), ? exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def action_matches(pattern: str, action: str) -> bool:
    return glob(pattern, ignore_case=True).fullmatch(action) is not None


def expand_action(pattern: str) -> list[str]:
    """The concrete actions an action pattern grants, e.g. sqs:SendMessage* -> [sqs:sendmessage]."""
    service, _, name = pattern.partition(":")
    known = iam_actions().get(service.lower())
    assert known, f"{pattern}: no IAM service {service!r}"
    expanded = sorted(f"{service.lower()}:{a}" for a in known if action_matches(name, a))
    assert expanded, f"{pattern} matches no {service} action: a typo?"
    return expanded


@dataclass(frozen=True)
class Grant:
    """One action pattern on one resource pattern, from one Allow statement of a function's Policies."""

    sid: str
    action: str
    resource: str
    condition: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Request:
    """What AWS authorizes for (part of) one call: an action on a resource, with its condition keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict, hash=False)
    call: AwsCall | None = field(default=None, compare=False, hash=False)

    def __str__(self) -> str:
        keys = f" {dict(self.context)}" if self.context else ""
        via = f" (via {self.call.service} {self.call.operation})" if self.call else ""
        return f"{self.action} on {self.resource}{keys}{via}"


def condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    """The condition operators the template uses; any other fails loudly rather than being ignored."""
    for operator, tests in condition.items():
        if operator not in ("StringEquals", "StringLike"):
            raise NotImplementedError(f"condition operator {operator}: teach this test how IAM evaluates it")
        for key, expected in tests.items():
            actual = context.get(key.lower())
            if actual is None:  # IAM: a key the request does not carry fails the test
                return False
            values = expected if isinstance(expected, list) else [expected]
            if operator == "StringEquals" and actual not in values:
                return False
            if operator == "StringLike" and not any(glob(v).fullmatch(actual) for v in values):
                return False
    return True


def allows(grant: Grant, request: Request) -> bool:
    return (
        action_matches(grant.action, request.action)
        and glob(grant.resource).fullmatch(request.resource) is not None
        and condition_holds(grant.condition, request.context)
    )


def _sqs_send_message_policy(stack: LocalStack, parameters: Mapping[str, Any]) -> list[dict]:
    queue = stack.resolve(parameters["QueueName"])
    return [
        {
            "Effect": "Allow",
            "Action": ["sqs:SendMessage*"],
            "Resource": f"arn:aws:sqs:{stack.region}:{ACCOUNT}:{queue}",
        }
    ]


# SAM policy templates that template.yaml uses, expanded as aws-sam-translator (1.115.0,
# samtranslator/policy_templates_data/policy_templates.json) expands them. Any other template fails the
# test until it is added here: a grant this test cannot see is a grant nobody checks. SQSSendMessagePolicy
# grants the family sqs:SendMessage*, which IAM's action list holds one member of: sqs:SendMessage (it
# also authorizes SendMessageBatch), so the family is used in full when SendMessage is.
SAM_POLICY_TEMPLATES: dict[str, Callable[[LocalStack, Mapping[str, Any]], list[dict]]] = {
    "SQSSendMessagePolicy": _sqs_send_message_policy,
}


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def function_grants(stack: LocalStack, logical_id: str) -> list[Grant]:
    """Every grant in the function's Policies, intrinsics resolved against the local stack."""
    grants = []
    for number, entry in enumerate(stack.template["Resources"][logical_id]["Properties"].get("Policies", [])):
        if isinstance(entry, str):
            raise NotImplementedError(f"{logical_id} attaches managed policy {entry}: this test cannot read it")
        if "Statement" in entry:
            # resolved first: a statement may itself be an Fn::If (the Bedrock grants depend on the model id)
            statements, origin = stack.resolve(entry["Statement"]), f"Policies[{number}]"
        else:
            ((name, parameters),) = entry.items()
            assert name in SAM_POLICY_TEMPLATES, f"{logical_id} uses SAM policy template {name}: expand it above"
            statements, origin = SAM_POLICY_TEMPLATES[name](stack, parameters), f"{name}[{number}]"
        for index, statement in enumerate(statements):
            sid = statement.get("Sid", f"{origin}.Statement[{index}]")
            unknown = set(statement) - {"Sid", "Effect", "Action", "Resource", "Condition"}
            assert not unknown, f"{logical_id} {sid}: {sorted(unknown)} is not evaluated by this test"
            assert statement["Effect"] == "Allow", f"{logical_id} {sid}: only Allow statements are evaluated"
            condition = stack.resolve(statement.get("Condition", {}))
            for action in _listed(statement["Action"]):
                for resource in _listed(stack.resolve(statement["Resource"])):
                    grants.append(Grant(sid, action, resource, condition))
    return grants


# ====================================================================== calls -> IAM requests
def invoke_requests(action: str, model_id: str, region: str, destination: str | None = None) -> list[Request]:
    """What AWS authorizes for one InvokeModel call: the foundation model in the call's region; or, for a
    cross-region inference profile id, the profile in the call's region and the foundation model in the
    region the profile routes the call to (`destination`; "" for the region-less ARN of a global profile),
    with the profile's ARN as `bedrock:InferenceProfileArn`."""
    prefix, _, model = model_id.partition(".")
    if prefix not in PROFILE_PREFIXES or "." not in model:
        return [Request(action, f"arn:aws:bedrock:{region}::foundation-model/{model_id}")]
    profile = f"arn:aws:bedrock:{region}:{ACCOUNT}:inference-profile/{model_id}"
    routed_to = region if destination is None else destination
    return [
        Request(action, profile),
        Request(
            action, f"arn:aws:bedrock:{routed_to}::foundation-model/{model}", {"bedrock:inferenceprofilearn": profile}
        ),
    ]


def _table_arn(call: AwsCall, table: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{call.region}:{ACCOUNT}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _queue_arn(call: AwsCall) -> str:
    account, name = call.params["QueueUrl"].rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{call.region}:{account}:{name}"


_DYNAMODB_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_SQS = {
    "SendMessage": "SendMessage",
    "SendMessageBatch": "SendMessage",
    "ChangeMessageVisibility": "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    "DeleteMessage": "DeleteMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ReceiveMessage": "ReceiveMessage",
    "GetQueueAttributes": "GetQueueAttributes",
}
_S3_OBJECT = {
    "PutObject": "PutObject",
    "GetObject": "GetObject",
    "HeadObject": "GetObject",
    "DeleteObject": "DeleteObject",
}


def iam_requests(call: AwsCall) -> list[Request]:
    """What AWS authorizes for one call. An operation not mapped here fails: map it, then grant it."""
    p, op = call.params, call.operation
    requests: list[Request] = []
    if call.service == "dynamodb":
        if op in ("BatchGetItem", "BatchWriteItem"):
            requests = [Request(f"dynamodb:{op}", _table_arn(call, table)) for table in p["Tables"]]
        elif op in ("TransactWriteItems", "TransactGetItems"):
            requests = [
                Request(f"dynamodb:{'GetItem' if kind == 'Get' else _DYNAMODB_TRANSACT[kind]}", _table_arn(call, table))
                for kind, table in p["TransactItems"]
            ]
        elif op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable"):
            requests = [Request(f"dynamodb:{op}", _table_arn(call, p["TableName"], p.get("IndexName")))]
    elif call.service == "s3":
        bucket = f"arn:aws:s3:::{p['Bucket']}"
        if op in _S3_OBJECT:
            requests = [Request(f"s3:{_S3_OBJECT[op]}", f"{bucket}/{p['Key']}")]
        elif op == "CopyObject":  # the destination is written, the source read
            source = p["CopySource"]
            requests = [
                Request("s3:PutObject", f"{bucket}/{p['Key']}"),
                Request("s3:GetObject", f"arn:aws:s3:::{source['Bucket']}/{source['Key']}"),
            ]
        elif op == "DeleteObjects":  # authorized as s3:DeleteObject on each key
            requests = [Request("s3:DeleteObject", f"{bucket}/{key}") for key in p["Keys"]]
        elif op in ("ListObjectsV2", "ListObjects"):
            context = {"s3:prefix": p["Prefix"]} if "Prefix" in p else {}
            requests = [Request("s3:ListBucket", bucket, context)]
    elif call.service == "sqs" and op in _SQS:
        requests = [Request(f"sqs:{_SQS[op]}", _queue_arn(call))]
    elif call.service == "events" and op == "PutEvents":
        requests = [
            Request("events:PutEvents", f"arn:aws:events:{call.region}:{ACCOUNT}:event-bus/{bus}")
            for bus in p["EventBuses"]
        ]
    elif call.service == "bedrock-runtime" and op in ("InvokeModel", "InvokeModelWithResponseStream"):
        requests = invoke_requests(f"bedrock:{op}", p["modelId"], call.region)
    elif call.service == "bedrock" and op == "GetFoundationModel":
        model = p["modelIdentifier"]
        requests = [Request(f"bedrock:{op}", f"arn:aws:bedrock:{call.region}::foundation-model/{model}")]
    if not requests:
        raise NotImplementedError(f"no IAM mapping for {call.service} {op}: add one to iam_requests")
    for request in requests:
        service, _, name = request.action.partition(":")
        assert service == call.signing_name, f"{request.action} is not authorized by {call.signing_name}"
        assert name.lower() in iam_actions()[service], f"{request.action} is not an IAM action"
    return [Request(r.action, r.resource, {k.lower(): v for k, v in r.context.items()}, call) for r in requests]


# ====================================================================== driving every handler
class World:
    """A fresh local stack on moto, built from template.yaml as the `stack` fixture builds it, whose
    handlers (loaded with the environment the template gives them) have their calls recorded."""

    def __init__(self, recorder: CallRecorder, parameters: dict[str, str] | None = None) -> None:
        self.recorder = recorder
        self._parameters = parameters
        self._mock = mock_aws()
        self._stream: LocalStream | None = None

    def __enter__(self) -> World:
        self._mock.start()
        aws.reset()
        self.stack = build_stack(region=REGION, parameters=self._parameters)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        return self

    def __exit__(self, *exc: object) -> None:
        aws.reset()
        self._mock.stop()

    def handler(self, name: str, **overrides: str) -> ModuleType:
        environment = self.stack.function_environment(self.stack.function_logical_ids()[name]) | overrides
        with pytest.MonkeyPatch.context() as env:
            for key, value in environment.items():
                env.setenv(key, value)
            with self.recorder.running(name):  # a cold start's calls are the function's too
                module = load_handler(name)
        return self.recorder.attribute(module, name)

    def deliver_stream(self, indexer: ModuleType) -> int:
        self._stream = self._stream or LocalStream(self.stack)
        return self._stream.deliver(indexer)

    def api(self, api: ModuleType, sample: str, **kwargs: Any) -> tuple[int, dict]:
        return call_api(api, http_event(sample, **kwargs))

    def receive(self, logical_id: str = "JobQueue") -> list[dict]:
        return self.sqs.receive_message(
            QueueUrl=self.stack.physical(logical_id), MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])

    def deliver(self, function: ModuleType, messages: list[dict], logical_id: str = "JobQueue", **context: Any) -> dict:
        """One invocation as Lambda's poller makes it: delete what succeeded, make the failures visible again."""
        url = self.stack.physical(logical_id)
        response = function.lambda_handler(sqs_event(messages, self.stack.arns[logical_id]), LambdaContext(**context))
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return response

    def drain(self, function: ModuleType, logical_id: str = "JobQueue", **context: Any) -> int:
        """Feed the queue to the function until it is empty; every invocation must succeed."""
        handled = 0
        for _ in range(200):
            messages = self.receive(logical_id)
            if not messages:
                return handled
            assert self.deliver(function, messages, logical_id, **context) == {"batchItemFailures": []}
            handled += len(messages)
        raise AssertionError(f"{logical_id} never emptied")

    def record(self, user: str, sk: str) -> dict:
        item = table_item(self.stack, f"USER#{user}", sk)
        assert item is not None
        return item

    def update(self, user: str, sk: str, **values: Any) -> None:
        """Another writer changes a record (setup: not recorded)."""
        names = {f"#{n}": n for n in values}
        self.dynamodb.update_item(
            TableName=self.stack.physical("TravelTable"),
            Key={"PK": {"S": f"USER#{user}"}, "SK": {"S": sk}},
            UpdateExpression="SET " + ", ".join(f"#{n} = :{n}" for n in values),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                f":{n}": {"N": str(v)} if isinstance(v, int) else {"S": v} for n, v in values.items()
            },
        )

    def index_complete(self) -> bool:
        state = self.dynamodb.get_item(
            TableName=self.stack.physical("BatchTable"), Key={"batchId": {"S": "service#index"}}, ConsistentRead=True
        ).get("Item", {})
        return "indexCompleteAt" in state


def sweep(world: World) -> dict:
    """One scheduled sweep, Bedrock's control plane stubbed: the first of the day checks the worker's model."""
    model = world.stack.function_environment("SweepFunction")["BEDROCK_MODEL_ID"]
    details = {"modelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{model}", "modelId": model}
    with Stubber(aws.client("bedrock")) as stubber:
        stubber.add_response(
            "get_foundation_model", {"modelDetails": details | {"modelLifecycle": {"status": "ACTIVE"}}}
        )
        return world.handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())


def many_trips(user: str, count: int, prefix: str, image: object = "") -> list[dict]:
    return [
        trip(user, f"{prefix}{n:04}", f"Trip {n}", f"2025-06-01T00:{n // 60:02}:{n % 60:02}.000Z", image)
        for n in range(count)
    ]


def queue_ids(world: World, api: ModuleType, user: str, **ids: list[str]) -> dict:
    status, body = world.api(api, "api-queue-selected.json", sub=user, body=ids)
    assert status == 202, body
    return body


def the_index_from_first_deployment_to_complete(world: World) -> None:
    """API, sweep and tasks reading the table while the index is not known complete; the stream function
    going live; the repair scan completing the index; then the API, sweep and tasks reading the index."""
    put_items(
        world.stack.physical("TravelTable"),
        [
            *sample_items(),
            # a missing reservation whose trip and segment have images: listing must fetch those parents
            trip(ALICE, "t-lisbon", "Lisbon", "2026-01-01T00:00:00.000Z", HAS_IMAGE),
            segment(ALICE, "t-lisbon", "s-porto", "Porto to Lisbon", "2026-01-01T00:01:00.000Z", HAS_IMAGE),
            reservation(ALICE, "t-lisbon", "s-porto", "r-tram", "Tram 28", "2026-01-01T00:02:00.000Z"),
            *many_trips(ALICE, 110, "a"),  # more than one request queues: queue-all fans out
            *many_trips(BOB, 110, "b"),
        ],
    )
    api = world.handler("api")
    status, styles = world.api(api, "api-list-styles.json")
    assert status == 200 and styles["styles"]
    status, images = world.api(api, "api-images.json", sub=ALICE, query={"trip": "trip-ski"})
    assert status == 200 and images["images"]
    status, listing = world.api(api, "api-list-missing-images.json", sub=ALICE)
    assert (status, listing["count"]) == (200, 116)
    chosen = queue_ids(
        world, api, ALICE, tripIds=["trip-euro", "trip-ski"], reservationIds=["res-eiffel", "res-nowhere"]
    )
    assert [i["outcome"] for i in chosen["items"]] == ["queued", "skipped", "queued", "failed"]
    status, everything = world.api(api, "api-queue-all.json", sub=ALICE)
    assert (status, everything["complete"]) == (202, False)  # the rest goes to a queue-missing task
    status, _ = world.api(api, "api-batch-progress.json", sub=ALICE, path_parameters={"batchId": chosen["batchId"]})
    assert status == 200
    status, _ = world.api(api, "api-batch-progress.json", sub=BOB, path_parameters={"batchId": chosen["batchId"]})
    assert status == 404
    queue_ids(world, api, BOB, retryFailed=True)
    assert world.drain(world.handler("tasks"), "TaskQueue", remaining_ms=1_000) >= 1  # queue-missing, from the table

    # with the index not known complete the sweep scans the whole table (and cannot complete the index:
    # the stream function has not been live)
    report = sweep(world)
    assert report["queued"] > 100
    assert not world.index_complete()

    world.deliver_stream(world.handler("indexer"))  # the stream function goes live
    put_items(world.stack.physical("TravelTable"), [trip(ALICE, "t-new", "New", "2026-05-01T00:00:00.000Z")])
    world.deliver_stream(world.handler("indexer", QUEUE_NEW_RECORDS="true"))
    assert world.record(ALICE, "TRIP#t-new")["imageStatus"] == "queued"

    # the scheduled repair scan: one chain of tasks per segment, a page per invocation
    repair = world.handler("tasks", REPAIR_SEGMENTS="2", REPAIR_PAGE_SIZE="40")
    started = repair.lambda_handler(load_event("tasks-repair-scheduled.json"), LambdaContext())
    assert started == {"repairSegmentsStarted": 2}
    assert world.drain(repair, "TaskQueue", remaining_ms=1_000) > 2  # segments sent themselves on
    assert world.index_complete()

    # from here on, fresh containers read the sparse index
    world.update(ALICE, "TRIP#a0000", imageStatus="generating", imageUpdatedAt=LONG_AGO)  # stuck
    report = sweep(world)
    assert (report["stuck"], report["queued"]) == (1, 1)
    api = world.handler("api")
    with pytest.MonkeyPatch.context() as monkeypatch:  # Alice's partition past the probe: the index plan
        monkeypatch.setattr(recovery, "PARTITION_PROBE_ITEMS", 100)
        status, listing = world.api(api, "api-list-missing-images.json", sub=ALICE)
    tram = next(r for r in listing["reservations"] if r["id"] == "r-tram")
    assert (tram["tripTitle"], tram["segmentName"]) == ("Lisbon", "Porto to Lisbon")
    chosen = queue_ids(world, api, ALICE, tripIds=["t-lisbon"], reservationIds=["r-tram"])
    assert [i["reason"] for i in chosen["items"]] == ["has_image", "already_queued"]
    status, everything = world.api(api, "api-queue-all.json", sub=BOB)
    assert (status, everything["complete"]) == (202, False)
    assert world.drain(world.handler("tasks"), "TaskQueue", remaining_ms=1_000) == 1  # queue-missing, from the index


def raising(error: Exception) -> Callable[..., Any]:
    def generate(*_: object) -> Any:
        raise error

    return generate


def stability_response() -> dict:
    """An InvokeModel answer as a Stability image model gives it."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, "PNG")
    payload = {"seeds": [7], "finish_reasons": [None], "images": [base64.b64encode(buffer.getvalue()).decode()]}
    raw = json.dumps(payload).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}


def every_worker_path(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Success, a regeneration, a transient failure and then success, a deleted record, a stuck job's lost
    message sent again by the sweep (the image its lost delivery stored replaced) and the lost delivery turning
    up at last, a permanent failure, the last attempt failing, and the Bedrock provider as the template
    configures it."""
    put_items(
        world.stack.physical("TravelTable"),
        [
            *sample_items(),
            trip(ALICE, "t-gone", "Gone", "2026-04-01T00:00:00.000Z"),
            trip(ALICE, "t-stuck", "Stuck", "2026-04-02T00:00:00.000Z"),
        ],
    )
    world.deliver_stream(world.handler("indexer"))
    api = world.handler("api")
    worker = world.handler("worker", IMAGE_PROVIDER="local")  # Pillow draws; Bedrock comes last
    draw = LocalImageProvider.generate
    bucket = world.stack.physical("ImageBucket")
    s3 = boto3.client("s3", region_name=REGION)

    # success for each kind (a segment and a reservation read their parents)
    queue_ids(world, api, ALICE, tripIds=["trip-euro"], segmentIds=["seg-paris-rome"], reservationIds=["res-eiffel"])
    assert world.drain(worker) == 3

    # a person asks for a new image of a record that has one: queued, generated, the replaced object deleted
    status, regenerated = world.api(
        api, "api-queue-regenerate.json", sub=ALICE, body={"tripIds": ["trip-euro"], "regenerate": True}
    )
    assert (status, regenerated["items"][0]["outcome"]) == (202, "queued")
    assert world.drain(worker) == 1
    assert "imageReplaces" not in world.record(ALICE, "TRIP#trip-euro")

    # throttled once, then generated on the next delivery
    calls: list[object] = []

    def throttled_once(provider: LocalImageProvider, request: object) -> Any:
        calls.append(request)
        if len(calls) == 1:
            raise TransientGenerationError("throttled", "ThrottlingException")
        return draw(provider, request)

    monkeypatch.setattr(LocalImageProvider, "generate", throttled_once)
    queue_ids(world, api, ALICE, tripIds=["trip-summer"])
    assert world.deliver(worker, world.receive())["batchItemFailures"]
    assert world.drain(worker) == 1
    assert world.record(ALICE, "TRIP#trip-summer")["imageStatus"] == "ready"
    monkeypatch.setattr(LocalImageProvider, "generate", draw)

    # the record was deleted before its job ran
    queue_ids(world, api, ALICE, tripIds=["t-gone"])
    world.dynamodb.delete_item(
        TableName=world.stack.physical("TravelTable"), Key={"PK": {"S": f"USER#{ALICE}"}, "SK": {"S": "TRIP#t-gone"}}
    )
    assert world.drain(worker) == 1

    # a job's message is lost after it stored its image; the sweep sends it again, the next delivery stores
    # its image over the lost one's, and the lost message, turning up at last, changes nothing
    queue_ids(world, api, ALICE, tripIds=["t-stuck"])
    (lost,) = world.receive()
    world.sqs.delete_message(QueueUrl=world.stack.physical("JobQueue"), ReceiptHandle=lost["ReceiptHandle"])
    orphan = f"images/{ALICE}/trip/t-stuck/{json.loads(lost['Body'])['jobId']}.png"
    s3.put_object(Bucket=bucket, Key=orphan, Body=b"png")
    s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, orphan).last_modified -= dt.timedelta(hours=2)
    world.update(ALICE, "TRIP#t-stuck", imageStatus="generating", imageAttempts=1, imageUpdatedAt=LONG_AGO)
    report = sweep(world)
    assert report["stuck"] == 1
    assert world.drain(worker) == report["queued"]
    taken_over = world.record(ALICE, "TRIP#t-stuck")
    assert taken_over["imageStatus"] == "ready"
    kept = s3.list_objects_v2(Bucket=bucket, Prefix=f"images/{ALICE}/trip/t-stuck/")["Contents"]
    assert [o["Key"] for o in kept] == [taken_over["imageKey"]]  # the orphan is gone
    assert world.deliver(worker, [lost]) == {"batchItemFailures": []}  # the same job, done already

    put_items(
        world.stack.physical("TravelTable"),
        [
            trip(ALICE, "t-filtered", "Filtered", "2026-04-03T00:00:00.000Z"),
            trip(BOB, "t-last", "Last", "2026-04-04T00:00:00.000Z"),
            trip(ALICE, "t-bedrock", "Bedrock", "2026-04-05T00:00:00.000Z"),
        ],
    )

    # refused by the content filter: failed for good
    monkeypatch.setattr(LocalImageProvider, "generate", raising(ContentFilteredError("refused")))
    queue_ids(world, api, ALICE, tripIds=["t-filtered"])
    assert world.drain(worker) == 1
    assert world.record(ALICE, "TRIP#t-filtered")["imageError"] == "content_filtered"

    # throttled on the last allowed delivery: failed, and the message goes on to the dead-letter queue
    monkeypatch.setattr(LocalImageProvider, "generate", raising(TransientGenerationError("throttled", "slow down")))
    queue_ids(world, api, BOB, tripIds=["t-last"])
    (last,) = world.receive()
    max_receive = world.stack.function_environment("WorkerFunction")["MAX_RECEIVE_COUNT"]
    last = {**last, "Attributes": {**last["Attributes"], "ApproximateReceiveCount": max_receive}}
    assert world.deliver(worker, [last])["batchItemFailures"]
    assert world.record(BOB, "TRIP#t-last")["imageStatus"] == "failed"
    world.sqs.purge_queue(QueueUrl=world.stack.physical("JobQueue"))  # what the dead-letter move does
    monkeypatch.setattr(LocalImageProvider, "generate", draw)

    # the Bedrock provider with the template's own configuration, stubbed: one image, one throttle
    status, retried = world.api(api, "api-queue-selected.json", sub=BOB, body={"retryFailed": True})
    assert (status, retried["summary"]["trips"]["queued"]) == (202, 1)
    queue_ids(world, api, ALICE, tripIds=["t-bedrock"])
    bedrock_worker = world.handler("worker")
    with Stubber(aws.client("bedrock-runtime")) as stubber:
        stubber.add_response("invoke_model", stability_response())
        stubber.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=400)
        messages = world.receive()
        assert len(messages) == 2
        assert len(world.deliver(bedrock_worker, messages)["batchItemFailures"]) == 1
        stubber.assert_no_pending_responses()

    # the fleet's Bedrock budget is booked further ahead than an invocation can wait: the job is deferred, sent
    # again as a new delayed message, its record untouched
    put_items(world.stack.physical("TravelTable"), [trip(ALICE, "t-later", "Later", "2026-04-06T00:00:00.000Z")])
    queue_ids(world, api, ALICE, tripIds=["t-later"])
    budget = DynamoBudgetStore(lambda: world.dynamodb, world.stack.physical("BatchTable"))
    budget.apply(lambda _: (Budget(next_slot=time.time() + 70, rate=50.0), None))
    (deferred,) = [m for m in world.receive() if json.loads(m["Body"])["recordId"] == "t-later"]
    budgeted_worker = world.handler("worker", DAILY_IMAGE_BUDGET="1")  # takes a unit, gives it back when deferred
    assert world.deliver(budgeted_worker, [deferred]) == {"batchItemFailures": []}
    assert world.record(ALICE, "TRIP#t-later")["imageStatus"] == "queued"

    # the day's image budget: the API reads it and refuses a request over it; a job over it waits, noted
    put_items(world.stack.physical("TravelTable"), [trip(BOB, f"t-day{n}", "Day", LONG_AGO) for n in range(2)])
    budgeted_api = world.handler("api", DAILY_IMAGE_BUDGET="1")
    assert world.api(budgeted_api, "api-budget.json", sub=BOB)[0] == 200
    over = {"tripIds": ["t-day0", "t-day1"]}
    assert world.api(budgeted_api, "api-queue-selected.json", sub=BOB, body=over)[0] == 409
    queue_ids(world, budgeted_api, BOB, **over, confirmOverBudget=True)
    today = world.handler("worker", IMAGE_PROVIDER="local", DAILY_IMAGE_BUDGET="1")
    messages = [m for m in world.receive() if json.loads(m["Body"])["recordId"].startswith("t-day")]
    assert len(messages) == 2 and world.deliver(today, messages) == {"batchItemFailures": []}
    waiting = [world.record(BOB, f"TRIP#t-day{n}").get("imageError") for n in range(2)]
    assert set(waiting) == {"budget_exhausted", None}


def images_the_host_leaves_behind(world: World) -> None:
    """The stream function removes the images of a deleted record and of one the host gave its own image,
    and gives a copied record its own copy; the repair run's audit removes an image nothing points at."""
    put_items(world.stack.physical("TravelTable"), sample_items())
    indexer = world.handler("indexer")
    world.deliver_stream(indexer)
    queue_ids(world, world.handler("api"), ALICE, tripIds=["trip-euro", "trip-summer"], segmentIds=["seg-paris-rome"])
    world.drain(world.handler("worker", IMAGE_PROVIDER="local"))
    world.deliver_stream(indexer)
    world.dynamodb.delete_item(
        TableName=world.stack.physical("TravelTable"), Key={"PK": {"S": f"USER#{ALICE}"}, "SK": {"S": "TRIP#trip-euro"}}
    )
    world.update(ALICE, "TRIP#trip-summer", imageUrl="https://host.example.com/own.png")
    copy = world.dynamodb.get_item(
        TableName=world.stack.physical("TravelTable"),
        Key={"PK": {"S": f"USER#{ALICE}"}, "SK": {"S": "TRIP#trip-euro#SEGMENT#seg-paris-rome"}},
    )["Item"]
    world.dynamodb.put_item(TableName=world.stack.physical("TravelTable"), Item={**copy, "PK": {"S": f"USER#{BOB}"}})
    assert world.deliver_stream(indexer) > 0
    assert world.record(BOB, "TRIP#trip-euro#SEGMENT#seg-paris-rome")["imageKey"].startswith(f"images/{BOB}/")
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=world.stack.physical("ImageBucket"), Key=f"images/{BOB}/trip/gone/lost.png", Body=b"x")
    tasks = world.handler("tasks")
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2), tick=True):
        tasks.lambda_handler(load_event("tasks-repair-scheduled.json"), LambdaContext())
        world.drain(tasks, "TaskQueue")
    listed = s3.list_objects_v2(Bucket=world.stack.physical("ImageBucket"), Prefix=f"images/{BOB}/trip/")
    assert listed.get("KeyCount", 0) == 0


@dataclass
class Usage:
    stack: LocalStack
    calls: dict[str, list[AwsCall]]

    def requests(self, function: str) -> list[Request]:
        return [request for call in self.calls.get(function, []) for request in iam_requests(call)]

    def grants(self, function: str) -> list[Grant]:
        return function_grants(self.stack, self.stack.function_logical_ids()[function])


@pytest.fixture(scope="module")
def usage() -> Usage:
    """Every handler through every path that reaches AWS, each call recorded with its function."""
    recorder = CallRecorder()
    with pytest.MonkeyPatch.context() as monkeypatch, recorder.installed():
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_DEV": "false",
        }.items():
            monkeypatch.setenv(name, value)
        with World(recorder) as world:
            the_index_from_first_deployment_to_complete(world)
        with World(recorder) as world:
            images_the_host_leaves_behind(world)
        with World(recorder) as world:
            every_worker_path(world, monkeypatch)
            stack = world.stack
    return Usage(stack, recorder.by_function())


# ====================================================================== the proofs
def test_every_function_of_the_template_is_driven_here(usage):
    assert sorted(usage.stack.function_logical_ids()) == sorted(FUNCTIONS)
    assert sorted(usage.calls) == sorted(FUNCTIONS)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_call_the_code_makes_is_allowed_by_the_functions_policies(usage, function):
    grants = usage.grants(function)
    denied = sorted({str(r) for r in usage.requests(function) if not any(allows(g, r) for g in grants)})
    assert denied == [], f"{function} makes calls its Policies do not allow:\n" + "\n".join(denied)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_permission_granted_is_used_by_some_code_path(usage, function):
    requests = usage.requests(function)
    unused: set[tuple[str, str, str]] = set()  # (Sid, concrete action, resource pattern)
    for grant in usage.grants(function):
        for action in expand_action(grant.action):  # a wildcard action must be used in full, one by one
            if not any(allows(Grant(grant.sid, action, grant.resource, grant.condition), r) for r in requests):
                unused.add((grant.sid, action, grant.resource))  # action in lower case, as IAM compares
    by_design = {(sid, action.lower()) for (f, sid, action) in UNUSED_BY_DESIGN if f == function}
    surplus = sorted(
        f"{sid}: {action} on {resource}" for sid, action, resource in unused if (sid, action) not in by_design
    )
    assert not surplus, f"{function} is granted what no code path uses:\n" + "\n".join(surplus)
    stale = sorted(by_design - {(sid, action) for sid, action, _ in unused})
    assert not stale, f"UNUSED_BY_DESIGN lists grants that some code path uses, or that are not granted: {stale}"


def test_resources_are_named_except_where_names_are_data(usage):
    patterns = {(f, g.sid): g.resource for f in FUNCTIONS for g in usage.grants(f) if {"*", "?"} & set(g.resource)}
    justified = {key: usage.stack.resolve({"Fn::Sub": pattern}) for key, (pattern, _) in WILDCARD_RESOURCES.items()}
    assert patterns == justified


def deployed_with(usage: Usage, **parameters: str) -> LocalStack:
    """The same local stack, its template deployed with these parameters."""
    stack = usage.stack
    return LocalStack(stack.template, stack.region, stack.prefix, stack.refs, stack.arns, parameters=parameters)


def bedrock_grants(stack: LocalStack) -> dict[str, list[Grant]]:
    return {
        function: [
            g for g in function_grants(stack, stack.function_logical_ids()[function]) if g.action.startswith("bedrock:")
        ]
        for function in FUNCTIONS
    }


def lifecycle_grants(granted: dict[str, list[Grant]]) -> list[tuple[str, str]]:
    """The sweep's Bedrock grants (the daily lifecycle check), taken out of `granted`."""
    return [(g.action, g.resource) for g in granted.pop("sweep") if not g.condition]


@pytest.mark.parametrize("model_id", ["stability.stable-image-core-v1:1", "stability.sd3-5-large-v1:0"])
def test_invoke_model_is_granted_on_the_configured_model_only(usage, model_id):
    """A foundation model id: the worker may invoke that model in its region and no other model; the sweep
    may read that model's details (its lifecycle) and nothing else of Bedrock."""
    granted = bedrock_grants(deployed_with(usage, BedrockModelId=model_id))

    assert [(g.action, g.resource, g.condition) for g in granted.pop("worker")] == [
        ("bedrock:InvokeModel", f"arn:aws:bedrock:{REGION}::foundation-model/{model_id}", {})
    ]
    assert lifecycle_grants(granted) == [
        ("bedrock:GetFoundationModel", f"arn:aws:bedrock:{REGION}::foundation-model/{model_id}")
    ]
    assert all(grants == [] for grants in granted.values())


def test_a_fallback_model_is_granted_to_the_worker_and_the_lifecycle_check_only_when_set(usage):
    fallback = "stability.sd3-5-large-v1:0"
    fallback_arn = f"arn:aws:bedrock:us-west-2::foundation-model/{fallback}"
    primary_arn = "arn:aws:bedrock:us-west-2::foundation-model/stability.stable-image-core-v1:1"
    granted = bedrock_grants(deployed_with(usage, FallbackModelId=fallback, BedrockRegion="us-west-2"))

    assert [(g.sid, g.action, g.resource, g.condition) for g in granted.pop("worker")] == [
        ("BedrockInvoke", "bedrock:InvokeModel", primary_arn, {}),
        ("BedrockInvokeFallback", "bedrock:InvokeModel", fallback_arn, {}),
    ]
    assert lifecycle_grants(granted) == [
        ("bedrock:GetFoundationModel", primary_arn),
        ("bedrock:GetFoundationModel", fallback_arn),
    ]
    assert all(grants == [] for grants in granted.values())
    without = bedrock_grants(deployed_with(usage, BedrockRegion="us-west-2"))
    assert [g.sid for g in without["worker"]] == ["BedrockInvoke"]
    assert [g.sid for g in without["sweep"]] == ["BedrockModelLifecycle"]


def test_the_sweep_checks_the_model_the_worker_invokes(usage):
    configured = usage.stack.function_environment("WorkerFunction")["BEDROCK_MODEL_ID"]
    checked = {r.resource for r in usage.requests("sweep") if r.action == "bedrock:GetFoundationModel"}
    assert checked == {f"arn:aws:bedrock:{REGION}::foundation-model/{configured}"}


def test_the_default_model_is_the_one_the_worker_invokes(usage):
    configured = usage.stack.function_environment("WorkerFunction")["BEDROCK_MODEL_ID"]
    invoked = {r.resource for r in usage.requests("worker") if r.action == "bedrock:InvokeModel"}
    assert invoked == {r.resource for r in invoke_requests("bedrock:InvokeModel", configured, REGION)}


@pytest.mark.parametrize("prefix", sorted(PROFILE_PREFIXES))
def test_an_inference_profile_id_is_granted_the_profile_and_its_model_through_it_only(usage, prefix):
    """A profile id: the profile in the stack's region, and its foundation model wherever the profile
    routes (AWS authorizes the model in the destination region; a global profile's is region-less), only
    as part of a call through that profile."""
    model = "stability.sd3-5-large-v1:0"
    profile_id = f"{prefix}.{model}"
    granted = bedrock_grants(deployed_with(usage, BedrockModelId=profile_id))
    worker = granted.pop("worker")
    profile_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{profile_id}"
    # the lifecycle check asks about the profile's foundation model
    assert lifecycle_grants(granted) == [
        ("bedrock:GetFoundationModel", f"arn:aws:bedrock:{REGION}::foundation-model/{model}")
    ]

    assert [(g.sid, g.action, g.resource, g.condition) for g in worker] == [
        ("BedrockInvokeInferenceProfile", "bedrock:InvokeModel", profile_arn, {}),
        (
            "BedrockInvokeThroughInferenceProfile",
            "bedrock:InvokeModel",
            f"arn:aws:bedrock:*::foundation-model/{model}",
            {"StringEquals": {"bedrock:InferenceProfileArn": profile_arn}},
        ),
    ]
    assert all(grants == [] for grants in granted.values())
    # every request such a call makes is allowed, wherever Bedrock routes it
    for destination in ("us-east-1", "us-east-2", "us-west-2", "eu-central-1", "ap-northeast-1", ""):
        calls = invoke_requests("bedrock:InvokeModel", profile_id, REGION, destination)
        assert [str(r) for r in calls if not any(allows(g, r) for g in worker)] == []
    # and nothing else: the model outside the profile, another model through it, another profile
    refused = [
        *invoke_requests("bedrock:InvokeModel", model, REGION),
        *invoke_requests("bedrock:InvokeModel", model, "us-west-2"),
        Request(
            "bedrock:InvokeModel",
            "arn:aws:bedrock:us-west-2::foundation-model/stability.stable-image-ultra-v1:1",
            {"bedrock:inferenceprofilearn": profile_arn},
        ),
        *invoke_requests("bedrock:InvokeModel", f"{prefix}.stability.stable-image-ultra-v1:1", REGION),
    ]
    assert [str(r) for r in refused if any(allows(g, r) for g in worker)] == []


def test_bedrock_region_grants_the_model_in_that_region_and_nowhere_else(usage):
    """BedrockRegion=us-west-2 (where the active image models are served), for a stack in us-east-1."""
    model = "stability.stable-image-core-v1:1"
    granted = bedrock_grants(deployed_with(usage, BedrockModelId=model, BedrockRegion="us-west-2"))
    worker = granted.pop("worker")

    assert [(g.action, g.resource, g.condition) for g in worker] == [
        ("bedrock:InvokeModel", f"arn:aws:bedrock:us-west-2::foundation-model/{model}", {})
    ]
    assert lifecycle_grants(granted) == [
        ("bedrock:GetFoundationModel", f"arn:aws:bedrock:us-west-2::foundation-model/{model}")
    ]
    assert all(grants == [] for grants in granted.values())
    assert all(any(allows(g, r) for g in worker) for r in invoke_requests("bedrock:InvokeModel", model, "us-west-2"))
    refused = [invoke_requests("bedrock:InvokeModel", model, region) for region in (REGION, "eu-west-1")]
    assert [str(r) for rs in refused for r in rs if any(allows(g, r) for g in worker)] == []


@pytest.mark.parametrize("prefix", ["us", "global"])
def test_bedrock_region_applies_to_an_inference_profile_too(usage, prefix):
    profile_id = f"{prefix}.stability.sd3-5-large-v1:0"
    worker = bedrock_grants(deployed_with(usage, BedrockModelId=profile_id, BedrockRegion="us-west-2"))["worker"]

    for destination in ("us-west-2", "us-east-1", ""):
        calls = invoke_requests("bedrock:InvokeModel", profile_id, "us-west-2", destination)
        assert [str(r) for r in calls if not any(allows(g, r) for g in worker)] == []
    from_home = invoke_requests("bedrock:InvokeModel", profile_id, REGION, "us-west-2")
    assert not any(allows(g, from_home[0]) for g in worker)  # the profile in the stack's own region
    assert not any(allows(g, from_home[1]) for g in worker)  # nor the model through that profile


def test_bedrock_is_called_in_bedrock_region_with_a_fallback_and_the_policies_allow_each_call(monkeypatch):
    """BedrockRegion and FallbackModelId set: the sweep checks both models' lifecycle, the worker's model has
    ended and the fallback draws; every one of those calls is in us-west-2 and allowed by its function's policy."""
    primary, fallback = "stability.stable-image-core-v1:1", "stability.sd3-5-large-v1:0"
    recorder = CallRecorder()
    parameters = {"BedrockRegion": "us-west-2", "BedrockModelId": primary, "FallbackModelId": fallback}
    with recorder.installed(), World(recorder, parameters=parameters) as world:
        put_items(world.stack.physical("TravelTable"), [trip(ALICE, "t1", "Lisbon", "2026-01-01T00:00:00.000Z")])
        with Stubber(aws.client("bedrock", region="us-west-2")) as stubber:
            for model in (primary, fallback):
                details = {"modelArn": f"arn:aws:bedrock:us-west-2::foundation-model/{model}", "modelId": model}
                stubber.add_response(
                    "get_foundation_model", {"modelDetails": details | {"modelLifecycle": {"status": "ACTIVE"}}}
                )
            world.handler("sweep").lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())
            stubber.assert_no_pending_responses()
        worker = world.handler("worker")  # the Bedrock provider, as the template configures it
        with Stubber(aws.client("bedrock-runtime", region="us-west-2")) as stubber:
            stubber.add_client_error("invoke_model", "ResourceNotFoundException", http_status_code=404)
            stubber.add_response("invoke_model", stability_response())
            assert world.drain(worker) == 1
            stubber.assert_no_pending_responses()
        grants = {name: function_grants(world.stack, f"{name.title()}Function") for name in ("worker", "sweep")}

    called = [call for call in recorder.calls if call.signing_name == "bedrock"]
    assert [(call.function, call.operation, call.region) for call in called] == [
        ("sweep", "GetFoundationModel", "us-west-2"),
        ("sweep", "GetFoundationModel", "us-west-2"),
        ("worker", "InvokeModel", "us-west-2"),
        ("worker", "InvokeModel", "us-west-2"),
    ]
    requests = [request for call in called for request in iam_requests(call)]
    denied = [str(r) for r in requests if not any(allows(g, r) for g in grants[r.call.function])]
    assert {r.resource.rsplit("/", 1)[1] for r in requests} == {primary, fallback} and denied == []


def _choices(statement: dict) -> Iterator[dict]:
    """A statement, or each statement an Fn::If may put in its place (AWS::NoValue puts none)."""
    if "Fn::If" in statement:
        for branch in statement["Fn::If"][1:]:
            if branch != {"Ref": "AWS::NoValue"}:
                yield from _choices(branch)
    else:
        yield statement


def _statements(node: Any) -> Iterator[dict]:
    """Every policy statement anywhere in the template (function policies, bucket policies, ...)."""
    if isinstance(node, dict):
        if "Statement" in node:
            for statement in _listed(node["Statement"]):
                yield from _choices(statement)
        for value in node.values():
            yield from _statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from _statements(value)


def test_no_statement_in_the_template_grants_everything_or_everywhere(usage):
    """Allow statements name their actions and resources. The template has no statement AWS would need
    "*" for (nothing calls X-Ray or CloudWatch PutMetricData itself: SAM's managed policies cover tracing,
    and metrics go out as embedded-metric-format log lines). A Deny may be broad ("s3:*" for every
    request over plain HTTP): a broad deny only takes away."""
    statements = list(_statements(usage.stack.template["Resources"]))
    assert statements
    for statement in statements:
        actions, resources = _listed(statement.get("Action", [])), _listed(statement.get("Resource", []))
        assert "*" not in actions and "*" not in resources, statement
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        if statement["Effect"] == "Allow":
            assert not any(str(a).endswith(":*") for a in actions), statement
