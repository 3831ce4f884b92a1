"""Domain errors. The API maps them to HTTP responses in one place; the worker to job outcomes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from image_recovery.spending import BudgetStatus


class ImageRecoveryError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigurationError(ImageRecoveryError):
    """A required setting is missing or malformed; raised at cold start."""


class BadRequestError(ImageRecoveryError):
    """The caller sent something we refuse; nothing was written."""

    def __init__(self, code: str, message: str, status: int = 400, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details  # added to the error body (DESIGN §3), when there is something to add


class OverBudget(BadRequestError):
    """A request for more images than the day's image budget has left, not confirmed: a 409, nothing written."""

    def __init__(self, images: int, status: BudgetStatus, estimated_cost: float | None) -> None:
        cost = f", about ${estimated_cost:,.2f}" if estimated_cost is not None else ""
        super().__init__(
            "over_budget",
            f"This request would queue about {images} images{cost}, and today's image budget has "
            f"{status.remaining_today} of {status.daily_images} left. The rest would wait for the next day "
            '(UTC); send "confirmOverBudget": true to queue them anyway.',
            status=409,
            details={"images": images, "estimatedCost": estimated_cost, **status.as_json()},
        )


class NotFoundError(ImageRecoveryError):
    """The resource does not exist or belongs to someone else (the two are indistinguishable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class GenerationError(ImageRecoveryError):
    """Image generation failed. `reason` is the short machine-readable cause recorded on the record."""

    retryable: bool = False

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# Reasons of ModelUnavailableError: the deployment cannot use its model, whatever the record says.
MODEL_UNAVAILABLE_REASONS = frozenset({"model_unavailable", "model_access_denied", "invalid_model_request"})

# Reasons a job fails with when its retries ran out; such a job may run again if its message is redriven.
RETRIES_EXHAUSTED_REASONS = (
    frozenset({"throttled", "timeout", "provider_error", "storage_error", "internal_error"}) | MODEL_UNAVAILABLE_REASONS
)
# Failures that are not the record's fault: the sweep queues such records again, later and a bounded number of
# times (DESIGN §4). Every other reason (content_filtered, invalid_response) is permanent: only a request
# that names the record queues it again.
TRANSIENT_REASONS = RETRIES_EXHAUSTED_REASONS | {"enqueue_failed"}


class TransientGenerationError(GenerationError):
    """Throttling, server errors, timeouts: worth another attempt later."""

    retryable = True


class ModelUnavailableError(TransientGenerationError):
    """A fault of the deployment, not of the record: a model id the region does not serve or that needs an
    inference profile, access denied, a model that has ended, a request body the model rejects.

    Retried like a transient error (so the job ends in the dead-letter queue, and a redrive once the
    configuration is fixed runs it again) and counted in the ModelUnavailable metric, which alarms.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in MODEL_UNAVAILABLE_REASONS:
            raise ValueError(f"{reason!r} is not one of {sorted(MODEL_UNAVAILABLE_REASONS)}")
        super().__init__(reason, detail)


class PermanentGenerationError(GenerationError):
    """Retrying the same request cannot succeed (bad request, access denied, unusable response)."""


CONTENT_FILTERED = "content_filtered"


class ContentFilteredError(PermanentGenerationError):
    """The model refused the prompt or its filter blocked the image."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(CONTENT_FILTERED, detail)
