"""OpenAI request bodies (validated with pydantic) and OpenAI-shaped errors."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """A request the server refuses; rendered as {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 type_: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.type, self.code = status, message, param, type_, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    include_usage: bool = False


class Resume(BaseModel):
    """`paretoserve_resume`, the router's extension of a stream (server/resume.py): send token ids, continue."""

    model_config = ConfigDict(strict=True, extra="forbid")
    tokens: list[int] = Field(default_factory=list)  # generated on a replica that died; the client has their text
    id: str | None = None  # of the response those tokens went out in
    created: int | None = None


class _Sampling(BaseModel):
    """Fields both endpoints share; unknown OpenAI fields are accepted and ignored, as vLLM does."""

    model_config = ConfigDict(strict=True, extra="allow")

    model: str | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1)  # -1 or 0 = off (vLLM uses -1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0)
    paretoserve_resume: Resume | None = None

    def stop_strings(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return tuple(s for s in stops if s)


class CompletionRequest(_Sampling):
    prompt: str | list[int] | list[str]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for /v1/completions
    echo: Literal[False] = False
    logprobs: None = None


class ContentPart(BaseModel):
    """One part of a message's content list; only text parts reach the prompt."""

    model_config = ConfigDict(strict=True, extra="allow")
    type: str | None = None
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)  # None = whatever room the context leaves
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: Literal[False] | None = None


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw request body; refuses bodies over `max_bytes` without reading them whole."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body is {declared} bytes; the limit is {max_bytes}", param="body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body exceeds the limit of {max_bytes} bytes", param="body")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> object:
    """A body as JSON; malformed JSON is a 400 naming the body."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", param="body") from exc


async def read_json(request: Request, max_bytes: int) -> object:
    """The request body as JSON; refuses bodies over `max_bytes` without reading them whole."""
    return parse_json(await read_body(request, max_bytes))


def parse(model: type[BaseModel], data: object) -> BaseModel:
    """Validate a body; the first problem becomes a 400 whose `param` names the field."""
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", param="body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if not _is_union_tag(part)) or "body"
        raise ApiError(400, f"{field}: {first['msg']}", param=field) from exc


def _is_union_tag(part: object) -> bool:
    """pydantic puts the tried union member ('str', 'list[int]') into an error's location; drop it."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "dict", "list"} or "[" in part)


async def api_error_handler(request: Request, exc: ApiError) -> Response:
    """Starlette's exception handler for ApiError, in the engine's app and the router alike."""
    return exc.response()


async def wait_disconnect(receive) -> None:
    """Return once the client has gone (ASGI `receive` of the request)."""
    while (await receive())["type"] != "http.disconnect":
        pass
