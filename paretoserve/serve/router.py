"""The OpenAI-compatible router in front of the replicas of one model or several (starlette; one pooled aiohttp
session per replica); with several, each request goes to the replicas of the model it names (serve/pools.py).

Bodies are read and checked here, so a malformed or too-large request is refused with a 4xx naming
the field and never costs a replica anything; the rest of the validation is the engine's.
aiohttp rather than httpx for the replica connections: relaying one request cost the router
~0.3 ms of CPU with it against ~1.5 ms with httpx on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from functools import lru_cache

import aiohttp
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from paretoserve.openai_api.auth import auth_middleware
from paretoserve.openai_api.errors import error_handling
from paretoserve.openai_api.openapi import openapi_document
from paretoserve.openai_api.protocol import ApiError, describe, parse_json, read_body
from paretoserve.openai_api.routes import api_routes
from paretoserve.serve.client_limits import ClientLimiter, LimitClients
from paretoserve.serve.config import RouterConfig
from paretoserve.serve.metrics import RouterMetrics, replica_metrics
from paretoserve.serve.pools import Pools, ReplicaGroups, not_served
from paretoserve.serve.relay import Relay, RelayCall
from paretoserve.serve.resume import is_greedy

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GENERATION_PATHS = frozenset({"/v1/completions", "/v1/chat/completions"})  # what per-client limits count


def check_body(data: object, chat: bool) -> bool:
    """The fields the router relies on, checked enough that no replica gets a malformed request.

    Returns whether the client asked for a stream.
    """
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", param="body")
    if chat:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages or \
                not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise ApiError(400, "messages must be a non-empty list of objects with a 'role'", param="messages")
    elif not _valid_prompt(data.get("prompt")):
        raise ApiError(400, "prompt must be a non-empty string, a list of strings, a list of token ids or a "
                            "list of lists of token ids", param="prompt")
    for name in ("max_tokens", "max_completion_tokens"):
        value = data.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ApiError(400, f"{name} must be an integer >= 1; got {describe(value)}", param=name)
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, f"model must be a string; got {describe(model)}", param="model")
    stream = data.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise ApiError(400, f"stream must be true or false; got {describe(stream)}", param="stream")
    return bool(stream)


def _valid_prompt(prompt: object) -> bool:
    if isinstance(prompt, str):
        return bool(prompt)
    if not isinstance(prompt, list) or not prompt:
        return False
    if all(isinstance(p, str) for p in prompt) or all(_token_ids(p) for p in prompt):
        return True
    return _token_ids(prompt)


def _token_ids(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool)
                                                           for t in value)


class Router:
    """Route handlers over the replicas of one model or of several."""

    def __init__(self, replicas: ReplicaGroups, config: RouterConfig, metrics_path: str = "/metrics") -> None:
        self.config = config
        self.metrics_path = metrics_path
        self.pools = Pools(replicas)
        self.backends = self.pools.backends
        self.metrics = RouterMetrics(self.backends, by_model=self.pools.named)
        self.relay = Relay(self.metrics, config)
        self.limiter = ClientLimiter(config.max_concurrent_per_client, config.max_rate_per_client,
                                     config.retry_after_s)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        """One pooled session per replica, on the serving event loop; closed at shutdown."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout_s,
                                        sock_read=self.config.read_timeout_s)
        key = self.config.replica_key
        headers = {"authorization": f"Bearer {key}"} if key is not None else None  # every request, /metrics too
        for backend in self.backends:
            backend.session = aiohttp.ClientSession(
                base_url=backend.replica.url, timeout=timeout, auto_decompress=False, headers=headers,
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None))
        try:
            yield
        finally:
            for backend in self.backends:
                await backend.client.close()

    async def completions(self, request: Request) -> RelayCall:
        return await self._generation(request, "completions", "/v1/completions", chat=False)

    async def chat(self, request: Request) -> RelayCall:
        return await self._generation(request, "chat", "/v1/chat/completions", chat=True)

    async def _generation(self, request: Request, endpoint: str, path: str, chat: bool) -> RelayCall:
        try:
            body = await read_body(request, self.config.max_body_bytes)
            data = parse_json(body)
            stream = check_body(data, chat)
        except ApiError as exc:
            self.metrics.refused.labels("body_too_large" if exc.status == 413 else "malformed").inc()
            raise
        assert isinstance(data, dict)  # check_body refused anything else
        try:
            pool = self.pools.for_model(data.get("model"))
        except ApiError:
            self.metrics.refused.labels("model_not_found").inc()
            raise
        resumable = stream and self.config.resume_streams and is_greedy(data)
        return RelayCall(self.relay, pool, endpoint, path, body, request.headers, stream, resumable)

    async def models(self, request: Request) -> Response:
        """A healthy replica's list; with several models, every model's entry."""
        if self.pools.named:
            listed = await self.pools.listed(self.relay.replica_headers(request.headers))
            return JSONResponse({"object": "list", "data": listed})
        status, body, media_type = await self._replica_models(request)
        return Response(body, status_code=status, media_type=media_type)

    async def model(self, request: Request) -> Response:
        """One model (models.retrieve), looked up in a replica's list: not every engine serves this route."""
        model_id = request.path_params["model_id"]
        if self.pools.named:
            return JSONResponse(await self.pools.entry(model_id, self.relay.replica_headers(request.headers)))
        status, body, _ = await self._replica_models(request)
        try:
            models = json.loads(body)["data"] if status == 200 else None
        except (ValueError, KeyError, TypeError):
            models = None
        if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
            raise ApiError(502, f"a replica answered /v1/models with status {status} and no model list",
                           type_="server_error", code="replica_failed")
        found = next((m for m in models if m.get("id") == model_id), None)
        if found is None and model_id == "default" and models:
            found = models[0]  # the embedded engine's alias of its one model
        if found is None:
            raise not_served(model_id, [str(m.get("id")) for m in models])
        return JSONResponse(found)

    async def _replica_models(self, request: Request) -> tuple[int, bytes, str]:
        """A healthy replica's answer to GET /v1/models: status, body and content type."""
        pool = self.pools.pools[0]
        backend = pool.pick()
        if backend is None:
            raise self.relay.unavailable(pool)
        try:
            async with backend.client.get("/v1/models", headers=self.relay.replica_headers(request.headers)) \
                    as response:
                return (response.status, await response.read(),
                        response.headers.get("content-type", "application/json"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ApiError(502, f"replica {backend.index} failed to list its models ({type(exc).__name__}: {exc})",
                           type_="server_error") from exc

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(_router_openapi())

    async def health(self, request: Request) -> Response:
        """200 while at least one replica serves; the body lists every replica's state (and model, and each model's
        healthy replicas, where it serves several)."""
        healthy = self.pools.healthy_count()
        total = len(self.backends)
        now = time.monotonic()
        replicas = [{**b.replica.status(), **({"model": b.model} if b.model is not None else {}),
                     "outstanding": b.outstanding, "ejected": now < b.ejected_until} for b in self.backends]
        status = "ok" if healthy == total else "degraded" if healthy else "unavailable"
        body = {"status": status, "healthy_replicas": healthy, "replicas": replicas}
        if self.pools.named:
            body["models"] = [{"model": p.model, "healthy_replicas": p.healthy_count(), "replicas": len(p.backends)}
                              for p in self.pools.pools]
        return JSONResponse(body, status_code=200 if healthy else 503,
                            headers=None if healthy else {"Retry-After": str(self.config.retry_after_s)})

    async def prometheus(self, request: Request) -> Response:
        body = self.metrics.render() + await replica_metrics(self.backends, self.metrics_path)
        return Response(body, media_type=METRICS_CONTENT_TYPE)


@lru_cache(maxsize=1)
def _router_openapi() -> dict:
    return openapi_document("paretoserve router", router=True)


def build_router(replicas: ReplicaGroups, config: RouterConfig, metrics_path: str = "/metrics") -> Starlette:
    """The router's ASGI app over `replicas` (whose `healthy` flags someone else keeps current): a list of one
    model's replicas, or a mapping from each model's served name to its replicas."""
    router = Router(replicas, config, metrics_path)
    routes = api_routes(router, router.prometheus)
    inner = auth_middleware(config.api_keys)  # first: it names the client that the limits count
    if router.limiter.enabled:
        inner.append(Middleware(LimitClients, limiter=router.limiter, refused=router.metrics.client_refused,
                                paths=GENERATION_PATHS))
    app = Starlette(routes=routes, lifespan=router.lifespan, **error_handling(inner))
    app.state.router = router
    return app
