from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from PIL import Image

from image_recovery.aws import FALLBACK_WITHIN_SECONDS
from image_recovery.errors import (
    MODEL_UNAVAILABLE_REASONS,
    RETRIES_EXHAUSTED_REASONS,
    ConfigurationError,
    ContentFilteredError,
    GenerationError,
    ModelUnavailableError,
    PermanentGenerationError,
    TransientGenerationError,
)
from image_recovery.providers import ImageRequest, build_provider
from image_recovery.providers.bedrock import PROFILE_PREFIXES, TEXT_TO_IMAGE_MODELS, BedrockImageProvider

STABILITY = "stability.stable-image-core-v1:1"
NOVA = "amazon.nova-canvas-v1:0"
TITAN = "amazon.titan-image-generator-v2:0"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()
PNG_B64 = base64.b64encode(PNG).decode()


def _request(**overrides: object) -> ImageRequest:
    fields: dict[str, object] = {
        "prompt": "a lighthouse on a cliff at dawn",
        "negative_prompt": "text, watermark",
        "title": "Lighthouse Walk",
        "subtitle": "Cornwall, 2023",
        "style_id": "watercolor",
        "seed": 42,
    }
    fields.update(overrides)
    return ImageRequest(**fields)  # type: ignore[arg-type]


class Harness:
    """A real bedrock-runtime client behind a Stubber, recording each request body sent."""

    def __init__(self) -> None:
        self.client = boto3.client("bedrock-runtime", region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.bodies: list[dict] = []
        self.client.meta.events.register(
            "before-parameter-build.bedrock-runtime.InvokeModel",
            lambda params, **_: self.bodies.append(json.loads(params["body"])),
        )

    def expected(self, model_id: str) -> dict:
        return {
            "modelId": model_id,
            "body": ANY,
            "contentType": "application/json",
            "accept": "application/json",
        }

    def respond(self, model_id: str, payload: object) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        response = {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}
        self.stubber.add_response("invoke_model", response, self.expected(model_id))

    def fail(self, model_id: str, code: str, status: int, message: str = "boom") -> None:
        self.stubber.add_client_error(
            "invoke_model", code, message, http_status_code=status, expected_params=self.expected(model_id)
        )

    def generate(self, model_id: str, request: ImageRequest | None = None, fallback: str = ""):
        with self.stubber:
            result = BedrockImageProvider(model_id, lambda: self.client, fallback).generate(request or _request())
        self.stubber.assert_no_pending_responses()
        return result


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Harness:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return Harness()


def _ok_stability() -> dict:
    return {"images": [PNG_B64], "finish_reasons": [None], "seeds": [42]}


def test_stability_request_body_and_png_result(bedrock: Harness) -> None:
    bedrock.respond(STABILITY, _ok_stability())
    result = bedrock.generate(STABILITY)
    assert bedrock.bodies == [
        {
            "prompt": "a lighthouse on a cliff at dawn",
            "negative_prompt": "text, watermark",
            "output_format": "png",
            "aspect_ratio": "16:9",
            "seed": 42,
        }
    ]
    assert (result.data, result.content_type, result.model) == (PNG, "image/png", STABILITY)


def test_stability_omits_empty_negative_prompt_and_folds_seed(bedrock: Harness) -> None:
    bedrock.respond("stability.sd3-5-large-v1:0", _ok_stability())
    bedrock.generate("stability.sd3-5-large-v1:0", _request(negative_prompt="  ", seed=4_294_967_295 + 7))
    assert "negative_prompt" not in bedrock.bodies[0]
    assert bedrock.bodies[0]["seed"] == 7


@pytest.mark.parametrize("model_id", [NOVA, TITAN])
def test_amazon_request_body_and_png_result(bedrock: Harness, model_id: str) -> None:
    bedrock.respond(model_id, {"images": [PNG_B64]})
    result = bedrock.generate(model_id)
    assert bedrock.bodies == [
        {
            "taskType": "TEXT_IMAGE",
            "textToImageParams": {
                "text": "a lighthouse on a cliff at dawn",
                "negativeText": "text, watermark",
            },
            "imageGenerationConfig": {
                "numberOfImages": 1,
                "width": 1280,
                "height": 768,
                "cfgScale": 8.0,
                "seed": 42,
            },
        }
    ]
    assert (result.data, result.model) == (PNG, model_id)


def test_amazon_omits_empty_negative_text_and_keeps_seed_in_range(bedrock: Harness) -> None:
    bedrock.respond(NOVA, {"images": [PNG_B64]})
    bedrock.generate(NOVA, _request(negative_prompt="", seed=858_993_460 + 5))
    assert bedrock.bodies[0]["textToImageParams"] == {"text": "a lighthouse on a cliff at dawn"}
    assert bedrock.bodies[0]["imageGenerationConfig"]["seed"] == 5


def test_inference_profile_prefix_selects_family_and_is_sent_unchanged(bedrock: Harness) -> None:
    bedrock.respond("us.amazon.nova-canvas-v1:0", {"images": [PNG_B64]})
    result = bedrock.generate("us.amazon.nova-canvas-v1:0")
    assert bedrock.bodies[0]["taskType"] == "TEXT_IMAGE"
    assert result.model == "us.amazon.nova-canvas-v1:0"


@pytest.mark.parametrize(
    ("model_id", "limit"),
    [(STABILITY, 10_000), ("global.stability.stable-image-ultra-v1:1", 10_000), (NOVA, 1_024), (TITAN, 512)],
)
def test_long_prompts_are_truncated_at_a_word_boundary(bedrock: Harness, model_id: str, limit: int) -> None:
    words = "lighthouse " * 2_000
    payload = _ok_stability() if "stability" in model_id else {"images": [PNG_B64]}
    bedrock.respond(model_id, payload)
    bedrock.generate(model_id, _request(prompt=words, negative_prompt=words))
    body = bedrock.bodies[0]
    prompt, negative = (
        (body["prompt"], body["negative_prompt"])
        if "stability" in model_id
        else (body["textToImageParams"]["text"], body["textToImageParams"]["negativeText"])
    )
    assert 0 < len(prompt) <= limit and 0 < len(negative) <= limit
    assert prompt.endswith("lighthouse") and len(prompt) > limit - len(" lighthouse")


# ---------------------------------------------------------------- what Bedrock answers, and what it means
@dataclass(frozen=True)
class Answer:
    """One answer Bedrock really gives (the message as published at `source`) and how it must be classified."""

    code: str
    status: int
    message: str
    reason: str  # content_filtered: the record's fault; model_*/invalid_model_request: the deployment's
    source: str


NOVA_ERRORS = "https://docs.aws.amazon.com/nova/latest/userguide/image-gen-errors.html"
STABILITY_RESPONSE = (
    "https://docs.aws.amazon.com/bedrock/latest/userguide/"
    "model-parameters-diffusion-stable-image-core-text-image-request-response.html"
)

ERROR_ANSWERS = [
    Answer(
        "ValidationException",
        400,
        "This request has been blocked by our content filters. Please adjust your text prompt to submit a new request.",
        "content_filtered",
        NOVA_ERRORS,
    ),
    Answer(
        "ValidationException",
        400,
        "This request has been blocked by our content filters. Please adjust your input image to submit a new request.",
        "content_filtered",
        NOVA_ERRORS,
    ),
    Answer(
        "ValidationException",
        400,
        "The provided model identifier is invalid.",
        "model_unavailable",
        "https://github.com/aws-samples/amazon-bedrock-workshop/issues/315",
    ),
    Answer(
        "ValidationException",
        400,
        "Invocation of model ID amazon.nova-2-lite-v1:0 with on-demand throughput isn\u2019t supported. Retry your "
        "request with the ID or ARN of an inference profile that contains this model.",
        "model_unavailable",
        "https://github.com/langchain-ai/langchain-aws/issues/1019",
    ),
    Answer(
        "ValidationException",
        400,
        "The provided model doesn't support on-demand throughput.",
        "model_unavailable",
        "https://github.com/aws-samples/bedrock-chat/issues/508",
    ),
    Answer(
        "ValidationException",
        400,
        "Malformed input request: #: required key [prompt] not found, please reformat your input and try again.",
        "invalid_model_request",
        "https://github.com/BerriAI/litellm/issues/6722",
    ),
    Answer(
        "ValidationException",
        400,
        "Malformed input request, please reformat your input and try again.",
        "invalid_model_request",
        "https://github.com/aws-samples/amazon-bedrock-client-for-mac/issues/12",
    ),
    Answer(
        "ValidationException",
        400,
        "Malformed input request: #: extraneous key [textGenerationConfig] is not permitted, please reformat your "
        "input and try again.",
        "invalid_model_request",
        "https://github.com/aws-samples/serverless-pdf-chat/issues/35",
    ),
    Answer(
        "AccessDeniedException",
        403,
        "You don't have access to the model with the specified model ID.",
        "model_access_denied",
        "https://github.com/aws-samples/amazon-bedrock-audio-summarizer/issues/15",
    ),
    Answer(
        "AccessDeniedException",
        403,
        # the account id is masked in the source
        "User: arn:aws:sts::123456789012:assumed-role/semantic-search-NBRole-EjdXfAalJlpo/SageMaker is not "
        "authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/"
        "anthropic.claude-3-haiku-20240307-v1:0 because no identity-based policy allows the bedrock:InvokeModel action",
        "model_access_denied",
        "https://github.com/aws-samples/semantic-search-with-amazon-opensearch/issues/43",
    ),
    Answer(
        "AccessDeniedException",
        403,
        "Your account is not authorized to invoke this API operation.",
        "model_access_denied",
        "https://github.com/aws-samples/amazon-bedrock-workshop/issues/100",
    ),
    Answer(
        "ResourceNotFoundException",
        404,
        "Access denied. This Model is marked by provider as Legacy and you have not been actively using the model "
        "in the last 15 days. Please upgrade to an active model on Amazon Bedrock",
        "model_unavailable",
        "https://github.com/aws-samples/amazon-bedrock-workshop/issues/386",
    ),
    Answer(
        "ResourceNotFoundException",
        404,
        "This model version has reached the end of its life. Please refer to the AWS documentation for more details.",
        "model_unavailable",
        "https://github.com/aws-solutions-library-samples/accelerated-intelligent-document-processing-on-aws/issues/708",
    ),
    Answer(
        "ThrottlingException",
        429,
        "Too many requests, please wait before trying again. You have sent too many requests. "
        "Wait before trying again.",
        "throttled",
        "https://github.com/i-dot-ai/caddy-chatbot/issues/97",
    ),
]
DEPLOYMENT_FAULTS = {"model_unavailable", "model_access_denied", "invalid_model_request"}


@pytest.mark.parametrize("answer", ERROR_ANSWERS, ids=lambda a: f"{a.code}:{a.message[:48]}")
def test_bedrock_errors_are_classified_by_whose_fault_they_are(bedrock: Harness, answer: Answer) -> None:
    bedrock.fail(STABILITY, answer.code, answer.status, answer.message)

    with pytest.raises(GenerationError) as info:
        bedrock.generate(STABILITY)

    error = info.value
    assert error.reason == answer.reason
    assert answer.message in error.detail
    assert isinstance(error, ContentFilteredError) == (answer.reason == "content_filtered")
    assert isinstance(error, ModelUnavailableError) == (answer.reason in DEPLOYMENT_FAULTS)
    # only the record's own fault ends it for good; the deployment's is retried and ends in the DLQ
    assert error.retryable == (answer.reason != "content_filtered")


def test_the_table_covers_every_classification_and_every_fault_is_redriven() -> None:
    assert {a.reason for a in ERROR_ANSWERS} == DEPLOYMENT_FAULTS | {"content_filtered", "throttled"}
    assert DEPLOYMENT_FAULTS == MODEL_UNAVAILABLE_REASONS
    assert DEPLOYMENT_FAULTS <= RETRIES_EXHAUSTED_REASONS  # a redrive after the fix runs the job again
    assert all(a.source.startswith("https://") for a in ERROR_ANSWERS)


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        # InvokeModel's other documented errors (botocore/data/bedrock-runtime/2023-09-30/service-2.json)
        ("ServiceQuotaExceededException", 400, "throttled"),
        ("ModelTimeoutException", 408, "timeout"),
        ("InternalServerException", 500, "provider_error"),
        ("ServiceUnavailableException", 503, "provider_error"),
        ("ModelNotReadyException", 429, "provider_error"),
        ("ModelErrorException", 424, "provider_error"),
        # and what it does not document
        ("TooManyRequestsException", 429, "throttled"),
        ("SomethingNew", 502, "provider_error"),
        ("SomethingElse", 400, "invalid_model_request"),
    ],
)
def test_other_client_errors_are_retried(bedrock: Harness, code: str, status: int, reason: str) -> None:
    bedrock.fail(NOVA, code, status)
    with pytest.raises(TransientGenerationError) as info:
        bedrock.generate(NOVA)
    assert info.value.reason == reason and info.value.retryable
    assert isinstance(info.value, ModelUnavailableError) == (reason in DEPLOYMENT_FAULTS)


@pytest.mark.parametrize(
    ("finish_reason", "expected"),
    [
        ("Filter reason: prompt", ContentFilteredError),
        ("Filter reason: output image", ContentFilteredError),
        ("Filter reason: input image", ContentFilteredError),
        ("Inference error", TransientGenerationError),
    ],
)
def test_stability_finish_reasons_inside_a_successful_answer(
    bedrock: Harness, finish_reason: str, expected: type
) -> None:
    # the values Bedrock documents for finish_reasons: STABILITY_RESPONSE
    bedrock.respond(STABILITY, {"images": [], "finish_reasons": [finish_reason], "seeds": [1]})
    with pytest.raises(expected) as info:
        bedrock.generate(STABILITY)
    assert info.value.detail == finish_reason
    assert info.value.retryable == (expected is TransientGenerationError)


def test_amazon_error_field_is_content_filtered(bedrock: Harness) -> None:
    # the value Nova Canvas documents when its output filter blocks the image: NOVA_ERRORS
    blocked = "All of the generated images have been blocked by our content filters."
    bedrock.respond(NOVA, {"images": [], "error": blocked})
    with pytest.raises(ContentFilteredError) as info:
        bedrock.generate(NOVA)
    assert info.value.detail == blocked and not info.value.retryable


@pytest.mark.parametrize(
    "payload",
    [
        b"<html>not json</html>",
        b"[1, 2]",
        {"images": []},
        {"images": ["%%% not base64 %%%"]},
        {"images": [base64.b64encode(b"GIF89a....").decode()]},
    ],
)
def test_unusable_response_is_invalid_response(bedrock: Harness, payload: object) -> None:
    bedrock.respond(NOVA, payload)
    with pytest.raises(PermanentGenerationError) as info:
        bedrock.generate(NOVA)
    assert info.value.reason == "invalid_response"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ReadTimeoutError(endpoint_url="https://bedrock"), "timeout"),
        (ConnectTimeoutError(endpoint_url="https://bedrock"), "timeout"),
        (EndpointConnectionError(endpoint_url="https://bedrock"), "provider_error"),
    ],
)
def test_network_errors_are_transient(exc: Exception, reason: str) -> None:
    class FailingClient:
        meta = boto3.client("bedrock-runtime", region_name="us-east-1").meta  # its events, for the retry hook

        def invoke_model(self, **_: object) -> dict:
            raise exc

    with pytest.raises(TransientGenerationError) as info:
        BedrockImageProvider(NOVA, FailingClient).generate(_request())
    assert info.value.reason == reason


# ---------------------------------------------------------------- which models it takes (docs/bedrock-models.md)
@pytest.mark.parametrize("prefix", ["", *sorted(f"{p}." for p in PROFILE_PREFIXES)])
def test_text_to_image_models_are_accepted_as_foundation_models_or_through_a_profile(prefix: str) -> None:
    for model_id in TEXT_TO_IMAGE_MODELS:
        assert BedrockImageProvider(prefix + model_id, client=object)


@pytest.mark.parametrize(
    ("model_id", "why"),
    [
        # Stability's image services on Bedrock: editing, then upscaling (all served through the us. profile)
        ("stability.stable-image-inpaint-v1:0", "image editing model"),
        ("us.stability.stable-outpaint-v1:0", "image editing model"),
        ("us.stability.stable-image-erase-object-v1:0", "image editing model"),
        ("us.stability.stable-image-search-replace-v1:0", "image editing model"),
        ("us.stability.stable-image-search-recolor-v1:0", "image editing model"),
        ("us.stability.stable-image-remove-background-v1:0", "image editing model"),
        ("us.stability.stable-image-control-sketch-v1:0", "image editing model"),
        ("us.stability.stable-image-control-structure-v1:0", "image editing model"),
        ("us.stability.stable-image-style-guide-v1:0", "image editing model"),
        ("us.stability.stable-style-transfer-v1:0", "image editing model"),
        ("us.stability.stable-creative-upscale-v1:0", "upscaling model"),
        ("stability.stable-conservative-upscale-v1:0", "upscaling model"),
        ("us.stability.stable-fast-upscale-v1:0", "upscaling model"),
        ("amazon.nova-reel-v1:1", "video model"),
        ("luma.ray-v2:0", "video model"),
        ("stability.stable-diffusion-xl-v1", "Stable Diffusion XL"),
        ("meta.llama3-8b-instruct-v1:0", "not a text-to-image model"),
        ("amazon.titan-text-express-v1", "not a text-to-image model"),
        ("stability.stable-image-core", "not a text-to-image model"),  # no version: matched exactly
        ("xx.stability.stable-image-core-v1:1", "not a text-to-image model"),  # not a profile prefix
        ("arn:aws:bedrock:us-west-2::foundation-model/stability.sd3-5-large-v1:0", "not a text-to-image model"),
        ("", "not a text-to-image model"),
    ],
)
def test_other_models_are_refused_at_construction_saying_why(model_id: str, why: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        BedrockImageProvider(model_id, client=object)
    message = str(info.value)
    assert why in message and repr(model_id) in message
    assert "stability.stable-image-core-v1:1" in message  # and what to use instead
    assert "amazon.nova-canvas-v1:0" not in message  # never an ended model


def test_an_ended_model_is_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Bedrock answers an ended model with ResourceNotFoundException: each record then shows
    model_unavailable and the alarm fires. The cold start says so first."""
    BedrockImageProvider(STABILITY, client=object)
    assert caplog.records == []

    BedrockImageProvider(f"us.{NOVA}", client=object)

    (warning,) = caplog.records
    assert warning.levelname == "WARNING" and "end of life" in warning.getMessage()
    assert (warning.model_id, warning.ended) == (f"us.{NOVA}", "on 2026-09-30")


def test_the_docs_list_every_model_the_code_takes() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "bedrock-models.md").read_text()
    assert [m for m in TEXT_TO_IMAGE_MODELS if f"`{m}`" not in docs] == []
    assert [p for p in PROFILE_PREFIXES if f"`{p}.`" not in docs] == []


def test_build_provider_bedrock_makes_its_client_only_when_it_first_generates() -> None:
    made = []
    provider = build_provider("bedrock", NOVA, lambda: made.append("client") or pytest.fail("too early"))

    assert isinstance(provider, BedrockImageProvider)
    assert made == []


def test_build_provider_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown image provider 'openai'"):
        build_provider("openai", NOVA, lambda: pytest.fail("client factory must not be called"))


# ---------------------------------------------------------------- what the rate governor learns
class _Raw(io.BytesIO):
    """An HTTP response body as botocore reads it: streamed (errors) or read (the image's payload)."""

    def stream(self, **_: object):
        yield self.getvalue()


def test_a_throttle_the_sdks_retry_got_past_is_still_reported_with_the_image(monkeypatch) -> None:
    """Bedrock answers ThrottlingException, botocore's standard retry tries again and gets the image: the
    provider saw the throttle (botocore's needs-retry hook) and says so, for the rate governor."""
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0)
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", config=Config(retries={"mode": "standard", "total_max_attempts": 2})
    )
    answers = [
        AWSResponse("https://bedrock", 400, {"x-amzn-ErrorType": "ThrottlingException"}, _Raw(b'{"message":"slow"}')),
        AWSResponse("https://bedrock", 200, {}, _Raw(json.dumps(_ok_stability()).encode())),
    ]
    client.meta.events.register("before-send.bedrock-runtime.InvokeModel", lambda **_: answers.pop(0))

    result = BedrockImageProvider(STABILITY, lambda: client).generate(_request())

    assert answers == []  # both attempts were sent
    assert (result.data, result.throttled_attempts) == (PNG, 1)


# ---------------------------------------------------------------- the fallback model
def test_a_refused_model_falls_back_once_with_the_fallback_models_own_request_body(bedrock: Harness) -> None:
    """Nova Canvas has ended (ResourceNotFoundException): Stable Image Core draws instead, asked in its family."""
    bedrock.fail(NOVA, "ResourceNotFoundException", 404, "This model version has reached the end of its life.")
    bedrock.respond(STABILITY, _ok_stability())

    result = bedrock.generate(NOVA, fallback=STABILITY)

    assert [sorted(body) for body in bedrock.bodies] == [
        ["imageGenerationConfig", "taskType", "textToImageParams"],
        ["aspect_ratio", "negative_prompt", "output_format", "prompt", "seed"],
    ]
    assert (result.data, result.model) == (PNG, STABILITY)
    assert result.fell_back_from is not None and result.fell_back_from.reason == "model_unavailable"


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("ValidationException", 400, "This request has been blocked by our content filters."),
        ("ThrottlingException", 429, "Too many requests, please wait before trying again."),
        ("ServiceUnavailableException", 503, "Bedrock is unable to process your request."),
    ],
)
def test_refusals_of_the_prompt_and_passing_errors_never_switch_models(
    bedrock: Harness, code: str, status: int, message: str
) -> None:
    bedrock.fail(STABILITY, code, status, message)  # the stubber has no answer for a second call: none is made

    with pytest.raises(GenerationError) as info:
        bedrock.generate(STABILITY, fallback="stability.sd3-5-large-v1:0")

    assert not isinstance(info.value, ModelUnavailableError)
    assert len(bedrock.bodies) == 1


def test_when_the_fallback_fails_too_the_primarys_refusal_is_raised(bedrock: Harness) -> None:
    bedrock.fail(STABILITY, "AccessDeniedException", 403, "You don't have access to the model with this model ID.")
    bedrock.fail("stability.sd3-5-large-v1:0", "ThrottlingException", 429, "Too many requests")

    with pytest.raises(ModelUnavailableError) as info:
        bedrock.generate(STABILITY, fallback="stability.sd3-5-large-v1:0")

    assert info.value.reason == "model_access_denied"  # retried, alarmed and dead-lettered as without a fallback
    assert isinstance(info.value.__cause__, TransientGenerationError)
    assert len(bedrock.bodies) == 2


def test_a_refusal_that_took_long_does_not_fall_back(bedrock: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's time budget holds one whole model call after a quick refusal, not two whole calls."""
    clock = iter([0.0, FALLBACK_WITHIN_SECONDS + 0.5])
    monkeypatch.setattr("image_recovery.providers.bedrock.perf_counter", lambda: next(clock))
    bedrock.fail(STABILITY, "ResourceNotFoundException", 404, "Model not found")

    with pytest.raises(ModelUnavailableError):
        bedrock.generate(STABILITY, fallback="stability.sd3-5-large-v1:0")

    assert len(bedrock.bodies) == 1


@pytest.mark.parametrize(
    ("fallback", "why"),
    [
        (f"us.{STABILITY}", "is an inference profile id"),
        (STABILITY, "is BEDROCK_MODEL_ID itself"),
        ("stability.stable-image-inpaint-v1:0", "FALLBACK_MODEL_ID='stability.stable-image-inpaint-v1:0': an image"),
    ],
)
def test_the_fallback_is_validated_at_cold_start(fallback: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(why)):
        BedrockImageProvider(STABILITY, client=object, fallback_id=fallback)
