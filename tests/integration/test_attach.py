"""`make attach` on the host's existing travel table (ExistingTravelTableName).

The host created the table itself with PK and SK and nothing else: no MissingImages index, no stream. The
stack is built from template.yaml with ExistingTravelTableName (so it creates no table and has no stream
function), and the conftest fixtures (`handler`, `deliver_stream`) run the real handlers against it.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from bench.counting import measure
from devtools import attach
from devtools.seed import put_items, sample_items
from devtools.template_resources import LocalStack, build_stack, load_template
from image_recovery import aws
from tests.helpers import REGION

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
