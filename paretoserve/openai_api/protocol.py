"""OpenAI request bodies (validated with pydantic) and OpenAI-shaped errors.

`null` means the same as leaving a field out, in every request object: OpenAI's optional fields
are nullable, and clients (and SDKs) send `"max_tokens": null` to mean "the default".
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SEED_RANGE = (-(1 << 63), (1 << 63) - 1)  # int64, as vLLM; -1 = random
OWN_ERRORS = ("lone_surrogate", "unsupported")  # the error types raised by the validators below
# Accepted only with the value that means "not used": each would change the answer, and this engine
# cannot do what it asks, so any other value is refused rather than silently ignored.
Body = TypeVar("Body", bound=BaseModel)
UNUSED_ONLY: dict[str, object] = {"best_of": 1, "suffix": "", "top_logprobs": 0, "tools": [],
                                  "response_format": {"type": "text"}}


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped, so any text a client sent (even a lone surrogate) renders."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


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
        return AsciiJSONResponse(self.body(), status_code=self.status, headers=self.headers)

    def stream_end(self) -> bytes:
        """The end of a relayed stream cut off mid-answer: this error as one SSE event, after a blank line that ends
        any half-sent event, then `data: [DONE]`."""
        return b"\n\ndata: " + json.dumps(self.body()).encode() + b"\n\ndata: [DONE]\n\n"


def _valid_unicode(text: str) -> str:
    """Refuse a lone surrogate (JSON "\\udc80"): no UTF-8 tokenizer can take it, and guessing would alter the text."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise PydanticCustomError("lone_surrogate", "contains a lone surrogate ({code}) at index {index}; text "
                                  "must be valid Unicode", {"code": f"\\u{ord(text[exc.start]):04x}",
                                                            "index": exc.start}) from exc
    return text


Text = Annotated[str, AfterValidator(_valid_unicode)]
TokenIdKey = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,10}$")]  # logit_bias keys: token ids as strings
Bias = Annotated[float, Field(ge=-100.0, le=100.0)]


class _Body(BaseModel):
    """A request object whose null fields count as absent."""

    model_config = ConfigDict(strict=True, extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class StreamOptions(_Body):
    model_config = ConfigDict(strict=True, extra="forbid")
    include_usage: bool = False  # a last chunk carries `usage`; the others carry null
    continuous_usage_stats: bool = False  # vLLM's: a running `usage` on every chunk (with include_usage)
    # OpenAI's random padding of chunks against size side channels: accepted (the SDK's types offer it), never
    # added, as vLLM does; the text is the same either way.
    include_obfuscation: bool = True


class ResponseFormat(_Body):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["text"]  # only "text"


class Resume(_Body):
    """`paretoserve_resume`, the router's extension of a stream (openai_api/resume.py): send token ids, continue."""

    model_config = ConfigDict(strict=True, extra="forbid")
    tokens: list[int] = Field(default_factory=list)  # generated on a replica that died; the client has their text
    id: str | None = None  # of the response those tokens went out in
    created: int | None = None  # of that response (Unix s): the resumed chunks keep it


class _Sampling(_Body):
    """Fields both endpoints share; unknown OpenAI fields are accepted and ignored, as vLLM does."""

    model: str | None = None  # a served model; left out or `default` = the (first) served one
    temperature: float = Field(1.0, ge=0.0, le=2.0)  # sampling temperature; below 1e-5 = greedy
    top_p: float = Field(1.0, gt=0.0, le=1.0)  # nucleus: the likeliest tokens up to this probability mass; 1 = off
    top_k: int = Field(0, ge=-1)  # -1 or 0 = off (vLLM uses -1)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])  # fixes the random draws; -1 or none = random
    stop: Text | list[Text] | None = None  # strings that end the generation, never sent; they count after min_tokens
    stream: bool = False  # answer with SSE chunks, ending with `data: [DONE]`
    stream_options: StreamOptions | None = None  # with stream: whether chunks carry `usage`
    n: int = Field(1, ge=1, le=1)  # choices per request: only 1
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)  # subtracted from the logit of every token generated so far
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)  # subtracted once per time a token was generated so far
    logit_bias: dict[TokenIdKey, Bias] = Field(default_factory=dict)  # token id (a string) -> added to its logit
    ignore_eos: bool = False  # generate past the end-of-sequence token, up to max_tokens
    min_tokens: int = Field(0, ge=0)  # end-of-sequence and stop strings held off until this many tokens came
    paretoserve_resume: Resume | None = None  # the router's, to resume a stream
    best_of: Literal[1] = 1  # only 1: one candidate per choice
    suffix: Literal[""] = ""  # only "": no text to insert before
    top_logprobs: Literal[0] = 0  # only 0: no log probabilities
    tools: list[dict] = Field(default_factory=list, max_length=0)  # only []: no tool calls
    response_format: ResponseFormat | None = None  # only {"type": "text"}: plain text

    @field_validator(*UNUSED_ONLY, mode="before")
    @classmethod
    def _unused_only(cls, value: Any, info: ValidationInfo) -> Any:
        unused = UNUSED_ONLY[str(info.field_name)]
        if value != unused or type(value) is not type(unused):
            raise PydanticCustomError("unsupported", "is not supported by this engine; leave it out or send "
                                                     "{unused}", {"unused": json.dumps(unused)})
        return value

    def stop_strings(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return tuple(s for s in stops if s)


class CompletionRequest(_Sampling):
    prompt: Text | list[int] | list[Text]  # a string, a list of one string, or token ids
    max_tokens: int = Field(16, ge=1)  # OpenAI's default for /v1/completions
    echo: Literal[False] = False  # only false: the prompt is not repeated in the answer
    logprobs: None = None  # only null: no log probabilities


class ContentPart(_Body):
    """One part of a message's content list; only text parts reach the prompt."""

    type: str | None = None  # only "text" parts reach the prompt; others are skipped
    text: Text | None = None  # the part's text


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]  # who speaks; developer counts as system
    content: Text | list[ContentPart]  # text, or parts whose text parts are joined

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)  # the conversation, rendered by the model's chat template
    max_tokens: int | None = Field(None, ge=1)  # None = whatever room the context leaves
    max_completion_tokens: int | None = Field(None, ge=1)  # OpenAI's newer name of max_tokens; wins over it
    logprobs: Literal[False] = False  # only false: no log probabilities


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


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> object:
    """A body as strict JSON (no NaN or Infinity); malformed or absurdly nested JSON is a 400 naming the body."""
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", param="body") from exc
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply", param="body") from None


async def read_json(request: Request, max_bytes: int) -> object:
    """The request body as JSON; refuses bodies over `max_bytes` without reading them whole."""
    return parse_json(await read_body(request, max_bytes))


def parse(model: type[Body], data: object) -> Body:
    """Validate a body; the first problem becomes a 400 whose `param` names the field."""
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", param="body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        # Of a union's errors the first is about its first member (a type mismatch); ours say more.
        first = next((e for e in errors if e["type"] in OWN_ERRORS), errors[0])
        loc = first["loc"][:1] if first["loc"][:1] == ("logit_bias",) else first["loc"]  # not the client's keys
        field = ".".join(str(part) for part in loc if not _is_union_tag(part)) or "body"
        raise ApiError(400, f"{field}: {first['msg']}", param=field) from exc


def _is_union_tag(part: object) -> bool:
    """pydantic puts the tried union member ('str', 'list[int]') into an error's location; drop it."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "dict", "list"} or "[" in part)


def describe(value: object) -> str:
    """A client's value for an error message: short, and never a deep repr of nested JSON."""
    if isinstance(value, (list, dict)):
        return f"a JSON {'array' if isinstance(value, list) else 'object'}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


async def api_error_handler(request: Request, exc: ApiError) -> Response:
    """Starlette's exception handler for ApiError, in the engine's app and the router alike."""
    return exc.response()


async def wait_disconnect(receive) -> None:
    """Return once the client has gone (ASGI `receive` of the request)."""
    while (await receive())["type"] != "http.disconnect":
        pass
