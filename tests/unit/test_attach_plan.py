"""make attach (devtools/attach.py): the plan from DescribeTable, the refusals, the cost estimate, the wait and
the command's one-line errors. Against moto, and through the whole service: tests/integration/test_attach.py."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from devtools import attach
from devtools.template_resources import load_template

TEMPLATE_TABLE = load_template()["Resources"]["TravelTable"]["Properties"]
CONTRACT = attach.table_contract()
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/host/stream/2026-12-02T00:00:00.000"
KEYS = [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}]
KEY_TYPES = [{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}]


def described(**changes: Any) -> dict:
    """DescribeTable's Table for a host table with keys only (on demand, no index, no stream), changed."""
    table = {
        "TableName": "host",
        "TableStatus": "ACTIVE",
        "KeySchema": KEYS,
        "AttributeDefinitions": KEY_TYPES,
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
        "ItemCount": 0,
        "TableSizeBytes": 0,
    }
    table.update(changes)
    return table


def the_index(status: str = "ACTIVE", **changes: Any) -> dict:
    return {**copy.deepcopy(CONTRACT.index), "IndexStatus": status, **changes}


# ------------------------------------------------------------------ what is added comes from template.yaml
def test_the_index_is_read_from_the_templates_travel_table() -> None:
    (template_index,) = TEMPLATE_TABLE["GlobalSecondaryIndexes"]

    assert CONTRACT.index == template_index
    assert CONTRACT.index_attributes == [
        a
        for a in TEMPLATE_TABLE["AttributeDefinitions"]
        if a["AttributeName"] in ("imageMissingOwner", "imageMissingSort")
    ]
    assert (CONTRACT.key_schema, CONTRACT.key_attributes) == (KEYS, KEY_TYPES)
    assert TEMPLATE_TABLE["StreamSpecification"]["StreamViewType"] == attach.STREAM_VIEW


# ------------------------------------------------------------------ the plan
def test_a_table_with_keys_only_gets_a_stream_and_the_index() -> None:
    plan = attach.plan_for(described(), CONTRACT)

    assert (plan.enable_stream, plan.changes) == (True, True)
    assert plan.create_index == {k: CONTRACT.index[k] for k in ("IndexName", "KeySchema", "Projection")}
    assert plan.attribute_definitions == [*KEY_TYPES, *CONTRACT.index_attributes]
    assert [step.split(" ")[0] for step in plan.steps()] == ["enable", "add"]


def test_a_provisioned_table_gives_the_new_index_its_own_capacity() -> None:
    table = described(BillingModeSummary=None, ProvisionedThroughput={"ReadCapacityUnits": 7, "WriteCapacityUnits": 3})

    plan = attach.plan_for(table, CONTRACT)

    assert plan.billing_mode == "PROVISIONED"
    assert plan.create_index["ProvisionedThroughput"] == {"ReadCapacityUnits": 7, "WriteCapacityUnits": 3}
    assert "7 RCU, 3 WCU" in plan.steps()[1]


@pytest.mark.parametrize("view", ["NEW_IMAGE", "NEW_AND_OLD_IMAGES"])
def test_a_stream_that_carries_new_images_is_kept(view: str) -> None:
    table = described(StreamSpecification={"StreamEnabled": True, "StreamViewType": view}, LatestStreamArn=STREAM_ARN)

    plan = attach.plan_for(table, CONTRACT)

    assert (plan.enable_stream, plan.kept_stream_view) == (False, view)
    assert plan.steps()[0] == f"keep the table's stream as it is ({view})"


@pytest.mark.parametrize("view", ["KEYS_ONLY", "OLD_IMAGE"])
def test_a_stream_without_new_images_is_refused_not_changed(view: str) -> None:
    table = described(StreamSpecification={"StreamEnabled": True, "StreamViewType": view})

    with pytest.raises(attach.AttachError, match=rf"stream with view {view}.*would break"):
        attach.plan_for(table, CONTRACT)


def test_a_disabled_stream_is_enabled_again() -> None:
    table = described(StreamSpecification={"StreamEnabled": False, "StreamViewType": "KEYS_ONLY"})
    assert attach.plan_for(table, CONTRACT).enable_stream


def test_a_table_with_everything_needs_nothing() -> None:
    table = described(
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        GlobalSecondaryIndexes=[the_index()],
        AttributeDefinitions=[*KEY_TYPES, *CONTRACT.index_attributes],
    )

    plan = attach.plan_for(table, CONTRACT)

    assert (plan.changes, plan.create_index, plan.index_status) == (False, None, "ACTIVE")


def test_an_index_still_being_built_is_waited_for_not_added_again() -> None:
    table = described(
        TableStatus="UPDATING",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        GlobalSecondaryIndexes=[the_index("CREATING", Backfilling=True)],
    )

    plan = attach.plan_for(table, CONTRACT)

    assert (plan.changes, plan.index_status) == (False, "CREATING")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}, r"has the keys id \(None, HASH\)"),
        (
            {"AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "N"}, KEY_TYPES[1]]},
            r"PK \(N, HASH\).*PK \(S, HASH\), SK \(S, RANGE\)",
        ),
        (
            {"GlobalSecondaryIndexes": [the_index(Projection={"ProjectionType": "KEYS_ONLY"})]},
            "already has an index named MissingImages",
        ),
        (
            {"AttributeDefinitions": [*KEY_TYPES, {"AttributeName": "imageMissingOwner", "AttributeType": "N"}]},
            "defines imageMissingOwner as type N",
        ),
        ({"TableStatus": "UPDATING"}, "another change is under way"),
    ],
)
def test_tables_that_cannot_be_attached_as_they_are_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(attach.AttachError, match=message):
        attach.plan_for(described(**changes), CONTRACT)


# ------------------------------------------------------------------ the cost
def test_the_estimate_scales_the_samples_share_to_the_table() -> None:
    sample = attach.Sample(items=1000, records=800, missing=50, malformed=0, index_attribute_bytes=120)
    # 2,000,000 items of 1,500 bytes on average: 3 GB
    cost = attach.estimate(2_000_000, 3_000_000_000, sample)

    assert cost.missing_items == 100_000  # 5 % of the items
    assert cost.indexed_item_bytes == 1620
    assert cost.write_units_per_index_write == 2  # 1,620 bytes: two 1 KB write units
    assert cost.index_bytes == 100_000 * (1620 + 100)
    assert cost.index_storage_usd_month == pytest.approx(172_000_000 / 1024**3 * 0.25)
    assert cost.image_write_units == 8  # four index writes per image
    assert cost.image_usd_per_thousand == pytest.approx(8_000 * 0.625 / 1e6)
    assert cost.scan_read_units == pytest.approx(732_422 * 0.5)  # 3 GB in 4 KB reads, eventually consistent
    assert cost.scan_usd == pytest.approx(366_211 * 0.125 / 1e6)
    assert cost.backfill_write_units == 100_000 * 2 * 2
    assert cost.backfill_usd == pytest.approx(400_000 * 0.625 / 1e6)


def test_an_empty_table_costs_nothing() -> None:
    cost = attach.estimate(0, 0, attach.Sample(0, 0, 0, 0, 0.0))

    assert (cost.missing_items, cost.index_bytes, cost.scan_usd, cost.backfill_usd) == (0, 0, 0, 0)


def test_the_printout_names_its_prices_date_and_source_and_the_free_stream() -> None:
    sample = attach.Sample(items=1000, records=800, missing=50, malformed=3, index_attribute_bytes=120)
    cost = attach.estimate(2_000_000, 3_000_000_000, sample)

    on_demand = "\n".join(attach.cost_lines(attach.plan_for(described(), CONTRACT), sample, cost))
    provisioned = "\n".join(
        attach.cost_lines(attach.plan_for(described(BillingModeSummary=None), CONTRACT), sample, cost)
    )

    assert f"checked {attach.PRICES_CHECKED} ({attach.PRICING_URL})" in on_demand
    assert attach.PRICES_CHECKED == "2026-12-02"
    assert "about 100,000 of 2,000,000 items (5.0%)" in on_demand
    assert "3 malformed" in on_demand
    assert "$0.04 a month" in on_demand  # index storage: 160 MB
    assert "$0.0050 per 1,000 images" in on_demand  # 8 WRU an image
    assert "the first full sweep reads the table once (2.8 GB, 366,211 RRU): $0.05" in on_demand
    assert "(a write and an index write each, 400,000 WRU): $0.25" in on_demand
    assert "$33.42 a month at the hourly default" in on_demand
    assert "DynamoDB Streams reads by Lambda (the stream function) are not charged" in on_demand
    # a provisioned table: the units, the provisioned pricing page, no on-demand dollars for throughput
    assert attach.PROVISIONED_PRICING_URL in provisioned
    assert "per 1,000 images" not in provisioned and "400,000 WRU)" in provisioned


# ------------------------------------------------------------------ waiting
class Tables:
    """A DynamoDB client stand-in whose DescribeTable answers from a list, the last answer repeated."""

    def __init__(self, *answers: dict) -> None:
        self.answers = list(answers)

    def describe_table(self, TableName: str) -> dict:
        return {"Table": self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]}


def test_waiting_ends_when_the_index_is_active_and_reports_each_new_state() -> None:
    creating = described(TableStatus="UPDATING", GlobalSecondaryIndexes=[the_index("CREATING", Backfilling=True)])
    active = described(GlobalSecondaryIndexes=[the_index()])
    reported: list[str] = []

    result = attach.wait_until(
        Tables(creating, creating, active),
        "host",
        attach.index_active,
        what="the index",
        timeout_seconds=600,
        sleep=lambda _: None,
        report=reported.append,
    )

    assert result is active
    assert reported == ["  waiting for the index: table UPDATING, index CREATING (backfilling)"]


def test_waiting_is_bounded_and_says_how_to_go_on() -> None:
    creating = described(GlobalSecondaryIndexes=[the_index("CREATING", Backfilling=True)])
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(attach.NotFinished, match=r"within 2 minutes.*Run the same command again"):
        attach.wait_until(
            Tables(creating),
            "host",
            attach.index_active,
            what="the index",
            timeout_seconds=120,
            poll_seconds=10,
            sleep=sleep,
            clock=lambda: now[0],
            report=lambda _: None,
        )
    assert now[0] == 120


# ------------------------------------------------------------------ the command's errors: one line, no traceback
@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    client = boto3.client("dynamodb", region_name="us-east-1")
    monkeypatch.setattr(boto3.session.Session, "client", lambda _self, service, **_: client)
    with Stubber(client) as stub:
        yield stub


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("ResourceNotFoundException", "Requested resource not found", "error: no table host in this region"),
        (
            "AccessDeniedException",
            "User: x is not authorized",
            "error: AWS refused the request (AccessDeniedException)",
        ),
    ],
)
def test_a_table_that_cannot_be_read_is_one_line_and_exit_status_2(
    dynamodb: Stubber, capsys: pytest.CaptureFixture[str], code: str, message: str, expected: str
) -> None:
    dynamodb.add_client_error("describe_table", service_error_code=code, service_message=message)

    assert attach.main(["--table", "host"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1 and "Traceback" not in err


def test_a_refused_table_is_one_line_and_nothing_is_changed(
    dynamodb: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    dynamodb.add_response(
        "describe_table",
        {"Table": described(StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})},
    )

    assert attach.main(["--table", "host"]) == 2
    assert capsys.readouterr().err.startswith("error: table host has a stream with view KEYS_ONLY")
    dynamodb.assert_no_pending_responses()  # no UpdateTable was stubbed: any call would have failed the test


def test_no_credentials_is_one_line_and_exit_status_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    assert attach.main(["--table", "host", "--region", "us-east-1"]) == 2
    assert (
        capsys.readouterr().err == "error: no AWS credentials (set AWS_PROFILE, or run aws configure / aws sso login)\n"
    )


def test_an_empty_table_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert attach.main(["--table", " "]) == 2
    assert "make attach TABLE=<name>" in capsys.readouterr().err
