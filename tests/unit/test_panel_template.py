"""The panel in AWS: private bucket behind CloudFront (OAC), CORS limited to it, and devtools/publish_panel.py;
and the images, served by the same distribution from the private image bucket (OAC), where imageUrl points."""

from __future__ import annotations

import re

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from devtools import publish_panel
from devtools.ops import OpsError
from devtools.template_resources import LocalStack, load_template
from image_recovery.jobs import ImageJob
from image_recovery.storage import image_key

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
OUTPUTS = TEMPLATE["Outputs"]
REGION = "us-east-1"
BUCKET = "image-recovery-panelbucket-abc"
DISTRIBUTION_ID = "E2EXAMPLE12345"
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/"
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"
CLIENT_ID = "panel-client-id"
PANEL_URL = "https://d111111abcdef8.cloudfront.net/"
PAGE_FILES = ["index.html", "page.js", "oidc.js", "missing-images-panel.js", "missing-images-panel.css"]
DISTRIBUTION_ARN = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${PanelDistribution}"
JOB = ImageJob(job_id="j1", batch_id="b1", pk="USER#u", sk="TRIP#t", entity_type="TRIP", record_id="t", style_id="s")


def _props(name: str) -> dict:
    return RESOURCES[name]["Properties"]


def _origin(config: dict, origin_id: str) -> dict:
    (origin,) = [o for o in config["Origins"] if o["Id"] == origin_id]
    return origin


# ------------------------------------------------------------------ template
def test_panel_bucket_is_private_and_encrypted() -> None:
    bucket = RESOURCES["PanelBucket"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert "WebsiteConfiguration" not in props  # served by CloudFront through OAC, not as an S3 website


def test_distribution_reads_the_bucket_through_origin_access_control() -> None:
    oac = _props("PanelOriginAccessControl")["OriginAccessControlConfig"]
    assert RESOURCES["PanelOriginAccessControl"]["Type"] == "AWS::CloudFront::OriginAccessControl"
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == (
        "s3",
        "always",
        "sigv4",
    )
    assert RESOURCES["PanelDistribution"]["Type"] == "AWS::CloudFront::Distribution"
    config = _props("PanelDistribution")["DistributionConfig"]
    origin = _origin(config, "PanelBucket")
    assert origin["DomainName"] == {"Fn::GetAtt": ["PanelBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["PanelOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    behavior = config["DefaultCacheBehavior"]
    assert behavior["TargetOriginId"] == origin["Id"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["CachePolicyId"] == "658327ea-f89d-4fab-a63d-7e88639e58f6"  # managed CachingOptimized
    assert config["DefaultRootObject"] == "index.html"


def test_bucket_policy_allows_only_this_distribution_and_tls() -> None:
    policy = _props("PanelBucketPolicy")
    assert policy["Bucket"] == {"Ref": "PanelBucket"}
    statements = policy["PolicyDocument"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": "AllowPanelDistribution",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": {"Fn::Sub": "${PanelBucket.Arn}/*"},
            "Condition": {
                "StringEquals": {
                    "AWS:SourceArn": {"Fn::Sub": DISTRIBUTION_ARN},
                }
            },
        }
    ]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_distribution_serves_images_from_the_image_bucket_through_its_own_origin_access_control() -> None:
    oac = _props("ImageOriginAccessControl")["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == (
        "s3",
        "always",
        "sigv4",
    )
    config = _props("PanelDistribution")["DistributionConfig"]
    origin = _origin(config, "ImageBucket")
    assert origin["DomainName"] == {"Fn::GetAtt": ["ImageBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["ImageOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    [behavior] = config["CacheBehaviors"]
    assert (behavior["PathPattern"], behavior["TargetOriginId"]) == ("images/*", "ImageBucket")
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    assert behavior["CachePolicyId"] == "658327ea-f89d-4fab-a63d-7e88639e58f6"  # managed CachingOptimized
    # the objects the worker stores are the ones the behaviour serves: storage.image_key starts with images/
    assert image_key(JOB).startswith("images/")


def test_image_bucket_policy_allows_only_this_distribution_to_read_images_and_only_over_tls() -> None:
    policy = _props("ImageBucketPolicy")
    statements = policy["PolicyDocument"]["Statement"]

    assert policy["Bucket"] == {"Ref": "ImageBucket"}
    assert [s for s in statements if s["Effect"] == "Allow"] == [
        {
            "Sid": "AllowImageDistribution",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": {"Fn::Sub": "${ImageBucket.Arn}/images/*"},
            "Condition": {"StringEquals": {"AWS:SourceArn": {"Fn::Sub": DISTRIBUTION_ARN}}},
        }
    ]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert _props("ImageBucket")["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True


def test_image_urls_point_at_the_distribution_unless_image_url_base_is_set() -> None:
    base = {
        "Fn::If": ["HasImageUrlBase", {"Ref": "ImageUrlBase"}, {"Fn::Sub": "https://${PanelDistribution.DomainName}"}]
    }

    assert _props("WorkerFunction")["Environment"]["Variables"]["IMAGE_URL_BASE"] == base
    assert OUTPUTS["ImageUrlBase"]["Value"] == base
    assert TEMPLATE["Conditions"]["HasImageUrlBase"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ImageUrlBase"}, ""]}]}
    default = LocalStack(TEMPLATE, REGION, "unit")
    custom = LocalStack(TEMPLATE, REGION, "unit", parameters={"ImageUrlBase": "https://img.example.com"})
    assert default.resolve(base) == "https://paneldistribution.cloudfront.local"
    assert custom.resolve(base) == "https://img.example.com"


@pytest.mark.parametrize(
    ("host_app_origins", "allowed"),
    [
        ("", ["https://paneldistribution.cloudfront.local"]),
        (
            "https://app.example.com,http://localhost:3000",
            ["https://paneldistribution.cloudfront.local", "https://app.example.com", "http://localhost:3000"],
        ),
    ],
)
def test_api_cors_allows_the_panel_distribution_and_the_host_apps_pages_only(host_app_origins, allowed) -> None:
    stack = LocalStack(TEMPLATE, REGION, "image-recovery", parameters={"HostAppOrigins": host_app_origins})
    cors = stack.resolve(_props("HttpApi")["CorsConfiguration"])
    assert cors["AllowOrigins"] == allowed
    assert re.fullmatch(TEMPLATE["Parameters"]["HostAppOrigins"]["AllowedPattern"], host_app_origins)
    assert set(cors["AllowMethods"]) == {"GET", "POST", "OPTIONS"}
    assert {header.lower() for header in cors["AllowHeaders"]} == {"authorization", "content-type"}
    assert cors.get("AllowCredentials") is not True  # bearer tokens, no cookies


@pytest.mark.parametrize(
    "origins", ["*", "https://app.example.com/manage", "https://a.example.com, https://b.example.com"]
)
def test_host_app_origins_are_origins_not_wildcards_or_pages(origins) -> None:
    assert not re.fullmatch(TEMPLATE["Parameters"]["HostAppOrigins"]["AllowedPattern"], origins)


def test_outputs_give_the_panel_url_bucket_and_distribution() -> None:
    assert OUTPUTS["PanelUrl"]["Value"] == {"Fn::Sub": "https://${PanelDistribution.DomainName}/"}
    assert OUTPUTS["PanelBucketName"]["Value"] == {"Ref": "PanelBucket"}
    assert OUTPUTS["PanelDistributionId"]["Value"] == {"Ref": "PanelDistribution"}
    # the page signs in where the API's authorizer trusts tokens from, as the client they are for
    authorizer = _props("HttpApi")["Auth"]["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"]
    assert OUTPUTS["JwtIssuer"]["Value"] == authorizer["issuer"] == {"Ref": "JwtIssuer"}
    assert [OUTPUTS["JwtAudience"]["Value"]] == authorizer["audience"] == [{"Ref": "JwtAudience"}]
    assert set(publish_panel.PANEL_OUTPUTS) <= set(OUTPUTS)


# ------------------------------------------------------------------ publish_panel
def test_config_js_signs_in_at_the_issuer_unless_a_token_is_handed_over() -> None:
    source = publish_panel.config_js(API_URL, ISSUER, CLIENT_ID, PANEL_URL)
    assert 'apiBase: "https://abc123.execute-api.us-east-1.amazonaws.com"' in source
    assert (
        'oidc: {"issuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example", '
        '"clientId": "panel-client-id", "redirectUri": "https://d111111abcdef8.cloudfront.net/"}'
    ) in source
    assert 'const TOKEN_KEY = "imageRecovery.accessToken"' in source
    assert "tokenProvider: handedOver ? () => sessionStorage.getItem(TOKEN_KEY) : undefined" in source
    assert "window.IMAGE_RECOVERY_CONFIG" in source


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def _stack_outputs_stub(cloudformation, outputs: dict[str, str]) -> Stubber:
    stub = Stubber(cloudformation)
    stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "image-recovery",
                    "CreationTime": "2024-01-01T00:00:00Z",
                    "StackStatus": "CREATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                }
            ]
        },
        {"StackName": "image-recovery"},
    )
    return stub


def test_publish_uploads_the_pages_files_and_invalidates_the_distribution(aws_env: None) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudfront = boto3.client("cloudfront", region_name=REGION)
    outputs = {
        "ApiUrl": API_URL,
        "PanelBucketName": BUCKET,
        "PanelDistributionId": DISTRIBUTION_ID,
        "PanelUrl": PANEL_URL,
        "JwtIssuer": ISSUER,
        "JwtAudience": CLIENT_ID,
    }
    with _stack_outputs_stub(cloudformation, outputs), Stubber(cloudfront) as cf_stub:
        cf_stub.add_response(
            "create_invalidation",
            {
                "Location": "https://cloudfront.amazonaws.com/2020-05-31/distribution/E2EXAMPLE12345/invalidation/I1",
                "Invalidation": {
                    "Id": "I1",
                    "Status": "InProgress",
                    "CreateTime": "2024-01-01T00:00:00Z",
                    "InvalidationBatch": {"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": "x"},
                },
            },
            {
                "DistributionId": DISTRIBUTION_ID,
                "InvalidationBatch": {"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": ANY},
            },
        )
        result = publish_panel.publish(cloudformation, s3, cloudfront, "image-recovery")
        cf_stub.assert_no_pending_responses()

    assert result == {
        "keys": [*PAGE_FILES, "config.js"],
        "invalidation": "I1",
        "url": "https://d111111abcdef8.cloudfront.net/",
    }
    expected = {
        "index.html": ("text/html; charset=utf-8", "no-cache"),
        "page.js": ("text/javascript; charset=utf-8", "public, max-age=300"),
        "oidc.js": ("text/javascript; charset=utf-8", "public, max-age=300"),
        "missing-images-panel.js": ("text/javascript; charset=utf-8", "public, max-age=300"),
        "missing-images-panel.css": ("text/css; charset=utf-8", "public, max-age=300"),
        "config.js": ("text/javascript; charset=utf-8", "no-cache"),
    }
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == set(expected)
    for key, (content_type, cache_control) in expected.items():
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == (content_type, cache_control), key
    for key in PAGE_FILES:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body == (publish_panel.WEB / key).read_bytes()
    config = s3.get_object(Bucket=BUCKET, Key="config.js")["Body"].read().decode()
    assert config == publish_panel.config_js(API_URL, ISSUER, CLIENT_ID, PANEL_URL)
    assert '"https://abc123.execute-api.us-east-1.amazonaws.com"' in config


def test_publish_refuses_a_stack_without_the_panel_outputs(aws_env: None) -> None:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    with _stack_outputs_stub(cloudformation, {"ApiUrl": API_URL}), pytest.raises(OpsError, match="PanelBucketName"):
        publish_panel.publish(cloudformation, object(), object(), "image-recovery")
