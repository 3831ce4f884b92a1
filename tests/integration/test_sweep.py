"""The scheduled sweep through the real handler with the EventBridge sample event."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from devtools.lambda_runtime import LambdaContext, http_event, load_event
from devtools.seed import ALICE, BOB, put_items, trip
from image_recovery import aws
from tests.helpers import REGION, call_api, metric_total, metrics_emitted, queued_jobs, table_item

pytestmark = pytest.mark.integration


def sweep(handler, **overrides) -> dict:
    return handler("sweep", **overrides).lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())


def test_the_sweep_queues_every_missing_record_of_every_user_with_the_default_style(seeded, handler, stack):
    report = sweep(handler)

    assert (report["found"], report["queued"], report["capped"]) == (6, 6, False)
    jobs = queued_jobs(stack)
    assert sorted(j["recordId"] for j in jobs) == sorted(
        ["trip-euro", "seg-paris-rome", "seg-rome-venice", "res-eiffel", "trip-summer", "trip-tokyo"]
    )
    assert {j["styleId"] for j in jobs} == {"travel-poster"}
    assert table_item(stack, f"USER#{BOB}", "TRIP#trip-tokyo")["imageStatus"] == "queued"


def test_a_second_sweep_does_not_queue_what_is_already_queued(seeded, handler, stack):
    sweep(handler)

    report = sweep(handler)

    assert (report["found"], report["queued"]) == (0, 0)
    assert len(queued_jobs(stack)) == 6


def test_records_queued_through_the_api_are_left_alone(seeded, handler, stack):
    api = handler("api")
    call_api(api, http_event("api-queue-all.json", sub=ALICE))

    report = sweep(handler)

    assert report["queued"] == 1  # only Bob's trip
    assert len(queued_jobs(stack)) == 6


def test_the_per_run_cap_limits_what_one_sweep_queues(stack, handler, deliver_stream):
    put_items(
        stack.physical("TravelTable"), [trip(f"u{n}", f"t{n}", f"Trip {n}", "2026-01-01T00:00:00Z") for n in range(30)]
    )
    deliver_stream()

    report = sweep(handler, SWEEP_MAX_JOBS="7", SWEEP_SEGMENTS="3")

    assert (report["queued"], report["capped"]) == (7, True)
    assert len(queued_jobs(stack)) == 7
    assert sweep(handler, SWEEP_MAX_JOBS="100", SWEEP_SEGMENTS="3")["queued"] == 23


def test_the_sweep_checks_the_bedrock_models_lifecycle_once_a_day(seeded, handler, stack, capsys):
    """The configured model (the template's default) is LEGACY, its fallback ACTIVE: the first sweep of the day
    asks Bedrock about both and reports ModelLegacy; the next sweep does not ask again. Both queue as ever."""
    primary = stack.function_environment("SweepFunction")["BEDROCK_MODEL_ID"]
    fallback = "stability.sd3-5-large-v1:0"
    sweep_function = handler("sweep", IMAGE_PROVIDER="bedrock", FALLBACK_MODEL_ID=fallback)
    bedrock = aws.client("bedrock", region=stack.function_environment("SweepFunction")["BEDROCK_REGION"])
    asked: list[str] = []
    bedrock.meta.events.register(
        "before-parameter-build.bedrock.GetFoundationModel", lambda params, **_: asked.append(params["modelIdentifier"])
    )
    capsys.readouterr()
    with Stubber(bedrock) as stubber:
        for model_id, status in ((primary, "LEGACY"), (fallback, "ACTIVE")):
            arn = f"arn:aws:bedrock:{REGION}::foundation-model/{model_id}"
            details = {"modelArn": arn, "modelId": model_id, "modelLifecycle": {"status": status}}
            stubber.add_response("get_foundation_model", {"modelDetails": details}, {"modelIdentifier": model_id})

        first = sweep_function.lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())
        second = sweep_function.lambda_handler(load_event("sweep-scheduled.json"), LambdaContext())

    assert asked == [primary, fallback]
    assert (first["queued"], second["found"]) == (6, 0)
    emitted = metrics_emitted(capsys.readouterr().out)
    assert metric_total(emitted, "ModelLegacy") == 1
    checked = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=stack.physical("BatchTable"), Key={"batchId": {"S": "service#model-lifecycle"}}
    )["Item"]["lifecycleChecked"]["S"]
    assert checked == f"{datetime.now(UTC).date().isoformat()} {primary} {fallback}"
