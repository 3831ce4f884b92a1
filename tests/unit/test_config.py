"""Settings read from the environment: typed values, defaults, and a cold start that names what is wrong."""

from __future__ import annotations

import re

import pytest

from devtools.lambda_runtime import load_handler
from image_recovery import aws
from image_recovery.config import ApiSettings, IndexerSettings, SweepSettings, WorkerSettings
from image_recovery.errors import ConfigurationError

COMMON = {"AWS_REGION": "eu-west-1", "TRAVEL_TABLE_NAME": "travel", "BATCH_TABLE_NAME": "batches"}
VALID = {
    ApiSettings: {
        **COMMON,
        "JOB_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs",
        "TASK_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/tasks",
    },
    WorkerSettings: {
        **COMMON,
        "IDEMPOTENCY_TABLE_NAME": "idempotency",
        "IMAGE_BUCKET_NAME": "images",
        "IMAGE_PROVIDER": "bedrock",
        "BEDROCK_MODEL_ID": "stability.stable-image-core-v1:1",
        "JOB_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs",
    },
    SweepSettings: {**COMMON, "JOB_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"},
}


def env(settings: type, **changes: str | None) -> dict[str, str]:
    """A valid environment for `settings`, with variables changed (or removed when None)."""
    result = dict(VALID[settings])
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


REQUIRED = [
    (settings, name)
    for settings, variables in VALID.items()
    for name in variables
    if name != "AWS_REGION"  # two accepted names; covered by its own tests
]


# ------------------------------------------------------------------ valid environments
def test_api_settings_are_typed_with_defaults() -> None:
    settings = ApiSettings.from_env(env(ApiSettings))

    assert (settings.region, settings.travel_table, settings.batch_table) == ("eu-west-1", "travel", "batches")
    assert settings.job_queue_url.endswith("/jobs")
    assert settings.max_ids_per_request == 100


def test_api_settings_parse_integers() -> None:
    assert ApiSettings.from_env(env(ApiSettings, MAX_IDS_PER_REQUEST="250")).max_ids_per_request == 250


def test_worker_settings_are_typed_with_defaults() -> None:
    settings = WorkerSettings.from_env(env(WorkerSettings, IMAGE_PROVIDER="local"))

    assert settings.idempotency_table == "idempotency"
    assert settings.image_bucket == "images"
    assert settings.image_provider == "local"
    assert settings.bedrock_model_id == "stability.stable-image-core-v1:1"
    assert settings.image_url_base == ""
    assert settings.max_receive_count == 5
    assert WorkerSettings.from_env(env(WorkerSettings, MAX_RECEIVE_COUNT="3")).max_receive_count == 3


@pytest.mark.parametrize(
    ("provider", "per_minute", "governed"),
    [("bedrock", "60", True), ("bedrock", "0", False), ("bedrock", None, False), ("local", "60", False)],
)
def test_the_rate_governor_paces_bedrock_when_a_quota_is_set(provider: str, per_minute: str | None, governed: bool):
    settings = WorkerSettings.from_env(
        env(WorkerSettings, IMAGE_PROVIDER=provider, BEDROCK_REQUESTS_PER_MINUTE=per_minute)
    )

    assert settings.governed is governed
    assert settings.bedrock_requests_per_minute == int(per_minute or 0)


def test_a_negative_quota_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="BEDROCK_REQUESTS_PER_MINUTE"):
        WorkerSettings.from_env(env(WorkerSettings, BEDROCK_REQUESTS_PER_MINUTE="-1"))


def test_the_worker_calls_bedrock_in_its_own_region_unless_bedrock_region_names_another() -> None:
    own = WorkerSettings.from_env(env(WorkerSettings))
    west = WorkerSettings.from_env(env(WorkerSettings, BEDROCK_REGION=" us-west-2 "))

    assert (own.bedrock_region, own.model_region) == ("", "eu-west-1")
    assert (west.bedrock_region, west.model_region) == ("us-west-2", "us-west-2")


def test_clients_are_made_in_the_functions_region_unless_another_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    aws.reset()
    try:
        own = aws.client("bedrock-runtime")
        west = aws.client("bedrock-runtime", region="us-west-2")

        assert (own.meta.region_name, west.meta.region_name) == ("us-east-1", "us-west-2")
        # one client per service and region, created on first use and kept
        assert aws.client("bedrock-runtime", region="us-east-1") is own
        assert aws.client("bedrock-runtime", region="us-west-2") is west
        assert aws.client("dynamodb").meta.region_name == "us-east-1"
    finally:
        aws.reset()


def test_sweep_settings_parse_integers_and_apply_defaults() -> None:
    defaults = SweepSettings.from_env(env(SweepSettings))
    parsed = SweepSettings.from_env(env(SweepSettings, SWEEP_MAX_JOBS="25", SWEEP_SEGMENTS="8"))

    assert (defaults.sweep_max_jobs, defaults.sweep_segments, defaults.stuck_after_minutes) == (1000, 4, 60)
    assert (parsed.sweep_max_jobs, parsed.sweep_segments) == (25, 8)


def test_the_sweep_checks_the_lifecycle_of_the_workers_bedrock_models_only() -> None:
    models = {"BEDROCK_MODEL_ID": "stability.stable-image-core-v1:1", "BEDROCK_REGION": "us-west-2"}
    bedrock = SweepSettings.from_env(env(SweepSettings, IMAGE_PROVIDER="bedrock", **models))
    fallback = SweepSettings.from_env(
        env(SweepSettings, IMAGE_PROVIDER="bedrock", FALLBACK_MODEL_ID=" stability.sd3-5-large-v1:0 ", **models)
    )

    assert (bedrock.lifecycle_models, bedrock.model_region) == (("stability.stable-image-core-v1:1",), "us-west-2")
    assert fallback.lifecycle_models == ("stability.stable-image-core-v1:1", "stability.sd3-5-large-v1:0")
    assert SweepSettings.from_env(env(SweepSettings, IMAGE_PROVIDER="local", **models)).lifecycle_models == ()
    assert SweepSettings.from_env(env(SweepSettings)).lifecycle_models == ()  # told nothing: no check


def test_values_are_stripped() -> None:
    assert ApiSettings.from_env(env(ApiSettings, TRAVEL_TABLE_NAME="  travel \n")).travel_table == "travel"


def test_unrelated_variables_are_ignored() -> None:
    settings = ApiSettings.from_env(env(ApiSettings, PATH="/usr/bin", IMAGE_PROVIDER="anything"))
    assert settings.travel_table == "travel"


def test_aws_default_region_is_used_when_aws_region_is_absent() -> None:
    settings = ApiSettings.from_env(env(ApiSettings, AWS_REGION=None, AWS_DEFAULT_REGION="ap-southeast-2"))
    assert settings.region == "ap-southeast-2"


def test_aws_region_wins_over_aws_default_region() -> None:
    settings = ApiSettings.from_env(env(ApiSettings, AWS_DEFAULT_REGION="ap-southeast-2"))
    assert settings.region == "eu-west-1"


def test_without_an_argument_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env(ApiSettings, TRAVEL_TABLE_NAME="from-os-environ").items():
        monkeypatch.setenv(name, value)
    assert ApiSettings.from_env().travel_table == "from-os-environ"


@pytest.mark.parametrize("segments", ["1", "64"])
def test_sweep_segments_bounds_are_accepted(segments: str) -> None:
    assert SweepSettings.from_env(env(SweepSettings, SWEEP_SEGMENTS=segments)).sweep_segments == int(segments)


# ------------------------------------------------------------------ invalid environments
@pytest.mark.parametrize("blank", [None, "", " \t\n "], ids=["missing", "empty", "whitespace"])
@pytest.mark.parametrize(("settings", "name"), REQUIRED, ids=[f"{s.__name__}-{n}" for s, n in REQUIRED])
def test_missing_or_blank_required_variable_is_named(settings: type, name: str, blank: str | None) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings.from_env(env(settings, **{name: blank}))


@pytest.mark.parametrize("settings", list(VALID), ids=lambda s: s.__name__)
def test_missing_region_is_named(settings: type) -> None:
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        settings.from_env(env(settings, AWS_REGION=None, AWS_DEFAULT_REGION=None))


@pytest.mark.parametrize("provider", ["openai", "Bedrock", "LOCAL", ""])
def test_unknown_image_provider_is_rejected(provider: str) -> None:
    with pytest.raises(ConfigurationError, match="IMAGE_PROVIDER"):
        WorkerSettings.from_env(env(WorkerSettings, IMAGE_PROVIDER=provider))


@pytest.mark.parametrize("segments", ["0", "65", "-1", "four"])
def test_sweep_segments_outside_1_to_64_are_rejected(segments: str) -> None:
    with pytest.raises(ConfigurationError, match="SWEEP_SEGMENTS"):
        SweepSettings.from_env(env(SweepSettings, SWEEP_SEGMENTS=segments))


@pytest.mark.parametrize("value", ["0", "1001", "many"])
def test_max_ids_per_request_out_of_range_is_rejected(value: str) -> None:
    with pytest.raises(ConfigurationError, match="MAX_IDS_PER_REQUEST"):
        ApiSettings.from_env(env(ApiSettings, MAX_IDS_PER_REQUEST=value))


def test_queue_workers_default_to_ten_and_stay_within_the_sdks_connection_pool() -> None:
    assert ApiSettings.from_env(env(ApiSettings)).queue_workers == 10
    assert ApiSettings.from_env(env(ApiSettings, QUEUE_WORKERS=" 1 ")).queue_workers == 1
    for value in ("0", "11", "ten", "1.5"):
        with pytest.raises(ConfigurationError, match="QUEUE_WORKERS"):
            ApiSettings.from_env(env(ApiSettings, QUEUE_WORKERS=value))


@pytest.mark.parametrize(("value", "parsed"), [("true", True), ("False", False), (" 1 ", True), ("off", False)])
def test_queue_new_records_is_a_boolean(value: str, parsed: bool) -> None:
    indexer = {**COMMON, "JOB_QUEUE_URL": "https://sqs/jobs", "IMAGE_BUCKET_NAME": "images", "QUEUE_NEW_RECORDS": value}
    assert IndexerSettings.from_env(indexer).queue_new_records is parsed
    with pytest.raises(ConfigurationError, match="QUEUE_NEW_RECORDS"):
        IndexerSettings.from_env({**indexer, "QUEUE_NEW_RECORDS": "maybe"})


# ------------------------------------------------------------------ cold start of the real handler
def test_api_handler_cold_start_succeeds_with_the_template_environment(handler) -> None:
    # Control for the test below: the same loader with a complete environment imports fine.
    assert callable(handler("api").lambda_handler)


def test_api_handler_cold_start_fails_naming_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the API's environment without TRAVEL_TABLE_NAME
    for name, value in env(ApiSettings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TRAVEL_TABLE_NAME")

    # When Lambda imports the handler module, Then the import itself fails and says what is missing
    with pytest.raises(ConfigurationError, match="TRAVEL_TABLE_NAME"):
        load_handler("api")


@pytest.mark.parametrize(
    ("model_id", "why"),
    [
        ("us.stability.stable-image-inpaint-v1:0", "image editing model"),
        ("stability.stable-fast-upscale-v1:0", "upscaling model"),
        ("amazon.nova-reel-v1:1", "video model"),
    ],
)
def test_worker_cold_start_refuses_a_model_that_cannot_draw_from_a_prompt(
    monkeypatch: pytest.MonkeyPatch, model_id: str, why: str
) -> None:
    # Given the worker's environment with an image model that is not text-to-image
    for name, value in env(WorkerSettings, BEDROCK_MODEL_ID=model_id).items():
        monkeypatch.setenv(name, value)

    # When Lambda imports the handler module, Then the import fails, naming the variable and why
    with pytest.raises(ConfigurationError, match=f"BEDROCK_MODEL_ID='{re.escape(model_id)}': an? {why}"):
        load_handler("worker")
