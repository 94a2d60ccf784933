"""The replica plan on Ray Serve: one deployment per model, each replica running one engine.

Imported by Ray's workers (and by `serve run` / `serve deploy` through `ray-serve.yaml`, whose import path is
`build`): `build(args)` turns the plan (serve/ray_plan.py) into the application. Each replica

- pins every thread of its process to its own share of the node's cores (from its local rank and its model's core
  offset: Ray reserves `num_cpus` but never pins), before the engine starts its threads;
- runs the embedded engine in the replica's own process and answers with our Starlette app; or starts an external
  preset's engine as a child process and relays to it with our router (serve/router.py) over one backend;
- answers Ray's `check_health` with the engine's readiness, so a replica that dies or hangs is replaced;
- pushes its engine's metrics to the application's metrics board (serve/ray_metrics.py), so that `/metrics`
  answers every replica's, each sample labelled with its replica (and model), as our router's does.

One model: its deployment is the application's ingress (`serve.ingress`), so a request crosses one HTTP hop (Ray's
proxy) and a handle call. Several models: one deployment per model behind an ingress that routes by the request's
`model` (serve/ray_ingress.py), which hands each request to the model's replica through a handle (serve/ray_asgi.py).

Ray caps each replica at `max_ongoing_requests` = its model's batch (Ray's default of 5 would cap the batch) and
queues at most `max_queued_requests` more per caller (the proxy, or the ingress) before it answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import ray
from prometheus_client import generate_latest
from ray import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.config import Config
from uvicorn.lifespan.on import LifespanOn

from paretoserve.engine.config import EngineConfig
from paretoserve.engine.core import Engine
from paretoserve.engine.llama_load import resolve_repack
from paretoserve.engine_process import EngineProcess, HealthProbe, free_port
from paretoserve.model import resolve_model
from paretoserve.openai_api.app import ServerConfig, build_app
from paretoserve.serve import ray_asgi
from paretoserve.serve.backends import StaticReplica
from paretoserve.serve.config import PlanError, RouterConfig
from paretoserve.serve.fleet import served_models
from paretoserve.serve.pinning import pinned_cmd
from paretoserve.serve.ray_asgi import HandleRequest, hand_over, take_app
from paretoserve.serve.ray_ingress import INGRESS_DEPLOYMENT, INGRESS_NAME
from paretoserve.serve.ray_metrics import APP_NAME, MetricsPusher
from paretoserve.serve.ray_plan import RayModels, RayPlan, read_args
from paretoserve.serve.router import METRICS_CONTENT_TYPE, build_router

__all__ = ["APP_NAME", "DEPLOYMENT_NAME", "REPLICA_HEADER", "RayModels", "RayPlan", "build", "replica_cores"]

log = logging.getLogger("paretoserve.serve")

DEPLOYMENT_NAME = "EngineReplica"  # one model's deployment; with several, model i's is EngineReplica-i
HEALTH_PERIOD_S = 2.0  # Ray's default of 10 s leaves a hung replica in rotation that long
REPLICA_HEADER = b"x-paretoserve-ray-replica"  # on every answer: which replica (and node) served it


def replica_cores(local_rank: int, threads: int, cores: list[int], offset: int = 0) -> tuple[int, ...]:
    """The `threads` cores of the replica with this rank on its node, past the `offset` cores of the models before
    its own: consecutive, disjoint while they fit, wrapping round the node's cores when more replicas landed there
    than it has room for."""
    start = (offset + local_rank * threads) % len(cores)
    return tuple(cores[(start + i) % len(cores)] for i in range(min(threads, len(cores))))


def pin_process(cores: tuple[int, ...]) -> None:
    """Every thread of this process on `cores` (sched_setaffinity(0) moves only the calling thread; threads started
    later inherit it)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # a thread that ended meanwhile
            continue


class _ReplicaHeader:
    """ASGI middleware: one header on each answer that names the replica and its node."""

    def __init__(self, app, value: bytes) -> None:
        self.app, self.header = app, (REPLICA_HEADER, value)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, tagged)


class ReplicaEngine:
    """One replica of a model's plan: its engine, and the ASGI app (`self.served`) that answers its requests."""

    def __init__(self, args: dict[str, Any], model: str | None = None) -> None:
        """`model`: the name this replica's model is served under, with several models (its metrics' label)."""
        plan = RayPlan.from_args(args)
        context = serve.get_replica_context()
        rank = context.rank.local_rank if context.rank is not None else 0
        self.tag = f"{context.replica_tag} node={ray_node_id()[:12]} rank={rank}"
        self.cores: tuple[int, ...] = ()
        if plan.pin:
            self.cores = replica_cores(rank, plan.threads_per_replica, sorted(os.sched_getaffinity(0)),
                                       plan.core_offset)
            pin_process(self.cores)
        self.engine: Engine | None = None
        self.process: EngineProcess | None = None
        self.probe: HealthProbe | None = None
        self.backend: StaticReplica | None = None
        self.metrics_url: str | None = None
        self.metrics_headers: dict[str, str] = {}  # the external engine's key, which keys its /metrics too
        if plan.engine == "embedded":
            app = self._start_embedded(plan)
        else:
            app = self._start_external(plan)
        labels = {"replica": context.replica_tag} if model is None else {"model": model, "replica": context.replica_tag}
        self.metrics = MetricsPusher(labels, self._metrics_text)
        app.router.routes.insert(0, Route("/metrics", self._every_replica, methods=["GET"]))  # before the app's own
        app.add_middleware(_ReplicaHeader, value=self.tag.encode())
        self.served = app
        log.info("replica %s ready (cores %s)", self.tag, ",".join(map(str, self.cores)) or "any")

    def _start_embedded(self, plan: RayPlan) -> Starlette:
        spec = resolve_model(plan.model)
        config = EngineConfig(model_path=spec.path, model_name=spec.name, max_batch=plan.max_batch,
                              kv_tokens=plan.kv_tokens, ctx_per_seq=plan.ctx_per_seq,
                              threads=plan.threads_per_replica, repack=resolve_repack(plan.repack).mode)
        engine = self.engine = Engine(config)
        engine.start()  # its threads inherit the pinning
        engine.wait_ready(plan.health_timeout_s)  # a load failure fails the replica
        if not engine.ready.is_set():
            raise RuntimeError(f"the engine did not load within {plan.health_timeout_s:g} s")
        return build_app(engine, ServerConfig(api_keys=plan.api_keys))

    def _start_external(self, plan: RayPlan) -> Starlette:
        replica = plan.replica_plan()
        key = secrets.token_urlsafe(32) if replica.takes_api_key else None  # the engine serves this replica alone
        replica = dataclasses.replace(replica, api_key=key)
        if key is not None:
            self.metrics_headers = {"Authorization": f"Bearer {key}"}
        model = str(resolve_model(plan.model).path) if replica.engine == "llama-server" else plan.model
        port = free_port()
        cmd = dataclasses.replace(replica, model=model).command(0, port, plan.threads_per_replica)
        url = f"http://127.0.0.1:{port}"
        # Started by the thread that runs this replica's code, which lives as long as the replica: the child
        # gets SIGKILL from the kernel should the replica's process die (exec_pinned.py).
        self.process = EngineProcess(pinned_cmd(cmd, self.cores or None), url, replica.health_path,
                                     env=replica.env).start()
        self.process.wait_healthy(plan.health_timeout_s)
        self.probe = HealthProbe(url + replica.health_path)
        self.metrics_url = url + replica.metrics_path
        self.backend = StaticReplica(0, url)
        return build_router([self.backend], RouterConfig(resume_streams=False, api_keys=plan.api_keys, replica_key=key),
                            replica.metrics_path)

    async def _every_replica(self, request: Request) -> Response:
        """/metrics: every replica's engine metrics (the board's), this one's as they are now."""
        return Response(await self.metrics.every_replica(), media_type=METRICS_CONTENT_TYPE)

    def _metrics_text(self) -> str:
        """This replica's engine metrics: the embedded engine's registry, or the external engine's /metrics."""
        if self.engine is not None:
            return generate_latest(self.engine.metrics.registry).decode()
        if self.process is None or self.metrics_url is None:
            return ""
        try:
            answer = httpx.get(self.metrics_url, timeout=5, trust_env=False, headers=self.metrics_headers)
        except httpx.HTTPError:
            return ""
        return answer.text if answer.status_code == 200 else ""

    async def check_health(self) -> None:
        """Ray calls this every HEALTH_PERIOD_S; raising makes Ray replace the replica."""
        if self.engine is not None:
            if self.engine.load_error is not None or not self.engine.ready.is_set():
                raise RuntimeError(f"engine not ready: {self.engine.load_error or 'loading'}")
            if not self.engine.alive:
                raise RuntimeError("the engine thread has stopped")
            return
        if self.process is None or self.probe is None or self.backend is None:
            raise RuntimeError("the replica has no engine")
        status = self.process.exit_status()
        if status is not None:
            raise RuntimeError(f"the engine exited with status {status}: {self.process.output_tail(600)}")
        self.backend.healthy = await asyncio.to_thread(self.probe.ok)
        if not self.backend.healthy:
            raise RuntimeError(f"the engine's health check failed at {self.process.base_url}")

    def __del__(self) -> None:
        """Ray's graceful stop of the replica: free the engine, or stop its process."""
        if getattr(self, "metrics", None) is not None:
            self.metrics.stop.set()
        if getattr(self, "engine", None) is not None:
            self.engine.stop()  # type: ignore[union-attr]
        if getattr(self, "probe", None) is not None:
            self.probe.close()  # type: ignore[union-attr]
        if getattr(self, "process", None) is not None:
            self.process.stop()  # type: ignore[union-attr]


class EngineReplica(ReplicaEngine):
    """A replica of the one model served: Ray's proxy sends it HTTP (the application's ingress)."""

    def __init__(self, args: dict[str, Any]) -> None:
        super().__init__(args)
        hand_over(self.served)  # to serve.ingress's builder, which runs next in this process


class ModelReplica(ReplicaEngine):
    """A replica of one of several models: the ingress hands it each request through a handle (`answer`)."""

    async def __init__(self, args: dict[str, Any], model: str) -> None:  # type: ignore[misc]  # Ray awaits it
        ReplicaEngine.__init__(self, args, model)
        # What serve.ingress would do: run the app's lifespan (an external engine's relay opens its session there).
        self.lifespan = LifespanOn(Config(self.served, lifespan="on", log_config=None, access_log=False))
        await self.lifespan.startup()

    async def answer(self, request: HandleRequest) -> AsyncIterator[list[dict]]:
        """The app's answer to `request`, in batches of ASGI messages (a streaming handle call)."""
        async with contextlib.aclosing(ray_asgi.answer(self.served, request)) as messages:
            async for batch in messages:
                yield batch

    async def __del__(self) -> None:  # type: ignore[override]  # Ray awaits it
        """Ray's graceful stop: the app's lifespan ends, then the engine stops."""
        if getattr(self, "lifespan", None) is not None:
            await self.lifespan.shutdown()
        ReplicaEngine.__del__(self)


# The classes stay importable under their own names, so Ray's workers import them from this module instead of
# receiving pickled copies (whose globals, ray_asgi's hand-over list among them, would be copies too).
ENGINE_DEPLOYMENT = serve.deployment(serve.ingress(take_app)(EngineReplica))
MODEL_DEPLOYMENT = serve.deployment(ModelReplica)


def ray_node_id() -> str:
    return ray.get_runtime_context().get_node_id()


def build(args: dict[str, Any]) -> serve.Application:
    """The application of ray-serve.yaml (`import_path: paretoserve.serve.ray_replica:build`) and of
    `serve --backend ray`: one model's deployment of `replicas` engines, or with `models` one deployment per model
    behind the ingress; every plan checked first (PlanError names the field)."""
    plan = read_args(args)
    if isinstance(plan, RayModels):
        return build_models(plan)
    return model_deployment(plan, ENGINE_DEPLOYMENT, DEPLOYMENT_NAME).bind(plan.args())


def model_deployment(plan: RayPlan, deployment: Any, name: str) -> Any:
    """`deployment` with the plan's options: its replicas, each capped at its batch with its num_cpus."""
    replica = plan.replica_plan()  # PlanError names the field
    if plan.threads_per_replica < 1:
        raise PlanError("threads_per_replica must be >= 1 on Ray: it is each replica's num_cpus")
    actor: dict[str, Any] = {"num_cpus": plan.threads_per_replica}
    if plan.num_gpus:
        actor["num_gpus"] = plan.num_gpus
    if replica.env:
        actor["runtime_env"] = {"env_vars": replica.env}
    return deployment.options(
        name=name, num_replicas=plan.replicas, max_ongoing_requests=plan.max_batch,
        max_queued_requests=plan.max_queued_requests, ray_actor_options=actor,
        health_check_period_s=HEALTH_PERIOD_S, health_check_timeout_s=replica.health_check_timeout_s,
        graceful_shutdown_timeout_s=replica.stop_grace_s)


def build_models(models: RayModels) -> serve.Application:
    """Several models: model i's deployment `EngineReplica-i`, pinned past the cores of the models before it, under
    the name its engine serves it by (refused when two share one); the ingress in front of them all."""
    names = [m.name for m in served_models([plan.replica_plan() for plan in models.plans])]
    bound = {name: model_deployment(plan, MODEL_DEPLOYMENT, f"{DEPLOYMENT_NAME}-{i}").bind(plan.args(), name)
             for i, (name, plan) in enumerate(zip(names, models.placed(), strict=True))}
    # It holds every request in flight or queued for any model: never the cap, which each model's deployment is.
    ongoing = sum(plan.replicas * plan.max_batch + plan.max_queued_requests for plan in models.plans)
    ingress = INGRESS_DEPLOYMENT.options(  # type: ignore[attr-defined]  # serve.deployment(cls) is a Deployment
        name=INGRESS_NAME, num_replicas=1, max_ongoing_requests=ongoing,
        max_queued_requests=max(plan.max_queued_requests for plan in models.plans),
        ray_actor_options={"num_cpus": 0}, health_check_period_s=HEALTH_PERIOD_S)  # 0: light, like Ray's proxy
    return ingress.bind(bound, models.api_key_digests, models.keyed_metrics)
