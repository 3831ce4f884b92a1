"""The stack on the host's existing travel table (ExistingTravelTableName), from a table with keys only to
`make attach` and the sparse index in use.

The host created the table itself with PK and SK and nothing else: no MissingImages index, no stream. The
stack is built from template.yaml with ExistingTravelTableName (so it creates no table and has no stream
function), and the conftest fixtures (`handler`, `deliver_stream`) run the real handlers against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType

import boto3
import pytest
from moto import mock_aws

from bench.counting import measure
from devtools import attach
from devtools.aws_calls import AwsCall, CallRecorder
from devtools.lambda_runtime import LambdaContext, drain_queue, http_event, load_event
from devtools.seed import ALICE, BOB, put_items, sample_items, trip
from devtools.template_resources import LocalStack, build_stack, load_template
from image_recovery import aws
from tests.helpers import REGION, call_api, table_item

pytestmark = pytest.mark.integration

HOST = "host-travel"
KEYS_ONLY = {
    "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
    ],
}
(TEMPLATE_INDEX,) = load_template()["Resources"]["TravelTable"]["Properties"]["GlobalSecondaryIndexes"]


def create_host_table(name: str = HOST, **extra: object) -> None:
    """The host app's table as the host made it: the contract's keys and nothing of ours."""
    settings = {"BillingMode": "PAY_PER_REQUEST", **extra}
    boto3.client("dynamodb", region_name=REGION).create_table(TableName=name, **KEYS_ONLY, **settings)


def described(name: str = HOST) -> dict:
    return boto3.client("dynamodb", region_name=REGION).describe_table(TableName=name)["Table"]


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """Overrides conftest's: the stack attached to the host's keys-only table."""
    with mock_aws():
        aws.reset()
        create_host_table()
        yield build_stack(region=REGION, parameters={"ExistingTravelTableName": HOST})
        aws.reset()


def run_attach(*args: str) -> int:
    return attach.main(["--table", HOST, "--region", REGION, "--wait-minutes", "0.05", *args])


# ====================================================================== make attach against moto
def test_the_stack_has_no_table_of_its_own_and_no_stream_function(stack):
    tables = boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"]

    assert HOST in tables and not any(name.endswith("-travel-table") for name in tables)
    assert stack.physical("TravelTable") == HOST
    assert "indexer" not in stack.function_logical_ids()


def test_a_dry_run_prints_the_plan_and_its_cost_and_changes_nothing(stack, capsys):
    put_items(HOST, sample_items())
    before = described()

    with measure() as calls:
        assert run_attach("--dry-run") == 0

    out = capsys.readouterr().out
    assert described() == before
    assert calls.calls("UpdateTable") == 0
    assert "1. enable the table's stream (NEW_IMAGE)" in out
    assert "2. add the index MissingImages (imageMissingOwner HASH, imageMissingSort RANGE; projection ALL)" in out
    assert "9 items read" in out and "6 of them missing their image" in out
    assert f"checked {attach.PRICES_CHECKED} ({attach.PRICING_URL})" in out
    assert out.rstrip().endswith("dry run: nothing was changed")


def test_a_run_adds_the_templates_index_and_a_stream_then_prints_the_deploy_line(stack, capsys):
    assert run_attach() == 0

    table = described()
    (index,) = table["GlobalSecondaryIndexes"]
    assert {k: index[k] for k in ("IndexName", "KeySchema", "Projection")} == TEMPLATE_INDEX
    assert index["IndexStatus"] == "ACTIVE"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-2].strip() == (
        f"sam deploy --region {REGION} --parameter-overrides ExistingTravelTableName={HOST}"
        f" ExistingTravelTableStreamArn={table['LatestStreamArn']}"
    )


def test_running_it_twice_is_harmless(stack, capsys):
    assert run_attach() == 0
    first = described()

    with measure() as calls:
        assert run_attach() == 0

    assert calls.calls("UpdateTable") == 0
    assert described()["LatestStreamArn"] == first["LatestStreamArn"]
    assert len(described()["GlobalSecondaryIndexes"]) == 1
    assert "nothing to change: the table has the index and a stream" in capsys.readouterr().out


def test_a_provisioned_table_gets_the_index_with_capacity_of_its_own(stack):
    create_host_table(
        "host-provisioned",
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 2},
    )

    assert attach.main(["--table", "host-provisioned", "--region", REGION]) == 0

    (index,) = described("host-provisioned")["GlobalSecondaryIndexes"]
    throughput = index["ProvisionedThroughput"]
    assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (5, 2)


def test_a_stream_the_host_reads_without_new_images_is_left_alone(stack, capsys):
    boto3.client("dynamodb", region_name=REGION).update_table(
        TableName=HOST, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )
    before = described()

    assert run_attach() == 2

    assert described() == before
    assert "has a stream with view KEYS_ONLY" in capsys.readouterr().err


# ====================================================================== the service, before and after
@pytest.fixture
def recorder() -> Iterator[CallRecorder]:
    with CallRecorder().installed() as recording:
        yield recording


@pytest.fixture
def load(handler, recorder) -> Callable[[str], ModuleType]:
    """A fresh container of a function (a new cold start), its AWS calls recorded."""
    return lambda name: recorder.attribute(handler(name), name)


def index_reads(recorder: CallRecorder, function: str) -> list[AwsCall]:
    return [c for c in recorder.by_function().get(function, []) if c.params.get("IndexName") == "MissingImages"]


def operations(recorder: CallRecorder, function: str) -> set[str]:
    return {c.operation for c in recorder.by_function().get(function, [])}


def listing(api: ModuleType, user: str = ALICE) -> dict:
    status, body = call_api(api, http_event("api-list-missing-images.json", sub=user))
    assert status == 200, body
    return body


def sweep(sweeper: ModuleType) -> dict:
    return sweeper.lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())


def drain(stack: LocalStack, worker: ModuleType) -> dict:
    return drain_queue(stack.physical("JobQueue"), stack.arns["JobQueue"], worker, region=REGION)


def test_on_the_table_as_the_host_made_it_everything_works_without_the_index(stack, load, recorder):
    put_items(HOST, sample_items())
    api = load("api")

    before = listing(api)
    status, queued = call_api(api, http_event("api-queue-all.json", sub=ALICE))
    assert drain(stack, load("worker")) == {"handled": 5, "failed": 0}
    report = sweep(load("sweep"))
    after = listing(api)

    assert before["count"] == 5
    assert [t["title"] for t in before["trips"]] == ["Summer Vacation", "Big Euro Adventure"]
    assert (status, sum(kind["queued"] for kind in queued["summary"].values())) == (202, 5)
    assert table_item(stack, f"USER#{ALICE}", "TRIP#trip-euro")["imageStatus"] == "ready"
    assert (report["found"], report["queued"]) == (1, 1)  # Bob's trip, found by scanning the table
    assert after["count"] == 0
    # the API and the sweep asked whether the index exists, and never read it
    assert "DescribeTable" in operations(recorder, "api") and "DescribeTable" in operations(recorder, "sweep")
    assert index_reads(recorder, "api") == index_reads(recorder, "sweep") == []
    assert "Scan" in operations(recorder, "sweep")


def test_after_make_attach_the_functions_see_the_index_and_read_it_once_it_is_complete(
    stack, load, recorder, deliver_stream, past_the_probe
):
    put_items(HOST, sample_items())
    assert run_attach() == 0  # in-process, as `make attach TABLE=host-travel` runs it
    stack.update_parameters(ExistingTravelTableStreamArn=described()["LatestStreamArn"])  # sam deploy, as printed
    assert "indexer" in stack.function_logical_ids()

    # the index exists, but nothing has reconciled the records written before the stream: not trusted yet
    assert listing(load("api"))["count"] == 5
    assert index_reads(recorder, "api") == []

    # the host writes on; the stream function is live from its first delivery
    put_items(HOST, [trip(ALICE, "trip-new", "New Trip", "2026-06-01T00:00:00.000Z")])
    assert deliver_stream() >= 1
    assert table_item(stack, f"USER#{ALICE}", "TRIP#trip-new")["imageMissingOwner"] == f"USER#{ALICE}"
    # a full sweep that began after that completes the index (and queues what is missing)
    first = sweep(load("sweep"))
    assert first["queued"] == 7
    assert not index_reads(recorder, "sweep")

    # new containers trust the index: listing queries it, the sweep scans it
    api = load("api")
    body = listing(api)
    assert body["count"] == 6 and body["trips"][0]["id"] == "trip-new"
    assert {c.operation for c in index_reads(recorder, "api")} == {"Query"}
    assert drain(stack, load("worker")) == {"handled": 7, "failed": 0}
    assert sweep(load("sweep"))["found"] == 0
    assert {c.operation for c in index_reads(recorder, "sweep")} == {"Scan"}
    assert listing(api)["count"] == 0
    assert listing(api, BOB)["count"] == 0
