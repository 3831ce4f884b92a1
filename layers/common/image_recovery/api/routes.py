"""Routes of the HTTP API on the Powertools resolver, with validation and one place for error mapping."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from image_recovery.api.schemas import (
    MAX_BODY_BYTES,
    BatchId,
    BatchProgressResponse,
    MissingImagesResponse,
    QueueRequest,
    QueueResponse,
    StyleOut,
    StylesResponse,
)
from image_recovery.errors import BadRequestError, NotFoundError
from image_recovery.models import is_valid_user_id
from image_recovery.observability import logger
from image_recovery.recovery import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, RecoveryService

_CURSOR_MAX = 4096


class Unauthorized(Exception):
    """No usable `sub` claim: the authorizer did not run or the token carries no subject."""


def error_body(code: str, message: str, details: Any = None) -> dict:
    """DESIGN §3: every error is {"error": {"code", "message"}}, validation errors with details."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=error_body(code, message, details)
    )


def _json_body(text: str) -> Any:
    """json.loads, except that nesting too deep for the parser is malformed JSON (a 400), not a RecursionError
    (which the validation does not catch: a 500)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def _validation_details(error: RequestValidationError) -> list[dict]:
    # Location and message only: never echo the input back.
    return [
        {"loc": [str(part) for part in issue.get("loc", ())], "type": issue.get("type"), "msg": issue.get("msg")}
        for issue in error.errors()
    ]


class Api:
    """The resolver plus the pre-flight checks that must run before its validation does."""

    def __init__(self, service: RecoveryService) -> None:
        self.service = service
        self.resolver = resolver = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=_json_body)

        def current_user() -> str:
            claims = resolver.current_event.request_context.authorizer.jwt_claim or {}
            sub = claims.get("sub")
            if not is_valid_user_id(sub):
                raise Unauthorized
            logger.append_keys(user_id=sub)  # the subject only: the token itself is never logged
            return sub

        @resolver.get("/missing-images")
        def list_missing(
            limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
            cursor: Annotated[str | None, Query(min_length=1, max_length=_CURSOR_MAX)] = None,
        ) -> MissingImagesResponse:
            page = service.missing_images(current_user(), limit=limit, cursor=cursor)
            return MissingImagesResponse(
                count=page.count,
                trips=page.trips,
                segments=page.segments,
                reservations=page.reservations,
                nextCursor=page.next_cursor,
            )

        @resolver.post("/image-jobs", status_code=202)  # the OpenAPI document says 202 too
        def queue_jobs(request: Annotated[QueueRequest, Body()]) -> QueueResponse:
            result = service.queue(
                current_user(),
                request.requested,
                selection=request.selection,
                style_id=request.styleId,
                regenerate=request.regenerate,
            )
            return QueueResponse(
                batchId=result.batch_id,
                styleId=result.style_id,
                complete=result.complete,
                summary=result.summary(),
                items=[asdict(item) for item in result.items],
            )

        @resolver.get("/image-jobs/<batch_id>")
        def batch_progress(batch_id: Annotated[BatchId, Path()]) -> BatchProgressResponse:
            progress = service.progress(current_user(), batch_id)
            return BatchProgressResponse(
                batchId=progress.batch_id,
                total=progress.total,
                queued=progress.queued,
                generating=progress.generating,
                succeeded=progress.succeeded,
                failed=progress.failed,
                complete=progress.complete,
            )

        @resolver.get("/styles")
        def list_styles() -> StylesResponse:
            return StylesResponse(
                styles=[
                    StyleOut(id=s.id, name=s.name, description=s.description, isDefault=s.is_default)
                    for s in service.styles()
                ]
            )

        @resolver.exception_handler(RequestValidationError)
        def invalid_request(error: RequestValidationError) -> Response:
            return error_response(400, "invalid_request", "The request is not valid.", _validation_details(error))

        @resolver.exception_handler(BadRequestError)
        def bad_request(error: BadRequestError) -> Response:
            return error_response(error.status, error.code, error.message)

        @resolver.exception_handler(NotFoundError)
        def not_found(error: NotFoundError) -> Response:
            return error_response(404, "not_found", error.message)

        @resolver.exception_handler(Unauthorized)
        def unauthorized(_: Unauthorized) -> Response:
            return error_response(401, "unauthorized", "A valid JWT with a subject claim is required.")

        @resolver.not_found
        def no_route(_: Exception) -> Response:
            return error_response(404, "no_route", "No such route.")

        @resolver.exception_handler(Exception)
        def internal(error: Exception) -> Response:
            logger.exception("unhandled error")
            return error_response(500, "internal_error", "Something went wrong on our side; nothing was lost.")

    def handle(self, event: dict, context: Any) -> dict:
        if refusal := _refusal(event):
            status, code, message = refusal
            return {
                "statusCode": status,
                "headers": {"Content-Type": content_types.APPLICATION_JSON},
                "body": json.dumps(error_body(code, message)),
                "isBase64Encoded": False,
            }
        return self.resolver.resolve(_canonical_media_type(event), context)


def _content_type(event: dict) -> tuple[str | None, str]:
    """(header name as sent, media type lower-cased without parameters); (None, "") when there is none."""
    headers = event.get("headers") or {}
    name = next((name for name in headers if name.lower() == "content-type"), None)
    return name, (headers[name] or "").split(";", 1)[0].strip().lower() if name else ""


def _canonical_media_type(event: dict) -> dict:
    """Media types compare case-insensitively (RFC 9110); Powertools' validation compares them as written."""
    name, _ = _content_type(event)
    if name is None or event["headers"][name] == content_types.APPLICATION_JSON:
        return event
    return {**event, "headers": {**event["headers"], name: content_types.APPLICATION_JSON}}


def _refusal(event: dict) -> tuple[int, str, str] | None:
    """(status, code, message) for a body refused before the resolver parses it, else None."""
    body = event.get("body") or ""
    if not body:
        return None
    if event.get("isBase64Encoded"):
        try:  # Powertools decodes base64 bodies as UTF-8 without catching the error: a 500 for other bytes
            decoded = base64.b64decode(body, validate=True)
            decoded.decode("utf-8")
        except ValueError:  # binascii.Error and UnicodeDecodeError alike
            return 400, "invalid_request", "The request body is not UTF-8 JSON."
        size = len(decoded)
    else:
        size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        return 413, "body_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes."
    _, media_type = _content_type(event)
    if media_type and media_type != content_types.APPLICATION_JSON:
        # Bodies are JSON. Powertools' validation (whose JSON test this is) would parse form and multipart bodies,
        # and raise an unmapped error, so a 500, for any other type or a multipart body without a boundary.
        return 415, "unsupported_media_type", "Request bodies must be JSON (Content-Type: application/json)."
    return None


def build_api(service: RecoveryService) -> Api:
    return Api(service)
