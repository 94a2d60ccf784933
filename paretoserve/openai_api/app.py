"""The engine's OpenAI-compatible HTTP API (starlette): completions, chat, models, health, metrics."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import aclosing
from dataclasses import dataclass
from functools import lru_cache
from typing import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from paretoserve.engine.core import Engine
from paretoserve.engine.sampling import SamplingParams
from paretoserve.openai_api.auth import ApiKeys, auth_middleware
from paretoserve.openai_api.chat import render_chat
from paretoserve.openai_api.errors import error_handling, log_unexpected, new_request_id
from paretoserve.openai_api.openapi import openapi_document
from paretoserve.openai_api.protocol import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    StreamOptions,
    parse,
    read_json,
    wait_disconnect,
)
from paretoserve.openai_api.resume import check_tokens, replay, token_comment
from paretoserve.openai_api.routes import api_routes
from paretoserve.openai_api.text import TextStream


@dataclass(frozen=True)
class ServerConfig:
    """HTTP-side knobs of `paretoserve engine`."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1 << 20  # a 2,048-token prompt is ~10 KB of text; 1 MiB leaves ample room
    retry_after_s: int = 1  # what a 429 tells the client to wait
    api_keys: ApiKeys = ApiKeys()  # none: every route open


@dataclass(frozen=True)
class Delta:
    """Text produced since the last delta, the tokens it came from and the tokens generated so far; the last
    one has `finish_reason`."""

    text: str
    completion_tokens: int  # generated so far
    finish_reason: str | None = None
    tokens: tuple[int, ...] = ()  # since the last delta (their text may have been held back)


class Api:
    """Route handlers bound to one engine."""

    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self.model_name = engine.config.model_name

    # -- plain endpoints --------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        if self.engine.load_error is not None:
            return JSONResponse({"status": "failed", "error": str(self.engine.load_error)}, status_code=503)
        if not self.engine.ready.is_set():
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model_card()]})

    async def model(self, request: Request) -> Response:
        """One model (the SDK's models.retrieve): the served name or its alias `default`."""
        model_id = request.path_params["model_id"]
        if model_id not in ("default", self.model_name):
            raise model_not_found(model_id, self.model_name)
        return JSONResponse(self._model_card())

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(_engine_openapi())

    def _model_card(self) -> dict:
        return {"id": self.model_name, "object": "model", "created": 0, "owned_by": "paretoserve",
                "max_model_len": self.engine.config.seq_ctx}

    # -- generation -----------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        req = parse(CompletionRequest, await read_json(request, self.config.max_body_bytes))
        prompt = req.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            if len(prompt) != 1:
                raise ApiError(400, "only one prompt per request is supported", param="prompt")
            prompt = prompt[0]
        ids = self._prompt_ids(prompt)  # type: ignore[arg-type]  # a list of strings is one string by now
        return await self._respond(request, req, ids, req.max_tokens, chat=False)

    async def chat(self, request: Request) -> Response:
        req = parse(ChatRequest, await read_json(request, self.config.max_body_bytes))
        self._ready()
        text = render_chat(self.engine.runner.chat_template(), [(m.role, m.text()) for m in req.messages])
        ids = self._prompt_ids(text)
        return await self._respond(request, req, ids, req.max_completion_tokens or req.max_tokens, chat=True)

    def _ready(self) -> None:
        if not self.engine.ready.is_set() or self.engine.load_error is not None:
            raise ApiError(503, "the model is still loading", type_="service_unavailable",
                           headers={"Retry-After": str(self.config.retry_after_s)})

    def _prompt_ids(self, prompt: str | list[int]) -> list[int]:
        self._ready()
        runner = self.engine.runner
        if isinstance(prompt, str):
            ids = runner.tokenize(prompt) if prompt else []
        else:
            ids = prompt
            bad = next((t for t in ids if not 0 <= t < runner.n_vocab), None)
            if bad is not None:
                raise ApiError(400, f"token id {bad} is outside the vocabulary [0, {runner.n_vocab})", param="prompt")
        if not ids:
            raise ApiError(400, "prompt is empty", param="prompt")
        return ids

    async def _respond(self, request: Request, req, ids: list[int], max_tokens: int | None, chat: bool) -> Response:
        if req.model not in (None, "default", self.model_name):
            raise model_not_found(req.model, self.model_name)
        room = self.engine.config.seq_ctx - len(ids)
        if room < 1:  # else an omitted max_tokens would become room <= 0 and the prompt overflow its KV stream
            raise ApiError(400, f"prompt ({len(ids)} tokens) leaves no room to generate in the context of "
                                f"{self.engine.config.seq_ctx} tokens per sequence",
                           param="messages" if chat else "prompt")
        if max_tokens is None:
            max_tokens = room
        if max_tokens > room:
            raise ApiError(400, f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceeds the context "
                                f"of {self.engine.config.seq_ctx} tokens per sequence", param="max_tokens")
        if req.min_tokens > max_tokens:
            raise ApiError(400, f"min_tokens ({req.min_tokens}) exceeds max_tokens ({max_tokens})",
                           param="min_tokens")
        if self.engine.waiting_count() >= self.engine.config.max_queue + self.engine.free_slots():
            raise ApiError(429, f"the queue is full ({self.engine.config.max_queue} requests waiting)",
                           type_="rate_limit_error", headers={"Retry-After": str(self.config.retry_after_s)})
        resume = req.paretoserve_resume
        done = check_tokens(resume, self.engine.runner.n_vocab, max_tokens)  # generated by a replica that died
        params = SamplingParams(max_tokens=max_tokens - len(done), temperature=req.temperature, top_p=req.top_p,
                                top_k=max(req.top_k, 0), seed=req.seed, stop=req.stop_strings(),
                                ignore_eos=req.ignore_eos, min_tokens=max(req.min_tokens - len(done), 0),
                                presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty,
                                logit_bias=self._logit_bias(req.logit_bias), generated=tuple(done))
        text = TextStream(self.engine.runner.piece, params.stop, req.min_tokens)
        replay(text, done)
        shape = _ChatShape(self.model_name) if chat else _CompletionShape(self.model_name)
        if resume is not None:
            shape.id, shape.created = resume.id or shape.id, resume.created or shape.created
        deltas = self._generate(ids + done, params, text)
        if req.stream:
            return StreamingResponse(_sse(shape, deltas, len(ids), _usage_mode(req.stream_options),
                                          with_tokens=resume is not None, first=not done),
                                     media_type="text/event-stream")
        return await _until_disconnect(request, _collect(shape, deltas, len(ids)))

    def _logit_bias(self, bias: dict[str, float]) -> dict[int, float]:
        """logit_bias with int keys, each inside the vocabulary."""
        n_vocab = self.engine.runner.n_vocab
        out = {int(key): value for key, value in bias.items()}
        bad = next((t for t in out if t >= n_vocab), None)
        if bad is not None:
            raise ApiError(400, f"logit_bias: token id {bad} is outside the vocabulary [0, {n_vocab})",
                           param="logit_bias")
        return out

    async def _generate(self, ids: list[int], params: SamplingParams, text: TextStream) -> AsyncIterator[Delta]:
        tokens: tuple[int, ...] = ()  # since the last delta: their text may have been held back
        async with aclosing(self.engine.generate(ids, params)) as events:
            async for event in events:
                if event.error:
                    raise ApiError(500, event.error, type_="server_error")
                chunk = text.push(event.tokens)
                tokens += event.tokens
                if text.stopped:
                    yield Delta(chunk, text.n_tokens, "stop", tokens)
                    return  # closing the engine's iterator ends the request there
                if event.finish_reason:
                    yield Delta(chunk + text.flush(), text.n_tokens, event.finish_reason, tokens)
                    return
                if chunk:
                    yield Delta(chunk, text.n_tokens, tokens=tokens)
                    tokens = ()


def model_not_found(model: str, served: str) -> ApiError:
    return ApiError(404, f"model '{model}' is not served here; use '{served}' or 'default'", param="model",
                    code="model_not_found")


@lru_cache(maxsize=1)
def _engine_openapi() -> dict:
    return openapi_document("paretoserve engine", router=False)


class _CompletionShape:
    """JSON of /v1/completions responses and chunks."""

    def __init__(self, model: str) -> None:
        self.id, self.model, self.created = f"cmpl-{uuid.uuid4().hex}", model, int(time.time())

    def envelope(self, choices: list, chunk: bool) -> dict:
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": choices}

    def choice(self, text: str, finish_reason: str | None, chunk: bool, first: bool) -> dict:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}


class _ChatShape(_CompletionShape):
    """JSON of /v1/chat/completions responses and chunks."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.id = f"chatcmpl-{uuid.uuid4().hex}"

    def envelope(self, choices: list, chunk: bool) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk" if chunk else "chat.completion",
                "created": self.created, "model": self.model, "choices": choices}

    def choice(self, text: str, finish_reason: str | None, chunk: bool, first: bool) -> dict:
        if chunk:
            delta = {"role": "assistant", "content": text} if first else {"content": text}
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                "finish_reason": finish_reason}


def _usage_mode(options: StreamOptions | None) -> str | None:
    """Where a stream reports usage: None, "final" (one chunk at the end) or "continuous" (every chunk too)."""
    if options is None or not options.include_usage:
        return None
    return "continuous" if options.continuous_usage_stats else "final"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


async def _collect(shape: _CompletionShape, deltas: AsyncIterator[Delta], n_prompt: int) -> Response:
    parts, last = [], Delta("", 0)
    async for last in deltas:
        parts.append(last.text)
    body = shape.envelope([shape.choice("".join(parts), last.finish_reason, chunk=False, first=True)], chunk=False)
    body["usage"] = _usage(n_prompt, last.completion_tokens)
    return JSONResponse(body)


async def _sse(shape: _CompletionShape, deltas: AsyncIterator[Delta], n_prompt: int, usage: str | None,
               with_tokens: bool = False, first: bool = True) -> AsyncIterator[str]:
    """The stream's events; `usage` as _usage_mode says; `with_tokens` puts each one's token ids ahead of it
    (openai_api/resume.py)."""
    end = "data: [DONE]\n\n"
    try:
        async for delta in deltas:
            body = shape.envelope([shape.choice(delta.text, delta.finish_reason, chunk=True, first=first)], chunk=True)
            first = False
            if usage:
                body["usage"] = _usage(n_prompt, delta.completion_tokens) if usage == "continuous" else None
            event = f"data: {json.dumps(body)}\n\n"
            if with_tokens:
                event = token_comment(delta.tokens) + event
            if delta.finish_reason:  # the end in the same write: a replica that dies now cannot cut it off
                if usage:
                    tail = shape.envelope([], chunk=True)
                    tail["usage"] = _usage(n_prompt, delta.completion_tokens)
                    event += f"data: {json.dumps(tail)}\n\n"
                event, end = event + end, ""
            yield event
    except ApiError as exc:  # the status line is already sent: report in-band, as vLLM does
        end = f"data: {json.dumps(exc.body())}\n\n" + end
    except Exception as exc:  # noqa: BLE001 - a bug: logged once, and the client still gets an error and [DONE]
        request_id = new_request_id()
        log_unexpected(request_id, "POST", "stream", exc)
        error = ApiError(500, f"internal server error (request id {request_id})", type_="server_error",
                         code="internal_error")
        end = f"data: {json.dumps(error.body())}\n\n" + end
    if end:
        yield end


async def _until_disconnect(request: Request, work) -> Response:
    """Await `work` unless the client goes away first; then cancel it, which frees its sequence."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_disconnect(request.receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if not task.done():
        await asyncio.wait({task})  # cancel() only asks: its result is not set until the task has unwound
    if task.cancelled():
        return Response(status_code=499)
    return task.result()


def build_app(engine: Engine, config: ServerConfig) -> Starlette:
    """The ASGI app; the engine must have been started (it may still be loading)."""
    api = Api(engine, config)
    routes = api_routes(api, api.metrics)
    return Starlette(routes=routes, **error_handling(auth_middleware(config.api_keys)))
