"""The replica plan as one Ray Serve deployment: each replica runs one engine and serves the OpenAI routes.

Imported by Ray's workers (and by `serve run` / `serve deploy` through `ray-serve.yaml`, whose import path is
`build`): `build(args)` turns the plan's fields into the application. Each replica

- pins every thread of its process to its own share of the node's cores (from its local rank: Ray reserves
  `num_cpus` but never pins), before the engine starts its threads;
- runs the embedded engine in the replica's own process and serves our Starlette app through `serve.ingress`,
  so a request crosses one HTTP hop (Ray's proxy) and a handle call; or starts an external preset's engine as a
  child process and relays to it with our router (serve/router.py) over one backend;
- answers Ray's `check_health` with the engine's readiness, so a replica that dies or hangs is replaced;
- pushes its engine's metrics to a small named actor (`MetricsBoard`) twice a second, so that `/metrics`, which
  Ray's proxy sends to any one replica, answers every replica's, each sample labelled with its replica, as
  our router's does (`paretoserve bench` and the sweep then sum them like one engine).

Ray's proxy then caps each replica at `max_ongoing_requests` = the plan's batch (Ray's default of 5 would cap
the batch) and queues at most `max_queued_requests` more per proxy before it answers 503.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import httpx
import ray
from prometheus_client import generate_latest
from ray import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paretoserve.engine.config import EngineConfig
from paretoserve.engine.core import Engine
from paretoserve.engine.llama_load import resolve_repack
from paretoserve.engine_process import EngineProcess, HealthProbe, free_port
from paretoserve.model import resolve_model
from paretoserve.openai_api.app import ServerConfig, build_app
from paretoserve.openai_api.auth import ApiKeys
from paretoserve.serve.backends import StaticReplica
from paretoserve.serve.config import PlanError, RouterConfig, ServeConfig
from paretoserve.serve.metrics import labelled_metrics
from paretoserve.serve.pinning import pinned_cmd
from paretoserve.serve.router import METRICS_CONTENT_TYPE, build_router

log = logging.getLogger("paretoserve.serve")

APP_NAME = "paretoserve"
DEPLOYMENT_NAME = "EngineReplica"
HEALTH_PERIOD_S = 2.0  # Ray's default of 10 s leaves a hung replica in rotation that long
REPLICA_HEADER = b"x-paretoserve-ray-replica"  # on every answer: which replica (and node) served it
PUSH_S = 0.5  # how often each replica puts its metrics on the board
STALE_S = 5.0  # a replica that put nothing for this long (killed, replaced) is left out of /metrics


@dataclass(frozen=True)
class RayPlan:
    """What `build` takes (the `args` of ray-serve.yaml): the replica plan's fields and Ray's own knobs."""

    replicas: int = 1
    max_batch: int = ServeConfig.max_batch
    threads_per_replica: int = 1  # Ray's num_cpus of each replica, and the engine's threads
    kv_tokens: int | None = None
    ctx_per_seq: int | None = None
    model: str = "default"  # resolved on each node: the bundled model is assembled there
    engine: str = "embedded"
    repack: str = "auto"
    pin: bool = True
    mem_fraction: float = ServeConfig.mem_fraction  # device memory all replicas share (GPU engines)
    num_gpus: float = 0.0  # each replica's share of a GPU: 1 / replicas on a GPU node, 0 on CPUs
    max_queued_requests: int = EngineConfig.max_queue  # per proxy, beyond max_ongoing_requests x replicas
    health_timeout_s: float = ServeConfig.health_timeout_s
    # The clients' keys as SHA-256 hex digests: the deployment checks them, and Ray's config never holds a key.
    api_key_digests: tuple[str, ...] = ()
    keyed_metrics: bool = False

    @property
    def api_keys(self) -> ApiKeys:
        return ApiKeys(tuple(bytes.fromhex(d) for d in self.api_key_digests), self.keyed_metrics)

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> RayPlan:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise PlanError(f"ray-serve.yaml args: unknown field(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(known))}")
        if "api_key_digests" in args:
            args = {**args, "api_key_digests": tuple(args["api_key_digests"])}  # a list once through YAML
        return cls(**args)

    def replica_plan(self) -> ServeConfig:
        """The same plan as `serve` checks it (PlanError names the field)."""
        return ServeConfig(replicas=self.replicas, max_batch=self.max_batch, kv_tokens=self.kv_tokens,
                           ctx_per_seq=self.ctx_per_seq, threads_per_replica=self.threads_per_replica,
                           model=self.model, engine=self.engine, repack=self.repack, pin=self.pin,
                           mem_fraction=self.mem_fraction, health_timeout_s=self.health_timeout_s)

    def args(self) -> dict[str, Any]:
        """The fields that differ from the defaults, as ray-serve.yaml's args."""
        default = RayPlan()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}


def replica_cores(local_rank: int, threads: int, cores: list[int]) -> tuple[int, ...]:
    """The `threads` cores of the replica with this rank on its node: consecutive, disjoint while they fit, wrapping
    round the node's cores when more replicas landed there than it has room for."""
    start = (local_rank * threads) % len(cores)
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


@ray.remote(num_cpus=0)
class MetricsBoard:
    """Each replica's latest metrics text. Owned by the replica that created it (no cleanup needed: it goes with
    that replica, and the next put of any other creates it again)."""

    def __init__(self) -> None:
        self.texts: dict[str, tuple[float, str]] = {}

    def put(self, replica: str, text: str) -> None:
        self.texts[replica] = (time.monotonic(), text)

    def fresh(self) -> dict[str, str]:
        now = time.monotonic()
        return {replica: text for replica, (at, text) in self.texts.items() if now - at < STALE_S}


def metrics_board():
    """The deployment's board, created by whoever asks first."""
    return MetricsBoard.options(
        name=f"{APP_NAME}-metrics", namespace="serve", get_if_exists=True).remote()


class MetricsPusher:
    """A thread that puts this replica's metrics on the board every PUSH_S, and the /metrics route over the board."""

    def __init__(self, label: str, text: Callable[[], str]) -> None:
        self.label, self.text = label, text
        self.stop = threading.Event()
        self.board: Any = None  # the board's actor handle, once found
        threading.Thread(target=self._push, name="paretoserve-metrics", daemon=True).start()

    def _push(self) -> None:
        while not self.stop.wait(PUSH_S):
            try:
                self.board = self.board or metrics_board()
                ray.get(self.board.put.remote(self.label, self.text()), timeout=5)
            except Exception:  # noqa: BLE001 - the board went with its replica, or the engine is busy: next time
                self.board = None

    async def route(self, request: Request) -> Response:
        texts: dict[str, str] = {}
        try:
            board = self.board or metrics_board()
            texts = await board.fresh.remote()
        except Exception:  # noqa: BLE001 - no board (yet): this replica's own metrics still answer
            pass
        texts[self.label] = self.text()
        return Response(labelled_metrics(texts), media_type=METRICS_CONTENT_TYPE)


# serve.ingress calls its builder with no arguments, in the replica's process, right after the replica's
# __init__ has run there: __init__ leaves the app it built here (Ray runs one replica per actor process).
_BUILT: list[Starlette] = []


def _replica_app() -> Starlette:
    return _BUILT.pop()


class EngineReplica:
    """One replica of the plan: its engine, and the ASGI app Ray's proxy sends its requests to."""

    def __init__(self, args: dict[str, Any]) -> None:
        plan = RayPlan.from_args(args)
        context = serve.get_replica_context()
        rank = context.rank.local_rank if context.rank is not None else 0
        self.tag = f"{context.replica_tag} node={ray_node_id()[:12]} rank={rank}"
        self.cores: tuple[int, ...] = ()
        if plan.pin:
            self.cores = replica_cores(rank, plan.threads_per_replica, sorted(os.sched_getaffinity(0)))
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
        self.metrics = MetricsPusher(context.replica_tag, self._metrics_text)
        app.router.routes.insert(0, Route("/metrics", self.metrics.route, methods=["GET"]))  # before the app's own
        app.add_middleware(_ReplicaHeader, value=self.tag.encode())
        _BUILT.append(app)
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


# The class stays importable under its own name, so Ray's workers import it from this module instead of
# receiving a pickled copy (whose globals, _BUILT among them, would be copies too).
ENGINE_DEPLOYMENT = serve.deployment(serve.ingress(_replica_app)(EngineReplica))


def ray_node_id() -> str:
    return ray.get_runtime_context().get_node_id()


def build(args: dict[str, Any]) -> serve.Application:
    """The application of ray-serve.yaml (`import_path: paretoserve.serve.ray_replica:build`) and of
    `serve --backend ray`: one deployment of `replicas` engines, the plan checked first."""
    plan = RayPlan.from_args(dict(args))
    replica = plan.replica_plan()  # PlanError names the field
    if plan.threads_per_replica < 1:
        raise PlanError("threads_per_replica must be >= 1 on Ray: it is each replica's num_cpus")
    actor: dict[str, Any] = {"num_cpus": plan.threads_per_replica}
    if plan.num_gpus:
        actor["num_gpus"] = plan.num_gpus
    if replica.env:
        actor["runtime_env"] = {"env_vars": replica.env}
    deployment = ENGINE_DEPLOYMENT.options(  # type: ignore[attr-defined]  # serve.deployment(cls) is a Deployment
        name=DEPLOYMENT_NAME, num_replicas=plan.replicas, max_ongoing_requests=plan.max_batch,
        max_queued_requests=plan.max_queued_requests, ray_actor_options=actor,
        health_check_period_s=HEALTH_PERIOD_S, health_check_timeout_s=replica.health_check_timeout_s,
        graceful_shutdown_timeout_s=replica.stop_grace_s)
    return deployment.bind(plan.args())
