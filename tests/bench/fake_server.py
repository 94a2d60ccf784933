"""A fake OpenAI-compatible server with scripted token timings, run in-process on a free port.

Each streamed request waits `ttft_s`, sends its first token, then one token every `itl_s`, for
max_tokens tokens (ignore_eos or not), then `data: [DONE]`, and ends its body `after_done_s` later.
Every `fail_every`-th request (in arrival order) gets a 500 (or `fail_status`).
Tests that need requests to overlap, or a server to stay silent, wait on events instead of timing them:
before its first token a request waits until `together` requests have been in flight at once and until
`hold` is set; after its first token, until `hold_rest` is set. Leaving the server sets both events.
/metrics shows paretoserve's, vLLM's or llama-server's metric names with the live running count.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from paretoserve.engine_process import free_port
from tests.waiting import wait_until


@dataclass
class FakeConfig:
    ttft_s: float = 0.0
    itl_s: float = 0.0
    owned_by: str = "paretoserve"
    metrics: str | None = "paretoserve"  # paretoserve | vllm | llamacpp | llamacpp-off (501) | None (404)
    max_batch: int = 8
    fail_every: int = 0  # 0 = never
    fail_status: int = 500
    usage: bool = True  # honour stream_options.include_usage
    max_model_len: int = 4096
    after_done_s: float = 0.0  # how long a stream's body stays open after its `data: [DONE]`
    together: int = 0  # before its first token, a request waits until this many were in flight at once
    hold: threading.Event | None = None  # before its first token, a request waits until this is set
    hold_rest: threading.Event | None = None  # after its first token, a stream waits until this is set


@dataclass
class FakeState:
    arrivals: list[float] = field(default_factory=list)  # perf_counter() at each request's arrival
    bodies: list[dict] = field(default_factory=list)
    running: int = 0
    max_running: int = 0
    running_at_arrival: list[int] = field(default_factory=list)  # in flight when each request arrived (itself included)


class FakeServer:
    def __init__(self, **config) -> None:
        self.config = FakeConfig(**config)
        self.state = FakeState()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> "FakeServer":
        app = Starlette(routes=[
            Route("/v1/completions", self._completions, methods=["POST"]),
            Route("/v1/chat/completions", self._completions, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/slots", self._slots, methods=["GET"]),
        ])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", access_log=False,
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self._server.started, "the fake server serving", interval_s=0.01)
        return self

    def __exit__(self, *exc) -> None:
        for event in (self.config.hold, self.config.hold_rest):
            if event is not None:
                event.set()  # so that no held stream keeps the server from stopping
        self._server.should_exit = True
        self._thread.join(10)

    # -- routes ---------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model",
                                                          "owned_by": self.config.owned_by,
                                                          "max_model_len": self.config.max_model_len}]})

    async def _metrics(self, request: Request) -> Response:
        s, c = self.state, self.config
        if c.metrics == "paretoserve":
            text = (f'# TYPE paretoserve_requests_running gauge\n'
                    f'paretoserve_requests_running{{model_name="fake"}} {s.running}\n'
                    f'# TYPE paretoserve_requests_waiting gauge\n'
                    f'paretoserve_requests_waiting{{model_name="fake"}} 0\n'
                    f'# TYPE paretoserve_kv_tokens_used gauge\n'
                    f'paretoserve_kv_tokens_used{{model_name="fake"}} {64 * s.running}\n'
                    f'# TYPE paretoserve_kv_tokens_budget gauge\n'
                    f'paretoserve_kv_tokens_budget{{model_name="fake"}} 2048\n'
                    f'# TYPE paretoserve_max_batch gauge\n'
                    f'paretoserve_max_batch{{model_name="fake"}} {c.max_batch}\n'
                    f'# TYPE paretoserve_preemptions counter\n'
                    f'paretoserve_preemptions_total{{model_name="fake"}} 0\n')
        elif c.metrics == "vllm":
            text = (f'# TYPE vllm:num_requests_running gauge\n'
                    f'vllm:num_requests_running{{engine="0",model_name="fake"}} {s.running}\n'
                    f'# TYPE vllm:num_requests_waiting gauge\n'
                    f'vllm:num_requests_waiting{{engine="0",model_name="fake"}} 1\n'
                    f'# TYPE vllm:kv_cache_usage_perc gauge\n'
                    f'vllm:kv_cache_usage_perc{{engine="0",model_name="fake"}} {0.1 * s.running}\n'
                    f'# TYPE vllm:num_preemptions counter\n'
                    f'vllm:num_preemptions_total{{engine="0",model_name="fake"}} 3\n')
        elif c.metrics == "sglang":  # SGLang's names with --enable-metrics
            text = (f'# TYPE sglang:num_running_reqs gauge\n'
                    f'sglang:num_running_reqs{{model_name="fake"}} {s.running}\n'
                    f'# TYPE sglang:num_queue_reqs gauge\n'
                    f'sglang:num_queue_reqs{{model_name="fake"}} 1\n'
                    f'# TYPE sglang:token_usage gauge\n'
                    f'sglang:token_usage{{model_name="fake"}} {0.1 * s.running}\n'
                    f'# TYPE sglang:num_retracted_reqs gauge\n'
                    f'sglang:num_retracted_reqs{{model_name="fake"}} 3\n')
        elif c.metrics == "llamacpp":
            text = (f'# TYPE llamacpp:requests_processing gauge\n'
                    f'llamacpp:requests_processing {s.running}\n'
                    f'# TYPE llamacpp:requests_deferred gauge\n'
                    f'llamacpp:requests_deferred 2\n')
        elif c.metrics == "llamacpp-off":  # what llama-server answers without --metrics
            return JSONResponse({"error": {"code": 501, "message": "This server does not support metrics endpoint. "
                                           "Start it with `--metrics`", "type": "not_supported_error"}},
                                status_code=501, headers={"server": "llama.cpp"})
        else:
            return PlainTextResponse("not found", status_code=404)
        return PlainTextResponse(text)

    async def _slots(self, request: Request) -> Response:
        """llama-server's /slots: `max_batch` slots of 256 tokens, the first `running` busy with 40 tokens each."""
        if self.config.metrics != "llamacpp":
            return PlainTextResponse("not found", status_code=404)
        busy = self.state.running
        return JSONResponse([{"id": i, "n_ctx": 256, "is_processing": i < busy, "n_prompt_tokens": 40}
                             for i in range(self.config.max_batch)])

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        s, c = self.state, self.config
        s.arrivals.append(time.perf_counter())
        s.bodies.append(body)
        number = len(s.arrivals)
        if c.fail_every and number % c.fail_every == 0:
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error", "param": None,
                                           "code": None}}, status_code=c.fail_status)
        prompt = body.get("prompt")
        if prompt is None:
            prompt = body["messages"][-1]["content"]
        n_prompt = len(prompt) if isinstance(prompt, list) else len(prompt.split())
        n_out = body.get("max_tokens", 16)
        usage = c.usage and (body.get("stream_options") or {}).get("include_usage")
        chat = "messages" in body
        s.running += 1
        s.max_running = max(s.max_running, s.running)
        s.running_at_arrival.append(s.running)

        async def stream():
            done = False
            try:
                await _until(lambda: s.max_running >= c.together and (c.hold is None or c.hold.is_set()))
                await asyncio.sleep(c.ttft_s)
                for i in range(n_out):
                    if i == 1 and c.hold_rest is not None:
                        await _until(c.hold_rest.is_set)
                    if i:
                        await asyncio.sleep(c.itl_s)
                    choice = {"index": 0, "delta": {"content": "tok "}} if chat else {"index": 0, "text": "tok "}
                    choice["finish_reason"] = "length" if i == n_out - 1 else None
                    yield f"data: {json.dumps({'choices': [choice]})}\n\n"
                if usage:
                    tail = {"choices": [], "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                                                     "total_tokens": n_prompt + n_out}}
                    yield f"data: {json.dumps(tail)}\n\n"
                # Leave the running count before the client can see the end, so the server's count
                # never exceeds what the client has in flight.
                s.running -= 1
                done = True
                yield "data: [DONE]\n\n"
                if c.after_done_s:
                    await asyncio.sleep(c.after_done_s)
            finally:
                if not done:
                    s.running -= 1

        return StreamingResponse(stream(), media_type="text/event-stream")


async def _until(condition) -> None:
    """Poll `condition` on the server's event loop; cancelled with the stream when its client leaves."""
    while not condition():
        await asyncio.sleep(0.005)
