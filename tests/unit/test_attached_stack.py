"""A stack attached to the host's existing travel table (ExistingTravelTableName), as template.yaml and
devtools.template_resources build it: no table of its own, every function on the host's table, the stream
function only with a stream."""

from __future__ import annotations

import re
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from devtools.template_resources import LocalStack, build_stack, load_template
from image_recovery import aws

REGION = "us-east-1"
TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
HOST_TABLE = "host-travel"
HOST_STREAM = f"arn:aws:dynamodb:{REGION}:123456789012:table/{HOST_TABLE}/stream/2026-12-02T00:00:00.000"


@pytest.fixture
def attached(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        aws.reset()
        yield build_stack(REGION, "attached", parameters={"ExistingTravelTableName": HOST_TABLE})
        aws.reset()


def test_an_attached_stack_creates_no_travel_table_and_addresses_the_hosts(attached: LocalStack) -> None:
    tables = boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"]

    assert sorted(tables) == ["attached-batch-table", "attached-idempotency-table"]
    assert attached.physical("TravelTable") == HOST_TABLE
    assert attached.arns["TravelTable"] == f"arn:aws:dynamodb:{REGION}:123456789012:table/{HOST_TABLE}"
    for logical_id in attached.function_logical_ids().values():
        assert attached.function_environment(logical_id)["TRAVEL_TABLE_NAME"] == HOST_TABLE


def test_the_stream_function_exists_only_with_a_stream(attached: LocalStack) -> None:
    assert "indexer" not in attached.function_logical_ids()
    assert not attached.condition("HasTravelTableStream")

    attached.update_parameters(ExistingTravelTableStreamArn=HOST_STREAM)

    assert attached.function_logical_ids()["indexer"] == "IndexerFunction"
    events = RESOURCES["IndexerFunction"]["Properties"]["Events"].values()
    (source,) = [e for e in events if e["Type"] == "DynamoDB"]
    assert attached.resolve(source["Properties"]["Stream"]) == HOST_STREAM
    assert attached.function_environment("IndexerFunction")["TRAVEL_TABLE_NAME"] == HOST_TABLE


def test_the_functions_are_granted_the_hosts_table_and_its_index(attached: LocalStack) -> None:
    table_arn = f"arn:aws:dynamodb:{REGION}:123456789012:table/{HOST_TABLE}"
    resources = {
        str(attached.resolve(statement["Resource"]))
        for logical_id in attached.function_logical_ids().values()
        for policy in RESOURCES[logical_id]["Properties"]["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in attached.resolve(policy["Statement"])
        if str(statement.get("Sid", "")).startswith(("TravelTable", "MissingImages"))
    }

    assert resources == {table_arn, f"{table_arn}/index/MissingImages"}


def test_the_outputs_name_the_travel_table_either_way(attached: LocalStack) -> None:
    outputs = TEMPLATE["Outputs"]
    created = LocalStack(TEMPLATE, REGION, "created", refs={"TravelTable": "created-travel-table"})

    assert attached.resolve(outputs["TravelTableName"]["Value"]) == HOST_TABLE
    assert created.resolve(outputs["TravelTableName"]["Value"]) == "created-travel-table"
    assert outputs["TravelTableStreamArn"]["Condition"] == outputs["IndexerFunctionName"]["Condition"]
    assert RESOURCES["TravelTable"]["Condition"] == "CreateTravelTable"
    assert RESOURCES["TravelTable"]["DeletionPolicy"] == "Retain"


def test_a_stream_arn_needs_the_table_it_belongs_to() -> None:
    (assertion,) = TEMPLATE["Rules"]["StreamOfTheExistingTable"]["Assertions"]

    assert TEMPLATE["Rules"]["StreamOfTheExistingTable"]["RuleCondition"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ExistingTravelTableStreamArn"}, ""]}]
    }
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExistingTravelTableName"}, ""]}]}
    stream_pattern = re.compile(TEMPLATE["Parameters"]["ExistingTravelTableStreamArn"]["AllowedPattern"])
    assert stream_pattern.fullmatch(HOST_STREAM) and stream_pattern.fullmatch("")
    assert not stream_pattern.fullmatch(f"arn:aws:dynamodb:{REGION}:123456789012:table/{HOST_TABLE}")


def test_a_reference_to_the_travel_table_it_did_not_create_fails_as_cloudformation_would(attached: LocalStack) -> None:
    with pytest.raises(KeyError, match="TravelTable does not exist"):
        attached.resolve({"Fn::GetAtt": ["TravelTable", "Arn"]})
    with pytest.raises(KeyError, match="TravelTable does not exist"):
        attached.resolve({"Ref": "TravelTable"})
