"""The moto stack built from template.yaml, and the template's own wiring (events, auth, intrinsics)."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from devtools.template_resources import LocalStack, build_stack, load_template
from image_recovery.providers.bedrock import PROFILE_PREFIXES, TEXT_TO_IMAGE_MODELS

REGION = "us-east-1"
TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]


def parameter_default(name: str) -> str:
    return str(TEMPLATE["Parameters"][name]["Default"])


def events_of(function: str) -> dict[str, dict]:
    return RESOURCES[function]["Properties"]["Events"]


def function_timeout(function: str) -> int:
    own = RESOURCES[function]["Properties"].get("Timeout")
    return int(own if own is not None else TEMPLATE["Globals"]["Function"]["Timeout"])


def client(service: str):
    return boto3.client(service, region_name=REGION)


@pytest.fixture
def stack(module_stack: LocalStack) -> LocalStack:
    """Every test here only reads the stack, so one per module will do."""
    return module_stack


# ------------------------------------------------------------------ tables
def test_travel_table_has_the_contract_keys(stack: LocalStack) -> None:
    table = client("dynamodb").describe_table(TableName=stack.physical("TravelTable"))["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {("PK", "HASH"), ("SK", "RANGE")}
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} >= {
        ("PK", "S"),
        ("SK", "S"),
    }


@pytest.mark.parametrize(("logical_id", "attribute"), [("BatchTable", "expiresAt"), ("IdempotencyTable", "expiration")])
def test_ttl_is_enabled_on_the_expected_attribute(stack: LocalStack, logical_id: str, attribute: str) -> None:
    ttl = client("dynamodb").describe_time_to_live(TableName=stack.physical(logical_id))["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", attribute)


# ------------------------------------------------------------------ queues
def queue_attributes(stack: LocalStack, logical_id: str) -> dict[str, str]:
    return client("sqs").get_queue_attributes(QueueUrl=stack.physical(logical_id), AttributeNames=["All"])["Attributes"]


def test_job_queue_redrives_to_the_dead_letter_queue(stack: LocalStack) -> None:
    policy = json.loads(queue_attributes(stack, "JobQueue")["RedrivePolicy"])
    dlq_arn = queue_attributes(stack, "JobDeadLetterQueue")["QueueArn"]

    assert policy["deadLetterTargetArn"] == dlq_arn
    assert int(policy["maxReceiveCount"]) == int(parameter_default("MaxReceiveCount"))


def test_job_queue_visibility_covers_six_worker_timeouts(stack: LocalStack) -> None:
    visibility = int(queue_attributes(stack, "JobQueue")["VisibilityTimeout"])
    assert visibility >= 6 * function_timeout("WorkerFunction")


# ------------------------------------------------------------------ bucket
def test_image_bucket_blocks_public_access_and_is_encrypted(stack: LocalStack) -> None:
    s3 = client("s3")
    bucket = stack.physical("ImageBucket")

    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]

    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    assert rules and rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")


# ------------------------------------------------------------------ function environment
def test_worker_environment_resolves_against_the_built_stack(stack: LocalStack) -> None:
    environment = stack.function_environment("WorkerFunction")

    assert environment["TRAVEL_TABLE_NAME"] == stack.physical("TravelTable")
    assert environment["IDEMPOTENCY_TABLE_NAME"] == stack.physical("IdempotencyTable")
    assert environment["IMAGE_BUCKET_NAME"] == stack.physical("ImageBucket")
    assert environment["BEDROCK_MODEL_ID"] == parameter_default("BedrockModelId")
    assert environment["BEDROCK_REGION"] == REGION  # BedrockRegion empty: the stack's own
    assert environment["POWERTOOLS_SERVICE_NAME"]
    assert client("dynamodb").describe_table(TableName=environment["TRAVEL_TABLE_NAME"])["Table"]["TableStatus"]


@pytest.mark.parametrize("function", ["ApiFunction", "SweepFunction"])
def test_queueing_functions_get_the_built_queue_url(stack: LocalStack, function: str) -> None:
    environment = stack.function_environment(function)
    assert environment["JOB_QUEUE_URL"] == stack.physical("JobQueue")
    assert client("sqs").get_queue_url(QueueName=environment["JOB_QUEUE_URL"].rsplit("/", 1)[-1])["QueueUrl"]


# ------------------------------------------------------------------ event sources and auth (template only)
def test_worker_reports_partial_batch_failures() -> None:
    sqs_events = [e for e in events_of("WorkerFunction").values() if e["Type"] == "SQS"]

    assert len(sqs_events) == 1
    properties = sqs_events[0]["Properties"]
    assert properties["Queue"] == {"Fn::GetAtt": ["JobQueue", "Arn"]}
    assert "ReportBatchItemFailures" in properties["FunctionResponseTypes"]


def test_http_api_has_a_default_jwt_authorizer() -> None:
    auth = RESOURCES["HttpApi"]["Properties"]["Auth"]
    default = auth["DefaultAuthorizer"]
    assert "JwtConfiguration" in auth["Authorizers"][default]


ROUTES = {name: e for name, e in events_of("ApiFunction").items() if e["Type"] == "HttpApi"}


def test_the_api_serves_the_four_contract_routes_and_the_budget() -> None:
    assert {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in ROUTES.values()} == {
        ("GET", "/missing-images"),
        ("POST", "/image-jobs"),
        ("GET", "/image-jobs/{batchId}"),
        ("GET", "/styles"),
        ("GET", "/budget"),
        ("GET", "/images"),
    }


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_uses_the_jwt_protected_api(route: str) -> None:
    properties = ROUTES[route]["Properties"]
    # on the explicit HttpApi (an event without ApiId would land on an implicit API with no authorizer)
    assert properties.get("ApiId") == {"Ref": "HttpApi"}
    # and not opted out of the default authorizer
    assert properties.get("Auth", {}).get("Authorizer", "JwtAuthorizer") != "NONE"


# ------------------------------------------------------------------ the Bedrock model
def test_the_profile_condition_knows_the_prefixes_the_worker_takes() -> None:
    tests = TEMPLATE["Conditions"]["IsInferenceProfile"]["Fn::Or"]
    first_part = {"Fn::Select": [0, {"Fn::Split": [".", {"Ref": "BedrockModelId"}]}]}

    assert all(test["Fn::Equals"][0] == first_part for test in tests)
    assert {test["Fn::Equals"][1] for test in tests} == PROFILE_PREFIXES


def test_the_default_model_is_active_and_the_parameter_takes_every_id_the_worker_does() -> None:
    parameter = TEMPLATE["Parameters"]["BedrockModelId"]
    pattern = re.compile(parameter["AllowedPattern"])  # CloudFormation matches the whole value
    prefixes = ["", *(f"{prefix}." for prefix in PROFILE_PREFIXES)]

    assert not TEXT_TO_IMAGE_MODELS[parameter["Default"]].ended
    assert [p + m for p in prefixes for m in TEXT_TO_IMAGE_MODELS if not pattern.fullmatch(p + m)] == []
    assert not pattern.fullmatch("arn:aws:bedrock:us-west-2::foundation-model/stability.sd3-5-large-v1:0")
    assert not pattern.fullmatch("stability.sd3-5-large-v1:0 ")


# ------------------------------------------------------------------ intrinsic resolution
@pytest.fixture
def bare_stack() -> LocalStack:
    return LocalStack(load_template(), REGION, "unit")


def test_resolve_handles_ref_sub_and_pseudo_parameters(bare_stack: LocalStack) -> None:
    bare_stack.refs["JobQueue"] = "https://sqs/jobs"
    value = {"Fn::Sub": "${AWS::Region}/${BedrockModelId}"}

    assert bare_stack.resolve({"Ref": "JobQueue"}) == "https://sqs/jobs"
    assert bare_stack.resolve(value) == f"{REGION}/{parameter_default('BedrockModelId')}"
    assert bare_stack.resolve([{"Ref": "AWS::AccountId"}, "plain"]) == ["123456789012", "plain"]


def test_resolve_handles_join_split_select_and_sub_with_variables(bare_stack: LocalStack) -> None:
    padded = {"Fn::Split": [".", {"Fn::Sub": "${BedrockModelId}.x.x"}]}
    base = {"Fn::Join": [".", [{"Fn::Select": [0, padded]}, {"Fn::Select": ["1", padded]}]]}

    assert bare_stack.resolve(base) == parameter_default("BedrockModelId")
    assert bare_stack.resolve({"Fn::Sub": ["${AWS::Region}:${Model}", {"Model": base}]}) == (
        f"{REGION}:{parameter_default('BedrockModelId')}"
    )


@pytest.mark.parametrize(("model_id", "is_profile"), [("stability.sd3-5-large-v1:0", False), ("eu.a.b", True)])
def test_resolve_chooses_by_the_templates_conditions_and_drops_no_value(model_id: str, is_profile: bool) -> None:
    template = load_template()
    template["Parameters"]["BedrockModelId"]["Default"] = model_id
    stack = LocalStack(template, REGION, "unit")
    chosen = {"Fn::If": ["IsInferenceProfile", "profile", {"Ref": "AWS::NoValue"}]}

    assert stack.condition("IsInferenceProfile") is is_profile
    assert stack.resolve(["always", chosen]) == (["always", "profile"] if is_profile else ["always"])
    assert stack.resolve({"Key": chosen}) == ({"Key": "profile"} if is_profile else {})


def test_resolve_rejects_unsupported_intrinsics(bare_stack: LocalStack) -> None:
    with pytest.raises(NotImplementedError, match="Fn::GetAZs"):
        bare_stack.resolve({"Fn::GetAZs": ""})


def test_resolve_rejects_unsupported_intrinsics_nested_in_values(bare_stack: LocalStack) -> None:
    with pytest.raises(NotImplementedError, match="Fn::Base64"):
        bare_stack.resolve({"Variables": {"X": {"Fn::Base64": "a"}}})


def test_ref_to_a_parameter_without_default_is_an_error(bare_stack: LocalStack) -> None:
    with pytest.raises(KeyError, match="JwtIssuer"):
        bare_stack.resolve({"Ref": "JwtIssuer"})


# ------------------------------------------------------------------ parameters and conditions
def test_parameters_override_the_defaults_and_unknown_ones_are_refused() -> None:
    stack = LocalStack(load_template(), REGION, "unit", parameters={"BedrockModelId": "eu.a.b"})

    assert stack.resolve({"Ref": "BedrockModelId"}) == "eu.a.b"
    assert stack.condition("IsInferenceProfile") is True
    with pytest.raises(KeyError, match="NoSuchParameter"):
        LocalStack(load_template(), REGION, "unit", parameters={"NoSuchParameter": "x"})
    with pytest.raises(KeyError, match="NoSuchParameter"):
        stack.update_parameters(NoSuchParameter="x")


def test_short_form_condition_in_a_condition_is_read_as_cloudformation_reads_it(bare_stack: LocalStack) -> None:
    assert TEMPLATE["Conditions"]["HasTravelTableStream"]["Fn::Or"][0] == {"Condition": "CreateTravelTable"}
    assert bare_stack.condition("HasTravelTableStream") is True


def test_a_distribution_domain_resolves_to_a_local_placeholder(bare_stack: LocalStack) -> None:
    assert bare_stack.resolve({"Fn::GetAtt": ["PanelDistribution", "DomainName"]}) == (
        "paneldistribution.cloudfront.local"
    )
    assert bare_stack.resolve({"Fn::Sub": "https://${PanelDistribution.DomainName}/x"}) == (
        "https://paneldistribution.cloudfront.local/x"
    )


def test_resources_and_functions_whose_condition_is_false_are_not_built(stack: LocalStack, tmp_path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "Parameters:\n  WithExtra: {Type: String, Default: 'no'}\n"
        "Conditions:\n  HasExtra: !Equals [!Ref WithExtra, 'yes']\n"
        "Resources:\n"
        "  Always: {Type: AWS::SQS::Queue, Properties: {}}\n"
        "  Extra: {Type: AWS::SQS::Queue, Condition: HasExtra, Properties: {}}\n"
        "  ExtraFunction: {Type: AWS::Serverless::Function, Condition: HasExtra, Properties: {CodeUri: functions/x/}}\n"
    )
    default = build_stack(REGION, "cond-plain", template)  # on the module's moto, beside `stack`
    extra = build_stack(REGION, "cond-extra", template, parameters={"WithExtra": "yes"})

    assert (sorted(default.refs), default.function_logical_ids()) == (["Always"], {})
    assert (sorted(extra.refs), extra.function_logical_ids()) == (["Always", "Extra"], {"x": "ExtraFunction"})
    queues = [url.rsplit("/", 1)[-1] for url in client("sqs").list_queues(QueueNamePrefix="cond-")["QueueUrls"]]
    assert sorted(queues) == ["cond-extra-always", "cond-extra-extra", "cond-plain-always"]
    with pytest.raises(KeyError, match="ExtraFunction does not exist"):
        default.function_environment("ExtraFunction")
