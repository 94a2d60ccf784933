"""Every error the engine and the router answer is OpenAI-shaped JSON, even a route that does not exist
or a bug: an unexpected exception becomes a 500 with a request id, logged once with its traceback."""

from __future__ import annotations

import logging
import uuid

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from paretoserve.openai_api.protocol import ApiError, api_error_handler

log = logging.getLogger(__name__)


def internal_error(request_id: str) -> ApiError:
    """The 500 for a bug: the request id ties the answer to its log line."""
    return ApiError(500, f"internal server error (request id {request_id}); the server's log has the details",
                    type_="server_error", code="internal_error", headers={"x-request-id": request_id})


def new_request_id() -> str:
    return f"req-{uuid.uuid4().hex[:24]}"


def log_unexpected(request_id: str, method: str, path: str, exc: BaseException) -> None:
    log.error("request %s (%s %s) failed", request_id, method, path, exc_info=exc)


async def http_error_handler(request: Request, exc: HTTPException) -> Response:
    """Starlette's own 404 (no such route) and 405 (wrong method), OpenAI-shaped instead of plain text."""
    if exc.status_code == 404:
        message, code = f"no route {request.method} {request.url.path}", "not_found"
    elif exc.status_code == 405:
        message, code = f"{request.method} is not allowed on {request.url.path}", "method_not_allowed"
    else:
        message, code = str(exc.detail), None
    return ApiError(exc.status_code, message, code=code, headers=dict(exc.headers or {})).response()


class UnexpectedErrors:
    """ASGI middleware: an exception no handler took becomes a 500 (or, once the answer has started,
    the end of it), logged here and not again by the server."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # noqa: BLE001 - the whole point: no exception reaches the server
            request_id = new_request_id()
            log_unexpected(request_id, scope.get("method", ""), scope.get("path", ""), exc)
            try:
                if started:  # the status line is out: end the body so the client is not left waiting
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                else:
                    await internal_error(request_id).response()(scope, receive, send)
            except Exception:  # noqa: BLE001 - the client has gone: nothing more to tell it
                pass


def error_handling(inner: list[Middleware] | None = None) -> dict:
    """Starlette keyword arguments that give an app these error answers; `inner` middleware (the API key check)
    runs inside them, so its own failures are answered the same way."""
    return {"exception_handlers": {ApiError: api_error_handler, HTTPException: http_error_handler},
            "middleware": [Middleware(UnexpectedErrors), *(inner or [])]}
