"""The benchmark's own machinery: request and item counting, the data set, a tiny end-to-end run."""

from __future__ import annotations

import boto3
import pytest

from bench import data, results, scenarios
from bench.counting import item_size, measure, read_units
from devtools.seed import put_items, trip
from devtools.template_resources import load_template
from image_recovery.models import TravelRecord
from image_recovery.recovery import PARTITION_PROBE_ITEMS

REGION = "us-east-1"


@pytest.fixture
def stack():
    """The benchmark's own moto session (a fresh one: the unit tests' module-wide stack would collide)."""
    with data.local_aws() as local:
        data.bind_models(local)
        yield local


def test_the_counter_counts_what_a_query_scanned_and_what_a_batch_get_returned(stack):
    table = stack.physical("TravelTable")
    put_items(
        table, [trip("ann", f"t{n}", f"Trip {n}", "2026-01-01T00:00:00.000Z", "https://x/y.png") for n in range(5)]
    )
    client = boto3.client("dynamodb", region_name=REGION)

    with measure() as counts:
        # the filter drops every item, but DynamoDB read (and bills) all five
        page = client.query(
            TableName=table,
            KeyConditionExpression="PK = :pk",
            FilterExpression="attribute_not_exists(imageUrl)",
            ExpressionAttributeValues={":pk": {"S": "USER#ann"}},
        )
        client.batch_get_item(
            RequestItems={table: {"Keys": [{"PK": {"S": "USER#ann"}, "SK": {"S": f"TRIP#t{n}"}} for n in range(3)]}}
        )
        client.get_item(TableName=table, Key={"PK": {"S": "USER#ann"}, "SK": {"S": "TRIP#nope"}})

    assert page["Count"] == 0
    assert counts.requests == {("dynamodb", "Query"): 1, ("dynamodb", "BatchGetItem"): 1, ("dynamodb", "GetItem"): 1}
    assert (counts.items_by("Query"), counts.items_by("BatchGetItem"), counts.items_by("GetItem")) == (5, 3, 0)
    assert (counts.searched_items, counts.point_items, counts.items_read) == (5, 3, 8)


def test_item_sizes_follow_dynamodb_rules():
    # the AWS guide's example: "shirt-color" = "R" and "shirt-size" = "M" make 23 bytes
    assert item_size({"shirt-color": {"S": "R"}, "shirt-size": {"S": "M"}}) == 23
    assert item_size({"é": {"S": "€"}}) == 2 + 3  # UTF-8 bytes of name and value
    # numbers (name "n": 1 byte): 1 byte per two significant digits (leading and trailing zeros dropped) plus 1
    assert [item_size({"n": {"N": v}}) for v in ("0", "7", "1234", "-0012.3400", "1E+3")] == [2, 3, 4, 4, 3]
    assert item_size({"b": {"B": b"\x00" * 10}, "t": {"BOOL": False}, "z": {"NULL": True}}) == 11 + 2 + 2
    # List and Map: 3 bytes, plus each element and 1 byte per element (a map's element holds its key)
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (2 + 1) + (2 + 1)
    assert item_size({"m": {"M": {"k": {"S": "v"}}}, "ss": {"SS": ["a", "bc"]}}) == 1 + 3 + (1 + 1 + 1) + 2 + 3


def test_read_units_round_each_request_or_each_item_up_to_4_kb():
    def items(*sizes: int) -> list[dict]:
        return [{"a": {"S": "x" * (size - 1)}} for size in sizes]

    # the AWS guide: a Query of 1,500 items of 64 bytes reads 96 KB, 24 blocks: 24 units consistent, 12 eventually
    query = {"Items": items(*[64] * 1500)}
    assert read_units("Query", {"ConsistentRead": True}, query, None) == 24
    assert read_units("Query", {}, query, None) == 12
    # billed for what it evaluated before its filter, not for the one item it returned
    assert read_units("Scan", {}, {"Items": items(100)}, [4000, 4000, 200]) == 1.5
    assert read_units("Query", {}, {"Items": []}, []) == 0.5  # a read of nothing still costs a block
    # the AWS guide: BatchGetItem of 1.5 KB and 6.5 KB items is billed as 4 KB + 8 KB; a key not found as a block
    keys = [{"PK": {"S": str(n)}} for n in range(3)]
    batch = {"Responses": {"t": items(1536, 6656)}}
    assert read_units("BatchGetItem", {"RequestItems": {"t": {"Keys": keys}}}, batch, None) == 2
    assert read_units("BatchGetItem", {"RequestItems": {"t": {"Keys": keys, "ConsistentRead": True}}}, batch, None) == 4
    assert read_units("GetItem", {"ConsistentRead": True}, {"Item": items(4097)[0]}, None) == 2
    assert read_units("GetItem", {}, {}, None) == 0.5
    assert read_units("PutItem", {}, {}, None) == 0


def test_a_filtered_query_is_billed_for_the_items_moto_evaluated_not_those_it_returned(stack):
    table = stack.physical("TravelTable")
    put_items(table, [trip("cy", f"t{n}", "T" * 1500, "2026-01-01T00:00:00.000Z", "https://x/y.png") for n in range(5)])
    client = boto3.client("dynamodb", region_name=REGION)
    size = item_size(client.get_item(TableName=table, Key={"PK": {"S": "USER#cy"}, "SK": {"S": "TRIP#t0"}})["Item"])

    with measure() as counts:
        page = client.query(
            TableName=table,
            KeyConditionExpression="PK = :pk",
            FilterExpression="attribute_not_exists(imageUrl)",
            ProjectionExpression="PK",
            ExpressionAttributeValues={":pk": {"S": "USER#cy"}},
        )

    assert page["Count"] == 0
    assert counts.units_by("Query") == read_units("Query", {}, {}, [size] * 5) == 1.0  # 5 × 1.6 KB: two blocks


def test_pynamodb_calls_are_counted_too_and_only_inside_the_block(stack):
    put_items(stack.physical("TravelTable"), [trip("bo", "t1", "Trip", "2026-01-01T00:00:00.000Z")])

    with measure() as counts:
        assert len(list(TravelRecord.query("USER#bo"))) == 1
    list(TravelRecord.query("USER#bo"))

    assert counts.calls("Query", "dynamodb") == 1
    assert counts.items_read == 1


def test_the_data_set_misses_the_asked_share_in_all_three_forms():
    dataset = data.make_dataset(records=1_000, users=7, missing_ratio=0.03)

    assert len(dataset.items) == 1_000
    assert {item["userId"] for item in dataset.items} == set(dataset.users)
    missing = [item for item in dataset.items if not item.get("imageUrl")]
    assert len(missing) == dataset.missing_count == 30
    assert {repr(item.get("imageUrl", "absent")) for item in missing} == {"'absent'", "None", "''"}
    assert {item["entityType"] for item in dataset.items} == {"TRIP", "SEGMENT", "RESERVATION"}


def test_every_function_folder_maps_to_a_template_function():
    folders = scenarios.function_folders(load_template())

    assert {"api", "worker", "sweep"} <= folders.keys()
    assert folders["api"] == "ApiFunction"


def test_a_tiny_run_produces_every_row_and_the_naive_listing_reads_the_whole_table():
    records = 300
    dataset = data.make_dataset(records=records, users=10, missing_ratio=0.05)

    with data.local_aws() as local:
        data.seed(local, dataset)
        data.prepare(local)
        bench = scenarios.Bench(local, dataset, data.Snapshot.take(local, dataset.missing_keys), repeat=1)
        listing = scenarios.listing(bench, partitions=(("small", 20, 3), ("large", PARTITION_PROBE_ITEMS + 40, 20)))
        sweep = scenarios.sweep(bench)
        queueing = scenarios.queueing(bench, records=12)
        parallel = scenarios.parallel_queueing(bench, ids=12, latency_s=0.001)
    rendering = scenarios.renderer(images=2, repeat=1)

    typical = dataset.user_with_most_missing()
    partitions = {row.scenario.split(":")[0] for row in listing.rows}
    assert partitions == {
        "listing a small partition (20 records, 3 missing)",
        f"listing a typical partition (30 records, {len(dataset.missing[typical])} missing)",
        f"listing a large partition ({PARTITION_PROBE_ITEMS + 40} records, 20 missing)",
    }
    # every plan of every partition in the cost table; the scan read the whole table, the added users included
    assert listing.tables[0].count("\n") == 1 + 3 * 4
    assert listing.naive.counts.items_by("Scan") == records + 20 + PARTITION_PROBE_ITEMS + 40
    assert listing.ours.counts.items_by("Query") == 30  # the typical partition, whole, within the probe
    assert sweep.naive.counts.items_by("Scan") == records
    assert sweep.naive.counts.calls("SendMessage", "sqs") == dataset.missing_count == 15
    assert queueing.naive.counts.total_requests == 2 * 12
    # the pool and the pool of one make the same calls: 12 marks, 2 sends, the batch, its counter, the read
    assert parallel.ours.counts.calls("UpdateItem", "dynamodb") == parallel.naive.counts.calls("UpdateItem", "dynamodb")
    assert parallel.ours.counts.calls("SendMessageBatch", "sqs") == 2
    for result, prefix in (
        (listing, "listing a typical partition"),
        (listing, f"listing a large partition ({PARTITION_PROBE_ITEMS + 40} records, 20 missing): read units (naive"),
        (sweep, "sweep (15 missing of 300): items read"),
        (sweep, "sweep (15 missing of 300): SQS send calls"),
        (queueing, "queueing 12 records: requests"),
        (queueing, "queueing 12 records: SQS send calls"),
        (rendering, "local renderer: images per second"),
        (parallel, "POST /image-jobs, 12 ids, 1 ms per AWS call, AWS modelled as remote: wall time"),
        (parallel, "POST /image-jobs, 12 ids, 1 ms per AWS call, every call done by moto: wall time"),
    ):
        row = result.row(prefix)
        assert row.ours is not None and row.ours > 0
    markdown = results.table([listing, sweep, queueing, parallel, rendering])
    assert markdown.startswith("| scenario | ours | naive | ratio | target | met? |")
    assert markdown.count("\n") == 1 + sum(len(r.rows) for r in (listing, sweep, queueing, parallel, rendering))
