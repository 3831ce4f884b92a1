"""Prepare the host's existing travel table for the stack: the MissingImages index and a stream.

    make attach TABLE=travel [DRY_RUN=1] [REGION=eu-west-1]
    python -m devtools.attach --table travel [--dry-run] [--region eu-west-1] [--wait-minutes 30]

The stack works on the host's table as it is (listing reads the user's partition, every sweep scans the
table). The sparse MissingImages index and a stream make both cost what the missing images cost. This
command reads the table (DescribeTable and a small sample Scan), prints what it would change and what that
costs, and, unless --dry-run, changes it: it enables the table's stream (NEW_IMAGE; a stream that already
carries new images is kept, one that does not is refused, since the host's consumers rely on it), adds the
index exactly as template.yaml's TravelTable defines it, waits until the index is ACTIVE and prints the
`sam deploy` line that attaches the stack. It never writes an item. Running it again changes nothing.

Exit status: 0 done (or nothing to do); 2 nothing was changed because something must be fixed first (no
such table, no credentials, access denied, a table that cannot be attached as it is); 1 a change was made
or asked for but did not finish (the index still building when the wait ended: run it again to go on
waiting).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from devtools.template_resources import load_template
from image_recovery.models import MISSING_INDEX_NAME, TravelRecord, missing_index_values
from image_recovery.records import MalformedItem, parse_record

INDEX_ATTRIBUTES = (TravelRecord.image_missing_owner.attr_name, TravelRecord.image_missing_sort.attr_name)
STREAM_VIEW = "NEW_IMAGE"  # what the stream function reads (template.yaml's TravelTable)
STREAM_VIEWS_KEPT = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")  # carry the new image: the stream function can use them

# us-east-1 list prices, on demand, Standard table class, free tier ignored.
PRICES_CHECKED = "2026-12-02"
PRICING_URL = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
PROVISIONED_PRICING_URL = "https://aws.amazon.com/dynamodb/pricing/provisioned/"
WRITE_PER_MILLION = 0.625  # USD per million write request units (1 KB each)
READ_PER_MILLION = 0.125  # USD per million read request units (4 KB strongly consistent, 8 KB eventually)
STORAGE_PER_GB_MONTH = 0.25
GB = 1024**3
INDEX_ITEM_OVERHEAD_BYTES = 100  # DynamoDB's storage overhead per index item (developer guide, GSI storage)
# Writes the service makes on a record while it is in the index, per image: queued, generating, the attempt
# noted, written back (which removes it from the index). Each is one index write of the item's size.
INDEX_WRITES_PER_IMAGE = 4
SWEEPS_PER_MONTH = 730  # the default SweepSchedule, rate(1 hour)
SAMPLE_SEGMENTS = 8  # the sample Scan reads one page from each of this many parallel-scan segments...
SAMPLE_ITEMS_PER_SEGMENT = 125  # ...of at most this many items: 1,000 items spread over the key space


class AttachError(Exception):
    """Nothing can or should be changed until the operator fixes this; printed as one line, exit status 2."""


class NotFinished(Exception):
    """A change was made or asked for but has not finished; printed as one line, exit status 1."""


# ------------------------------------------------------------------ what template.yaml asks for
@dataclass(frozen=True)
class TableContract:
    """What template.yaml's TravelTable defines that a host table must have or get."""

    key_schema: list[dict]  # PK HASH, SK RANGE
    key_attributes: list[dict]  # their AttributeDefinitions
    index: dict  # the MissingImages GSI: IndexName, KeySchema, Projection
    index_attributes: list[dict]  # AttributeDefinitions of the index's keys


def table_contract(template: dict | None = None) -> TableContract:
    """Read from template.yaml, so the index this command adds is the one the stack would have created."""
    properties = (template or load_template())["Resources"]["TravelTable"]["Properties"]
    (index,) = [i for i in properties["GlobalSecondaryIndexes"] if i["IndexName"] == MISSING_INDEX_NAME]

    def definitions(key_schema: list[dict]) -> list[dict]:
        names = [key["AttributeName"] for key in key_schema]
        return [a for name in names for a in properties["AttributeDefinitions"] if a["AttributeName"] == name]

    return TableContract(
        key_schema=properties["KeySchema"],
        key_attributes=definitions(properties["KeySchema"]),
        index=index,
        index_attributes=definitions(index["KeySchema"]),
    )


# ------------------------------------------------------------------ the plan (pure: DescribeTable in, steps out)
@dataclass(frozen=True)
class Plan:
    table: str
    billing_mode: str  # PAY_PER_REQUEST or PROVISIONED
    enable_stream: bool
    kept_stream_view: str | None  # the view of a stream that is kept as it is
    create_index: dict | None  # the GlobalSecondaryIndexUpdates Create entry, when the index must be added
    index_status: str | None  # the index's status when it exists already
    attribute_definitions: list[dict]  # sent with the new index

    @property
    def changes(self) -> bool:
        return self.enable_stream or self.create_index is not None

    def steps(self) -> list[str]:
        lines = []
        if self.enable_stream:
            lines.append(f"enable the table's stream ({STREAM_VIEW}), which the stream function reads")
        else:
            lines.append(f"keep the table's stream as it is ({self.kept_stream_view})")
        if self.create_index is not None:
            keys = ", ".join(f"{k['AttributeName']} {k['KeyType']}" for k in self.create_index["KeySchema"])
            projection = self.create_index["Projection"]["ProjectionType"]
            line = f"add the index {MISSING_INDEX_NAME} ({keys}; projection {projection}) as template.yaml defines it"
            throughput = self.create_index.get("ProvisionedThroughput")
            if throughput:
                line += (
                    f", with the table's own provisioned capacity ({throughput['ReadCapacityUnits']} RCU,"
                    f" {throughput['WriteCapacityUnits']} WCU)"
                )
            lines.append(line)
        else:
            lines.append(f"keep the index {MISSING_INDEX_NAME} ({self.index_status})")
        return lines


def _keys(key_schema: list[dict]) -> list[tuple[str, str]]:
    return sorted((k["AttributeName"], k["KeyType"]) for k in key_schema)


def _described_keys(key_schema: list[dict], types: dict[str, str]) -> str:
    return ", ".join(f"{k['AttributeName']} ({types.get(k['AttributeName'])}, {k['KeyType']})" for k in key_schema)


def plan_for(table: dict, contract: TableContract) -> Plan:
    """What must change on the table DescribeTable described; AttachError when it cannot be attached."""
    name = table["TableName"]
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    wanted_keys = {a["AttributeName"]: a["AttributeType"] for a in contract.key_attributes}
    if _keys(table["KeySchema"]) != _keys(contract.key_schema) or any(
        types.get(n) != t for n, t in wanted_keys.items()
    ):
        raise AttachError(
            f"table {name} has the keys {_described_keys(table['KeySchema'], types)}; the travel table's are"
            f" {_described_keys(contract.key_schema, wanted_keys)}"
        )
    for attribute in contract.index_attributes:
        held = types.get(attribute["AttributeName"])
        if held not in (None, attribute["AttributeType"]):
            raise AttachError(
                f"table {name} defines {attribute['AttributeName']} as type {held}; the index needs"
                f" {attribute['AttributeType']}"
            )

    stream = table.get("StreamSpecification") or {}
    view = stream.get("StreamViewType") if stream.get("StreamEnabled") else None
    if view is not None and view not in STREAM_VIEWS_KEPT:
        raise AttachError(
            f"table {name} has a stream with view {view}, which carries no new images; changing it would break"
            f" whoever reads it now. Ask its owner to switch it to NEW_AND_OLD_IMAGES (or NEW_IMAGE), then run"
            f" this again; or deploy without ExistingTravelTableStreamArn (no stream function)"
        )

    existing = next((i for i in table.get("GlobalSecondaryIndexes", []) if i["IndexName"] == MISSING_INDEX_NAME), None)
    if existing is not None and (
        _keys(existing["KeySchema"]) != _keys(contract.index["KeySchema"])
        or existing.get("Projection", {}).get("ProjectionType") != contract.index["Projection"]["ProjectionType"]
    ):
        raise AttachError(
            f"table {name} already has an index named {MISSING_INDEX_NAME} with other keys or projection;"
            " the service would read it as its own. Rename or remove that index first"
        )

    billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    create = None
    if existing is None:
        create = {key: contract.index[key] for key in ("IndexName", "KeySchema", "Projection")}
        if billing == "PROVISIONED":
            # A new index of a provisioned table needs its own capacity. The table's own is enough: the
            # index receives at most the table's writes (only records missing their image).
            throughput = table["ProvisionedThroughput"]
            create["ProvisionedThroughput"] = {
                "ReadCapacityUnits": throughput["ReadCapacityUnits"],
                "WriteCapacityUnits": throughput["WriteCapacityUnits"],
            }
    plan = Plan(
        table=name,
        billing_mode=billing,
        enable_stream=view is None,
        kept_stream_view=view,
        create_index=create,
        index_status=None if existing is None else existing.get("IndexStatus"),
        # the table's own definitions too: DynamoDB takes the new index's alone, but some emulators replace the lot
        attribute_definitions=[
            *table.get("AttributeDefinitions", []),
            *(a for a in contract.index_attributes if a["AttributeName"] not in types),
        ],
    )
    if plan.changes and table.get("TableStatus") != "ACTIVE":
        raise AttachError(
            f"table {name} is {table.get('TableStatus')}: another change is under way; run this again later"
        )
    return plan


# ------------------------------------------------------------------ what it costs (pure)
@dataclass(frozen=True)
class Sample:
    """A bounded sample of the table's items."""

    items: int
    records: int  # trips, segments and reservations
    missing: int  # of which missing their image
    malformed: int  # items under a trip key that break the contract (the service skips them)
    index_attribute_bytes: float  # what the index attributes add to a missing record, on average


@dataclass(frozen=True)
class Estimate:
    item_count: int
    table_bytes: int
    missing_items: int  # estimated from the sample
    indexed_item_bytes: int  # a missing record with its index attributes
    index_bytes: int  # the index's storage, overhead included
    index_storage_usd_month: float
    write_units_per_index_write: int
    image_write_units: int  # index writes for one image generated
    image_usd_per_thousand: float
    scan_read_units: float  # one full scan of the table (eventually consistent)
    scan_usd: float
    backfill_write_units: int  # marking every missing record: its write and its index write
    backfill_usd: float


def estimate(item_count: int, table_bytes: int, sample: Sample) -> Estimate:
    """DescribeTable's ItemCount and TableSizeBytes (updated by DynamoDB about every six hours) and the
    sample's share of items missing their image, at the prices above."""
    average = table_bytes / item_count if item_count else 0.0
    share = sample.missing / sample.items if sample.items else 0.0
    missing = round(item_count * share)
    indexed = math.ceil(average + sample.index_attribute_bytes)
    per_write = max(1, math.ceil(indexed / 1024))
    index_bytes = missing * (indexed + INDEX_ITEM_OVERHEAD_BYTES)
    scan_units = math.ceil(table_bytes / 4096) * 0.5
    backfill_units = missing * 2 * per_write
    return Estimate(
        item_count=item_count,
        table_bytes=table_bytes,
        missing_items=missing,
        indexed_item_bytes=indexed,
        index_bytes=index_bytes,
        index_storage_usd_month=index_bytes / GB * STORAGE_PER_GB_MONTH,
        write_units_per_index_write=per_write,
        image_write_units=INDEX_WRITES_PER_IMAGE * per_write,
        image_usd_per_thousand=1000 * INDEX_WRITES_PER_IMAGE * per_write * WRITE_PER_MILLION / 1e6,
        scan_read_units=scan_units,
        scan_usd=scan_units * READ_PER_MILLION / 1e6,
        backfill_write_units=backfill_units,
        backfill_usd=backfill_units * WRITE_PER_MILLION / 1e6,
    )


def _size(count: float) -> str:
    unit = "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):  # the unit the loop stops at is the one printed
        if count < 1024 or unit == "TB":
            break
        count /= 1024
    return f"{count:,.0f} B" if unit == "B" else f"{count:,.1f} {unit}"


def _usd(amount: float) -> str:
    if amount >= 0.01 or amount == 0:
        return f"${amount:,.2f}"
    return f"${amount:.4f}" if amount >= 0.0001 else "< $0.0001"


def cost_lines(plan: Plan, sample: Sample, cost: Estimate) -> list[str]:
    """The cost printout: on-demand prices; for a provisioned table, the units its capacity must hold."""
    share = sample.missing / sample.items if sample.items else 0.0
    on_demand = plan.billing_mode == "PAY_PER_REQUEST"

    def priced(text: str, usd: str) -> str:
        return f"{text}: {usd}" if on_demand else text

    malformed = f", {sample.malformed:,} malformed (the service skips them)" if sample.malformed else ""
    indexed = _size(cost.indexed_item_bytes + INDEX_ITEM_OVERHEAD_BYTES)
    lines = [
        f"sample: {sample.items:,} items read from {SAMPLE_SEGMENTS} scan segments; {sample.records:,} trips,"
        f" segments and reservations, {sample.missing:,} of them missing their image{malformed}",
        f"  -> about {cost.missing_items:,} of {cost.item_count:,} items ({share:.1%}) miss their image"
        " (DynamoDB refreshes ItemCount and TableSizeBytes about every six hours)",
        f"cost, at us-east-1 on-demand list prices checked {PRICES_CHECKED} ({PRICING_URL}):",
        f"  index storage   ~{cost.missing_items:,} records x {indexed} = {_size(cost.index_bytes)}:"
        f" {_usd(cost.index_storage_usd_month)} a month (${STORAGE_PER_GB_MONTH} per GB-month)",
        priced(
            f"  index writes    {INDEX_WRITES_PER_IMAGE} per image generated x {cost.write_units_per_index_write}"
            f" WRU = {cost.image_write_units} WRU",
            f"{_usd(cost.image_usd_per_thousand)} per 1,000 images (${WRITE_PER_MILLION} per million WRU)",
        ),
        priced(
            f"  one-off         the first full sweep reads the table once ({_size(cost.table_bytes)},"
            f" {cost.scan_read_units:,.0f} RRU)",
            _usd(cost.scan_usd),
        ),
        priced(
            f"                  and marks ~{cost.missing_items:,} missing records for the index"
            f" (a write and an index write each, {cost.backfill_write_units:,} WRU)",
            _usd(cost.backfill_usd),
        ),
        priced(
            f"  without it      every sweep reads the whole table ({cost.scan_read_units:,.0f} RRU a run)",
            f"{_usd(cost.scan_usd * SWEEPS_PER_MONTH)} a month at the hourly default (${READ_PER_MILLION} per"
            " million RRU)",
        ),
    ]
    if not on_demand:
        lines.append(
            "  provisioned     the units above come out of the table's and the index's capacity, billed per hour"
            f" ({PROVISIONED_PRICING_URL}); too little only makes the backfill slower"
        )
    lines.append(
        "  stream          free to read: DynamoDB Streams reads by Lambda (the stream function) are not charged;"
        " its invocations are Lambda's"
    )
    return lines


# ------------------------------------------------------------------ AWS
def describe(client: Any, table: str) -> dict:
    return client.describe_table(TableName=table)["Table"]


def sample_table(
    client: Any, table: str, *, segments: int = SAMPLE_SEGMENTS, per_segment: int = SAMPLE_ITEMS_PER_SEGMENT
) -> Sample:
    """One page from each of `segments` parallel-scan segments: a bounded read spread over the key space.

    Records are judged as the service judges them (image_recovery.records)."""
    items = records = missing = malformed = 0
    added: list[int] = []
    for segment in range(segments):
        page = client.scan(TableName=table, Segment=segment, TotalSegments=segments, Limit=per_segment)
        for raw in page.get("Items", []):
            items += 1
            try:
                record = parse_record(raw)
            except MalformedItem:
                malformed += 1
                continue
            if record is None:
                continue
            records += 1
            if record.image_missing:
                missing += 1
                owner, sort = missing_index_values(record.pk, record.sk, record.created_at)
                added.append(
                    sum(
                        len(name) + len(value.encode())
                        for name, value in zip(INDEX_ATTRIBUTES, (owner, sort), strict=True)
                    )
                )
    return Sample(items, records, missing, malformed, sum(added) / len(added) if added else 0.0)


def wait_until(
    client: Any,
    table: str,
    done: Callable[[dict], bool],
    *,
    what: str,
    timeout_seconds: float,
    poll_seconds: float = 10,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    report: Callable[[str], None] = print,
) -> dict:
    """Poll DescribeTable until `done` holds; NotFinished when `timeout_seconds` pass first."""
    deadline = clock() + timeout_seconds
    last = ""
    while True:
        description = describe(client, table)
        if done(description):
            return description
        state = _state(description)
        if state != last:
            report(f"  waiting for {what}: {state}")
            last = state
        if clock() >= deadline:
            raise NotFinished(
                f"{what} did not finish within {timeout_seconds / 60:.0f} minutes ({state}); building an index on a"
                " large table can take hours. Run the same command again to go on waiting: it changes nothing twice"
            )
        sleep(poll_seconds)


def _index(description: dict) -> dict | None:
    return next(
        (i for i in description.get("GlobalSecondaryIndexes", []) if i["IndexName"] == MISSING_INDEX_NAME), None
    )


def _state(description: dict) -> str:
    index = _index(description)
    index_state = "no index" if index is None else f"index {index.get('IndexStatus')}"
    if index is not None and index.get("Backfilling"):
        index_state += " (backfilling)"
    return f"table {description.get('TableStatus')}, {index_state}"


def table_active(description: dict) -> bool:
    return description.get("TableStatus") == "ACTIVE"


def index_active(description: dict) -> bool:
    index = _index(description)
    return (
        description.get("TableStatus") == "ACTIVE"
        and index is not None
        and index.get("IndexStatus") == "ACTIVE"
        and not index.get("Backfilling")
    )


def apply(client: Any, plan: Plan, *, timeout_seconds: float, **wait: Any) -> dict:
    """Make the plan's changes, one UpdateTable at a time as DynamoDB requires, and wait for the index."""
    try:
        if plan.enable_stream:
            client.update_table(
                TableName=plan.table, StreamSpecification={"StreamEnabled": True, "StreamViewType": STREAM_VIEW}
            )
            print(f"  stream enabled ({STREAM_VIEW})")
            wait_until(client, plan.table, table_active, what="the stream", timeout_seconds=timeout_seconds, **wait)
        if plan.create_index is not None:
            client.update_table(
                TableName=plan.table,
                AttributeDefinitions=plan.attribute_definitions,
                GlobalSecondaryIndexUpdates=[{"Create": plan.create_index}],
            )
            print(f"  index {MISSING_INDEX_NAME} requested")
        what = f"the index {MISSING_INDEX_NAME}"
        return wait_until(client, plan.table, index_active, what=what, timeout_seconds=timeout_seconds, **wait)
    except ClientError as error:
        raise NotFinished(f"{error.operation_name}: {_error_line(error, plan.table)}") from error
    except BotoCoreError as error:
        raise NotFinished(str(error)) from error


def deploy_line(table: str, stream_arn: str, region: str) -> str:
    return (
        f"sam deploy --region {region} --parameter-overrides"
        f" ExistingTravelTableName={table} ExistingTravelTableStreamArn={stream_arn}"
    )


# ------------------------------------------------------------------ command line
def attach(client: Any, table: str, *, dry_run: bool, wait_minutes: float = 30, **wait: Any) -> int:
    """The whole command against one DynamoDB client; returns the exit status (errors are raised)."""
    region = client.meta.region_name
    description = describe(client, table)
    plan = plan_for(description, table_contract())
    sample = sample_table(client, table)
    billing = "on demand" if plan.billing_mode == "PAY_PER_REQUEST" else "provisioned"
    print(
        f"table {table} ({region}): {description.get('ItemCount', 0):,} items,"
        f" {_size(description.get('TableSizeBytes', 0))}, {billing}"
    )
    print("plan:")
    for number, step in enumerate(plan.steps(), 1):
        print(f"  {number}. {step}")
    cost = estimate(description.get("ItemCount", 0), description.get("TableSizeBytes", 0), sample)
    for line in cost_lines(plan, sample, cost):
        print(line)
    if dry_run:
        print("dry run: nothing was changed")
        return 0
    print("changing the table:" if plan.changes else "nothing to change: the table has the index and a stream")
    description = apply(client, plan, timeout_seconds=wait_minutes * 60, **wait)
    print(f"the index {MISSING_INDEX_NAME} is ACTIVE and the stream is on")
    print("next: deploy the stack onto the table (sam build first):")
    print(f"  {deploy_line(table, description['LatestStreamArn'], region)}")
    print(
        "  (--parameter-overrides replaces samconfig.toml's list: add JwtIssuer=... JwtAudience=... and any other"
        " parameter you deploy with to the same line)"
    )
    return 0


def _error_line(error: ClientError, table: str) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", str(error))
    if code == "ResourceNotFoundException":
        return f"no table {table} in this region (set REGION= / --region to the table's region)"
    if code in ("AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"):
        return f"AWS refused the request ({code}): {message}"
    return f"{code or 'error'}: {message}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.attach", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="the host app's existing travel table")
    parser.add_argument("--region", help="the table's region (default: your AWS configuration's)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its cost, change nothing")
    parser.add_argument(
        "--wait-minutes", type=float, default=30, help="how long to wait for the index to become ACTIVE (30)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.table.strip():
        print("error: give the table: make attach TABLE=<name>", file=sys.stderr)
        return 2
    try:
        client = boto3.session.Session(region_name=args.region).client("dynamodb")
        return attach(client, args.table, dry_run=args.dry_run, wait_minutes=args.wait_minutes)
    except AttachError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NotFinished as error:
        print(f"not finished: {error}", file=sys.stderr)
        return 1
    except NoCredentialsError:
        print("error: no AWS credentials (set AWS_PROFILE, or run aws configure / aws sso login)", file=sys.stderr)
        return 2
    except NoRegionError:
        print("error: no AWS region: set REGION= (--region) or AWS_REGION", file=sys.stderr)
        return 2
    except ClientError as error:  # reading the table, before any change
        print(f"error: {_error_line(error, args.table)}", file=sys.stderr)
        return 2
    except BotoCoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
