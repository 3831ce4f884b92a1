from __future__ import annotations

import base64
import io
import json

import boto3
import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from PIL import Image

from image_recovery.errors import (
    ConfigurationError,
    ContentFilteredError,
    PermanentGenerationError,
    TransientGenerationError,
)
from image_recovery.providers import ImageRequest, build_provider
from image_recovery.providers.bedrock import BedrockImageProvider

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

    def generate(self, model_id: str, request: ImageRequest | None = None):
        with self.stubber:
            result = BedrockImageProvider(model_id, lambda: self.client).generate(request or _request())
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


def test_stability_filter_reason_is_content_filtered(bedrock: Harness) -> None:
    bedrock.respond(STABILITY, {"images": [], "finish_reasons": ["Filter reason: prompt"], "seeds": [1]})
    with pytest.raises(ContentFilteredError) as info:
        bedrock.generate(STABILITY)
    assert info.value.reason == "content_filtered" and not info.value.retryable
    assert "Filter reason: prompt" in info.value.detail


def test_stability_inference_error_is_transient(bedrock: Harness) -> None:
    bedrock.respond(STABILITY, {"images": [], "finish_reasons": ["Inference error"]})
    with pytest.raises(TransientGenerationError) as info:
        bedrock.generate(STABILITY)
    assert info.value.reason == "provider_error"


def test_amazon_error_field_is_content_filtered(bedrock: Harness) -> None:
    bedrock.respond(NOVA, {"images": [], "error": "blocked by content filters"})
    with pytest.raises(ContentFilteredError) as info:
        bedrock.generate(NOVA)
    assert info.value.detail == "blocked by content filters"


def test_validation_exception_is_content_filtered_with_message(bedrock: Harness) -> None:
    bedrock.fail(NOVA, "ValidationException", 400, "This request has been blocked by our content filters.")
    with pytest.raises(ContentFilteredError) as info:
        bedrock.generate(NOVA)
    assert "blocked by our content filters" in info.value.detail
    assert not info.value.retryable


def test_throttling_is_transient_and_retryable(bedrock: Harness) -> None:
    bedrock.fail(STABILITY, "ThrottlingException", 429)
    with pytest.raises(TransientGenerationError) as info:
        bedrock.generate(STABILITY)
    assert info.value.reason == "throttled" and info.value.retryable


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("ServiceQuotaExceededException", 400, "throttled"),
        ("TooManyRequestsException", 429, "throttled"),
        ("ModelTimeoutException", 408, "timeout"),
        ("InternalServerException", 500, "provider_error"),
        ("ServiceUnavailableException", 503, "provider_error"),
        ("ModelNotReadyException", 429, "provider_error"),
        ("ModelErrorException", 424, "provider_error"),
        ("SomethingNew", 502, "provider_error"),
    ],
)
def test_retryable_client_errors(bedrock: Harness, code: str, status: int, reason: str) -> None:
    bedrock.fail(NOVA, code, status)
    with pytest.raises(TransientGenerationError) as info:
        bedrock.generate(NOVA)
    assert info.value.reason == reason and info.value.retryable


@pytest.mark.parametrize(
    ("code", "status"),
    [("AccessDeniedException", 403), ("ResourceNotFoundException", 404), ("SomethingElse", 400)],
)
def test_permanent_client_errors(bedrock: Harness, code: str, status: int) -> None:
    bedrock.fail(NOVA, code, status)
    with pytest.raises(PermanentGenerationError) as info:
        bedrock.generate(NOVA)
    assert info.value.reason == "provider_rejected" and not info.value.retryable
    assert not isinstance(info.value, ContentFilteredError)


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
        def invoke_model(self, **_: object) -> dict:
            raise exc

    with pytest.raises(TransientGenerationError) as info:
        BedrockImageProvider(NOVA, FailingClient).generate(_request())
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "model_id",
    ["meta.llama3-8b-instruct-v1:0", "stability.stable-diffusion-xl-v1", "amazon.titan-text-express-v1", ""],
)
def test_unknown_model_family_fails_at_construction(model_id: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported Bedrock image model"):
        BedrockImageProvider(model_id, client=object)


def test_build_provider_bedrock_makes_its_client_only_when_it_first_generates() -> None:
    made = []
    provider = build_provider("bedrock", NOVA, lambda: made.append("client") or pytest.fail("too early"))

    assert isinstance(provider, BedrockImageProvider)
    assert made == []


def test_build_provider_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown image provider 'openai'"):
        build_provider("openai", NOVA, lambda: pytest.fail("client factory must not be called"))
