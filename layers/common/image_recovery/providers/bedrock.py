"""Amazon Bedrock image provider (InvokeModel) for the Stability and Amazon TEXT_IMAGE request families.

Limits per the Bedrock model parameter docs: Stability prompts up to 10,000 chars and seeds 0..4,294,967,294;
Titan Image Generator text up to 512 chars and seeds 0..2,147,483,646; Nova Canvas text 1..1,024 chars
and seeds 0..858,993,459; Titan/Nova cfgScale 1.1..10.

Which models are accepted, and why the others are not: docs/bedrock-models.md. How Bedrock's answers are
classified (the record's fault, the deployment's, or a passing one): `classify_client_error`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, HTTPClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError

from image_recovery.aws import FALLBACK_WITHIN_SECONDS
from image_recovery.errors import (
    ConfigurationError,
    ContentFilteredError,
    GenerationError,
    ModelUnavailableError,
    PermanentGenerationError,
    TransientGenerationError,
)
from image_recovery.observability import logger
from image_recovery.providers.base import GeneratedImage, ImageRequest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Prefixes of the system-defined cross-region inference profiles ("us.stability.sd3-5-large-v1:0"), as
# ListInferenceProfiles names them: geographic ones, GovCloud's, and global. template.yaml's
# IsInferenceProfile condition lists the same set.
PROFILE_PREFIXES = frozenset({"us", "us-gov", "eu", "apac", "jp", "au", "ca", "in", "global"})

_THROTTLED = frozenset({"ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"})
_SERVER_ERRORS = frozenset(
    {
        "InternalServerException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
        "ModelErrorException",
    }
)


@dataclass(frozen=True)
class _Family:
    kind: str  # "stability" or "amazon"
    max_prompt_chars: int
    max_seed: int


@dataclass(frozen=True)
class _Model:
    family: _Family
    price: float  # USD for one image at the default size and quality, on demand (the budget's estimates)
    ended: str = ""  # when Bedrock ended the model (its end of life), if it has


_STABILITY = _Family("stability", 10_000, 4_294_967_294)
_TITAN = _Family("amazon", 512, 2_147_483_646)
_NOVA_CANVAS = _Family("amazon", 1_024, 858_993_459)

# Every text-to-image model Bedrock has offered with one of the two request bodies this provider sends,
# matched exactly. Ended models stay accepted: Bedrock answers them with ResourceNotFoundException, which
# marks each record model_unavailable and raises the ModelUnavailable alarm, and the cold start warns.
# Lifecycle and sources: docs/bedrock-models.md.
TEXT_TO_IMAGE_MODELS: dict[str, _Model] = {
    "stability.stable-image-core-v1:1": _Model(_STABILITY, 0.04),
    "stability.stable-image-ultra-v1:1": _Model(_STABILITY, 0.14),
    "stability.sd3-5-large-v1:0": _Model(_STABILITY, 0.08),
    "stability.stable-image-core-v1:0": _Model(_STABILITY, 0.04, ended="by September 2025"),
    "stability.stable-image-ultra-v1:0": _Model(_STABILITY, 0.14, ended="by September 2025"),
    "stability.sd3-large-v1:0": _Model(_STABILITY, 0.08, ended="by September 2025"),
    "amazon.nova-canvas-v1:0": _Model(_NOVA_CANVAS, 0.04, ended="on 2026-09-30"),
    "amazon.titan-image-generator-v2:0": _Model(_TITAN, 0.01, ended="on 2026-06-30"),
    "amazon.titan-image-generator-v1": _Model(_TITAN, 0.01, ended="by September 2025"),
}

# Why a Bedrock image model that is not in the list above is refused, by a marker in its id.
_NOT_TEXT_TO_IMAGE: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        (
            "inpaint",
            "outpaint",
            "erase",
            "search-replace",
            "search-recolor",
            "remove-background",
            "control-sketch",
            "control-structure",
            "style-guide",
            "style-transfer",
        ),
        "an image editing model: it changes an input image and cannot draw a cover from a prompt alone",
    ),
    (("upscale",), "an upscaling model: it enlarges an input image and cannot draw a cover from a prompt"),
    (("reel", "luma.ray", "video"), "a video model, not an image model"),
    (
        ("stable-diffusion-xl",),
        "Stable Diffusion XL, whose request body (text_prompts, cfg_scale, steps) this worker does not send",
    ),
)


def base_model_id(model_id: str) -> str:
    """The foundation model of a cross-region inference profile id ("us.stability.sd3-5-large-v1:0"), or the id."""
    head, _, rest = model_id.partition(".")
    return rest if head in PROFILE_PREFIXES and "." in rest else model_id


def price_per_image(model_id: str) -> float | None:
    """The listed price of one image of `model_id` (a foundation model or a profile over one); None if unknown."""
    model = TEXT_TO_IMAGE_MODELS.get(base_model_id(model_id))
    return None if model is None else model.price


def _model_for(model_id: str, setting: str = "BEDROCK_MODEL_ID") -> _Model:
    """The configured model, or a ConfigurationError at cold start that says why it cannot draw covers."""
    base = base_model_id(model_id)
    model = TEXT_TO_IMAGE_MODELS.get(base)
    if model is not None:
        return model
    why = next(
        (reason for markers, reason in _NOT_TEXT_TO_IMAGE if any(marker in base for marker in markers)),
        "not a text-to-image model of the Stability or Amazon request family",
    )
    current = ", ".join(known for known, model in TEXT_TO_IMAGE_MODELS.items() if not model.ended)
    raise ConfigurationError(
        f"unsupported Bedrock image model {setting}={model_id!r}: {why}. Use a text-to-image model "
        f"such as {current}, optionally with a cross-region inference profile prefix ('us.', 'eu.', "
        "'global.', ...) where Bedrock offers one; see docs/bedrock-models.md"
    )


def _truncate(text: str, limit: int) -> str:
    """Cut to `limit` chars, preferring the last word boundary in the second half of the allowance."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip()


@dataclass(frozen=True)
class _Target:
    """A model the provider calls: its id as InvokeModel takes it, and the request family it speaks."""

    model_id: str
    family: _Family


def _target(model_id: str, setting: str) -> _Target:
    model = _model_for(model_id, setting)
    if model.ended:
        logger.warning(
            f"the Bedrock model of {setting} has reached its end of life: every job it is asked for fails with "
            "model_unavailable until it names an active model (docs/bedrock-models.md)",
            extra={"model_id": model_id, "ended": model.ended},
        )
    return _Target(model_id, model.family)


def _fallback_target(fallback_id: str, primary_id: str) -> _Target | None:
    """FALLBACK_MODEL_ID, validated like the primary: a foundation model id (the worker's IAM grant names
    the model, not a profile), and not the primary itself. Empty: no fallback."""
    if not fallback_id:
        return None
    if base_model_id(fallback_id) != fallback_id:
        raise ConfigurationError(
            f"FALLBACK_MODEL_ID={fallback_id!r} is an inference profile id: the fallback must be a foundation "
            f"model id such as {base_model_id(fallback_id)!r}, served on demand in the worker's Bedrock region"
        )
    if fallback_id == primary_id:
        raise ConfigurationError(f"FALLBACK_MODEL_ID={fallback_id!r} is BEDROCK_MODEL_ID itself: name another model")
    return _target(fallback_id, "FALLBACK_MODEL_ID")


class BedrockImageProvider:
    """`client` is a zero-argument callable returning the bedrock-runtime client, called on first use:
    building a client costs tens of milliseconds that a cold start should not pay before it needs them.

    With `fallback_id`, a request the primary model refuses for a fault of the deployment (ModelUnavailableError:
    ended, not served, access denied, needs a profile) is made once more with the fallback model, provided the
    refusal came within FALLBACK_WITHIN_SECONDS (it comes at once; the job's time budget counts on it)."""

    def __init__(self, model_id: str, client: Callable[[], Any], fallback_id: str = "") -> None:
        self._primary = _target(model_id, "BEDROCK_MODEL_ID")
        self._fallback = _fallback_target(fallback_id, model_id)
        self._client = client
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()  # the clients whose retries _note_throttle sees
        self._throttle_answers = 0

    def _note_throttle(self, response: tuple | None = None, **_: object) -> None:
        """botocore's needs-retry hook, as an observer (it returns None, so the SDK decides as before):
        counts every throttle answer, including those its retry then got past."""
        if response is not None and response[1].get("Error", {}).get("Code") in _THROTTLED:
            self._throttle_answers += 1

    def _watched_client(self) -> Any:
        client = self._client()
        if client not in self._watched:
            client.meta.events.register("needs-retry.bedrock-runtime.InvokeModel", self._note_throttle)
            self._watched.add(client)
        return client

    def generate(self, request: ImageRequest) -> GeneratedImage:
        throttled_before = self._throttle_answers
        started = perf_counter()
        try:
            return self._image(self._primary, request, throttled_before)
        except ModelUnavailableError as refused:
            if self._fallback is None or perf_counter() - started > FALLBACK_WITHIN_SECONDS:
                raise
            try:
                return self._image(self._fallback, request, throttled_before, fell_back_from=refused)
            except GenerationError as failed:
                logger.warning(
                    "the fallback model failed too",
                    extra={"model_id": self._fallback.model_id, "reason": failed.reason, "detail": failed.detail},
                )
                raise refused from failed

    def _image(
        self,
        target: _Target,
        request: ImageRequest,
        throttled_before: int,
        fell_back_from: ModelUnavailableError | None = None,
    ) -> GeneratedImage:
        body = self._build_body(target.family, request)
        try:
            response = self._watched_client().invoke_model(
                modelId=target.model_id,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            raw = response["body"].read()
        except ClientError as exc:
            raise classify_client_error(exc) from exc
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise TransientGenerationError("timeout", str(exc)) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise TransientGenerationError("provider_error", str(exc)) from exc
        return GeneratedImage(
            data=self._parse(target.family, raw),
            content_type="image/png",
            model=target.model_id,
            throttled_attempts=self._throttle_answers - throttled_before,
            fell_back_from=fell_back_from,
        )

    @staticmethod
    def _build_body(family: _Family, request: ImageRequest) -> dict[str, Any]:
        prompt = _truncate(request.prompt.strip(), family.max_prompt_chars)
        negative = _truncate(request.negative_prompt.strip(), family.max_prompt_chars)
        if not prompt:
            raise ValueError("image prompt is empty")
        # Fold rather than clamp so out-of-range seeds stay distinct instead of collapsing onto the maximum.
        seed = request.seed % (family.max_seed + 1)
        if family.kind == "stability":
            body: dict[str, Any] = {"prompt": prompt}
            if negative:
                body["negative_prompt"] = negative
            body.update({"output_format": "png", "aspect_ratio": "16:9", "seed": seed})
            return body
        text_params = {"text": prompt}
        if negative:
            text_params["negativeText"] = negative
        return {
            "taskType": "TEXT_IMAGE",
            "textToImageParams": text_params,
            # 1280x768 is on Titan's supported-size list and meets Nova's rules (multiples of 16, <= 4.19 MP).
            "imageGenerationConfig": {
                "numberOfImages": 1,
                "width": 1280,
                "height": 768,
                "cfgScale": 8.0,
                "seed": seed,
            },
        }

    @staticmethod
    def _parse(family: _Family, raw: bytes) -> bytes:
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PermanentGenerationError("invalid_response", "response body is not JSON") from exc
        if not isinstance(payload, dict):
            raise PermanentGenerationError("invalid_response", "response body is not a JSON object")
        if family.kind == "stability":
            reasons = payload.get("finish_reasons") or [None]
            reason = reasons[0] if isinstance(reasons, list) else reasons
            if reason:
                if str(reason).startswith("Filter reason"):
                    raise ContentFilteredError(str(reason))
                raise TransientGenerationError("provider_error", str(reason))  # e.g. "Inference error"
        elif payload.get("error"):
            raise ContentFilteredError(str(payload["error"]))
        images = payload.get("images")
        if not isinstance(images, list) or not images or not isinstance(images[0], str):
            raise PermanentGenerationError("invalid_response", "response has no image")
        try:
            data = base64.b64decode(images[0], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PermanentGenerationError("invalid_response", "image is not valid base64") from exc
        if not data.startswith(PNG_SIGNATURE):
            raise PermanentGenerationError("invalid_response", "image is not a PNG")
        return data


# ValidationException messages, as Bedrock words them (real ones, with their sources, are the table in
# tests/unit/test_bedrock_provider.py). Only the content filter's refusal is the record's fault; a model id
# the region does not serve, one that needs an inference profile, or a model that has ended is the
# deployment's, and so is any other ValidationException (a request body the model rejects).
_CONTENT_FILTERED = re.compile(r"blocked by our content filters", re.IGNORECASE)
_MODEL_ID_REFUSED = re.compile(
    r"model identifier is invalid|on-demand throughput|inference profile|end of its life|as legacy", re.IGNORECASE
)


def classify_client_error(exc: ClientError) -> GenerationError:
    """What an InvokeModel error means for the job: content_filtered (the record's, for good), a
    ModelUnavailableError (the deployment's: retried, alarmed, dead-lettered, redriven after the fix),
    or a transient error (throttled, timeout, provider_error)."""
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    message = error.get("Message", "")
    detail = f"{code}: {message}"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if code == "ValidationException":
        if _CONTENT_FILTERED.search(message):
            return ContentFilteredError(detail)
        if _MODEL_ID_REFUSED.search(message):
            return ModelUnavailableError("model_unavailable", detail)
        return ModelUnavailableError("invalid_model_request", detail)
    if code == "AccessDeniedException":
        return ModelUnavailableError("model_access_denied", detail)
    if code == "ResourceNotFoundException":
        return ModelUnavailableError("model_unavailable", detail)
    if code == "ModelTimeoutException":
        return TransientGenerationError("timeout", detail)
    if code in _SERVER_ERRORS or status >= 500:
        return TransientGenerationError("provider_error", detail)
    if code in _THROTTLED or status == 429:
        return TransientGenerationError("throttled", detail)
    # A client error InvokeModel does not document: nothing says the record is at fault.
    return ModelUnavailableError("invalid_model_request", detail)
