"""The ingress of several models on Ray Serve: the one deployment Ray's proxy sends HTTP to, which routes each
request by its `model` to that model's deployment (serve/ray_replica.py `ModelReplica`) through a handle.

As our router does with several models (serve/pools.py): an absent `model`, or `default`, goes to the first model;
any other is OpenAI's 404 naming the served models; `/v1/models` lists every model, each as one of its replicas
lists it. The ingress checks the clients' keys and each body (serve/router.py `check_body`), so a malformed
request never reaches a model; Ray balances each model's requests over its replicas and bounds its queue (past
`max_queued_requests` a 503 with Retry-After). `/metrics` is every replica's engine metrics labelled by model and
replica; `/health` is 200 while at least one model answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve
from ray.exceptions import RayError
from ray.serve.exceptions import BackPressureError, RayServeException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from paretoserve.openai_api.auth import ApiKeys, auth_middleware
from paretoserve.openai_api.errors import error_handling
from paretoserve.openai_api.openapi import openapi_document
from paretoserve.openai_api.protocol import ApiError, parse_json, read_body
from paretoserve.openai_api.routes import api_routes
from paretoserve.serve.config import RouterConfig
from paretoserve.serve.metrics import merged_metrics
from paretoserve.serve.pools import model_entry, model_for
from paretoserve.serve.ray_asgi import HandleRequest, Relayed, hand_over, take_app, whole
from paretoserve.serve.ray_metrics import board_texts
from paretoserve.serve.router import METRICS_CONTENT_TYPE, check_body

INGRESS_NAME = "ModelIngress"
PROBE_S = 5.0  # one model's /health or /v1/models through its handle; past it the model counts as not answering
RETRY_AFTER_S = 1
HANDLE_ERRORS = (RayError, RayServeException)  # a replica that died, or a deployment with no replica to take it


class Ingress:
    """Route handlers over each model's handle (by served name, in order)."""

    def __init__(self, handles: dict[str, Any], max_body_bytes: int = RouterConfig.max_body_bytes) -> None:
        self.names = list(handles)
        self.handles = {name: handle.options(stream=True) for name, handle in handles.items()}
        self.max_body_bytes = max_body_bytes

    async def completions(self, request: Request) -> Relayed:
        return await self._generation(request, chat=False)

    async def chat(self, request: Request) -> Relayed:
        return await self._generation(request, chat=True)

    async def _generation(self, request: Request, chat: bool) -> Relayed:
        body = await read_body(request, self.max_body_bytes)
        data = parse_json(body)
        check_body(data, chat)
        assert isinstance(data, dict)  # check_body refused anything else
        name = model_for(data.get("model"), self.names)
        client = (request.client.host, request.client.port) if request.client else None
        stream = self.handles[name].answer.remote(
            HandleRequest("POST", request.url.path, tuple(request.headers.raw), body, client=client))
        try:
            first = await stream.__anext__()
        except StopAsyncIteration:
            raise ApiError(502, f"model '{name}': its replica ended the answer before it began", type_="server_error",
                           code="replica_failed") from None
        except BackPressureError as exc:
            raise ApiError(503, f"model '{name}': its replicas are full and its queue too ({exc}); retry later",
                           type_="service_unavailable", code="queue_full",
                           headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        except HANDLE_ERRORS as exc:
            raise _failed(name, exc) from None
        except asyncio.CancelledError:
            stream.cancel()  # the client left before the first bytes
            raise
        return Relayed(first, stream, stream.cancel, lambda exc: _failed(name, exc))

    async def _fetch(self, name: str, path: str) -> tuple[int, bytes]:
        """One model's answer to GET `path` (status 0 where none came within PROBE_S)."""
        stream = self.handles[name].answer.remote(HandleRequest("GET", path))
        try:
            return await asyncio.wait_for(whole(stream), PROBE_S)
        except (asyncio.TimeoutError, *HANDLE_ERRORS):
            stream.cancel()
            return 0, b""

    async def listed(self) -> list[dict]:
        """Every model's /v1/models entry, in order: as one of its replicas lists it, else the ingress's own."""
        answers = await asyncio.gather(*(self._fetch(name, "/v1/models") for name in self.names))
        return [_entry(name, status, body) for name, (status, body) in zip(self.names, answers, strict=True)]

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": await self.listed()})

    async def model(self, request: Request) -> Response:
        """One model (models.retrieve): a served name, or `default` for the first."""
        model_id = request.path_params["model_id"]
        name = model_for(model_id, self.names)
        return JSONResponse(_entry(name, *await self._fetch(name, "/v1/models")))

    async def health(self, request: Request) -> Response:
        """200 while at least one model answers its /health; the body says which do."""
        answers = await asyncio.gather(*(self._fetch(name, "/health") for name in self.names))
        healthy = {name: status == 200 for name, (status, _) in zip(self.names, answers, strict=True)}
        up = sum(healthy.values())
        status = "ok" if up == len(healthy) else "degraded" if up else "unavailable"
        body = {"status": status, "models": [{"model": name, "healthy": ok} for name, ok in healthy.items()]}
        return JSONResponse(body, status_code=200 if up else 503,
                            headers=None if up else {"Retry-After": str(RETRY_AFTER_S)})

    async def metrics(self, request: Request) -> Response:
        return Response(merged_metrics(await board_texts()), media_type=METRICS_CONTENT_TYPE)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document("paretoserve on Ray Serve", router=True))


def _entry(name: str, status: int, body: bytes) -> dict:
    """The model's entry in its replica's answer to /v1/models, else the ingress's own (pools.py `model_entry`)."""
    try:
        data = parse_json(body)["data"] if status == 200 else None  # type: ignore[index]
    except (ApiError, KeyError, TypeError):
        data = None
    return model_entry(name, data)


def _failed(name: str, exc: BaseException) -> ApiError:
    return ApiError(502, f"model '{name}': its replica failed ({type(exc).__name__}: {exc})", type_="server_error",
                    code="replica_failed")


def ingress_app(handles: dict[str, Any], keys: ApiKeys | None = None) -> Starlette:
    """The ingress's ASGI app over each model's handle (anything with `.options(stream=True).answer.remote`)."""
    ingress = Ingress(handles)
    routes = api_routes(ingress, ingress.metrics)
    return Starlette(routes=routes, **error_handling(auth_middleware(keys or ApiKeys())))


class ModelIngress:
    """The ingress deployment's replica: its app over the handles Ray passes in place of the model deployments."""

    def __init__(self, handles: dict[str, Any], api_key_digests: tuple[str, ...] = (), keyed_metrics: bool = False):
        keys = ApiKeys.from_hex(api_key_digests, keyed_metrics)
        hand_over(ingress_app(handles, keys))


# Importable under its own name, so Ray's workers import it (and ray_asgi's hand-over list) from this module.
INGRESS_DEPLOYMENT = serve.deployment(serve.ingress(take_app)(ModelIngress))
