"""`serve --backend ray`: the replica plan deployed on Ray Serve (serve/ray_replica.py), until SIGTERM or Ctrl-C;
with several models, one deployment per model behind an ingress that routes by the request's `model`.

Without an address it starts a Ray instance of its own on this machine (`ray.init(address="local")`, so it never
joins a cluster someone else started) and stops it at the end, Ray's processes with it. With `--ray-address` it
deploys on that cluster and, at the end, deletes its application and leaves the cluster running. One proxy, on
the head node, serves the OpenAI routes on --host:--port (127.0.0.1 unless told otherwise). Ray's usage
statistics are off.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

import ray
from ray import serve

from paretoserve.openai_api.auth import ApiKeys
from paretoserve.serve.config import PlanError, RouterConfig, ServeConfig
from paretoserve.serve.fleet import place
from paretoserve.serve.pinning import assign_cores, threads_for, usable_cores
from paretoserve.serve.ray_replica import APP_NAME, RayModels, RayPlan, build

log = logging.getLogger("paretoserve.serve")

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}  # never report usage statistics to Ray's servers
LOGGING = {"log_level": "WARNING", "enable_access_log": False}  # no log line per request in the replicas
GPU_ENGINES = ("vllm", "sglang")  # the presets that run on a GPU when the cluster has one


@dataclass(frozen=True)
class RayOptions:
    """Where and how the plan runs on Ray."""

    address: str | None = None  # None: a Ray instance of this run's own; else `auto` or ray://HOST:PORT
    max_queued_requests: int = RayPlan.max_queued_requests


def ray_plan(plan: ServeConfig, threads: int, num_gpus: float, options: RayOptions,
             keys: ApiKeys | None = None) -> RayPlan:
    """The plan as the deployment builder takes it; `keys` (the clients') as digests the deployment checks."""
    keys = keys or ApiKeys()
    if plan.engine_cmd is not None:
        raise PlanError("--backend ray runs the engine presets (--engine); --engine-cmd is for the router backend")
    if plan.mps:
        raise PlanError("--mps applies to the router backend: on Ray, start the MPS daemon on each GPU node")
    return RayPlan(replicas=plan.replicas, max_batch=plan.max_batch, threads_per_replica=threads,
                   kv_tokens=plan.kv_tokens, ctx_per_seq=plan.ctx_per_seq, model=plan.model, engine=plan.engine,
                   repack=plan.repack, pin=plan.pin, mem_fraction=plan.mem_fraction, num_gpus=num_gpus,
                   max_queued_requests=options.max_queued_requests, health_timeout_s=plan.health_timeout_s,
                   api_key_digests=keys.hex_digests, keyed_metrics=keys.metrics)


def app_args(plans: list[ServeConfig], threads: list[int], options: RayOptions, keys: ApiKeys | None = None) -> dict:
    """The builder's args: one model's plan, or several models' plans with the keys beside them (the ingress checks
    them)."""
    keys = keys or ApiKeys()
    total = sum(plan.replicas for plan in plans)  # replicas of every model share the node's GPU
    if len(plans) == 1:
        return ray_plan(plans[0], threads[0], gpu_share(plans[0], total), options, keys).args()
    each = [ray_plan(plan, n, gpu_share(plan, total), options) for plan, n in zip(plans, threads, strict=True)]
    return RayModels(tuple(each), keys.hex_digests, keys.metrics).args()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds from wherever the main thread is, to the shutdown below


def start_ray(plans: list[ServeConfig], options: RayOptions) -> list[int]:
    """Connect to the cluster, or start a local instance sized for the plans; returns each model's threads per
    replica."""
    os.environ.update(RAY_ENV)  # read by ray.init, and inherited by every Ray process it starts
    cores = usable_cores()
    total = sum(plan.replicas for plan in plans)
    threads = [threads_for(total, plan.threads_per_replica, cores) for plan in plans]
    need = sum(plan.replicas * n for plan, n in zip(plans, threads, strict=True))
    if options.address is None:
        if len(plans) > 1:
            place(plans, cores)  # the same refusal as the router backend's for several models
        elif plans[0].pin:
            assign_cores(plans[0].replicas, threads[0], cores)  # the same refusal as the router backend's
        ray.init(address="local", num_cpus=max(len(cores), need), include_dashboard=False,
                 logging_level=logging.WARNING)
    else:
        ray.init(address=options.address, logging_level=logging.WARNING)
        have = ray.cluster_resources().get("CPU", 0)
        if have < need:
            log.warning("the cluster has %g CPUs, the plan asks %d (%s): some replicas wait for room", have, need,
                        " + ".join(f"{p.replicas} replicas x {n}" for p, n in zip(plans, threads, strict=True)))
    return threads


def gpu_share(plan: ServeConfig, replicas: int | None = None) -> float:
    """Each replica's num_gpus: 1/N of a GPU for a GPU engine when the cluster has GPUs, N the `replicas` that share it
    (the plan's own by default; memory is capped by the engine's own flag, from --mem-fraction or --kv-tokens), else
    0."""
    if plan.engine not in GPU_ENGINES or ray.cluster_resources().get("GPU", 0) < 1:
        return 0.0
    return int(1000 / (replicas or plan.replicas)) / 1000


def _described(plans: list[ServeConfig], threads: list[int]) -> str:
    each = [f"{p.replicas} replica(s) x {n} CPU(s), max_ongoing_requests {p.max_batch}"
            for p, n in zip(plans, threads, strict=True)]
    if len(plans) == 1:
        return each[0]
    return "; ".join(f"model {p.model}: {text}" for p, text in zip(plans, each, strict=True))


def serve_on_ray(plans: list[ServeConfig], config: RouterConfig, options: RayOptions) -> int:
    """Deploy one model's plan or several, serve until SIGTERM or Ctrl-C, then take down what this run started.
    Returns the exit status."""
    started = time.monotonic()
    stop = threading.Event()
    status = 0
    previous = signal.getsignal(signal.SIGTERM)
    try:
        threads = start_ray(plans, options)
        signal.signal(signal.SIGTERM, _interrupt)  # after ray.init, whose own handler would abort the process
        app = build(app_args(plans, threads, options, config.api_keys))
        # Cluster-wide options: on a cluster whose Serve already runs, its own HTTP options stay in force.
        serve.start(proxy_location="HeadOnly", http_options={"host": config.host, "port": config.port},
                    logging_config={"log_level": "WARNING"})
        serve.run(app, name=APP_NAME, route_prefix="/", logging_config=LOGGING)
        log.info("Ray Serve on http://%s:%d: %s, up in %.1f s", config.host, config.port, _described(plans, threads),
                 time.monotonic() - started)
        stop.wait()
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:  # serve.run: the deployment failed (a replica's constructor raised, repeatedly)
        log.error("Ray Serve could not start the plan: %s", exc)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the shutdown short
        shutdown(options)
        signal.signal(signal.SIGTERM, previous)
    return status


def shutdown(options: RayOptions) -> None:
    """Delete the application (a cluster of someone else's keeps running) or stop Serve and the local Ray."""
    if not ray.is_initialized():
        return
    log.info("stopping Ray Serve%s", "" if options.address else " and the local Ray instance")
    try:
        if options.address is None:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
    finally:
        ray.shutdown()
