"""Routes of the HTTP API: a small router, the input rules of api/validation.py, one place for error mapping.

It answers as Powertools' APIGatewayHttpResolver with validation did (routing, statuses, bodies, the order of
checks), without importing it: Powertools' event handler brings asyncio, every event source's data classes and
pydantic, about 200 ms of cold start (docs/benchmark.md). The OpenAPI document still comes from Powertools'
resolver, built only when asked for (api/openapi.py).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs

from image_recovery.api.validation import (
    CURSOR_MAX,
    MAX_BODY_BYTES,
    Issue,
    RequestInvalid,
    batch_id,
    image_ids,
    integer,
    issue,
    queue_request,
    text,
)
from image_recovery.errors import BadRequestError, NotFoundError
from image_recovery.models import is_valid_user_id
from image_recovery.observability import logger
from image_recovery.recovery import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, RecoveryService

APPLICATION_JSON = "application/json"
# Powertools' path parameter: RFC 3986's safe characters, those API Gateway decodes, and word characters
_PATH_PARAMETER = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"


class Unauthorized(Exception):
    """No usable `sub` claim: the authorizer did not run or the token carries no subject."""


class NoRoute(Exception):
    """No route has this method and path."""


def error_body(code: str, message: str, details: Any = None) -> dict:
    """DESIGN §3: every error is {"error": {"code", "message"}}, validation errors with details."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _response(status: int, body: Any) -> dict:
    """The payload v2 answer, as Powertools' resolver gave it (compact JSON, non-ASCII escaped, no cookies)."""
    return {
        "statusCode": status,
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
        "headers": {"Content-Type": APPLICATION_JSON},
        "cookies": [],
    }


def _json_body(text: str) -> Any:
    """json.loads, except that nesting too deep for the parser is malformed JSON (a 400), not a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def _details(issues: list[Issue]) -> list[dict]:
    # Location and message only: never echo the input back.
    return [{"loc": [str(part) for part in i["loc"]], "type": i["type"], "msg": i["msg"]} for i in issues]


@dataclass(frozen=True)
class Request:
    """What a route reads of the event."""

    event: dict
    path_parameters: dict[str, str]

    def query(self, name: str) -> str | list[str] | None:
        """A query parameter as the resolver's validation saw it: the value, or the values of a repeated one."""
        value = (self.event.get("queryStringParameters") or {}).get(name)
        if value is None:
            return None
        raw = self.event.get("rawQueryString") or ""
        repeated = len(parse_qs(raw, keep_blank_values=True).get(name, ())) > 1
        parts = value.split(",")
        return parts if repeated and len(parts) > 1 else value

    def body(self) -> Any:
        body = self.event.get("body")
        if body and self.event.get("isBase64Encoded"):
            body = base64.b64decode(body.encode()).decode()
        if not body:
            return None
        try:
            return _json_body(body)
        except json.JSONDecodeError as error:
            raise RequestInvalid([issue(("body", error.pos), "json_invalid", "JSON decode error")]) from None

    def user(self) -> str:
        authorizer = self.event.get("requestContext", {}).get("authorizer") or {}
        claims = (authorizer.get("jwt") or {}).get("claims") or {}
        sub = claims.get("sub")
        if not is_valid_user_id(sub):
            raise Unauthorized
        logger.append_keys(user_id=sub)  # the subject only: the token itself is never logged
        return sub


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # Powertools' syntax: /image-jobs/<batch_id>
    handle: Callable[[Request], Any]
    status: int = 200

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^{}$".format(re.sub(r"<(\w+)>", lambda m: f"(?P<{m[1]}>{_PATH_PARAMETER})", self.path)))


class Api:
    """The routes plus the pre-flight checks that run before any route does."""

    def __init__(self, service: RecoveryService) -> None:
        self.service = service
        self.routes = [
            Route("GET", "/missing-images", self._list_missing),
            Route("POST", "/image-jobs", self._queue_jobs, status=202),
            Route("GET", "/image-jobs/<batch_id>", self._batch_progress),
            Route("GET", "/styles", self._list_styles),
            Route("GET", "/budget", self._budget),
            Route("GET", "/images", self._images),
        ]
        self._patterns = [(route, route.pattern) for route in self.routes]

    def _list_missing(self, request: Request) -> dict:
        limit = request.query("limit")
        cursor = request.query("cursor")
        limit = DEFAULT_PAGE_SIZE if limit is None else integer(limit, ("query", "limit"), ge=1, le=MAX_PAGE_SIZE)
        if cursor is not None:
            cursor = text(cursor, ("query", "cursor"), min_length=1, max_length=CURSOR_MAX)
        issues = [value for value in (limit, cursor) if isinstance(value, dict)]
        if issues:
            raise RequestInvalid(issues)
        page = self.service.missing_images(request.user(), limit=limit, cursor=cursor)
        return {
            "count": page.count,
            "trips": page.trips,
            "segments": page.segments,
            "reservations": page.reservations,
            "nextCursor": page.next_cursor,
        }

    def _queue_jobs(self, request: Request) -> dict:
        body = queue_request(request.body())
        result = self.service.queue(
            request.user(),
            body.requested,
            selection=body.selection,
            style_id=body.style_id,
            regenerate=body.regenerate,
            over_budget_confirmed=body.confirm_over_budget,
        )
        return {
            "batchId": result.batch_id,
            "styleId": result.style_id,
            "complete": result.complete,
            "summary": result.summary(),
            "items": [asdict(item) for item in result.items],
        }

    def _batch_progress(self, request: Request) -> dict:
        checked = batch_id(request.path_parameters["batch_id"])
        if isinstance(checked, dict):
            raise RequestInvalid([checked])
        progress = self.service.progress(request.user(), checked)
        return {
            "batchId": progress.batch_id,
            "total": progress.total,
            "queued": progress.queued,
            "generating": progress.generating,
            "succeeded": progress.succeeded,
            "failed": progress.failed,
            "complete": progress.complete,
        }

    def _budget(self, request: Request) -> dict:
        request.user()  # signed-in users only, like every route
        return self.service.budget().as_json()

    def _images(self, request: Request) -> dict:
        requested = image_ids(request.event.get("rawQueryString") or "")
        return {"images": self.service.images(request.user(), requested)}

    def _list_styles(self, request: Request) -> dict:
        styles = self.service.styles()
        return {
            "styles": [
                {"id": s.id, "name": s.name, "description": s.description, "isDefault": s.is_default} for s in styles
            ]
        }

    def handle(self, event: dict, context: Any) -> dict:
        if refusal := _refusal(event):
            status, code, message = refusal
            return _response(status, error_body(code, message))
        try:
            route, request = self._match(event)
            return _response(route.status, route.handle(request))
        except RequestInvalid as error:
            return _response(400, error_body("invalid_request", "The request is not valid.", _details(error.issues)))
        except BadRequestError as error:
            return _response(error.status, error_body(error.code, error.message, error.details))
        except NotFoundError as error:
            return _response(404, error_body("not_found", error.message))
        except Unauthorized:
            return _response(401, error_body("unauthorized", "A valid JWT with a subject claim is required."))
        except NoRoute:
            return _response(404, error_body("no_route", "No such route."))
        except Exception:
            logger.exception("unhandled error")
            return _response(500, error_body("internal_error", "Something went wrong on our side; nothing was lost."))

    def _match(self, event: dict) -> tuple[Route, Request]:
        http = event["requestContext"]["http"]
        method, path = http["method"].upper(), event["rawPath"]
        stage = event["requestContext"].get("stage")
        if stage != "$default":
            path = path[len("/" + stage) :]
        for route, pattern in self._patterns:
            if route.method == method and (found := pattern.match(path)):
                return route, Request(event, found.groupdict())
        raise NoRoute

    def openapi_document(self, **options: Any) -> dict:
        """The API's OpenAPI description (Powertools' resolver builds it: imported only here)."""
        from image_recovery.api.openapi import document

        return document(**options)


def _content_type(event: dict) -> tuple[str | None, str]:
    """(header name as sent, media type lower-cased without parameters); (None, "") when there is none."""
    headers = event.get("headers") or {}
    name = next((name for name in headers if name.lower() == "content-type"), None)
    return name, (headers[name] or "").split(";", 1)[0].strip().lower() if name else ""


def _refusal(event: dict) -> tuple[int, str, str] | None:
    """(status, code, message) for a body refused before it is parsed, else None."""
    body = event.get("body") or ""
    if not body:
        return None
    if event.get("isBase64Encoded"):
        try:
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
    if media_type and media_type != APPLICATION_JSON:
        return 415, "unsupported_media_type", "Request bodies must be JSON (Content-Type: application/json)."
    return None


def build_api(service: RecoveryService) -> Api:
    return Api(service)
